"""The file digest table of the content-hash cache (capstone.engine.contenthash): rows spilled
in sorted runs and merged into one table file, read back a chunk at a time, the newest row of a
path winning; a file whose stat changed is read again; a damaged table is an empty one."""

from __future__ import annotations

import hashlib
import os
import random
import tempfile

import pytest

from capstone.engine import contenthash
from capstone.engine.contenthash import MAGIC, FileDigests, path_key


@pytest.fixture(autouse=True)
def settled_files(monkeypatch):
    """These tests are about the table: the files they write a moment before hashing them must
    keep their rows (the racy window has its own tests, test_capstone_engine_contenthash.py)."""
    monkeypatch.setattr(contenthash, "RACY_NS", 0)


def make_tree(root, names) -> dict[str, bytes]:
    out = {}
    for name in names:
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = f"content of {name}\n".encode()
        with open(path, "wb") as f:
            f.write(data)
        out[path] = data
    return out


def digest_all(digests: FileDigests, files: dict[str, bytes], order) -> None:
    for path in order:
        assert digests.digest(path, os.lstat(path)) == hashlib.sha256(files[path]).hexdigest()


def saved(digests: FileDigests, **kw):
    """The table ``digests`` leaves, written to a file and open again (a descriptor: read with pread)."""
    out = tempfile.TemporaryFile()
    digests.write(out, **kw)
    digests.close()
    out.flush()
    return out


def table_file(data: bytes):
    f = tempfile.TemporaryFile()
    f.write(data)
    f.flush()
    return f


def test_rows_spill_in_sorted_runs_and_merge_into_a_table_read_without_rereading(tmp_path, monkeypatch):
    monkeypatch.setattr(contenthash, "SPILL_ROWS", 7)
    monkeypatch.setattr(contenthash, "CHUNK_ROWS", 5)
    names = [f"d{d}/f{i:02d}" for d in range(4) for i in range(12)] + ["d1.txt", "d1/sub/x", "a b/\xe9"]
    files = make_tree(tmp_path / "ctx", names)
    order = list(files)
    random.Random(1).shuffle(order)  # lookups in any order
    spill = tmp_path / "spill"
    spill.mkdir()
    first = FileDigests(spill_dir=spill)
    digest_all(first, files, order)
    assert first.read_bytes == sum(map(len, files.values())) and len(first.runs) == len(files) // 7
    table = saved(first)
    assert os.pread(table.fileno(), len(MAGIC), 0) == MAGIC
    keys = [row[0] for row in FileDigests(table).rows()]
    assert keys == sorted(path_key(p) for p in files) and len(set(keys)) == len(keys)

    again = FileDigests(table, spill_dir=spill)
    digest_all(again, files, sorted(files))  # in walk order: front to back through the chunks
    digest_all(again, files, order)
    assert again.read_bytes == 0 and not again.changed

    # a changed file is read again, and its new row replaces the old one in the next table
    changed = sorted(files)[3]
    with open(changed, "ab") as f:
        f.write(b"more\n")
    files[changed] += b"more\n"
    digest_all(again, files, order)
    assert again.read_bytes == len(files[changed])
    newer = FileDigests(saved(again))
    digest_all(newer, files, order)
    assert newer.read_bytes == 0 and len(list(newer.rows())) == len(files)


def test_a_child_s_runs_are_merged_and_newest_rows_win(tmp_path):
    files = make_tree(tmp_path / "ctx", ["a", "b", "c/d"])
    parent = FileDigests(spill_dir=tmp_path)
    digest_all(parent, files, list(files))
    child = FileDigests(spill_dir=tmp_path)
    path = str(tmp_path / "ctx" / "b")
    with open(path, "wb") as f:
        f.write(b"new\n")
    files[path] = b"new\n"
    digest_all(child, files, [path])
    child.spill()
    parent.merge(child.runs)
    rows = {row[0]: row for row in parent.rows()}
    assert rows[path_key(path)][5] == hashlib.sha256(b"new\n").digest() and len(rows) == 3


def test_leave_out_drops_rows_below_a_directory(tmp_path):
    files = make_tree(tmp_path, ["ctx/a", "scratch/h", "scratch-other/k"])
    digests = FileDigests()
    digest_all(digests, files, list(files))
    kept = [row[0] for row in FileDigests(saved(digests, leave_out=str(tmp_path / "scratch"))).rows()]
    assert kept == sorted([path_key(str(tmp_path / "ctx/a")), path_key(str(tmp_path / "scratch-other/k"))])


