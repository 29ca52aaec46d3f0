"""Part 3: the immutable Image value: scratch, load, append_layer, with_config, write."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from part2_manual_oci import mediatypes as mt
from part2_manual_oci.busybox import build_busybox_image
from part2_manual_oci.errors import BlobCorrupt
from part2_manual_oci.layout import OCILayout
from part2_manual_oci.models import Index, Platform
from part2_manual_oci.validate import validate_layout
from part3_go_style_builder import AmbiguousImage, Image, ImageNotFound, Layer, layer_from_directory
from part2_manual_oci.busybox import host_platform
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
    with pytest.raises(dataclasses.FrozenInstanceError):
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
    with pytest.raises(Exception, match="layer blob .* not found"):
        Image.load(f"oci-layout:{layout}")
