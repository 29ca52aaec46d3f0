"""Snapshotters: a writable root filesystem on top of read-only layer directories.

Both kinds share one interface (as containerd's snapshotters do)::

    snap = snapshotter("auto").prepare(lowers_top_first, scratch)
    ... run a container in snap.root ...
    info = snap.write_changes(out)        # the layer of what changed
    snap.remove()                         # unmount (overlay) and delete the scratch dirs

``lowers_top_first`` are layer directories in overlay format (see ``whiteouts``); the
snapshotter never writes to them. ``scratch`` is a directory the snapshot owns.

* :class:`OverlaySnapshotter` mounts an overlay: scratch/upper, scratch/work, scratch/merged
  (the root). Changes are read from the upper directory. No copy at all.
* :class:`CopySnapshotter`, for hosts without overlayfs (or without the right to mount it):
  copies the merged layers into scratch/rootfs, and computes the changes by comparing that
  rootfs with the layers (no second copy: the layers are the "before").
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from part4_tar import LayerInfo

from .changes import Change, diff_dirs, upper_changes, write_change_list
from .errors import SnapshotError
from .overlay import OverlayMount, overlay_supported
from .tree import LayerStack, copy_tree

PathLike = str | os.PathLike


class OverlaySnapshot:
    """A prepared overlay snapshot. ``root`` is the merged directory (mounted unless
    ``prepare(..., mount=False)``: then mount ``self.overlay`` where and when you want, for
    example in a container's own mount namespace).

    ``init``: a lower directory above the layers that is not part of the image, Docker's
    "init layer" (the mount points a runtime needs): in the view, never among the changes.
    ``upper``: an upper directory of the caller's (on the file system of ``scratch``, where the
    work directory is), which :meth:`remove` leaves alone."""

    kind = "overlay"

    def __init__(self, lowers_top_first: Sequence[PathLike], scratch: PathLike, *, userxattr: bool | None = None,
                 init: PathLike | None = None, upper: PathLike | None = None) -> None:
        self.scratch = Path(os.path.abspath(scratch))
        self.lowers = tuple(Path(os.path.abspath(p)) for p in lowers_top_first)
        self.init = Path(os.path.abspath(init)) if init is not None else None
        self.own_upper = upper is None
        self.upper = self.scratch / "upper" if upper is None else Path(os.path.abspath(upper))
        self.work = self.scratch / "work"
        self.root = self.scratch / "merged"
        lowers = ((self.init,) if self.init is not None else ()) + self.lowers
        if not lowers:  # FROM scratch: overlay needs one lower, an empty one will do
            empty = self.scratch / "empty"
            empty.mkdir(parents=True, exist_ok=True)
            lowers = (empty,)
        self.overlay = OverlayMount(lowers, self.upper, self.work, self.root, userxattr=userxattr)

    @property
    def mounted(self) -> bool:
        return self.overlay.mounted

    def mount(self) -> "OverlaySnapshot":
        self.overlay.mount()
        return self

    def unmount(self) -> None:
        self.overlay.unmount()

    @property
    def changes_dir(self) -> Path:
        """Where the changed files are: the upper directory."""
        return self.upper

    def changes(self) -> list[Change]:
        return upper_changes(self.upper, self.lowers)

    def write_changes(self, out: BinaryIO, compression: str = "gzip", *, source_date_epoch: int | None = None) -> LayerInfo:
        return write_change_list(upper_changes(self.upper), self.upper, out, compression, source_date_epoch=source_date_epoch)

    def remove(self, *, keep_upper: bool = False) -> None:
        """Unmount and delete the snapshot's directories (the lowers and the init layer are
        left alone; the upper too with ``keep_upper``, or when it is the caller's)."""
        self.unmount()
        keep = keep_upper or not self.own_upper
        _remove(self.scratch, ("work", "merged", "empty") if keep else ("upper", "work", "merged", "empty"))

    def __enter__(self) -> "OverlaySnapshot":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class CopySnapshot:
    """A prepared copy snapshot: ``root`` is a real copy of the merged layers.

    ``init``: a lower directory above the layers that is not part of the image (see
    :class:`OverlaySnapshot`): copied, never among the changes. ``root``: where the copy is
    made (default ``scratch/rootfs``; an empty directory there is used as it is)."""

    kind = "copy"

    def __init__(self, lowers_top_first: Sequence[PathLike], scratch: PathLike, *, init: PathLike | None = None,
                 root: PathLike | None = None) -> None:
        self.scratch = Path(os.path.abspath(scratch))
        self.lowers = tuple(Path(os.path.abspath(p)) for p in lowers_top_first)
        self.init = Path(os.path.abspath(init)) if init is not None else None
        self.root = self.scratch / "rootfs" if root is None else Path(os.path.abspath(root))
        self.mounted = False

    @property
    def changes_dir(self) -> Path:
        """Where the changed files are: the copy itself."""
        return self.root

    def _before(self) -> LayerStack | Path:
        layers = ((self.init,) if self.init is not None else ()) + self.lowers
        if layers:
            return LayerStack(layers)
        empty = self.scratch / "empty"
        empty.mkdir(parents=True, exist_ok=True)
        return empty

    def mount(self) -> "CopySnapshot":
        """Copy the merged layers into ``root`` (once)."""
        if not self.mounted:
            if self.root.exists() and not _empty_dir(self.root):
                raise SnapshotError(f"snapshot rootfs already exists: {self.root}")
            copy_tree(self._before(), self.root)
            self.mounted = True
        return self

    def unmount(self) -> None:
        """Nothing to unmount: the copy stays until :meth:`remove`."""

    def changes(self) -> list[Change]:
        return diff_dirs(self._before(), self.root)

    def write_changes(self, out: BinaryIO, compression: str = "gzip", *, source_date_epoch: int | None = None) -> LayerInfo:
        return write_change_list(self.changes(), self.root, out, compression, source_date_epoch=source_date_epoch)

    def remove(self, *, keep_root: bool = False) -> None:
        """Delete the copy (unless ``keep_root``) and the snapshot's other directories."""
        if not keep_root:
            _remove(self.root.parent, (self.root.name,))
        _remove(self.scratch, ("empty",))
        self.mounted = False

    def __enter__(self) -> "CopySnapshot":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class OverlaySnapshotter:
    """Prepares :class:`OverlaySnapshot` s (``userxattr`` inside a user namespace)."""

    kind = "overlay"

    def __init__(self, *, userxattr: bool | None = None) -> None:
        self.userxattr = userxattr

    def prepare(self, lowers_top_first: Sequence[PathLike], scratch: PathLike, *, mount: bool = True) -> OverlaySnapshot:
        snap = OverlaySnapshot(lowers_top_first, scratch, userxattr=self.userxattr)
        return snap.mount() if mount else snap


