""".dockerignore: reading the file and matching paths, with moby/patternmatcher's semantics.

Reading (moby/patternmatcher ``ignorefile``): a UTF-8 byte order mark on the first line is
dropped; a line whose *first column* is ``#`` is a comment; the rest is trimmed, blank lines
are dropped; a leading ``!`` marks an exception (white space after it trimmed); the pattern is
``filepath.Clean``-ed and one leading ``/`` removed, so ``/foo`` is ``foo``.

Matching (``patternmatcher.MatchesOrParentMatches``): each pattern is Go ``filepath.Match``
syntax on the slash-separated path relative to the context (``*`` and ``?`` never cross ``/``,
``[a-z]`` / ``[^a-z]`` classes, ``\\`` escapes the next character) plus ``**``, which matches
any number of path segments including none. A pattern that matches a parent directory matches
everything below it. Patterns are applied in order and the **last** one that matches decides:
an exception (``!pattern``) re-includes what an earlier pattern excluded.

Unlike .gitignore, ``*.md`` matches only at the top of the context, a trailing ``/`` means
nothing, and an exception can re-include a file inside an excluded directory (so the walker
still descends into an excluded directory when an exception could match below it).

Where patternmatcher turns a pattern into a regular expression without escaping ``^`` or the
text of ``[...]`` classes (so ``[\\d]`` would mean a digit there), this module keeps to the
``filepath.Match`` meaning it documents: every character of a class is literal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import IgnoreFileError

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


def read_ignore_file(path: str | Path) -> list[str]:
    """The patterns of the .dockerignore at ``path`` (see :func:`parse_ignore_lines`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise IgnoreFileError(f"{path}: cannot read: {e.strerror}") from None
    return parse_ignore_lines(data.decode("utf-8", "surrogateescape"))


def find_ignore_file(context_dir: str | Path, dockerfile: str | Path | None = None) -> Path | None:
    """Which ignore file applies: ``<Dockerfile>.dockerignore`` beside the Dockerfile first,
    else ``.dockerignore`` at the root of the context, else None.

    BuildKit looks for the Dockerfile's own ignore file first (``app.Dockerfile`` →
    ``app.Dockerfile.dockerignore``) so several Dockerfiles can share one context.
    """
    if dockerfile is not None:
        own = Path(str(dockerfile) + ".dockerignore")
        if own.is_file():
            return own
    default = Path(context_dir) / ".dockerignore"
    if default.is_file():
        return default
    return None


# -- filepath.Match syntax ------------------------------------------------------------------

class _BadPattern(Exception):
    pass


def _class_end(pattern: str, i: int) -> tuple[str, int]:
    """Parse the ``[...]`` starting at ``pattern[i] == "["``; return its regex and the end.

    Go's grammar: ``[`` [ ``^`` ] { char | char ``-`` char } ``]``, at least one range, ``\\``
    escapes a character; ``-`` and ``]`` must be escaped where they would be a range's end.
    """
    n = len(pattern)
    i += 1
    negated = i < n and pattern[i] == "^"
    if negated:
        i += 1
    ranges: list[str] = []
    while True:
        if i < n and pattern[i] == "]" and ranges:
            i += 1
            break
        lo, i = _class_char(pattern, i)
        hi = lo
        if pattern[i] == "-":
            hi, i = _class_char(pattern, i + 1)
        if lo > hi:
            raise _BadPattern  # Go's regexp rejects it too ("invalid character class range")
        ranges.append(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}")
    body = "".join(ranges)
    # as in filepath.Match, a class is one character and may well be a "/"
    return (f"[^{body}]" if negated else f"[{body}]"), i


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    n = len(pattern)
    if i >= n or pattern[i] in "-]":
        raise _BadPattern
    if pattern[i] == "\\":
        i += 1
        if i >= n:
            raise _BadPattern
    ch = pattern[i]
    i += 1
    if i >= n:
        raise _BadPattern  # the class is not closed
    return ch, i


@dataclass(frozen=True)
class Pattern:
    """One cleaned pattern of a .dockerignore; ``exclusion`` is True for ``!pattern``."""

    text: str
    exclusion: bool
    regex: "re.Pattern[str]"
    kind: str  # "exact", "prefix", "suffix" or "regex", as patternmatcher classifies it

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.text.split("/"))

    def match(self, path: str) -> bool:
        """Whether the pattern matches exactly this slash path (no parent matching)."""
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])  # "dir/**": anything that starts "dir/"
        if self.kind == "suffix":
            suffix = self.text[2:]  # "**/foo" and "**foo": anything that ends so
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        return self.regex.match(path) is not None

    def __str__(self) -> str:
        return ("!" if self.exclusion else "") + self.text


