"""Where COPY and ADD read from: the build context, or another stage's (or image's) files.

Both kinds answer the same two questions:

* ``match(source)``: which paths a source word names. The word is cleaned as BuildKit cleans
  it (a leading ``/`` and ``..`` cannot leave the root, a trailing ``/`` means nothing), may
  hold Go ``filepath.Match`` wildcards (``*``, ``?``, ``[a-z]``, ``\\`` escapes; never across
  ``/``), and a symlink it names is followed inside the root.
* ``walk(match)``: what is below a matched directory, parents first, names sorted by bytes.

The build context hides what ``.dockerignore`` excludes: an excluded path matches nothing and
is never walked (unless an exception pattern re-includes something below it, in which case the
directories on the way are kept so the re-included file has a parent).

Each item is a :class:`SourceItem`: its slash path relative to the source root, the real file
to read (in the context directory, or in a layer snapshot), and its lstat.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from ..context import PatternMatcher
from .rootfs import RootfsView, split_path


@dataclass(frozen=True)
class SourceItem:
    """One file, directory or link to copy: ``rel`` (slash path from the source root, "" for
    the root itself), ``path`` (the real file), ``st`` (its lstat)."""

    rel: str
    path: str
    st: os.stat_result

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def name(self) -> str:
        return self.rel.rsplit("/", 1)[-1]


# -- Go's filepath.Match -----------------------------------------------------------------------

_META = re.compile(r"[*?\[\\]")


def has_wildcards(word: str) -> bool:
    return _META.search(word) is not None


@lru_cache(maxsize=256)
def _segment_regex(segment: str) -> re.Pattern:
    """One path segment of a ``filepath.Match`` pattern as a regular expression."""
    out = []
    i = 0
    while i < len(segment):
        c = segment[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(segment):
            i += 1
            out.append(re.escape(segment[i]))
        elif c == "[":
            j = i + 1
            negate = j < len(segment) and segment[j] == "^"
            if negate:
                j += 1
            body = []
            while j < len(segment) and (segment[j] != "]" or not body):
                ch = segment[j]
                if ch == "\\" and j + 1 < len(segment):
                    j += 1
                    ch = segment[j]
                    body.append(re.escape(ch))
                elif ch == "-" and body and j + 1 < len(segment) and segment[j + 1] != "]":
                    body.append("-")
                else:
                    body.append(re.escape(ch))
                j += 1
            if j >= len(segment):
                raise ValueError(f"syntax error in pattern {segment!r}")
            out.append("[" + ("^" if negate else "") + "".join(body) + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def match_segment(pattern: str, name: str) -> bool:
    return _segment_regex(pattern).match(name) is not None


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


# -- the build context -------------------------------------------------------------------------


class ContextSource:
    """The build context directory, filtered by its ``.dockerignore`` matcher."""

    kind = "context"

    def __init__(self, root: str | os.PathLike, matcher: PatternMatcher | None = None) -> None:
        self.root = os.path.abspath(root)
        self.matcher = matcher if matcher else None

    def describe(self) -> str:
        return "build context"

    def _excluded(self, rel: str) -> bool:
        return self.matcher is not None and rel != "" and self.matcher.matches(rel)

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
        # a symlink (or an error) on the way: resolved inside the context by part 4's RootDir
        # (imported here: a build whose context paths hold no symlinks never loads it)
        return resolve_in(self.root, "/".join(parts))

    def locate(self, rel: str) -> tuple[str, os.stat_result] | None:
        """The entry ``rel`` (symlinks resolved inside the context) as (real rel, lstat), or
        None when it is missing or .dockerignore leaves nothing of it."""
        found = self._resolve(split_path(rel))
        if found is None:
            return None
        real, st = found
        if self._excluded(real) and not (stat.S_ISDIR(st.st_mode) and self.matcher.may_include_below(real)):
            return None
        return found

    def match(self, word: str) -> list[SourceItem]:
        parts = clean_source(word)
        candidates: list[list[str]] = [[]]
        for seg in parts:
            nxt: list[list[str]] = []
            for cand in candidates:
                if not has_wildcards(seg):
                    nxt.append(cand + [seg])
                    continue
                found = self._resolve(cand)
                if found is None or not stat.S_ISDIR(found[1].st_mode):
                    continue
                base = os.path.join(self.root, found[0]) if found[0] else self.root
                for name in sorted(os.listdir(base), key=os.fsencode):
                    if match_segment(seg, name):
                        nxt.append(split_path(found[0]) + [name])
            candidates = nxt
        out = []
        for cand in candidates:
            found = self._resolve(cand)
            if found is None:
                continue
            rel, st = found
            if self._excluded(rel) and not (stat.S_ISDIR(st.st_mode) and self.matcher.may_include_below(rel)):
                continue
            out.append(SourceItem(rel, os.path.join(self.root, rel) if rel else self.root, st))
        return out

    def walk(self, top: SourceItem) -> Iterator[SourceItem]:
        """Everything below directory ``top`` that the .dockerignore keeps; ``rel`` relative
        to ``top``."""
        matcher = self.matcher
        hits = None
        if matcher is not None and top.rel:
            prefix = ""
            for part in top.rel.split("/"):
                prefix = f"{prefix}/{part}" if prefix else part
                _, hits = matcher.matches_with_parent(prefix, hits)
        cut = len(top.rel) + 1 if top.rel else 0
        # frames: (dir path, context rel, entries iterator, parent hits)
        stack = [(top.path, top.rel, iter(_scan(top.path)), hits)]
        pending: list[list] = []  # excluded dirs entered for an exception: [item, yielded, depth]
        while stack:
            dpath, drel, entries, dhits = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                while pending and pending[-1][2] >= len(stack) + 1:
                    pending.pop()
                continue
            crel = f"{drel}/{entry.name}" if drel else entry.name
            st = entry.stat(follow_symlinks=False)
            is_dir = stat.S_ISDIR(st.st_mode)
            chits = None
            if matcher is not None:
                excluded, chits = matcher.matches_with_parent(crel, dhits)
                if excluded:
                    if is_dir and matcher.may_include_below(crel):
                        pending.append([SourceItem(crel[cut:], entry.path, st), False, len(stack) + 1])
                        stack.append((entry.path, crel, iter(_scan(entry.path)), chits))
                    continue
            for p in pending:
                if not p[1]:
                    p[1] = True
                    yield p[0]
            yield SourceItem(crel[cut:], entry.path, st)
            if is_dir:
                stack.append((entry.path, crel, iter(_scan(entry.path)), chits))


def resolve_in(root: str, path: str) -> tuple[str, os.stat_result] | None:
    """``path`` resolved inside the directory ``root`` (symlinks followed as if ``root`` were
    ``/``): (its real path below ``root``, its lstat), or None when it is missing or a loop."""
    from part4_tar import RootDir, UnsafePathError

    try:
        with RootDir(root) as rd:
            real = rd.resolve(path)
            st = rd.lstat(real)
    except (FileNotFoundError, NotADirectoryError, UnsafePathError):
        return None
    return (real, st) if st is not None else None


def _scan(path: str) -> list[os.DirEntry]:
    with os.scandir(path) as it:
        entries = list(it)
    entries.sort(key=lambda e: os.fsencode(e.name))
    return entries


# -- a stage's or an image's files -----------------------------------------------------------


class ImageSource:
    """The files of a built stage or an image, read from its layer snapshots."""

    kind = "image"

    def __init__(self, view: RootfsView, label: str) -> None:
        self.view = view
        self.label = label

    def describe(self) -> str:
        return self.label

    def match(self, word: str) -> list[SourceItem]:
        view = self.view
        if view.empty:
            return []
        parts = clean_source(word)
        candidates: list[str] = [""]
        for seg in parts:
            nxt = []
            for cand in candidates:
                if not has_wildcards(seg):
                    nxt.append(f"{cand}/{seg}" if cand else seg)
                    continue
                node = view.lookup(cand)
                if node is None or not node.is_dir:
                    continue
                for name in view.children(node):
                    if match_segment(seg, name):
                        nxt.append(f"{cand}/{name}" if cand else name)
            candidates = nxt
        out = []
        for cand in candidates:
            rel, node = view.resolve(cand, follow_final=True)
            if node is not None:
                out.append(SourceItem(rel, str(node.path), node.st))
        return out

    def walk(self, top: SourceItem) -> Iterator[SourceItem]:
        node = self.view.lookup(top.rel)
        if node is None or not node.is_dir:
            return
        cut = len(top.rel) + 1 if top.rel else 0
        for child in self.view.walk(node):
            yield SourceItem(child.rel[cut:], str(child.path), child.st)


Source = ContextSource | ImageSource

__all__ = ["ContextSource", "ImageSource", "Source", "SourceItem", "clean_source", "has_wildcards",
           "match_segment", "resolve_in"]
