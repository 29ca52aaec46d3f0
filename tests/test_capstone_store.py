"""capstone.store: the local store, checked with the real tools that read it (skopeo, umoci,
runc) and with a real overlay mount of its snapshots."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from support import runc_run

from capstone.refs import InvalidName
from capstone.store import (
    EMBEDDED_BUSYBOX,
    AmbiguousImage,
    BuildStore,
    ImageInUse,
    ImageNotFound,
    RegistryStore,
    Store,
    StoreError,
)
from part2_manual_oci import BlobCorrupt, OCILayout, sha256_digest, validate_layout
from part3_go_style_builder import Image, Layer, layer_from_directory
from part5_namespaces import CloneFlags, MountFlags, call_in_namespaces, mount
from part7_union import OverlayMount


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)


@pytest.fixture
def store(tmp_path) -> Store:
    return Store.open(tmp_path / "store")


def busybox_rootfs(root: Path) -> Path:
    """A busybox root filesystem like the benchmark's setup_bases.sh makes."""
    for d in ("bin", "etc", "tmp", "root", "usr/bin", "sbin"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy("/usr/bin/busybox", root / "bin/busybox")
    for applet in ("sh", "echo", "cat", "ls", "id"):
        os.symlink("busybox", root / "bin" / applet)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")
    (root / "etc/marker").write_text("imported\n")
    os.chmod(root / "tmp", 0o1777)
    return root


def with_file_layer(store: Store, base: Image, tmp_path: Path, name: str, text: str) -> Image:
    src = tmp_path / f"layer-{name}"
    (src / "data").mkdir(parents=True)
    (src / "data" / name).write_text(text)
    return base.append_layer(layer_from_directory(src, tmp_path / "blobs"), created_by=f"COPY {name} /data/")


# -- the layout and names ------------------------------------------------------------------------


def test_open_creates_an_oci_layout_and_the_store_dirs(tmp_path):
    store = Store.open(tmp_path / "a" / "b")
    for sub in ("oci/oci-layout", "oci/index.json", "snapshots", "cache", "ids", "tmp"):
        assert (tmp_path / "a/b" / sub).exists(), sub
    assert validate_layout(store.layout.path) == []
    assert Store.open(tmp_path / "a" / "b").images() == []


def test_the_store_is_what_the_build_and_the_registry_client_are_written_against(store):
    assert isinstance(store, BuildStore)
    assert isinstance(store, RegistryStore)
    # one component per concern behind the facade, each over the store's own directories
    assert store.names.ids == store.path / "ids"
    assert store.cache.directory == store.cache_dir == store.path / "cache"
    assert store.snapshots.directory == store.snapshots_dir
    assert store.blob_sources.directory == store.path / "sources"


def test_blobs_through_the_facade_are_checked_against_their_digest(store):
    data = b"a blob\n"
    desc = store.put_blob(data, "application/octet-stream", expected_digest=sha256_digest(data))
    assert store.has_blob(desc.digest) and store.has_blob(desc.digest, len(data))
    assert not store.has_blob(desc.digest, len(data) + 1)  # a file of another size is a damaged copy
    assert store.read_blob(desc) == data
    with store.open_blob(desc) as f:
        assert f.read() == data
    assert store.blob_path(desc.digest).read_bytes() == data
    with pytest.raises(BlobCorrupt):
        store.put_blob(b"other", "application/octet-stream", expected_digest=desc.digest)
    assert not store.has_blob(sha256_digest(b"other"))
    base = store.load("capstone/busybox")
    manifest = store.read_manifest(base.loaded_from)
    assert store.read_config(manifest) == base.config


def test_commit_load_round_trip_reuses_blobs_and_tags_normalized_names(store, tmp_path):
    base = store.load("capstone/busybox")
    image = with_file_layer(store, base, tmp_path, "hello", "hi\n").with_config(cmd=["cat", "/data/hello"])
    desc = store.commit(image, ["app:1", "localhost:5000/team/app"])
    assert desc.digest == image.digest
    refs = [d.ref_name for d in store.layout.index().manifests]
    assert refs == [EMBEDDED_BUSYBOX, "docker.io/library/app:1", "localhost:5000/team/app:latest"]

    loaded = store.load("app:1")
    assert loaded.config == image.config
    assert [layer.descriptor for layer in loaded.layers] == [layer.descriptor for layer in image.layers]
    assert loaded.loaded_from.digest == desc.digest
    assert store.load("docker.io/library/app:1").digest == store.load("localhost:5000/team/app:latest").digest
    # the base layer was already there: one file per blob (2 layers, 2 configs, 2 manifests)
    assert len(list(store.layout.blobs_dir.iterdir())) == 6
    # committing the loaded image again changes nothing
    before = (store.layout.path / "index.json").read_bytes()
    assert store.commit(loaded, []).digest == desc.digest
    assert (store.layout.path / "index.json").read_bytes() == before
    assert validate_layout(store.layout.path) == []


def test_resolve_by_name_digest_and_id_prefix(store, tmp_path):
    base = store.load("capstone/busybox")
    a = store.commit(with_file_layer(store, base, tmp_path, "a", "a"), ["a"])
    image_id = store.image_id(a)
    assert store.resolve("a").digest == a.digest
    assert store.resolve(a.digest).digest == a.digest
    assert store.resolve(image_id).digest == a.digest
    assert store.resolve(image_id[7:]).digest == a.digest
    assert store.resolve(image_id[7:13]).digest == a.digest
    assert store.resolve(f"a@{a.digest}").digest == a.digest
    assert store.resolve("missing") is None
    with pytest.raises(InvalidName):
        store.resolve("Bad Name")
    # an untagged image (a cached build step) resolves by digest and id
    b = store.commit(with_file_layer(store, base, tmp_path, "b", "b"), [])
    assert b.digest not in [d.digest for d in store.layout.index().manifests]
    assert store.resolve(b.digest).digest == b.digest
    assert store.resolve(store.image_id(b)[7:20]).digest == b.digest
    # two ids share a prefix of length 0 beyond "sha256:": a too-short prefix is no id
    assert store.resolve("abc") is None


def test_ambiguous_id_prefix_is_an_error(store, tmp_path):
    base = store.load("capstone/busybox")
    one = store.commit(base.with_config(labels={"n": "1"}), [])
    two = store.commit(base.with_config(labels={"n": "2"}), [])
    # two image ids that share the prefix "abcd" (ids are sha256 hex: forge the records)
    for desc, tail in ((one, "1"), (two, "2")):
        record = store.path / "ids" / store.image_id(desc)[7:]
        (store.path / "ids" / ("abcd" + tail * 60)).write_bytes(record.read_bytes())
    with pytest.raises(AmbiguousImage, match="abcd"):
        store.resolve("abcd")
    assert store.resolve("abcd1").digest == one.digest


def test_tag_untag_and_remove(store, tmp_path):
    base = store.load("capstone/busybox")
    desc = store.commit(with_file_layer(store, base, tmp_path, "x", "x"), ["x"])
    store.tag("y:2", desc)
    store.tag("z", "x")
    assert sorted(store.names_of(desc)) == ["docker.io/library/x:latest", "docker.io/library/y:2",
                                            "docker.io/library/z:latest"]
    with pytest.raises(ImageInUse):
        store.remove(store.image_id(desc))
    assert store.remove("y:2") == [("Untagged", "y:2")]
    store.untag("z")
    with pytest.raises(ImageNotFound):
        store.untag("z")
    lines = store.remove("x")
    assert lines == [("Untagged", "x:latest"), ("Deleted", store.layout.read_manifest(desc).config.digest)]
    assert store.resolve("x") is None
    with pytest.raises(ImageNotFound):
        store.load("x")


# -- atomicity ------------------------------------------------------------------------------------


class FailingSource:
    """A layer source that breaks after some bytes (a crash or a full disk mid-commit)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def open(self):
        data = self.path.read_bytes()
        good = io.BytesIO(data[: len(data) // 2])

        class Broken(io.RawIOBase):
            def readable(self):
                return True

            def readinto(self, b):
                chunk = good.read(min(len(b), 4096))
                if not chunk:
                    raise OSError(5, "simulated I/O error mid-layer")
                b[: len(chunk)] = chunk
                return len(chunk)

        return Broken()


def test_interrupted_commit_leaves_index_json_unchanged(store, tmp_path):
    base = store.load("capstone/busybox")
    good = with_file_layer(store, base, tmp_path, "big", os.urandom(300_000).hex())
    store.commit(base, ["keep"])
    index_before = (store.layout.path / "index.json").read_bytes()
    blobs_before = sorted(p.name for p in store.layout.blobs_dir.iterdir())
    top = good.layers[-1]
    broken = Image(good.config, good.layers[:-1] + (Layer(top.descriptor, top.diff_id, FailingSource(top.source.path)),))
    with pytest.raises(OSError, match="simulated"):
        store.commit(broken, ["keep", "new"])
    assert (store.layout.path / "index.json").read_bytes() == index_before
    assert sorted(p.name for p in store.layout.blobs_dir.iterdir()) == blobs_before  # no temp file left
    assert store.resolve("new") is None
    # a bad name is refused before anything is written
    with pytest.raises(InvalidName):
        store.commit(good, ["ok", "Not/Valid"])
    assert (store.layout.path / "index.json").read_bytes() == index_before
    assert validate_layout(store.layout.path) == []


# -- tools read the store -------------------------------------------------------------------------


def test_skopeo_and_umoci_read_the_store_and_runc_runs_the_embedded_base(store, tmp_path):
    assert [d.ref_name for d in store.layout.index().manifests] == []
    base = store.load("capstone/busybox")  # appears on first use
    assert store.resolve(EMBEDDED_BUSYBOX) is not None
    image = with_file_layer(store, base, tmp_path, "msg", "from the store\n").with_config(
        cmd=["sh", "-c", "cat /data/msg; echo $((6*7))"])
    desc = store.commit(image, ["x:tag"])

    info = run(["skopeo", "inspect", f"oci:{store.layout.path}:docker.io/library/x:tag"])
    assert info.returncode == 0, info.stderr
    doc = json.loads(info.stdout)
    assert doc["Digest"] == desc.digest and len(doc["Layers"]) == 2

    bundle = tmp_path / "bundle"
    unpack = run(["umoci", "unpack", "--image", f"{store.layout.path}:docker.io/library/x:tag", str(bundle)])
    assert unpack.returncode == 0, unpack.stderr
    result = runc_run(bundle, "capstone-store")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["from the store", "42"]


# -- import and snapshots -------------------------------------------------------------------------


def _overlay_listing(lowers: list[str], scratch: str) -> dict:
    mount(None, "/", None, MountFlags.REC | MountFlags.PRIVATE)
    with OverlayMount(lowers, f"{scratch}/upper", f"{scratch}/work", f"{scratch}/merged") as m:
        root = m.target
        return {
            "bin": sorted(os.listdir(root / "bin")),
            "marker": (root / "etc/marker").read_text(),
            "sh": os.readlink(root / "bin/sh"),
            "tmp_mode": oct(os.stat(root / "tmp").st_mode & 0o7777),
            "mounts": sum(1 for line in open("/proc/self/mountinfo") if str(root) in line),
        }


@pytest.mark.parametrize("kind", ["dir", "tar"])
def test_import_then_snapshot_lowers_mount_as_the_rootfs(store, tmp_path, kind):
    root = busybox_rootfs(tmp_path / "rootfs")
    src = root
    if kind == "tar":
        src = tmp_path / "rootfs.tar"
        with tarfile.open(src, "w") as tf:
            tf.add(root, arcname=".")
    desc = store.import_rootfs(src, "busybox:bench")
    assert store.resolve("docker.io/library/busybox:bench").digest == desc.digest
    image = store.load("busybox:bench")
    assert len(image.layers) == 1
    assert image.config.config.cmd == ("/bin/sh",)
    assert image.config.config.env[0].startswith("PATH=")

    lowers = store.lowers(image)
    assert lowers == [store.snapshots_dir / image.layers[0].diff_id[7:]]
    inode = os.stat(lowers[0]).st_ino
    assert store.lowers(image) == lowers and os.stat(lowers[0]).st_ino == inode  # extracted once
    assert not [p for p in store.snapshots_dir.iterdir() if p.name.startswith(".tmp-")]

    seen = call_in_namespaces(lambda: _overlay_listing([str(p) for p in lowers], str(tmp_path / "ovl")),
                              CloneFlags.NEWNS)
    assert seen["marker"] == "imported\n" and seen["sh"] == "busybox"
    assert {"busybox", "sh", "echo"} <= set(seen["bin"])
    assert seen["tmp_mode"] == "0o1777" and seen["mounts"] == 1
    # the mount lived in the child's namespace only
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()
    assert validate_layout(store.layout.path) == []


def test_import_extracts_the_snapshot_so_the_first_build_does_not(store, tmp_path):
    root = busybox_rootfs(tmp_path / "rootfs")
    desc = store.import_rootfs(root, "busybox:bench")
    diff_id = store.layout.read_config(store.manifest(desc)).rootfs_diff_ids[0]
    assert store.has_snapshot(diff_id)
    assert (store.snapshots_dir / diff_id[7:] / "etc" / "marker").read_text() == "imported\n"
    assert not [p for p in store.snapshots_dir.iterdir() if p.name.startswith(".tmp-")]


def test_load_manifest_reads_an_untagged_manifest_blob_directly(store, tmp_path):
    base = store.load("capstone/busybox")
    changed = base.with_config(created_by="test step", created="2024-01-01T00:00:00Z")
    desc = store.commit(changed, [])  # untagged, as a build cache entry
    loaded = store.load_manifest(desc.digest)
    assert loaded.config == changed.config and loaded.loaded_from.digest == desc.digest
    assert loaded.config == store.load(desc.digest).config
    with pytest.raises(ImageNotFound):
        store.load_manifest("sha256:" + "0" * 64)


def test_tagging_again_with_the_same_names_does_not_rewrite_index_json(store):
    image = store.load("capstone/busybox")
    desc = store.commit(image, ["again:1"])
    store.commit(image, ["later:1"])  # a name after it: a rebuild of again:1 keeps its place
    index = store.layout.path / "index.json"
    before = os.stat(index)
    assert store.commit(store.load("again:1"), ["again:1"]).digest == desc.digest
    after = os.stat(index)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_snapshot_of_a_layer_with_whiteouts_hides_the_lower_file(store, tmp_path):
    base = store.load("capstone/busybox")
    upper = tmp_path / "del"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / ".wh.group").write_text("")
    image = base.append_layer(layer_from_directory(upper, tmp_path / "blobs"))
    store.commit(image, ["nogroup"])
    lowers = store.lowers(store.load("nogroup"))
    whiteout = lowers[0] / "etc" / "group"
    assert os.stat(whiteout, follow_symlinks=False).st_rdev == 0 and not (lowers[0] / "etc/.wh.group").exists()

    def check():
        mount(None, "/", None, MountFlags.REC | MountFlags.PRIVATE)
        with OverlayMount([str(p) for p in lowers], None, None, str(tmp_path / "m")) as m:
            return (m.target / "etc/group").exists(), (m.target / "etc/passwd").exists()

    assert call_in_namespaces(check, CloneFlags.NEWNS) == (False, True)


# -- save / export --------------------------------------------------------------------------------


def test_save_to_each_destination_is_valid_and_readable(store, tmp_path):
    base = store.load("capstone/busybox")
    image = with_file_layer(store, base, tmp_path, "s", "saved\n")
    desc = store.commit(image, ["saved:v1"])
    diff_ids = list(image.config.rootfs_diff_ids)

    store.export("saved:v1", f"oci:{tmp_path / 'layout'}")
    assert validate_layout(tmp_path / "layout") == []
    assert OCILayout.open(tmp_path / "layout").resolve("v1").digest == desc.digest
    store.export("saved:v1", f"oci:{tmp_path / 'layout'}:other")
    r = run(["skopeo", "inspect", f"oci:{tmp_path / 'layout'}:other"])
    assert r.returncode == 0 and json.loads(r.stdout)["Digest"] == desc.digest, r.stderr

    store.export("saved:v1", f"oci-archive:{tmp_path / 'img.tar'}")
    r = run(["skopeo", "inspect", f"oci-archive:{tmp_path / 'img.tar'}:docker.io/library/saved:v1"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Digest"] == desc.digest

    store.export("saved:v1", f"docker-archive:{tmp_path / 'docker.tar'}")
    r = run(["skopeo", "inspect", f"docker-archive:{tmp_path / 'docker.tar'}"])
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["Digest"].startswith("sha256:") and len(info["Layers"]) == 2
    raw = run(["skopeo", "inspect", "--config", f"docker-archive:{tmp_path / 'docker.tar'}"])
    assert json.loads(raw.stdout)["rootfs"]["diff_ids"] == diff_ids
    with tarfile.open(tmp_path / "docker.tar") as tf:
        names = tf.getnames()
        manifest = json.load(tf.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == ["saved:v1"]
    assert manifest[0]["Config"] == f"{store.image_id(desc)[7:]}.json"
    assert manifest[0]["Layers"] == [f"{d[7:]}/layer.tar" for d in diff_ids]
    assert "repositories" in names
    # skopeo copies it back into a layout we validate
    back = tmp_path / "back"
    r = run(["skopeo", "copy", f"docker-archive:{tmp_path / 'docker.tar'}", f"oci:{back}:x"])
    assert r.returncode == 0, r.stderr
    assert validate_layout(back) == []

    # and we read each one back: same config, same diff_ids
    for src in (f"oci:{tmp_path / 'layout'}:other", f"oci-archive:{tmp_path / 'img.tar'}:docker.io/library/saved:v1",
                f"docker-archive:{tmp_path / 'docker.tar'}", f"docker-archive:{tmp_path / 'docker.tar'}:saved:v1"):
        loaded = store.load_archive(src)
        assert loaded.config == image.config, src
    again = store.commit(store.load_archive(f"docker-archive:{tmp_path / 'docker.tar'}"), ["from-docker"])
    assert store.image_id(again) == store.image_id(desc)
    assert validate_layout(store.layout.path) == []
    assert not list(tmp_path.glob(".*docker.tar*")) and not list(store.tmp_dir.iterdir())


# -- garbage collection ---------------------------------------------------------------------------


def test_rmi_and_prune_free_unreachable_blobs_and_snapshots_but_keep_cached_images(store, tmp_path):
    base = store.load("capstone/busybox")
    kept = with_file_layer(store, base, tmp_path, "kept", "k")
    cached = with_file_layer(store, base, tmp_path, "cached", "c")
    gone = with_file_layer(store, base, tmp_path, "gone", "g")
    kept_desc = store.commit(kept, ["kept"])
    cached_desc = store.commit(cached, [])
    store.cache_put("step-key", {"manifest": cached_desc.digest, "note": "a RUN step"})
    store.cache_put("stale-key", {"manifest": "sha256:" + "0" * 64})
    gone_desc = store.commit(gone, ["gone"])
    for image in (kept, cached, gone):
        store.lowers(image)
    gone_layer = gone.layers[-1]
    assert store.layout.has_blob(gone_layer.descriptor.digest) and store.has_snapshot(gone_layer.diff_id)

    store.remove("gone")
    removed, freed = store.prune()
    assert removed == 3 and freed > 0  # gone's layer, config and manifest
    assert not store.layout.has_blob(gone_layer.descriptor.digest)
    assert not store.has_snapshot(gone_layer.diff_id)
    assert not store.layout.has_blob(gone_desc.digest)
    for image, desc in ((kept, kept_desc), (cached, cached_desc)):
        assert store.layout.has_blob(desc.digest)
        assert all(store.has_snapshot(layer.diff_id) for layer in image.layers)
    assert store.resolve(cached_desc.digest) is not None
    assert store.cache_get("step-key") == {"manifest": cached_desc.digest, "note": "a RUN step"}
    assert store.cache_get("stale-key") is None  # it named an image that is gone
    assert validate_layout(store.layout.path) == []
    assert store.prune() == (0, 0)

    # prune --all drops the cache, and with it the image only the cache kept
    store.prune(all=True)
    assert not store.layout.has_blob(cached_desc.digest)
    assert store.layout.has_blob(kept_desc.digest) and store.load("kept").config == kept.config


def test_prune_keeps_the_snapshots_of_an_image_whose_config_the_cache_names(store, tmp_path):
    """A cache entry names a step's config as well as its manifest: the walk may reach the config
    first from the cache (described without its media type), and the image's layers must still
    keep their snapshots (a build's RUN layer lost its snapshot to prune that way)."""
    base = store.load("capstone/busybox")
    image = with_file_layer(store, base, tmp_path, "named", "n")
    store.commit(image, ["named"])
    store.cache_put("step-key", {"config": image.config_descriptor.digest})
    store.lowers(image)
    store.prune()
    assert all(store.has_snapshot(layer.diff_id) for layer in image.layers)


def test_prune_keeps_the_subject_of_a_named_referrer(store, tmp_path):
    """A signature or SBOM manifest names its image as ``subject`` (OCI 1.1): while the
    referrer has a name, prune keeps the image it refers to (part 2's walk follows subjects)."""
    from part2_manual_oci import ImageConfig, Manifest
    from part2_manual_oci import mediatypes as mt

    base = store.load("capstone/busybox")
    image = with_file_layer(store, base, tmp_path, "signed", "s")
    desc = store.commit(image, [])
    empty = store.layout.put_json(ImageConfig(architecture="amd64", os="linux"), mt.OCI_CONFIG)
    referrer = store.layout.put_json(Manifest(empty, (), subject=desc), mt.OCI_MANIFEST)
    store.tag("signature:1", referrer)
    store.prune()
    assert store.layout.has_blob(desc.digest) and store.load(desc.digest).config == image.config
    store.remove("signature:1")
    store.prune()
    assert not store.layout.has_blob(desc.digest)


def test_sweep_removes_the_extraction_of_a_dead_process_at_once(store):
    """A snapshot is extracted in a leased temp dir: killed midway, the process leaves it, and
    the next sweep removes it (not an hour later); a live extraction's stays."""
    from capstone.store.leases import TEMP_PREFIX, lease

    pid = os.fork()
    if pid == 0:  # an extraction killed midway: its temp dir stays, its lock goes with it
        try:
            with lease(store.snapshots_dir, TEMP_PREFIX + "dead") as tmp:
                (tmp / "fs").mkdir()
                os._exit(0)
        finally:
            os._exit(1)
    assert os.waitpid(pid, 0)[1] == 0
    assert (store.snapshots_dir / (TEMP_PREFIX + "dead") / "fs").is_dir()
    with lease(store.snapshots_dir, TEMP_PREFIX + "alive") as alive:
        assert store.sweep() == [store.snapshots_dir / (TEMP_PREFIX + "dead")]
        assert alive.is_dir() and not (store.snapshots_dir / (TEMP_PREFIX + "dead")).exists()
    assert not alive.exists()


def test_cache_put_get(store):
    assert store.cache_get("k") is None
    store.cache_put("k", {"a": 1})
    store.cache_put("a" * 64, {"b": [1, 2]})
    assert store.cache_get("k") == {"a": 1} and store.cache_get("a" * 64) == {"b": [1, 2]}
    assert (store.cache_dir / ("a" * 64)).is_file()
    store.cache_put("k", {"a": 2})
    assert store.cache_get("k") == {"a": 2}
    assert len(list(store.cache_dir.iterdir())) == 2


def test_lock_is_exclusive_across_processes(store):
    probe = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR); "
             "print('free' if fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB) is None else '')")

    def other_process_can_lock() -> bool:
        r = run([sys.executable, "-c", probe, str(store.path / "lock")])
        return r.stdout.strip() == "free"

    with store.lock(), store.lock():  # re-entrant in one object
        assert not other_process_can_lock()
        with store.lock():
            pass
        assert not other_process_can_lock()
    assert other_process_can_lock()


