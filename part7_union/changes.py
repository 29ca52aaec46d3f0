"""What changed, as a list of :class:`Change`, and that list as an OCI layer.

Two sources of changes:

* an overlay **upper directory** (:func:`upper_changes`): every entry in it is new or changed
  (overlayfs copied it up or created it), a 0/0 character device is a deletion, and a directory
  with ``overlay.opaque=y`` hides everything below it;
* two **plain directories** (:func:`diff_dirs`), for the copy snapshotter: the merged layers as
  they were, and the rootfs after the container ran.

Either way :func:`write_change_list` packs the changes with part 4's ``LayerWriter``:
added and changed entries as themselves (read from disk, hard links kept), deletions as
``dir/.wh.NAME``, opaque directories as the directory followed by ``dir/.wh..wh..opq``.
Entries come in walk order, a directory before its children, so the parents of every change
are in the layer before it (unchanged parents included, as BuildKit and Docker do).
"""

from __future__ import annotations

import enum
import filecmp
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from part1_overview import model
from part4_tar import LayerInfo, LayerWriter

from .errors import ChangesError
from .tree import LayerStack, Node
from .whiteouts import is_opaque, is_whiteout, read_xattrs


class ChangeKind(str, enum.Enum):
    """The letters of ``docker diff``, plus O for an opaque directory."""

    ADD = "A"
    MODIFY = "C"
    DELETE = "D"
    OPAQUE = "O"


@model(frozen=True)
class Change:
    """``kind`` of change at ``path`` (relative, "/"-separated, no leading "./")."""

    kind: ChangeKind
    path: str

    def __str__(self) -> str:
        return f"{self.kind.value} {self.path}"


# -- upper directory -> changes ------------------------------------------------------------

def upper_changes(
    upper: str | os.PathLike,
    lowers_top_first: Sequence[str | os.PathLike] | None = None,
) -> list[Change]:
    """The changes an overlay upper directory records, in walk order.

    Whiteouts become DELETE, opaque directories the directory's own entry then OPAQUE, every
    other entry ADD. With ``lowers_top_first`` given, an entry that exists in the merged lowers
    is reported as MODIFY instead (a copy-up), and whiteouts of names the lowers lack (overlay
    leaves them after a create-then-delete over a deleted name) are dropped.
    """
    upper = Path(upper)
    if not upper.is_dir():
        raise ChangesError(f"upper directory missing: {upper}")
    lowers = LayerStack(lowers_top_first) if lowers_top_first else None
    lower_root = lowers.root() if lowers else None
    out: list[Change] = []
    _upper_walk(upper, "", lowers, lower_root, out)
    return out


def _upper_walk(d: Path, rel: str, lowers: LayerStack | None, lower: Node | None, out: list[Change]) -> None:
    lower_children = lowers.children(lower) if (lowers and lower is not None and lower.is_dir) else {}
    for name in sorted(os.listdir(d), key=os.fsencode):
        p = d / name
        child_rel = f"{rel}/{name}" if rel else name
        st = os.lstat(p)
        below = lower_children.get(name)
        if is_whiteout(st):
            if lowers is None or below is not None:
                out.append(Change(ChangeKind.DELETE, child_rel))
            continue
        kind = ChangeKind.MODIFY if below is not None else ChangeKind.ADD
        out.append(Change(kind, child_rel))
        if stat.S_ISDIR(st.st_mode):
            opaque = is_opaque(p)
            if opaque and below is not None and below.is_dir or opaque and lowers is None:
                out.append(Change(ChangeKind.OPAQUE, child_rel))
            _upper_walk(p, child_rel, lowers, None if opaque else below, out)


# -- two plain trees -> changes ------------------------------------------------------------

def diff_dirs(
    lower: "str | os.PathLike | Sequence[str | os.PathLike] | LayerStack",
    upper_full: str | os.PathLike,
) -> list[Change]:
    """What turns ``lower`` into ``upper_full`` (a complete tree), in walk order.

    ``lower`` is a plain directory, or a sequence of overlay-format layer dirs (top first)
    seen merged. An entry is MODIFY when its type, mode, owner, size, content, link target,
    device number or xattrs differ (mtime is not trusted either way: equal mtimes never skip
    the content comparison, a new mtime alone is no change). Directories are compared by their
    metadata and then entered. A directory none of whose old children survive (two or more)
    becomes OPAQUE plus its new entries, instead of one whiteout per old child.
    """
    old = LayerStack.of(lower)
    new = LayerStack.of(upper_full)
    out: list[Change] = []
    _diff(old, old.root(), new, new.root(), out)
    return out


