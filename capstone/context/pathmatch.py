"""Path patterns: Go's ``filepath.Match`` syntax plus ``**``, matched in linear time.

One matcher serves every pattern of a build: the lines of ``.dockerignore`` and ``--exclude``
(moby/patternmatcher's rules), COPY/ADD sources with wildcards and ``COPY --parents``
patterns. The syntax, on slash-separated paths:

* ``*`` any run of characters but ``/``; ``?`` one character but ``/``;
* ``[abc]``, ``[a-z]``, ``[^a-z]`` one character of a class (a class may match ``/``);
  ``\\`` escapes the next character, inside a class too;
* ``**`` any number of path segments, even none: ``a/**/b`` matches ``a/b`` and ``a/x/y/b``;
  a final ``**`` matches everything below (``dir/**``).

Where patternmatcher turns ``**`` into a regular expression, this module keeps its exact
meaning: ``**`` followed by ``/`` (or inside a name) is ``(.*/)?``, a final one ``.*``, and
the ``.`` of those never matches a newline (Go's regexp). patternmatcher also classifies a
pattern by its shape, and so does :class:`PathPattern` (``kind``): ``exact`` (no wildcard:
compared as a string), ``prefix`` (``dir/**``: anything that starts with ``dir/``),
``suffix`` (``**`` then plain text: anything that ends so, ``**/foo`` also ``foo`` itself)
and ``regex`` (everything else). Every character of a class is literal (``[\\d]`` is a ``d``),
as ``filepath.Match`` documents, where patternmatcher would hand it to Go's regexp.

Why not Python's ``re``: it backtracks, so a pattern of k stars costs O(n^k) on a name that
almost matches (a COPY source of 8 stars took 30 s, 10 stars over two minutes). Here a
pattern runs as the set of positions it may be at, advanced one character at a time
(Thompson's construction, what Go's regexp and RE2 do): at most O(len(path) * len(pattern))
work, and the sets met on the way are remembered as the states of a DFA, so a warm pattern
costs one dictionary lookup per character.
"""

from __future__ import annotations

from ..errors import CapstoneError

__all__ = ["PathPattern", "PatternSyntaxError", "has_wildcards"]


class PatternSyntaxError(CapstoneError):
    """A pattern ``filepath.Match`` rejects (``ErrBadPattern``): a malformed class, a
    trailing ``\\``."""


