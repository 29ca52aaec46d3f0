"""A directory that paths never leave: the one way this project writes into a root filesystem.

A build writes into many roots: a layer extracted into a snapshot, a COPY's snapshot made from
its files, mount points in a container's root filesystem. The names it writes come from hostile
input (an archive, a Dockerfile, an image), and so do the symlinks already in the root: a
naive ``open(os.path.join(root, name))`` follows ``etc -> /etc`` onto the host. :class:`RootDir`
resolves every path the way ``openat2(RESOLVE_IN_ROOT)`` does, but with plain ``os`` calls
(Python has no ``openat2``): from a file descriptor of the root, one component at a time, each
opened with ``O_NOFOLLOW`` from its parent's descriptor.

* A symlink met on the way is followed *as if the root were* ``/``: an absolute target starts
  again at the root, and ``..`` never climbs above it, so ``evil -> /etc`` and
  ``evil -> ../../..`` both lead back inside. More than 40 symlinks on one path is a loop.
* A name to write is checked before anything is written: a ``..`` part or a NUL byte is
  refused (:func:`split_name`); a leading ``/`` means the root.
* The last component of a write is never followed: whatever is there (a symlink, a hard link
  to a file elsewhere) is removed and created anew, with ``O_EXCL|O_NOFOLLOW``, ``mkdirat``,
  ``symlinkat``, ``mknodat``; an existing directory is kept.
* A component swapped for a symlink between two checks is harmless: ``O_NOFOLLOW`` sees the
  symlink and it is resolved inside the root, and a directory already opened stays the
  directory that was checked, wherever its name now points.

Writing a tree is a stream of names in the same few directories, so the descriptors of the
directories resolved last stay open (a small LRU): a COPY of 20,000 files opens each directory
once instead of walking every file's path from the root. Removing a directory or a symlink
drops them (a cached directory might have been reached through it).
"""

from __future__ import annotations

import errno
import os
import stat
from collections import OrderedDict, deque
from typing import NamedTuple

from .errors import LayerError, UnsafePathError, show

#: the Linux limit on symlinks followed in one path lookup
MAX_SYMLINKS = 40
#: the Linux limit on the length of a path name
PATH_MAX = 4096
#: directory descriptors kept open by one RootDir (far below any RLIMIT_NOFILE)
CACHED_DIRS = 64

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LIST_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

Id = tuple[int, int]


def split_name(name: str | tuple[str, ...]) -> tuple[str, ...]:
    """The parts of a name to write, relative to the root: ``/a/./b/`` -> ``("a", "b")``.

    Raises :class:`UnsafePathError` for a ``..`` part or a NUL byte, and LayerError for a
    name longer than PATH_MAX. A tuple is taken as parts already split and checked.
    """
    if isinstance(name, tuple):
        return name
    if "\0" in name:
        # no file name holds a NUL; C code would cut the name short there
        raise UnsafePathError(name, "NUL byte in the name")
    parts = name.split("/")
    if "" in parts or "." in parts:
        parts = [p for p in parts if p and p != "."]
    if ".." in parts:
        raise UnsafePathError(name, "'..' would escape the root")
    if len(name) > PATH_MAX // 4 and len(name.encode("utf-8", "surrogateescape")) > PATH_MAX:
        # what path-based tools can create at all; it also bounds the depth, and with it the
        # work and memory one name can cost
        raise LayerError(f"{show(name)}: longer than PATH_MAX ({PATH_MAX} bytes)")
    return tuple(parts)


def fd_path(fd: int) -> str:
    """A path naming the file of ``fd`` itself (for calls that have no f* form on O_PATH)."""
    return f"/proc/self/fd/{fd}"


def copy_data(src_fd: int, dst_fd: int) -> None:
    """All of ``src_fd`` into ``dst_fd`` (a file just created inside a root): in the kernel
    with ``copy_file_range`` when it can, else read/write. Descriptors only, no path."""
    try:
        while os.copy_file_range(src_fd, dst_fd, 1 << 30):
            pass
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF):
            raise
    # copy_file_range refused (another file system on an old kernel, a special file): the
    # offsets it may have moved are reset and the copy done in user space
    os.lseek(src_fd, 0, os.SEEK_SET)
    os.lseek(dst_fd, 0, os.SEEK_SET)
    os.ftruncate(dst_fd, 0)
    while True:
        data = os.read(src_fd, 1 << 20)
        if not data:
            break
        view = memoryview(data)
        while view:
            view = view[os.write(dst_fd, view):]


