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
    assert r.returncode == 125 and r.stderr.count("\n") == 1 and "is damaged" in r.stderr, r.stderr
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


# -- what a build fsyncs ---------------------------------------------------------------------


def test_a_build_fsyncs_what_its_name_reaches_before_the_name(tmp_path, monkeypatch):
    """Step images, cache entries, image ids and snapshot markers are written without fsync;
    the tagged image's manifest and config (whatever a name reaches) are made durable before
    index.json names them, so a crash never leaves a name to metadata the disk did not keep."""
    store = Store.open(tmp_path / "store")
    store.load("capstone/busybox")  # the base made now, not during the build observed below
    ctx = make_context(tmp_path / "ctx", "FROM capstone/busybox\nRUN echo a > /a\nRUN echo b > /b\nENV X=1\n")
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst, **kw):
        events.append(("replace", str(dst)))
        return real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with open(os.devnull, "wb") as devnull:
        build(store, ctx, tags=["durable:1"], network="none", run_output=devnull)
    monkeypatch.undo()
    synced = [path for kind, path in events if kind == "fsync"]
    desc = store.resolve("durable:1")
    manifest = store.layout.read_manifest(desc)
    blobs = str(store.layout.blobs_dir)
    named = [f"{blobs}/{desc.digest.split(':')[1]}", f"{blobs}/{manifest.config.digest.split(':')[1]}"]
    index_written = events.index(("replace", str(store.layout.path / "index.json")))
    for path in named:  # durable, and before the name
        assert ("fsync", path) in events[:index_written], (path, events)
    assert blobs in synced[:index_written]
    # nothing of the steps: three cache records (two RUNs, ENV) are not waited for
    assert not [p for p in synced if p.startswith(str(store.path / "cache"))], synced
    assert len(synced) <= 6, synced


def test_step_images_the_disk_lost_are_cache_misses(tmp_path):
    """After a crash the disk may keep a step's files empty (written, renamed, never fsynced):
    a build finds those entries unusable and makes the steps again."""
    store = Store.open(tmp_path / "store")
    ctx = make_context(tmp_path / "ctx", "FROM capstone/busybox\nRUN echo a > /a\nRUN echo b > /b\n")
    with open(os.devnull, "wb") as devnull:
        build(store, ctx, tags=["lost:1"], network="none", run_output=devnull)
        named = store.resolve("lost:1").digest
        entries = [p for p in (store.path / "cache").iterdir() if not p.name.startswith(".")]
        steps = {json_value["manifest"] for json_value in (_read_json(p) for p in entries) if "manifest" in json_value}
        for entry in entries:
            entry.write_bytes(b"")  # as a crash can leave a file renamed before its data was written
        for digest in steps - {named}:
            store.layout.blob_path(digest).write_bytes(b"")
        build(store, ctx, tags=["lost:2"], network="none", run_output=devnull)
        rebuilt = store.resolve("lost:2").digest
        # the steps were made again and recorded: the next build hits the cache all the way
        build(store, ctx, tags=["lost:3"], network="none", run_output=devnull)
    assert store.resolve("lost:3").digest == rebuilt
    assert len(store.load("lost:2").layers) == len(store.load("lost:1").layers)
    assert all(_read_json(p) for p in (store.path / "cache").iterdir() if not p.name.startswith("."))


def _read_json(path: Path) -> dict:
    import json

    try:
        value = json.loads(path.read_bytes())
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
