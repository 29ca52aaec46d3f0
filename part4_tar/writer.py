"""Directory -> layer: a deterministic tar stream, compressed, with digest and diff_id.

What makes two packs of the same tree byte-identical, whatever the machine:

- entries in a fixed order: depth first, each directory's names sorted by their bytes (never the
  order the file system lists them in, which follows inode allocation);
- only what the image needs: type, numeric owner, mode, mtime (whole seconds, clamped to
  ``SOURCE_DATE_EPOCH`` when one is given), link targets, device numbers, extended attributes;
  no user or group names, no atime or ctime;
- a compressor with a fixed gzip header (no time stamp, no file name).

Hard links are found by (device, inode): the first path is stored as a file, later ones as links
to it. Symlinks are stored, never followed. Sockets cannot be stored in tar and are skipped
(listed in ``LayerWriter.skipped``).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from typing import BinaryIO

from part1_overview import model

from . import tarformat
from .errors import LayerError
from .pipeline import BlobPipeline

#: file data is read in pieces of this size (each one a progress report)
CHUNK = 4 << 20
#: extended attributes that are overlayfs bookkeeping, never image content
PRIVATE_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")


@model(frozen=True)
class LayerInfo:
    """What identifies a layer blob: the digest and size of its bytes, and its diff_id.

    ``diff_id`` is the digest of the uncompressed tar stream (the image config lists these);
    ``digest`` and ``size`` are those of the blob as stored (the manifest lists these).
    """

    digest: str
    size: int
    diff_id: str
    media_type: str
    compression: str

    def descriptor(self, annotations: dict | None = None):
        """The manifest's descriptor of this layer (``part2_manual_oci.Descriptor``)."""
        from part2_manual_oci import Descriptor  # lazily: part 2 models are only needed here

        return Descriptor(self.media_type, self.digest, self.size, annotations=annotations)


def normalize_arcname(name: str, *, directory: bool = False) -> str:
    """``name`` as stored in the layer: relative, no ``.`` parts, ``/`` after directories.

    A ``..`` part is refused: a layer entry must stay under the root it is extracted into.
    """
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise LayerError(f"layer entry name {name!r}: '..' is not allowed in a layer")
    out = "/".join(parts)
    if directory and out:
        out += "/"
    return out


def _read_xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):  # no xattr support here
            return {}
        raise
    out = {}
    for name in sorted(names):
        if name.startswith(PRIVATE_XATTR_PREFIXES):
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno == errno.ENODATA:  # removed meanwhile
                continue
            raise
    return out


