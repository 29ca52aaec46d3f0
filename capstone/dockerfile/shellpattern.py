"""The patterns of ``${v#p}``, ``${v%p}`` and ``${v/p/r}``, matched without backtracking.

BuildKit turns such a pattern into a regular expression (``*`` -> ``.*``, ``?`` -> ``.``) and
so did we, with Python's ``re``; but ``re`` backtracks, and ``${A#*a*a*a*a*b}`` on a value of
100 ``a`` took 5 s (each star more multiplies the time by the value's length). A shell pattern
has no alternation and no nesting, so it needs no backtracking at all:

* ``*`` and ``?`` never match a newline (Go's ``.``). A pattern is therefore *lines* (split
  where it holds a newline itself) of *pieces* (split at ``*``: characters and ``?``, a fixed
  length), and a match is its lines on consecutive lines of the value: the first ending one, the
  middle ones whole, the last starting one.
* Within a line, the pieces go left to right, each at its leftmost occurrence after the one
  before (a later place only leaves less room for the rest) with ``str.find`` (a piece with
  ``?``: a regular expression without quantifier). The shortest match ends there; the longest
  (greedy stars) ends at the last piece's rightmost occurrence.

The results are those of the leftmost-first regular expression search Go and Python do (a
randomized test compares them); the cost is O(len(value) * len(pattern)) at worst.
"""

from __future__ import annotations

import re

__all__ = ["ONE", "STAR", "ShellPattern"]

#: a pattern is a list of tokens: a character (itself), ONE (``?``) or STAR (``*``)
ONE = object()
STAR = object()


class _Piece:
    """Part of a pattern between two ``*``: characters and ``?``, so of a fixed length."""

    __slots__ = ("length", "literal", "rx", "rx_reversed")

    def __init__(self, tokens: list) -> None:
        self.length = len(tokens)
        if all(t is not ONE for t in tokens):
            self.literal: str | None = "".join(tokens)
            self.rx = self.rx_reversed = None
        else:
            self.literal = None
            # no quantifier: nothing to backtrack, a search is O(len(value) * len(piece))
            parts = ["." if t is ONE else re.escape(t) for t in tokens]
            self.rx = re.compile("".join(parts))
            self.rx_reversed = re.compile("".join(reversed(parts)))

    def find(self, value: str, start: int, stop: int) -> int:
        """The leftmost occurrence wholly inside ``value[start:stop]``, or -1."""
        if self.literal is not None:
            return value.find(self.literal, start, stop)
        m = self.rx.search(value, start, stop)
        return m.start() if m else -1

    def rfind(self, value: str, reversed_value: str, start: int, stop: int) -> int:
        """The rightmost occurrence wholly inside ``value[start:stop]``, or -1."""
        if self.literal is not None:
            return value.rfind(self.literal, start, stop)
        n = len(value)
        m = self.rx_reversed.search(reversed_value, n - stop, n - start)
        return n - m.end() if m else -1


class _Line:
    """A pattern without a newline, matched inside one line of the value: its pieces between
    stars, placed left to right, each at its leftmost occurrence after the one before (a later
    place only leaves less room for the rest)."""

    def __init__(self, tokens: list) -> None:
        pieces: list[list] = [[]]
        for t in tokens:
            if t is STAR:
                pieces.append([])
            else:
                pieces[-1].append(t)
        self.pieces = [_Piece(p) for p in pieces]
        self.reversed_tokens = list(reversed(tokens))

    def _middle(self, value: str, start: int, stop: int) -> int:
        """Where the first piece (at ``start``) and the middle ones end, leftmost; -1: no match."""
        first = self.pieces[0]
        if start + first.length > stop or first.find(value, start, start + first.length) != start:
            return -1
        end = start + first.length
        for piece in self.pieces[1:-1]:
            q = piece.find(value, end, stop)
            if q < 0:
                return -1
            end = q + piece.length
        return end

    def ends(self, value: str, start: int, stop: int, longest: bool, rev) -> int:
        """The end of the shortest (``longest``: longest) match starting at ``start`` inside
        ``[start, stop)``; -1 when there is none. ``rev()`` gives the reversed value."""
        end = self._middle(value, start, stop)
        if end < 0 or len(self.pieces) == 1:
            return end
        last = self.pieces[-1]
        if last.length == 0:
            return stop if longest else end
        q = last.rfind(value, rev(), end, stop) if longest else last.find(value, end, stop)
        return q + last.length if q >= 0 else -1

    def whole(self, value: str, start: int, stop: int) -> bool:
        """Does it match exactly ``value[start:stop]``?"""
        end = self._middle(value, start, stop)
        if end < 0:
            return False
        if len(self.pieces) == 1:
            return end == stop
        last = self.pieces[-1]
        return stop - last.length >= end and last.find(value, stop - last.length, stop) == stop - last.length

    def search(self, value: str, start: int, stop: int, rev) -> tuple[int, int] | None:
        """The leftmost match inside ``[start, stop)``, the longest there."""
        first = self.pieces[0]
        at = start if first.length == 0 else first.find(value, start, stop)
        if at < 0:
            return None
        end = self.ends(value, at, stop, True, rev)  # a later start can only do worse
        return (at, end) if end >= 0 else None


