"""Where COPY and ADD read from: the build context, or another stage's (or image's) files.

Both kinds answer the same two questions:

* ``match(source)``: which paths a source word names. The word is cleaned as BuildKit cleans
  it (a leading ``/`` and ``..`` cannot leave the root, a trailing ``/`` means nothing). A
  word without an unescaped ``*``, ``?`` or ``[`` names one path; a symlink on it is followed
  inside the root. A word with wildcards is split as BuildKit's copy splits it: the path
  before the first segment holding one (followed like a plain path) and the pattern after it
  (:class:`~capstone.context.PathPattern`: ``filepath.Match`` syntax, ``**`` for any number
  of directories), matched against every path below, in ``filepath.Walk`` order; a matched
  directory is taken whole (its contents are not matched again). A glob may match nothing.
  (BuildKit matches a plain COPY source with Go's ``path.Match``, where ``**`` is just ``*``;
  here it means what it means in ``COPY --parents`` and ``.dockerignore``, as buildah reads
  it: one matcher for every pattern of a build.)
* ``walk(match)``: what is below a matched directory, parents first, names sorted by bytes.

The build context is what BuildKit would send (:class:`~capstone.context.ContextTree`): what
``.dockerignore`` excludes is not there, so a path that exists on disk but is excluded, or an
excluded directory with nothing re-included below it, matches nothing, and a walk never enters
it (the directories above a re-included file are there, so it has parents).

Each item is a :class:`SourceItem`: its slash path relative to the source root, the real file
to read (in the context directory, or in a layer snapshot), and its lstat.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from part1_overview import model

from ..context import ContextTree, PathPattern, PatternMatcher, PatternSyntaxError, has_wildcards
from .errors import StepFailure
from .rootfs import RootfsView


@model(frozen=True)
class SourceItem:
    """One file, directory or link to copy: ``rel`` (slash path from the source root, "" for
    the root itself), ``path`` (the real file), ``st`` (its lstat); ``matched_as``, for a
    wildcard match, the path the pattern matched (a symlink's own name, before it is
    followed: the name the copy gives it)."""

    rel: str
    path: str
    st: os.stat_result
    matched_as: str = ""

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def name(self) -> str:
        return (self.matched_as or self.rel).rsplit("/", 1)[-1]


class SourcePatternError(StepFailure):
    """A source word whose wildcards ``filepath.Match`` rejects (``[z-a]``, a lone ``[``)."""


def clean_source(word: str) -> list[str]:
    """A source word's segments relative to the root (``/a/../b/`` -> ``["b"]``)."""
    parts: list[str] = []
    for p in word.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if parts:
                parts.pop()
            continue
        parts.append(p)
    return parts


def split_wildcards(word: str) -> tuple[list[str], PathPattern | None]:
    """A source word cut as BuildKit's ``splitWildcards`` cuts it: the segments before the
    first one holding a wildcard, and the pattern of the rest (None: no wildcard at all)."""
    parts = clean_source(word)
    k = next((i for i, seg in enumerate(parts) if has_wildcards(seg)), len(parts))
    if k == len(parts):
        return parts, None
    try:
        return parts[:k], PathPattern("/".join(parts[k:]))
    except PatternSyntaxError:
        raise SourcePatternError(f"{word}: syntax error in pattern") from None


def expand(pattern: PathPattern, top, children: Callable[[object], Iterable[tuple[str, object, bool]]],
           keep: Callable[[object], bool]) -> list[tuple[str, object]]:
    """The paths below ``top`` that ``pattern`` matches, as BuildKit's ``resolveWildcards``
    finds them: a walk in name order (``children(node)``: (name, node, is a directory?),
    sorted), a matched directory taken whole and not entered, another one entered only when
    something below it could match, so a pattern never walks more than it may match.
    ``keep(node)`` says whether a match is really there. Returns (path from ``top``, node)."""
    out: list[tuple[str, object]] = []
    stack: list[tuple[Iterator, str]] = [(iter(children(top)), "")]
    while stack:
        it, prefix = stack[-1]
        child = next(it, None)
        if child is None:
            stack.pop()
            continue
        name, node, is_dir = child
        rel = f"{prefix}/{name}" if prefix else name
        if pattern.match(rel):
            if keep(node):
                out.append((rel, node))
        elif is_dir and pattern.may_match_below(rel):
            stack.append((iter(children(node)), rel))
    return out


# -- the build context -------------------------------------------------------------------------

#: symlinks followed on one path before it is a loop (the Linux limit, as a lookup has it)
_MAX_SYMLINKS = 40



class ContextSource:
    """The build context directory, as the ``.dockerignore`` ``matcher`` lets a build see it."""

    kind = "context"

    def __init__(self, root: str | os.PathLike, matcher: PatternMatcher | None = None) -> None:
        self.tree = ContextTree(root, matcher)
        self.root = self.tree.root

    def describe(self) -> str:
        return "build context"

    def _resolve(self, parts: list[str]) -> tuple[str, os.stat_result] | None:
        """Follow ``parts`` from the root, symlinks resolved inside the root; (rel, lstat)."""
        # The common case first: no component is a symlink, so the path is the root joined
        # with ``parts`` as it stands (what part 4's RootDir would resolve it to), and the
        # lstat of the last component is the answer: one lstat per component. A missing
        # component (none before it being a symlink) means a missing path, as there.
        path = self.root
        st = None
        for part in parts:
            if part in ("", ".", ".."):
                break
            path = os.path.join(path, part)
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                return None
            except OSError:
                break  # let part 4 decide
            if stat.S_ISLNK(st.st_mode):
                break
        else:
            if st is None:  # no parts: the root itself
                try:
                    st = os.lstat(path)
                except (FileNotFoundError, NotADirectoryError):
                    return None
            rel = os.path.relpath(path, self.root)
            return ("" if rel == "." else rel), st
        return self._resolve_links(parts)

    def _resolve_links(self, parts: list[str]) -> tuple[str, os.stat_result] | None:
        """A path with a symlink (or an error) on the way, resolved as BuildKit resolves it in
        the context it was sent: inside the context (part 4's RootDir: every component from
        its parent's descriptor, ``/`` and ``..`` never above the root), and every symlink met,
        the first as the last, one the context has (a link ``.dockerignore`` excludes is not
        there to follow, wherever it points). (rel, lstat), or None: missing, not sent, a loop."""
        from part4_tar import RootDir, UnsafePathError  # never loaded without a link

        real: list[str] = []
        todo = deque(parts)
        follows = 0
        try:
            with RootDir(self.root) as rd:
                while todo:
                    part = todo.popleft()
                    if part in ("", "."):
                        continue
                    if part == "..":
                        if real:
                            real.pop()
                        continue
                    here = (*real, part)
                    st = rd.lstat("/".join(here))
                    if st is None:
                        return None
                    if stat.S_ISLNK(st.st_mode):
                        follows += 1
                        if follows > _MAX_SYMLINKS or not self.tree.present("/".join(here), False):
                            return None
                        where = rd.parent(here, create=False)
                        target = os.readlink(where.name, dir_fd=where.fd)
                        if target.startswith("/"):
                            real.clear()  # the context's root, not the host's
                        todo.extendleft(reversed(target.split("/")))
                        continue
                    if todo and not stat.S_ISDIR(st.st_mode):
                        return None
                    real.append(part)
                rel = "/".join(real)
                st = rd.lstat(rel) if real else os.lstat(self.root)
        except (OSError, UnsafePathError):  # missing, not a directory, swapped meanwhile
            return None
        return (rel, st) if st is not None else None

    def locate(self, rel: str) -> tuple[str, os.stat_result] | None:
        """The entry ``rel`` (symlinks resolved inside the context) as (real rel, lstat), or
        None when it is missing or the build context does not have it (.dockerignore)."""
        item = self._item(clean_source(rel))
        return (item.rel, item.st) if item is not None else None

    def _item(self, parts: list[str], matched_as: str = "") -> SourceItem | None:
        """The item ``parts`` names, symlinks followed, if the build context has it."""
        found = self._resolve(parts)
        if found is None:
            return None
        rel, st = found
        if not self.tree.present(rel, stat.S_ISDIR(st.st_mode)):
            return None
        return SourceItem(rel, self.tree.path(rel), st, matched_as)

    def match(self, word: str) -> list[SourceItem]:
        base, pattern = split_wildcards(word)
        if pattern is None:
            item = self._item(base)
            return [item] if item is not None else []
        top = self._item(base)
        if top is None or not top.is_dir:
            return []
        tree = self.tree

        def children(node):
            rel, hits = node if isinstance(node, tuple) else (node.rel, node.hits)
            for e in tree.entries(rel, hits):
                if e.excluded and not tree.enters(e):
                    continue  # not in the context, and nothing below it is
                yield e.entry.name, e, e.is_dir

        def keep(e) -> bool:
            return tree.kept(e.rel, e.is_dir, e.excluded, e.hits)

        out = []
        prefix = "/".join(base)
        for rel, e in expand(pattern, (top.rel, tree.verdict(top.rel)[1]), children, keep):
            matched = f"{prefix}/{rel}" if prefix else rel
            if e.entry.is_symlink():  # copied as what it points to, under its own name
                item = self._item(matched.split("/"), matched)
            else:
                item = SourceItem(e.rel, e.entry.path, e.stat(), matched)
            if item is not None:
                out.append(item)
        return out

    def walk(self, top: SourceItem) -> Iterator[SourceItem]:
        """Everything below directory ``top`` that the build context has; ``rel`` relative
        to ``top``."""
        cut = len(top.rel) + 1 if top.rel else 0
        for e in self.tree.walk(top.rel):
            yield SourceItem(e.rel[cut:], e.entry.path, e.stat())


# -- a stage's or an image's files -----------------------------------------------------------


class ImageSource:
    """The files of a built stage or an image, read from its layer snapshots."""

    kind = "image"

    def __init__(self, view: RootfsView, label: str) -> None:
        self.view = view
        self.label = label

    def describe(self) -> str:
        return self.label

    def _item(self, path: str, matched_as: str = "") -> SourceItem | None:
        rel, node = self.view.resolve(path, follow_final=True)
        return SourceItem(rel, str(node.path), node.st, matched_as) if node is not None else None

    def match(self, word: str) -> list[SourceItem]:
        view = self.view
        if view.empty:
            return []
        base, pattern = split_wildcards(word)
        if pattern is None:
            item = self._item("/".join(base))
            return [item] if item is not None else []
        top = view.lookup("/".join(base))
        if top is None or not top.is_dir:
            return []

        def children(node):
            found = view.children(node)
            for name in sorted(found, key=os.fsencode):
                child = found[name]
                yield name, child, child.is_dir

        out = []
        prefix = "/".join(base)
        for rel, node in expand(pattern, top, children, lambda node: True):
            matched = f"{prefix}/{rel}" if prefix else rel
            if stat.S_ISLNK(node.st.st_mode):  # copied as what it points to, under its own name
                item = self._item(matched, matched)
            else:
                item = SourceItem(node.rel, str(node.path), node.st, matched)
            if item is not None:
                out.append(item)
        return out

    def walk(self, top: SourceItem) -> Iterator[SourceItem]:
        node = self.view.lookup(top.rel)
        if node is None or not node.is_dir:
            return
        cut = len(top.rel) + 1 if top.rel else 0
        for child in self.view.walk(node):
            yield SourceItem(child.rel[cut:], str(child.path), child.st)


Source = ContextSource | ImageSource

__all__ = ["ContextSource", "ImageSource", "Source", "SourceItem", "SourcePatternError", "clean_source",
           "expand", "has_wildcards", "split_wildcards"]
