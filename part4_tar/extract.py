"""Layer -> directory: safe extraction into a root, whiteouts applied in the same pass.

The rule: nothing outside ``root`` is ever created, changed or followed. Names are checked
(a ``..`` part is refused; a leading ``/`` is read relative to the root), and every path is
resolved here, one component at a time, from a file descriptor of the root, the way
``openat2(RESOLVE_IN_ROOT)`` does: a symlink met on the way (one planted by an earlier entry or
one already in the root) is followed *as if the root were ``/``*, so ``evil -> /etc`` or
``evil -> ../../..`` lead back into the root, never out of it. The last component is never
followed: an existing file, symlink or hard link at that name is removed and created anew, so a
write can never pass through it. More than 40 symlinks on one path is a loop.

Whiteouts (OCI image-spec, "Whiteouts"): an entry ``dir/.wh.name`` deletes ``dir/name`` of the
lower layers; ``dir/.wh..wh..opq`` makes ``dir`` opaque: its lower content is cleared, but
entries of this same layer stay. Neither marker is created on disk.

Metadata: numeric owner (when running as root), mode, extended attributes (after the owner:
chown clears ``security.capability``), then mtimes; a directory's mtime is set after all its
children are written.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections import deque
from collections.abc import Iterable
from typing import BinaryIO

from .compression import open_decompressed, read_head
from .errors import LayerError, UnsafeArchiveError

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
#: the Linux limit on symlinks followed in one path lookup
MAX_SYMLINKS = 40
#: the Linux limit on the length of a path name
PATH_MAX = 4096
CHUNK = 1 << 20

#: ids are 32-bit; (uid_t)-1 means "leave unchanged" to chown, so it is no owner either
MAX_ID = 2**32 - 2
#: overlayfs bookkeeping (opaque, redirect, metacopy, origin...): never image content, and on a
#: directory later used as an overlay lower dir it would change what the overlay shows
PRIVATE_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LIST_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _show(name: str) -> str:
    """An entry name for a message: quoted, and shortened when it is very long (one line)."""
    if len(name) > 160:
        name = f"{name[:100]}...{name[-40:]}"
    return repr(name)


def split_name(name: str, what: str = "layer entry") -> list[str]:
    """The parts of an archive name, relative to the root; ``..`` raises UnsafeArchiveError."""
    if "\0" in name:
        # no file name holds a NUL; a PAX path with one would be cut short by C code
        raise UnsafeArchiveError(f"{what} {_show(name)}: NUL byte in the name")
    if len(name) > PATH_MAX // 4 and len(name.encode("utf-8", "surrogateescape")) > PATH_MAX:
        # what path-based tools (tar, Go's os package) can create at all; it also bounds the
        # depth, and with it the work and memory one entry can cost
        raise LayerError(f"{what} {_show(name)}: longer than PATH_MAX ({PATH_MAX} bytes)")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{what} {_show(name)}: '..' would escape the root")
    return parts


def _id(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _climb(fd: int, expected: tuple[int, int], what: str) -> int:
    """Open ``..`` of the directory ``fd``, check it is the one we came from, close ``fd``.

    Walks keep one directory open at a time and climb back through ``..``, so a hostile layer
    nesting thousands of directories costs neither thousands of descriptors nor recursion. On
    an error ``fd`` stays open (the caller closes it).
    """
    up = os.open("..", _LIST_FLAGS, dir_fd=fd)
    if _id(os.fstat(up)) != expected:
        os.close(up)
        raise LayerError(f"{what}: a directory was moved during extraction")
    os.close(fd)
    return up


class _Root:
    """Path resolution scoped to a root directory, with file descriptors only."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.id = _id(os.fstat(self.fd))
        self.is_root = os.geteuid() == 0

    def close(self) -> None:
        os.close(self.fd)

    def walk(self, parts: list[str], entry: str, *, create: bool) -> tuple[int, tuple[str, ...]] | None:
        """Open the directory ``parts`` (symlinks followed inside the root) -> (fd, real parts).

        Missing directories are created (mode 0755) when ``create``; otherwise None is returned.
        The caller closes the fd. One directory is open at a time: ``..`` (from a symlink's
        target) climbs back through the directory's real parent, never above the root.
        """
        todo = deque(parts)
        names: list[str] = []  # the real path so far, below the root
        ids: list[tuple[int, int]] = []  # (st_dev, st_ino) of each directory of ``names``
        follows = 0
        fd = os.dup(self.fd)
        try:
            while todo:
                part = todo.popleft()
                if part in ("", "."):
                    continue
                if part == "..":
                    # ".." never climbs above the root: the root is its own parent, as in chroot
                    if names:
                        names.pop()
                        ids.pop()
                        fd = _climb(fd, ids[-1] if ids else self.id, f"layer entry {_show(entry)}")
                    continue
                try:
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        os.close(fd)
                        return None
                    # a parent the layer did not list: created like Docker does, 0755 whatever the umask
                    os.mkdir(part, 0o755, dir_fd=fd)
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                    os.chmod(f"/proc/self/fd/{nfd}", 0o755)
                except OSError as exc:
                    if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                        raise
                    st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                    if not stat.S_ISLNK(st.st_mode):
                        if not create:
                            os.close(fd)
                            return None
                        where = "/".join(names + [part])
                        raise LayerError(f"layer entry {_show(entry)}: {_show(where)} is not a directory") from None
                    follows += 1
                    if follows > MAX_SYMLINKS:
                        raise UnsafeArchiveError(f"layer entry {_show(entry)}: too many levels of symbolic links (a symlink loop)") from None
                    target = os.readlink(part, dir_fd=fd)
                    if target.startswith("/"):
                        # an absolute symlink means the root of the image, not of the host
                        top = os.dup(self.fd)
                        os.close(fd)
                        fd = top
                        names.clear()
                        ids.clear()
                    todo.extendleft(reversed(target.split("/")))
                    continue
                os.close(fd)
                fd = nfd
                names.append(part)
                ids.append(_id(os.fstat(fd)))
            return fd, tuple(names)
        except BaseException:
            os.close(fd)
            raise


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _remove(name: str, dir_fd: int, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        _remove_tree(name, dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def _remove_tree(name: str, parent_fd: int) -> None:
    """``rm -rf`` of the directory ``name`` in ``parent_fd``: never follows a symlink.

    Iterative, with one directory open at a time (``shutil.rmtree`` recurses: a layer that
    nests a few thousand directories would crash it).
    """
    top = _id(os.fstat(parent_fd))
    fd = os.open(name, _LIST_FLAGS, dir_fd=parent_fd)
    # per level: [name, (dev, ino), subdirectories still to remove, or None before listing]
    levels: list[list] = [[name, _id(os.fstat(fd)), None]]
    try:
        while levels:
            level = levels[-1]
            if level[2] is None:
                subdirs = []
                for child in os.listdir(fd):
                    st = _lstat(child, fd)
                    if st is None:
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        subdirs.append(child)
                    else:
                        os.unlink(child, dir_fd=fd)
                level[2] = subdirs
            if level[2]:
                child = level[2].pop()
                nfd = os.open(child, _LIST_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nfd
                levels.append([child, _id(os.fstat(fd)), None])
                continue
            levels.pop()
            fd = _climb(fd, levels[-1][1] if levels else top, f"removing {_show(name)}")
            os.rmdir(level[0], dir_fd=fd)
    finally:
        os.close(fd)


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
    def __init__(self, root: _Root, whiteouts: bool) -> None:
        self.root = root
        self.whiteouts = whiteouts
        #: real paths written by this layer, and all their ancestors (kept by an opaque marker)
        self.touched: set[tuple[str, ...]] = set()
        self.written: set[tuple[str, ...]] = set()
        #: directories whose mode and mtime are set at the end (after their children)
        self.dirs: list[tuple[tuple[str, ...], int, int]] = []
        #: the last parent resolved (entries come sorted, so it is usually the next one's too):
        #: (archive parts, fd, real parts). Creating entries cannot change how an existing path
        #: resolves; removing or replacing one can, so every removal drops the cache.
        self._parent: tuple[tuple[str, ...], int, tuple[str, ...]] | None = None

    def _forget_parent(self) -> None:
        if self._parent is not None:
            os.close(self._parent[1])
            self._parent = None

    def _remove(self, name: str, dir_fd: int, st: os.stat_result) -> None:
        self._forget_parent()
        _remove(name, dir_fd, st)

    def _resolve_parent(self, parts: list[str], entry: str) -> tuple[int, tuple[str, ...]]:
        key = tuple(parts)
        if self._parent is not None and self._parent[0] == key:
            return os.dup(self._parent[1]), self._parent[2]
        walked = self.root.walk(parts, entry, create=True)
        assert walked is not None
        fd, real = walked
        self._forget_parent()
        self._parent = (key, os.dup(fd), real)
        return fd, real

    def _touch(self, real: tuple[str, ...]) -> None:
        self.written.add(real)
        for i in range(len(real) + 1):
            self.touched.add(real[:i])

    # -- one entry ------------------------------------------------------------------------
    def entry(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = split_name(m.name)
        base = parts[-1] if parts else ""
        if (m.issym() or m.islnk()) and "\0" in m.linkname:
            raise UnsafeArchiveError(f"layer entry {_show(m.name)}: NUL byte in the link target")
        if not (0 <= m.uid <= MAX_ID and 0 <= m.gid <= MAX_ID):
            raise LayerError(f"layer entry {_show(m.name)}: owner {m.uid}:{m.gid} is out of range")
        if self.whiteouts and base.startswith(WHITEOUT_PREFIX):
            if base == OPAQUE:
                self.opaque(parts[:-1], m.name)
            elif base.startswith(".wh..wh."):
                pass  # AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): never content
            else:
                self.whiteout(parts[:-1], base[len(WHITEOUT_PREFIX):], m.name)
            return
        if not parts:
            if not m.isdir():
                raise UnsafeArchiveError(f"layer entry {_show(m.name)}: a {_kind(m)} cannot replace the root")
            self.root_dir(m)
            return
        pfd, real_parent = self._resolve_parent(parts[:-1], m.name)
        try:
            real = real_parent + (base,)
            if m.isreg():
                self.regular(tar, m, pfd, base)
            elif m.isdir():
                self.directory(m, pfd, base, real)
            elif m.issym():
                self.symlink(m, pfd, base)
            elif m.islnk():
                self.hardlink(m, pfd, base)
            elif m.isfifo() or m.ischr() or m.isblk():
                self.special(m, pfd, base)
            else:
                raise LayerError(f"layer entry {_show(m.name)}: unsupported tar entry type {m.type!r}")
            self._touch(real)
        finally:
            os.close(pfd)

    def _replace(self, pfd: int, base: str, keep_dir: bool = False) -> os.stat_result | None:
        """Remove what is at ``base`` (never followed) unless it is a directory to keep."""
        st = _lstat(base, pfd)
        if st is None:
            return None
        if keep_dir and stat.S_ISDIR(st.st_mode):
            return st
        self._remove(base, pfd, st)
        return None

    def _own(self, m: tarfile.TarInfo, *, fd: int | None = None, name: str | None = None, dir_fd: int | None = None) -> None:
        if not self.root.is_root:
            return  # only root may give files away; a rootless extraction keeps its own ids
        try:
            if fd is not None:
                os.fchown(fd, m.uid, m.gid)
            else:
                os.chown(name, m.uid, m.gid, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            # root of a user namespace: ids outside its uid_map/gid_map cannot be given
            raise LayerError(
                f"layer entry {_show(m.name)}: cannot give it owner {m.uid}:{m.gid}: "
                "not mapped in this user namespace"
            ) from None

    def _set_xattrs(self, m: tarfile.TarInfo, target) -> None:
        for key, value in _xattrs(m).items():
            try:
                if isinstance(target, int):
                    os.setxattr(target, key, value)
                else:
                    os.setxattr(target, key, value, follow_symlinks=False)
            except OSError as exc:
                if exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EACCES) and (not self.root.is_root or m.issym()):
                    # unprivileged: security.* and trusted.* are not ours to set; and the kernel
                    # refuses user.* attributes on symlinks, even to root
                    continue
                raise LayerError(f"layer entry {_show(m.name)}: setting extended attribute {key}: {exc.strerror}") from exc

    def regular(self, tar: tarfile.TarFile, m: tarfile.TarInfo, pfd: int, base: str) -> None:
        self._replace(pfd, base)
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=pfd)
        try:
            src = tar.extractfile(m)
            assert src is not None
            while chunk := src.read(CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            self._own(m, fd=fd)
            os.fchmod(fd, m.mode & 0o7777)
            self._set_xattrs(m, fd)
            ns = _ns(m.mtime)
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)

    def directory(self, m: tarfile.TarInfo, pfd: int, base: str, real: tuple[str, ...]) -> None:
        if self._replace(pfd, base, keep_dir=True) is None:
            os.mkdir(base, 0o700, dir_fd=pfd)
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            self._own(m, fd=fd)
            self._set_xattrs(m, fd)
        finally:
            os.close(fd)
        self.dirs.append((real, m.mode & 0o7777, _ns(m.mtime)))

    def root_dir(self, m: tarfile.TarInfo) -> None:
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.root.fd)
        try:
            self._own(m, fd=fd)
            self._set_xattrs(m, fd)
        finally:
            os.close(fd)
        self.dirs.append(((), m.mode & 0o7777, _ns(m.mtime)))

    def symlink(self, m: tarfile.TarInfo, pfd: int, base: str) -> None:
        self._replace(pfd, base)
        # the target is stored as it is: it is only ever read, never followed, by extraction
        os.symlink(m.linkname, base, dir_fd=pfd)
        self._own(m, name=base, dir_fd=pfd)
        self._set_xattrs(m, f"/proc/self/fd/{pfd}/{base}")
        ns = _ns(m.mtime)
        os.utime(base, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)

    def hardlink(self, m: tarfile.TarInfo, pfd: int, base: str) -> None:
        # "the linkname of a hard link is the name of an earlier entry of the archive": resolved
        # in the root like any name; its last component is not followed (a link to a symlink
        # links the symlink itself)
        tparts = split_name(m.linkname, "hard link target of")
        if not tparts:
            raise UnsafeArchiveError(f"layer entry {_show(m.name)}: hard link to the root directory")
        walked = self.root.walk(tparts[:-1], m.name, create=False)
        if walked is None:
            raise LayerError(f"layer entry {_show(m.name)}: hard link target {_show(m.linkname)} does not exist")
        tfd, _ = walked
        try:
            tst = _lstat(tparts[-1], tfd)
            if tst is None:
                raise LayerError(f"layer entry {_show(m.name)}: hard link target {_show(m.linkname)} does not exist")
            if stat.S_ISDIR(tst.st_mode):
                raise UnsafeArchiveError(f"layer entry {_show(m.name)}: hard link to a directory ({_show(m.linkname)})")
            st = _lstat(base, pfd)
            if st is not None:
                if (st.st_dev, st.st_ino) == (tst.st_dev, tst.st_ino):
                    return  # already that file
                self._remove(base, pfd, st)
            os.link(tparts[-1], base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(tfd)

    def special(self, m: tarfile.TarInfo, pfd: int, base: str) -> None:
        self._replace(pfd, base)
        if m.isfifo():
            os.mkfifo(base, 0o600, dir_fd=pfd)
        else:
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            try:
                os.mknod(base, 0o600 | kind, os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
            except PermissionError:
                raise LayerError(
                    f"layer entry {_show(m.name)}: cannot create {_kind(m)} {m.devmajor},{m.devminor}: "
                    "not permitted here (device nodes need CAP_MKNOD outside a user namespace)"
                ) from None
        self._own(m, name=base, dir_fd=pfd)
        # base was just created by us, as a fifo or device: chmod cannot be misled by a symlink
        os.chmod(base, m.mode & 0o7777, dir_fd=pfd)
        self._set_xattrs(m, f"/proc/self/fd/{pfd}/{base}")
        ns = _ns(m.mtime)
        os.utime(base, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)

    # -- whiteouts ------------------------------------------------------------------------
    def whiteout(self, dir_parts: list[str], name: str, entry: str) -> None:
        if name in ("", ".", "..") or "/" in name:
            raise UnsafeArchiveError(f"layer entry {_show(entry)}: whiteout of {name!r} is not a file name")
        walked = self.root.walk(dir_parts, entry, create=False)
        if walked is None:
            return  # nothing below to delete
        pfd, real_parent = walked
        try:
            if real_parent + (name,) in self.written:
                return  # "whiteouts apply only to lower layers", never to this layer's entries
            st = _lstat(name, pfd)
            if st is not None:
                self._remove(name, pfd, st)
        finally:
            os.close(pfd)

    def opaque(self, dir_parts: list[str], entry: str) -> None:
        walked = self.root.walk(dir_parts, entry, create=True)
        assert walked is not None
        dfd, real = walked
        try:
            self._clear_lower(dfd, real)
        finally:
            os.close(dfd)
        self._touch(real)

    def _clear_lower(self, dfd: int, real: tuple[str, ...]) -> None:
        """Remove what this layer did not write under ``real`` (its own entries stay).

        Depth first without recursion, one directory open at a time (see ``_climb``).
        """
        fd = os.open(".", _LIST_FLAGS, dir_fd=dfd)
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
                            self._remove(name, fd, st)
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
                    fd = _climb(fd, levels[-1][1], "opaque directory")
        finally:
            os.close(fd)

    # -- end ------------------------------------------------------------------------------
    def finish(self) -> None:
        """Directory modes and mtimes, deepest first (writing children changed the mtimes)."""
        self._forget_parent()
        for real, mode, ns in sorted(self.dirs, key=lambda d: len(d[0]), reverse=True):
            fd = self._open_real(real)
            if fd is None:
                continue  # replaced or deleted later in the layer
            try:
                os.chmod(f"/proc/self/fd/{fd}", mode)
                os.utime(f"/proc/self/fd/{fd}", ns=(ns, ns))
            finally:
                os.close(fd)

    def _open_real(self, real: tuple[str, ...]) -> int | None:
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


def extract_layer(blob: BinaryIO, root: str | os.PathLike, *, whiteouts: bool = True) -> None:
    """Apply one layer blob (any compression, detected) onto the directory ``root``.

    ``root`` is created if missing. With ``whiteouts=False`` the ``.wh.`` markers are written
    as the plain files they are in the tar stream.
    """
    root = os.fspath(root)
    try:
        os.makedirs(root, exist_ok=True)
        r = _Root(root)
    except (FileExistsError, NotADirectoryError):
        raise LayerError(f"{root}: not a directory") from None
    except OSError as exc:
        raise LayerError(f"{root}: cannot extract here: {exc.strerror}") from exc
    ex = _Extractor(r, whiteouts)
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
            ex.entry(tar, m)
            tar.members.clear()  # stream mode keeps every TarInfo otherwise: memory grows
        name = None
        ex.finish()
    except LayerError:
        raise
    except tarfile.TarError as exc:
        where = f" after entry {_show(name)}" if name else ""
        raise LayerError(f"not a valid tar stream{where}: {exc}") from exc
    except (OSError, EOFError) as exc:
        what = f"layer entry {_show(name)}" if name else f"extracting into {root}"
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise LayerError(f"{what}: {detail}") from exc
    finally:
        ex._forget_parent()
        r.close()


def apply_layers(blobs: Iterable, root: str | os.PathLike) -> None:
    """Extract layers in order (lowest first) onto ``root``: the image's root filesystem.

    Each item is a path to a blob or an open binary stream.
    """
    for blob in blobs:
        if isinstance(blob, (str, bytes, os.PathLike)):
            try:
                f = open(blob, "rb")
            except OSError as exc:
                raise LayerError(f"{os.fsdecode(blob)}: {exc.strerror}") from exc
            with f:
                try:
                    extract_layer(f, root)
                except LayerError as exc:
                    raise type(exc)(f"{os.fsdecode(blob)}: {exc}") from exc
        else:
            extract_layer(blob, root)
