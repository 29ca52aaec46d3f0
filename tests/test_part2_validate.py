"""Part 2 validate_layout: every violation found, all at once, each one named."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import pytest
import zstandard

from part2_manual_oci import (
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    OCILayout,
    build_busybox_image,
    canonical_json,
    sha256_digest,
    validate_layout,
)
from part2_manual_oci import (
    mediatypes as mt,
)


def layer_tar(name: str, text: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = text.encode()
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    return data


def add_image(layout: OCILayout, tag: str, files: list[tuple[str, str]], compression: str = "gzip", diff_ids=None) -> tuple[Manifest, Descriptor]:
    layers, real_diff_ids = [], []
    for name, text in files:
        tar = layer_tar(name, text)
        real_diff_ids.append(sha256_digest(tar))
        layers.append(layout.put_blob(compress(tar, compression), mt.layer_media_type(compression)))
    config = ImageConfig(architecture="amd64", os="linux", rootfs_diff_ids=tuple(diff_ids if diff_ids is not None else real_diff_ids))
    config_desc = layout.put_json(config, mt.OCI_CONFIG)
    manifest = Manifest(config_desc, tuple(layers))
    desc = layout.add_manifest(layout.put_json(manifest, mt.OCI_MANIFEST), tag)
    return manifest, desc


def test_busybox_image_is_valid(tmp_path):
    build_busybox_image(tmp_path / "img", "latest")
    assert validate_layout(tmp_path / "img") == []


def test_gzip_zstd_and_uncompressed_layers_are_all_checked(tmp_path):
    layout = OCILayout.create(tmp_path / "img")
    for compression in ("gzip", "zstd", "none"):
        add_image(layout, compression, [("a", f"a {compression}"), ("b", f"b {compression}")], compression)
    assert validate_layout(layout.path) == []
    layout2 = OCILayout.create(tmp_path / "img2")
    manifest, _ = add_image(layout2, "z", [("a", "zstd!")], "zstd", diff_ids=[sha256_digest(b"not it")])
    (problem,) = validate_layout(layout2.path)
    assert "diff_id mismatch" in problem and manifest.layers[0].digest in problem


def test_every_problem_is_reported_at_once_and_named(tmp_path):
    layout = OCILayout.create(tmp_path / "img")
    good, _ = add_image(layout, "good", [("ok", "fine")])
    corrupt, _ = add_image(layout, "corrupt", [("c", "to be corrupted")])
    wrong_size, _ = add_image(layout, "wrong-size", [("s", "sized")])
    no_config, _ = add_image(layout, "no-config", [("n", "no config")])
    bad_diff, _ = add_image(layout, "bad-diff-id", [("d", "diff")], diff_ids=[sha256_digest(b"wrong")])

    # 1. a corrupted layer blob: same size, different bytes
    path = layout.blob_path(corrupt.layers[0].digest)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    # 2. a manifest whose layer descriptor has the wrong size
    wrong = Manifest(wrong_size.config, (Descriptor(wrong_size.layers[0].media_type, wrong_size.layers[0].digest, wrong_size.layers[0].size + 1),))
    wrong_desc = layout.add_manifest(layout.put_json(wrong, mt.OCI_MANIFEST), "wrong-size")
    # 3. a missing config blob
    layout.blob_path(no_config.config.digest).unlink()

    problems = validate_layout(layout.path)
    text = "\n".join(problems)
    corrupt_hex = corrupt.layers[0].digest.split(":")[1]
    assert any(p.startswith(f"blobs/sha256/{corrupt_hex}: content hashes to") and "corrupt blob" in p for p in problems), text
    assert any(f"manifest {wrong_desc.digest}: layers[0] {wrong.layers[0].digest}: size {wrong.layers[0].size} in descriptor, but blob" in p for p in problems), text
    assert any(f"config: blob {no_config.config.digest} not found" in p for p in problems), text
    assert any(
        "diff_id mismatch" in p and bad_diff.layers[0].digest in p and f"config {bad_diff.config.digest} rootfs.diff_ids[0]" in p and sha256_digest(b"wrong") in p
        for p in problems
    ), text
    # nothing is said about the good image
    for d in (good.config.digest, good.layers[0].digest):
        assert d not in text
    # the corrupted gzip also fails its own CRC check when decompressed: reported too
    assert any(corrupt.layers[0].digest in p and "cannot decompress as gzip" in p for p in problems), text
    assert len(problems) == 5, text


def test_layers_and_diff_ids_must_match_one_to_one(tmp_path):
    layout = OCILayout.create(tmp_path / "img")
    manifest, desc = add_image(layout, "t", [("a", "1"), ("b", "2")], diff_ids=[])
    problems = validate_layout(layout.path)
    assert f"manifest {desc.digest}: 2 layers but config {manifest.config.digest} has 0 rootfs.diff_ids (they must match one to one)" in problems


def test_media_types_are_checked(tmp_path):
    layout = OCILayout.create(tmp_path / "img")
    manifest, _ = add_image(layout, "t", [("a", "1")])
    bad_layer = Descriptor("text/plain", manifest.layers[0].digest, manifest.layers[0].size)
    m2 = Manifest(Descriptor("application/json", manifest.config.digest, manifest.config.size), (bad_layer,))
    layout.add_manifest(layout.put_json(m2, mt.OCI_MANIFEST), "bad-config-type")
    m3 = Manifest(manifest.config, (bad_layer,))
    m3_desc = layout.add_manifest(layout.put_json(m3, mt.OCI_MANIFEST), "bad-layer-type")
    gz_as_zstd = Manifest(manifest.config, (Descriptor(mt.OCI_LAYER_ZSTD, manifest.layers[0].digest, manifest.layers[0].size),))
    gz_desc = layout.add_manifest(layout.put_json(gz_as_zstd, mt.OCI_MANIFEST), "gzip-called-zstd")
    config_desc = layout.put_json({"hello": 1}, "application/json")
    layout.add_manifest(Descriptor("application/json", config_desc.digest, config_desc.size), "not-a-manifest")
    problems = validate_layout(layout.path)
    text = "\n".join(problems)
    assert "config media type 'application/json' is not an image config" in text
    assert f"manifest {m3_desc.digest}: layers[0] {bad_layer.digest}: media type 'text/plain' is not a layer media type" in text
    assert f"manifest {gz_desc.digest}: layers[0]" in text and "media type says zstd but the blob is not zstd (starts with 1f8b" in text
    assert f"index.json: manifests[4] {config_desc.digest}: media type 'application/json' is not a manifest or an index" in text


def test_nested_index_is_followed(tmp_path):
    layout = OCILayout.create(tmp_path / "img")
    manifest, desc = add_image(layout, "single", [("a", "1")])
    layout.remove_ref("single")
    broken = Descriptor(mt.OCI_MANIFEST, sha256_digest(b"gone"), 10)
    nested = Index(manifests=(Descriptor(mt.OCI_MANIFEST, desc.digest, desc.size), broken))
    nested_desc = layout.add_manifest(layout.put_json(nested, mt.OCI_INDEX), "multi")
    problems = validate_layout(layout.path)
    assert problems == [f"index {nested_desc.digest}: manifests[1] {broken.digest}: blob {broken.digest} not found (blobs/sha256/{broken.digest.split(':')[1]} missing)"]


def test_layout_files_and_index_schema_are_checked(tmp_path):
    layout = OCILayout.create(tmp_path / "img")
    (layout.path / "oci-layout").write_text('{"imageLayoutVersion":"0.9"}')
    (layout.path / "index.json").write_text(json.dumps({"schemaVersion": 3, "manifests": [{"mediaType": mt.OCI_MANIFEST, "digest": "sha256:xyz", "size": 3}, {"digest": sha256_digest(b""), "size": 0}]}))
    (layout.blobs_dir / "README").write_text("hi")
    problems = validate_layout(layout.path)
    assert "oci-layout: imageLayoutVersion is '0.9', expected '1.0.0'" in problems
    assert "index.json: schemaVersion is 3, must be 2" in problems
    assert "index.json: manifests[0] sha256:xyz: unsupported or malformed digest 'sha256:xyz'" in problems
    assert "index.json: manifests[1]: missing 'mediaType'" in problems
    assert "blobs/sha256/README: not a blob (its name is not a sha256 hex digest)" in problems
    assert validate_layout(tmp_path / "nothing") == [f"{tmp_path / 'nothing'}: not a directory"]
    (tmp_path / "empty").mkdir()
    assert sorted(validate_layout(tmp_path / "empty")) == sorted(
        ["oci-layout: missing (every image layout has one)", "blobs: missing directory", "index.json: missing (every image layout has one)"]
    )


def test_truncated_gzip_layer_is_reported_not_raised(tmp_path):
    layout = OCILayout.create(tmp_path / "img")
    tar = layer_tar("big", "x" * 100000)
    blob = gzip.compress(tar, mtime=0)[:-20]
    layer = layout.put_blob(blob, mt.OCI_LAYER_GZIP)
    config = layout.put_json(ImageConfig("amd64", "linux", rootfs_diff_ids=(sha256_digest(tar),)), mt.OCI_CONFIG)
    layout.add_manifest(layout.put_json(Manifest(config, (layer,)), mt.OCI_MANIFEST), "t")
    (problem,) = validate_layout(layout.path)
    assert layer.digest in problem and "cannot decompress as gzip" in problem


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_diff_id_is_computed_on_a_multi_megabyte_layer(tmp_path, compression):
    layout = OCILayout.create(tmp_path / "img")
    text = hashlib.sha256(b"seed").hexdigest() * 100000  # 6.4 MB
    add_image(layout, "big", [("big.txt", text)], compression)
    assert validate_layout(layout.path) == []
    # canonical JSON is what the blobs hold: re-indenting one breaks its digest
    manifest_desc = layout.resolve("big")
    path = layout.blob_path(manifest_desc.digest)
    assert path.read_bytes() == canonical_json(json.loads(path.read_bytes()))
