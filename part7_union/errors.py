"""The errors of part 7 (under ``part1_overview.CourseError``, the root of every part's errors).

::

    UnionError                 base of everything this part raises on purpose
    ├── OverlayError           an overlay mount or unmount failed (also an OSError: errno kept)
    ├── SnapshotError          a snapshotter could not prepare, copy or clean up a rootfs
    └── ChangesError           an upper or new directory could not be turned into a layer
"""

from __future__ import annotations

from part1_overview import CourseError


class UnionError(CourseError):
    """Base of the errors of part 7."""


class OverlayError(UnionError, OSError):
    """An overlay mount or unmount failed; ``errno`` is the kernel's, the message names the path."""

    def __init__(self, errno: int, message: str, path: str | None = None) -> None:
        OSError.__init__(self, errno, message, path)

    def __str__(self) -> str:
        where = f": {self.filename}" if self.filename else ""
        return f"{self.strerror}{where}"


class SnapshotError(UnionError):
    """A snapshot's rootfs could not be prepared, copied or removed."""


class ChangesError(UnionError):
    """A directory could not be turned into layer changes (names the path)."""
