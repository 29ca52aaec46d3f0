"""COPY and ADD: which files land where, with which owner and mode, and the layer they make.

The Dockerfile rules, as BuildKit applies them:

* sources are relative to the source root (the build context, or ``--from``'s root); a
  directory source copies its *contents*; a source with wildcards (``*``, ``?``, ``[...]``,
  ``**`` for any number of directories) may match several paths, or none: a pattern that
  matches nothing adds nothing, a path that does not exist (or that ``.dockerignore``
  excludes) fails the step; when no source matches anything the step copies nothing;
* the destination is relative to WORKDIR; it is a directory when it ends with ``/`` (or is
  ``.``), or when the image already has a directory there; several sources need a directory
  destination written with a trailing ``/``;
* missing directories are created (0755, owned by the ``--chown`` owner or root, dated by the
  copy): the parents of the destination, and the destination of a directory's contents (the
  source directory's own mode and owner are never copied onto it); symlinks on the way to the
  destination are followed inside the image's root;
* files from the build context are owned by 0:0 unless ``--chown``; files from a stage or an
  image keep their owners; ``--chmod`` changes every copied entry's mode; mtimes are kept;
* ``ADD`` unpacks a local tar archive (plain, gzip, bzip2, xz, zstd: recognised by content, not
  by name) into the destination directory, as Docker unpacks it over what is there
  (:func:`_unpack_archive`: later entries replace earlier ones, the archive's ``.`` is
  skipped, image symlinks on the way are followed, image directories it only passes through
  keep their metadata); ``ADD URL``
  downloads the file (mode 0600, mtime from ``Last-Modified``); ``ADD`` of a git repository
  (:mod:`.gitsource`) copies the checked-out tree's *contents* (or its subdir's) into the
  destination directory, walked like a context directory.

Planning comes in two halves, neither of which writes anything. :func:`select_sources` finds
what the step reads; its content digest (:func:`sources_digest`) is what the step's cache key
needs, and neither needs the image (the key's parent decides the image), so a cache hit never
reads the image's layers. :func:`plan_copy` then places each entry in the image (the
destination resolved through its symlinks, the directories on the way). Writing
(:func:`write_copy`) streams the entries into part 4's ``LayerWriter`` straight from where
they are: the context directory, or another stage's layer snapshots. Nothing is staged, except
what must look different from its source (a ``--chown``/``--chmod`` that changes an owner or a
mode, a directory the copy creates, a heredoc, an unpacked archive): those get a small copy in
the step's scratch directory with the right metadata, since a tar entry's owner and mode are
read from the file it is made from.
"""

from __future__ import annotations

import os
import posixpath
import stat
import time
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING

from part1_overview import model

if TYPE_CHECKING:  # part 4 is imported where a layer is read or written (not on a cache hit)
    from part4_tar import LayerWriter

from ..dockerfile import Add, Copy
from .contenthash import FileDigests, entry_line, selection_digest
from .errors import StepFailure
from .excludes import Excludes, kept
from .owners import Chmod, parse_chown
from .rootfs import RootfsView, split_path
from .sources import ContextSource, ImageSource, SourceItem, SourcePatternError, clean_source, has_wildcards
from .spill import ChunkFile, SortedRuns


class CopyError(StepFailure):
    """A COPY/ADD that cannot be done (the step turns it into ``Dockerfile:LINE: ...``)."""


@model
class CopyEntry:
    """One entry of the layer: ``dest`` (slash path in the image, no leading ``/``), ``src``
    (the real file to read, None for a directory the copy creates), its lstat, and what the
    entry must say: owner, permission bits."""

    dest: str
    src: str | None
    st: os.stat_result | None
    uid: int
    gid: int
    mode: int
    archive: bool = False  # ADD: a tar to unpack into the directory ``dest``
    parent: bool = False  # a directory on the way that the image already has
    mtime_ns: int = 0  # for a directory the copy creates (``src`` None)


#: what an entry added to a plan does to the entries planned before it at the same destination
#: (the dedup of :meth:`CopyPlan.finish`): ADD replaces them (a later source wins, in its own
#: place), KEEP is dropped when any came before it (a directory on the way, an image directory
#: an archive passes through, a ``--parents`` path another word selected), APPEND is kept
#: beside them (what an archive unpacks, as Docker unpacks it over the layer), STAY too, and
#: it drops every KEEP of its destination, before or after it (the rest of a layer an archive
#: is unpacked into)
ADD, KEEP, APPEND, STAY = 0, 1, 2, 3


class CopyPlan:
    """The entries of a COPY/ADD's layer, in order, spilled to a file as planning walks them
    (``path`` None: in memory, in the same format): a context of 200,000 files is never a list.
    Iterating a plan reads its entries again (the layer, then the snapshot, each once).

    Every kind of copy is planned into one stream: one directory, several sources, ``--parents``,
    the entries an ADD archive unpacks to. Where two sources may give one destination, the
    entries are sorted by destination on disk (:class:`~.spill.SortedRuns`) once planning is
    done, and the ones a later entry supersedes are noted (their positions, sorted): reading
    skips them, so the layer is what a map from destination to entry would give, without one."""

    __slots__ = ("_dropped", "_records", "archives", "bytes", "digest", "files", "path", "writers")

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._records = ChunkFile(self.path)  # (op, packed entry)
        self._dropped: SortedRuns | None = None  # positions superseded by a later entry
        self.digest = ""
        #: how many regular files and bytes the layer takes (for --explain)
        self.files = 0
        self.bytes = 0
        #: whether an ADD archive waits to be unpacked (:func:`write_copy`)
        self.archives = False
        #: how many selections (sources, --parents bases, archives) wrote entries
        self.writers = 0

    def add(self, e: CopyEntry, op: int = ADD) -> None:
        self._records.append((op, _pack(e)))
        self.archives = self.archives or e.archive
        size = _taken(e)
        if size >= 0:
            self.files += 1
            self.bytes += size

    def finish(self) -> CopyPlan:
        """Planning is done: when entries of several selections may share a destination, the
        ones superseded are found (a sort of the destinations on disk, bounded in memory)."""
        self._records.close()
        if self.writers > 1:
            self._dropped, files, size = _superseded(self._records,
                                                     f"{self.path}.dedup" if self.path is not None else None)
            self.files -= files
            self.bytes -= size
        return self

    def __iter__(self) -> Iterator[CopyEntry]:
        drops = iter(self._dropped) if self._dropped is not None else iter(())
        skip = next(drops, -1)
        for seq, (_, packed) in enumerate(self._records):
            if seq == skip:
                skip = next(drops, -1)
                continue
            yield _unpack(packed)

    def __len__(self) -> int:
        return len(self._records) - (self._dropped.count if self._dropped is not None else 0)


