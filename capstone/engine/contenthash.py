"""Content hashes of COPY/ADD sources, for cache keys.

What a copy puts in a layer is decided by, per entry: its path in the image, type, mode, owner,
size, link target, and for a regular file the SHA-256 of its bytes. The mtime is left out,
as BuildKit's ``cache/contenthash`` leaves it out: touching a file (a fresh git checkout) keeps
the cache. The digest of the whole selection is the SHA-256 of one line per entry, in order.

Reading every file again on every build would cost as much as copying it, so file digests are
remembered per real path with the stat fields that change when content may have changed
(size, mtime in ns, inode, ctime in ns) — the same trick as git's index. A file whose stat is
unchanged is not read again; the table lives in the store's cache (``contenthash:<context>``).
"""

from __future__ import annotations

import hashlib
import os
import stat

CHUNK = 1 << 20


class FileDigests:
    """sha256 of files, remembered by (path, size, mtime_ns, ino, ctime_ns)."""

    def __init__(self, table: dict | None = None) -> None:
        #: real path (str; a name that is not UTF-8 as surrogateescape) -> [size, mtime_ns,
        #: ino, ctime_ns, sha256 hex]. What a cache file holds is only a hint: a row of any
        #: other shape (an older format, a damaged file) is dropped, never trusted or fatal
        self.table: dict[str, list] = {
            path: row for path, row in (table.items() if isinstance(table, dict) else ())
            if isinstance(path, str) and _valid_row(row)
        }
        self.changed = False
        self.read_bytes = 0
        #: the rows computed from here on, when a dict (a stage built by a child process sets
        #: one and hands the rows back); None keeps no second index of a big context
        self.fresh: dict[str, list] | None = None

    def digest(self, path: str, st: os.stat_result) -> str:
        sig = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]
        known = self.table.get(path)
        if known is not None and known[:4] == sig:
            return known[4]
        h = hashlib.sha256()
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
        hexdigest = h.hexdigest()
        row = self.table[path] = sig + [hexdigest]
        if self.fresh is not None:
            self.fresh[path] = row
        self.changed = True
        return hexdigest

    def merge(self, rows: dict[str, list]) -> None:
        """Take in rows another process computed (as :attr:`fresh` gave them)."""
        for path, row in rows.items():
            if _valid_row(row):
                self.table[path] = row
                self.changed = True


def _valid_row(row) -> bool:
    return (isinstance(row, list) and len(row) == 5 and all(type(v) is int for v in row[:4])
            and isinstance(row[4], str) and len(row[4]) == 64)


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


__all__ = ["FileDigests", "entry_line", "selection_digest"]
