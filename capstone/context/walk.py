"""Walking a build context: every path the .dockerignore lets through, in a fixed order.

The walk is depth-first, each directory's entries sorted by the bytes of their names (as Go's
``filepath.Walk`` sorts them), never following a symbolic link. An excluded directory is not
entered unless an exception (``!pattern``) could re-include something below it; when one does,
the excluded directories above the re-included path are yielded just before it, so that a
consumer can create them (BuildKit's fsutil does the same).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import ContextError
from .dockerignore import PatternMatcher

__all__ = ["ContextError", "walk_context"]



def _sorted_entries(path: str) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            entries = list(it)
    except OSError as e:
        raise ContextError(f"build context: cannot read {e.filename or path}: {e.strerror}") from None
    entries.sort(key=lambda e: os.fsencode(e.name))
    return entries


def walk_context(root: str | Path, matcher: PatternMatcher | None = None) -> Iterator[str]:
    """Yield the slash paths (relative to ``root``) of everything ``matcher`` keeps.

    Directories are yielded before their contents; ``root`` itself is not yielded.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise ContextError(f"build context: {root} is not a directory")
    if matcher is not None and not matcher:
        matcher = None
    # excluded directories entered because an exception may apply below: [path, yielded?, depth]
    pending: list[list] = []
    # one frame per open directory: (its path, slash path, entries left, depth, pattern hits)
    stack: list[tuple[str, str, Iterator[os.DirEntry], int, tuple[bool, ...] | None]] = [
        (root, "", iter(_sorted_entries(root)), 0, None)
    ]
    while stack:
        abspath, rel, entries, depth, hits = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            # leaving an excluded directory: it is no longer pending
            while pending and pending[-1][2] >= depth and depth > 0:
                pending.pop()
            continue
        child = f"{rel}/{entry.name}" if rel else entry.name
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError as e:
            raise ContextError(f"build context: cannot stat {child}: {e.strerror}") from None
        child_hits = None
        if matcher is not None:
            excluded, child_hits = matcher.matches_with_parent(child, hits)
            if excluded:
                if is_dir and matcher.may_include_below(child):
                    pending.append([child, False, depth + 1])
                    stack.append((entry.path, child, iter(_sorted_entries(entry.path)), depth + 1, child_hits))
                continue
        for item in pending:
            if not item[1]:
                item[1] = True
                yield item[0]
        yield child
        if is_dir:
            stack.append((entry.path, child, iter(_sorted_entries(entry.path)), depth + 1, child_hits))
