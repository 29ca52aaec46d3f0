"""The build context: which files of the context directory a build may see.

A build sends its context (a directory) to the builder, minus what ``.dockerignore`` excludes.
The rules are moby/patternmatcher's, which BuildKit, buildah and kaniko all use: Go
``filepath.Match`` patterns per path plus ``**``, parent directories excluding their contents,
``!`` exceptions where the last matching pattern wins. A ``<Dockerfile>.dockerignore`` next to
the Dockerfile takes precedence over the context's ``.dockerignore``.

``load_ignore(context, dockerfile)`` gives a :class:`PatternMatcher`; a :class:`ContextTree`
is the context as BuildKit's walker would send it (what is below a directory, whether a path
is there); ``walk_context(context, matcher)`` yields the included paths in a fixed order.
:class:`PathPattern` is the one path matcher of a build (``.dockerignore``, COPY/ADD sources,
``--parents``, ``--exclude``): ``filepath.Match`` syntax plus ``**``, in linear time.
"""

from .buildfiles import read_build_file
from .dockerignore import (
    IgnoreFileError,
    PatternMatcher,
    find_ignore_file,
    load_ignore,
    parse_ignore_lines,
    read_ignore_file,
)
from .pathmatch import PathPattern, PatternSyntaxError, has_wildcards
from .walk import ContextEntry, ContextError, ContextTree, walk_context

__all__ = [
    "ContextEntry",
    "ContextError",
    "ContextTree",
    "IgnoreFileError",
    "PathPattern",
    "PatternMatcher",
    "PatternSyntaxError",
    "find_ignore_file",
    "has_wildcards",
    "load_ignore",
    "parse_ignore_lines",
    "read_build_file",
    "read_ignore_file",
    "walk_context",
]