class CopySnapshotter:
    """Prepares :class:`CopySnapshot` s; the same interface as :class:`OverlaySnapshotter`.

    ``mount=False`` defers the copy to ``snap.mount()``.
    """

    kind = "copy"

    def prepare(self, lowers_top_first: Sequence[PathLike], scratch: PathLike, *, mount: bool = True) -> CopySnapshot:
        snap = CopySnapshot(lowers_top_first, scratch)
        return snap.mount() if mount else snap


def snapshotter(kind: str = "auto", *, userxattr: bool | None = None) -> OverlaySnapshotter | CopySnapshotter:
    """``"overlay"``, ``"copy"``, or ``"auto"``: overlay when this process can mount one here."""
    if kind == "overlay":
        return OverlaySnapshotter(userxattr=userxattr)
    if kind == "copy":
        return CopySnapshotter()
    if kind == "auto":
        return OverlaySnapshotter(userxattr=userxattr) if overlay_supported(userxattr) else CopySnapshotter()
    raise SnapshotError(f"unknown snapshotter kind {kind!r} (overlay, copy or auto)")


def _empty_dir(path: Path) -> bool:
    if path.is_symlink() or not path.is_dir():
        return False
    with os.scandir(path) as entries:
        return next(entries, None) is None


def _remove(scratch: Path, names: tuple[str, ...]) -> None:
    for name in names:
        p = scratch / name
        if p.is_symlink() or p.is_file():
            p.unlink()
        elif p.exists():
            if os.path.ismount(p):
                raise SnapshotError(f"still mounted, not removing: {p}")
            shutil.rmtree(p)
