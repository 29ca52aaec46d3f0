"""Directory trees: a stack of overlay-format layers seen merged, a copy of it, a description.

A *layer directory* here is in overlay format: deletions are whiteouts (character device 0/0)
and opaque directories carry ``<trusted|user>.overlay.opaque=y``. :class:`LayerStack` resolves a
stack of them the way overlayfs does, without mounting anything:

* the topmost layer that has a name decides what it is (a whiteout hides it);
* a directory is merged from the consecutive layers, top down, that have a directory there,
  stopping after an opaque one and at the first layer where the name is a non-directory.

The copy snapshotter uses it to copy the merged view once (each file from the layer that
provides it) and to diff a container's rootfs against the layers without a second copy.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from part1_overview import model
from part4_tar import RootDir, copy_data, fd_path

from .errors import SnapshotError
from .whiteouts import is_opaque, is_whiteout, read_xattrs


@model(frozen=True)
class Node:
    """One entry of a merged tree: ``rel`` ("a/b"; "" for the root), the real ``path`` that
    provides it, its lstat, and for a directory the layer directories merged into it."""

    rel: str
    path: Path
    st: os.stat_result
    sources: tuple[Path, ...] = ()

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)


class LayerStack:
    """The merged view of ``layers_top_first`` (overlay-format dirs; one plain dir works too).

    With ``overlay_format=False`` whiteout devices and opaque xattrs are ordinary entries (a
    container's rootfs may hold a real 0/0 device); use it for a single plain directory.
    """

    def __init__(self, layers_top_first: Sequence[str | os.PathLike], *, overlay_format: bool = True) -> None:
        self.layers = tuple(Path(p) for p in layers_top_first)
        self.overlay_format = overlay_format

    @classmethod
    def of(cls, tree: "str | os.PathLike | Sequence[str | os.PathLike] | LayerStack") -> "LayerStack":
        """A plain directory (one path) or a stack of layer dirs (a sequence, top first)."""
        if isinstance(tree, LayerStack):
            return tree
        if isinstance(tree, (str, os.PathLike)):
            return cls([tree], overlay_format=False)
        return cls(tree)

    def root(self) -> Node:
        existing = tuple(p for p in self.layers if p.is_dir())
        if not existing:
            if not self.layers:
                raise SnapshotError("no layer directories given")
            raise SnapshotError(f"layer directory missing: {self.layers[0]}")
        return Node("", existing[0], os.lstat(existing[0]), existing)

    def children(self, node: Node) -> dict[str, Node]:
        """The visible children of directory ``node`` by name (whiteouts resolved, not listed)."""
        seen: dict[str, Node | None] = {}
        for src in node.sources:
            for name in os.listdir(src):
                if name in seen:
                    continue
                p = src / name
                st = os.lstat(p)
                if self.overlay_format and is_whiteout(st):
                    seen[name] = None
                    continue
                rel = f"{node.rel}/{name}" if node.rel else name
                seen[name] = Node(rel, p, st, self._dir_sources(node, name) if stat.S_ISDIR(st.st_mode) else ())
        return {name: seen[name] for name in sorted(seen, key=os.fsencode) if seen[name] is not None}

    def child(self, node: Node, name: str) -> Node | None:
        """``children(node).get(name)`` without listing the directory: the topmost layer that
        has ``name`` decides (None when none has it, or a whiteout hides it)."""
        for p, st in _present(node.sources, name):
            if self.overlay_format and is_whiteout(st):
                return None
            rel = f"{node.rel}/{name}" if node.rel else name
            return Node(rel, p, st, self._dir_sources(node, name) if stat.S_ISDIR(st.st_mode) else ())
        return None

    def _dir_sources(self, parent: Node, name: str) -> tuple[Path, ...]:
        out = []
        for p, st in _present(parent.sources, name):
            if not stat.S_ISDIR(st.st_mode):
                break  # a file or whiteout here hides every lower layer's entry
            out.append(p)
            if not self.overlay_format:
                break
            if is_opaque(p):
                break
        return tuple(out)

    def walk(self, node: Node | None = None) -> Iterator[Node]:
        """Every entry below ``node`` (default: the root), parents before children, by name."""
        node = self.root() if node is None else node
        for child in self.children(node).values():
            yield child
            if child.is_dir:
                yield from self.walk(child)


def _present(sources: tuple[Path, ...], name: str) -> Iterator[tuple[Path, os.stat_result]]:
    """(path, lstat) of ``name`` in each of ``sources`` that has it, top first."""
    for src in sources:
        p = src / name
        try:
            yield p, os.lstat(p)
        except FileNotFoundError:
            continue


# -- describing a tree ---------------------------------------------------------------------

def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def describe_node(node: Node) -> tuple:
    """(type, mode, uid, gid, what) with ``what`` the content digest, link target or device,
    then the xattrs (overlay bookkeeping left out). Times and directory sizes are left out."""
    st = node.st
    mode = stat.S_IMODE(st.st_mode)
    fmt = stat.S_IFMT(st.st_mode)
    if fmt == stat.S_IFREG:
        kind, what = "file", f"{st.st_size}:{_file_digest(node.path)}"
    elif fmt == stat.S_IFDIR:
        kind, what = "dir", ""
    elif fmt == stat.S_IFLNK:
        kind, what = "symlink", os.readlink(node.path)
    elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
        kind, what = "char" if fmt == stat.S_IFCHR else "block", f"{os.major(st.st_rdev)},{os.minor(st.st_rdev)}"
    elif fmt == stat.S_IFIFO:
        kind, what = "fifo", ""
    else:
        kind, what = "socket", ""
    xattrs = tuple(read_xattrs(node.path).items()) if fmt != stat.S_IFLNK else ()
    return (kind, oct(mode), st.st_uid, st.st_gid, what, xattrs)


def describe_tree(tree: "str | os.PathLike | Sequence[str | os.PathLike] | LayerStack") -> dict[str, tuple]:
    """``{relative path: describe_node(...)}`` for a plain directory or a stack of layers.

    Two trees with equal descriptions hold the same names, types, modes, owners, contents,
    link targets, devices and xattrs: "byte for byte, with modes and owners".
    """
    stack = LayerStack.of(tree)
    root = stack.root()
    out = {".": describe_node(root)}
    for node in stack.walk(root):
        out[node.rel] = describe_node(node)
    return out


# -- copying a tree ------------------------------------------------------------------------

def copy_tree(tree: "str | os.PathLike | Sequence[str | os.PathLike] | LayerStack", dest: str | os.PathLike) -> None:
    """Copy the merged view of ``tree`` into the directory ``dest`` (created, or empty).

    Keeps types, modes, owners, xattrs (not overlay's), times, devices and hard links (within
    the copy). Each file is read once, from the layer that provides it, and written through
    part 4's RootDir: inside ``dest`` whatever the names and links, never through a link.
    """
    stack = LayerStack.of(tree)
    root = stack.root()
    links: dict[tuple[int, int], str] = {}
    dirs: list[tuple[str, os.stat_result]] = [("", root.st)]
    with RootDir(dest, create=True) as rd:
        for node in stack.walk(root):
            try:
                _copy_entry(rd, node, links)
            except OSError as e:
                raise SnapshotError(f"copy {node.path} -> {Path(dest) / node.rel}: {e.strerror}") from None
            if node.is_dir:
                dirs.append((node.rel, node.st))
        fd = rd.make_dir("")
        try:
            _set_meta(fd_path(fd), root.path, root.st)
        finally:
            os.close(fd)
        # directory times last, deepest first: creating children changed them
        for rel, st in reversed(dirs):
            rd.set_times(rel, (st.st_atime_ns, st.st_mtime_ns))


def _copy_entry(rd: RootDir, node: Node, links: dict[tuple[int, int], str]) -> None:
    st = node.st
    fmt = stat.S_IFMT(st.st_mode)
    if fmt == stat.S_IFDIR:
        fd = rd.make_dir(node.rel, 0o700)
        try:
            _set_meta(fd_path(fd), node.path, st)
        finally:
            os.close(fd)
        return
    key = (st.st_dev, st.st_ino)
    if st.st_nlink > 1 and key in links:
        rd.link(links[key], node.rel)
        return
    if fmt == stat.S_IFREG:
        src = os.open(node.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            fd = rd.create_file(node.rel, 0o600)
            try:
                copy_data(src, fd)
                _set_meta(fd, node.path, st)
                os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(fd)
        finally:
            os.close(src)
    elif fmt == stat.S_IFLNK:
        where = rd.symlink(os.readlink(node.path), node.rel)
        _set_meta(f"{fd_path(where.fd)}/{where.name}", node.path, st)
        rd.set_times(node.rel, (st.st_atime_ns, st.st_mtime_ns))
    else:  # devices, fifos, sockets
        where = rd.mknod(node.rel, st.st_mode, st.st_rdev)
        fd = os.open(where.name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=where.fd)
        try:
            _set_meta(fd_path(fd), node.path, st)
            os.utime(fd_path(fd), ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(fd)
    if st.st_nlink > 1:
        links[key] = node.rel


def _set_meta(target: str | int, source: Path, st: os.stat_result) -> None:
    """Owner first (chown clears set-id bits and file capabilities), then mode, then xattrs.

    ``target`` is an open descriptor, a ``/proc/self/fd/N`` path (a link to the file itself,
    followed) or, for a symlink, ``/proc/self/fd/DIR/NAME`` (not followed).
    Without root, files owned by others are kept as ours (a rootless copy cannot give them away).
    """
    link = stat.S_ISLNK(st.st_mode)
    try:
        if isinstance(target, int):
            os.fchown(target, st.st_uid, st.st_gid)
        else:
            os.chown(target, st.st_uid, st.st_gid, follow_symlinks=not link)
    except PermissionError:
        if os.geteuid() == 0:
            raise
    if not link:
        os.chmod(target, stat.S_IMODE(st.st_mode))
        for name, value in read_xattrs(source).items():
            os.setxattr(target, name, value)
