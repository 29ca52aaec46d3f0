"""``--format`` templates as docker and podman take them: a small part of Go's text/template.

What ``inspect --format`` and ``images --format`` users write::

    {{.Id}}                              a field (a path of them: {{.Config.Env}})
    {{json .Config}}                     a value as JSON
    {{index .Config.Labels "version"}}   an entry of a map (or of a list, by number)
    {{join .RepoTags ", "}}              a list joined
    {{len .RootFS.Layers}}               how many
    {{upper .Os}} {{lower .Os}}          case
    {{range .RepoTags}}{{.}} {{end}}     each element, ``.`` being the element
    {{println .Id}}                      with a newline

Values print as Go prints them: a list ``[a b]``, a map ``map[k:v]`` (keys sorted), a missing
map entry ``<no value>``, true/false, numbers as numbers. A field that does not exist is an
error naming it (Go: can't evaluate field X), as is anything else this subset does not know:
one :class:`TemplateError` line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import CapstoneError

__all__ = ["MAP_FIELDS", "Template", "TemplateError", "go_format"]


class TemplateError(CapstoneError):
    """A template that cannot be parsed or run (the message says where)."""


_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`|[^\s()]+')
_MISSING = object()


def go_format(value: Any) -> str:
    """``value`` as Go's fmt prints it with %v."""
    if value is None:
        return "<nil>"
    if value is _MISSING:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def _literal(token: str) -> str | None:
    if token.startswith('"') and token.endswith('"') and len(token) >= 2:
        try:
            return json.loads(token)
        except ValueError:
            raise TemplateError(f"bad string {token}") from None
    if token.startswith("`") and token.endswith("`") and len(token) >= 2:
        return token[1:-1]
    return None


#: fields that are maps in docker's and podman's documents (the others are structs: a field
#: they lack is an error, where a map just has no such key)
MAP_FIELDS = frozenset({"Labels", "ExposedPorts", "Volumes", "Annotations"})
#: fields that are lists there (null prints as [])
LIST_FIELDS = frozenset({"Env", "Cmd", "Entrypoint", "OnBuild", "Shell", "RepoTags", "RepoDigests", "Layers",
                         "History"})


class Template:
    """A parsed template; ``render(data)`` runs it on a JSON-like value. ``maps``: the names
    of fields whose values are maps (see :data:`MAP_FIELDS`)."""

    def __init__(self, text: str, *, maps: frozenset[str] = MAP_FIELDS) -> None:
        self.text = text
        self.maps = maps
        self.nodes, _ = self._parse(self._lex(text), 0, top=True)

    @staticmethod
    def _lex(text: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        pos = 0
        for m in _ACTION.finditer(text):
            literal = text[pos:m.start()]
            if m.group(1):  # {{- trims the space before
                literal = literal.rstrip()
            out.append(("text", literal))
            out.append(("action", m.group(2)))
            pos = m.end()
            if m.group(3):  # -}} trims the space after
                rest = text[pos:]
                pos += len(rest) - len(rest.lstrip())
        out.append(("text", text[pos:]))
        if "{{" in text[pos:] or any("{{" in t for k, t in out if k == "text"):
            raise TemplateError(f"template {text!r}: unclosed action")
        return out

    def _parse(self, tokens, i: int, *, top: bool):
        nodes: list = []
        while i < len(tokens):
            kind, value = tokens[i]
            i += 1
            if kind == "text":
                if value:
                    nodes.append(("text", value))
                continue
            words = _TOKEN.findall(value)
            if not words:
                raise TemplateError(f"template {self.text!r}: empty action {{{{}}}}")
            if words[0] == "end":
                if top:
                    raise TemplateError(f"template {self.text!r}: unexpected {{{{end}}}}")
                return nodes, i
            if words[0] == "range":
                if len(words) != 2:
                    raise TemplateError(f"template {self.text!r}: range takes one value: {{{{range .List}}}}")
                body, i = self._parse(tokens, i, top=False)
                nodes.append(("range", words[1], body))
                continue
            if words[0].startswith("/*"):
                continue  # a comment
            nodes.append(("call", words))
        if not top:
            raise TemplateError(f"template {self.text!r}: missing {{{{end}}}}")
        return nodes, i

    # running
    def render(self, data: Any) -> str:
        out: list[str] = []
        self._run(self.nodes, data, out)
        return "".join(out)

    def _run(self, nodes, dot: Any, out: list[str]) -> None:
        for node in nodes:
            if node[0] == "text":
                out.append(node[1])
            elif node[0] == "range":
                value = self._value(node[1], dot)
                if value is None or value is _MISSING:
                    continue
                if isinstance(value, Mapping):  # a map's values, by sorted key (as Go)
                    items = [value[k] for k in sorted(value)]
                elif isinstance(value, (list, tuple)):
                    items = list(value)
                else:
                    raise TemplateError(f"range can't iterate over {go_format(value)}")
                for item in items:
                    self._run(node[2], item, out)
            else:
                out.append(self._call(node[1], dot))

    def _value(self, word: str, dot: Any) -> Any:
        literal = _literal(word)
        if literal is not None:
            return literal
        if re.fullmatch(r"-?\d+", word):
            return int(word)
        if word == ".":
            return dot
        if not word.startswith("."):
            raise TemplateError(f'function "{word}" not defined')
        value = dot
        field = None  # the name the current value was reached by
        for name in word[1:].split("."):
            if isinstance(value, Mapping) and name in value:
                value, field = value[name], name
            elif isinstance(value, Mapping) and field in self.maps:
                return _MISSING  # a map without that key: Go prints <no value>
            else:
                raise TemplateError(f"can't evaluate field {name} in {word}")
        if value is None and field in LIST_FIELDS:  # Go's nil slice prints as []
            return []
        if value is None and field in self.maps:  # and a nil map as map[]
            return {}
        return value

    def _call(self, words: list[str], dot: Any) -> str:
        head, args = words[0], words[1:]
        function = FUNCTIONS.get(head)
        if function is None:
            if not head.startswith(".") and _literal(head) is None:
                raise TemplateError(f'function "{head}" not defined')
            if args:
                raise TemplateError(f"{head} is not a function: it takes no arguments")
            return go_format(self._value(head, dot))
        return function(*[self._value(a, dot) for a in args])


def _json(value: Any) -> str:
    return json.dumps(None if value is _MISSING else value, separators=(",", ":"))


def _index(value: Any, *keys: Any) -> str:
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key, _MISSING)
        elif isinstance(value, (list, tuple)) and isinstance(key, int) and 0 <= key < len(value):
            value = value[key]
        else:
            raise TemplateError(f"index of {go_format(value)} with {go_format(key)}")
    return go_format(value)


def _join(value: Any, sep: Any) -> str:
    if not isinstance(value, (list, tuple)):
        raise TemplateError(f"join of {go_format(value)}: not a list")
    return str(sep).join(go_format(v) for v in value)


def _len(value: Any) -> str:
    try:
        return str(len(value))
    except TypeError:
        raise TemplateError(f"len of {go_format(value)}") from None


FUNCTIONS: dict[str, Callable[..., str]] = {
    "json": _json,
    "index": _index,
    "join": _join,
    "len": _len,
    "upper": lambda v: go_format(v).upper(),
    "lower": lambda v: go_format(v).lower(),
    "println": lambda *v: " ".join(go_format(x) for x in v) + "\n",
    "print": lambda *v: "".join(go_format(x) for x in v),
}
