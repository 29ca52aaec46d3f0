"""Content hashes of COPY/ADD sources, for cache keys.

What a copy puts in a layer is decided by, per entry: its path in the image, type, mode, owner,
size, link target, and for a regular file the SHA-256 of its bytes. The mtime is left out,
as BuildKit's ``cache/contenthash`` leaves it out: touching a file (a fresh git checkout) keeps
the cache. The digest of the whole selection is the SHA-256 of one line per entry, in order.

Reading every file again on every build would cost as much as copying it, so file digests are
remembered per real path with the stat fields that change when content may have changed
(size, mtime in ns, inode, ctime in ns) — the same trick as git's index. A file whose stat is
unchanged is not read again; the table lives in the store's cache (``contenthash:<context>``).

The mtime alone would not do: a tool (or an attacker) can write new bytes of the same size and
set the old mtime back, and BuildKit's file sync, which compares size and mtime, then keeps the
stale content. The ctime cannot be set back: every write and every ``utime`` makes it "now".
But "now" is a clock tick of the file system (coarse: milliseconds; seconds on some), so a file
written again within the tick in which it was hashed keeps the ctime its row holds: as git does
with its "racily clean" entries, a digest is not remembered while the file's ctime is within
:data:`RACY_NS` of the moment its read began (it is read again next time).

A context of 200,000 files has as many rows, so the table is never held in memory whole: it
is a file of rows sorted by path (``/`` as the lowest byte, so a directory's walk, parents
first and names sorted by bytes, reads it front to back), in chunks with an index of their
first paths at the end. A lookup reads the one chunk its path falls in, which a walk's next
lookups find again. Rows computed by a build are gathered a few thousand at a time, sorted
and spilled to run files in the build's scratch directory; the table a build leaves is one
merge of the old table and those runs, written chunk by chunk.

Files deleted from a context (or excluded since) would leave their rows in the table for ever:
the table of a context a build walks is pruned of the rows of that walk's directory the walk
did not see. A walk (:meth:`FileDigests.walk`) looks its files up in order, so it finds out in
passing whether the table holds more below the directory than it found there: the rows the
chunks it loaded hold below the directory, against its hits, and a chunk of rows below the
directory that none of its lookups loaded. Only then (a file was deleted or excluded since the
table was written) is the walk made again when the table is written, its files merged with
the table's rows: what is below its directory and not among them is left out. A cached build
of an unchanged context pays a few comparisons per chunk, and holds nothing per file.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import marshal
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO

from ..errors import ContextError

CHUNK = 1 << 20
#: a row is remembered only for a file whose ctime is older than this when its read begins:
#: above any file system's timestamp granularity (a jiffy for ext4 and xfs, 2 s for FAT's mtime)
RACY_NS = 3_000_000_000
MAGIC = b"capstone file digests 1\n"
#: rows per chunk of a table file (a lookup unmarshals one chunk)
CHUNK_ROWS = 512
#: fresh rows gathered in memory before they are spilled as a sorted run
SPILL_ROWS = 8192

#: (sort key: the path's bytes with "/" as b"\0", size, mtime_ns, ino, ctime_ns, sha256 bytes)
Row = tuple[bytes, int, int, int, int, bytes]
_key_of = itemgetter(0)


def path_key(path: str) -> bytes:
    """The order rows are kept in: a path's bytes with each ``/`` the lowest byte, so a walk
    in name order (parents first) meets its paths in increasing order."""
    return os.fsencode(path).replace(b"/", b"\0")


def _valid_row(row) -> bool:
    return (type(row) is tuple and len(row) == 6 and type(row[0]) is bytes and all(type(v) is int for v in row[1:5])
            and type(row[5]) is bytes and len(row[5]) == 32)


class _Walk:
    """A walk of the directory whose keys start with ``prefix``, as its lookups see the table:
    the chunks they loaded, the table's rows below the directory in them, the hits."""

    __slots__ = ("again", "hits", "loaded", "prefix", "rows")

    def __init__(self, prefix: bytes, again: Callable[[], Iterable[str]]) -> None:
        self.prefix, self.again = prefix, again
        self.loaded: set[int] = set()  # chunk numbers: a walk loads each once, in order
        self.rows = self.hits = 0

    def count(self, n: int, rows: list) -> None:
        if n not in self.loaded:
            self.loaded.add(n)
            lo = bisect.bisect_left(rows, self.prefix, key=_key_of)
            hi = bisect.bisect_left(rows, self.prefix[:-1] + b"\1", key=_key_of)
            self.rows += hi - lo


