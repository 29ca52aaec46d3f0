"""``validate_layout(path)``: every rule a consumer of an OCI image layout relies on.

It reports all violations at once, each naming the file, blob or descriptor and what is wrong,
and returns an empty list for a valid layout. Checked:

- ``oci-layout`` exists and says ``imageLayoutVersion: 1.0.0``; ``index.json`` is an index;
- every file under ``blobs/<algorithm>/`` hashes to its name ("blobs are named by the digest
  of their content");
- every descriptor reached from index.json (nested indexes, manifests, configs, layers) points
  at a blob that exists and has the descriptor's size, with a media type fit for its place;
- an image's config parses, and "the number of layers equals the number of rootfs.diff_ids";
- "a layer's diff_id is the digest of its uncompressed tar": each layer is decompressed as a
  stream (gzip through ISA-L when available, zstd through zstandard) and hashed. The compressed
  digest and the diff_id come from the same single read of the blob.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from part1_overview import field, model

from . import mediatypes as mt
from ._compression import decompressing_reader, sniff
from .digest import CHUNK, HashingReader
from .errors import ModelError
from .layout import INDEX_FILE, MAX_JSON_SIZE, OCI_LAYOUT_FILE
from .models import Descriptor, ImageConfig, Manifest

_HEX_LENGTH = {"sha256": 64, "sha512": 128}


@model
class _LayerCheck:
    """What one config expects of one layer blob."""

    diff_id: str | None
    where: str
    compression: str


@model
class _Validator:
    root: Path
    problems: list[str] = field(default_factory=list)
    blob_sizes: dict[str, int] = field(default_factory=dict)
    visited: set[str] = field(default_factory=set)
    layer_checks: dict[str, list[_LayerCheck]] = field(default_factory=dict)

    def report(self, message: str) -> None:
        self.problems.append(message)

    # -- files -----------------------------------------------------------------------------
    def check_marker(self) -> None:
        path = self.root / OCI_LAYOUT_FILE
        if not path.is_file():
            self.report(f"{OCI_LAYOUT_FILE}: missing (every image layout has one)")
            return
        try:
            data = json.loads(path.read_bytes())
        except ValueError as e:
            self.report(f"{OCI_LAYOUT_FILE}: not JSON ({e})")
            return
        version = data.get("imageLayoutVersion") if isinstance(data, dict) else None
        if version != mt.OCI_LAYOUT_VERSION:
            self.report(f"{OCI_LAYOUT_FILE}: imageLayoutVersion is {version!r}, expected {mt.OCI_LAYOUT_VERSION!r}")

    def list_blobs(self) -> None:
        """Record the size of every blob file; report names that are not digests."""
        blobs = self.root / "blobs"
        if not blobs.is_dir():
            self.report("blobs: missing directory")
            return
        for alg_dir in sorted(blobs.iterdir()):
            if not alg_dir.is_dir() or alg_dir.is_symlink():
                self.report(f"blobs/{alg_dir.name}: not a directory of blobs")
                continue
            if alg_dir.name not in _HEX_LENGTH:
                self.report(f"blobs/{alg_dir.name}: unsupported digest algorithm")
                continue
            name_re = re.compile(rf"^[a-f0-9]{{{_HEX_LENGTH[alg_dir.name]}}}$")
            for entry in sorted(alg_dir.iterdir()):
                rel = f"blobs/{alg_dir.name}/{entry.name}"
                if not name_re.match(entry.name):
                    self.report(f"{rel}: not a blob (its name is not a {alg_dir.name} hex digest)")
                elif entry.is_symlink() or not entry.is_file():
                    self.report(f"{rel}: not a regular file")
                else:
                    self.blob_sizes[f"{alg_dir.name}:{entry.name}"] = entry.stat().st_size

    def blob_file(self, digest: str) -> Path:
        alg, _, hex_ = digest.partition(":")
        return self.root / "blobs" / alg / hex_

    # -- descriptors -----------------------------------------------------------------------
    def check_descriptor(self, desc: Descriptor, where: str) -> bool:
        """The blob exists and has the descriptor's size. True when its content can be read."""
        alg, _, hex_ = desc.digest.partition(":")
        if alg not in _HEX_LENGTH or not re.fullmatch(rf"[a-f0-9]{{{_HEX_LENGTH[alg]}}}", hex_):
            self.report(f"{where}: unsupported or malformed digest {desc.digest!r}")
            return False
        actual = self.blob_sizes.get(desc.digest)
        if actual is None:
            self.report(f"{where}: blob {desc.digest} not found (blobs/{alg}/{hex_} missing)")
            return False
        if actual != desc.size:
            self.report(f"{where}: size {desc.size} in descriptor, but blob {desc.digest} has {actual} bytes")
        return True

    def read_json(self, desc: Descriptor, where: str) -> Any | None:
        if self.blob_sizes[desc.digest] > MAX_JSON_SIZE:
            self.report(f"{where}: blob {desc.digest} is {self.blob_sizes[desc.digest]} bytes, too big for a JSON document")
            return None
        try:
            return json.loads(self.blob_file(desc.digest).read_bytes())
        except ValueError as e:
            self.report(f"{where}: blob {desc.digest} is not JSON ({e})")
            return None

    def parse_descriptors(self, items: Any, where: str) -> list[Descriptor]:
        """Each descriptor of a list on its own, so one bad entry does not hide the others."""
        if not isinstance(items, list):
            self.report(f"{where}: must be a list")
            return []
        out = []
        for i, item in enumerate(items):
            try:
                out.append(Descriptor.from_json(item, f"{where}[{i}]"))
            except ModelError as e:
                self.report(str(e))
        return out

    # -- documents -------------------------------------------------------------------------
    def check_index_json(self) -> None:
        path = self.root / INDEX_FILE
        if not path.is_file():
            self.report(f"{INDEX_FILE}: missing (every image layout has one)")
            return
        try:
            data = json.loads(path.read_bytes())
        except ValueError as e:
            self.report(f"{INDEX_FILE}: not JSON ({e})")
            return
        self.check_index_document(data, INDEX_FILE, expected_media_type=None)

    def check_index_document(self, data: Any, where: str, expected_media_type: str | None) -> None:
        if not isinstance(data, dict):
            self.report(f"{where}: not a JSON object")
            return
        if data.get("schemaVersion") != 2:
            self.report(f"{where}: schemaVersion is {data.get('schemaVersion')!r}, must be 2")
        media_type = data.get("mediaType")
        if media_type is not None and media_type not in mt.INDEX_TYPES:
            self.report(f"{where}: mediaType {media_type!r} is not an index media type")
        elif expected_media_type is not None and media_type is not None and media_type != expected_media_type:
            self.report(f"{where}: mediaType {media_type!r} differs from its descriptor's {expected_media_type!r}")
        for i, desc in enumerate(self.parse_descriptors(data.get("manifests"), f"{where}: manifests")):
            entry = f"{where}: manifests[{i}] {desc.digest}"
            if desc.media_type in mt.INDEX_TYPES:
                self.check_nested_index(desc, entry)
            elif desc.media_type in mt.MANIFEST_TYPES:
                self.check_manifest(desc, entry)
            else:
                self.report(f"{entry}: media type {desc.media_type!r} is not a manifest or an index")
                self.check_descriptor(desc, entry)

    def check_nested_index(self, desc: Descriptor, where: str) -> None:
        if not self.check_descriptor(desc, where) or desc.digest in self.visited:
            return
        self.visited.add(desc.digest)
        data = self.read_json(desc, where)
        if data is not None:
            self.check_index_document(data, f"index {desc.digest}", desc.media_type)

    def check_manifest(self, desc: Descriptor, where: str) -> None:
        if not self.check_descriptor(desc, where) or desc.digest in self.visited:
            return
        self.visited.add(desc.digest)
        data = self.read_json(desc, where)
        if data is None:
            return
        name = f"manifest {desc.digest}"
        try:
            manifest = Manifest.from_json(data, name)
        except ModelError as e:
            self.report(str(e))
            return
        if isinstance(data, dict) and data.get("mediaType") not in (None, desc.media_type):
            self.report(f"{name}: mediaType {data.get('mediaType')!r} differs from its descriptor's {desc.media_type!r}")
        config_ok = self.check_descriptor(manifest.config, f"{name}: config")
        layers_ok = [self.check_descriptor(layer, f"{name}: layers[{i}] {layer.digest}") for i, layer in enumerate(manifest.layers)]

        if manifest.config.media_type not in mt.CONFIG_TYPES:
            if manifest.artifact_type is None and manifest.config.media_type != mt.OCI_EMPTY:
                self.report(f"{name}: config media type {manifest.config.media_type!r} is not an image config")
            return  # an artifact (OCI 1.1): its blobs are not layers
        for i, layer in enumerate(manifest.layers):
            if layer.media_type not in mt.LAYER_TYPES:
                self.report(f"{name}: layers[{i}] {layer.digest}: media type {layer.media_type!r} is not a layer media type")
        if not config_ok:
            return
        data = self.read_json(manifest.config, f"{name}: config")
        if data is None:
            return
        try:
            config = ImageConfig.from_json(data, f"config {manifest.config.digest}")
        except ModelError as e:
            self.report(str(e))
            return
        diff_ids = config.rootfs_diff_ids
        if len(diff_ids) != len(manifest.layers):
            self.report(
                f"{name}: {len(manifest.layers)} layers but config {manifest.config.digest} has "
                f"{len(diff_ids)} rootfs.diff_ids (they must match one to one)"
            )
        for i, layer in enumerate(manifest.layers):
            if layers_ok[i] and layer.media_type in mt.LAYER_TYPES:
                where = f"{name}: layers[{i}] {layer.digest}"
                diff_id = diff_ids[i] if i < len(diff_ids) else None
                self.layer_checks.setdefault(layer.digest, []).append(
                    _LayerCheck(diff_id, where + f" (config {manifest.config.digest} rootfs.diff_ids[{i}])", mt.LAYER_COMPRESSION[layer.media_type])
                )

    # -- blob contents ---------------------------------------------------------------------
    def check_blob_contents(self) -> None:
        """Hash every blob once; layers are decompressed in the same read to get their diff_id."""
        for digest in sorted(self.blob_sizes):
            path = self.blob_file(digest)
            alg = digest.partition(":")[0]
            checks = self.layer_checks.get(digest)
            rel = f"blobs/{alg}/{path.name}"
            # one read per compression the blob is claimed to have (nearly always exactly one)
            compressions = list(dict.fromkeys(c.compression for c in checks or ()))
            results: dict[str, tuple[str | None, str | None]] = {}
            try:
                if not compressions:
                    actual = _hash_file(path, alg)
                for compression in compressions:
                    actual, diff_id, problem = _hash_layer(path, alg, compression)
                    results[compression] = (diff_id, problem)
            except OSError as e:
                self.report(f"{rel}: cannot read ({e.strerror})")
                continue
            if actual != digest:
                self.report(f"{rel}: content hashes to {actual}, not to its name {digest} (corrupt blob)")
            for check in checks or ():
                diff_id, problem = results[check.compression]
                if problem is not None:
                    self.report(f"{check.where}: {problem}")
                elif check.diff_id is not None and check.diff_id != diff_id:
                    self.report(f"{check.where}: diff_id mismatch: config says {check.diff_id}, the uncompressed layer hashes to {diff_id}")

    def run(self) -> list[str]:
        if not self.root.is_dir():
            return [f"{self.root}: not a directory"]
        self.check_marker()
        self.list_blobs()
        self.check_index_json()
        self.check_blob_contents()
        return self.problems


