"""Facts about this host that go into an image: its platform and the build's timestamp."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime

from .errors import LayoutError
from .models import Platform

# Python's platform.machine() -> (GOARCH, variant): the names the image spec uses
_ARCHITECTURES = {
    "x86_64": ("amd64", None),
    "amd64": ("amd64", None),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", None),
    "i686": ("386", None),
    "ppc64le": ("ppc64le", None),
    "s390x": ("s390x", None),
    "riscv64": ("riscv64", None),
}


def host_platform() -> Platform:
    """This machine's platform in the spec's words (x86_64 -> amd64, aarch64 -> arm64/v8)."""
    machine = platform.machine().lower()
    try:
        arch, variant = _ARCHITECTURES[machine]
    except KeyError:
        raise LayoutError(f"unknown machine architecture {machine!r}; pass one of {sorted(_ARCHITECTURES)}") from None
    return Platform(architecture=arch, os="linux", variant=variant)


def source_date_epoch(value: int | None = None) -> int:
    """``value``, else $SOURCE_DATE_EPOCH, else 0: the one timestamp of a reproducible build."""
    if value is not None:
        return value
    text = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not text:
        return 0
    try:
        return int(text)
    except ValueError:
        raise LayoutError(f"SOURCE_DATE_EPOCH={text!r} is not an integer") from None


def rfc3339(epoch: int) -> str:
    """An image-spec timestamp (RFC 3339, UTC, seconds) for a Unix time."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
