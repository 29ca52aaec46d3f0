"""The stat fast path of COPY's cache key: a file whose stat is unchanged is not read again,
and yet new content always changes the key, even at the same size and the same mtime.

BuildKit's file sync compares size and mtime, so a tool that writes new bytes of the same size
and sets the old mtime back keeps the stale content there. The capstone's row also holds the
inode and the ctime, which no one can set back; a row whose ctime falls in the tick its read
began is not kept (git's "racily clean" entries), since a second write in that tick would leave
every stat field as the row has it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from support import make_context

from capstone.engine import build, contenthash
from capstone.engine.contenthash import MAGIC, FileDigests, path_key
from capstone.store import Store

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds give files owners (root)")


def _saved_rows(store: Store) -> list[tuple]:
    """Every row of the store's file digest tables."""
    rows = []
    for path in store.cache_dir.iterdir():
        if path.read_bytes().startswith(MAGIC):
            digests = FileDigests(open(path, "rb"))
            try:
                rows.extend(digests.rows())
            finally:
                digests.close()
    return rows


def _rewrite_keeping_stat_times(path: Path, data: bytes) -> None:
    """New bytes of the same size, the old atime and mtime set back (as ``touch -r`` or a
    careless extractor would): only the ctime (and a filesystem's own clock) moves."""
    before = path.stat()
    assert len(data) == before.st_size
    path.write_bytes(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)


def test_new_content_of_the_same_size_and_mtime_changes_the_copy_key(store, tmp_path, monkeypatch):
    # every row is kept however recent its file (the racy window is tested below): the
    # second build must see the change through the stat fast path itself
    monkeypatch.setattr(contenthash, "RACY_NS", 0)
    ctx = make_context(tmp_path / "ctx", "FROM capstone/busybox\nCOPY a.txt /a.txt\n", {"a.txt": "old!\n"})
    first = build(store, ctx, tags=["contenthash"], network="none")
    rows = _saved_rows(store)
    assert (path_key(str(ctx / "a.txt")), hashlib.sha256(b"old!\n").digest()) in {(r[0], r[5]) for r in rows}
    again = build(store, ctx, tags=["contenthash"], network="none")
    assert again.ran == () and again.image_id == first.image_id

    _rewrite_keeping_stat_times(ctx / "a.txt", b"new!\n")
    changed = build(store, ctx, tags=["contenthash"], network="none")
    assert [s.kind for s in changed.ran] == ["COPY"]
    assert changed.image_id != first.image_id
    image = store.load("contenthash")
    from part4_tar import apply_layers

    root = tmp_path / "root"
    root.mkdir()
    apply_layers([layer.open() for layer in image.layers], root)
    assert (root / "a.txt").read_bytes() == b"new!\n"


def test_a_digest_read_while_its_file_is_new_is_not_remembered(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"aaaa")
    st = f.stat()  # ctime: just now
    digests = FileDigests()
    assert digests.digest(str(f), st) == hashlib.sha256(b"aaaa").hexdigest()
    assert not digests.changed  # no row
    # a second write in the same tick keeps every field of the stat: the stat taken before it
    # stands for the one taken after, and the bytes are read again
    _rewrite_keeping_stat_times(f, b"bbbb")
    assert digests.digest(str(f), st) == hashlib.sha256(b"bbbb").hexdigest()
    assert digests.read_bytes == 8


def test_a_digest_of_a_settled_file_is_remembered(tmp_path, monkeypatch):
    f = tmp_path / "f"
    f.write_bytes(b"aaaa")
    st = f.stat()
    monkeypatch.setattr(contenthash, "RACY_NS", 0)  # as if its ctime were long past
    digests = FileDigests()
    digests.digest(str(f), st)
    assert digests.changed
    assert digests.digest(str(f), st) == hashlib.sha256(b"aaaa").hexdigest()
    assert digests.read_bytes == 4  # the second answer came from the row


def test_rows_of_files_deleted_or_excluded_leave_the_table(store, tmp_path, monkeypatch):
    """A build's walk of the context drops the rows of the files it no longer sees (deleted,
    or excluded by .dockerignore since); a cached build of an unchanged context leaves the
    table as it was (not even written again)."""
    monkeypatch.setattr(contenthash, "RACY_NS", 0)
    files = {f"src/d{d}/f{i}.txt": f"{d} {i}\n" for d in range(3) for i in range(4)}
    ctx = make_context(tmp_path / "ctx", "FROM capstone/busybox\nCOPY src /app/\n", {**files, "keep.txt": "k\n"})
    build(store, ctx, tags=["prune"], network="none")

    def ours() -> set[bytes]:
        return {r[0] for r in _saved_rows(store) if r[0].startswith(path_key(str(ctx)) + b"\0")}

    assert ours() == {path_key(str(ctx / name)) for name in files}
    tables = {p: p.stat().st_ino for p in store.cache_dir.iterdir()}
    again = build(store, ctx, tags=["prune"], network="none")
    assert again.ran == () and {p: p.stat().st_ino for p in store.cache_dir.iterdir()} == tables

    os.unlink(ctx / "src/d0/f1.txt")
    (ctx / ".dockerignore").write_text("src/d2\n")
    build(store, ctx, tags=["prune"], network="none")
    assert ours() == {path_key(str(ctx / name)) for name in files if not name.startswith(("src/d2/", "src/d0/f1"))}
