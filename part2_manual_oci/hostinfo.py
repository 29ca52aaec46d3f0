"""The build's timestamp: SOURCE_DATE_EPOCH and RFC 3339 (the host's platform is in ``platforms``)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from .errors import LayoutError


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
