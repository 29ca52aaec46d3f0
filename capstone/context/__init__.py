"""The build context: which files of the context directory a build may see.

A build sends its context (a directory) to the builder, minus what ``.dockerignore`` excludes.
The rules are moby/patternmatcher's, which BuildKit, buildah and kaniko all use: Go
``filepath.Match`` patterns per path plus ``**``, parent directories excluding their contents,
``!`` exceptions where the last matching pattern wins. A ``<Dockerfile>.dockerignore`` next to
the Dockerfile takes precedence over the context's ``.dockerignore``.

``load_ignore(context, dockerfile)`` gives a :class:`PatternMatcher`; ``walk_context(context,
matcher)`` yields the included paths in a fixed order.
"""

from .dockerignore import (
    IgnoreFileError,
    PatternMatcher,
    find_ignore_file,
    load_ignore,
    parse_ignore_lines,
    read_ignore_file,
)
from .walk import ContextError, walk_context

__all__ = [
    "ContextError",
    "IgnoreFileError",
    "PatternMatcher",
    "find_ignore_file",
    "load_ignore",
    "parse_ignore_lines",
    "read_ignore_file",
    "walk_context",
]
