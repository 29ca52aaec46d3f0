"""Part 3: the immutable Image value: scratch, load, append_layer, with_config, write."""

from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
from pathlib import Path

import pytest

from part1_overview import replace
from part2_manual_oci import ContainerConfig
from part2_manual_oci import mediatypes as mt
from part2_manual_oci.busybox import build_busybox_image, host_platform
from part2_manual_oci.errors import BlobCorrupt, BlobNotFound, LayoutError
from part2_manual_oci.layout import OCILayout
from part2_manual_oci.models import Index, Platform
from part2_manual_oci.validate import validate_layout
from part3_go_style_builder import AmbiguousImage, CbtError, Image, ImageNotFound, Layer, layer_from_directory
from part4_tar import write_layer


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("base") / "busybox"
    build_busybox_image(path)
    return path


def oci_image_tool(layout: Path, ref_name: str) -> None:
    proc = subprocess.run(
        ["oci-image-tool", "validate", "--type", "image", "--ref", f"name={ref_name}", str(layout)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_scratch_plus_layer_plus_config_is_a_valid_image(tmp_path):
    (tmp_path / "src" / "etc").mkdir(parents=True)
    (tmp_path / "src" / "etc" / "greeting").write_text("hi\n")
    with open(tmp_path / "layer.tar", "wb") as f:
        info = write_layer(tmp_path / "src", f, "none")

    empty = Image.scratch()
    one = empty.append_layer(tmp_path / "layer.tar", created_by="COPY src /")
    two = one.with_config(cmd=["cat", "/etc/greeting"], env=["A=1"], labels={"k": "v"}, author="course")

    assert (empty.layers, empty.config.history, empty.config.rootfs_diff_ids) == ((), (), ())
    assert (empty.config.os, empty.config.architecture, empty.config.variant) == (host_platform().os, host_platform().architecture, host_platform().variant)
    assert one.layers[0].descriptor.media_type == mt.OCI_LAYER and one.layers[0].diff_id == info.diff_id
    assert one.config.config.cmd is None and two.config.config.cmd == ("cat", "/etc/greeting")
    assert [(h.created_by, h.empty_layer) for h in two.config.history] == [
        ("COPY src /", None),
        ('config author=course, cmd=["cat", "/etc/greeting"], env=["A=1"], labels={"k": "v"}', True),
    ]
    assert two.config.author == "course"

    out = tmp_path / "out"
    desc = two.write(f"oci-layout:{out}:greeter:1")
    assert desc.digest == two.digest
    assert desc.ref_name == "greeter:1"
    assert validate_layout(out) == []
    oci_image_tool(out, "greeter:1")
    loaded = Image.load(f"oci-layout:{out}:greeter:1")
    assert loaded == two
    assert loaded.loaded_from.digest == desc.digest


def test_changes_never_touch_the_original(base):
    image = Image.load(f"oci-layout:{base}")
    before = (image.config, image.layers, image.digest)
    image.with_config(cmd=["true"])
    image.append_layer(image.layers[0])
    assert (image.config, image.layers, image.digest) == before
    with pytest.raises(AttributeError, match="cannot assign to field"):
        image.config = None


def test_with_config_rejects_unknown_fields_and_bare_strings():
    with pytest.raises(TypeError, match="unknown field 'command'"):
        Image.scratch().with_config(command=["x"])
    with pytest.raises(TypeError, match="cmd must be a list of strings"):
        Image.scratch().with_config(cmd="echo hi")


def test_an_image_must_list_one_diff_id_per_layer(base):
    image = Image.load(f"oci-layout:{base}")
    with pytest.raises(ValueError, match="diff_ids"):
        Image(replace(image.config, rootfs_diff_ids=()), image.layers)


def test_write_into_the_base_layout_verifies_blobs_in_place(base, tmp_path):
    layout = tmp_path / "copy"
    Image.load(f"oci-layout:{base}").write(f"oci-layout:{layout}")
    image = Image.load(f"oci-layout:{layout}").with_config(cmd=["sh", "-c", "echo changed"])
    image.write(f"oci-layout:{layout}:changed")
    assert sorted(OCILayout.open(layout).refs()) == ["changed", "latest"]
    assert validate_layout(layout) == []

    # a blob that rots on disk is caught when the image is written, in place or copied
    blob = OCILayout.open(layout).blob_path(image.layers[0].descriptor.digest)
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    index_before = (layout / "index.json").read_bytes()
    with pytest.raises(BlobCorrupt, match=str(blob)):
        image.write(f"oci-layout:{layout}:again")
    with pytest.raises(BlobCorrupt, match=str(blob)):
        image.write(f"oci-layout:{tmp_path / 'elsewhere'}")
    assert (layout / "index.json").read_bytes() == index_before


def test_oci_archive_write_and_load_in_place(base, tmp_path):
    image = Image.load(f"oci-layout:{base}").with_config(cmd=["true"])
    archive = tmp_path / "img.tar"
    desc = image.write(f"oci-archive:{archive}:tagged")
    loaded = Image.load(f"oci-archive:{archive}")
    assert loaded == image and loaded.loaded_from.digest == desc.digest
    assert desc.ref_name == "tagged"
    out = tmp_path / "out"
    loaded.append_layer(loaded.layers[0]).write(f"oci-layout:{out}")
    assert validate_layout(out) == []
    # a plain tar of a layout: tar lists oci-layout, index.json and the blobs
    names = subprocess.run(["tar", "-tf", str(archive)], capture_output=True, text=True, check=True).stdout.split()
    assert {"oci-layout", "index.json"} <= set(names)
    assert f"blobs/sha256/{desc.digest.split(':')[1]}" in names


def test_layout_written_by_skopeo_with_bare_tags(base, tmp_path):
    layout = tmp_path / "sk"
    for tag in ("one", "two"):
        subprocess.run(["skopeo", "copy", "-q", f"oci:{base}:latest", f"oci:{layout}:{tag}"], check=True, capture_output=True)
    index = json.loads((layout / "index.json").read_text())
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == ["one", "two"]
    expected = Image.load(f"oci-layout:{base}").layers
    assert Image.load(f"oci-layout:{layout}:two").layers == expected
    assert Image.load(f"oci-layout:{layout}:busybox:one").layers == expected  # IMAGE:TAG finds the bare tag
    with pytest.raises(AmbiguousImage, match="multiple images found in index \\(one, two\\), specify image name"):
        Image.load(f"oci-layout:{layout}")
    with pytest.raises(ImageNotFound, match="no image named 'three' \\(found: one, two\\)"):
        Image.load(f"oci-layout:{layout}:three")


def test_a_multi_platform_index_resolves_to_this_hosts_image(base, tmp_path):
    layout_dir = tmp_path / "multi"
    Image.load(f"oci-layout:{base}").write(f"oci-layout:{layout_dir}:tmp")
    oci = OCILayout.open(layout_dir)
    ours = oci.resolve("tmp")
    os_name, arch = host_platform().os, host_platform().architecture
    other = Image.scratch(architecture="s390x").write(f"oci-layout:{layout_dir}:other")
    entries = (
        replace(other, annotations=None, platform=Platform("s390x", "linux")),
        replace(ours, annotations=None, platform=Platform(arch, os_name)),
    )
    nested = oci.put_json(Index(manifests=entries), mt.OCI_INDEX)
    oci.add_manifest(nested, "multi")
    image = Image.load(f"oci-layout:{layout_dir}:multi")
    assert image.loaded_from.digest == ours.digest
    assert validate_layout(layout_dir) == []


def test_layer_from_directory_is_reproducible(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "file").write_text("content\n")
    first = layer_from_directory(tmp_path / "src", tmp_path / "a", source_date_epoch=0)
    second = layer_from_directory(tmp_path / "src", tmp_path / "b", source_date_epoch=0, compression="gzip")
    assert first == second
    assert first.descriptor.media_type == mt.OCI_LAYER_GZIP
    assert Layer.from_blob_file(first.source.path) == first
    assert first.source.path.name == first.descriptor.digest.split(":")[1]
    zstd = layer_from_directory(tmp_path / "src", tmp_path / "c", compression="zstd", source_date_epoch=0)
    assert zstd.diff_id == first.diff_id and zstd.descriptor.media_type == mt.OCI_LAYER_ZSTD


def test_load_reports_missing_images_and_blobs(base, tmp_path):
    with pytest.raises(ImageNotFound, match="no such OCI layout"):
        Image.load(f"oci-layout:{tmp_path / 'absent'}")
    with pytest.raises(ImageNotFound, match="no such archive"):
        Image.load(f"oci-archive:{tmp_path / 'absent.tar'}")
    layout = tmp_path / "broken"
    Image.load(f"oci-layout:{base}").write(f"oci-layout:{layout}")
    image = Image.load(f"oci-layout:{layout}")
    OCILayout.open(layout).blob_path(image.layers[0].descriptor.digest).unlink()
    with pytest.raises(BlobNotFound, match="layer blob .* not found"):
        Image.load(f"oci-layout:{layout}")


def test_images_of_a_chain_share_no_mutable_state(base):
    labels = {"a": "1"}
    healthcheck = {"Test": ["CMD", "true"], "Interval": 1000000000}
    first = Image.load(f"oci-layout:{base}").with_config(labels=labels, healthcheck=healthcheck)
    labels["b"] = "2"  # the caller's dicts were copied
    healthcheck["Test"].append("extra")
    assert first.config.config.labels == {"a": "1"}
    assert first.config.config.healthcheck == {"Test": ["CMD", "true"], "Interval": 1000000000}

    second = first.with_config(cmd=["true"]).append_layer(first.layers[0])
    for change in (
        lambda: second.config.config.labels.__setitem__("b", "2"),
        lambda: second.config.config.labels.update(b="2"),
        lambda: second.config.config.labels.pop("a"),
        lambda: second.config.config.healthcheck["Test"].append("x"),
        lambda: second.config.config.healthcheck.setdefault("Retries", 3),
        lambda: second.config.extra.__setitem__("x", 1),
        lambda: second.config.history[-1].extra.clear(),
    ):
        with pytest.raises(TypeError, match="an Image is immutable"):
            change()
    assert first.config.config.labels == second.config.config.labels == {"a": "1"}
    # frozen containers still serialise and compare as plain JSON values
    assert json.loads(json.dumps(second.config.to_json()))["config"]["Labels"] == {"a": "1"}
    assert copy.deepcopy(second) == second and pickle.loads(pickle.dumps(second.config)) == second.config
    assert second.config.config == ContainerConfig.from_json(second.config.config.to_json())


def test_a_loaded_image_is_frozen_too(base, tmp_path):
    # unknown keys of a config (kept in ``extra``) and layer annotations come from JSON dicts
    layout = tmp_path / "annotated"
    image = Image.load(f"oci-layout:{base}")
    layer = replace(image.layers[0], descriptor=replace(image.layers[0].descriptor, annotations={"k": "v"}))
    config = replace(image.config, extra={"x-vendor": {"list": [1, 2]}})
    Image(config, (layer,)).write(f"oci-layout:{layout}")
    loaded = Image.load(f"oci-layout:{layout}")
    assert loaded.config.extra == {"x-vendor": {"list": [1, 2]}}
    assert loaded.layers[0].descriptor.annotations == {"k": "v"}
    with pytest.raises(TypeError):
        loaded.config.extra["x-vendor"]["list"].append(3)
    with pytest.raises(TypeError):
        loaded.layers[0].descriptor.annotations["k"] = "w"
    assert validate_layout(layout) == []


def test_every_change_adds_one_history_entry(base):
    image = Image.load(f"oci-layout:{base}")
    start = len(image.config.history)
    layered = image.append_layer(image.layers[0], created="2024-01-01T00:00:00Z")
    entry = layered.config.history[-1]
    assert (entry.created_by, entry.created, entry.empty_layer) == (
        f"append layer {image.layers[0].descriptor.digest}", "2024-01-01T00:00:00Z", None
    )
    assert layered.config.created == "2024-01-01T00:00:00Z"
    configured = layered.with_config(env=["A=1"], working_dir="/srv", created="2024-01-02T00:00:00Z", comment="why")
    entry = configured.config.history[-1]
    assert (entry.created_by, entry.comment, entry.empty_layer) == ('config env=["A=1"], working_dir=/srv', "why", True)
    assert configured.with_config().config.history[-1].created_by == "config (unchanged)"
    assert configured.with_config(config=ContainerConfig()).config.history[-1].created_by == "config (replaced)"
    assert configured.with_config(created_by="ENV A=1").config.history[-1].created_by == "ENV A=1"
    assert len(configured.config.history) == start + 2
    # the spec's rule: one history entry without empty_layer per layer
    assert sum(1 for h in configured.config.history if not h.empty_layer) == len(configured.layers)
    assert configured.layers == layered.layers and configured.config.rootfs_diff_ids == layered.config.rootfs_diff_ids


def test_writing_into_a_layout_with_other_images_keeps_them(base, tmp_path):
    layout = tmp_path / "shared"
    other = tmp_path / "other"
    Image.load(f"oci-layout:{base}").with_config(cmd=["echo", "two"]).write(f"oci-layout:{other}")
    for source, tag in ((base, "one"), (other, "two")):  # skopeo writes bare-tag names
        subprocess.run(["skopeo", "copy", "-q", f"oci:{source}:latest", f"oci:{layout}:{tag}"], check=True, capture_output=True)
    Image.scratch().with_config(cmd=["none"]).write(f"oci-layout:{layout}:empty:1")
    before = json.loads((layout / "index.json").read_text())["manifests"]
    blobs_before = {p.name: p.read_bytes() for p in (layout / "blobs" / "sha256").iterdir()}

    image = Image.load(f"oci-layout:{layout}:one").with_config(cmd=["echo", "new"])
    desc = image.write(f"oci-layout:{layout}:app:v1")
    after = json.loads((layout / "index.json").read_text())["manifests"]
    assert after[:-1] == before
    assert after[-1]["annotations"] == {"org.opencontainers.image.ref.name": "app:v1"}
    assert after[-1]["digest"] == desc.digest
    for name, data in blobs_before.items():  # nothing already there was rewritten
        assert (layout / "blobs" / "sha256" / name).read_bytes() == data
    assert validate_layout(layout) == []
    # oci-image-tool 1.0 mis-resolves refs in an index of three or more entries ("descriptor
    # retrieved by refs ... is not unique", skopeo's layouts too): skopeo copies each image out,
    # checking every blob digest on the way, and oci-image-tool validates the copy.
    for ref_name in ("one", "two", "app:v1"):
        single = tmp_path / f"single-{ref_name.replace(':', '-')}"
        subprocess.run(["skopeo", "copy", "-q", f"oci:{layout}:{ref_name}", f"oci:{single}:x"], check=True, capture_output=True)
        oci_image_tool(single, "x")
    # writing the same value again changes nothing
    index = (layout / "index.json").read_bytes()
    assert image.write(f"oci-layout:{layout}:app:v1") == desc
    assert (layout / "index.json").read_bytes() == index


def test_a_damaged_blob_in_the_target_layout_is_replaced_by_verified_bytes(base, tmp_path):
    image = Image.load(f"oci-layout:{base}").with_config(cmd=["true"])
    layout = tmp_path / "target"
    image.write(f"oci-layout:{layout}")
    oci = OCILayout.open(layout)
    for blob in (oci.blob_path(image.layers[0].descriptor.digest), oci.blob_path(image.config_descriptor.digest)):
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF  # same size, wrong bytes
        blob.write_bytes(bytes(data))
    assert validate_layout(layout) != []
    image.write(f"oci-layout:{layout}")  # the source (the base layout) is intact
    assert validate_layout(layout) == []
    oci_image_tool(layout, "latest")


def test_a_failed_oci_archive_write_leaves_nothing(base, tmp_path):
    own = tmp_path / "own"
    Image.load(f"oci-layout:{base}").write(f"oci-layout:{own}")
    image = Image.load(f"oci-layout:{own}").with_config(cmd=["true"])
    good = tmp_path / "keep" / "img.tar"
    image.write(f"oci-archive:{good}")
    kept = good.read_bytes()

    blob = OCILayout.open(own).blob_path(image.layers[0].descriptor.digest)
    data = bytearray(blob.read_bytes())
    data[-10] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(BlobCorrupt, match=str(blob)):
        image.write(f"oci-archive:{tmp_path / 'new' / 'deeper' / 'img.tar'}")
    assert not (tmp_path / "new").exists()
    with pytest.raises(BlobCorrupt, match="the source blob is damaged"):  # a new layout: removed again
        image.write(f"oci-layout:{tmp_path / 'new' / 'layout'}")
    assert not (tmp_path / "new").exists()
    with pytest.raises(BlobCorrupt):
        image.write(f"oci-archive:{good}")
    assert good.read_bytes() == kept
    assert sorted(p.name for p in good.parent.iterdir()) == ["img.tar"]
    assert list(Path("/var/tmp").glob(f"cbt-oci-archive-{os.getpid()}-*")) == []
    with pytest.raises(CbtError, match="is a directory, not an oci-archive file"):
        image.write(f"oci-archive:{tmp_path}")


def test_an_unreadable_archive_is_one_line(tmp_path):
    (tmp_path / "junk.tar").write_bytes(b"not a tar archive at all\n" * 40)
    with pytest.raises(LayoutError) as info:
        Image.load(f"oci-archive:{tmp_path / 'junk.tar'}")
    assert "not a readable tar archive" in str(info.value) and "\n" not in str(info.value)


def test_load_by_manifest_digest_ignores_names(base, tmp_path):
    layout = tmp_path / "grown"
    first = Image.load(f"oci-layout:{base}").write(f"oci-layout:{layout}")
    Image.load(f"oci-layout:{base}").with_config(cmd=["other"]).write(f"oci-layout:{layout}:other")
    with pytest.raises(AmbiguousImage):
        Image.load(f"oci-layout:{layout}")
    image = Image.load(f"oci-layout:{layout}", manifest_digest=first.digest)
    assert image.loaded_from.digest == first.digest and image.config.config.cmd == ("sh",)
    missing = "sha256:" + "0" * 64
    with pytest.raises(ImageNotFound, match=f"no image with manifest {missing} \\(found: latest, other\\)"):
        Image.load(f"oci-layout:{layout}", manifest_digest=missing)
