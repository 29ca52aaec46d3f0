"""Here-documents: finding ``<<EOF`` words on a RUN / COPY / ADD line.

BuildKit's rules:

* the line is split into shell words (backslash escapes, quotes kept); every word of the form
  ``[fd]<<[-]WORD`` (``WORD`` without ``<``) starts a here-document, in order of appearance;
* ``WORD`` must be one shell word; with its quotes removed it is the terminator; if any part of
  it was quoted (``"EOF"``, ``'EOF'``, ``E"O"F``) the body is not expanded;
* ``<<-`` strips leading tabs from the body lines and from the terminator line;
* bodies follow the instruction line in the order of the words; each ends at a line equal to
  its terminator (line endings ignored). A missing terminator is an error.

Only the words are found here; the parser reads the bodies.
"""

from __future__ import annotations

import re

from part1_overview import model

from .nodes import GO_SPACE

HEREDOC_RE = re.compile(r"(\d*)<<(-?)([^<]*)")


@model(frozen=True)
class HeredocWord:
    """A ``<<EOF`` word: the terminator ``name``, whether the body is expanded, ``<<-``, fd."""

    name: str
    expand: bool
    chomp: bool
    fd: int


class _LexError(ValueError):
    pass


def split_shell_words(text: str, *, raw_quotes: bool, raw_escapes: bool) -> list[str]:
    """Split ``text`` into shell words without expanding anything.

    ``raw_quotes`` keeps quote characters in the words, ``raw_escapes`` keeps backslashes.
    ``$name`` and ``${...}`` are copied as they are. Unterminated quotes raise ``_LexError``.
    """
    words: list[str] = []
    word: list[str] = []
    started = False
    n = len(text)
    i = 0
    while i < n:
        ch = text[i]
        if ch in GO_SPACE:
            if started:
                words.append("".join(word))
                word, started = [], False
            i += 1
            continue
        started = True
        if ch == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise _LexError("unexpected end of statement while looking for matching single-quote")
            word.append(text[i:end + 1] if raw_quotes else text[i + 1:end])
            i = end + 1
        elif ch == '"':
            if raw_quotes:
                word.append('"')
            i += 1
            while True:
                if i >= n:
                    raise _LexError("unexpected end of statement while looking for matching double-quote")
                c = text[i]
                if c == '"':
                    if raw_quotes:
                        word.append('"')
                    i += 1
                    break
                if c == "\\" and i + 1 < n:
                    if raw_escapes:
                        word.append(c)
                    word.append(text[i + 1])
                    i += 2
                    continue
                word.append(c)
                i += 1
        elif ch == "\\":
            if i + 1 < n:
                if raw_escapes:
                    word.append(ch)
                word.append(text[i + 1])
                i += 2
            else:
                i += 1
        else:
            word.append(ch)
            i += 1
    if started:
        words.append("".join(word))
    return words


def parse_heredoc_word(word: str) -> HeredocWord | None:
    """The here-document a word starts (``<<EOF``, ``<<-'EOF'``, ``3<<EOF``) or None."""
    m = HEREDOC_RE.fullmatch(word)
    if m is None or not m.group(3):
        return None
    rest = m.group(3)
    try:
        plain = split_shell_words(rest, raw_quotes=False, raw_escapes=False)
        if len(plain) != 1:
            return None
        raw = split_shell_words(rest, raw_quotes=True, raw_escapes=False)
    except _LexError:
        return None
    if len(raw) != 1:
        return None
    name = plain[0]
    quotes = name.count("'") + name.count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return HeredocWord(name=name, expand=quotes == raw_quotes, chomp=m.group(2) == "-",
                       fd=int(m.group(1)) if m.group(1) else 0)


def heredocs_in_line(line: str) -> list[HeredocWord]:
    """The here-documents started on an instruction line, in order."""
    if "<<" not in line:
        return []
    try:
        words = split_shell_words(line, raw_quotes=True, raw_escapes=True)
    except _LexError:
        return []  # BuildKit ignores a line it cannot split: no heredocs then
    out = []
    for w in words:
        if "<<" in w:
            h = parse_heredoc_word(w)
            if h is not None:
                out.append(h)
    return out
