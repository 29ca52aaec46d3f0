"""The value of ``RUN --mount=...``: comma-separated ``key=value`` fields (CSV quoting).

BuildKit reads the value with a CSV reader (so ``"source=a,b"`` is one field) and splits every
field at its first ``=``; keys are case-insensitive. :func:`parse_mount` applies BuildKit's
rules (``instructions/commands_runmount.go``) and gives a :class:`Mount`:

* ``type`` is ``bind`` (the default), ``cache``, ``tmpfs``, ``secret`` or ``ssh``;
* ``ro``/``readonly`` and ``rw``/``readwrite`` stand alone or take a Go boolean; without either
  a bind, secret or ssh mount is read-only, a cache or tmpfs mount writable;
* ``required`` (alone or a boolean) only for secret and ssh mounts, and only *after* the
  ``type`` field: BuildKit reads the fields in order;
* ``size`` (``64m``, ``1g``: binary units) only for tmpfs; ``sharing`` (``shared``,
  ``private``, ``locked``) only for cache; ``mode`` (octal), ``uid``, ``gid`` only for cache,
  secret and ssh;
* a secret mount needs one of ``id``, ``source``, ``target``, and not both ``source`` and
  ``id``; it has no ``from`` and no ``sharing``;
* ``from`` may not hold a variable (``define alias stage instead``).

BuildKit checks only that last rule when it parses the Dockerfile and everything else after
expanding the values; :func:`check_mount` (used by the parser) checks everything at once when
the value holds nothing to expand, and the builder calls :func:`parse_mount` with the expanded
value. Messages are BuildKit's.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from part1_overview import model

from ..errors import CapstoneError
from .flags import with_suggestion

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING_MODES = ("shared", "private", "locked")
MOUNT_KEYS = ("type", "from", "source", "target", "readonly", "id", "sharing", "required",
              "size", "mode", "uid", "gid", "src", "dst", "destination", "ro", "rw", "readwrite",
              "env")


class MountSyntaxError(CapstoneError):
    """The --mount value breaks a rule; the parser adds the file and line."""


@model(frozen=True)
class Mount:
    """One ``RUN --mount``: BuildKit's ``instructions.Mount``."""

    type: str = "bind"
    from_: str | None = None
    source: str | None = None
    target: str | None = None
    read_only: bool = True
    size_limit: int | None = None
    id: str | None = None
    sharing: str | None = None
    required: bool = False
    env: str | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None


def split_csv_fields(value: str) -> list[str]:
    """One CSV record (Go's ``encoding/csv`` rules: quotes only around a whole field)."""
    fields: list[str] = []
    i, n = 0, len(value)
    while True:
        if i < n and value[i] == '"':
            i += 1
            buf = []
            while True:
                j = value.find('"', i)
                if j < 0:
                    raise MountSyntaxError(
                        f'failed to parse csv mounts: parse error on line 1, column {n + 1}: '
                        'extraneous or missing " in quoted-field')
                buf.append(value[i:j])
                i = j + 1
                if i < n and value[i] == '"':
                    buf.append('"')
                    i += 1
                    continue
                break
            if i < n and value[i] != ",":
                raise MountSyntaxError(
                    f'failed to parse csv mounts: parse error on line 1, column {i + 1}: '
                    'extraneous or missing " in quoted-field')
            fields.append("".join(buf))
        else:
            j = value.find(",", i)
            field = value[i:] if j < 0 else value[i:j]
            if '"' in field:
                col = i + field.index('"') + 1
                raise MountSyntaxError(
                    f'failed to parse csv mounts: parse error on line 1, column {col}: '
                    'bare " in non-quoted-field')
            fields.append(field)
            i = n if j < 0 else j
        if i >= n:
            return fields
        i += 1  # the comma


def mount_fields(value: str) -> tuple[tuple[str, str | None], ...]:
    """``type=cache,target=/x,ro`` -> (("type", "cache"), ("target", "/x"), ("ro", None))."""
    out = []
    for field in split_csv_fields(value):
        key, eq, val = field.partition("=")
        out.append((key.lower(), val if eq else None))
    return tuple(out)


def mount_from(value: str) -> str | None:
    """The ``from=`` field of a --mount value (stage, image or context name), or None."""
    for key, val in mount_fields(value):
        if key == "from":
            return val
    return None


_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_GO_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def _go_bool(key: str, value: str) -> bool:
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    raise MountSyntaxError(f"invalid value for {key}: {value}")


def _go_uint(key: str, value: str, base: int) -> int:
    digits = "01234567" if base == 8 else "0123456789"
    if not value or any(c not in digits for c in value) or int(value, base) >= 1 << 32:
        raise MountSyntaxError(f"invalid value {value} for {key}")
    return int(value, base)


_RAM_RE = re.compile(r"(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?")
_RAM_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str) -> int:
    """docker/go-units ``RAMInBytes``: ``64m`` -> 67108864 (binary multiples)."""
    m = _RAM_RE.fullmatch(text)
    if m is None or m.group(1).count(".") > 1:
        raise ValueError(text)
    size = float(m.group(1))
    unit = m.group(2)
    return int(size * _RAM_UNITS[unit.lower()]) if unit else int(size)