def _id(st: os.stat_result) -> Id:
    return st.st_dev, st.st_ino


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def climb(fd: int, expected: Id, what: str) -> int:
    """Open ``..`` of the directory ``fd``, check it is the one we came from, close ``fd``.

    Walks keep one directory open at a time and climb back through ``..``, so a tree nesting
    thousands of directories costs neither thousands of descriptors nor recursion. On an
    error ``fd`` stays open (the caller closes it).
    """
    up = os.open("..", _LIST_FLAGS, dir_fd=fd)
    if _id(os.fstat(up)) != expected:
        os.close(up)
        raise LayerError(f"{what}: a directory was moved while it was written")
    os.close(fd)
    return up


def remove_tree(name: str, parent_fd: int) -> None:
    """``rm -rf`` of the directory ``name`` in ``parent_fd``: never follows a symlink.

    Iterative, with one directory open at a time (``shutil.rmtree`` recurses: a tree that
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
            fd = climb(fd, levels[-1][1] if levels else top, f"removing {show(name)}")
            os.rmdir(level[0], dir_fd=fd)
    finally:
        os.close(fd)


class Parent(NamedTuple):
    """Where a name lives: ``fd`` of its directory (borrowed: valid until the next call on the
    :class:`RootDir`), the last component ``name`` ("" for the root itself), and ``real``, the
    directory's path below the root with every symlink resolved."""

    fd: int
    name: str
    real: tuple[str, ...]


class _Dir(NamedTuple):
    fd: int
    names: tuple[str, ...]  # the real path below the root
    ids: tuple[Id, ...]  # (st_dev, st_ino) of each directory of ``names``


