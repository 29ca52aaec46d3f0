"""A damaged blob never leaves the store and is never used: every export (``oci:``,
``oci-archive:``, ``docker-archive:``) checks each blob it copies and fails in one line without
writing its destination, and ``run`` checks that the blob a snapshot was made from is still the
file that was found good (a marker beside the snapshot), hashing it again when it changed: a
damaged blob is refused, a repaired one is used again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import make_context

from capstone.engine import build
from capstone.runner import run_image
from capstone.store import Store, StoreError
from part2_manual_oci import BlobCorrupt, OCILayout, write_oci_archive

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="RUN steps need root (namespaces, overlay mounts)")


@pytest.fixture
def built(tmp_path) -> tuple[Store, str, Path, bytes]:
    """A store with an image whose top layer (made by RUN) is then damaged in place: (store,
    name, the blob's path, its good bytes)."""
    store = Store.open(tmp_path / "store")
    ctx = make_context(tmp_path / "ctx", "FROM capstone/busybox\nRUN echo made > /made.txt\n")
    with open(os.devnull, "wb") as devnull:
        build(store, ctx, tags=["integrity:1"], network="none", run_output=devnull)
    top = store.load("integrity:1").layers[-1].descriptor
    path = store.layout.blob_path(top.digest)
    good = path.read_bytes()
    return store, "integrity:1", path, good


def damage(path: Path, good: bytes) -> None:
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF  # same size: only the hash can tell
    path.write_bytes(bytes(bad))


def cli(store: Store, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "capstone", "--store", str(store.path), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("transport", ["oci", "oci-archive", "docker-archive"])
def test_every_export_refuses_a_damaged_blob(built, tmp_path, transport):
    store, name, path, good = built
    damage(path, good)
    dest = tmp_path / "out"
    r = cli(store, "save", name, f"{transport}:{dest}")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "content hashes to" in r.stderr and path.name in r.stderr, r.stderr
    assert str(store.path / "oci" / "blobs") in r.stderr  # the store's file, not a temp link
    if transport == "oci":
        assert not any((dest / "blobs" / "sha256").glob(path.name))
    else:
        assert not dest.exists()
    assert list((store.path / "tmp").iterdir()) == []


def test_the_same_exports_succeed_once_the_blob_is_repaired(built, tmp_path):
    store, name, path, good = built
    damage(path, good)
    path.write_bytes(good)
    for transport in ("oci", "oci-archive", "docker-archive"):
        r = cli(store, "save", name, f"{transport}:{tmp_path / transport}")
        assert r.returncode == 0, r.stderr


def test_write_oci_archive_checks_each_blob(built, tmp_path):
    store, name, path, good = built
    damage(path, good)
    with pytest.raises(BlobCorrupt, match=f"blob sha256:{path.name}: content hashes to"):
        write_oci_archive(store.path / "oci", tmp_path / "a.tar")
    assert not (tmp_path / "a.tar").exists() and list(tmp_path.glob(".a.tar*")) == []


def run_made(store: Store, name: str, tmp_path: Path) -> tuple[int, str]:
    out = tmp_path / "run.out"
    with open(out, "wb") as f:
        code = run_image(store, name, command=["cat", "/made.txt"], network="none", stdout=f, stderr=f)
    return code, out.read_text()


def test_run_refuses_a_snapshot_whose_blob_was_damaged_and_uses_it_once_repaired(built, tmp_path):
    store, name, path, good = built
    assert run_made(store, name, tmp_path) == (0, "made\n")
    damage(path, good)
    with pytest.raises(StoreError, match=f"layer blob sha256:{path.name} in the store is damaged"):
        run_made(store, name, tmp_path)
    r = cli(store, "run", "--rm", "--network", "none", name, "true")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "is damaged" in r.stderr, r.stderr
    path.write_bytes(good)  # repaired: the same bytes again (a pull or a rebuild would write them)
    assert run_made(store, name, tmp_path) == (0, "made\n")


def test_a_snapshot_without_its_marker_is_checked_once(built, tmp_path):
    """A store from before the markers: the blob is hashed at the snapshot's first use, then
    recorded."""
    store, name, path, good = built
    markers = sorted(store.markers_dir.iterdir())
    assert [m.name for m in markers] == sorted(p.name for p in store.snapshots_dir.iterdir())
    for m in markers:
        m.unlink()
    assert run_made(store, name, tmp_path) == (0, "made\n")
    assert sorted(store.markers_dir.iterdir()) == markers


def test_prune_keeps_the_markers_of_kept_snapshots(built, tmp_path):
    store, name, path, good = built
    before = sorted(p.name for p in store.snapshots_dir.iterdir())
    assert sorted(p.name for p in store.markers_dir.iterdir()) == before
    store.prune()
    assert sorted(p.name for p in store.snapshots_dir.iterdir()) == before
    assert sorted(p.name for p in store.markers_dir.iterdir()) == before
    store.remove(name)
    store.remove("capstone/busybox")
    store.prune(all=True)
    assert list(store.snapshots_dir.iterdir()) == [] and list(store.markers_dir.iterdir()) == []
    OCILayout.open(store.path / "oci")
