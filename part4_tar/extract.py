"""Layer -> directory: safe extraction into a root, whiteouts applied in the same pass.

The rule: nothing outside ``root`` is ever created, changed or followed. Every name is checked
(a ``..`` part is refused; a leading ``/`` is read relative to the root) and written through
:class:`~part4_tar.RootDir`, which resolves it the way ``openat2(RESOLVE_IN_ROOT)`` does: a
symlink met on the way (one planted by an earlier entry or one already in the root) is followed
*as if the root were* ``/``, so ``evil -> /etc`` or ``evil -> ../../..`` lead back into the
root, never out of it. The last component is never followed: an existing file, symlink or hard
link at that name is removed and created anew, so a write can never pass through it. More than
40 symlinks on one path is a loop.

Whiteouts (OCI image-spec, "Whiteouts"): an entry ``dir/.wh.name`` deletes ``dir/name`` of the
lower layers; ``dir/.wh..wh..opq`` makes ``dir`` opaque: its lower content is cleared, but
entries of this same layer stay. Neither marker is created on disk.

Metadata: numeric owner (when running as root), mode, extended attributes (after the owner:
chown clears ``security.capability``), then mtimes; a directory's mtime is set after all its
children are written.

Rootless (root of a user namespace), owners are given through the namespace's uid map: uid
1000 of the layer is uid 1000 inside, some subordinate uid outside. Device nodes are the one
thing the kernel refuses there (only the host's root may mknod a device): they are left out
and reported once per layer as a :class:`SkippedEntriesWarning`, never a failed extraction.
A container gets its /dev from the runtime anyway.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
import warnings
from collections.abc import Callable, Iterable
from typing import BinaryIO

from .compression import open_decompressed, read_head
from .errors import LayerError, SkippedEntriesWarning, UnsafeArchiveError, UnsafePathError
from .errors import show as _show
from .rootdir import _DIR_FLAGS, _LIST_FLAGS, RootDir, _id, _lstat, climb, fd_path, remove_tree
from .rootdir import split_name as _split

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
CHUNK = 1 << 20

#: ids are 32-bit; (uid_t)-1 means "leave unchanged" to chown, so it is no owner either
MAX_ID = 2**32 - 2
#: overlayfs bookkeeping (opaque, redirect, metacopy, origin...): never image content, and on a
#: directory later used as an overlay lower dir it would change what the overlay shows
PRIVATE_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
#: what ``privileges=False`` leaves out of a file: the bits and attribute that give privileges
SETID_BITS = stat.S_ISUID | stat.S_ISGID
CAPABILITY_XATTR = "security.capability"

def _entry_parts(name: str, what: str = "layer entry") -> tuple[str, ...]:
    """The parts of an archive name, relative to the root; ``..`` raises UnsafeArchiveError."""
    try:
        return _split(name)
    except UnsafePathError as exc:
        raise UnsafeArchiveError(f"{what} {_show(name)}: {exc.reason}") from None
    except LayerError as exc:
        raise LayerError(f"{what} {exc}") from None


def _xattrs(member: tarfile.TarInfo) -> dict[str, bytes]:
    out = {}
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            name = key[len("SCHILY.xattr."):]
            if "\0" in name or not name:
                raise LayerError(f"layer entry {_show(member.name)}: invalid extended attribute name {name!r}")
            if name.startswith(PRIVATE_XATTR_PREFIXES):
                continue
            # tarfile decodes values as UTF-8 with surrogateescape: this gives the bytes back
            out[name] = value.encode("utf-8", "surrogateescape")
    return out


class _Extractor:
    def __init__(self, root: RootDir, whiteouts: bool, owner: tuple[int, int] | None,
                 skip_root: bool = False, privileges: bool = True) -> None:
        self.root = root
        self.privileges = privileges
        self.whiteouts = whiteouts
        self.owner = owner
        self.skip_root = skip_root
        self.is_root = os.geteuid() == 0
        #: device nodes the kernel refused to create (rootless), by entry name
        self.skipped: list[str] = []
        #: real paths written by this layer, and all their ancestors (kept by an opaque marker)
        self.touched: set[tuple[str, ...]] = set()
        self.written: set[tuple[str, ...]] = set()
        #: directories whose mode and mtime are set at the end (after their children)
        self.dirs: list[tuple[tuple[str, ...], int, int]] = []

    def _touch(self, real: tuple[str, ...]) -> None:
        self.written.add(real)
        for i in range(len(real) + 1):
            self.touched.add(real[:i])

    # -- one entry ------------------------------------------------------------------------
    def entry(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = _entry_parts(m.name)
        base = parts[-1] if parts else ""
        if (m.issym() or m.islnk()) and "\0" in m.linkname:
            raise UnsafeArchiveError(f"layer entry {_show(m.name)}: NUL byte in the link target")
        if not (0 <= m.uid <= MAX_ID and 0 <= m.gid <= MAX_ID):
            raise LayerError(f"layer entry {_show(m.name)}: owner {m.uid}:{m.gid} is out of range")
        try:
            if self.whiteouts and base.startswith(WHITEOUT_PREFIX):
                if base == OPAQUE:
                    self.opaque(parts[:-1])
                elif base.startswith(".wh..wh."):
                    pass  # AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): never content
                else:
                    self.whiteout(parts[:-1], base[len(WHITEOUT_PREFIX):], m.name)
                return
            if not parts:
                if self.skip_root:
                    return  # an archive ADD unpacks: its "." never touches the destination
                if not m.isdir():
                    raise UnsafeArchiveError(f"layer entry {_show(m.name)}: a {_kind(m)} cannot replace the root")
                self.root_dir(m)
                return
            real = self.root.parent(parts).real + (base,)
            if m.isreg():
                self.regular(tar, m, parts)
            elif m.isdir():
                self.directory(m, parts, real)
            elif m.issym():
                self.symlink(m, parts)
            elif m.islnk():
                self.hardlink(m, parts)
            elif m.isfifo() or m.ischr() or m.isblk():
                if not self.privileges and not m.isfifo():
                    return  # no device node outside a store (see extract_layer)
                self.special(m, parts)
            else:
                raise LayerError(f"layer entry {_show(m.name)}: unsupported tar entry type {m.type!r}")
            self._touch(real)
        except UnsafePathError as exc:
            raise UnsafeArchiveError(f"layer entry {_show(m.name)}: {exc.reason}") from None
        except NotADirectoryError as exc:
            raise LayerError(f"layer entry {_show(m.name)}: {_show(exc.filename or '?')} is not a directory") from None

    def _own(self, m: tarfile.TarInfo, *, fd: int | None = None, name: str | None = None, dir_fd: int | None = None) -> None:
        uid, gid = self.owner if self.owner is not None else (m.uid, m.gid)
        if not self.is_root and self.owner is None:
            return  # only root may give files away; a rootless extraction keeps its own ids
        try:
            if fd is not None:
                os.chown(fd_path(fd), uid, gid)
            else:
                os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            # root of a user namespace: ids outside its uid_map/gid_map cannot be given
            raise LayerError(
                f"layer entry {_show(m.name)}: cannot give it owner {uid}:{gid}: "
                "not mapped in this user namespace"
            ) from None

    def _set_xattrs(self, m: tarfile.TarInfo, target, *, follow: bool = False) -> None:
        """``target``: an open descriptor, a path not followed at its end, or with ``follow``
        a ``/proc/self/fd/N`` path (which is a link to the file itself)."""
        for key, value in _xattrs(m).items():
            if key == CAPABILITY_XATTR and not self.privileges:
                continue  # file capabilities are setuid's finer form
            try:
                if isinstance(target, int):
                    os.setxattr(target, key, value)
                else:
                    os.setxattr(target, key, value, follow_symlinks=follow)
            except OSError as exc:
                if exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EACCES) and (not self.is_root or m.issym()):
                    # unprivileged: security.* and trusted.* are not ours to set; and the kernel
                    # refuses user.* attributes on symlinks, even to root
                    continue
                raise LayerError(f"layer entry {_show(m.name)}: setting extended attribute {key}: {exc.strerror}") from exc

    def regular(self, tar: tarfile.TarFile, m: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        fd = self.root.create_file(parts, 0o600)
        try:
            src = tar.extractfile(m)
            assert src is not None
            while chunk := src.read(CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            self._own(m, fd=fd)
            os.fchmod(fd, m.mode & (0o7777 if self.privileges else ~SETID_BITS & 0o7777))
            self._set_xattrs(m, fd)
            ns = _ns(m.mtime)
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)

    def directory(self, m: tarfile.TarInfo, parts: tuple[str, ...], real: tuple[str, ...]) -> None:
        fd = self.root.make_dir(parts, 0o700)
        try:
            self._own(m, fd=fd)
            self._set_xattrs(m, fd_path(fd), follow=True)
        finally:
            os.close(fd)
        self.dirs.append((real, m.mode & 0o7777, _ns(m.mtime)))

    def root_dir(self, m: tarfile.TarInfo) -> None:
        fd = self.root.make_dir("")
        try:
            if self.owner is None:  # an owner given for every entry is not the root's
                self._own(m, fd=fd)
            self._set_xattrs(m, fd_path(fd), follow=True)
        finally:
            os.close(fd)
        self.dirs.append(((), m.mode & 0o7777, _ns(m.mtime)))

    def symlink(self, m: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        # the target is stored as it is: it is only ever read, never followed, by extraction
        p = self.root.symlink(m.linkname, parts)
        self._own(m, name=p.name, dir_fd=p.fd)
        self._set_xattrs(m, f"{fd_path(p.fd)}/{p.name}")
        ns = _ns(m.mtime)
        os.utime(p.name, ns=(ns, ns), dir_fd=p.fd, follow_symlinks=False)

    def hardlink(self, m: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        # "the linkname of a hard link is the name of an earlier entry of the archive": resolved
        # in the root like any name; its last component is not followed (a link to a symlink
        # links the symlink itself)
        tparts = _entry_parts(m.linkname, "hard link target of")
        if not tparts:
            raise UnsafeArchiveError(f"layer entry {_show(m.name)}: hard link to the root directory")
        try:
            self.root.link(tparts, parts)
        except (FileNotFoundError, NotADirectoryError):
            # (the entry's own directory was resolved before: this is the target's side)
            raise LayerError(f"layer entry {_show(m.name)}: hard link target {_show(m.linkname)} does not exist") from None
        except IsADirectoryError:
            raise UnsafeArchiveError(f"layer entry {_show(m.name)}: hard link to a directory ({_show(m.linkname)})") from None

    def special(self, m: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        kind = stat.S_IFIFO if m.isfifo() else stat.S_IFCHR if m.ischr() else stat.S_IFBLK
        try:
            p = self.root.mknod(parts, kind | (m.mode & 0o7777), os.makedev(m.devmajor, m.devminor))
        except PermissionError:
            # device nodes need CAP_MKNOD in the host's user namespace: left out, reported
            self.skipped.append(m.name)
            return
        self._own(m, name=p.name, dir_fd=p.fd)
        self._set_xattrs(m, f"{fd_path(p.fd)}/{p.name}")
        ns = _ns(m.mtime)
        os.utime(p.name, ns=(ns, ns), dir_fd=p.fd, follow_symlinks=False)

    # -- whiteouts ------------------------------------------------------------------------
    def whiteout(self, dir_parts: tuple[str, ...], name: str, entry: str) -> None:
        if name in ("", ".", "..") or "/" in name:
            raise UnsafeArchiveError(f"layer entry {_show(entry)}: whiteout of {name!r} is not a file name")
        try:
            where = self.root.directory(dir_parts)
        except (FileNotFoundError, NotADirectoryError):
            return  # nothing below to delete
        if where.real + (name,) in self.written:
            return  # "whiteouts apply only to lower layers", never to this layer's entries
        self.root.remove(where.real + (name,))

    def opaque(self, dir_parts: tuple[str, ...]) -> None:
        where = self.root.directory(dir_parts, create=True)
        fd = os.open(".", _LIST_FLAGS, dir_fd=where.fd)
        real = where.real
        self.root.forget()  # what is cleared may be a directory the root keeps open
        try:
            self._clear_lower(fd, real)
        finally:
            os.close(fd)
        self._touch(real)

    def _clear_lower(self, fd: int, real: tuple[str, ...]) -> None:
        """Remove what this layer did not write under ``real`` (its own entries stay). ``fd``
        (of ``real``, open for listing) is the caller's.

        Depth first without recursion, one directory open at a time (see ``climb``).
        """
        fd = os.dup(fd)
        # per level: [real parts, (dev, ino), touched subdirectories still to visit, or None]
        levels: list[list] = [[real, _id(os.fstat(fd)), None]]
        try:
            while levels:
                level = levels[-1]
                if level[2] is None:
                    keep = []
                    for name in os.listdir(fd):
                        child = level[0] + (name,)
                        st = _lstat(name, fd)
                        if st is None:
                            continue
                        if child not in self.touched:
                            if stat.S_ISDIR(st.st_mode):
                                remove_tree(name, fd)
                            else:
                                os.unlink(name, dir_fd=fd)
                        elif stat.S_ISDIR(st.st_mode):
                            keep.append(name)
                    level[2] = keep
                if level[2]:
                    name = level[2].pop()
                    nfd = os.open(name, _LIST_FLAGS, dir_fd=fd)
                    os.close(fd)
                    fd = nfd
                    levels.append([level[0] + (name,), _id(os.fstat(fd)), None])
                    continue
                levels.pop()
                if levels:
                    fd = climb(fd, levels[-1][1], "opaque directory")
        finally:
            os.close(fd)

    # -- end ------------------------------------------------------------------------------
    def finish(self) -> None:
        """Directory modes and mtimes, deepest first (writing children changed the mtimes)."""
        self.root.forget()
        for real, mode, ns in sorted(self.dirs, key=lambda d: len(d[0]), reverse=True):
            fd = self._open_real(real)
            if fd is None:
                continue  # replaced or deleted later in the layer
            try:
                os.chmod(fd_path(fd), mode)
                os.utime(fd_path(fd), ns=(ns, ns))
            finally:
                os.close(fd)

    def _open_real(self, real: tuple[str, ...]) -> int | None:
        """The directory at the real path ``real``, no symlink followed (None if it is gone)."""
        fd = os.dup(self.root.fd)
        for part in real:
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                os.close(fd)
                return None
            os.close(fd)
            fd = nfd
        return fd


def _ns(mtime: float) -> int:
    return int(round(mtime * 1_000_000_000))


def _kind(m: tarfile.TarInfo) -> str:
    return {
        tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "directory",
        tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hard link", tarfile.FIFOTYPE: "fifo",
        tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device",
    }.get(m.type, f"entry of type {m.type!r}")


def extract_layer(blob: BinaryIO, root: str | os.PathLike | int, *, whiteouts: bool = True,
                  owner: tuple[int, int] | None = None, skip_root: bool = False, privileges: bool = True,
                  on_entry: Callable[[tarfile.TarInfo], None] | None = None) -> None:
    """Apply one layer blob (any compression, detected) onto the directory ``root`` (a path,
    created if missing, or a directory descriptor).

    With ``whiteouts=False`` the ``.wh.`` markers are written as the plain files they are in
    the tar stream. ``owner`` (uid, gid) gives every entry but the root that owner instead of
    the archive's (``ADD --chown``). An entry naming the root itself (``.``, ``./``, ``/``)
    gives the root its metadata when it is a directory and is refused otherwise; with
    ``skip_root=True`` it is skipped whatever its type, as Docker skips it when ``ADD`` unpacks
    an archive (moby's archive and BuildKit's unpacking both ``continue`` on it).

    ``privileges=False`` is for a directory outside any private store (an export a user asked
    for): a set-user-id or set-group-id bit on a file, a ``security.capability`` attribute,
    a block or character device node, written as root from a hostile image, would be root or
    the host's disk for any local user who reaches the directory. So files lose those bits,
    the attribute is not set and device nodes are not made (FIFOs are), as BuildKit's client
    writes an export when it runs unprivileged.

    ``on_entry`` sees each entry's header as it is read, before it is applied: what a caller
    wants to know of the archive comes in the same single pass over the stream (``ADD`` notes
    which directories the archive names), never by reading it twice.
    """
    shown = root if isinstance(root, int) else os.fspath(root)
    try:
        r = RootDir(root, create=not isinstance(root, int))
    except (FileExistsError, NotADirectoryError):
        raise LayerError(f"{shown}: not a directory") from None
    except OSError as exc:
        raise LayerError(f"{shown}: cannot extract here: {exc.strerror}") from exc
    ex = _Extractor(r, whiteouts, owner, skip_root, privileges)
    name = None
    try:
        head, stream = read_head(open_decompressed(blob))
        if not head:
            return  # an empty stream is an empty layer (as Go's archive/tar reads it)
        tar = tarfile.open(fileobj=stream, mode="r|", errors="surrogateescape")
        while True:
            m = tar.next()
            if m is None:
                break
            name = m.name
            if on_entry is not None:
                on_entry(m)
            ex.entry(tar, m)
            tar.members.clear()  # stream mode keeps every TarInfo otherwise: memory grows
        name = None
        ex.finish()
        if ex.skipped:
            listed = ", ".join(ex.skipped[:4]) + (", ..." if len(ex.skipped) > 4 else "")
            warnings.warn(SkippedEntriesWarning(
                f"{len(ex.skipped)} device node(s) not created ({listed}): mknod(2) of a device is refused "
                "to this process (only the host's root may make one; a container gets its /dev from the runtime)"),
                stacklevel=2)
    except LayerError:
        raise
    except tarfile.TarError as exc:
        where = f" after entry {_show(name)}" if name else ""
        raise LayerError(f"not a valid tar stream{where}: {exc}") from exc
    except (OSError, EOFError) as exc:
        what = f"layer entry {_show(name)}" if name else f"extracting into {shown}"
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise LayerError(f"{what}: {detail}") from exc
    finally:
        r.close()


def apply_layers(blobs: Iterable, root: str | os.PathLike, *, owner: tuple[int, int] | None = None,
                 privileges: bool = True) -> None:
    """Extract layers in order (lowest first) onto ``root``: the image's root filesystem.

    Each item is a path to a blob or an open binary stream. ``owner`` (uid, gid), as
    :func:`extract_layer` takes it: every entry that owner instead of the layer's;
    ``privileges``: as :func:`extract_layer` says.
    """
    for blob in blobs:
        if isinstance(blob, (str, bytes, os.PathLike)):
            try:
                f = open(blob, "rb")
            except OSError as exc:
                raise LayerError(f"{os.fsdecode(blob)}: {exc.strerror}") from exc
            with f:
                try:
                    extract_layer(f, root, owner=owner, privileges=privileges)
                except LayerError as exc:
                    raise type(exc)(f"{os.fsdecode(blob)}: {exc}") from exc
        else:
            extract_layer(blob, root, owner=owner, privileges=privileges)
