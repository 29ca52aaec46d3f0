""".dockerignore: reading the file and matching paths, with moby/patternmatcher's semantics.

Reading (moby/patternmatcher ``ignorefile``): a UTF-8 byte order mark on the first line is
dropped; a line whose *first column* is ``#`` is a comment; the rest is trimmed, blank lines
are dropped; a leading ``!`` marks an exception (white space after it trimmed); the pattern is
``filepath.Clean``-ed and one leading ``/`` removed, so ``/foo`` is ``foo``.

Matching (``patternmatcher.MatchesOrParentMatches``): each pattern is Go ``filepath.Match``
syntax on the slash-separated path relative to the context (``*`` and ``?`` never cross ``/``,
``[a-z]`` / ``[^a-z]`` classes, ``\\`` escapes the next character) plus ``**``, which matches
any number of path segments including none (:mod:`.pathmatch`, the one matcher of a build, in
linear time). A pattern that matches a parent directory matches everything below it. Patterns
are applied in order and the **last** one that matches decides: an exception (``!pattern``)
re-includes what an earlier pattern excluded. The context walker asks directory by directory,
as BuildKit's does (:meth:`PatternMatcher.matches_with_parent`).

Unlike .gitignore, ``*.md`` matches only at the top of the context, a trailing ``/`` means
nothing, and an exception can re-include a file inside an excluded directory (so the walker
still descends into an excluded directory when an exception could match below it).

Where patternmatcher turns a pattern into a regular expression without escaping ``^`` or the
text of ``[...]`` classes (so ``[\\d]`` would mean a digit there), this module keeps to the
``filepath.Match`` meaning it documents: every character of a class is literal.
"""

from __future__ import annotations

import os
from pathlib import Path

from part1_overview import model

from ..errors import ContextError, IgnoreFileError
from .pathmatch import PathPattern, PatternSyntaxError

__all__ = [
    "IgnoreFileError",
    "Pattern",
    "PatternMatcher",
    "parse_ignore_lines",
    "read_ignore_file",
    "find_ignore_file",
    "load_ignore",
    "go_clean",
]

_BOM = "\ufeff"
#: Go's unicode.IsSpace, which strings.TrimSpace uses
_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"



def go_clean(path: str) -> str:
    """Go's ``path/filepath.Clean`` for slash paths (``a//b/../c/`` → ``a/c``, ``""`` → ``.``)."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    cleaned = "/".join(out)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def _go_dir(path: str) -> str:
    """Go's ``filepath.Dir``: everything before the last ``/``, cleaned."""
    i = path.rfind("/")
    return go_clean(path[: i + 1])


def parse_ignore_lines(text: str) -> list[str]:
    """The patterns of a .dockerignore text, normalised as moby's ``ignorefile.ReadAll`` does.

    A bare ``!`` is kept (as ``"!"``): :class:`PatternMatcher` rejects it.
    """
    patterns: list[str] = []
    # bufio.ScanLines: split on \n, drop one \r before it
    for number, line in enumerate(text.split("\n")):
        if line.endswith("\r"):
            line = line[:-1]
        if number == 0 and line.startswith(_BOM):
            line = line[len(_BOM):]
        if line.startswith("#"):  # only in the first column: "  # x" is a pattern
            continue
        pattern = line.strip(_SPACE)
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip(_SPACE)
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    # a final newline does not make an empty last line
    return patterns


def read_ignore_file(path: str | Path, context_dir: str | Path | None = None) -> list[str]:
    """The patterns of the .dockerignore at ``path`` (see :func:`parse_ignore_lines`); one in
    ``context_dir`` is resolved inside it (:func:`~.buildfiles.read_build_file`)."""
    from .buildfiles import read_build_file

    try:
        data = read_build_file(path, context_dir if context_dir is not None else Path(path).parent)
    except ContextError as e:
        raise IgnoreFileError(str(e)) from None
    if data is None:
        raise IgnoreFileError(f"{path}: cannot read: No such file or directory")
    return parse_ignore_lines(data.decode("utf-8", "surrogateescape"))


def find_ignore_file(context_dir: str | Path, dockerfile: str | Path | None = None) -> Path | None:
    """Which ignore file applies: ``<Dockerfile>.dockerignore`` beside the Dockerfile first,
    else ``.dockerignore`` at the root of the context, else None.

    BuildKit looks for the Dockerfile's own ignore file first (``app.Dockerfile`` →
    ``app.Dockerfile.dockerignore``) so several Dockerfiles can share one context.
    """
    if dockerfile is not None:
        own = Path(str(dockerfile) + ".dockerignore")
        if _is_there(own):
            return own
    default = Path(context_dir) / ".dockerignore"
    return default if _is_there(default) else None


def _is_there(path: Path) -> bool:
    # anything but a directory counts (a link wherever it leads, a FIFO): reading it inside
    # the context says what it is, where skipping it would send what it excludes
    return os.path.lexists(path) and not path.is_dir()


