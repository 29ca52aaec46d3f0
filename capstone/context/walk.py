"""The build context as a build sees it: the files ``.dockerignore`` lets through.

BuildKit sends the context through fsutil's walker, and a build sees exactly what it sends:

* the walk is depth-first, each directory's entries sorted by the bytes of their names (as
  Go's ``filepath.Walk`` sorts them), never following a symbolic link;
* each path is matched with its parent directory's results (patternmatcher's
  ``MatchesUsingParentResults``, :meth:`~.dockerignore.PatternMatcher.matches_with_parent`);
* an excluded directory is not entered when no exception (``!pattern``) could re-include
  something below it: it is skipped whole, never read;
* an excluded directory that is entered is sent only if something below it is, just before
  the first such entry (so the re-included file has its parents); one with nothing kept below
  it is not in the context at all.

:class:`ContextTree` answers both questions a build asks: what is below a directory
(:meth:`~ContextTree.walk`) and whether a given path is in the context
(:meth:`~ContextTree.present`); :func:`walk_context` lists the whole context.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import ContextError
from .dockerignore import PatternMatcher

__all__ = ["ContextError", "ContextEntry", "ContextTree", "walk_context"]


Hits = tuple[bool, ...] | None


class ContextEntry:
    """One directory entry of the context: ``rel`` (slash path from the context root),
    ``entry`` (its ``os.DirEntry``), whether it is a directory, whether ``.dockerignore``
    excludes it, and its pattern results (``hits``, for its children)."""

    __slots__ = ("rel", "entry", "is_dir", "excluded", "hits")

    def __init__(self, rel: str, entry: os.DirEntry, is_dir: bool, excluded: bool, hits: Hits) -> None:
        self.rel = rel
        self.entry = entry
        self.is_dir = is_dir
        self.excluded = excluded
        self.hits = hits

    def stat(self) -> os.stat_result:
        try:
            return self.entry.stat(follow_symlinks=False)
        except OSError as e:
            raise ContextError(f"build context: cannot stat {self.rel}: {e.strerror}") from None


def _sorted_entries(path: str) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            entries = list(it)
    except OSError as e:
        raise ContextError(f"build context: cannot read {e.filename or path}: {e.strerror}") from None
    entries.sort(key=lambda e: os.fsencode(e.name))
    return entries


class ContextTree:
    """The directory ``root`` seen through ``matcher`` (None or empty: everything)."""

    def __init__(self, root: str | os.PathLike, matcher: PatternMatcher | None = None) -> None:
        self.root = os.path.abspath(root)
        self.matcher = matcher if matcher else None

    def path(self, rel: str) -> str:
        """The real path of ``rel``."""
        return os.path.join(self.root, rel) if rel else self.root

    def verdict(self, rel: str) -> tuple[bool, Hits]:
        """(excluded?, pattern results) of ``rel``, asked from the top down as the walker does."""
        if self.matcher is None or not rel:
            return False, None
        excluded, hits = False, None
        prefix = ""
        for part in rel.split("/"):
            prefix = f"{prefix}/{part}" if prefix else part
            excluded, hits = self.matcher.matches_with_parent(prefix, hits)
        return excluded, hits

    def entries(self, rel: str, hits: Hits = None) -> Iterator[ContextEntry]:
        """The entries of directory ``rel`` (whose own results are ``hits``), sorted, each
        with its verdict, excluded ones included."""
        matcher = self.matcher
        for entry in _sorted_entries(self.path(rel)):
            child = f"{rel}/{entry.name}" if rel else entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError as e:
                raise ContextError(f"build context: cannot stat {child}: {e.strerror}") from None
            excluded, child_hits = False, None
            if matcher is not None:
                excluded, child_hits = matcher.matches_with_parent(child, hits)
            yield ContextEntry(child, entry, is_dir, excluded, child_hits)

    def enters(self, e: ContextEntry) -> bool:
        """Whether the walker reads directory ``e``: kept, or excluded with an exception that
        could re-include something below it."""
        return e.is_dir and (not e.excluded or self.matcher.may_include_below(e.rel))

    def walk(self, top: str = "", hits: Hits = None) -> Iterator[ContextEntry]:
        """Everything in the context below directory ``top`` (``hits``: its results, from
        :meth:`verdict`; computed when None and ``top`` is not the root), parents first."""
        if top and hits is None and self.matcher is not None:
            hits = self.verdict(top)[1]
        # excluded directories entered for an exception, not yet sent: [entry, sent?]
        pending: list[list] = []
        stack: list[Iterator[ContextEntry]] = [self.entries(top, hits)]
        depths: list[int] = []  # len(stack) when each pending directory was entered
        while stack:
            e = next(stack[-1], None)
            if e is None:
                stack.pop()
                while depths and depths[-1] > len(stack):
                    depths.pop()
                    pending.pop()
                continue
            if e.excluded:
                if self.enters(e):
                    pending.append([e, False])
                    stack.append(self.entries(e.rel, e.hits))
                    depths.append(len(stack))
                continue
            for p in pending:
                if not p[1]:
                    p[1] = True
                    yield p[0]
            yield e
            if e.is_dir:
                stack.append(self.entries(e.rel, e.hits))

    def present(self, rel: str, is_dir: bool) -> bool:
        """Whether the path ``rel`` (a real path of the context, symlinks not followed) is in
        the context: not excluded, or an excluded directory something below it is kept in."""
        if self.matcher is None or not rel:
            return True
        excluded, hits = self.verdict(rel)
        return self.kept(rel, is_dir, excluded, hits)

    def kept(self, rel: str, is_dir: bool, excluded: bool, hits: Hits) -> bool:
        """:meth:`present` for a path whose verdict is known."""
        if not excluded:
            return True
        if not is_dir or not self.matcher.may_include_below(rel):
            return False
        return next(self.walk(rel, hits), None) is not None


def walk_context(root: str | Path, matcher: PatternMatcher | None = None) -> Iterator[str]:
    """Yield the slash paths (relative to ``root``) of everything in the context, in the
    walker's order: directories before their contents; ``root`` itself is not yielded."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise ContextError(f"build context: {root} is not a directory")
    for e in ContextTree(root, matcher).walk():
        yield e.rel
