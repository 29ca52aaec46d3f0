"""An image's root filesystem, read without mounting: its layer snapshots seen merged.

A build step often needs to look at the files of the image it builds on before it changes
anything: COPY must know whether its destination is a directory and where a symlink on the
way leads, ``--chown=app`` reads ``/etc/passwd``, ``COPY --from=build /out`` reads another
stage's files. Mounting an overlay for each question would cost a mount per step; part 7's
:class:`~part7_union.LayerStack` answers them from the snapshot directories directly, the way
overlayfs would (top layer first, whiteouts hide, opaque directories stop the merge).

Paths are resolved *inside* the root: a symlink met on the way is followed as if the root were
``/`` (``/bin -> usr/bin``, ``evil -> ../../..`` both stay inside), as BuildKit's copy does.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

#: the Linux limit on symlinks followed in one path lookup
MAX_SYMLINKS = 40


def split_path(path: str) -> list[str]:
    """``/a/./b//c/`` -> ``["a", "b", "c"]`` (``..`` kept: resolution handles it)."""
    return [p for p in path.split("/") if p not in ("", ".")]


class RootfsView:
    """The merged files of ``lowers`` (snapshot dirs, top layer first); empty when there are none.

    Nodes are part 7 ``Node`` values: ``rel`` (``a/b``), ``path`` (the real file in the layer
    that provides it), ``st`` (its lstat).
    """

    def __init__(self, lowers: Sequence[str | os.PathLike]) -> None:
        self.lowers = tuple(Path(p) for p in lowers)
        self._stack = None
        if self.lowers:
            from part7_union import LayerStack

            self._stack = LayerStack(self.lowers)
        self._root = None
        self._children: dict[str, dict] = {}

    @property
    def empty(self) -> bool:
        return self._stack is None

    def root(self):
        if self._stack is None:
            return None
        if self._root is None:
            self._root = self._stack.root()
        return self._root

    def children(self, node) -> dict:
        """The entries of directory ``node`` by name (cached for the life of the view)."""
        if node is None or not node.is_dir:
            return {}
        found = self._children.get(node.rel)
        if found is None:
            found = self._children[node.rel] = self._stack.children(node)
        return found

    def resolve(self, path: str, *, follow_final: bool = True) -> tuple[str, object | None]:
        """Resolve ``path`` in the root: ``(resolved path without a leading /, node or None)``.

        Symlinks in the parents are always followed (inside the root); the last component only
        with ``follow_final``. A missing component gives ``(the path as far as it goes, None)``
        with the rest appended unresolved.
        """
        todo = split_path(path)
        done: list[str] = []
        node = self.root()
        links = 0
        while todo:
            name = todo.pop(0)
            if name == "..":
                if done:
                    done.pop()
                node = self._walk(done)
                continue
            child = self.children(node).get(name) if node is not None else None
            if child is None:
                return "/".join(done + [name] + todo), None
            if stat.S_ISLNK(child.st.st_mode) and (todo or follow_final):
                links += 1
                if links > MAX_SYMLINKS:
                    return "/".join(done + [name] + todo), None
                target = os.readlink(child.path)
                if target.startswith("/"):
                    done = []
                todo = split_path(target) + todo
                node = self._walk(done)
                continue
            done.append(name)
            node = child
        return "/".join(done), node

    def _walk(self, parts: list[str]):
        node = self.root()
        for name in parts:
            node = self.children(node).get(name)
            if node is None:
                return None
        return node

    def lookup(self, path: str, *, follow_final: bool = True):
        """The node at ``path`` (resolved in the root), or None."""
        return self.resolve(path, follow_final=follow_final)[1]

    def is_dir(self, path: str) -> bool:
        node = self.lookup(path)
        return node is not None and node.is_dir

    def read_text(self, path: str) -> str | None:
        """The text of a file of the image (``/etc/passwd``), or None when there is none.

        Read by part 6's :func:`~part6_runtime.read_image_file`, the one reader of image files:
        anything but a regular file (a FIFO would block forever), or a file over its size
        limit, is a ``SpecError`` (a ``ValueError``) naming ``path``."""
        node = self.lookup(path)
        if node is None:
            return None
        from part6_runtime import read_image_file  # only when a name is looked up

        data = read_image_file(node.path, path)
        return None if data is None else data.decode("utf-8", "replace")

    def walk(self, node) -> Iterator:
        """Every entry below directory ``node``, parents before children, names sorted."""
        stack = [iter(self.children(node).values())]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                continue
            yield child
            if child.is_dir:
                stack.append(iter(self.children(child).values()))


__all__ = ["RootfsView", "split_path"]