class LayerWriter:
    """Write a layer entry by entry; ``close()`` returns its :class:`LayerInfo`.

    ::

        with LayerWriter(f, "gzip", source_date_epoch=0) as w:
            w.add_tree("rootfs")
            w.add_whiteout("etc/motd")
        info = w.close()   # or w.info

    ``out`` receives the compressed blob; it is flushed, not closed. ``meter``, when given, is
    told the size of every piece of file content as it goes into the layer (a progress bar).
    """

    def __init__(self, out: BinaryIO, compression: str = "gzip", *, source_date_epoch: int | None = None,
                 level: int | None = None, threads: bool = True,
                 meter: Callable[[int], None] | None = None) -> None:
        from part2_manual_oci.mediatypes import layer_media_type

        try:
            self.media_type = layer_media_type(compression)
        except ValueError as exc:
            raise LayerError(str(exc)) from None
        self.compression = compression
        self.source_date_epoch = source_date_epoch
        self.meter = meter
        self._pipe = BlobPipeline(out, compression, level, threads=threads)
        self._links: dict[tuple[int, int], str] = {}
        self.skipped: list[str] = []
        self.info: LayerInfo | None = None

    # -- context manager ------------------------------------------------------------------
    def __enter__(self) -> "LayerWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self.info is None:
            self._pipe.abort()

    # -- entries ---------------------------------------------------------------------------
    def _mtime(self, mtime: float) -> int:
        seconds = int(mtime // 1)
        if self.source_date_epoch is not None and seconds > self.source_date_epoch:
            return self.source_date_epoch
        return seconds

    def _check_open(self) -> None:
        if self.info is not None:
            raise LayerError("the layer is closed")

    def add_path(self, path: str | os.PathLike, arcname: str, st: os.stat_result | None = None, *,
                 uid: int | None = None, gid: int | None = None, mode: int | None = None,
                 as_copy: bool = False) -> None:
        """Add one entry for ``path`` (from lstat; a directory's content is not added).

        ``st``: the lstat the caller decided with (a build plans a COPY before it writes the
        layer); a regular file read must then be that very file (device and inode), else
        LayerError, so a directory on the way swapped for a symlink since never brings
        another file's bytes.

        ``uid``, ``gid`` and ``mode`` (permission bits) replace what lstat says, and
        ``as_copy`` stores the entry as a plain copy would be (no extended attributes, never a
        hard link): what COPY --chown/--chmod write, without a staged copy of the file's data.
        """
        self._check_open()
        path = os.fspath(path)
        if st is None:
            try:
                st = os.lstat(path)
            except OSError as exc:
                raise LayerError(f"{path}: {exc.strerror}") from exc
        self._add(path, st, arcname, uid=uid, gid=gid, perm=mode, as_copy=as_copy)

    def _add(self, path: str, st: os.stat_result, arcname: str, *, uid: int | None = None, gid: int | None = None,
             perm: int | None = None, as_copy: bool = False) -> None:
        mode = st.st_mode
        is_dir = stat.S_ISDIR(mode)
        name = normalize_arcname(arcname, directory=is_dir)
        if not name:
            raise LayerError(f"{path}: empty name in the layer (give it an arcname)")
        common = dict(mode=stat.S_IMODE(mode) if perm is None else perm, uid=st.st_uid if uid is None else uid,
                      gid=st.st_gid if gid is None else gid, mtime=self._mtime(st.st_mtime))
        bname = name.encode("utf-8", "surrogateescape")
        try:
            xattrs = {} if as_copy else _read_xattrs(path)
        except OSError as exc:
            raise LayerError(f"{path}: reading extended attributes: {exc.strerror}") from exc
        # hard links: any non-directory with more than one name, keyed by (device, inode)
        if not is_dir and st.st_nlink > 1 and not as_copy:
            key = (st.st_dev, st.st_ino)
            first = self._links.get(key)
            if first is not None:
                self._pipe.write(tarformat.header(bname, tarformat.LNKTYPE, linkname=first.encode("utf-8", "surrogateescape"), **common))
                return
            self._links[key] = name
        if stat.S_ISREG(mode):
            self._add_file(path, st, bname, common, xattrs)
        elif is_dir:
            self._pipe.write(tarformat.header(bname, tarformat.DIRTYPE, xattrs=xattrs, **common))
        elif stat.S_ISLNK(mode):
            try:
                target = os.readlink(path)
            except OSError as exc:
                raise LayerError(f"{path}: {exc.strerror}") from exc
            self._pipe.write(tarformat.header(bname, tarformat.SYMTYPE, linkname=os.fsencode(target), xattrs=xattrs, **common))
        elif stat.S_ISFIFO(mode):
            self._pipe.write(tarformat.header(bname, tarformat.FIFOTYPE, xattrs=xattrs, **common))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = tarformat.CHRTYPE if stat.S_ISCHR(mode) else tarformat.BLKTYPE
            self._pipe.write(tarformat.header(bname, kind, devmajor=os.major(st.st_rdev), devminor=os.minor(st.st_rdev), xattrs=xattrs, **common))
        else:
            self.skipped.append(path)  # sockets (and doors): tar has no type for them

    def _add_file(self, path: str, st: os.stat_result, bname: bytes, common: dict, xattrs: dict) -> None:
        size = st.st_size
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise LayerError(f"{path}: {exc.strerror}") from exc
        try:
            fst = os.fstat(fd)
            if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
                raise LayerError(f"{path}: replaced while the layer was written")
            self._pipe.write(tarformat.header(bname, tarformat.REGTYPE, size=size, xattrs=xattrs, **common))
            left = size
            while left:
                n = self._pipe.read_from(fd, min(CHUNK, left))  # into the pipeline's own buffers
                if n < min(CHUNK, left):
                    raise LayerError(f"{path}: shrank while the layer was written ({size - left + n} of {size} bytes)")
                left -= n
                if self.meter is not None:
                    self.meter(n)
            self._pipe.write(tarformat.padding(size))
        except OSError as exc:
            raise LayerError(f"{path}: {exc.strerror}") from exc
        finally:
            os.close(fd)

    def add_tree(self, root: str | os.PathLike, prefix: str = "") -> None:
        """Add everything under ``root``, depth first, names sorted by their bytes.

        With ``prefix`` the entries are stored under it and ``root`` itself becomes the entry
        ``prefix/``; without one, ``root`` itself is not stored (a layer has no entry for ``/``).
        """
        self._check_open()
        root = os.fspath(root)
        prefix = normalize_arcname(prefix)
        if prefix:
            self.add_path(root, prefix)
        self._walk(root, prefix)

    def _walk(self, directory: str, arcdir: str) -> None:
        # iterative depth-first walk (a directory's content right after it), so deep trees do
        # not hit the recursion limit
        stack: list[tuple[str, str, list[str], int]] = []

        def listing(d: str) -> list[str]:
            try:
                with os.scandir(d) as it:
                    return sorted((e.name for e in it), key=os.fsencode)
            except OSError as exc:
                raise LayerError(f"{d}: {exc.strerror}") from exc

        stack.append((directory, arcdir, listing(directory), 0))
        while stack:
            d, a, names, i = stack.pop()
            if i >= len(names):
                continue
            stack.append((d, a, names, i + 1))
            path = os.path.join(d, names[i])
            arcname = f"{a}/{names[i]}" if a else names[i]
            try:
                st = os.lstat(path)
            except OSError as exc:
                raise LayerError(f"{path}: {exc.strerror}") from exc
            self._add(path, st, arcname)
            if stat.S_ISDIR(st.st_mode):
                stack.append((path, arcname, listing(path), 0))

    def _marker(self, arcname: str) -> None:
        mtime = self.source_date_epoch if self.source_date_epoch is not None else 0
        name = arcname.encode("utf-8", "surrogateescape")
        self._pipe.write(tarformat.header(name, tarformat.REGTYPE, mode=0, mtime=mtime))

    def add_whiteout(self, arcname: str) -> None:
        """Record that ``arcname`` (in a lower layer) is deleted: an empty ``dir/.wh.name``."""
        self._check_open()
        name = normalize_arcname(arcname)
        if not name:
            raise LayerError("a whiteout needs a name (the root cannot be deleted)")
        head, _, base = name.rpartition("/")
        self._marker(f"{head}/.wh.{base}" if head else f".wh.{base}")

    def add_opaque(self, dir_arcname: str) -> None:
        """Record that directory ``dir_arcname`` hides all lower content: ``dir/.wh..wh..opq``."""
        self._check_open()
        name = normalize_arcname(dir_arcname)
        self._marker(f"{name}/.wh..wh..opq" if name else ".wh..wh..opq")

    def close(self) -> LayerInfo:
        """End the tar stream, flush the compressor; the layer's digest, size and diff_id."""
        if self.info is not None:
            return self.info
        self._pipe.write(tarformat.END_OF_ARCHIVE)
        digest, size, diff_id = self._pipe.finish()
        self.info = LayerInfo(digest, size, diff_id, self.media_type, self.compression)
        return self.info


def write_layer(src_dir: str | os.PathLike, out: BinaryIO, compression: str = "gzip", *,
                source_date_epoch: int | None = None, level: int | None = None) -> LayerInfo:
    """Pack the content of ``src_dir`` as a layer into ``out``; its :class:`LayerInfo`."""
    if not os.path.isdir(src_dir):
        raise LayerError(f"{os.fspath(src_dir)}: not a directory")
    with LayerWriter(out, compression, source_date_epoch=source_date_epoch, level=level) as w:
        w.add_tree(src_dir)
    return w.close()
