"""Parser directives: ``# syntax=``, ``# escape=``, ``# check=`` at the top of a Dockerfile.

BuildKit's rules, enforced here:

* a directive is a line ``#`` key ``=`` value, with any non-newline whitespace around ``#``,
  the key and ``=``; keys are case-insensitive (stored lower case), values are kept as written
  (trailing whitespace dropped);
* directives are only looked for at the very top: the first line that is not a directive (an
  instruction, a blank line, an ordinary comment, an unknown key) ends the search for good;
* each key may appear once ("only one escape parser directive can be used");
* ``escape`` is a backslash or a backtick; it changes the line-continuation character and the
  escape character of the word rules;
* ``check`` is ``skip=<rule,...>|all``, ``error=<bool>``, ``experimental=<rule,...>|all``,
  joined with ``;``.

BuildKit reads ``syntax`` and ``check`` a second time, on their own (``DetectSyntax`` /
``ParseDirective``), and that reading is the one that counts for them: a ``#!`` first line is
skipped (so ``# syntax=`` may follow a shebang, while ``# escape=`` may not), lines are taken as
they are (a directive indented with blanks is not seen), and a repeated key is not an error
there (the first one counts). :func:`detect_directives` is that reading.
"""

from __future__ import annotations

import re

from part1_overview import model

from ..errors import CapstoneError
from .instructions import Directive

KNOWN_DIRECTIVES = ("syntax", "escape", "check")

# Go's \s is [\t\n\f\r ] (no \v); the value is lazy so trailing blanks are not part of it.
_DIRECTIVE_RE = re.compile(r"#[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*")


class DirectiveError(CapstoneError):
    """A directive breaks a rule; the parser turns it into a ParseError with the line."""


class DirectiveScanner:
    """Feeds the lines at the top of a file, one by one, and collects the directives.

    :meth:`feed` returns the :class:`Directive` a line holds, or None; once a line is not a
    directive the scanner is ``done`` and ignores everything after it.
    """

    def __init__(self) -> None:
        self.done = False
        self.directives: list[Directive] = []
        self.escape = "\\"

    def feed(self, line: str, lineno: int) -> Directive | None:
        if self.done:
            return None
        m = _DIRECTIVE_RE.fullmatch(line)
        if m is None:
            self.done = True
            return None
        key = m.group(1).lower()
        if key not in KNOWN_DIRECTIVES:
            self.done = True
            return None
        if any(d.name == key for d in self.directives):
            raise DirectiveError(f"only one {key} parser directive can be used")
        value = m.group(2)
        if key == "escape":
            if value not in ("\\", "`"):
                raise DirectiveError(f"invalid escape token '{value}' does not match ` or \\")
            self.escape = value
        directive = Directive(key, value, lineno)
        self.directives.append(directive)
        return directive


@model(frozen=True)
class CheckOptions:
    """The ``# check=`` directive (and ``--check``): which build checks run and how."""

    skip: frozenset[str] = frozenset()
    skip_all: bool = False
    error: bool = False
    experimental: frozenset[str] = frozenset()
    experimental_all: bool = False

    def enabled(self, rule: str) -> bool:
        return not self.skip_all and rule not in self.skip


_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_GO_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_go_bool(text: str) -> bool:
    """Go's strconv.ParseBool."""
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def parse_check(value: str) -> CheckOptions:
    """Parse a ``check`` directive value like ``skip=JSONArgsRecommended;error=true``."""
    value = value.strip(" \t\r\n\f\v")
    if not value:
        return CheckOptions()
    skip: set[str] = set()
    experimental: set[str] = set()
    skip_all = experimental_all = error = False
    for part in value.split(";"):
        key, eq, val = part.partition("=")
        if not eq:
            raise DirectiveError(f'invalid check option "{part}"')
        key, val = key.strip(), val.strip()
        if key == "skip":
            if val == "all":
                skip_all = True
            else:
                skip.update(r.strip() for r in val.split(",") if r.strip())
        elif key == "experimental":
            if val == "all":
                experimental_all = True
            else:
                experimental.update(r.strip() for r in val.split(",") if r.strip())
        elif key == "error":
            try:
                error = parse_go_bool(val)
            except ValueError as exc:
                raise DirectiveError(f'failed to parse check option "{part}": {exc}') from None
        else:
            raise DirectiveError(f'invalid check option "{key}"')
    return CheckOptions(frozenset(skip), skip_all, error, frozenset(experimental), experimental_all)


_RAW_DIRECTIVE_RE = re.compile(r"#[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*")


def detect_directives(text: str, keys: tuple[str, ...] = ("syntax", "check")) -> list[Directive]:
    """``syntax`` and ``check`` as BuildKit's ``ParseDirective`` finds them (see above)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    lineno = 0
    if lines and lines[0].startswith("#!"):
        lines = lines[1:]
        lineno = 1
    seen: dict[str, Directive] = {}
    for line in lines:
        lineno += 1
        if line.endswith("\r"):
            line = line[:-1]
        m = _RAW_DIRECTIVE_RE.fullmatch(line)
        if m is None:
            break
        key = m.group(1).lower()
        if key not in KNOWN_DIRECTIVES or key in seen:
            break  # an unknown key ends the block; a repeat is an error that stops the scan
        seen[key] = Directive(key, m.group(2), lineno)
    return [d for k, d in seen.items() if k in keys]