def test_a_corrupt_blob_gives_no_snapshot(store, tmp_path):
    image = store.load("capstone/busybox")
    layer = image.layers[0]
    path = store.layout.blob_path(layer.descriptor.digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="snapshot of layer .*corrupt") as info:
        store.snapshot(layer.descriptor, layer.diff_id)
    assert "\n" not in str(info.value)
    assert list(store.snapshots_dir.iterdir()) == []


def test_concurrent_snapshot_extraction_gives_one_directory(store):
    image = store.load("capstone/busybox")
    layer = image.layers[0]
    code = ("import sys; from capstone.store import Store; from part2_manual_oci import Descriptor; "
            "import json; s = Store.open(sys.argv[1]); d = Descriptor.from_json(json.loads(sys.argv[2])); "
            "print(s.snapshot(d, sys.argv[3]))")
    argv = [sys.executable, "-c", code, str(store.path), json.dumps(layer.descriptor.to_json()), layer.diff_id]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    paths = {out.strip() for out, _ in results}
    assert paths == {str(store.snapshots_dir / layer.diff_id[7:])}
    assert [p.name for p in store.snapshots_dir.iterdir()] == [layer.diff_id[7:]]
    assert (store.snapshots_dir / layer.diff_id[7:] / "bin" / "busybox").is_file()


def test_adopt_snapshot_renames_a_directory_into_place_once(store):
    staged = store.tmp_dir / "staged"
    (staged / "app").mkdir(parents=True)
    (staged / "app" / "f").write_text("x")
    diff_id = "sha256:" + "1" * 64
    path = store.adopt_snapshot(diff_id, staged)
    assert path == store.snapshots_dir / ("1" * 64) and (path / "app/f").read_text() == "x"
    assert store.has_snapshot(diff_id) and not staged.exists()
    other = store.tmp_dir / "other"
    other.mkdir()
    assert store.adopt_snapshot(diff_id, other) == path and other.is_dir()  # the first one stays