class _Table:
    """A table file (read-only, through ``pread``: a stage child forked meanwhile shares the
    descriptor, never an offset): its chunks' first keys, and the chunk last read."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.fd = f.fileno()
        self.index: list[tuple[bytes, int, int]] = []  # (first key, offset, length) per chunk
        self.firsts: list[bytes] = []
        self._chunk = -1
        self._rows: list[Row] = []
        self.walk: _Walk | None = None  # the walk looking rows up, if any
        try:
            end = os.fstat(self.fd).st_size
            if end < len(MAGIC) + 8 or os.pread(self.fd, len(MAGIC), 0) != MAGIC:
                return
            at = int.from_bytes(os.pread(self.fd, 8, end - 8), "little")
            if not len(MAGIC) <= at <= end - 8:
                return
            index = marshal.loads(os.pread(self.fd, end - 8 - at, at))
        except (OSError, ValueError, EOFError, TypeError):
            return
        # what a cache file holds is only a hint: a table of another shape is an empty one
        if isinstance(index, list) and all(
                type(c) is tuple and len(c) == 3 and type(c[0]) is bytes and type(c[1]) is int and type(c[2]) is int
                for c in index):
            self.index = index
            self.firsts = [c[0] for c in index]

    def _load(self, n: int) -> list[Row]:
        if n != self._chunk:
            _, offset, length = self.index[n]
            try:
                rows = marshal.loads(os.pread(self.fd, length, offset))
            except (OSError, ValueError, EOFError, TypeError):
                rows = []
            self._rows = rows if isinstance(rows, list) else []
            self._chunk = n
            if self.walk is not None:
                try:
                    self.walk.count(n, self._rows)
                except (TypeError, IndexError, KeyError):  # a damaged chunk: pruned by a walk again
                    self.walk.rows += 1
        return self._rows

    def unseen(self, walk: _Walk) -> bool:
        """Whether the table holds rows below ``walk``'s directory that its lookups did not
        find: more rows in the chunks they loaded than hits, or a chunk of such rows unloaded."""
        lo = max(bisect.bisect_right(self.firsts, walk.prefix) - 1, 0)
        hi = bisect.bisect_left(self.firsts, walk.prefix[:-1] + b"\1") - 1
        if hi < lo:
            return False
        if lo not in walk.loaded:  # the chunk it starts in: rows below the directory, or not
            self.walk, self._chunk = walk, -1
            try:
                self._load(lo)
            finally:
                self.walk = None
        # every chunk after the first begins below the directory: one never loaded holds rows
        # no lookup found
        return walk.rows > walk.hits or any(n not in walk.loaded for n in range(lo + 1, hi + 1))

    def find(self, key: bytes) -> Row | None:
        n = bisect.bisect_right(self.firsts, key) - 1
        if n < 0:
            return None
        rows = self._load(n)
        try:
            i = bisect.bisect_left(rows, key, key=_key_of)
        except (TypeError, IndexError, KeyError):  # a damaged chunk: its rows are not even tuples
            return None
        # only the row found is checked (a lookup is the hot loop of a cached build)
        return rows[i] if i < len(rows) and _valid_row(rows[i]) and rows[i][0] == key else None

    def rows(self) -> Iterator[Row]:
        for n in range(len(self.index)):
            yield from filter(_valid_row, self._load(n))


def _read_run(path: Path) -> Iterator[Row]:
    """The rows of a run file: chunks, each its length (8 bytes) then a marshalled list."""
    with open(path, "rb") as f:
        while head := f.read(8):
            rows = marshal.loads(f.read(int.from_bytes(head, "little")))
            yield from (row for row in rows if _valid_row(row))


def _aged(rows: Iterator[Row], age: int) -> Iterator[tuple[bytes, int, Row]]:
    return ((row[0], -age, row) for row in rows)


class FileDigests:
    """sha256 of files, remembered by (path, size, mtime_ns, ino, ctime_ns).

    ``table``: the table file a former build left (an open binary file, read as lookups need
    it; None: none). ``spill_dir``: where the rows this build computes are spilled, sorted, a
    few thousand at a time (None: they stay in memory; a small build, a test)."""

    def __init__(self, table: BinaryIO | None = None, spill_dir: str | os.PathLike | None = None) -> None:
        self._table = _Table(table) if table is not None else None
        self.spill_dir = Path(spill_dir) if spill_dir is not None else None
        self._fresh: dict[bytes, Row] = {}  # rows computed since the last spill
        #: the sorted runs spilled so far, oldest first (a stage child's are merged in)
        self.runs: list[Path] = []
        self.changed = False
        self.read_bytes = 0
        self._walks: list[_Walk] = []  # the walks of this build, done
        self._unseen = False  # whether one of them did not see rows the table has

    @property
    def prunable(self) -> bool:
        """Whether the table holds rows a walk of this build did not see (to be written)."""
        return self._unseen

    @contextmanager
    def walk(self, directory: str, again: Callable[[], Iterable[str]]) -> Iterator[None]:
        """The lookups of a walk of ``directory`` (in order, as it walks); ``again()`` makes the
        walk again: the real paths of the regular files it sees, in the same order. Once the
        walk is done, whether the table holds rows below ``directory`` it did not see is known;
        if so, :meth:`write` leaves them out."""
        table = self._table
        if table is None or not table.index:
            yield
            return
        w = _Walk(path_key(directory.rstrip("/")) + b"\0", again)
        table.walk, table._chunk = w, -1  # the chunk in hand is counted again when looked in
        try:
            yield
        finally:
            table.walk = None
        self._walks.append(w)
        self._unseen = self._unseen or table.unseen(w)

    def _known(self, key: bytes) -> Row | None:
        row = self._fresh.get(key)
        table = self._table
        if table is not None and (row is None or table.walk is not None):
            found = table.find(key)
            if found is not None and table.walk is not None:
                table.walk.hits += 1
            row = row or found
        return row

    def digest(self, path: str, st: os.stat_result) -> str:
        key = path_key(path)
        known = self._known(key)
        if known is not None and known[1] == st.st_size and known[2] == st.st_mtime_ns and known[3] == st.st_ino \
                and known[4] == st.st_ctime_ns:
            return known[5].hex()
        h = hashlib.sha256()
        started = time.time_ns()
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
                # a directory on the way swapped for a link since ``st`` was taken: that other
                # file's digest must never be remembered for this path (the copy checks the same)
                raise ValueError(f"{path}: replaced while it was read")
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            while True:
                n = os.readv(fd, [buf])
                if not n:
                    break
                h.update(view[:n])
                self.read_bytes += n
        finally:
            os.close(fd)
        raw = h.digest()
        if st.st_ctime_ns > started - RACY_NS:
            return raw.hex()  # changed too recently: a change in the same tick would keep this stat
        self._fresh[key] = (key, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, raw)
        self.changed = True
        if self.spill_dir is not None and len(self._fresh) >= SPILL_ROWS:
            self.spill()
        return raw.hex()

    def spill(self) -> None:
        """Write the rows gathered in memory as a sorted run in ``spill_dir``."""
        if not self._fresh or self.spill_dir is None:
            return
        rows = sorted(self._fresh.values(), key=_key_of)
        path = self.spill_dir / f"digests-{os.urandom(8).hex()}"
        with open(path, "xb") as f:
            for i in range(0, len(rows), CHUNK_ROWS):
                data = marshal.dumps(rows[i:i + CHUNK_ROWS])
                f.write(len(data).to_bytes(8, "little") + data)
        self.runs.append(path)
        self._fresh.clear()

    def close(self) -> None:
        """Close the table file read (after :meth:`write`)."""
        if self._table is not None:
            self._table.f.close()
            self._table = None

    def merge(self, runs: Iterable[str | os.PathLike]) -> None:
        """Take in the runs another process spilled (a stage built by a child): newer than the
        rows gathered here so far, which are spilled first."""
        self.spill()
        for run in runs:
            self.runs.append(Path(run))
            self.changed = True

    def rows(self, *, leave_out: str | None = None) -> Iterator[Row]:
        """Every row remembered (the table's and this build's, the newest for a path), sorted;
        ``leave_out``: none below that directory."""
        sources: list[Iterator[Row]] = []
        if self._table is not None:
            sources.append(self._table.rows())
        sources.extend(_read_run(p) for p in self.runs)
        sources.append(iter(sorted(self._fresh.values(), key=_key_of)))
        # newer sources win: each row tagged with its source's age, the merge keeps a key's first
        tagged = [_aged(src, age) for age, src in enumerate(sources)]
        cut = path_key(leave_out.rstrip("/")) + b"\0" if leave_out else None

        def merged() -> Iterator[Row]:
            last = None
            for key, _, row in heapq.merge(*tagged):
                if key == last or (cut is not None and key.startswith(cut)):
                    continue
                last = key
                yield row

        yield from _pruned(merged(), self._walks) if self._unseen else merged()

    def write(self, out: BinaryIO, *, leave_out: str | None = None) -> None:
        """Write the table a next build reads: :meth:`rows` in chunks, then their index."""
        out.write(MAGIC)
        at = len(MAGIC)
        index: list[tuple[bytes, int, int]] = []
        chunk: list[Row] = []

        def flush() -> None:
            nonlocal at
            data = marshal.dumps(chunk)
            out.write(data)
            index.append((chunk[0][0], at, len(data)))
            at += len(data)
            chunk.clear()

        for row in self.rows(leave_out=leave_out):
            chunk.append(row)
            if len(chunk) == CHUNK_ROWS:
                flush()
        if chunk:
            flush()
        out.write(marshal.dumps(index))
        out.write(at.to_bytes(8, "little"))


def _pruned(rows: Iterator[Row], walks: list[_Walk]) -> Iterator[Row]:
    """``rows`` but those below a walk's directory that no walk sees when made again (every
    walk, so a file one walk excludes and another sees stays)."""
    seen = heapq.merge(*(map(path_key, w.again()) for w in walks))
    prefixes = tuple(w.prefix for w in walks)

    def step():
        try:
            return next(seen, None)
        except (OSError, ValueError, ContextError):  # the context changed meanwhile: no more pruning
            return prefixes
    at = step()
    for row in rows:
        key = row[0]
        if at is prefixes or not key.startswith(prefixes):
            yield row
            continue
        while at is not None and at is not prefixes and at < key:
            at = step()
        if at == key or at is prefixes:
            yield row


def entry_line(dest: str, st: os.stat_result, uid: int, gid: int, mode: int,
               digests: FileDigests, path: str | None, link: str | None = None) -> str:
    """One entry of a selection as hashed: what the layer will hold there, mtime excluded."""
    kind = stat.S_IFMT(st.st_mode)
    content = ""
    if stat.S_ISREG(st.st_mode) and path is not None:
        content = digests.digest(path, st)
    elif stat.S_ISLNK(st.st_mode) and path is not None:
        content = link if link is not None else os.readlink(path)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        content = f"{os.major(st.st_rdev)},{os.minor(st.st_rdev)}"
    size = st.st_size if stat.S_ISREG(st.st_mode) else 0
    return f"{dest}\0{kind:o}\0{mode:o}\0{uid}\0{gid}\0{size}\0{content}\n"


def selection_digest(lines) -> str:
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8", "surrogateescape"))
    return "sha256:" + h.hexdigest()


__all__ = ["FileDigests", "entry_line", "path_key", "selection_digest"]
