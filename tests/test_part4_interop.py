"""Our layers in a real image layout: umoci unpacks them to the tree we packed, and our
extraction reads what umoci packs."""

from __future__ import annotations

import json
import subprocess

from test_part4_roundtrip import CAP_NET_RAW, build_every_type, snapshot

from part2_manual_oci import ImageConfig, Manifest, OCILayout, mediatypes, validate_layout
from part4_tar import apply_layers, layer_info, write_layer


def image_of(layout_dir, layer_paths, tag="t"):
    layout = OCILayout.create(layout_dir)
    layers, diff_ids = [], []
    for path in layer_paths:
        with open(path, "rb") as f:
            info = layer_info(f)
        with open(path, "rb") as f:
            layers.append(layout.put_blob(f, info.media_type, expected_digest=info.digest))
        diff_ids.append(info.diff_id)
    config = layout.put_json(ImageConfig(architecture="amd64", os="linux", rootfs_diff_ids=tuple(diff_ids)), mediatypes.OCI_CONFIG)
    manifest = layout.put_json(Manifest(config=config, layers=tuple(layers)), mediatypes.OCI_MANIFEST)
    layout.add_manifest(manifest, tag)
    return layout


def test_umoci_unpacks_our_layers_to_the_tree_we_packed(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    build_every_type(str(src))
    paths = []
    # umoci 0.4.7 (Debian 12) reads tar and tar+gzip layers, not zstd ones
    for compression in ("gzip", "none"):
        path = tmp_path / f"layer.{compression}"
        with open(path, "wb") as f:
            write_layer(src, f, compression)
        paths.append(path)
    image_of(tmp_path / "oci", paths[:1], "gz")
    image_of(tmp_path / "oci", paths[1:], "tar")
    assert validate_layout(tmp_path / "oci") == []
    subprocess.run(["oci-image-tool", "validate", "--type", "image", "--ref", "name=gz", str(tmp_path / "oci")],
                   check=True, capture_output=True)
    ours = snapshot(str(src))
    for tag in ("gz", "tar"):
        bundle = tmp_path / f"bundle-{tag}"
        subprocess.run(["umoci", "unpack", "--image", f"{tmp_path / 'oci'}:{tag}", str(bundle)], check=True, capture_output=True)
        theirs = snapshot(str(bundle / "rootfs"))
        # umoci keeps its own view of the root directory and may skip some xattrs: compare the
        # entries, and the capability by name
        assert set(theirs) == set(ours)
        for rel, entry in ours.items():
            if rel == "<hard links>":
                assert theirs[rel] == entry
                continue
            got = dict(theirs[rel])
            want = dict(entry)
            got.pop("xattrs"), want.pop("xattrs")
            assert got == want, rel
        assert theirs["ping"]["xattrs"]["security.capability"] == CAP_NET_RAW


def test_we_extract_what_umoci_packs(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    build_every_type(str(src))
    # an empty image, unpacked, filled with our tree, repacked by umoci into a new layer
    layout = image_of(tmp_path / "oci", [], "empty")
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout.path}:empty", str(bundle)], check=True, capture_output=True)
    subprocess.run(["cp", "-a", "--preserve=all", f"{src}/.", str(bundle / "rootfs")], check=True)
    subprocess.run(["umoci", "repack", "--image", f"{layout.path}:full", str(bundle)], check=True, capture_output=True)
    index = json.loads((tmp_path / "oci/index.json").read_text())
    full = next(m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == "full")
    manifest = json.loads(layout.blob_path(full["digest"]).read_text())
    blobs = [layout.blob_path(d["digest"]) for d in manifest["layers"]]
    apply_layers(blobs, tmp_path / "root")
    ours, theirs = snapshot(str(src)), snapshot(str(tmp_path / "root"))
    assert set(theirs) == set(ours)
    for rel in ours:
        if rel != "<hard links>":
            for key in ("type", "mode", "owner", "sha256", "target", "rdev"):
                assert theirs[rel].get(key) == ours[rel].get(key), (rel, key)
    assert theirs["ping"]["xattrs"]["security.capability"] == CAP_NET_RAW
    assert theirs["<hard links>"] == ours["<hard links>"]
