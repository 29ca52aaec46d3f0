"""COPY/ADD ``--exclude``, matched as BuildKit's copy matches it.

BuildKit hands the patterns to fsutil's copy (``ExcludePatterns``), which walks each source
directory and matches every path *below the source* with moby/patternmatcher's
``MatchesUsingParentResults``, the rules of ``.dockerignore``
(:class:`~capstone.context.PatternMatcher`):

* a pattern is Go ``filepath.Match`` syntax plus ``**`` (any number of directories);
* a directory excluded excludes everything below it (its results are its children's);
* the last pattern that matches decides, so ``!pattern`` re-includes what an earlier one
  excluded, even below an excluded directory: that directory is then copied too, just before
  the first entry kept below it (fsutil's delayed ``createParentDirs``), with its own metadata;
* the walk never follows a symlink: a link is an entry like a file, matched by its own path,
  never by where it points, and nothing is matched through it.

A source a word names itself (the file ``hom.txt`` matched by ``hom*``, the directory ``docs``)
is matched by the path the word names from the source root, not where its symlinks lead, as
BuildKit's documentation shows (``COPY --exclude=*.txt hom* /mydir/``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import chain

from ..context import PatternMatcher
from .sources import SourceItem


class _Frame:
    """A directory above the walk's place: its path, pattern results, whether it is sent."""

    __slots__ = ("dead", "hits", "item", "rel", "sent")

    def __init__(self, rel: str, hits, item: SourceItem | None, sent: bool, dead: bool) -> None:
        self.rel, self.hits, self.item, self.sent, self.dead = rel, hits, item, sent, dead


class Excludes:
    """The ``--exclude`` patterns of one COPY/ADD."""

    __slots__ = ("matcher",)

    def __init__(self, patterns: Iterable[str]) -> None:
        self.matcher = PatternMatcher(list(patterns), source="--exclude")

    def named(self, path: str) -> bool:
        """Whether the source a word names (``path`` from the source root) is excluded."""
        return bool(path) and self.matcher.matches(path)

    def _verdict(self, path: str):
        """(excluded?, results) of ``path``, asked from the top down as the walk asks."""
        excluded, hits, prefix = False, None, ""
        for part in path.split("/") if path else ():
            prefix = f"{prefix}/{part}" if prefix else part
            excluded, hits = self.matcher.matches_with_parent(prefix, hits)
        return excluded, hits

    def walk(self, items: Iterable[SourceItem], prefix: str = "", top: SourceItem | None = None) -> Iterator[SourceItem]:
        """What a walk below a source directory keeps: ``items`` (``rel`` from that directory,
        parents first) matched by their path ``prefix/rel``. ``top``: the directory ``prefix``
        itself, to send first when it is kept, or before the first entry kept below it."""
        excluded, hits = self._verdict(prefix)
        root = _Frame(prefix, hits, top, top is None, excluded and not self.matcher.may_include_below(prefix))
        if top is not None and not excluded:
            root.sent = True
            yield top
        stack: list[_Frame] = []
        for sub in items:
            while stack and not sub.rel.startswith(stack[-1].rel + "/"):
                stack.pop()
            parent = stack[-1] if stack else root
            if parent.dead:  # excluded with all below it: nothing here can be kept
                if sub.is_dir:
                    stack.append(_Frame(sub.rel, None, None, False, True))
                continue
            path = f"{prefix}/{sub.rel}" if prefix else sub.rel
            excluded, hits = self.matcher.matches_with_parent(path, parent.hits)
            if not excluded:
                for frame in (root, *stack):
                    if not frame.sent:
                        frame.sent = True
                        yield frame.item
                yield sub
            if sub.is_dir:
                stack.append(_Frame(sub.rel, hits, sub, not excluded,
                                    excluded and not self.matcher.may_include_below(path)))


def kept(items: Iterable[SourceItem], excludes: Excludes | None, prefix: str = "",
         top: SourceItem | None = None) -> Iterable[SourceItem]:
    """``items`` as ``excludes`` leaves them (all of them when there is no ``--exclude``),
    after ``top`` (see :meth:`Excludes.walk`)."""
    if excludes is not None:
        return excludes.walk(items, prefix, top)
    return items if top is None else chain((top,), items)


__all__ = ["Excludes", "kept"]
