"""``RUN --mount=type=bind`` of the build context: only what ``.dockerignore`` lets through.

BuildKit sends a context bind through the same filter as the context of COPY (fsutil's
walker and moby's patterns), so an excluded file is not there at all in the step. Copying
the kept files aside would cost a read and a write of the whole context for every RUN; this
module costs a walk (the one the cache key needs anyway) and one whiteout per excluded entry:

* :func:`context_view` walks the bind source with the build's own context walker
  (:meth:`ContextSource.walk`: moby's rules, exceptions included) and lists what it *hides*:
  each excluded entry whose parent is kept, an excluded directory once (not its contents);
* :func:`make_mask` writes those as overlay whiteouts (character devices 0:0) in a small
  directory shaped like the source (its directories copy the source's mode, owner and
  times, since the top layer's attributes are what an overlay shows);
* the step gets an overlay ``lowerdir=mask:source`` (with an upper dir in the step's scratch
  for ``rw``, so the step's writes never reach the context); ``ls`` inside shows exactly the
  kept files.

Cost for a context of N entries of which E are excluded: N directory entries read (no file
content), E whiteouts made, and the memory of the kept names of one bind source.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from part1_overview import model

from .sources import ContextSource, SourceItem


@model
class ContextView:
    """A bind source in the context: the entries kept (``rel`` below the source) and the
    slash paths it hides (below the source, outermost only)."""

    top: SourceItem
    kept: list[SourceItem]
    hidden: list[str]


def context_view(context: ContextSource, top: SourceItem) -> ContextView:
    """What a bind of directory ``top`` of ``context`` shows, and what it must hide."""
    kept = list(context.walk(top))
    shown = {item.rel for item in kept}
    hidden: list[str] = []
    stack = [("", top.path)]
    while stack:
        rel, path = stack.pop()
        with os.scandir(path) as it:
            for entry in it:
                child = f"{rel}/{entry.name}" if rel else entry.name
                if child not in shown:
                    hidden.append(child)
                elif entry.is_dir(follow_symlinks=False):
                    stack.append((child, entry.path))
    hidden.sort(key=os.fsencode)
    return ContextView(top, kept, hidden)


def make_mask(view: ContextView, mask: Path) -> None:
    """Write ``view.hidden`` as overlay whiteouts under ``mask`` (a new directory), its
    directories carrying the attributes of the source's. Written through part 4's RootDir,
    like every layer directory the build makes: names that are the context's own, never a
    path followed out of ``mask``."""
    from part4_tar import RootDir, fd_path

    mask.mkdir()
    made: list[tuple[str, os.stat_result]] = [("", view.top.st)]
    with RootDir(mask) as rd:
        for rel in view.hidden:
            parts = rel.split("/")
            for i in range(1, len(parts)):
                sub = "/".join(parts[:i])
                if rd.lstat(sub) is None:
                    os.close(rd.make_dir(sub, 0o700))
                    made.append((sub, os.lstat(os.path.join(view.top.path, sub))))
            # a whiteout: "this name does not exist" to every layer below
            rd.mknod(rel, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        for sub, st in reversed(made):
            fd = rd.make_dir(sub)
            try:
                os.chown(fd_path(fd), st.st_uid, st.st_gid)
                os.chmod(fd_path(fd), stat.S_IMODE(st.st_mode))
            finally:
                os.close(fd)
            rd.set_times(sub, (st.st_atime_ns, st.st_mtime_ns))


def kept_items(view: ContextView) -> Iterable[SourceItem]:
    """The top directory and what it keeps, for the cache key."""
    yield view.top
    yield from view.kept


__all__ = ["ContextView", "context_view", "kept_items", "make_mask"]