def _compile(text: str, exclusion: bool) -> Pattern:
    """Translate a cleaned pattern, classifying it the way patternmatcher does."""
    out = ["^"]
    kind = "exact"
    i, n = 0, len(text)
    first = True
    while i < n:
        ch = text[i]
        i += 1
        if ch == "*":
            if i < n and text[i] == "*":
                i += 1
                if i < n and text[i] == "/":
                    i += 1  # "**/" is "**"
                if i >= n:
                    # "**" at the end: everything below
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        out.append(".*")
                        kind = "regex"
                else:
                    out.append("(?:.*/)?")  # any number of segments, even none
                    kind = "regex"
                if first:
                    kind = "suffix"
            else:
                out.append("[^/]*")
                kind = "regex"
        elif ch == "?":
            out.append("[^/]")
            kind = "regex"
        elif ch == "\\":
            if i < n:
                out.append(re.escape(text[i]))
                i += 1
                kind = "regex"
            else:
                raise _BadPattern  # filepath.Match: a trailing backslash is malformed
        elif ch == "[":
            regex, i = _class_end(text, i - 1)
            out.append(regex)
            kind = "regex"
        else:
            out.append(re.escape(ch))
        first = False
    out.append("$")
    # no DOTALL: Go's "." does not match a newline either
    return Pattern(text, exclusion, re.compile("".join(out)), kind)


def _segment_regex(segment: str) -> "re.Pattern[str] | None":
    """A regex for one segment of an exception without ``**`` or classes (None: malformed)."""
    try:
        return _compile(segment, False).regex
    except (_BadPattern, re.error):
        return None  # "a\/b" split at its escaped "/"


class PatternMatcher:
    """The patterns of a .dockerignore, in order.

    ``matches(path)`` answers for a slash path relative to the context root (``src/a.c``):
    True when it is excluded from the context. ``source`` names the file in error messages.
    """

    def __init__(self, patterns: list[str] | tuple[str, ...], source: str = ".dockerignore") -> None:
        self.source = source
        self.patterns: tuple[Pattern, ...] = ()
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
                compiled.append(_compile(p, exclusion))
            except (_BadPattern, re.error):
                raise IgnoreFileError(f"{source}: syntax error in pattern {raw!r}") from None
        self.patterns = tuple(compiled)
        self._exception_segments = tuple(
            (p, [_segment_regex(s) for s in p.segments]) for p in self.patterns if p.exclusion
        )

    def __repr__(self) -> str:
        return f"PatternMatcher({[str(p) for p in self.patterns]!r})"

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def exclusions(self) -> bool:
        """Whether any pattern is an exception (``!pattern``)."""
        return bool(self._exception_segments)

    def matches(self, path: str) -> bool:
        """Whether ``path`` is excluded: the last pattern that matches it, or one of its parent
        directories, is not an exception."""
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
        """:meth:`matches` for a walker that knows its parent's answer.

        ``parent_hits`` is what this method returned as second value for the parent directory
        (None at the top): for each pattern, whether it matched the parent or one of its
        parents. Returns (excluded?, hits for ``path``); one test per pattern, no re-walking
        of the parents.
        """
        if parent_hits is None:
            parent_hits = (False,) * len(self.patterns)
        hits = tuple(up or p.match(path) for p, up in zip(self.patterns, parent_hits))
        matched = False
        for pattern, hit in zip(self.patterns, hits):
            if hit:
                matched = not pattern.exclusion
        return matched, hits

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

        A walker uses it to skip an excluded directory. An exception of k segments can match a
        deeper path only through a prefix of it of k segments, so it matters only when it is
        longer than ``directory`` and its first segments match it (or when it has ``**``).
        """
        parts = directory.split("/")
        for pattern, segments in self._exception_segments:
            if "**" in pattern.text or "[" in pattern.text:
                return True  # "**" spans any depth; a class may match a "/"
            if len(segments) <= len(parts):
                continue
            for regex, part in zip(segments, parts):
                if regex is None:
                    return True  # cannot tell segment by segment: assume it could
                if regex.match(part) is None:
                    break
            else:
                return True
        return False


def load_ignore(context_dir: str | Path, dockerfile: str | Path | None = None) -> PatternMatcher:
    """The matcher for a build: the patterns of :func:`find_ignore_file` (none if there is none)."""
    path = find_ignore_file(context_dir, dockerfile)
    if path is None:
        return PatternMatcher([])
    return PatternMatcher(read_ignore_file(path), source=str(path))