def _diff(old: LayerStack, o: Node, new: LayerStack, n: Node, out: list[Change]) -> None:
    old_children = old.children(o)
    new_children = new.children(n)
    survivors = sum(1 for name in old_children if name in new_children)
    opaque = bool(o.rel or n.rel) and survivors == 0 and len(old_children) >= 2
    if opaque:
        out.append(Change(ChangeKind.OPAQUE, n.rel))
    for name in sorted(set(old_children) | set(new_children), key=os.fsencode):
        oc, nc = old_children.get(name), new_children.get(name)
        if nc is None:
            if not opaque:
                out.append(Change(ChangeKind.DELETE, oc.rel))
        elif oc is None:
            _add_subtree(new, nc, out)
        elif nc.is_dir and oc.is_dir:
            if not _same_entry(oc, nc):
                out.append(Change(ChangeKind.MODIFY, nc.rel))
            _diff(old, oc, new, nc, out)
        elif nc.is_dir:  # a file (or link...) replaced by a directory: all of it is new
            out.append(Change(ChangeKind.MODIFY, nc.rel))
            for sub in new.walk(nc):
                out.append(Change(ChangeKind.ADD, sub.rel))
        elif not _same_entry(oc, nc):
            out.append(Change(ChangeKind.MODIFY, nc.rel))


def _add_subtree(tree: LayerStack, node: Node, out: list[Change]) -> None:
    out.append(Change(ChangeKind.ADD, node.rel))
    if node.is_dir:
        for sub in tree.walk(node):
            out.append(Change(ChangeKind.ADD, sub.rel))


def _same_entry(a: Node, b: Node) -> bool:
    sa, sb = a.st, b.st
    if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
        return False
    if (stat.S_IMODE(sa.st_mode), sa.st_uid, sa.st_gid) != (stat.S_IMODE(sb.st_mode), sb.st_uid, sb.st_gid):
        return False
    fmt = stat.S_IFMT(sa.st_mode)
    if fmt == stat.S_IFLNK:
        return os.readlink(a.path) == os.readlink(b.path)
    if fmt in (stat.S_IFCHR, stat.S_IFBLK) and sa.st_rdev != sb.st_rdev:
        return False
    if read_xattrs(a.path) != read_xattrs(b.path):
        return False
    if fmt == stat.S_IFREG:
        if sa.st_size != sb.st_size:
            return False
        if (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino):
            return True
        return filecmp.cmp(a.path, b.path, shallow=False)
    return True


# -- changes -> layer ------------------------------------------------------------------------

def write_change_list(
    changes: Iterable[Change],
    root: str | os.PathLike,
    out: BinaryIO,
    compression: str = "gzip",
    *,
    source_date_epoch: int | None = None,
) -> LayerInfo:
    """Pack ``changes`` (in walk order), reading added/changed entries from ``root``."""
    root = Path(root)
    written: set[str] = set()
    with LayerWriter(out, compression, source_date_epoch=source_date_epoch) as w:
        for change in changes:
            for parent in _parents(change.path):
                if parent not in written:
                    _add(w, root, parent)
                    written.add(parent)
            if change.kind is ChangeKind.DELETE:
                w.add_whiteout(change.path)
            elif change.kind is ChangeKind.OPAQUE:
                if change.path not in written:
                    _add(w, root, change.path)
                    written.add(change.path)
                w.add_opaque(change.path)
            elif change.path not in written:
                _add(w, root, change.path)
                written.add(change.path)
        return w.close()


def _parents(path: str) -> Iterator[str]:
    parts = path.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


def _add(w: LayerWriter, root: Path, rel: str) -> None:
    try:
        w.add_path(root / rel, rel)
    except FileNotFoundError:
        raise ChangesError(f"changed entry vanished while packing: {root / rel}") from None


def write_changes(
    upper: str | os.PathLike,
    out: BinaryIO,
    compression: str = "gzip",
    *,
    source_date_epoch: int | None = None,
) -> LayerInfo:
    """An overlay upper directory -> an OCI layer (whiteouts and opaque dirs translated)."""
    return write_change_list(upper_changes(upper), upper, out, compression, source_date_epoch=source_date_epoch)


def write_dir_diff(
    lower: "str | os.PathLike | Sequence[str | os.PathLike] | LayerStack",
    new: str | os.PathLike,
    out: BinaryIO,
    compression: str = "gzip",
    *,
    source_date_epoch: int | None = None,
) -> LayerInfo:
    """The layer that turns ``lower`` (a dir, or layer dirs top first) into ``new``."""
    return write_change_list(diff_dirs(lower, new), new, out, compression, source_date_epoch=source_date_epoch)