def _hash_file(path: Path, alg: str) -> str:
    h = hashlib.new(alg)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return f"{alg}:{h.hexdigest()}"


def _hash_layer(path: Path, alg: str, compression: str) -> tuple[str, str | None, str | None]:
    """(digest of the blob, sha256 of its uncompressed bytes, problem or None), in one read."""
    with open(path, "rb") as f:
        raw = HashingReader(f, alg)
        head = f.read(4)
        f.seek(0)
        found = sniff(head)
        problem = diff_id = None
        if compression in ("gzip", "zstd") and found != compression:
            problem = f"media type says {compression} but the blob is not {compression} (starts with {head.hex() or 'nothing'})"
        else:
            uncompressed = hashlib.sha256()
            try:
                reader = decompressing_reader(raw, compression)
                while block := reader.read(CHUNK):
                    uncompressed.update(block)
                diff_id = "sha256:" + uncompressed.hexdigest()
            except Exception as e:  # noqa: BLE001 - BadGzipFile (OSError), EOFError, zstandard.ZstdError...
                problem = f"cannot decompress as {compression}: {e}"
        raw.drain()  # the rest (trailing bytes, or all of it after a failure)
        return raw.digest, diff_id, problem


def validate_layout(path: str | os.PathLike) -> list[str]:
    """All the ways the image layout at ``path`` breaks the spec; an empty list when valid."""
    return _Validator(Path(path)).run()
