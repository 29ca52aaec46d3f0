"""Reading a Dockerfile: lines -> logical instructions -> syntax tree -> typed instructions.

The line rules are BuildKit's (``frontend/dockerfile/parser/parser.go``):

* a UTF-8 byte-order mark at the start is dropped; lines end at ``\\n`` (a ``\\r`` before it
  is dropped too);
* leading whitespace of an instruction's first line is ignored; a line whose first non-blank
  character is ``#`` is a comment (unless it is a parser directive at the top of the file);
* an escape character (``\\`` or the ``escape`` directive's backtick) at the end of a line,
  optionally followed by blanks, continues the instruction on the next line, unless it is
  itself escaped; continuation lines keep their leading whitespace; comment lines inside a
  continued instruction are dropped; blank continuation lines are skipped (with a warning,
  BuildKit's ``NoEmptyContinuation``); a continuation at the end of the file just ends it;
* after a RUN/COPY/ADD line (or ONBUILD of one) that is not in exec form, the bodies of its
  ``<<EOF`` here-documents follow, in order;
* keywords are case-insensitive; a physical line may hold at most 65535 bytes.

Then every instruction is checked (:mod:`.commands`) and the file's shape: only ARG may
come before the first FROM, and there must be a FROM.
"""

from __future__ import annotations

import os
from pathlib import Path

from part1_overview import model

from ..errors import ParseError
from .commands import InstructionError, instruction_from_node
from .directives import DirectiveError, DirectiveScanner, detect_directives, parse_check
from .flags import FlagError
from .heredoc import heredocs_in_line
from .instructions import (
    Arg,
    Directive,
    Dockerfile,
    From,
    Heredoc,
    Instruction,
    ParseWarning,
)
from .nodes import GO_SPACE_CHARS, LineError, Node, node_from_line

MAX_LINE_BYTES = 65535
_SPACES = GO_SPACE_CHARS


@model(frozen=True)
class SyntaxTree:
    """The parser's first result: nodes plus what the line layer learnt (directives, escape)."""

    file: str
    nodes: tuple[Node, ...]
    directives: tuple[Directive, ...]
    escape: str
    warnings: tuple[ParseWarning, ...]


def _split_lines(text: str) -> list[str]:
    # only "\n" ends a line (str.splitlines would also split on \r, \v, \x1c, \u2028 ...)
    lines = text.split("\n")
    last = lines.pop()
    out = [line + "\n" for line in lines]
    if last:
        out.append(last)
    return out


def _trim_continuation(line: str, escape: str) -> tuple[str, bool]:
    """(line without its continuation escape, True when the instruction ends on this line)."""
    body = line.rstrip(" \t")
    if body.endswith(escape) and (len(body) == 1 or body[-2] != escape):
        return body[:-1], False
    return line, True


def decode(data: bytes | str) -> str:
    """Text of a Dockerfile: UTF-8, undecodable bytes kept as surrogate escapes (dumped as \\xNN)."""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="surrogateescape")


class _Lines:
    """The lines of a Dockerfile read one at a time, as BuildKit's scanner reads them: each
    line is fed to the directive scanner, a comment line reads as empty."""

    def __init__(self, text: str, file: str) -> None:
        self.lines = _split_lines(text)
        if self.lines and self.lines[0].startswith("\ufeff"):
            self.lines[0] = self.lines[0][1:]
        self.file = file
        self.directives = DirectiveScanner()
        self.i = 0  # the next line to read; also its number minus one

    def err(self, message: str, line: int | None, end: int | None = None) -> ParseError:
        return ParseError(message, file=self.file, line=line, end_line=end)

    @property
    def more(self) -> bool:
        return self.i < len(self.lines)

    def raw(self) -> str:
        """The next line as it is (its number is then ``self.i``)."""
        self.i += 1
        return self.lines[self.i - 1]

    def token(self, raw: str, strip: bool) -> str:
        """A line's text: without its line ending (and leading blanks with ``strip``); a
        comment is empty. Too long a line, or a bad directive, is a ParseError."""
        at = self.i
        if len(raw) > MAX_LINE_BYTES // 4 and len(raw.rstrip("\r\n").encode("utf-8", "surrogateescape")) > MAX_LINE_BYTES:
            raise self.err(f"dockerfile line greater than max allowed size of {MAX_LINE_BYTES}", at)
        token = raw.rstrip("\r\n")
        if strip:
            token = token.lstrip(_SPACES)
        try:
            self.directives.feed(token, at)
        except DirectiveError as exc:
            raise self.err(str(exc), at) from None
        return "" if token.startswith("#") else token

    def instruction(self) -> tuple[str, bool] | None:
        """The next instruction, its continuation lines joined: (text, whether an empty
        continuation line was skipped), or None for an empty or comment line."""
        token = self.token(self.raw(), True)
        line, ended = _trim_continuation(token, self.directives.escape)
        if ended and not line:
            return None
        parts = [line]
        empty_continuation = False
        while not ended and self.more:
            raw = self.raw()
            token = self.token(raw, False)
            if raw.lstrip(_SPACES).startswith("#"):
                continue  # a comment inside a continued instruction
            if not token.lstrip(_SPACES):
                empty_continuation = True
                continue
            line, ended = _trim_continuation(token, self.directives.escape)
            parts.append(line)
        return "".join(parts), empty_continuation

    def heredoc(self, word, start: int) -> Heredoc:
        """The body of a heredoc, up to its terminator line."""
        content: list[str] = []
        while self.more:
            raw = self.raw()
            candidate = raw.rstrip("\r\n")
            if word.chomp:
                candidate = candidate.lstrip("\t")
            if candidate == word.name:
                return Heredoc(word.name, "".join(content), word.expand, word.chomp, word.fd)
            content.append(raw)
        raise self.err("unterminated heredoc", start, self.i)


