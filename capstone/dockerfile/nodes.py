"""The low-level syntax tree: one :class:`Node` per instruction, as BuildKit's parser builds it.

A node is the keyword as written, the ``--flags`` split off the front, and the arguments shaped
by the instruction's *line parser* (BuildKit's ``line_parsers.go`` rules, reproduced here):

==========================  ==================================================================
instructions                arguments
==========================  ==================================================================
RUN CMD ENTRYPOINT SHELL    JSON array of strings (exec form), else the whole rest as one string
ADD COPY VOLUME             JSON array of strings, else split on whitespace
FROM EXPOSE                 split on whitespace
ENV LABEL                   ``key value sep`` triples; sep is ``=`` or ``""`` (legacy ``ENV k v``)
ARG                         words (quotes kept)
MAINTAINER STOPSIGNAL       the rest as one string
USER WORKDIR                the rest as one string
HEALTHCHECK                 the type word, then like CMD
ONBUILD                     one child node (the trigger)
anything else               one empty string (an unknown instruction is rejected later)
==========================  ==================================================================

A JSON array with a non-string element is an error; anything else that is not a JSON array
falls back to the shell form. Nothing is expanded or unquoted here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from part1_overview import model

from ..errors import CapstoneError
from .instructions import Heredoc

# Go's unicode.IsSpace (Python's str.isspace also accepts \x1c-\x1f, Go does not).
GO_SPACE_CHARS = ("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
                  "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
GO_SPACE = frozenset(GO_SPACE_CHARS)
_GO_SPACE_STR = GO_SPACE_CHARS
# BuildKit's reWhitespace: ASCII blanks only.
WHITESPACE_RE = re.compile(r"[\t\v\f\r ]+")


def go_trim_space(s: str) -> str:
    """Go's strings.TrimSpace."""
    return s.strip(_GO_SPACE_STR)


def go_trim_left_space(s: str) -> str:
    return s.lstrip(_GO_SPACE_STR)


class LineError(CapstoneError):
    """A rule of a line parser is broken; the parser adds the file and line."""


@model(frozen=True)
class Node:
    """One instruction of the syntax tree.

    ``keyword`` as written (case kept); ``args`` strings, or for ONBUILD one child Node;
    ``flags`` the raw ``--flag[=value]`` words; ``json`` True for the exec (JSON) form;
    ``original`` the logical line; ``start``/``end`` its lines; ``heredocs`` its here-documents.
    """

    keyword: str
    args: tuple[str | "Node", ...] = ()
    flags: tuple[str, ...] = ()
    json: bool = False
    original: str = ""
    start: int = 0
    end: int = 0
    heredocs: tuple[Heredoc, ...] = ()


# -- splitting the keyword and the flags off -------------------------------------------------


def split_command(line: str) -> tuple[str, tuple[str, ...], str]:
    """``RUN --mount=x  echo hi`` -> ("RUN", ("--mount=x",), "echo hi")."""
    parts = WHITESPACE_RE.split(go_trim_space(line), maxsplit=1)
    if len(parts) < 2:
        return parts[0], (), ""
    rest, flags = extract_builder_flags(parts[1])
    return parts[0], flags, go_trim_space(rest)


def extract_builder_flags(line: str) -> tuple[str, tuple[str, ...]]:
    """Take the leading ``--words`` (quotes and backslashes processed) off ``line``.

    A word that does not start with ``--`` ends the flags; so does a bare ``--``.
    """
    words: list[str] = []
    n = len(line)
    pos = 0
    while True:
        while pos < n and line[pos] in GO_SPACE:
            pos += 1
        if pos == n:
            return "", tuple(words)
        if not line.startswith("--", pos):
            return line[pos:], tuple(words)
        word: list[str] = []
        blank_ok = False
        quote = ""
        while pos < n:
            ch = line[pos]
            if quote:
                if ch == quote:
                    quote = ""
                elif ch == "\\":
                    if pos + 1 == n:
                        quote = ""
                    else:
                        pos += 1
                        word.append(line[pos])
                else:
                    word.append(ch)
                pos += 1
                continue
            if ch in GO_SPACE:
                break
            if ch in "'\"":
                quote = ch
                blank_ok = True
            elif ch == "\\":
                if pos + 1 < n:
                    pos += 1
                    word.append(line[pos])
            else:
                word.append(ch)
            pos += 1
        text = "".join(word)
        if pos < n:  # stopped at a blank
            if text == "--":
                return line[pos:], tuple(words)
            if blank_ok or text:
                words.append(text)
        else:
            if text != "--" and (blank_ok or text):
                words.append(text)
            return "", tuple(words)


# -- the line parsers ----------------------------------------------------------------------