class ShellPattern:
    """A pattern as tokens (see the module page): :meth:`prefix` for ``${v#p}`` and
    ``${v##p}`` (``${v%p}`` is a prefix of the reversed value, with the tokens reversed),
    :meth:`search` for ``${v/p/r}``."""

    def __init__(self, tokens: list) -> None:
        lines: list[list] = [[]]
        for t in tokens:
            if t == "\n":
                lines.append([])
            else:
                lines[-1].append(t)
        self.lines = [_Line(t) for t in lines]
        self.first_reversed = _Line(self.lines[0].reversed_tokens)
        self._rev: tuple[str, str] | None = None

    def _reversed(self, value: str):
        def rev() -> str:
            if self._rev is None or self._rev[0] is not value:
                self._rev = (value, value[::-1])
            return self._rev[1]

        return rev

    @staticmethod
    def _line_end(value: str, start: int) -> int:
        stop = value.find("\n", start)
        return len(value) if stop < 0 else stop

    def _rest(self, value: str, line_start: int, longest: bool, rev) -> int:
        """The lines after the first, from the value's line at ``line_start``: -1, or where
        the match ends."""
        at = line_start
        for line in self.lines[1:-1]:
            if at > len(value):
                return -1
            stop = self._line_end(value, at)
            if not line.whole(value, at, stop):
                return -1
            at = stop + 1
        if at > len(value):
            return -1
        return self.lines[-1].ends(value, at, self._line_end(value, at), longest, rev)

    def prefix(self, value: str, longest: bool) -> int | None:
        """The end of the shortest (``longest``: longest) match at the start of ``value``."""
        rev = self._reversed(value)
        stop = self._line_end(value, 0)
        if len(self.lines) == 1:
            end = self.lines[0].ends(value, 0, stop, longest, rev)
        else:
            end = self._rest(value, stop + 1, longest, rev) if self.lines[0].whole(value, 0, stop) else -1
        return end if end >= 0 else None

    def search(self, value: str, pos: int) -> tuple[int, int] | None:
        """The leftmost match at or after ``pos``, the longest there (what a leftmost-first
        search with greedy stars finds, as Go's and Python's): (start, end), or None."""
        rev = self._reversed(value)
        n = len(value)
        line_start = pos
        pieces = [p for p in self.lines[0].pieces if p.length]
        while line_start <= n:
            # the first line of a match holds every piece of the pattern's first line: go
            # straight to the line of the farthest next occurrence (str.find, across lines)
            farthest = line_start
            for piece in pieces:
                q = piece.find(value, line_start, n)
                if q < 0:
                    return None
                farthest = max(farthest, q)
            if farthest > line_start:
                line_start = max(line_start, value.rfind("\n", 0, farthest) + 1)
            stop = self._line_end(value, line_start)
            if len(self.lines) == 1:
                found = self.lines[0].search(value, line_start, stop, rev)
                if found is not None:
                    return found
            else:
                # the leftmost start of a match of the first line that ends this line: the
                # longest match of the reversed first line at the start of the reversed line
                back = self.first_reversed.ends(rev(), n - stop, n - line_start, True, self._reversed(rev()))
                if back >= 0:
                    end = self._rest(value, stop + 1, True, rev)
                    if end >= 0:
                        return n - back, end
            line_start = stop + 1
        return None