class _Cursor:
    """Where :meth:`RootDir._walk` stands: a directory descriptor (borrowed, the root's or a
    cached one, until a directory is opened here), the real names below the root that lead to
    it and their (st_dev, st_ino), and the symlinks followed so far."""

    __slots__ = ("fd", "follows", "ids", "names", "owned", "root", "show_as")

    def __init__(self, root: "RootDir", d: _Dir, show_as: str) -> None:
        self.root = root
        self.fd, self.owned = d.fd, False
        self.names, self.ids = list(d.names), list(d.ids)
        self.follows = 0
        self.show_as = show_as

    def _move(self, fd: int, owned: bool) -> None:
        if self.owned:
            os.close(self.fd)
        self.fd, self.owned = fd, owned

    def up(self) -> None:
        """``..``: never above the root (the root is its own parent, as in chroot), and only to
        the directory this one was reached from."""
        if not self.names:
            return
        self.names.pop()
        self.ids.pop()
        expected = self.ids[-1] if self.ids else self.root.id
        up = os.open("..", _LIST_FLAGS, dir_fd=self.fd)
        if _id(os.fstat(up)) != expected:
            os.close(up)
            raise LayerError(f"{show(self.show_as)}: a directory was moved while it was resolved")
        self._move(up, True)

    def down(self, part: str, todo: deque, create: bool) -> None:
        """Into the directory ``part`` (made when missing and ``create``); a symlink there, or
        a name swapped meanwhile, puts what to resolve instead at the front of ``todo``."""
        try:
            nfd = os.open(part, _DIR_FLAGS, dir_fd=self.fd)
        except FileNotFoundError:
            if not create:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory",
                                        "/".join(self.names + [part])) from None
            nfd = self._make(part)
            if nfd is None:
                todo.appendleft(part)
                return
        except OSError as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            todo.extendleft(reversed(self._follow(part)))
            return
        self._move(nfd, True)
        self.names.append(part)
        self.ids.append(_id(os.fstat(nfd)))

    def _make(self, part: str) -> int | None:
        """Make the missing directory ``part`` and open it; None when something else took its
        name meanwhile (to be looked at again, bounded like symlinks)."""
        made = True
        try:
            os.mkdir(part, 0o700, dir_fd=self.fd)
        except FileExistsError:
            made = False  # made meanwhile, or something else is there now
        try:
            nfd = os.open(part, _DIR_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP, errno.ENOENT):
                raise
            self._count_follow()
            return None
        if made:
            # a parent the name did not list: 0755 as Docker makes it, whatever the umask
            os.chmod(fd_path(nfd), 0o755)
        return nfd

    def _follow(self, part: str) -> list[str]:
        """The symlink ``part``'s target as parts, resolved as if the root were ``/``."""
        st = os.stat(part, dir_fd=self.fd, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", "/".join(self.names + [part])) from None
        self._count_follow()
        target = os.readlink(part, dir_fd=self.fd)
        if target.startswith("/"):
            # an absolute symlink means the root of this tree, not of the host
            self._move(self.root.fd, False)
            self.names.clear()
            self.ids.clear()
        return target.split("/")

    def _count_follow(self) -> None:
        self.follows += 1
        if self.follows > MAX_SYMLINKS:
            raise UnsafePathError(self.show_as, "too many levels of symbolic links (a symlink loop)") from None

    def keep(self) -> _Dir:
        """The directory reached, as a :class:`_Dir` the caller's cache owns."""
        if not self.owned:
            self.fd, self.owned = os.dup(self.fd), True
        self.owned = False  # the cache owns it now
        return _Dir(self.fd, tuple(self.names), tuple(self.ids))

    def close(self) -> None:
        if self.owned:
            os.close(self.fd)
            self.owned = False


class RootDir:
    """The directory ``root`` (a path or a directory descriptor, duplicated), every path inside
    it resolved inside it. ``create``: make ``root`` (and its parents) when missing.

    Reading: :meth:`open` and :meth:`resolve` take paths as a container names them
    (``/etc/passwd``, ``../x``: ``..`` stops at the root, like ``openat2(RESOLVE_IN_ROOT)``).
    Writing: :meth:`make_dir`, :meth:`create_file`, :meth:`symlink`, :meth:`link`,
    :meth:`mknod`, :meth:`remove` take names (:func:`split_name`: no ``..``); missing parent
    directories are created 0755 (as Docker does), and the last component is never followed.
    Use it as a context manager, or :meth:`close` it.
    """

    def __init__(self, root: str | os.PathLike | int, *, create: bool = False) -> None:
        if isinstance(root, int):
            self.path = fd_path(root)
            self.fd = os.fcntl(root, os.F_DUPFD_CLOEXEC, 0) if hasattr(os, "F_DUPFD_CLOEXEC") else os.dup(root)
        else:
            self.path = os.fspath(root)
            if create:
                os.makedirs(self.path, exist_ok=True)
            # the root itself is the caller's choice, trusted: a symlink to it is fine
            self.fd = os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        if not stat.S_ISDIR(os.fstat(self.fd).st_mode):
            os.close(self.fd)
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", self.path)
        self.id = _id(os.fstat(self.fd))
        self._top = _Dir(self.fd, (), ())
        #: requested directory parts -> resolved directory (owned descriptors), oldest first
        self._dirs: OrderedDict[tuple[str, ...], _Dir] = OrderedDict()

    def __repr__(self) -> str:
        return f"RootDir({self.path!r})"

    def __enter__(self) -> "RootDir":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.forget()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def forget(self) -> None:
        """Close the cached directory descriptors (after the tree was changed by other means)."""
        while self._dirs:
            _, d = self._dirs.popitem()
            os.close(d.fd)

    # -- resolution ------------------------------------------------------------------------
    def _cache(self, key: tuple[str, ...], d: _Dir) -> None:
        self._dirs[key] = d
        while len(self._dirs) > CACHED_DIRS:
            _, old = self._dirs.popitem(last=False)
            os.close(old.fd)

    def _walk(self, parts: tuple[str, ...], create: bool, show_as: str) -> _Dir:
        """The directory ``parts`` (``..`` allowed: clamped at the root). Symlinks are followed
        inside the root; missing directories are made (0755) when ``create``, otherwise
        FileNotFoundError. A non-directory on the way is NotADirectoryError. Borrowed result."""
        if not parts:
            return self._top
        hit = self._dirs.get(parts)
        if hit is not None:
            self._dirs.move_to_end(parts)
            return hit
        start = len(parts) - 1
        while start > 0 and parts[:start] not in self._dirs:
            start -= 1
        d = self._dirs[parts[:start]] if start else self._top
        at = _Cursor(self, d, show_as)
        try:
            for i in range(start, len(parts)):
                todo = deque((parts[i],))
                while todo:
                    part = todo.popleft()
                    if part in ("", "."):
                        continue
                    if part == "..":
                        at.up()
                    else:
                        at.down(part, todo, create)
                # a requested component is resolved: keep its directory for the next names
                d = at.keep()
                self._cache(parts[: i + 1], d)
            return d
        except BaseException:
            at.close()
            raise

    def _parent(self, parts: tuple[str, ...], create: bool, show_as: str) -> Parent:
        if not parts:
            return Parent(self.fd, "", ())
        d = self._walk(parts[:-1], create, show_as)
        return Parent(d.fd, parts[-1], d.names)

    def parent(self, name: str | tuple[str, ...], *, create: bool = True) -> Parent:
        """The directory that holds ``name`` (resolved inside the root; made when missing with
        ``create``) and its last component. Raises UnsafePathError for a ``..`` name."""
        parts = split_name(name)
        return self._parent(parts, create, name if isinstance(name, str) else "/".join(name))

    def directory(self, name: str | tuple[str, ...], *, create: bool = False) -> Parent:
        """The directory ``name`` itself, symlinks followed inside the root (``fd`` borrowed,
        ``name`` empty, ``real`` its path below the root)."""
        parts = split_name(name)
        d = self._walk(parts, create, name if isinstance(name, str) else "/".join(name))
        return Parent(d.fd, "", d.names)

    def _lookup(self, path: str, follow: bool, missing_ok: bool = False) -> tuple[Parent, os.stat_result | None]:
        """Resolve a container path: (its directory and last name, the lstat there or None).
        With ``follow`` a symlink at the end is followed too (inside the root). With
        ``missing_ok`` a missing directory on the way is no error: the rest of the path is
        taken as it stands below it (``..`` cancelling the name before it), and the Parent's
        ``fd`` is then -1."""
        parts = tuple(p for p in path.split("/") if p and p != ".")
        follows = 0
        while True:
            # the last component is looked at by itself: ``..`` there is a directory step
            while parts and parts[-1] == "..":
                if missing_ok:
                    try:
                        parts = self._walk(parts, False, path).names
                    except FileNotFoundError:
                        break
                else:
                    parts = self._walk(parts, False, path).names
            if not parts:
                return Parent(self.fd, "", ()), os.fstat(self.fd)
            try:
                d = self._walk(parts[:-1], False, path)
            except FileNotFoundError:
                if not missing_ok:
                    raise
                # the longest part that exists, then either a symlink to follow or the missing name
                k = len(parts) - 2
                while k > 0:
                    try:
                        d = self._walk(parts[:k], False, path)
                        break
                    except FileNotFoundError:
                        k -= 1
                else:
                    d = self._top
                st = _lstat(parts[k], d.fd) if parts[k] != ".." else None
                if st is not None and stat.S_ISLNK(st.st_mode):
                    follows += 1
                    if follows > MAX_SYMLINKS:
                        raise UnsafePathError(path, "too many levels of symbolic links (a symlink loop)") from None
                    target = os.readlink(parts[k], dir_fd=d.fd)
                    rest = tuple(p for p in target.split("/") if p and p != ".")
                    parts = (rest if target.startswith("/") else d.names + rest) + parts[k + 1:]
                    continue
                names: list[str] = list(d.names)
                for part in parts[k:]:
                    if part == "..":
                        if names:
                            names.pop()
                    else:
                        names.append(part)
                return Parent(-1, names[-1] if names else "", tuple(names[:-1])), None
            where = Parent(d.fd, parts[-1], d.names)
            st = _lstat(where.name, where.fd)
            if st is None or not follow or not stat.S_ISLNK(st.st_mode):
                return where, st
            follows += 1
            if follows > MAX_SYMLINKS:
                raise UnsafePathError(path, "too many levels of symbolic links (a symlink loop)")
            target = os.readlink(where.name, dir_fd=where.fd)
            rest = tuple(p for p in target.split("/") if p and p != ".")
            parts = rest if target.startswith("/") else where.real + rest

    def open(self, path: str, flags: int = os.O_PATH, mode: int = 0o644, *, follow: bool = True) -> int:
        """A new descriptor of ``path`` resolved inside the root (the caller closes it).

        ``path`` is a container path: absolute or not, ``..`` stops at the root. Symlinks on
        the way are followed inside the root; the last one only with ``follow``. ``flags`` are
        ``os.open`` flags (``O_PATH`` by default: a handle to mount, stat or read through
        ``/proc/self/fd/N``); ``O_NOFOLLOW`` is always added for the last component, so a
        symlink swapped in after the check fails with ELOOP instead of being followed.
        Raises FileNotFoundError, NotADirectoryError, UnsafePathError (a symlink loop).
        """
        for _ in range(MAX_SYMLINKS + 1):
            where, st = self._lookup(path, follow)
            if not where.name:
                return os.open(".", (flags & ~os.O_NOFOLLOW) | os.O_CLOEXEC, mode, dir_fd=self.fd)
            try:
                fd = os.open(where.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=where.fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP and follow:
                    continue  # a symlink appeared after the lstat: resolve it again
                if exc.filename is None or exc.filename == where.name:
                    raise type(exc)(exc.errno, exc.strerror, path) from None
                raise
            if follow and flags & os.O_PATH and stat.S_ISLNK(os.fstat(fd).st_mode):
                os.close(fd)  # O_PATH|O_NOFOLLOW opens a symlink itself: one swapped in late
                continue
            return fd
        raise UnsafePathError(path, "too many levels of symbolic links (a symlink loop)")

    def resolve(self, path: str, *, follow: bool = True) -> str:
        """The real path of ``path`` below the root (``""`` for the root), symlinks followed
        inside it (the last one with ``follow``). Nothing needs to exist: below a missing
        directory the rest is taken as it stands (``..`` cancelling the name before it), as
        the place where that path would be created."""
        where, _ = self._lookup(path, follow, missing_ok=True)
        return "/".join(where.real + ((where.name,) if where.name else ()))

    def lstat(self, path: str) -> os.stat_result | None:
        """The lstat of ``path`` (parents followed inside the root, not the last), or None."""
        try:
            return self._lookup(path, False)[1]
        except (FileNotFoundError, NotADirectoryError):
            return None

    # -- writing ---------------------------------------------------------------------------
    def _make(self, name: str | tuple[str, ...], make, *, keep=None):
        """``make(parent)`` at ``name`` (parents made, inside the root), and its result. When
        something is there already (EEXIST: nothing was followed), it is removed, never
        followed, and ``make`` runs again; unless ``keep(lstat)`` says to keep it: then the
        result is None. Returns (where, result)."""
        parts = split_name(name)
        shown = name if isinstance(name, str) else "/".join(name)
        p = self._parent(parts, True, shown)
        if not p.name:
            raise IsADirectoryError(errno.EISDIR, "Is a directory: the root itself", self.path)
        for _ in range(MAX_SYMLINKS):
            try:
                return p, make(p)
            except FileExistsError:
                st = _lstat(p.name, p.fd)
                if st is None:
                    continue  # gone meanwhile
                if keep is not None and keep(st):
                    return p, None
                if self._remove(p, st):
                    p = self._parent(parts, True, shown)  # the cached directories were dropped
        # something is made there again each time it is removed: a race we do not run forever
        raise FileExistsError(errno.EEXIST, "File exists", shown)

    def _remove(self, p: Parent, st: os.stat_result) -> bool:
        """Remove what ``st`` describes at ``p``; whether the cached directories were dropped."""
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            os.unlink(p.name, dir_fd=p.fd)
            return False
        # a cached directory may be this one, one below it, or one reached through this symlink
        fd = os.dup(p.fd)
        self.forget()
        try:
            if stat.S_ISDIR(st.st_mode):
                remove_tree(p.name, fd)
            else:
                os.unlink(p.name, dir_fd=fd)
        finally:
            os.close(fd)
        return True

    def make_dir(self, name: str | tuple[str, ...], mode: int = 0o755) -> int:
        """The directory ``name``: kept when there is one, else made with exactly ``mode``
        (anything else there is replaced). Returns an ``O_PATH`` descriptor of it (the caller
        closes it; metadata through :func:`fd_path`). An empty ``name`` is the root."""
        if not split_name(name):
            return os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.fd)
        p, made = self._make(name, lambda p: os.mkdir(p.name, 0o700, dir_fd=p.fd) or True,
                             keep=lambda st: stat.S_ISDIR(st.st_mode))
        fd = os.open(p.name, _DIR_FLAGS, dir_fd=p.fd)
        if made:
            os.chmod(fd_path(fd), mode)
        return fd

    def create_file(self, name: str | tuple[str, ...], mode: int = 0o600) -> int:
        """A new empty regular file at ``name`` (what was there is removed first), open for
        writing (``O_EXCL|O_NOFOLLOW``: never a file or link that was there). ``mode`` is
        masked by the umask, as open(2) does: set it with ``fchmod``."""
        parts = split_name(name)
        # the common case of a big tree: a new name in a directory resolved a moment ago
        d = self._dirs.get(parts[:-1]) if len(parts) > 1 else None
        if d is not None:
            self._dirs.move_to_end(parts[:-1])
            try:
                return os.open(parts[-1], _CREATE_FLAGS, mode, dir_fd=d.fd)
            except FileExistsError:
                pass  # something is there: replaced below
        return self._make(parts, lambda p: os.open(p.name, _CREATE_FLAGS, mode, dir_fd=p.fd))[1]

    def symlink(self, target: str, name: str | tuple[str, ...]) -> Parent:
        """A symlink ``name -> target`` (the target is stored as it is, never followed here).
        Returns where it is, for ``*at`` calls with ``follow_symlinks=False``."""
        if "\0" in target:
            raise UnsafePathError(target, "NUL byte in the link target")
        return self._make(name, lambda p: os.symlink(target, p.name, dir_fd=p.fd))[0]

    def link(self, existing: str | tuple[str, ...], name: str | tuple[str, ...]) -> Parent:
        """A hard link ``name`` to the file ``existing`` (resolved inside the root; its last
        component is not followed: a link to a symlink links the symlink). FileNotFoundError
        when it is missing, IsADirectoryError for a directory. Returns where it is."""
        shown = existing if isinstance(existing, str) else "/".join(existing)
        name = split_name(name)  # both names are checked before anything is looked at
        src = self._parent(split_name(existing), False, shown)
        if not src.name:
            raise IsADirectoryError(errno.EISDIR, "Is a directory", shown)
        src_fd = os.dup(src.fd)  # a borrowed descriptor would be closed if the cache is dropped
        try:
            sst = _lstat(src.name, src_fd)
            if sst is None:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", shown)
            if stat.S_ISDIR(sst.st_mode):
                raise IsADirectoryError(errno.EISDIR, "Is a directory", shown)
            return self._make(name, lambda p: os.link(src.name, p.name, src_dir_fd=src_fd, dst_dir_fd=p.fd,
                                                      follow_symlinks=False),
                              keep=lambda st: _id(st) == _id(sst))[0]  # already that file
        finally:
            os.close(src_fd)

    def mknod(self, name: str | tuple[str, ...], mode: int, device: int = 0) -> Parent:
        """A fifo (``stat.S_IFIFO`` in ``mode``) or device node at ``name``, its permission
        bits exactly those of ``mode`` (not masked by the umask). Returns where it is."""
        if stat.S_ISFIFO(mode):
            p = self._make(name, lambda p: os.mkfifo(p.name, 0o600, dir_fd=p.fd))[0]
        else:
            p = self._make(name, lambda p: os.mknod(p.name, stat.S_IFMT(mode) | 0o600, device, dir_fd=p.fd))[0]
        # chmod by descriptor: a node swapped for a symlink since mknod is never followed
        fd = os.open(p.name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=p.fd)
        try:
            if stat.S_IFMT(os.fstat(fd).st_mode) == stat.S_IFMT(mode):
                os.chmod(fd_path(fd), mode & 0o7777)
        finally:
            os.close(fd)
        return p

    def set_times(self, name: str | tuple[str, ...], ns: tuple[int, int]) -> None:
        """atime and mtime (nanoseconds) of ``name``, never following its last component
        (``utimensat(AT_SYMLINK_NOFOLLOW)`` from its directory's descriptor)."""
        p = self.parent(name, create=False)
        if not p.name:
            os.utime(fd_path(self.fd), ns=ns)
        else:
            os.utime(p.name, ns=ns, dir_fd=p.fd, follow_symlinks=False)

    def remove(self, name: str | tuple[str, ...]) -> bool:
        """Remove ``name`` (a directory with all it holds; a symlink itself, never its target).
        Whether there was something to remove."""
        parts = split_name(name)
        if not parts:
            raise IsADirectoryError(errno.EISDIR, "Is a directory: the root itself", self.path)
        try:
            p = self._parent(parts, False, name if isinstance(name, str) else "/".join(name))
        except (FileNotFoundError, NotADirectoryError):
            return False
        st = _lstat(p.name, p.fd)
        if st is None:
            return False
        self._remove(p, st)
        return True


__all__ = ["Parent", "RootDir", "copy_data", "fd_path", "remove_tree", "split_name"]