def parse_words(rest: str, escape: str) -> list[str]:
    """Split on blanks, keeping quotes and escapes in the words (BuildKit's parseWords)."""
    words: list[str] = []
    word: list[str] = []
    in_word = False
    quote = ""
    blank_ok = False
    n = len(rest)
    pos = 0
    while pos < n:
        ch = rest[pos]
        if not in_word:
            if ch in GO_SPACE:
                pos += 1
                continue
            in_word = True
        if not quote:
            if ch in GO_SPACE:
                if blank_ok or word:
                    words.append("".join(word))
                word = []
                blank_ok = False
                in_word = False
                pos += 1
                continue
            if ch == "'" or ch == '"':
                quote = ch
                blank_ok = True
            elif ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue  # an escape at the very end is dropped
                word.append(ch)
                pos += 1
                ch = rest[pos]
            word.append(ch)
            pos += 1
            continue
        # inside quotes
        if ch == quote:
            quote = ""
        elif ch == escape and quote != "'":
            if pos + 1 == n:
                quote = ""
                pos += 1
                continue
            word.append(ch)
            pos += 1
            ch = rest[pos]
        word.append(ch)
        pos += 1
    if in_word and (blank_ok or word):
        words.append("".join(word))
    return words


_NOT_STRINGS = "when using JSON array syntax, arrays must be comprised of strings only"


def _no_constants(name: str):
    raise ValueError(name)  # NaN/Infinity are not JSON for Go


_DECODER = json.JSONDecoder(parse_constant=_no_constants)


def parse_json(rest: str) -> tuple[str, ...] | None:
    """The strings of a JSON array, or None when ``rest`` is not a JSON array at all."""
    rest = go_trim_left_space(rest)
    if not rest.startswith("["):
        return None
    try:
        value, end = _DECODER.raw_decode(rest)
    except (ValueError, RecursionError):
        return None
    if rest[end:].strip(" \t\r\n"):  # json.Unmarshal: nothing but blanks may follow
        return None
    if not isinstance(value, list):
        return None
    for item in value:
        if not isinstance(item, str):
            raise LineError(_NOT_STRINGS)
    return tuple(_fix_surrogates(s) for s in value)


def _fix_surrogates(s: str) -> str:
    # Go decodes an unpaired \ud800 escape to U+FFFD
    if any("\ud800" <= c <= "\udfff" for c in s):
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in s)
    return s


Args = tuple[tuple, bool]  # (args, json)


def parse_ignore(rest: str, escape: str) -> Args:
    return ("",), False


def parse_string(rest: str, escape: str) -> Args:
    return ((rest,) if rest else ()), False


def parse_whitespace_delimited(rest: str, escape: str) -> Args:
    if not rest:
        return (), False
    return tuple(WHITESPACE_RE.split(rest)), False


def parse_maybe_json(rest: str, escape: str) -> Args:
    if not rest:
        return (), False
    arr = parse_json(rest)
    if arr is not None:
        return arr, True
    return (rest,), False


def parse_maybe_json_to_list(rest: str, escape: str) -> Args:
    arr = parse_json(rest)
    if arr is not None:
        return arr, True
    return parse_whitespace_delimited(rest, escape)


def parse_name_or_name_val(rest: str, escape: str) -> Args:
    return tuple(parse_words(rest, escape)), False


def _parse_name_val(rest: str, escape: str, keyword: str) -> Args:
    words = parse_words(rest, escape)
    if not words:
        return (), False
    if "=" not in words[0]:  # legacy: KEY value...
        parts = WHITESPACE_RE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise LineError(f"{keyword} must have two arguments")
        return (parts[0], parts[1], ""), False
    out: list[str] = []
    for word in words:
        if "=" not in word:
            from .dump import go_quote

            raise LineError(f"Syntax error - can't find = in {go_quote(word)}. "
                            "Must be of the form: name=value")
        key, _, value = word.partition("=")
        out += (key, value, "=")
    return tuple(out), False


def parse_env(rest: str, escape: str) -> Args:
    return _parse_name_val(rest, escape, "ENV")


def parse_label(rest: str, escape: str) -> Args:
    return _parse_name_val(rest, escape, "LABEL")


def parse_health_config(rest: str, escape: str) -> Args:
    sep = 0
    n = len(rest)
    while sep < n and rest[sep] not in GO_SPACE:
        sep += 1
    if sep == 0:
        return (), False
    nxt = sep
    while nxt < n and rest[nxt] in GO_SPACE:
        nxt += 1
    cmd, is_json = parse_maybe_json(rest[nxt:], escape)
    return (rest[:sep], *cmd), is_json


LINE_PARSERS: dict[str, Callable[[str, str], Args]] = {
    "add": parse_maybe_json_to_list,
    "arg": parse_name_or_name_val,
    "cmd": parse_maybe_json,
    "copy": parse_maybe_json_to_list,
    "entrypoint": parse_maybe_json,
    "env": parse_env,
    "expose": parse_whitespace_delimited,
    "from": parse_whitespace_delimited,
    "healthcheck": parse_health_config,
    "label": parse_label,
    "maintainer": parse_string,
    "run": parse_maybe_json,
    "shell": parse_maybe_json,
    "stopsignal": parse_string,
    "user": parse_string,
    "volume": parse_maybe_json_to_list,
    "workdir": parse_string,
}


def node_from_line(line: str, escape: str) -> Node:
    """Split ``line`` into keyword, flags and arguments (ONBUILD: a child node)."""
    keyword, flags, rest = split_command(line)
    lower = keyword.lower()
    if lower == "onbuild":
        args: tuple = (node_from_line(rest, escape),) if rest else ()
        is_json = False
    else:
        args, is_json = LINE_PARSERS.get(lower, parse_ignore)(rest, escape)
    return Node(keyword, args, flags, is_json, line)
