"""Atomic file writes: a file appears under its name complete, or not at all.

The content store's rule (containerd, the OCI image layout here): write a temporary file in the
same directory (the same file system, so a rename can place it), fsync it, rename it over the
final name, then fsync the directory so the rename itself survives a crash. A reader sees the
old file or the new one, never half of one; a failed or interrupted write leaves no temporary
file behind.

Every writer of the course that must not leave a torn file goes through :func:`atomic_file`:
blobs (``OCILayout.put_blob``), index.json, oci-archives, layer blobs a build writes, the
capstone store's small JSON files.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_PREFIX = ".tmp-"


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a directory: the names created, renamed or removed in it are on disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicFile:
    """The file :func:`atomic_file` is writing.

    ``file`` is the temporary file, open for binary writing (hand it to a tar or layer writer);
    ``write()`` writes to it. ``target`` is the name the file gets when the block ends: it may
    be set or changed inside the block (a blob is named after the digest of what was written).
    ``discard()`` keeps nothing (the target is there already).
    """

    def __init__(self, file: BinaryIO, temp: Path, target: Path | None) -> None:
        self.file = file
        self.temp = temp
        self.target = target
        self.discarded = False

    def write(self, data) -> int:
        return self.file.write(data)

    def discard(self) -> None:
        self.discarded = True


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike | None, mode: int | None = 0o644, *, temp_dir: str | os.PathLike | None = None,
                durable: bool = True, prefix: str = TEMP_PREFIX) -> Iterator[AtomicFile]:
    """Write a new file that replaces ``target`` when the block ends without an error.

    The temporary file is made in ``temp_dir`` (default: the target's directory; it must be on
    the same file system), named ``prefix`` + random. At the end it is flushed, fsynced
    (``durable``), given ``mode`` (None: mkstemp's 0600), renamed to ``target`` and the
    target's directory fsynced (``durable``). On an error (or ``discard()``) it is removed and
    ``target`` is untouched. ``target`` may be None at first and set inside the block.
    """
    target = Path(target) if target is not None else None
    where = Path(temp_dir) if temp_dir is not None else target.parent
    fd, temp = tempfile.mkstemp(dir=where, prefix=prefix)
    out = None
    try:
        with os.fdopen(fd, "wb") as f:
            out = AtomicFile(f, Path(temp), target)
            yield out
            f.flush()
            if durable and not out.discarded:
                os.fsync(f.fileno())
        if out.discarded:
            os.unlink(temp)
            return
        if out.target is None:
            raise ValueError("atomic_file: the block ended without naming the file")
        if mode is not None:
            os.chmod(temp, mode)
        os.replace(temp, out.target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    if durable:
        fsync_dir(Path(out.target).parent)


def write_file_atomic(path: str | os.PathLike, data: bytes, mode: int = 0o644, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` through :func:`atomic_file` (small files: JSON, ids)."""
    with atomic_file(path, mode, durable=durable) as f:
        f.write(data)


def make_durable(paths: Iterable[str | os.PathLike]) -> None:
    """fsync each file of ``paths``, then each directory holding one (once): files written
    with ``durable=False`` are on disk, under their names, when this returns. A writer that
    makes many small files which only matter once something names them (a build's step
    images) writes them without waiting for the disk, and calls this before the name."""
    directories: dict[Path, None] = {}
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        directories[Path(path).parent] = None
    for directory in directories:
        fsync_dir(directory)


__all__ = ["AtomicFile", "TEMP_PREFIX", "atomic_file", "fsync_dir", "make_durable", "write_file_atomic"]
