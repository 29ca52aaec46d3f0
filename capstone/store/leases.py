"""Leased directories, and removing what killed builds and runs left.

A build's scratch directory and a running container's directory are *leased*: a ``.lease``
file inside is locked (flock) for as long as the process (or a child it forked) lives, and the
kernel drops the lock when it dies, however it dies. :func:`sweep` removes each leased
directory whose lock it can take, after detaching any mount still below it (a ``RUN --mount``
overlay of a build killed with SIGKILL).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import StoreError

#: the name prefix of the store's temp files and directories (part 2's, for its layout too)
TEMP_PREFIX = ".tmp-"
#: the file whose lock marks a leased directory as in use
LEASE = ".lease"
#: a temp entry older than this is a dead extraction's (part 2's rule for layouts)
STALE_TEMP_SECONDS = 3600


@contextlib.contextmanager
def lease(parent: Path, name: str | None = None, *, keep: bool = False) -> Iterator[Path]:
    """A new directory ``parent/name`` (default ``parent/<random>``) leased by this process
    for the block: ``.lease`` inside is locked before the directory gets its name (a sweep
    never sees it unlocked), and the lock lasts while this process or a child it forked
    lives. On exit the directory is removed, or with ``keep`` only its lease file (a
    container kept by ``run`` without ``--rm``)."""
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / (name or os.urandom(8).hex())
    pending = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX + "lease-", dir=parent))
    fd = os.open(pending / LEASE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(pending, final)
    except BaseException:
        os.close(fd)
        shutil.rmtree(pending, ignore_errors=True)
        raise
    try:
        yield final
    finally:
        try:
            if keep:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(final / LEASE)
            else:
                detach_mounts_under(final)
                remove_tree(final)
        finally:
            os.close(fd)


def sweep(leased_parents: Iterable[Path], temp_parents: Iterable[Path]) -> list[Path]:
    """Remove every leased directory of ``leased_parents`` whose lock is free (mounts below it
    detached first), and the temp entries of ``temp_parents``: a leased one whose lock is free,
    one without a lease once it is an hour old. Returns what was removed."""
    removed = []
    for parent in leased_parents:
        try:
            entries = list(parent.iterdir())
        except FileNotFoundError:
            continue
        for entry in entries:
            if take_dead_lease(entry):
                removed.append(entry)
    now = time.time()
    for parent in temp_parents:
        with contextlib.suppress(FileNotFoundError):
            for entry in parent.iterdir():
                if not entry.name.startswith(TEMP_PREFIX):
                    continue
                if os.path.lexists(entry / LEASE):  # its process tells: alive, or dead and gone now
                    if take_dead_lease(entry):
                        removed.append(entry)
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if now - entry.lstat().st_mtime > STALE_TEMP_SECONDS:
                        remove_tree(entry)
                        removed.append(entry)
    return removed


def take_dead_lease(entry: Path) -> bool:
    """If ``entry`` is a leased directory whose lock no process holds, remove it (holding the
    lock meanwhile); True when it was removed."""
    try:
        fd = os.open(entry / LEASE, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False  # not leased (a kept container, another tool's file): not ours to judge
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its process is alive
        detach_mounts_under(entry)
        remove_tree(entry)
        return True
    finally:
        os.close(fd)


def remove_tree(path: Path) -> None:
    """Remove a directory tree or a file (a link itself, never what it points to)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


_MOUNTINFO_ESCAPE = re.compile(r"\\([0-7]{3})")


def mounts_under(root: Path) -> list[Path]:
    """Mount points at or below ``root`` in this process's mount namespace, deepest first."""
    out = []
    root_s = str(root)
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            # the kernel writes space, tab, newline and backslash in a path as \ooo
            point = _MOUNTINFO_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == root_s or point.startswith(root_s + "/"):
                out.append(Path(point))
    return sorted(out, key=lambda p: len(p.parts), reverse=True)


def detach_mounts_under(root: Path) -> None:
    """Detach every mount at or below ``root`` (deepest first), so that removing ``root``
    never deletes through a mount into what it shows (a lower layer, the build context)."""
    points = mounts_under(root)
    if not points:
        return
    from part5_namespaces import UmountFlags, umount2  # only when something is mounted there

    for point in points:
        with contextlib.suppress(OSError):
            umount2(point, UmountFlags.DETACH)
    left = mounts_under(root)
    if left:
        raise StoreError(f"cannot detach the mount at {left[0]} (left by a killed build or run)")
