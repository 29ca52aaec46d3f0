"""capstone load (docker-archive, oci-archive), import's refusal of image archives, and --output.

References: ``docker load`` / ``podman load`` (every image of the archive, named by RepoTags or
by the OCI ref name), BuildKit's exporters (``docker buildx build -o``: ``type=local``,
``type=tar``, ``-o DIR``, ``compression=``, ``oci-mediatypes=``). Archives are made by skopeo
(as CI has it) and by hand in Docker 25's layout; results are checked with skopeo, umoci,
part 2's validate_layout and by running the images.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from registry_server import Registry
from support import capstone, capstone_inspect, capstone_run, make_context, skopeo

from capstone.store import Store
from part2_manual_oci import OCILayout, validate_layout
from part2_manual_oci import mediatypes as mt

BUSYBOX = "capstone/busybox"
APP = 'FROM capstone/busybox\nRUN echo built > /built\nCMD ["cat", "/built"]\n'


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A store with ``app:1`` built from the embedded busybox, and its OCI layout export."""
    root = tmp_path_factory.mktemp("load")
    ctx = make_context(root / "ctx", APP)
    r = capstone(root / "store", "build", "-q", "-t", "app:1", str(ctx), timeout=300)
    assert r.returncode == 0, r.stderr
    r = capstone(root / "store", "save", "app:1", f"oci:{root / 'layout'}:app")
    assert r.returncode == 0, r.stderr
    return root


# -- load -------------------------------------------------------------------------------------------


def test_load_a_docker_archive_from_skopeo(built, tmp_path):
    archive = tmp_path / "d.tar"
    skopeo("copy", f"oci:{built / 'layout'}:app", f"docker-archive:{archive}:example.com/team/app:2")
    store = tmp_path / "s"
    r = capstone(store, "load", "-i", str(archive))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Loaded image: example.com/team/app:2\n"
    assert capstone_run(store, "example.com/team/app:2") == "built\n"
    assert capstone_inspect(store, "example.com/team/app:2")["Id"] == capstone_inspect(built / "store", "app:1")["Id"]
    assert validate_layout(store / "oci") == []


def test_load_an_oci_archive_names_it_by_its_full_ref_name(built, tmp_path):
    named, tagged = tmp_path / "named.tar", tmp_path / "tagged.tar"
    skopeo("copy", f"oci:{built / 'layout'}:app", f"oci-archive:{named}:quay.io/x/app:3")
    skopeo("copy", f"oci:{built / 'layout'}:app", f"oci-archive:{tagged}:v1")  # skopeo's bare tag
    store = tmp_path / "s"
    r = capstone(store, "load", str(named))
    assert r.returncode == 0 and r.stdout == "Loaded image: quay.io/x/app:3\n", r.stderr
    assert capstone_run(store, "quay.io/x/app:3") == "built\n"
    r = capstone(store, "load", str(tagged))  # a bare tag names no image: docker prints the id
    assert r.returncode == 0 and r.stdout == f"Loaded image ID: {capstone_inspect(built / 'store', 'app:1')['Id']}\n"


def test_load_a_docker_25_archive(built, tmp_path):
    """Docker 25's ``docker save``: an OCI layout with a manifest.json whose Config and Layers
    are blob paths (compressed layers: docker load takes them)."""
    layout = OCILayout.open(built / "layout")
    manifest = layout.read_manifest(layout.resolve("app"))
    entry = {"Config": f"blobs/sha256/{manifest.config.digest[7:]}", "RepoTags": ["app:docker25"],
             "Layers": [f"blobs/sha256/{ld.digest[7:]}" for ld in manifest.layers]}
    (tmp_path / "manifest.json").write_text(json.dumps([entry]))
    archive = tmp_path / "d25.tar"
    with tarfile.open(archive, "w") as tf:
        for name in ("oci-layout", "index.json", "blobs"):
            tf.add(built / "layout" / name, name)
        tf.add(tmp_path / "manifest.json", "manifest.json")
    store = tmp_path / "s"
    r = capstone(store, "load", str(archive))
    assert r.returncode == 0 and r.stdout == "Loaded image: app:docker25\n", r.stderr
    assert capstone_run(store, "app:docker25") == "built\n"