def _taken(e: CopyEntry) -> int:
    """The size of the regular file ``e`` copies into the layer; -1: not one."""
    return e.st.st_size if e.st is not None and stat.S_ISREG(e.st.st_mode) and not e.parent else -1


def _superseded(records: ChunkFile, prefix: str | None) -> tuple[SortedRuns, int, int]:
    """The positions of the entries a later one supersedes (sorted), by the rule of each op,
    and how many regular files and bytes they would have taken."""
    keys = SortedRuns(f"{prefix}-keys" if prefix is not None else None)
    for seq, (op, packed) in enumerate(records):
        st = packed[2]
        size = st[6] if st is not None and stat.S_ISREG(st[0]) and not packed[7] else -1
        keys.add((packed[0], seq, op, size))
    drops = SortedRuns(f"{prefix}-drops" if prefix is not None else None)
    files = size = 0
    for _, group in groupby(keys, key=itemgetter(0)):
        ops = [(seq, op, taken) for _, seq, op, taken in group]  # one destination's: a few at most
        if len(ops) > 1:
            kept = _kept([(seq, op) for seq, op, _ in ops])
            for seq, _, taken in ops:
                if seq not in kept:
                    drops.add(seq)
                    if taken >= 0:
                        files += 1
                        size += taken
    return drops.close(), files, size


def _kept(ops: list[tuple[int, int]]) -> set[int]:
    """Of one destination's entries (position, op), in order, the positions that stay."""
    adds = [i for i, (_, op) in enumerate(ops) if op == ADD]
    if adds:
        return {ops[adds[-1]][0]} | {seq for seq, op in ops[adds[-1] + 1:] if op == APPEND}
    kept = {seq for seq, op in ops if op in (APPEND, STAY)}
    if ops[0][1] == KEEP and all(op != STAY for _, op in ops):
        kept.add(ops[0][0])
    return kept


def _pack(e: CopyEntry) -> tuple:
    st = e.st
    packed = None if st is None else (
        st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, st.st_size, st.st_atime_ns,
        st.st_mtime_ns, st.st_ctime_ns, st.st_rdev, st.st_mtime)
    return (e.dest, e.src, packed, e.uid, e.gid, e.mode, e.archive, e.parent, e.mtime_ns)


def _unpack(record: tuple) -> CopyEntry:
    dest, src, packed, uid, gid, mode, archive, parent, mtime_ns = record
    return CopyEntry(dest, src, None if packed is None else _unpack_stat(packed), uid, gid, mode, archive=archive,
                     parent=parent, mtime_ns=mtime_ns)