@model(frozen=True)
class Pattern:
    """One cleaned pattern of a .dockerignore; ``exclusion`` is True for ``!pattern``."""

    text: str
    exclusion: bool
    path: PathPattern

    @property
    def kind(self) -> str:
        """"exact", "prefix", "suffix" or "regex", as patternmatcher classifies it."""
        return self.path.kind

    def match(self, path: str) -> bool:
        """Whether the pattern matches exactly this slash path (no parent matching)."""
        return self.path.match(path)

    def __str__(self) -> str:
        return ("!" if self.exclusion else "") + self.text


class PatternMatcher:
    """The patterns of a .dockerignore, in order.

    ``matches(path)`` answers for a slash path relative to the context root (``src/a.c``):
    True when it is excluded from the context. ``source`` names the file in error messages.
    """

    def __init__(self, patterns: list[str] | tuple[str, ...], source: str = ".dockerignore") -> None:
        self.source = source
        compiled: list[Pattern] = []
        for raw in patterns:
            p = raw.strip(_SPACE)
            if not p:
                continue
            p = go_clean(p)
            exclusion = p.startswith("!")
            if exclusion:
                if len(p) == 1:
                    raise IgnoreFileError(f'{source}: illegal exclusion pattern: "!"')
                p = p[1:]
            try:
                compiled.append(Pattern(p, exclusion, PathPattern(p)))
            except PatternSyntaxError:
                raise IgnoreFileError(f"{source}: syntax error in pattern {raw!r}") from None
        self.patterns: tuple[Pattern, ...] = tuple(compiled)
        self._exceptions = tuple(p for p in self.patterns if p.exclusion)

    def __repr__(self) -> str:
        return f"PatternMatcher({[str(p) for p in self.patterns]!r})"

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def exclusions(self) -> bool:
        """Whether any pattern is an exception (``!pattern``)."""
        return bool(self._exceptions)

    def matches(self, path: str) -> bool:
        """Whether ``path`` is excluded: the last pattern that matches it, or one of its parent
        directories, is not an exception (patternmatcher's ``MatchesOrParentMatches``)."""
        matched = False
        parent = _go_dir(path)
        parents = parent.split("/") if parent != "." else []
        for pattern in self.patterns:
            # an inclusion cannot change an excluded path, an exception not an included one
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(path)
            if not hit:
                for k in range(1, len(parents) + 1):
                    if pattern.match("/".join(parents[:k])):
                        hit = True
                        break
            if hit:
                matched = not pattern.exclusion
        return matched

    def matches_with_parent(self, path: str, parent_hits: tuple[bool, ...] | None) -> tuple[bool, tuple[bool, ...]]:
        """Whether ``path`` is excluded, given its parent directory's answer: patternmatcher's
        ``MatchesUsingParentResults``, which BuildKit's context walker (fsutil) uses.

        ``parent_hits`` is the second value this method returned for the parent directory
        (None at the top of the context): per pattern, whether it matched the parent. Returns
        (excluded?, hits for ``path``). A pattern the parent matched matches; another one is
        tried on ``path`` alone, and only when it could change the answer so far (an inclusion
        while not excluded, an exception while excluded). A pattern skipped so is recorded as
        not matching, so a directory's children do not inherit it: with ``a``, ``!a/b``, ``a``
        the path ``a/b/c`` is kept, where :meth:`matches` (every parent tried) excludes it.
        That is what BuildKit sends, and so what a build sees.
        """
        matched = False
        hits: list[bool] = []
        for i, pattern in enumerate(self.patterns):
            hit = parent_hits[i] if parent_hits is not None else False
            if not hit:
                if pattern.exclusion != matched:
                    hits.append(False)
                    continue
                hit = pattern.match(path)
                if not hit and parent_hits is None:
                    # no parent results: every parent directory is tried, as in matches()
                    parent = _go_dir(path)
                    if parent != ".":
                        parts = parent.split("/")
                        hit = any(pattern.match("/".join(parts[:k])) for k in range(1, len(parts) + 1))
            hits.append(hit)
            if hit:
                matched = not pattern.exclusion
        return matched, tuple(hits)

    def matches_exact(self, path: str) -> bool:
        """Like :meth:`matches` but without parent-directory matching."""
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            if pattern.match(path):
                matched = not pattern.exclusion
        return matched

    def may_include_below(self, directory: str) -> bool:
        """Whether some exception could re-include a path strictly below ``directory``.

        A walker skips an excluded directory when none can (BuildKit's fsutil walker skips it
        when no exception's text starts with the directory; this test is as sound and also
        skips a directory that a wildcard exception such as ``!*/keep`` cannot reach). An
        exception that matched the directory or a parent of it changes nothing below: the
        directory is excluded all the same, by a later pattern its children match too.
        """
        return any(p.path.may_match_below(directory) for p in self._exceptions)


def load_ignore(context_dir: str | Path, dockerfile: str | Path | None = None) -> PatternMatcher:
    """The matcher for a build: the patterns of :func:`find_ignore_file` (none if there is none)."""
    path = find_ignore_file(context_dir, dockerfile)
    if path is None:
        return PatternMatcher([])
    return PatternMatcher(read_ignore_file(path, context_dir), source=str(path))