def test_a_damaged_table_is_an_empty_one(tmp_path):
    files = make_tree(tmp_path, ["x", "y"])
    digests = FileDigests()
    digest_all(digests, files, list(files))
    good = saved(digests)
    good = os.pread(good.fileno(), 1 << 20, 0)
    for bad in (b"", b"{}", good[:len(good) // 2], good[:-8] + (1 << 40).to_bytes(8, "little"),
                MAGIC + b"\0" * 40):
        damaged = FileDigests(table_file(bad))
        assert list(damaged.rows()) == []
        digest_all(damaged, files, list(files))  # read again, never fatal
        assert damaged.read_bytes == sum(map(len, files.values()))


def walked(digests: FileDigests, top, files: dict[str, bytes], excluded=()) -> None:
    """A walk of ``top`` as COPY's key makes it: its files looked up in order."""
    def again():
        return (p for p in sorted(files, key=path_key) if p.startswith(f"{top}/") and p not in excluded)

    with digests.walk(str(top), again):
        digest_all(digests, files, list(again()))


def test_rows_a_walk_no_longer_sees_are_pruned_and_the_rest_kept(tmp_path, monkeypatch):
    """Files deleted from a walked directory (one, and a whole subdirectory: chunks no lookup
    loads) leave the table; rows outside the directory stay; the walk holds nothing per file."""
    monkeypatch.setattr(contenthash, "CHUNK_ROWS", 4)
    names = [f"ctx/d{d}/f{i:02d}" for d in range(4) for i in range(9)] + ["ctx-b/x", "other/y", "ctx.txt"]
    files = make_tree(tmp_path, names)
    first = FileDigests()
    digest_all(first, files, list(files))
    table = saved(first)
    gone = [p for p in files if "/ctx/d2/" in p] + [str(tmp_path / "ctx/d0/f03")]
    for p in gone:
        os.unlink(p)
        del files[p]
    again = FileDigests(table)
    walked(again, tmp_path / "ctx", files)
    assert again.prunable and not again.changed and again.read_bytes == 0
    assert all(len(w.loaded) <= 9 and isinstance(w.rows, int) for w in again._walks)
    keys = [row[0] for row in FileDigests(saved(again)).rows()]
    assert keys == sorted(path_key(p) for p in files)  # those below ctx/ it saw, and the rest


def test_an_unchanged_walk_prunes_nothing_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(contenthash, "CHUNK_ROWS", 3)
    files = make_tree(tmp_path, [f"ctx/d{d}/f{i}" for d in range(3) for i in range(5)] + ["ctx/z", "zz/a"])
    first = FileDigests()
    digest_all(first, files, list(files))
    again = FileDigests(saved(first))
    walked(again, tmp_path / "ctx", files)
    walked(again, tmp_path / "ctx/d1", files)  # a walk of a directory below it, in the same build
    assert not again.prunable and not again.changed and again.read_bytes == 0


def test_a_file_excluded_since_is_pruned_unless_another_walk_sees_it(tmp_path):
    files = make_tree(tmp_path, ["ctx/a", "ctx/b/secret", "ctx/b/c", "ctx/d/e"])

    def first_table():
        first = FileDigests()
        digest_all(first, files, list(files))
        return saved(first)

    secret, e = str(tmp_path / "ctx/b/secret"), str(tmp_path / "ctx/d/e")
    only = FileDigests(first_table())
    walked(only, tmp_path / "ctx", files, excluded={secret})
    keys = [row[0] for row in FileDigests(saved(only)).rows()]
    assert path_key(secret) not in keys and len(keys) == 3
    both = FileDigests(first_table())
    walked(both, tmp_path / "ctx", files, excluded={secret, e})
    walked(both, tmp_path / "ctx/b", files)  # sees the secret
    keys = [row[0] for row in FileDigests(saved(both)).rows()]
    assert path_key(secret) in keys and path_key(e) not in keys and len(keys) == 3


def test_a_walk_that_fails_prunes_nothing(tmp_path):
    files = make_tree(tmp_path, ["ctx/a", "ctx/b"])
    first = FileDigests()
    digest_all(first, files, list(files))
    again = FileDigests(saved(first))
    os.unlink(tmp_path / "ctx/b")
    with pytest.raises(RuntimeError), again.walk(str(tmp_path / "ctx"), lambda: [str(tmp_path / "ctx/a")]):
        digest_all(again, files, [str(tmp_path / "ctx/a")])
        raise RuntimeError("the walk stopped half way")
    assert not again.prunable