def _unpack_stat(p: tuple) -> os.stat_result:
    """An lstat result as :func:`_pack` kept it: every field a copy reads, ``st_mtime`` (the
    float a layer's mtime is taken from) exactly as it was."""
    mode, ino, dev, nlink, uid, gid, size, atime_ns, mtime_ns, ctime_ns, rdev, mtime = p
    return os.stat_result(
        (mode, ino, dev, nlink, uid, gid, size, atime_ns // 1_000_000_000, mtime_ns // 1_000_000_000,
         ctime_ns // 1_000_000_000),
        {"st_atime": atime_ns / 1e9, "st_mtime": mtime, "st_ctime": ctime_ns / 1e9, "st_atime_ns": atime_ns,
         "st_mtime_ns": mtime_ns, "st_ctime_ns": ctime_ns, "st_blksize": 0, "st_blocks": 0, "st_rdev": rdev})


@model(frozen=True)
class Owner:
    """Who the copied entries belong to: ``uid``/``gid`` from ``--chown`` (None: keep)."""

    uid: int | None
    gid: int | None


def _is_tar(path: str) -> bool:
    """Whether a local file is a tar archive, compressed or not (by content)."""
    import tarfile  # ADD of an archive only

    from part4_tar import LayerError, open_decompressed

    try:
        with open(path, "rb") as raw, open_decompressed(raw) as f:
            block = f.read(512)
    except (OSError, EOFError, LayerError):  # part 4: a corrupt stream of a known compression
        return False
    if len(block) < 512:
        return False
    if block[257:262] == b"ustar":
        return True
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        return True
    except tarfile.HeaderError:
        return False


def check_entry_name(keyword: str, what: str, name: str) -> None:
    """A name a COPY/ADD writes below its destination: refused before anything is written (in
    this process, and in any child that makes the snapshot) when it would leave it."""
    from part4_tar import UnsafePathError, split_name

    if name.startswith("/"):
        raise CopyError(f"{keyword} failed: {what}: an absolute name would leave the destination")
    try:
        parts = split_name(name)
    except UnsafePathError as e:
        raise CopyError(f"{keyword} failed: {what}: {e.reason}") from None
    if not parts:
        raise CopyError(f"{keyword} failed: {what}: not a file name")


@model
class CopySources:
    """What a COPY/ADD reads, before it is placed in an image: each matched source (its name
    at the destination, the item, whether ADD unpacks it, the source it is walked in) and the
    ``--parents`` words that select something (:class:`_Parents`, read again when used)."""

    matched: list[tuple[str, SourceItem, bool, ContextSource | ImageSource]]
    placed: list[_Parents]
    excludes: Excludes | None = None


def select_sources(
    ins: Copy | Add,
    source: ContextSource | ImageSource,
    *,
    staging: Path,
    downloads: dict[str, str] | None = None,
    trees: dict[str, str] | None = None,
) -> CopySources:
    """The sources of ``ins`` (expanded): the first half of :func:`plan_copy`, which needs no
    image (the destination is resolved in the image by the second half).

    ``staging`` is a directory for heredoc files; ``downloads`` maps ADD URLs to downloaded
    files; ``trees`` maps ADD git sources to their checked-out directories (whose *contents*
    go to the destination, a directory, as BuildKit copies a git source's ``/``).
    """
    keyword = "ADD" if isinstance(ins, Add) else "COPY"
    if ins.chmod:
        Chmod(ins.chmod)  # checked before a source is read: OwnerError is the step's one line
    excludes = Excludes(ins.exclude) if ins.exclude else None
    matched: list[_Match] = []
    placed: list[_Parents] = []
    for word in ins.sources:
        if isinstance(ins, Copy) and ins.parents:
            parents = _Parents(source, word, excludes)
            if parents.any():
                placed.append(parents)
            elif not has_wildcards(word):  # BuildKit requires a --parents source to exist only then
                raise CopyError(f"{keyword} failed: {word}: no source files were found in "
                                f"{source.describe()}")
        elif trees is not None and word in trees:
            root = trees[word]
            matched.append(("", SourceItem("", root, os.lstat(root)), False, ContextSource(root)))
        elif downloads is not None and word in downloads:
            path = downloads[word]
            check_entry_name(keyword, word, os.path.basename(path))
            matched.append((os.path.basename(path), SourceItem(os.path.basename(path), path, os.lstat(path)), False,
                            source))
        else:
            matched.extend(_match_word(ins, source, word, excludes))
    for doc in ins.heredocs:
        matched.append(_staged_heredoc(keyword, doc, source, staging / f"heredoc-{len(matched)}"))
    if len(matched) > 1 and not _dest_is_dir(ins.dest):
        raise CopyError(f"When using {keyword} with more than one source file, the destination must be "
                        "a directory and end with a /")
    return CopySources(matched, placed, excludes)


#: a matched source: (name at the destination, item, unpack it, the source it is walked in)
_Match = tuple[str, SourceItem, bool, "ContextSource | ImageSource"]


def _match_word(ins: Copy | Add, source: ContextSource | ImageSource, word: str, excludes) -> list[_Match]:
    """What one source word names in ``source``: a path must exist, a pattern may match
    nothing (BuildKit's AllowEmptyWildcard); ``--exclude`` applied, ADD's archives marked."""
    is_add = isinstance(ins, Add)
    keyword = "ADD" if is_add else "COPY"
    try:
        items = source.match(word)
    except SourcePatternError as e:
        raise CopyError(f"{keyword} failed: {e}") from None
    if not items:
        if has_wildcards(word):
            return []
        if source.kind == "context":
            raise CopyError(f"{keyword} failed: file not found in build context or excluded by "
                            f".dockerignore: stat {word}: file does not exist")
        raise CopyError(f"{keyword} failed: {word}: not found in {source.describe()}")
    parts = clean_source(word)
    out: list[_Match] = []
    for item in items:
        name = item.name if has_wildcards(word) or not parts else parts[-1]
        if excludes is not None and excludes.named(item.matched_as or "/".join(parts)):
            continue  # by the path the word names, not where its symlinks lead
        unpack = False
        if is_add and not item.is_dir and ins.unpack is not False and stat.S_ISREG(item.st.st_mode):
            unpack = _is_tar(item.path)
        out.append((name, item, unpack, source))
    return out


def _staged_heredoc(keyword: str, doc, source: ContextSource | ImageSource, path: Path) -> _Match:
    """A heredoc source written as the file ``path`` (0644), to be copied as ``doc.name``."""
    check_entry_name(keyword, f"heredoc <<{doc.name}", doc.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc.body)
    os.chmod(path, 0o644)
    return (doc.name, SourceItem(doc.name, str(path), os.lstat(path)), False, source)


def _dest_is_dir(raw_dest: str) -> bool:
    return raw_dest.endswith("/") or raw_dest in (".", "..") or raw_dest.endswith(("/.", "/.."))


def sources_digest(ins: Copy | Add, selected: CopySources, digests: FileDigests) -> str:
    """The content digest of what ``ins`` reads (for its cache key): per entry its name below
    the destination, type, mode, owner, size and content, as :func:`plan_copy`'s digest but
    before the destination is resolved in the image (the key's parent decides that image)."""
    return selection_digest(_source_lines(ins, selected, digests))  # streamed: no list of a big context's lines


def _source_lines(ins: Copy | Add, selected: CopySources, digests: FileDigests) -> Iterator[str]:
    keyword = "ADD" if isinstance(ins, Add) else "COPY"
    yield f"{keyword}\0sources\n"
    for parents in selected.placed:
        for selection in parents.selections():
            for rel, item in selection:
                yield entry_line(f"parents\0{rel}", item.st, item.st.st_uid, item.st.st_gid,
                                 stat.S_IMODE(item.st.st_mode), digests, item.path)
    for name, item, unpack, item_source in selected.matched:
        kind = "unpack" if unpack else "dir" if item.is_dir else "file"
        yield entry_line(f"{kind}\0{name}", item.st, item.st.st_uid, item.st.st_gid,
                         stat.S_IMODE(item.st.st_mode), digests, item.path)
        if item.is_dir:
            yield from _walk_lines(item, item_source, selected.excludes, digests)


def _walk_lines(item: SourceItem, source: ContextSource | ImageSource, excludes: Excludes | None,
                digests: FileDigests) -> Iterator[str]:
    """The lines of what is below the directory ``item``; a walk of the context tells the
    digest table what it saw there (the table drops the rows of files it no longer has)."""
    def walk() -> Iterable[SourceItem]:
        return kept(source.walk(item), excludes)

    def files() -> Iterator[str]:
        return (sub.path for sub in walk() if stat.S_ISREG(sub.st.st_mode))

    with digests.walk(item.path, files) if source.kind == "context" else nullcontext():
        for sub in walk():
            yield entry_line(f"\0{sub.rel}", sub.st, sub.st.st_uid, sub.st.st_gid,
                             stat.S_IMODE(sub.st.st_mode), digests, sub.path)


@model(frozen=True)
class _Options:
    """What a COPY/ADD says about every entry: its keyword, owner (``--chown``, else the
    source's for an image source, else root), ``--chmod``, ``--exclude`` and destination."""

    keyword: str
    is_add: bool
    owner: Owner
    chmod: Chmod | None
    keep_owner: bool
    excludes: Excludes | None
    dest: str  # slash path in the image, no leading "/"
    dest_is_dir: bool

    def owner_of(self, st: os.stat_result) -> tuple[int, int]:
        if self.owner.uid is not None:
            return self.owner.uid, self.owner.gid
        if self.keep_owner:
            return st.st_uid, st.st_gid
        return 0, 0

    def mode_of(self, st: os.stat_result) -> int:
        return self.chmod.apply(st.st_mode) if self.chmod is not None else stat.S_IMODE(st.st_mode)


def _options(ins: Copy | Add, source: ContextSource | ImageSource, view: RootfsView, workdir: str,
             excludes) -> _Options:
    owner = Owner(*parse_chown(ins.chown, view.read_text)) if ins.chown else Owner(None, None)
    chmod = Chmod(ins.chmod) if ins.chmod else None
    dest = ins.dest if ins.dest.startswith("/") else posixpath.join(workdir or "/", ins.dest)
    is_add = isinstance(ins, Add)
    return _Options("ADD" if is_add else "COPY", is_add, owner, chmod, isinstance(source, ImageSource), excludes,
                    posixpath.normpath("/" + dest).lstrip("/"), _dest_is_dir(ins.dest))


class _Entries:
    """The entries of the layer being planned, streamed into the plan as they come: the
    directories on the way (the image's own, kept as they are, or made by the copy; few, so
    remembered here) and what is copied (never held: the plan spills it)."""

    def __init__(self, opts: _Options, view: RootfsView, made_mtime: float, plan: CopyPlan) -> None:
        self.opts = opts
        self.view = view
        self.made_mtime_ns = int(made_mtime * 1e9)
        self.plan = plan
        self.dirs: dict[str, CopyEntry] = {}  # the destination and the directories above it

    def ensure_dir(self, path: str) -> str:
        """Make ``path`` (and its parents) a directory in the layer; its resolved path."""
        resolved, node = self.view.resolve(path, follow_final=True)
        parts = split_path(resolved)
        owner = self.opts.owner
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub in self.dirs:
                continue
            node = self.view.lookup(sub, follow_final=False)
            if node is not None:
                if not node.is_dir:
                    raise CopyError(f"{self.opts.keyword} failed: cannot copy to /{sub}: it is not a directory in "
                                    "the image")
                entry = CopyEntry(sub, str(node.path), node.st, node.st.st_uid, node.st.st_gid,
                                  stat.S_IMODE(node.st.st_mode), parent=True)
            else:
                uid = owner.uid if owner.uid is not None else 0
                gid = owner.gid if owner.gid is not None else 0
                entry = CopyEntry(sub, None, None, uid, gid, 0o755, mtime_ns=self.made_mtime_ns)
            self.dirs[sub] = entry
            self.plan.add(entry, KEEP)
        return resolved

    def add(self, dest_path: str, item: SourceItem, op: int = ADD) -> None:
        """``item`` copied to ``dest_path``."""
        uid, gid = self.opts.owner_of(item.st)
        self.plan.add(CopyEntry(dest_path, item.path, item.st, uid, gid, self.opts.mode_of(item.st)), op)

    def add_archive(self, item: SourceItem) -> None:
        """ADD of a local archive: unpacked into the destination (a directory) when written."""
        target = self.ensure_dir(self.opts.dest)
        owner = self.opts.owner
        self.plan.add(CopyEntry(target, item.path, item.st, owner.uid if owner.uid is not None else -1,
                                owner.gid if owner.gid is not None else -1, -1, archive=True), APPEND)

    def place(self, matched: list[_Match], placed: list[_Parents]) -> None:
        """Every match at its place under the destination, each a writer of the plan."""
        dest = self.opts.dest
        if placed:  # --parents: DEST is a directory; each path below the pivot is kept
            top_dir = self.ensure_dir(dest)
            for parents in placed:
                for selection in parents.selections():
                    self.plan.writers += 1
                    for rel, item in selection:  # a path another word selected first stays
                        self.add(f"{top_dir}/{rel}" if top_dir else rel, item, KEEP)
        for name, item, unpack, item_source in matched:
            self.plan.writers += 1
            if item.is_dir:
                # the destination of a directory's contents, when the image lacks it, is made
                # like every directory on the way (0755, the --chown owner or root, the copy's
                # time), never from the source directory: fsutil's copy makes it with
                # MkdirAll(dest, 0755, chown) before copying the contents into it, and a
                # directory it did not create keeps its own metadata
                target = self.ensure_dir(dest)
                for sub in kept(item_source.walk(item), self.opts.excludes):
                    self.add(f"{target}/{sub.rel}" if target else sub.rel, sub)
            elif unpack:
                self.add_archive(item)
            else:
                self._place_file(name, item)

    def _place_file(self, name: str, item: SourceItem) -> None:
        dest = self.opts.dest
        if self.opts.dest_is_dir or self.view.is_dir(dest):
            parent, final = dest, name
        else:
            parent, final = posixpath.dirname(dest), posixpath.basename(dest)
        if not final:
            raise CopyError(f"{self.opts.keyword} failed: cannot copy a file to the root directory /")
        target_dir = self.ensure_dir(parent) if parent else ""
        self.add(f"{target_dir}/{final}" if target_dir else final, item)


def _content_digest(opts: _Options, entries: Iterable[CopyEntry], digests: FileDigests) -> str:
    """The digest of what the layer will hold (names, owners, modes, contents; not mtimes),
    streamed: no list of a big context's lines."""
    return selection_digest(_entry_lines(entries, f"{opts.keyword}\0{'unpack' if opts.is_add else ''}\n", digests))


def plan_copy(
    ins: Copy | Add,
    source: ContextSource | ImageSource,
    view: RootfsView,
    workdir: str,
    *,
    digests: FileDigests | None,
    staging: Path,
    made_mtime: float,
    downloads: dict[str, str] | None = None,
    trees: dict[str, str] | None = None,
    selected: CopySources | None = None,
    spill: Path | None = None,
) -> CopyPlan:
    """Every entry the layer of ``ins`` (expanded) will hold, and their content digest
    (``digests`` None: no digest; the step was keyed by :func:`sources_digest`).

    ``view`` is the image being built (for the destination); ``source`` where files come from;
    ``selected``: what :func:`select_sources` found (None: select now, with ``staging``,
    ``downloads`` and ``trees``, see there). ``spill``: the file the plan is written to (and
    the prefix of the files its dedup sorts with, see :class:`CopyPlan`); None keeps it in
    memory, for a small plan.
    """
    if selected is None:
        selected = select_sources(ins, source, staging=staging, downloads=downloads, trees=trees)
    opts = _options(ins, source, view, workdir, selected.excludes)
    plan = CopyPlan(spill)
    if not selected.matched and not selected.placed:
        # every source a pattern that matched nothing: BuildKit copies nothing, makes no
        # directory, and the step adds no layer
        plan.digest = selection_digest([f"{opts.keyword}\0nothing\n"])
        return plan.finish()
    _Entries(opts, view, made_mtime, plan).place(selected.matched, selected.placed)
    plan.finish()
    if digests is not None:  # else the caller keyed the step by the sources (sources_digest)
        plan.digest = _content_digest(opts, plan, digests)
    return plan


def _entry_lines(entries: Iterable[CopyEntry], first: str, digests: FileDigests) -> Iterator[str]:
    yield first
    for e in entries:
        if e.parent or e.src is None:
            kind = "parent" if e.parent else "made"
            yield f"{e.dest}\0{kind}\0{e.mode:o}\0{e.uid}\0{e.gid}\n"
        elif e.archive:
            yield f"{e.dest}\0archive\0{digests.digest(e.src, e.st)}\0{e.uid}\0{e.gid}\n"
        else:
            yield entry_line(e.dest, e.st, e.uid, e.gid, e.mode, digests, e.src)


class _Parents:
    """One ``COPY --parents`` source word, as BuildKit 1.20 selects it: the word is cut at its
    first ``/./`` (the pivot, rsync ``--relative`` style; none: the source root); what follows
    is a pattern (``*``, ``?``, ``[...]``, ``**`` for any number of directories) matched below
    the pivot, a matched directory bringing everything below it. Each match keeps its path
    from the pivot, and the directories on the way are copied too (with their own owner, mode
    and mtime), each just before the first match below it.

    What a word selects is walked again each time it is read (the step's key, then its plan),
    never held: :meth:`selections` gives one stream of (path from the pivot, item) per
    directory the pivot names, parents first."""

    __slots__ = ("excludes", "k", "pivot", "segs", "source")

    def __init__(self, source: ContextSource | ImageSource, word: str, excludes: Excludes | None) -> None:
        pivot, sep, pattern = word.partition("/./")
        if not sep:
            pivot, pattern = "", word
        self.source, self.pivot, self.excludes = source, pivot, excludes
        self.segs = clean_source(pattern)
        self.k = next((i for i, seg in enumerate(self.segs) if has_wildcards(seg)), len(self.segs))

    def selections(self) -> Iterator[Iterator[tuple[str, SourceItem]]]:
        for base in self.source.match(self.pivot or "."):
            if base.is_dir:
                yield self._selection(base)

    def any(self) -> bool:
        """Whether the word selects anything (read until its first path)."""
        return any(next(selection, None) is not None for selection in self.selections())

    def _selection(self, base: SourceItem) -> Iterator[tuple[str, SourceItem]]:
        segs, k = self.segs, self.k

        def item_at(rel: str) -> SourceItem | None:
            items = self.source.match(f"{base.rel}/{rel}" if base.rel else rel) if rel else [base]
            return items[0] if items else None

        literal = "/".join(segs[:k])
        top = item_at(literal)
        if top is None:
            return
        picked = self._picked(top, literal)
        first = next(picked, None)
        if first is None:
            return
        last = k if k < len(segs) else k - 1  # the literal directories leading to the matches
        for i in range(1, last + 1):
            rel = "/".join(segs[:i])
            item = item_at(rel)
            if item is not None and item.is_dir:
                yield rel, item
        yield first
        yield from picked

    def _picked(self, top: SourceItem, literal: str) -> Iterator[tuple[str, SourceItem]]:
        segs, k = self.segs, self.k
        if k == len(segs):  # a plain path: it, and all below it when it is a directory
            below = self.source.walk(top) if top.is_dir else ()
            for sub in kept(below, self.excludes, literal, top if literal else None):
                yield (literal, sub) if sub is top else (f"{literal}/{sub.rel}" if literal else sub.rel, sub)
            return
        if not top.is_dir:
            return
        from ..context import PatternMatcher

        matcher = PatternMatcher(["/".join(segs)], source="COPY --parents")
        stack: list[list] = []  # [path, item, sent] of the directories above the walk's place
        for sub in kept(self.source.walk(top), self.excludes, literal):
            rel = f"{literal}/{sub.rel}" if literal else sub.rel
            while stack and not rel.startswith(stack[-1][0] + "/"):
                stack.pop()
            hit = matcher.matches(rel)
            if hit:
                for frame in stack:  # the directories between the walk's top and it
                    if not frame[2]:
                        frame[2] = True
                        yield frame[0], frame[1]
                yield rel, sub
            if sub.is_dir:
                stack.append([rel, sub, hit])


# -- writing -------------------------------------------------------------------------------------


def _matches(e: CopyEntry) -> bool:
    st = e.st
    if st is None:
        return False
    if st.st_uid != e.uid or st.st_gid != e.gid:
        return False
    return stat.S_ISLNK(st.st_mode) or stat.S_IMODE(st.st_mode) == e.mode


def _open_source(e: CopyEntry) -> int:
    """A read descriptor of the regular file ``e.src``, checked to be the very file planning
    saw (``e.st``: device and inode), as part 4's layer writer checks what it reads. A
    context's owner who swaps a directory on the way for a symlink between planning and
    copying (a student's context built by a lab server's root builder) gets an error, never a
    host file's bytes in a staged copy or a snapshot."""
    fd = os.open(e.src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (e.st.st_dev, e.st.st_ino) or not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise CopyError(f"{e.src}: replaced while it was copied")
    return fd


def _stage(e: CopyEntry, staging: Path, n: int) -> str:
    """In ``staging``, with the entry's owner, mode and mtime: a directory the copy creates
    (``e.src`` None), or a new node for the fifo or device ``e.src``. Regular files,
    directories and symlinks never come here: part 4's writer takes them from their source
    with the entry's owner and mode (:func:`write_copy`)."""
    path = str(staging / f"e{n}")
    if e.src is None:
        os.mkdir(path)
        os.chown(path, e.uid, e.gid)
        os.chmod(path, e.mode)
        os.utime(path, ns=(e.mtime_ns, e.mtime_ns))
        return path
    os.mknod(path, e.st.st_mode, e.st.st_rdev)  # fifo, device: recreate the node
    os.chown(path, e.uid, e.gid, follow_symlinks=False)
    os.chmod(path, e.mode)
    os.utime(path, ns=(e.st.st_mtime_ns, e.st.st_mtime_ns), follow_symlinks=False)
    return path


def write_copy(plan: CopyPlan, w: LayerWriter, staging: Path, view: RootfsView) -> None:
    """Add the entries of ``plan`` to the layer ``w``; what needs other metadata than its
    source has is staged in ``staging`` first. An archive to unpack becomes the entries it
    unpacks to (in ``plan`` from then on: the layer's snapshot is made from them)."""
    staging.mkdir(parents=True, exist_ok=True)
    if plan.archives:
        _unpack_archives(plan, staging, view)
    for n, e in enumerate(plan):
        if e.src is not None and _matches(e):
            w.add_path(e.src, e.dest, e.st)  # read only if it is still the file planned with
        elif e.src is not None and (stat.S_ISREG(e.st.st_mode) or stat.S_ISDIR(e.st.st_mode) or stat.S_ISLNK(e.st.st_mode)):
            # another owner or mode than the source's (--chown, --chmod, the context's files
            # belonging to someone else, as every file does seen from a rootless build's user
            # namespace): the writer says so itself, exactly as a staged copy would be stored,
            # without copying the data first
            mode = None if stat.S_ISLNK(e.st.st_mode) else e.mode
            w.add_path(e.src, e.dest, e.st, uid=e.uid, gid=e.gid, mode=mode, as_copy=True)
        else:
            w.add_path(_stage(e, staging, n), e.dest)


def _scan_sorted(path: str) -> list[os.DirEntry]:
    with os.scandir(path) as it:
        return sorted(it, key=lambda d: os.fsencode(d.name))


def _unpack_archives(plan: CopyPlan, staging: Path, view: RootfsView) -> None:
    """The plan's archives unpacked: a plan of the same entries, each archive replaced by what
    it unpacks to, planned (spilled, and its superseded entries found) as any plan is; then
    ``plan`` is that plan. What else the layer has wins over an image directory an archive
    only passes through (STAY), what an archive unpacks stays beside it (APPEND)."""
    out = CopyPlan(f"{plan.path}.unpacked" if plan.path is not None else None)
    out.writers = 2  # archives over the rest: the dedup decides
    for n, e in enumerate(plan):
        if e.archive:
            _unpack_archive(e, staging / f"unpack{n}", view, out)
        else:
            out.add(e, STAY)
    out.finish()
    plan._records, plan._dropped, plan.archives = out._records, out._dropped, False  # counted as archives


def _unpack_archive(e: CopyEntry, where: Path, view: RootfsView, out: CopyPlan) -> None:
    """ADD of a local archive (``e.src``) into the directory ``e.dest``, as Docker unpacks it
    over the image (BuildKit's ``applyRootArchive``, moby's ``Untar``): the entries, in order,
    to put in the layer, added to ``out``.

    Unpacking is part 4's safe extraction into ``where`` (an entry for the root itself is
    skipped, whatever its type; a later entry replaces an earlier one, a file a directory and a
    directory a file); then each path is placed over the image (:class:`_OverImage`)."""
    over = _OverImage(e, view, out, _extract_archive(e, where))
    # (where-relative directory, its path in the layer)
    stack: list[tuple[str, str]] = [("", e.dest)]
    while stack:
        rel_dir, layer_dir = stack.pop()
        subdirs = []
        for d in _scan_sorted(os.path.join(where, rel_dir) if rel_dir else str(where)):
            rel = f"{rel_dir}/{d.name}" if rel_dir else d.name
            target = f"{layer_dir}/{d.name}" if layer_dir else d.name
            st = d.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                subdirs.append((rel, over.directory(rel, d.path, st, target)))
            else:
                over.as_archived(target, d.path, st)
        stack.extend(reversed(subdirs))


def _extract_archive(e: CopyEntry, where: Path) -> set[str]:
    """Part 4's safe extraction of the archive ``e.src`` into ``where`` (with ``--chown``'s
    owner on every entry); the directories the archive itself names."""
    import tarfile

    from part4_tar import LayerError, extract_layer

    where.mkdir(parents=True)
    # the directories the archive names, as opposed to the parents unpacking makes for its
    # other entries: noted as the entries go by, in the one pass that unpacks them
    named_dirs: set[str] = set()

    def note_dir(m: tarfile.TarInfo) -> None:
        if m.isdir() and (cleaned := posixpath.normpath("/" + m.name).lstrip("/")):
            named_dirs.add(cleaned)

    try:
        with os.fdopen(_open_source(e), "rb") as f:  # the archive planned with
            # --chown: every entry unpacked gets the owner (so nothing is copied again for it)
            extract_layer(f, where, whiteouts=False, skip_root=True, owner=(e.uid, e.gid) if e.uid >= 0 else None,
                          on_entry=note_dir)
    except (LayerError, tarfile.TarError, EOFError) as err:
        raise CopyError(f"ADD failed: {os.path.basename(e.src)}: {err}") from None
    return named_dirs


class _OverImage:
    """The unpacked archive's paths placed over the image, as Docker places them:

    * a non-directory replaces whatever the image has there (a directory and all below it);
    * a directory the archive names takes the archive's owner and mode, over an image
      directory or in place of an image file; one unpacking only made for the entries below it
      leaves an image directory as it is, and fails on an image file, as Docker fails;
    * a directory of the image that is a symlink is followed, inside the image's root
      (``bin -> usr/bin``): what the archive has below ``bin/`` goes to ``usr/bin/``.
    """

    def __init__(self, e: CopyEntry, view: RootfsView, out: CopyPlan, named_dirs: set[str]) -> None:
        self.name = os.path.basename(e.src)
        #: --chown's owner for every entry, or None: the archive's
        self.owner = (e.uid, e.gid) if e.uid >= 0 else None
        self.view = view
        self.out = out
        self.named_dirs = named_dirs

    def put(self, entry: CopyEntry) -> None:
        self.out.add(entry, APPEND)

    def keep(self, path: str, node) -> None:
        """An image directory on the way, as it is (unless the layer has that path already)."""
        self.out.add(CopyEntry(path, str(node.path), node.st, node.st.st_uid, node.st.st_gid,
                               stat.S_IMODE(node.st.st_mode), parent=True), KEEP)

    def as_archived(self, target: str, src: str, st: os.stat_result) -> None:
        """The unpacked ``src`` at ``target`` as the archive has it (``--chown``'s owner)."""
        uid, gid = self.owner or (st.st_uid, st.st_gid)
        self.put(CopyEntry(target, src, st, uid, gid, stat.S_IMODE(st.st_mode)))

    def image_parents(self, path: str) -> None:
        """The image's directories on the way to ``path`` (a resolved path), as they are."""
        parts = split_path(path)
        for i in range(1, len(parts)):
            sub = "/".join(parts[:i])
            node = self.view.lookup(sub, follow_final=False)
            if node is not None and node.is_dir:
                self.keep(sub, node)

    def directory(self, rel: str, src: str, st: os.stat_result, target: str) -> str:
        """The directory ``rel`` of the archive at ``target``; where it ends up in the layer."""
        named = rel in self.named_dirs
        node = self.view.lookup(target, follow_final=False)
        if node is not None and stat.S_ISLNK(node.st.st_mode):
            resolved, node = self.view.resolve(target)
            self.image_parents(resolved)
            target = resolved
        if node is not None and node.is_dir and not named:
            self.keep(target, node)  # there already: it stays as it is
        elif named:
            self.as_archived(target, src, st)
        elif node is not None:
            raise CopyError(f"ADD failed: {self.name}: cannot unpack {rel}/: /{target} is not a directory")
        else:  # made for what is below it, as unpacking makes it: 0755, root
            self.put(CopyEntry(target, src, st, 0, 0, 0o755))
        return target



def materialize(plan: CopyPlan, root: Path, *, source_date_epoch: int | None = None) -> None:
    """Write the entries of ``plan`` as a directory: what extracting its layer would give.

    A RUN after a COPY needs the COPY's layer as an overlay lower dir. Extracting the layer
    just written means decompressing and parsing the tar again; the files are still at hand,
    so they are copied instead, with the metadata the layer gave them (owner, mode, mtime in
    whole seconds clamped to ``SOURCE_DATE_EPOCH``, extended attributes, hard links).

    Every name is written through part 4's :class:`~part4_tar.RootDir`, as extraction writes
    it: resolved inside ``root`` (a symlink that an earlier entry of the same COPY made is
    followed as if ``root`` were ``/``, never out of it), a ``..`` name refused before anything
    is written, the last component never followed. So the snapshot is what the layer gives,
    in this process or in the child process a large COPY forks.

    Thousands of small files make this a loop of system calls: each file is copied through
    file descriptors only (``copy_file_range`` in the kernel, then ``fchown``/``fchmod``/
    ``futimens`` on the open copy), its directory found among the few that RootDir keeps open.
    """
    from part4_tar import RootDir

    links: dict[tuple[int, int], str] = {}
    dirs: list[tuple[str, int]] = []
    epoch = source_date_epoch

    def mtime_ns(seconds: float) -> int:
        s = int(seconds // 1)
        if epoch is not None and s > epoch:
            s = epoch
        return s * 1_000_000_000

    with RootDir(root, create=True) as rd:
        for e in plan:
            if e.src is None:
                _make_dir(rd, e)
                dirs.append((e.dest, mtime_ns(e.mtime_ns / 1e9)))
                continue
            st = e.st
            direct = _matches(e)
            if stat.S_ISDIR(st.st_mode):
                _make_dir(rd, e, e.src if direct else None)
                dirs.append((e.dest, mtime_ns(st.st_mtime)))
                continue
            if direct and st.st_nlink > 1:
                first = links.get((st.st_dev, st.st_ino))
                if first is not None:
                    rd.link(first, e.dest)
                    continue
                links[(st.st_dev, st.st_ino)] = e.dest
            if stat.S_ISREG(st.st_mode):
                _write_file(rd, e, mtime_ns(st.st_mtime), direct)
            else:
                _write_special(rd, e, mtime_ns(st.st_mtime), direct)
        for name, ns in reversed(dirs):
            rd.set_times(name, (ns, ns))


def _make_dir(rd, e: CopyEntry, xattrs_from: str | None = None) -> None:
    """A directory of a snapshot (``materialize``), with the entry's owner and mode."""
    from part4_tar import fd_path

    fd = rd.make_dir(e.dest, 0o700)
    try:
        os.chown(fd_path(fd), e.uid, e.gid)
        os.chmod(fd_path(fd), e.mode)
        if xattrs_from is not None:
            _copy_xattrs(xattrs_from, fd_path(fd), follow_dst=True)
    finally:
        os.close(fd)


def _write_file(rd, e: CopyEntry, ns: int, direct: bool) -> None:
    """A regular file of a snapshot, copied and set through its descriptors only."""
    from part4_tar import copy_data

    src_fd = _open_source(e)
    try:
        fd = rd.create_file(e.dest, 0o600)
        try:
            copy_data(src_fd, fd)
            os.fchown(fd, e.uid, e.gid)
            os.fchmod(fd, e.mode)
            if direct:
                _copy_xattrs(src_fd, fd)
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)
    finally:
        os.close(src_fd)


def _write_special(rd, e: CopyEntry, ns: int, direct: bool) -> None:
    """A symlink, device, FIFO or socket of a snapshot, with the entry's owner and mode."""
    from part4_tar import fd_path

    mode = e.st.st_mode
    if stat.S_ISLNK(mode):
        where = rd.symlink(os.readlink(e.src), e.dest)
        os.chown(where.name, e.uid, e.gid, dir_fd=where.fd, follow_symlinks=False)
    else:
        where = rd.mknod(e.dest, stat.S_IFMT(mode) | e.mode, e.st.st_rdev)
        fd = os.open(where.name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=where.fd)
        try:
            os.chown(fd_path(fd), e.uid, e.gid)
            os.chmod(fd_path(fd), e.mode)  # after chown, which may clear set-id bits
            if direct:
                _copy_xattrs(e.src, fd_path(fd), follow_dst=True)
        finally:
            os.close(fd)
    os.utime(where.name, ns=(ns, ns), dir_fd=where.fd, follow_symlinks=False)


def _copy_xattrs(src, dst, *, follow_dst: bool = False) -> None:
    """The extended attributes of ``src`` onto ``dst``: open descriptors, or paths not followed
    at their end (``follow_dst`` for a ``/proc/self/fd/N`` destination, a link to the file)."""
    follow = {} if isinstance(src, int) else {"follow_symlinks": False}
    to = {} if isinstance(dst, int) else {"follow_symlinks": follow_dst}
    try:
        names = os.listxattr(src, **follow)
    except OSError:
        return
    for name in names:
        if name.startswith(("trusted.overlay.", "user.overlay.")):
            continue  # overlay's bookkeeping, never content (part 4 leaves it out too)
        try:
            os.setxattr(dst, name, os.getxattr(src, name, **follow), **to)
        except OSError:
            pass


def made_time(source_date_epoch: int | None) -> float:
    return float(source_date_epoch) if source_date_epoch is not None else time.time()


__all__ = ["CopyEntry", "CopyError", "CopyPlan", "check_entry_name", "made_time", "materialize", "plan_copy",
           "write_copy"]