def test_load_of_our_own_save_and_of_several_images(built, tmp_path):
    archive = tmp_path / "ours.tar"
    assert capstone(built / "store", "save", "app:1", f"docker-archive:{archive}").returncode == 0
    store = tmp_path / "s"
    r = capstone(store, "load", str(archive))
    assert r.returncode == 0 and r.stdout == "Loaded image: app:1\n", r.stderr
    assert capstone_run(store, "app:1") == "built\n"


@pytest.mark.parametrize("content", [b"not a tar at all", None])
def test_load_of_something_else_is_one_line_and_changes_nothing(built, tmp_path, content):
    bad = tmp_path / "bad.tar"
    if content is None:  # a tar, but a root filesystem, not an image
        with tarfile.open(bad, "w") as tf:
            tf.add(built / "ctx" / "Dockerfile", "etc/hostname")
    else:
        bad.write_bytes(content)
    store = tmp_path / "s"
    Store.open(store)
    before = (store / "oci" / "index.json").read_bytes()
    r = capstone(store, "load", str(bad))
    assert r.returncode == 1 and "neither a docker-archive" in r.stderr and r.stderr.count("\n") == 1
    assert (store / "oci" / "index.json").read_bytes() == before


def test_import_refuses_an_image_archive(built, tmp_path):
    archive = tmp_path / "d.tar"
    skopeo("copy", f"oci:{built / 'layout'}:app", f"docker-archive:{archive}:app:1")
    store = tmp_path / "s"
    Store.open(store)
    before = (store / "oci" / "index.json").read_bytes()
    r = capstone(store, "import", str(archive), "broken:1")
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "is a docker-archive (an image, not a root filesystem): use capstone load" in r.stderr
    assert (store / "oci" / "index.json").read_bytes() == before
    oci = tmp_path / "o.tar"
    skopeo("copy", f"oci:{built / 'layout'}:app", f"oci-archive:{oci}:app")
    r = capstone(store, "import", str(oci), "broken:2")
    assert r.returncode == 1 and "is an oci-archive (an image, not a root filesystem)" in r.stderr


# -- --output ---------------------------------------------------------------------------------------


def build_out(built: Path, tmp_path: Path, *outputs: str, tag: str = "out:1") -> subprocess.CompletedProcess:
    args = []
    for o in outputs:
        args += ["-o", o]
    return capstone(built / "store", "build", "-q", "-t", tag, *args, str(built / "ctx"), timeout=300)


@pytest.mark.parametrize("output,message", [
    ("type=oci,dest=x,colour=red", "unknown key 'colour' for type=oci"),
    ("type=local,dest=x,compression=zstd", "unknown key 'compression' for type=local"),
    ("type=oci,dest=x,compression=brotli", "compression=brotli: expected one of gzip, zstd, uncompressed"),
    ("type=oci,dest=x,compression=zstd,oci-mediatypes=false", "compression=zstd needs oci-mediatypes=true"),
    ("type=oci,dest=x,oci-mediatypes=maybe", "oci-mediatypes=maybe is not true or false"),
    ("type=floppy,dest=x", "type must be one of"),
    ("type=tar", "dest=PATH is required"),
])
def test_output_errors_are_one_line_before_any_work(built, tmp_path, output, message):
    r = build_out(built, tmp_path, output)
    assert r.returncode == 1 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_output_local_and_bare_dir_are_the_root_filesystem(built, tmp_path):
    r = build_out(built, tmp_path, f"type=local,dest={tmp_path / 'a'}", str(tmp_path / "b"))
    assert r.returncode == 0, r.stderr
    for d in ("a", "b"):
        assert (tmp_path / d / "built").read_text() == "built\n"
        assert (tmp_path / d / "bin" / "busybox").is_file() and (tmp_path / d / "bin" / "sh").is_symlink()


