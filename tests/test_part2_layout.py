"""Part 2 OCILayout: atomic, idempotent, content-addressed blobs; verified reads; index.json refs."""

from __future__ import annotations

import io
import json
import multiprocessing
import os

import pytest

from part2_manual_oci import (
    BlobCorrupt,
    BlobNotFound,
    Descriptor,
    ImageConfig,
    LayoutError,
    Manifest,
    OCILayout,
    atomic_file,
    canonical_json,
    sha256_digest,
    validate_layout,
)
from part2_manual_oci import (
    mediatypes as mt,
)


def _entries(layout: OCILayout) -> list[str]:
    return sorted(p.name for p in layout.blobs_dir.iterdir())


class TrickleReader(io.RawIOBase):
    """A stream that yields its data a few bytes at a time (like a pipe or a socket)."""

    def __init__(self, data: bytes, step: int = 7):
        self.data, self.pos, self.step = data, 0, step
        self.reads = 0

    def readable(self):
        return True

    def readinto(self, b):
        self.reads += 1
        chunk = self.data[self.pos : self.pos + min(len(b), self.step)]
        b[: len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)


def test_create_writes_marker_and_empty_index(tmp_path):
    layout = OCILayout.create(tmp_path / "img")
    assert json.loads((layout.path / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert json.loads((layout.path / "index.json").read_text()) == {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
    assert layout.blobs_dir.is_dir()
    assert OCILayout.create(layout.path).index().manifests == ()  # opening again changes nothing
    assert validate_layout(layout.path) == []


def test_open_refuses_what_is_not_a_layout(tmp_path):
    with pytest.raises(LayoutError, match="not a directory"):
        OCILayout.open(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(LayoutError, match="oci-layout: missing"):
        OCILayout.open(tmp_path / "plain")
    layout = OCILayout.create(tmp_path / "img")
    (layout.path / "oci-layout").write_text('{"imageLayoutVersion": "2.0.0"}')
    with pytest.raises(LayoutError, match="imageLayoutVersion '2.0.0'"):
        OCILayout.open(layout.path)


def test_put_blob_from_bytes_and_from_a_stream_give_the_same_descriptor(tmp_path):
    layout = OCILayout.create(tmp_path / "img")
    data = os.urandom(3 * 1024 * 1024 + 5)  # bigger than one read chunk
    from_bytes = layout.put_blob(data, mt.OCI_LAYER)
    stream = TrickleReader(data, step=1 << 20)
    from_stream = layout.put_blob(stream, mt.OCI_LAYER)
    assert stream.reads > 3  # it was read in chunks, not whole
    assert from_bytes == from_stream == Descriptor(mt.OCI_LAYER, sha256_digest(data), len(data))
    assert layout.blob_path(from_bytes.digest).read_bytes() == data
    assert oct(layout.blob_path(from_bytes.digest).stat().st_mode & 0o777) == "0o644"


def test_put_blob_is_idempotent_and_leaves_no_temp_files(tmp_path):
    layout = OCILayout.create(tmp_path / "img")
    first = layout.put_blob(b"hello", "application/octet-stream")
    inode = layout.blob_path(first.digest).stat().st_ino
    again = layout.put_blob(b"hello", "application/octet-stream")
    via_stream = layout.put_blob(io.BytesIO(b"hello"), "application/octet-stream")
    assert first == again == via_stream
    assert _entries(layout) == [first.digest.split(":")[1]]
    assert layout.blob_path(first.digest).stat().st_ino == inode  # not rewritten


def test_put_blob_with_wrong_expected_digest_raises_and_leaves_nothing(tmp_path):
    layout = OCILayout.create(tmp_path / "img")
    wrong = sha256_digest(b"something else")
    with pytest.raises(BlobCorrupt, match=f"expected {wrong}"):
        layout.put_blob(TrickleReader(b"actual content"), mt.OCI_LAYER, expected_digest=wrong)
    with pytest.raises(BlobCorrupt, match=f"expected {wrong}"):
        layout.put_blob(b"actual content", mt.OCI_LAYER, expected_digest=wrong)
    assert _entries(layout) == []
    good = layout.put_blob(io.BytesIO(b"actual content"), mt.OCI_LAYER, expected_digest=sha256_digest(b"actual content"))
    assert _entries(layout) == [good.digest.split(":")[1]]


def test_put_blob_failing_midway_leaves_nothing(tmp_path):
    layout = OCILayout.create(tmp_path / "img")

    class Broken(io.RawIOBase):
        def __init__(self):
            self.n = 0

        def readable(self):
            return True

        def readinto(self, b):
            self.n += 1
            if self.n > 2:
                raise OSError(5, "Input/output error")
            b[:4] = b"data"
            return 4

    with pytest.raises(OSError, match="Input/output error"):
        layout.put_blob(Broken(), mt.OCI_LAYER)
    assert _entries(layout) == []


def _put_same_blob(path: str, data: bytes, n: int) -> None:
    layout = OCILayout.open(path)
    for _ in range(n):
        layout.put_blob(data, mt.OCI_LAYER)
        layout.put_blob(io.BytesIO(data), mt.OCI_LAYER)


def test_concurrent_writers_of_the_same_blob_agree(tmp_path):
    layout = OCILayout.create(tmp_path / "img")
    data = os.urandom(256 * 1024)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_put_same_blob, args=(str(layout.path), data, 10)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert _entries(layout) == [sha256_digest(data).split(":")[1]]
    assert layout.blob_path(sha256_digest(data)).read_bytes() == data


def test_open_blob_verifies_digest_and_size_at_eof(tmp_path):
    layout = OCILayout.create(tmp_path / "img")
    desc = layout.put_blob(b"0123456789", mt.OCI_LAYER)
    with layout.open_blob(desc) as r:
        assert r.read() == b"0123456789"
        assert r.verified
    layout.blob_path(desc.digest).write_bytes(b"0123456780")  # same size, one byte changed
    with pytest.raises(BlobCorrupt, match=f"blob {desc.digest}: content hashes to sha256:"), layout.open_blob(desc) as r:
        while r.read(3):
            pass
    layout.blob_path(desc.digest).write_bytes(b"0123456789")
    with pytest.raises(BlobCorrupt, match="10 bytes, its descriptor says 11"):
        layout.open_blob(Descriptor(mt.OCI_LAYER, desc.digest, 11)).read()
    with pytest.raises(BlobCorrupt, match="more than the 9 bytes"):
        layout.open_blob(Descriptor(mt.OCI_LAYER, desc.digest, 9)).read()
    with pytest.raises(BlobNotFound, match=sha256_digest(b"absent")):
        layout.open_blob(sha256_digest(b"absent"))


def test_blob_path_refuses_anything_but_a_sha256_digest(tmp_path):
    layout = OCILayout.create(tmp_path / "img")
    for bad in ("sha256:../../../etc/passwd", "md5:abc", "sha256:" + "A" * 64):
        with pytest.raises(ValueError):
            layout.blob_path(bad)


def _tiny_image(layout: OCILayout, text: str) -> Descriptor:
    layer = layout.put_blob(text.encode(), mt.OCI_LAYER)
    config = layout.put_json(ImageConfig(architecture="amd64", os="linux", rootfs_diff_ids=(layer.digest,)), mt.OCI_CONFIG)
    return layout.put_json(Manifest(config, (layer,)), mt.OCI_MANIFEST)


def test_read_json_manifest_and_config_are_verified(tmp_path):
    layout = OCILayout.create(tmp_path / "img")
    desc = _tiny_image(layout, "a")
    manifest = layout.read_manifest(desc)
    assert layout.read_config(manifest).rootfs_diff_ids == (manifest.layers[0].digest,)
    assert layout.read_json(desc) == json.loads(canonical_json(manifest))
    path = layout.blob_path(manifest.config.digest)
    path.write_bytes(path.read_bytes().replace(b"amd64", b"arm64"))
    with pytest.raises(BlobCorrupt, match=manifest.config.digest):
        layout.read_config(manifest)


def test_add_manifest_names_replaces_and_resolves_refs(tmp_path):
    layout = OCILayout.create(tmp_path / "img")
    a, b = _tiny_image(layout, "a"), _tiny_image(layout, "b")
    layout.add_manifest(a, "v1")
    layout.add_manifest(b, "v2")
    assert layout.refs() == ["v1", "v2"]
    assert layout.resolve("v1").digest == a.digest
    assert layout.resolve("v2").ref_name == "v2"
    layout.add_manifest(b, "v1")  # re-tag: the old v1 entry goes
    assert layout.refs() == ["v2", "v1"]
    assert layout.resolve("v1").digest == b.digest
    with pytest.raises(LayoutError, match="2 images in index.json, name one of: v2, v1"):
        layout.resolve()
    with pytest.raises(LayoutError, match=r"no image named 'v3' in index.json \(refs: v2, v1\)"):
        layout.resolve("v3")
    assert layout.resolve(b.digest).digest == b.digest
    layout.remove_ref("v2")
    assert layout.refs() == ["v1"]
    assert layout.resolve().digest == b.digest
    with pytest.raises(LayoutError, match="no image named 'v2'"):
        layout.remove_ref("v2")
    assert validate_layout(layout.path) == []
    assert not [p for p in layout.path.iterdir() if p.name.startswith(".tmp-")]


def test_add_manifest_without_ref_is_not_duplicated_and_needs_the_blob(tmp_path):
    layout = OCILayout.create(tmp_path / "img")
    a = _tiny_image(layout, "a")
    layout.add_manifest(a)
    layout.add_manifest(a)
    assert len(layout.index().manifests) == 1 and layout.refs() == []
    with pytest.raises(BlobNotFound, match="store it first"):
        layout.add_manifest(Descriptor(mt.OCI_MANIFEST, sha256_digest(b"nope"), 4), "x")


def _tag_many(path: str, start: int) -> None:
    layout = OCILayout.open(path)
    for i in range(start, start + 10):
        layout.add_manifest(_tiny_image(layout, f"image {i}"), f"t{i}")


def test_concurrent_index_updates_lose_no_ref(tmp_path):
    layout = OCILayout.create(tmp_path / "img")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_tag_many, args=(str(layout.path), 100 * k)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert sorted(layout.refs()) == sorted(f"t{100 * k + i}" for k in range(3) for i in range(10))
    assert validate_layout(layout.path) == []


def test_garbage_collect_removes_only_unreachable_blobs(tmp_path):
    layout = OCILayout.create(tmp_path / "img")
    a, b = _tiny_image(layout, "a"), _tiny_image(layout, "b")
    layout.add_manifest(a, "keep")
    layout.add_manifest(b, "drop")
    layout.remove_ref("drop")
    removed = layout.garbage_collect()
    assert len(removed) == 3 and b.digest in removed
    assert layout.has_blob(a.digest) and not layout.has_blob(b.digest)
    assert validate_layout(layout.path) == []


def test_walk_reaches_subjects_and_roots_described_by_their_blobs(tmp_path):
    layout = OCILayout.create(tmp_path / "img")
    image = _tiny_image(layout, "image")
    empty = layout.put_json(ImageConfig(architecture="amd64", os="linux"), mt.OCI_CONFIG)
    signature = layout.put_json(Manifest(empty, (), subject=image), mt.OCI_MANIFEST)
    layout.add_manifest(signature, "sig")
    assert image.digest in layout.reachable()  # the subject of a named manifest is kept
    untagged = _tiny_image(layout, "cached")
    described = layout.describe(untagged.digest)
    assert (described.media_type, described.size) == (mt.OCI_MANIFEST, untagged.size)
    config = layout.read_manifest(untagged).config
    assert layout.describe(config.digest).media_type == "application/octet-stream"
    walked = [d.digest for d in layout.walk([described])]
    assert walked[0] == untagged.digest and len(walked) == 3
    assert layout.garbage_collect() != [] and not layout.has_blob(untagged.digest)
    assert validate_layout(layout.path) == []


def test_update_index_writes_only_a_change(tmp_path):
    layout = OCILayout.create(tmp_path / "img")
    a = _tiny_image(layout, "a")
    layout.add_manifest(a, "v1")
    before = os.stat(layout.path / "index.json").st_ino
    layout.update_index(lambda index: index)
    assert os.stat(layout.path / "index.json").st_ino == before  # unchanged: not rewritten
    layout.add_manifest(a, "v2")
    assert os.stat(layout.path / "index.json").st_ino != before and layout.refs() == ["v1", "v2"]


def test_atomic_file_places_a_whole_file_or_nothing(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_file(target) as out:
        out.write(b"half of the new")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]
    with atomic_file(None, 0o600, temp_dir=tmp_path) as out:  # named once the content is known, like a blob
        out.write(b"new")
        out.target = tmp_path / "named"
        assert not out.target.exists()
    assert (tmp_path / "named").read_bytes() == b"new" and (tmp_path / "named").stat().st_mode & 0o777 == 0o600
    with atomic_file(target) as out:
        out.write(b"not wanted")
        out.discard()
    assert target.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["named", "out.bin"]
