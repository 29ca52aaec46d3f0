"""File names that are not UTF-8 are carried as the bytes they are (surrogateescape in Python's
str): through the context walk, .dockerignore matching (for COPY and for a RUN's bind mount of
the context), the content-hash cache keys, the layers and the store's cache files. A cache file that cannot be written or read is only a miss: it
never fails a build, this one or a later one.
"""

from __future__ import annotations

import contextlib
import marshal
import os
from pathlib import Path

import pytest
from support import image_rootfs, quiet_build

from capstone.engine import contenthash
from capstone.engine.contenthash import MAGIC, FileDigests, path_key
from capstone.store import Store

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds need root (namespaces, overlay mounts)")

LATIN1 = b"caf\xe9.txt"  # "café.txt" in Latin-1: not UTF-8
IGNORED = b"na\xefve.txt"
DIRNAME = b"d\xff"


def make_ctx(root: Path) -> Path:
    root.mkdir()
    b = os.fsencode(root)
    files = {
        LATIN1: b"latin-1 name\n",
        IGNORED: b"excluded by a .dockerignore line that is not UTF-8 either\n",
        DIRNAME + b"/x": b"in a directory whose name is not UTF-8\n",
        b".dockerignore": IGNORED + b"\n",
        b"Dockerfile": b"FROM capstone/busybox\nCOPY " + LATIN1 + b" /one/\nCOPY . /all/\nRUN find /all > /listing\n"
                       b"RUN --mount=type=bind,target=/ctx find /ctx > /bound\n",
    }
    for name, data in files.items():
        path = b + b"/" + name
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return root


def rootfs(store, tag, dest: Path) -> bytes:
    return os.fsencode(image_rootfs(store, tag, dest))


def test_names_that_are_not_utf8_go_through_the_build_as_bytes(store, tmp_path, monkeypatch):
    # the files were written a moment ago: the content-hash table keeps no row of a file that
    # new (test_capstone_engine_contenthash.py), and this test reads the rows it saves
    monkeypatch.setattr(contenthash, "RACY_NS", 0)
    ctx = make_ctx(tmp_path / "ctx")
    quiet_build(store, ctx, tags=["nonutf8"])
    root = rootfs(store, "nonutf8", tmp_path / "rootfs")
    assert open(root + b"/one/" + LATIN1, "rb").read() == b"latin-1 name\n"
    assert sorted(os.listdir(root + b"/all")) == sorted([b".dockerignore", b"Dockerfile", LATIN1, DIRNAME])
    assert os.listdir(root + b"/all/" + DIRNAME) == [b"x"]
    # the RUN step saw the same bytes, and its bind mount of the context what .dockerignore keeps
    assert b"/all/" + LATIN1 in open(root + b"/listing", "rb").read().split(b"\n")
    bound = open(root + b"/bound", "rb").read().split(b"\n")
    assert b"/ctx/" + LATIN1 in bound and b"/ctx/" + DIRNAME + b"/x" in bound
    assert b"/ctx/" + IGNORED not in bound

    # the content-hash table was saved (with the names as they are) and the rebuild uses it
    again = quiet_build(store, ctx, tags=["nonutf8"])
    assert again.cache_hits == len(again.steps) - 1  # every step but FROM
    assert path_key(os.fsdecode(os.fsencode(ctx) + b"/" + LATIN1)) in {row[0] for row in saved_rows(store)}


def digest_tables(store) -> list[Path]:
    """The store's cache entries that are file digest tables."""
    return [p for p in store.cache_dir.iterdir() if p.read_bytes().startswith(MAGIC)]


def saved_rows(store) -> list[tuple]:
    return [row for path in digest_tables(store) for row in table_rows(path)]


def test_cache_keys_tell_two_names_apart_by_their_bytes(store, tmp_path):
    ctx = make_ctx(tmp_path / "ctx")
    quiet_build(store, ctx, tags=["nonutf8-keys"])
    b = os.fsencode(ctx)
    os.rename(b + b"/" + LATIN1, b + b"/caf\xe8.txt")  # same content, another byte
    with open(b + b"/Dockerfile", "wb") as f:
        f.write(b"FROM capstone/busybox\nCOPY . /all/\n")
    first = quiet_build(store, ctx, tags=["nonutf8-keys"])
    os.rename(b + b"/caf\xe8.txt", b + b"/caf\xe7.txt")
    second = quiet_build(store, ctx, tags=["nonutf8-keys"])
    assert [s.cached for s in first.steps if s.kind == "COPY"] == [False]
    assert [s.cached for s in second.steps if s.kind == "COPY"] == [False]
    root = rootfs(store, "nonutf8-keys", tmp_path / "rootfs")
    assert b"caf\xe7.txt" in os.listdir(root + b"/all") and b"caf\xe8.txt" not in os.listdir(root + b"/all")


def test_a_cache_file_that_cannot_be_written_or_read_is_only_a_miss(store, tmp_path, monkeypatch):
    monkeypatch.setattr(contenthash, "RACY_NS", 0)  # files this new keep no row otherwise
    ctx = make_ctx(tmp_path / "ctx")

    @contextlib.contextmanager
    def refuse(key):
        with Store.cache_write(store, key) as f:
            f.write(b"half a table")
            raise OSError(28, "No space left on device")
        yield  # never reached

    with monkeypatch.context() as m:
        m.setattr(store, "cache_write", refuse)
        quiet_build(store, ctx, tags=["nonutf8-fail"])
    assert not any(row[0].startswith(ctx_key(ctx)) for row in saved_rows(store))  # the half table is gone
    quiet_build(store, ctx, tags=["nonutf8-fail"])
    tables = [t for t in digest_tables(store) if any(r[0].startswith(ctx_key(ctx)) for r in table_rows(t))]
    assert len(tables) == 1
    # a damaged table is dropped, not fatal: rows of another shape, then a table cut short
    good = tables[0].read_bytes()
    junk = marshal.dumps([(b"x", "junk"), (b"y", 1, 2)])
    tables[0].write_bytes(MAGIC + junk + marshal.dumps([(b"", len(MAGIC), len(junk))])
                          + len(MAGIC + junk).to_bytes(8, "little"))
    (ctx / "new.txt").write_text("changed\n")
    result = quiet_build(store, ctx, tags=["nonutf8-fail"])
    assert [s.cached for s in result.steps if s.kind == "COPY"] == [True, False]
    tables[0].write_bytes(good[:len(good) // 2])
    (ctx / "new.txt").write_text("changed again\n")
    result = quiet_build(store, ctx, tags=["nonutf8-fail"])
    assert [s.cached for s in result.steps if s.kind == "COPY"] == [True, False]


def ctx_key(ctx: Path) -> bytes:
    return path_key(str(ctx)) + b"\0"


def table_rows(path: Path) -> list[tuple]:
    digests = FileDigests(open(path, "rb"))
    try:
        return list(digests.rows())
    finally:
        digests.close()