def has_wildcards(word: str) -> bool:
    """Whether ``word`` holds ``*``, ``?`` or ``[`` not escaped by ``\\`` (BuildKit's
    ``containsWildcards``: a word without one names a path literally, backslashes and all)."""
    i, n = 0, len(word)
    while i < n:
        ch = word[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "*?[":
            return True
        i += 1
    return False


# -- parsing ---------------------------------------------------------------------------------
# a pattern is a tuple of tokens:
_LIT = 0  # (_LIT, ch): that character
_ONE = 1  # (_ONE,): any character but "/"
_STAR = 2  # (_STAR,): any run of characters but "/"
_CLASS = 3  # (_CLASS, negated, ((lo, hi), ...)): one character in (or, negated, not in) the ranges
_DIRS = 4  # (_DIRS,): "(.*/)?": nothing, or any run ending with "/" (no newline before it)
_REST = 5  # (_REST,): ".*": any run without a newline


def _class_char(text: str, i: int) -> tuple[str, int]:
    """One character of a class at ``text[i]`` (Go's ``getEsc``)."""
    n = len(text)
    if i >= n or text[i] in "-]":
        raise PatternSyntaxError
    if text[i] == "\\":
        i += 1
        if i >= n:
            raise PatternSyntaxError
    ch = text[i]
    i += 1
    if i >= n:
        raise PatternSyntaxError  # the class is not closed
    return ch, i


def _parse_class(text: str, i: int) -> tuple[tuple, int]:
    """The class starting at ``text[i] == "["``: Go's grammar ``[`` [``^``] { char | char
    ``-`` char } ``]`` with at least one range; returns the token and the index after it."""
    i += 1
    negated = i < len(text) and text[i] == "^"
    if negated:
        i += 1
    ranges: list[tuple[str, str]] = []
    while True:
        if i < len(text) and text[i] == "]" and ranges:
            return (_CLASS, negated, tuple(ranges)), i + 1
        lo, i = _class_char(text, i)
        hi = lo
        if text[i] == "-":
            hi, i = _class_char(text, i + 1)
        if lo > hi:
            raise PatternSyntaxError  # Go's regexp (patternmatcher) rejects "[z-a]" too
        ranges.append((lo, hi))


def _parse(text: str) -> tuple[tuple[tuple, ...], str]:
    """The tokens of ``text`` and its kind, patternmatcher's ``compile`` step by step."""
    tokens: list[tuple] = []
    kind = "exact"
    i, n = 0, len(text)
    while i < n:
        first = i == 0
        ch = text[i]
        i += 1
        if ch == "*":
            if i < n and text[i] == "*":
                i += 1
                if i < n and text[i] == "/":
                    i += 1  # "**/" is "**"
                if i >= n:
                    # a final "**": everything below; "dir/**" is a plain prefix
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        kind = "regex"
                    tokens.append((_REST,))
                else:
                    tokens.append((_DIRS,))
                    kind = "regex"
                if first:
                    kind = "suffix"
            else:
                tokens.append((_STAR,))
                kind = "regex"
        elif ch == "?":
            tokens.append((_ONE,))
            kind = "regex"
        elif ch == "\\":
            if i >= n:
                raise PatternSyntaxError  # filepath.Match: a trailing backslash is malformed
            tokens.append((_LIT, text[i]))
            i += 1
            kind = "regex"
        elif ch == "[":
            token, i = _parse_class(text, i - 1)
            tokens.append(token)
            kind = "regex"
        else:
            tokens.append((_LIT, ch))
    return tuple(tokens), kind


# -- the automaton ---------------------------------------------------------------------------

_DEAD = 0  # the id of the empty set of positions: nothing can match any more


class _Automaton:
    """The positions a pattern may be at while a path is read, as a lazily built DFA.

    A position is an index into the tokens (``len(tokens)``: all matched), or, for a
    ``_DIRS`` token at index i, ``len(tokens) + 1 + i``: inside its ``.*`` before the ``/``
    that ends it. Sets of positions get small ids; ``_rows[id]`` maps a character to the next
    id, filled in as characters are met.
    """

    #: transitions kept at most, whatever the input (then forgotten and rebuilt as needed)
    MAX_TRANSITIONS = 1 << 16

    def __init__(self, tokens: tuple[tuple, ...]) -> None:
        self.tokens = tokens
        self.end = len(tokens)
        self._reset()

    def _reset(self) -> None:
        self._ids: dict[frozenset, int] = {frozenset(): _DEAD}
        self._sets: list[frozenset] = [frozenset()]
        self._accepting: list[bool] = [False]
        self._rows: list[dict[str, int]] = [{}]
        self._size = 0
        self.start = self._id(self._closure((0,)))

    def _closure(self, positions) -> frozenset:
        """``positions`` and every position reachable from them reading nothing."""
        tokens, end = self.tokens, self.end
        out: set[int] = set()
        todo = list(positions)
        while todo:
            p = todo.pop()
            if p in out:
                continue
            out.add(p)
            if p < end:
                kind = tokens[p][0]
                if kind in (_STAR, _REST):
                    todo.append(p + 1)  # the run may be empty
                elif kind == _DIRS:
                    todo.append(p + 1)  # the group is optional
                    todo.append(end + 1 + p)  # or it starts
        return frozenset(out)

    def _id(self, positions: frozenset) -> int:
        found = self._ids.get(positions)
        if found is None:
            found = self._ids[positions] = len(self._sets)
            self._sets.append(positions)
            self._accepting.append(self.end in positions)
            self._rows.append({})
        return found

    def _advance(self, state: int, ch: str) -> int:
        tokens, end = self.tokens, self.end
        nxt: list[int] = []
        for p in self._sets[state]:
            if p > end:  # inside the ".*" of "(.*/)?" at index i
                i = p - end - 1
                if ch == "/":
                    nxt.append(i + 1)
                if ch != "\n":
                    nxt.append(p)
                continue
            if p == end:
                continue
            token = tokens[p]
            kind = token[0]
            if kind == _LIT:
                if ch == token[1]:
                    nxt.append(p + 1)
            elif kind == _ONE:
                if ch != "/":
                    nxt.append(p + 1)
            elif kind == _STAR:
                if ch != "/":
                    nxt.append(p)
            elif kind == _CLASS:
                inside = any(lo <= ch <= hi for lo, hi in token[2])
                if inside != token[1]:
                    nxt.append(p + 1)
            elif kind == _REST and ch != "\n":
                nxt.append(p)
            # _DIRS itself consumes nothing: its inside position does
        if self._size >= self.MAX_TRANSITIONS:
            positions = self._sets[state]
            self._reset()
            state = self._id(positions)
        target = self._id(self._closure(nxt)) if nxt else _DEAD
        self._rows[state][ch] = target
        self._size += 1
        return target

    def run(self, text: str, state: int | None = None) -> int:
        """The state after reading ``text`` from ``state`` (default: the start)."""
        rows = self._rows
        s = self.start if state is None else state
        for ch in text:
            nxt = rows[s].get(ch)
            if nxt is None:
                nxt = self._advance(s, ch)
                rows = self._rows  # a reset makes new rows
            if nxt == _DEAD:
                return _DEAD
            s = nxt
        return s

    def accepts(self, state: int) -> bool:
        return self._accepting[state]


# -- the pattern -----------------------------------------------------------------------------


class PathPattern:
    """One pattern, compiled. ``match(path)`` answers for a whole slash path (no parent
    matching: that is :class:`~.dockerignore.PatternMatcher`'s rule); ``may_match_below(dir)``
    whether some path strictly below ``dir`` could match (for a walker to skip a directory)."""

    __slots__ = ("text", "kind", "_automaton", "_head", "_tail")

    def __init__(self, text: str) -> None:
        tokens, kind = _parse(text)
        self.text = text
        self.kind = kind
        self._automaton = _Automaton(tokens) if kind == "regex" else None
        # the plain text a match must start and end with ("*.pyc": end ".pyc"): most paths
        # fail these string tests, and never reach the automaton
        i = 0
        while i < len(tokens) and tokens[i][0] == _LIT:
            i += 1
        j = len(tokens)
        while j > i and tokens[j - 1][0] == _LIT:
            j -= 1
        self._head = "".join(t[1] for t in tokens[:i])
        self._tail = "".join(t[1] for t in tokens[j:])

    def __repr__(self) -> str:
        return f"PathPattern({self.text!r})"

    def match(self, path: str) -> bool:
        kind = self.kind
        if kind == "exact":
            return path == self.text
        if kind == "prefix":
            return path.startswith(self.text[:-2])  # "dir/**": anything that starts "dir/"
        if kind == "suffix":
            suffix = self.text[2:]  # "**/foo" and "**foo": anything that ends so
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        head, tail = self._head, self._tail
        if len(path) < len(head) + len(tail) or not path.startswith(head) or not path.endswith(tail):
            return False
        a = self._automaton
        return a.accepts(a.run(path))

    def may_match_below(self, directory: str) -> bool:
        """Whether a path ``directory/...`` could match (``directory`` "" is the top)."""
        head = directory + "/" if directory else ""
        kind = self.kind
        if kind == "exact":
            # "a/" itself counts: a pattern with a trailing slash names the directory's own
            # entry, which a walker must still reach (hypothesis found the case)
            return self.text.startswith(head)
        if kind == "prefix":
            start = self.text[:-2]
            return head.startswith(start) or start.startswith(head)
        if kind == "suffix":
            return True
        return self._automaton.run(head) != _DEAD
