"""The value of ``RUN --mount=...``: comma-separated ``key=value`` fields (CSV quoting).

BuildKit reads the value with Go's ``encoding/csv`` (so ``"source=a,b"`` is one field) and
splits every field at its first ``=``; keys are case-insensitive. Only the fields are split
here; what each key means (type, target, from, id, ...) belongs to the RUN implementation.
"""

from __future__ import annotations

import csv


class MountSyntaxError(ValueError):
    """The --mount value is not valid CSV."""


def mount_fields(value: str) -> tuple[tuple[str, str | None], ...]:
    """``type=cache,target=/x,ro`` -> (("type", "cache"), ("target", "/x"), ("ro", None))."""
    try:
        rows = list(csv.reader([value], strict=True, skipinitialspace=False))
    except csv.Error as exc:
        raise MountSyntaxError(f"invalid mount value {value!r}: {exc}") from None
    out = []
    for field in rows[0] if rows else []:
        key, eq, val = field.partition("=")
        out.append((key.strip().lower(), val if eq else None))
    return tuple(out)


def mount_from(value: str) -> str | None:
    """The ``from=`` field of a --mount value (stage, image or context name), or None."""
    for key, val in mount_fields(value):
        if key == "from":
            return val
    return None
