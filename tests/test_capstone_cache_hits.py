"""What a cache hit reads: the manifest and the config of the image it names, as JSON, and not a
model of every layer descriptor and history entry (capstone/engine/stepimage.py). A fully
cached build over a base of many layers never makes the part 3 image value of any step, yet
names the same image; a hit whose image lost a blob is still a miss.

The cost itself (instructions, seconds) is measured by ``bench/startup.py manylayers``, never
here."""

from __future__ import annotations

import pytest
from support import make_context, quiet_build

import capstone.store.store as store_module
from capstone.store import Store
from part2_manual_oci import OCILayout
from part2_manual_oci import mediatypes as mt

BASE_LAYERS = 12


@pytest.fixture
def store(tmp_path) -> Store:
    store = Store.open(tmp_path / "store")
    lines = ["FROM capstone/busybox"]
    files = {}
    for i in range(1, BASE_LAYERS):
        files[f"f{i}"] = f"layer {i}\n"
        lines += [f"COPY f{i} /layers/", f"ENV LAYER_{i}={i}", f"LABEL layer.{i}=x"]
    quiet_build(store, make_context(tmp_path / "base", "\n".join(lines) + "\n", files), tags=["many:base"])
    return store


TOP = "FROM many:base\nWORKDIR /app\nCOPY a .\nENV GREETING=hello\nLABEL purpose=test\nUSER 1000\nCMD [\"cat\", \"a\"]\n"


def test_a_cached_build_makes_no_image_value_and_names_the_same_image(store, tmp_path, monkeypatch):
    ctx = make_context(tmp_path / "ctx", TOP, {"a": "x"})
    first = quiet_build(store, ctx, tags=["top:1"])
    assert len(store.load("top:1").layers) == BASE_LAYERS + 2  # WORKDIR and COPY made layers

    def refused(*args, **kwargs):
        raise AssertionError("a cache hit read a whole image")

    # every way the store makes an image value, or a model of a manifest's layers or a config's history
    monkeypatch.setattr(store_module, "image_from_layout", refused)
    monkeypatch.setattr(OCILayout, "read_manifest", refused)
    monkeypatch.setattr(OCILayout, "read_config", refused)
    again = quiet_build(store, ctx, tags=["top:1", "top:2"])
    monkeypatch.undo()
    assert again.ran == () and again.cache_hits == 3  # WORKDIR, COPY, and the config steps at the end
    assert (again.image_id, again.digest) == (first.image_id, first.digest)
    assert store.resolve("top:2").digest == first.digest
    # what the hits showed of their layers is what the first build made
    assert [(s.layer_digest, s.diff_id, s.layer_size) for s in again.steps] == \
        [(s.layer_digest, s.diff_id, s.layer_size) for s in first.steps]


def test_a_step_after_hits_gets_the_whole_image(store, tmp_path):
    """A miss after hits over the stored images: the step runs over the image value made then."""
    ctx = make_context(tmp_path / "ctx", TOP, {"a": "x"})
    quiet_build(store, ctx, tags=["top:1"])
    ctx2 = make_context(tmp_path / "ctx2", TOP + "COPY a /b\n", {"a": "x"})
    result = quiet_build(store, ctx2, tags=["top:3"])
    assert [s.cached for s in result.steps if s.kind != "FROM"] == [True, True, None, None, None, None, False]
    image = store.load("top:3")
    assert len(image.layers) == BASE_LAYERS + 3
    assert image.config.config.user == "1000" and image.config.config.labels["purpose"] == "test"
    assert image.config.history[-1].created_by == "COPY a /b"


def test_a_hit_whose_layer_blob_is_gone_is_a_miss(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", TOP, {"a": "x"})
    first = quiet_build(store, ctx, tags=["top:1"])
    copy = next(s for s in first.steps if s.kind == "COPY")
    store.blob_path(copy.layer_digest).unlink()
    again = quiet_build(store, ctx, tags=["top:1"])
    assert [(s.kind, s.cached) for s in again.steps if s.kind in ("WORKDIR", "COPY")] == \
        [("WORKDIR", True), ("COPY", False)]
    assert again.digest == first.digest and store.has_blob(copy.layer_digest)


def test_a_base_in_docker_media_types_is_written_as_oci(store, tmp_path):
    """A build of nothing but FROM commits its base: one in Docker's media types is written
    again in OCI's (a new manifest), never named as the store has it."""
    docker = store.convert(store.resolve("many:base"), oci_mediatypes=False)
    assert docker.media_type == mt.DOCKER_MANIFEST
    store.tag("docker:base", docker)
    result = quiet_build(store, make_context(tmp_path / "ctx", "FROM docker:base\n"), tags=["plain:1"])
    named = store.resolve("plain:1")
    assert named.media_type == mt.OCI_MANIFEST and named.digest != docker.digest
    assert result.digest == named.digest == store.commit(store.load("docker:base"), []).digest
    assert result.image_id == store.image_id("plain:1")
