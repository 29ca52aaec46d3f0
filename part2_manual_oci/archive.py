"""oci-archive: an image layout packed as one plain tar file (``skopeo ... oci-archive:FILE``).

Writing tars the layout's files with stable names, owners and times, and checks every blob
against its name while it is copied (a damaged blob is never exported: the write fails and the
archive is not made). Reading unpacks into a
fresh directory and accepts only regular files and directories with relative names and no
``..``: an archive from elsewhere cannot plant a symlink or write outside that directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .atomic import atomic_file
from .digest import ALGORITHM
from .errors import ArchiveError
from .hostinfo import source_date_epoch as _source_date_epoch
from .layout import TEMP_PREFIX, OCILayout, VerifiedBlobReader

CHUNK = 1 << 20


def _epoch(value: int | None) -> int:
    return _source_date_epoch(value)  # $SOURCE_DATE_EPOCH (a LayoutError if not an integer), else 0


def _layout_entries(root: Path) -> list[tuple[str, Path]]:
    """(archive name, path) of every directory and file of the layout, sorted by name."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(root)
        for name in dirnames + filenames:
            if name.startswith(TEMP_PREFIX):
                continue  # an unfinished blob write: not part of the layout
            path = Path(dirpath) / name
            entries.append(((rel_dir / name).as_posix(), path))
    return sorted(entries)


def write_oci_archive(layout_dir: str | os.PathLike, out_file: str | os.PathLike | BinaryIO, *, source_date_epoch: int | None = None) -> None:
    """Write the layout at ``layout_dir`` as a plain tar to a path (atomically) or a stream.

    Entries are sorted, owned by 0:0, dated SOURCE_DATE_EPOCH (or 0): the same layout gives
    the same archive bytes.
    """
    layout = OCILayout.open(layout_dir)
    if hasattr(out_file, "write"):
        _write_tar(layout.path, out_file, _epoch(source_date_epoch))
        return
    out_path = Path(out_file)
    if out_path.is_dir():
        raise ArchiveError(f"{out_path}: is a directory; an oci-archive is a file")
    with contextlib.ExitStack() as stack:
        try:
            out = stack.enter_context(atomic_file(out_path, prefix=f".{out_path.name}."))
        except OSError as e:
            raise ArchiveError(f"{out_path}: cannot write the oci-archive ({e.strerror})") from None
        _write_tar(layout.path, out.file, _epoch(source_date_epoch))


def _write_tar(root: Path, out: BinaryIO, mtime: int) -> None:
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, path in _layout_entries(root):
            st = path.lstat()
            info = tarfile.TarInfo(name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = mtime
            if stat.S_ISDIR(st.st_mode):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                info.mode, info.size = 0o644, st.st_size
                digest = _blob_digest(name)
                if digest is None:
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                    continue
                with VerifiedBlobReader(path, digest, st.st_size) as blob:
                    tar.addfile(info, blob)
                    blob.read(1)  # at the end: the digest is checked there
            else:
                raise ArchiveError(f"{path}: not a regular file or directory; an image layout holds only those")


def _blob_digest(name: str) -> str | None:
    """``sha256:<hex>`` for a layout member ``blobs/sha256/<hex>``, else None."""
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "blobs" and parts[1] == ALGORITHM:
        return f"{ALGORITHM}:{parts[2]}"
    return None


def _safe_name(name: str, archive: str) -> PurePosixPath | None:
    """The member's relative path, None for the archive's root entry; ArchiveError if unsafe."""
    path = PurePosixPath(name)
    if "\0" in name:
        raise ArchiveError(f"{archive}: member {name!r}: NUL byte in name")
    if path.is_absolute():
        raise ArchiveError(f"{archive}: member {name!r}: absolute name")
    parts = [p for p in path.parts if p != "."]
    if ".." in parts:
        raise ArchiveError(f"{archive}: member {name!r}: '..' in name")
    return PurePosixPath(*parts) if parts else None


def extract_oci_archive(file: str | os.PathLike | BinaryIO, dest: str | os.PathLike) -> OCILayout:
    """Unpack an oci-archive into ``dest`` (new or empty) and open it as a layout.

    Only regular files and directories are accepted; links, devices, absolute names and
    ``..`` raise ArchiveError. The archive is read as a stream (plain or compressed tar).
    On any failure ``dest`` is left as it was: removed if this call made it, else emptied.
    """
    dest = Path(dest)
    if hasattr(file, "read"):
        name = getattr(file, "name", None)
        label = name if isinstance(name, str) else "oci-archive stream"
    else:
        label = os.fspath(file)
    created = not dest.exists()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArchiveError(f"{dest}: cannot create ({e.strerror})") from None
    if any(dest.iterdir()):
        raise ArchiveError(f"{dest}: not empty; an oci-archive is extracted into a new directory")
    try:
        _extract_members(file, dest, label)
        return OCILayout.open(dest)
    except BaseException:
        # only files and directories were made (never a symlink): rmtree cannot stray
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        else:
            for child in dest.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        raise


def _extract_members(file: str | os.PathLike | BinaryIO, dest: Path, label: str) -> None:
    try:
        tar = tarfile.open(fileobj=file, mode="r|*") if hasattr(file, "read") else tarfile.open(file, mode="r|*")
    except tarfile.TarError as e:
        raise ArchiveError(f"{label}: not a tar archive ({e})") from None
    except OSError as e:
        raise ArchiveError(f"{label}: {e.strerror or e}") from None
    with tar:
        member_name = None
        try:
            for member in tar:
                member_name = member.name
                rel = _safe_name(member.name, label)
                if rel is None:
                    continue
                target = dest / rel
                if member.isdir():
                    target.mkdir(mode=0o755, parents=True, exist_ok=True)
                elif member.isreg():
                    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                    src = tar.extractfile(member)
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
                    with os.fdopen(fd, "wb") as f:
                        while block := src.read(CHUNK):
                            f.write(block)
                else:
                    kind = {tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hard link", tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "fifo"}.get(member.type, f"type {member.type!r}")
                    raise ArchiveError(f"{label}: member {member.name!r}: {kind} not allowed (an oci-archive holds only files and directories)")
        except tarfile.TarError as e:
            raise ArchiveError(f"{label}: broken tar ({e})") from None
        except (NotADirectoryError, IsADirectoryError, FileExistsError) as e:
            raise ArchiveError(f"{label}: conflicting members at {e.filename}") from None
        except (OSError, EOFError) as e:
            where = f"member {member_name!r}" if member_name is not None else "reading"
            detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise ArchiveError(f"{label}: {where}: {detail}") from None


@contextlib.contextmanager
def open_oci_archive(file: str | os.PathLike | BinaryIO) -> Iterator[OCILayout]:
    """Extract an oci-archive into a temporary layout for the duration of a ``with`` block."""
    with tempfile.TemporaryDirectory(prefix="oci-archive-") as tmp:
        yield extract_oci_archive(file, Path(tmp) / "layout")
