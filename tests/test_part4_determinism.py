"""The same tree gives the same layer, whatever the umask, inode order, atime or clock."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time

import pytest

from part4_tar import LayerWriter, open_decompressed, write_layer

FILES = {
    "b/two.txt": b"two\n",
    "a/one.txt": b"one\n",
    "a/z/deep.txt": b"deep\n",
    "c.bin": bytes(range(256)) * 40,
    "a.txt": b"sorts between 'a' and 'a/'\n",
}


def make_tree(root, order, umask, *, mtime=None):
    """The same content and modes, created in ``order`` under ``umask``."""
    old = os.umask(umask)
    try:
        os.makedirs(root)
        for rel in order:
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(FILES[rel])
            os.chmod(path, 0o644)
        os.symlink("a/one.txt", os.path.join(root, "link"))
        os.link(os.path.join(root, "a/one.txt"), os.path.join(root, "b/one-again.txt"))
        for dirpath, dirnames, _ in os.walk(root):
            for d in dirnames:
                os.chmod(os.path.join(dirpath, d), 0o755)
        if mtime is not None:
            for dirpath, dirnames, filenames in os.walk(root, topdown=False):
                for name in dirnames + filenames:
                    os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)
    finally:
        os.umask(old)


def pack(root, compression="gzip", **kw):
    out = io.BytesIO()
    info = write_layer(root, out, compression, **kw)
    return info, out.getvalue()


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_source_date_epoch_makes_trees_made_at_different_times_identical(tmp_path, compression):
    make_tree(tmp_path / "one", list(FILES), 0o022)
    time.sleep(1.1)  # the second tree's mtimes are a second later
    make_tree(tmp_path / "two", list(reversed(FILES)), 0o077)
    sde = 1_000_000_000  # older than both trees: every mtime is clamped to it
    a, bytes_a = pack(tmp_path / "one", compression, source_date_epoch=sde)
    b, bytes_b = pack(tmp_path / "two", compression, source_date_epoch=sde)
    assert bytes_a == bytes_b
    assert (a.digest, a.diff_id) == (b.digest, b.diff_id)
    assert {m.mtime for m in tarfile.open(fileobj=open_decompressed(io.BytesIO(bytes_a)), mode="r|")} == {sde}


def test_inode_order_and_umask_do_not_matter_when_mtimes_are_equal(tmp_path):
    make_tree(tmp_path / "one", list(FILES), 0o022, mtime=1_500_000_000)
    make_tree(tmp_path / "two", list(reversed(FILES)), 0o077, mtime=1_500_000_000)
    assert pack(tmp_path / "one")[0] == pack(tmp_path / "two")[0]


def test_atime_is_never_recorded(tmp_path):
    make_tree(tmp_path / "t", list(FILES), 0o022, mtime=1_500_000_000)
    before = pack(tmp_path / "t")[0]
    for rel in FILES:
        path = tmp_path / "t" / rel
        os.utime(path, ns=(time.time_ns(), os.stat(path).st_mtime_ns))
    assert pack(tmp_path / "t")[0] == before


def test_the_packing_process_umask_does_not_matter(tmp_path):
    make_tree(tmp_path / "t", list(FILES), 0o022, mtime=1_500_000_000)
    code = (
        "import os, sys; os.umask(int(sys.argv[2], 8)); from part4_tar import write_layer;"
        "f = open(sys.argv[3], 'wb'); print(write_layer(sys.argv[1], f, 'gzip').digest)"
    )
    digests = {
        subprocess.run([sys.executable, "-c", code, str(tmp_path / "t"), umask, str(tmp_path / f"l{umask}")],
                       capture_output=True, text=True, check=True).stdout
        for umask in ("022", "077", "000")
    }
    assert len(digests) == 1


def test_source_date_epoch_clamps_only_newer_mtimes(tmp_path):
    make_tree(tmp_path / "t", list(FILES), 0o022, mtime=1_500_000_000)
    os.utime(tmp_path / "t/c.bin", (1_000, 1_000))
    _, data = pack(tmp_path / "t", "none", source_date_epoch=1_200_000_000)
    mtimes = {m.name: m.mtime for m in tarfile.open(fileobj=io.BytesIO(data))}
    assert mtimes["c.bin"] == 1_000
    assert mtimes["a/one.txt"] == 1_200_000_000


def test_entries_are_depth_first_and_sorted_by_name_bytes(tmp_path):
    make_tree(tmp_path / "t", list(reversed(FILES)), 0o022)
    _, data = pack(tmp_path / "t", "none")
    names = [m.name for m in tarfile.open(fileobj=io.BytesIO(data))]
    assert names == ["a", "a/one.txt", "a/z", "a/z/deep.txt", "a.txt", "b", "b/one-again.txt", "b/two.txt", "c.bin", "link"]
    # the second name of the hard link is the link, whichever was created first
    assert [m.name for m in tarfile.open(fileobj=io.BytesIO(data)) if m.islnk()] == ["b/one-again.txt"]


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_worker_thread_gives_the_same_bytes_as_a_single_thread(tmp_path, compression):
    # 24 MiB: past the size where the compressor moves to its worker thread
    src = tmp_path / "big"
    src.mkdir()
    with open(src / "data", "wb") as f:
        for i in range(24):
            f.write(os.urandom(1 << 19) + bytes([i]) * (1 << 19))
    outs = []
    for threads in (True, False):
        out = io.BytesIO()
        with LayerWriter(out, compression, threads=threads) as w:
            w.add_tree(src)
        outs.append((w.info, out.getvalue()))
    assert outs[0] == outs[1]