def parse_syntax_tree(data: bytes | str, file: str = "Dockerfile") -> SyntaxTree:
    """Split a Dockerfile into nodes (BuildKit's ``parser.Parse``); no instruction checks yet."""
    text = decode(data)
    reader = _Lines(text, file)
    nodes: list[Node] = []
    warnings: list[ParseWarning] = []
    while reader.more:
        start = reader.i + 1
        read = reader.instruction()
        if read is None:
            continue
        full, empty_continuation = read
        if empty_continuation:
            warnings.append(ParseWarning("NoEmptyContinuation", f"Empty continuation line found in: {full}", reader.i))
        try:
            node = node_from_line(full, reader.directives.escape)
        except LineError as exc:
            raise reader.err(str(exc), start, reader.i) from None
        heredocs = ()
        if "<<" in full and _can_contain_heredoc(node):
            heredocs = tuple(reader.heredoc(word, start) for word in heredocs_in_line(full))
        nodes.append(Node(node.keyword, node.args, node.flags, node.json, node.original, start, reader.i, heredocs))
    if not nodes:
        raise reader.err("file with no instructions", None)
    return SyntaxTree(file, tuple(nodes), _checked_directives(reader, text), reader.directives.escape, tuple(warnings))


def _checked_directives(reader: _Lines, text: str) -> tuple:
    """The directives, by line: escape from the parser's own scan, syntax and check from
    BuildKit's second reading (a malformed check is a ParseError)."""
    found = [d for d in reader.directives.directives if d.name == "escape"] + detect_directives(text)
    for d in found:
        if d.name == "check":
            try:
                parse_check(d.value)
            except DirectiveError as exc:
                raise reader.err(str(exc), d.line) from None
    return tuple(sorted(found, key=lambda d: d.line))


def _can_contain_heredoc(node: Node) -> bool:
    if node.keyword.lower() == "onbuild" and node.args and isinstance(node.args[0], Node):
        node = node.args[0]
    return node.keyword.lower() in ("run", "copy", "add") and not node.json


def instructions_from_tree(tree: SyntaxTree) -> tuple[Instruction, ...]:
    """Type-check every node of a syntax tree (no checks of the file's stage structure)."""
    out = []
    for node in tree.nodes:
        try:
            out.append(instruction_from_node(node))
        except (InstructionError, FlagError) as exc:
            raise ParseError(str(exc), file=tree.file, line=node.start, end_line=node.end) from None
    return tuple(out)


def parse_instructions(data: bytes | str, file: str = "Dockerfile") -> tuple[Instruction, ...]:
    """Instructions of a fragment (an ONBUILD trigger, a test snippet): no FROM required."""
    return instructions_from_tree(parse_syntax_tree(data, file))


def parse(data: bytes | str, file: str = "Dockerfile") -> Dockerfile:
    """Parse a whole Dockerfile: every instruction checked, ARGs only before the first FROM."""
    tree = parse_syntax_tree(data, file)
    instructions = instructions_from_tree(tree)
    seen_from = False
    for ins in instructions:
        if isinstance(ins, From):
            seen_from = True
        elif not seen_from and not isinstance(ins, Arg):
            raise ParseError(f"no build stage in current context ({ins.keyword} before the first "
                             "FROM; only ARG may come before it)", file=file, line=ins.location.start,
                             end_line=ins.location.end)
    if not seen_from:
        raise ParseError("dockerfile contains no stages to build (no FROM)", file=file)
    return Dockerfile(file=file, instructions=instructions, directives=tree.directives,
                      escape=tree.escape, warnings=tree.warnings, ast=tree.nodes)


def parse_file(path: str | os.PathLike, name: str | None = None) -> Dockerfile:
    """Parse the Dockerfile at ``path``; messages name it ``name`` (default: the path as given)."""
    return parse(Path(path).read_bytes(), file=name if name is not None else os.fspath(path))
