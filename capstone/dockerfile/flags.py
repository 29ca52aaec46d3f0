"""Instruction flags (``--from=build``, ``--link``, ``--exclude=*.md``): declared per instruction.

BuildKit's BFlags rules: every flag word is ``--name`` or ``--name=value``; an undeclared name
is an error (with BuildKit's suggestion for a near miss: edit distance below 3); a flag may be given once unless it is a list
(``--mount``, ``--exclude``); a string flag needs ``=value``; a boolean flag takes no value or
``=true`` / ``=false`` (any case). Values are kept raw: ``--chown=$USER`` is expanded later.

Also here: Go's ``time.ParseDuration`` (HEALTHCHECK ``--interval=30s``) and ``ParseInt``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from part1_overview import model

from ..errors import CapstoneError

BOOL, STRING, STRINGS = "bool", "string", "strings"


class FlagError(CapstoneError):
    """A flag is wrong; the parser adds the file and line."""


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions) between two strings."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _match_case(option: str, orig: str) -> str:
    if orig == orig.lower():
        return option.lower()
    if orig == orig.upper():
        return option.upper()
    return option


def suggest(word: str, options: Iterable[str], case_sensitive: bool = True) -> str | None:
    """BuildKit's ``suggest.WrapError`` choice: the first option at edit distance < 3 with
    the smallest distance, or None (also None when ``word`` is itself an option).

    Case-insensitive lookups compare lower case and answer in the case ``word`` was written in
    (``FORM`` -> ``FROM``, ``form`` -> ``from``).
    """
    val = word if case_sensitive else word.lower()
    match = None
    best = 3  # hcl's threshold, which BuildKit copies
    for opt in options:
        cmp = opt if case_sensitive else opt.lower()
        if cmp == val:
            return None  # an exact match: the error is about something else
        dist = levenshtein(val, cmp)
        if dist < best:
            match = cmp if case_sensitive else _match_case(cmp, word)
            best = dist
    return match


def with_suggestion(message: str, word: str, options: Iterable[str],
                    case_sensitive: bool = True) -> str:
    """``message (did you mean X?)`` when :func:`suggest` finds an X, else ``message``."""
    near = suggest(word, options, case_sensitive)
    return f"{message} (did you mean {near}?)" if near else message


@model
class _Value:
    kind: str
    value: str | None = None
    values: tuple[str, ...] = ()
    given: bool = False


class FlagSet:
    """The flags one instruction accepts; :meth:`parse` checks the raw words against them."""

    def __init__(self, spec: dict[str, str]) -> None:
        self._flags = {name: _Value(kind) for name, kind in spec.items()}

    def parse(self, words: Iterable[str]) -> "FlagSet":
        for word in words:
            if word == "--":
                break  # POSIX: the end of the options
            if not word.startswith("--"):
                raise FlagError(f"arg should start with -- : {word}")
            flag_name, eq, value = word.partition("=")
            name = flag_name[2:]
            flag = self._flags.get(name)
            if flag is None:
                raise FlagError(with_suggestion(f"unknown flag: {flag_name}", name, self._flags))
            if flag.given and flag.kind != STRINGS:
                raise FlagError(f"duplicate flag specified: {flag_name}")
            flag.given = True
            if flag.kind == BOOL:
                if eq and value == "":
                    raise FlagError(f"missing a value on flag: {flag_name}")
                low = value.lower()
                if low in ("true", ""):
                    flag.value = "true"
                elif low == "false":
                    flag.value = "false"
                else:
                    raise FlagError(f"expecting boolean value for flag {flag_name}, not: {value}")
            elif not eq:
                raise FlagError(f"missing a value on flag: {flag_name}")
            elif flag.kind == STRING:
                flag.value = value
            else:
                flag.values += (value,)
        return self

    def given(self, name: str) -> bool:
        """Whether the flag was written at all (``--unpack=false`` is given)."""
        return self._flags[name].given

    def string(self, name: str) -> str | None:
        """A string flag's value, None when not given."""
        return self._flags[name].value

    def boolean(self, name: str) -> bool | None:
        """A boolean flag's value, None when not given."""
        v = self._flags[name].value
        return None if v is None else v == "true"

    def strings(self, name: str) -> tuple[str, ...]:
        return self._flags[name].values


# -- Go number and duration parsing ----------------------------------------------------------

_UNITS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000,
          "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")
_MAX_INT64 = (1 << 63) - 1


def parse_go_duration(text: str) -> int:
    """Go's ``time.ParseDuration``: ``1h30m``, ``1.5s``, ``-2ms`` -> nanoseconds."""
    orig = text
    invalid = FlagError(f'time: invalid duration "{orig}"')
    neg = False
    if text and text[0] in "+-":
        neg = text[0] == "-"
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise invalid
    total = 0
    while text:
        m = _DURATION_PART.match(text)
        whole, frac, unit = m.group(1), m.group(2), m.group(3)
        if not whole and not frac:
            raise invalid  # no digits before and after a dot
        if m.group(0) == "" or (not whole and frac is None):
            raise invalid
        if not unit:
            raise FlagError(f'time: missing unit in duration "{orig}"')
        # the unit runs until the next digit or dot
        if unit not in _UNITS:
            raise FlagError(f'time: unknown unit "{unit}" in duration "{orig}"')
        scale = _UNITS[unit]
        value = int(whole or "0") * scale
        if frac:
            value += int(frac) * scale // (10 ** len(frac))
        total += value
        if total > _MAX_INT64 + (1 if neg else 0):
            raise invalid
        text = text[m.end():]
    return -total if neg else total


def parse_go_int(text: str, bits: int = 32) -> int:
    """Go's ``strconv.ParseInt(text, 10, bits)`` with its error messages."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise FlagError(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    value = int(text)
    if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
        raise FlagError(f'strconv.ParseInt: parsing "{text}": value out of range')
    return value


def format_go_duration(ns: int) -> str:
    """Go's ``Duration.String`` for the values BuildKit prints in messages (``1ms``)."""
    if ns == 0:
        return "0s"
    if ns % 1_000_000_000 == 0:
        s = ns // 1_000_000_000
        h, rem = divmod(s, 3600)
        m, sec = divmod(rem, 60)
        out = (f"{h}h" if h else "") + (f"{m}m" if h or m else "") + f"{sec}s"
        return out
    if ns % 1_000_000 == 0 and ns < 1_000_000_000:
        return f"{ns // 1_000_000}ms"
    return f"{ns}ns"