def parse_mount(value: str, expand: Callable[[str], str] | None = None) -> Mount:
    """A ``--mount`` value as BuildKit reads it after expansion (``expand`` maps each value)."""
    kind = "bind"
    m: dict = {}  # Mount's fields as given; read_only only when a field says it
    for field in split_csv_fields(value):
        key, eq, val = field.partition("=")
        key = key.lower()
        if not eq:
            _bare_key(key, field, kind, m)
            continue
        if expand is not None:
            val = expand(val)
        if key == "type":
            low = val.lower()
            if low not in MOUNT_TYPES:
                raise MountSyntaxError(with_suggestion(f'unsupported mount type "{val}"', val, MOUNT_TYPES))
            kind = low
        else:
            _key_value(key, val, field, kind, m)
    _check_for_type(kind, m)
    if "read_only" not in m:
        m["read_only"] = kind not in ("cache", "tmpfs")
    return Mount(type=kind, **m)


def _bare_key(key: str, field: str, kind: str, m: dict) -> None:
    """A field without ``=``: ``ro``, ``rw`` or ``required`` (secret and ssh only)."""
    if key in ("readonly", "ro"):
        m["read_only"] = True
    elif key in ("readwrite", "rw"):
        m["read_only"] = False
    elif key == "required" and kind in ("secret", "ssh"):
        m["required"] = True
    elif key == "required":
        raise MountSyntaxError(f"unexpected key '{key}' for mount type '{kind}'")
    else:
        raise MountSyntaxError(f"invalid field '{field}' must be a key=value pair")


#: keys whose value is taken as it is: key -> Mount field
_PLAIN_KEYS = {"from": "from_", "source": "source", "src": "source", "target": "target", "dst": "target",
               "destination": "target", "id": "id", "env": "env"}


def _key_value(key: str, val: str, field: str, kind: str, m: dict) -> None:
    """A ``key=value`` field (``type`` excepted) into ``m``, checked as BuildKit checks it."""
    if key in _PLAIN_KEYS:
        m[_PLAIN_KEYS[key]] = val
    elif key in ("readonly", "ro"):
        m["read_only"] = _go_bool(key, val)
    elif key in ("readwrite", "rw"):
        m["read_only"] = not _go_bool(key, val)
    elif key == "required":
        if kind not in ("secret", "ssh"):
            raise MountSyntaxError(f"unexpected key '{key}' for mount type '{kind}'")
        m["required"] = _go_bool(key, val)
    elif key == "size":
        if kind != "tmpfs":
            raise MountSyntaxError(f"unexpected key '{key}' for mount type '{kind}'")
        try:
            m["size_limit"] = ram_in_bytes(val)
        except ValueError:
            raise MountSyntaxError(f"invalid value for {key}: {val}") from None
    elif key == "sharing":
        low = val.lower()
        if low not in SHARING_MODES:
            raise MountSyntaxError(with_suggestion(f'unsupported sharing value "{val}"', val, SHARING_MODES))
        m["sharing"] = low
    elif key == "mode":
        m["mode"] = _go_uint(key, val, 8)
    elif key in ("uid", "gid"):
        m[key] = _go_uint(key, val, 10)
    else:
        raise MountSyntaxError(with_suggestion(f"unexpected key '{key}' in '{field}'", key, MOUNT_KEYS))


def _check_for_type(kind: str, m: dict) -> None:
    """BuildKit's rules that depend on the mount type, checked once every field is read."""
    if kind not in ("secret", "ssh", "cache"):
        for key in ("mode", "uid", "gid"):
            if m.get(key) is not None:
                raise MountSyntaxError(f'{key} not allowed for "{kind}" type mounts')
    if kind == "secret":
        if m.get("from_"):
            raise MountSyntaxError("secret mount should not have a from")
        if m.get("sharing"):
            raise MountSyntaxError("secret mount should not define sharing")
        if not m.get("source") and not m.get("target") and not m.get("id"):
            raise MountSyntaxError("invalid secret mount. one of source, target required")
        if m.get("source") and m.get("id"):
            raise MountSyntaxError("both source and id can't be set")
    if m.get("sharing") and kind != "cache":
        raise MountSyntaxError(f"invalid cache sharing set for {kind} mount")


def check_mount(value: str) -> None:
    """The checks BuildKit makes when it parses a RUN line, and (when nothing in ``value``
    needs expanding: no ``$``, quote or backslash) all the others too."""
    for key, val in mount_fields(value):
        if key == "from" and val is not None:
            i = val.find("$")
            if i != -1 and i != len(val) - 1:
                raise MountSyntaxError(
                    "'from' doesn't support variable expansion, define alias stage instead")
    if not any(c in value for c in "$'\"\\"):
        parse_mount(value)


__all__ = ["MOUNT_KEYS", "MOUNT_TYPES", "Mount", "MountSyntaxError", "SHARING_MODES",
           "check_mount", "mount_fields", "mount_from", "parse_mount", "ram_in_bytes",
           "split_csv_fields"]
