"""BuildKit's parser dump: the S-expression format of its parser test files.

One line per instruction::

    (keyword ["--flag=value" ...] "arg" "arg" ...)

The keyword lower case, the flags (if any) as Go prints a ``[]string`` with ``%q``, every
argument quoted like Go's ``strconv.Quote``; ONBUILD nests its trigger: ``(onbuild (run "x"))``.
Heredoc bodies are not part of the dump (BuildKit's ``Node.Dump`` does not print them): a
heredoc shows as the ``<<EOF`` word among the arguments.
"""

from __future__ import annotations

from collections.abc import Iterable

from .nodes import Node

_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def go_quote(s: str) -> str:
    """``strconv.Quote``: a double-quoted Go string literal.

    Printable characters stay; ``\\a \\b \\f \\n \\r \\t \\v \\\\ \\"`` use their short escapes;
    other control and non-printable characters become ``\\xNN`` (below 0x80), ``\\uNNNN`` or
    ``\\UNNNNNNNN``. Bytes that were not valid UTF-8 (kept as surrogate escapes when the file
    was read) print as ``\\xNN``, and U+FFFD stays U+FFFD, as in Go.
    """
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return '"' + s + '"'
    out = ['"']
    for c in s:
        e = _ESCAPES.get(c)
        if e is not None:
            out.append(e)
            continue
        o = ord(c)
        if 0xDC80 <= o <= 0xDCFF:  # an undecodable byte (surrogateescape)
            out.append(f"\\x{o - 0xDC00:02x}")
        elif c.isprintable():
            out.append(c)
        elif o < 0x80:
            out.append(f"\\x{o:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\\ufffd")  # Go cannot hold a lone surrogate; it is U+FFFD there
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def dump_node(node: Node) -> str:
    """One instruction in the dump format, without the surrounding parentheses."""
    parts = [node.keyword.lower()]
    if node.flags:
        parts.append("[" + " ".join(go_quote(f) for f in node.flags) + "]")
    for arg in node.args:
        if isinstance(arg, Node):
            parts.append("(" + dump_node(arg) + ")")
        else:
            parts.append(go_quote(arg))
    # Node.Dump trims the whole string (Go's TrimSpace): an empty keyword leaves no blank
    return " ".join(parts).strip(" ")


def dump(nodes: Iterable[Node]) -> str:
    """The whole file: one ``(...)`` line per instruction, newline-terminated."""
    return "".join("(" + dump_node(n) + ")\n" for n in nodes)