def test_output_tar_is_the_root_filesystem_in_one_tar(built, tmp_path):
    r = build_out(built, tmp_path, f"type=tar,dest={tmp_path / 'fs.tar'}")
    assert r.returncode == 0, r.stderr
    with tarfile.open(tmp_path / "fs.tar") as tf:
        names = tf.getnames()
        assert "built" in names and "bin/busybox" in names
        assert tf.extractfile("built").read() == b"built\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".fs.tar")]


def test_output_zstd_and_uncompressed_layers(built, tmp_path):
    r = build_out(built, tmp_path, f"type=oci,dest={tmp_path / 'z'},compression=zstd",
                  f"type=oci,dest={tmp_path / 'u'},compression=uncompressed")
    assert r.returncode == 0, r.stderr
    raw = json.loads(skopeo("inspect", "--raw", f"oci:{tmp_path / 'z'}:1"))
    assert {ld["mediaType"] for ld in raw["layers"]} == {mt.OCI_LAYER_ZSTD}
    raw = json.loads(skopeo("inspect", "--raw", f"oci:{tmp_path / 'u'}:1"))
    assert {ld["mediaType"] for ld in raw["layers"]} == {mt.OCI_LAYER}
    for d in ("z", "u"):
        assert validate_layout(tmp_path / d) == []
    # the same image: the config (so the image id) is unchanged
    z = json.loads(skopeo("inspect", "--config", "--raw", f"oci:{tmp_path / 'z'}:1"))
    u = json.loads(skopeo("inspect", "--config", "--raw", f"oci:{tmp_path / 'u'}:1"))
    assert z == u
    unpacked = subprocess.run(["umoci", "unpack", "--image", f"{tmp_path / 'u'}:1", str(tmp_path / "bundle")],
                              capture_output=True, text=True, timeout=120)
    assert unpacked.returncode == 0, unpacked.stderr
    assert (tmp_path / "bundle" / "rootfs" / "built").read_text() == "built\n"


def test_output_docker_media_types_for_old_registries(built, tmp_path):
    registry = Registry(tmp_path / "registry")
    try:
        r = build_out(built, tmp_path, f"type=oci,dest={tmp_path / 'd'},oci-mediatypes=false",
                      f"type=registry,name={registry.host}/old/app:1,oci-mediatypes=false")
        assert r.returncode == 0, r.stderr
        # (skopeo reads only OCI types from a layout; BuildKit writes Docker's there all the same)
        layout = OCILayout.open(tmp_path / "d")
        entry = layout.resolve("1")
        raw = layout.read_json(entry)
        assert entry.media_type == raw["mediaType"] == mt.DOCKER_MANIFEST
        assert raw["config"]["mediaType"] == mt.DOCKER_CONFIG
        assert {ld["mediaType"] for ld in raw["layers"]} == {mt.DOCKER_LAYER_GZIP}
        assert validate_layout(tmp_path / "d") == []
        pushed = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/old/app:1"))
        assert pushed["mediaType"] == mt.DOCKER_MANIFEST
        store = tmp_path / "s"
        assert capstone(store, "pull", f"{registry.host}/old/app:1").returncode == 0
        assert capstone_run(store, f"{registry.host}/old/app:1") == "built\n"
    finally:
        registry.stop()


def test_oci_archive_output_holds_the_full_name(built, tmp_path):
    archive = tmp_path / "o.tar"
    r = build_out(built, tmp_path, f"type=oci-archive,dest={archive}", tag="example.com/me/app:7")
    assert r.returncode == 0, r.stderr
    with tarfile.open(archive) as tf:
        index = json.loads(tf.extractfile("index.json").read())
    assert [m["annotations"][mt.ANNOTATION_REF_NAME] for m in index["manifests"]] == ["example.com/me/app:7"]
    # skopeo (what podman load uses) reads it by that name
    info = json.loads(skopeo("inspect", f"oci-archive:{archive}:example.com/me/app:7"))
    assert info["Architecture"]
    store = tmp_path / "s"
    r = capstone(store, "load", str(archive))
    assert r.stdout == "Loaded image: example.com/me/app:7\n"
