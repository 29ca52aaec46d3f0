"""The OCI image layout: a directory that holds images as content-addressed blobs.

::

    DIR/oci-layout             {"imageLayoutVersion": "1.0.0"}
    DIR/index.json             an image index; entries name manifests (ref.name annotation)
    DIR/blobs/sha256/<hex>     every manifest, config and layer, named by its sha256

Writes are crash-safe the way containerd's content store is (``atomic_file``): a blob is
written to a temporary file in ``blobs/sha256`` (same file system), hashed while it is written,
fsync'ed and renamed to its digest, so a blob file either is complete and correct or does not
exist. index.json is replaced the same way and written last: it only ever names blobs that are
already there.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from part1_overview import replace

from . import mediatypes as mt
from .atomic import TEMP_PREFIX, atomic_file, write_file_atomic
from .digest import CHUNK, DigestError, HashingWriter, check_digest, digest_hex, sha256_digest
from .errors import BlobCorrupt, BlobNotFound, LayoutError, ModelError
from .models import Descriptor, ImageConfig, Index, Manifest, canonical_json

OCI_LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
# JSON documents are small; a bigger manifest, index or config is a mistake or an attack:
# registries cap a manifest at 4 MiB, and podman and skopeo an image config (containers/image's
# MaxConfigBodySize)
MAX_JSON_SIZE = 4 << 20
STALE_TEMP_SECONDS = 3600


class VerifiedBlobReader(io.RawIOBase):
    """Reads a blob and checks, at end of file, that its bytes hash to the expected digest.

    With an expected size, reading past it fails at once, and a short blob fails at EOF.
    The check runs only when the reader reaches EOF: read to the end to be sure.
    """

    def __init__(self, path: Path, digest: str, size: int | None = None) -> None:
        super().__init__()
        self.path = path
        self.digest = digest
        self.size = size
        self._f = open(path, "rb")
        self._hash = HashingWriter()
        self._verified = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._f.readinto(buffer)
        if n:
            self._hash.write(memoryview(buffer)[:n])
            if self.size is not None and self._hash.size > self.size:
                raise BlobCorrupt(f"blob {self.digest}: more than the {self.size} bytes its descriptor says ({self.path})")
        elif len(buffer) and not self._verified:
            self._verify()
        return n

    def _verify(self) -> None:
        if self.size is not None and self._hash.size != self.size:
            raise BlobCorrupt(f"blob {self.digest}: {self._hash.size} bytes, its descriptor says {self.size} ({self.path})")
        if self._hash.digest != self.digest:
            raise BlobCorrupt(f"blob {self.digest}: content hashes to {self._hash.digest} ({self.path})")
        self._verified = True

    @property
    def verified(self) -> bool:
        return self._verified

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


class OCILayout:
    """An OCI image layout directory. ``create()`` makes (or opens) one, ``open()`` opens one."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"OCILayout({str(self.path)!r})"

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike) -> "OCILayout":
        """Create a layout at ``path`` (parents too), or open the one already there."""
        layout = cls(path)
        layout.blobs_dir.mkdir(parents=True, exist_ok=True)
        if not (layout.path / OCI_LAYOUT_FILE).exists():
            write_file_atomic(layout.path / OCI_LAYOUT_FILE, canonical_json({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}))
        if not (layout.path / INDEX_FILE).exists():
            layout._write_index(Index())
        layout._check_marker()
        return layout

    @classmethod
    def open(cls, path: str | os.PathLike) -> "OCILayout":
        """Open an existing layout; LayoutError when ``path`` is not one."""
        layout = cls(path)
        if not layout.path.is_dir():
            raise LayoutError(f"{layout.path}: not a directory")
        layout._check_marker()
        if not (layout.path / INDEX_FILE).is_file():
            raise LayoutError(f"{layout.path / INDEX_FILE}: missing")
        return layout

    def _check_marker(self) -> None:
        marker = self.path / OCI_LAYOUT_FILE
        try:
            version = json.loads(marker.read_bytes()).get("imageLayoutVersion")
        except FileNotFoundError:
            raise LayoutError(f"{marker}: missing (not an OCI image layout)") from None
        except (ValueError, AttributeError) as e:
            raise LayoutError(f"{marker}: not a JSON object ({e})") from None
        if version != mt.OCI_LAYOUT_VERSION:
            raise LayoutError(f"{marker}: imageLayoutVersion {version!r}, expected {mt.OCI_LAYOUT_VERSION!r}")

    # -- blobs ---------------------------------------------------------------------------------
    @property
    def blobs_dir(self) -> Path:
        return self.path / "blobs" / "sha256"

    def blob_path(self, digest: str) -> Path:
        """``blobs/sha256/<hex>``; DigestError for anything but a sha256 digest (no path tricks)."""
        return self.blobs_dir / digest_hex(digest)

    def has_blob(self, digest: str) -> bool:
        # os.path on the string: a check per layer of an image, no Path made for each
        return os.path.isfile(os.path.join(self.path, "blobs", "sha256", digest_hex(digest)))

    def put_blob(
        self,
        src: bytes | BinaryIO,
        media_type: str,
        expected_digest: str | None = None,
        annotations: dict | None = None,
        *,
        durable: bool = True,
    ) -> Descriptor:
        """Store bytes or a stream as a blob and return its descriptor.

        Streams are copied in chunks while hashed; the blob appears under its name only when
        complete (temp file, fsync, rename; ``durable=False``: no fsync, the caller makes it
        durable later with ``make_durable`` if it must be). Storing a blob that is already
        there changes nothing. With ``expected_digest``, a mismatch raises BlobCorrupt and
        leaves no file.
        """
        if expected_digest is not None:
            check_digest(expected_digest)
        if isinstance(src, (bytes, bytearray, memoryview)):
            digest = sha256_digest(bytes(src))
            if expected_digest is not None and digest != expected_digest:
                raise BlobCorrupt(f"put_blob: content hashes to {digest}, expected {expected_digest}")
            if self.has_blob(digest) and self.blob_path(digest).stat().st_size == len(src):
                return Descriptor(media_type, digest, len(src), annotations=annotations)
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        with atomic_file(None, temp_dir=self.blobs_dir, durable=durable) as out:  # named once its digest is known
            writer = HashingWriter(out.file)
            if isinstance(src, (bytes, bytearray, memoryview)):
                writer.write(src)
            else:
                while block := src.read(CHUNK):
                    writer.write(block)
            digest, size = writer.digest, writer.size
            if expected_digest is not None and digest != expected_digest:
                raise BlobCorrupt(f"put_blob: content hashes to {digest}, expected {expected_digest}")
            out.target = self.blob_path(digest)
            if out.target.is_file() and out.target.stat().st_size == size:
                out.discard()  # already stored: content addressing makes the write idempotent
        return Descriptor(media_type, digest, size, annotations=annotations)

    def put_json(self, obj: Any, media_type: str, annotations: dict | None = None, *, durable: bool = True) -> Descriptor:
        """Store a model (or a dict) as canonical JSON; returns its descriptor."""
        return self.put_blob(canonical_json(obj), media_type, annotations=annotations, durable=durable)

    def open_blob(self, descriptor_or_digest: Descriptor | str) -> VerifiedBlobReader:
        """A reader of a blob that raises BlobCorrupt at EOF if the bytes do not match
        (digest, and size when given a descriptor). BlobNotFound when it is missing."""
        if isinstance(descriptor_or_digest, Descriptor):
            digest, size = descriptor_or_digest.digest, descriptor_or_digest.size
        else:
            digest, size = descriptor_or_digest, None
        path = self._existing_blob(digest)
        return VerifiedBlobReader(path, digest, size)

    def _existing_blob(self, digest: str) -> Path:
        try:
            path = self.blob_path(digest)
        except DigestError as e:
            raise LayoutError(f"{self.path}: {e}") from None
        if not path.is_file():
            raise BlobNotFound(f"blob {digest} not found ({path})")
        return path

    def read_blob(self, descriptor_or_digest: Descriptor | str, limit: int = MAX_JSON_SIZE) -> bytes:
        """The verified bytes of a small blob (at most ``limit`` bytes)."""
        with self.open_blob(descriptor_or_digest) as r:
            if r.path.stat().st_size > limit:
                raise LayoutError(f"blob {r.digest}: {r.path.stat().st_size} bytes, too big to read whole (limit {limit})")
            data = r.read()
        return data

    def read_json(self, descriptor_or_digest: Descriptor | str) -> dict:
        """A verified JSON blob as a dict."""
        data = self.read_blob(descriptor_or_digest)
        digest = descriptor_or_digest.digest if isinstance(descriptor_or_digest, Descriptor) else descriptor_or_digest
        try:
            return json.loads(data)
        except ValueError as e:
            raise ModelError(f"blob {digest}: not JSON ({e})") from None

    def read_manifest(self, descriptor: Descriptor | str) -> Manifest:
        """The manifest a descriptor points at (OCI or Docker schema2)."""
        digest = descriptor.digest if isinstance(descriptor, Descriptor) else descriptor
        if isinstance(descriptor, Descriptor) and descriptor.media_type in mt.INDEX_TYPES:
            raise LayoutError(f"{digest} is an index ({descriptor.media_type}); pick a manifest from it")
        return Manifest.from_json(self.read_json(descriptor), f"manifest {digest}")

    def read_index(self, descriptor: Descriptor | str) -> Index:
        """A nested index blob (a multi-platform image)."""
        digest = descriptor.digest if isinstance(descriptor, Descriptor) else descriptor
        return Index.from_json(self.read_json(descriptor), f"index {digest}")

    def read_config(self, manifest: Manifest | Descriptor) -> ImageConfig:
        """The image config of a manifest (or the config its descriptor points at)."""
        desc = manifest.config if isinstance(manifest, Manifest) else manifest
        if desc.media_type not in mt.CONFIG_TYPES:
            raise LayoutError(f"config {desc.digest}: media type {desc.media_type} is not an image config")
        return ImageConfig.from_json(self.read_json(desc), f"config {desc.digest}")

    def describe(self, digest: str) -> Descriptor:
        """A descriptor of a stored blob that no descriptor names (a digest kept elsewhere): its
        size, and its media type as the blob says (a JSON document's ``mediaType``, or the shape
        of a manifest or index without one), else ``application/octet-stream``."""
        path = self._existing_blob(digest)
        size = path.stat().st_size
        media_type = "application/octet-stream"
        if size <= MAX_JSON_SIZE:
            try:
                doc = json.loads(self.read_blob(digest))
            except (ValueError, LayoutError):  # not JSON, or not what its name says
                doc = None
            if isinstance(doc, dict):
                shape = mt.OCI_MANIFEST if "config" in doc and "layers" in doc else \
                    mt.OCI_INDEX if "manifests" in doc else media_type
                found = doc.get("mediaType")
                media_type = found if isinstance(found, str) and found else shape
        return Descriptor(media_type, digest, size)

    # -- index.json and refs -------------------------------------------------------------------
    def index(self) -> Index:
        """index.json, parsed."""
        path = self.path / INDEX_FILE
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise LayoutError(f"{path}: missing") from None
        except ValueError as e:
            raise ModelError(f"{path}: not JSON ({e})") from None
        return Index.from_json(data, str(path))

    def _write_index(self, index: Index) -> None:
        write_file_atomic(self.path / INDEX_FILE, canonical_json(index))

    def update_index(self, change: Callable[[Index], Index]) -> Index:
        """Rewrite index.json as ``change(index)`` says, atomically and under the layout's lock
        (nothing is written when it changes nothing). Returns the index as it now is."""
        with self._index_lock():
            index = self.index()
            updated = change(index)
            if updated != index:
                self._write_index(updated)
        return updated

    @contextlib.contextmanager
    def _index_lock(self) -> Iterator[None]:
        # flock on the layout directory itself: no lock file inside the layout
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def add_manifest(self, descriptor: Descriptor, ref_name: str | None = None) -> Descriptor:
        """Name a manifest (or index) in index.json, under ``ref_name`` when given.

        The entry that had the same ref name is replaced; index.json is rewritten atomically.
        The manifest's blob must already be stored. Returns the descriptor as written.
        """
        if not self.has_blob(descriptor.digest):
            raise BlobNotFound(f"add_manifest: blob {descriptor.digest} is not in {self.path}; store it first")
        if ref_name is not None:
            annotations = dict(descriptor.annotations or {})
            annotations[mt.ANNOTATION_REF_NAME] = ref_name
            descriptor = replace(descriptor, annotations=annotations)

        def add(index: Index) -> Index:
            kept = tuple(
                d
                for d in index.manifests
                if not (ref_name is not None and d.ref_name == ref_name)
                and not (ref_name is None and d.ref_name is None and d.digest == descriptor.digest)
            )
            return replace(index, manifests=kept + (descriptor,))

        self.update_index(add)
        return descriptor

    def resolve(self, ref_name: str | None = None) -> Descriptor:
        """The index.json entry named ``ref_name`` (or the only entry, when None)."""
        manifests = self.index().manifests
        if ref_name is None:
            if len(manifests) != 1:
                names = ", ".join(d.ref_name or d.short() for d in manifests) or "none"
                raise LayoutError(f"{self.path}: {len(manifests)} images in index.json, name one of: {names}")
            return manifests[0]
        matches = [d for d in manifests if d.ref_name == ref_name]
        if not matches and ref_name.startswith("sha256:"):
            matches = [d for d in manifests if d.digest == ref_name]
        if not matches:
            raise LayoutError(f"{self.path}: no image named {ref_name!r} in index.json (refs: {', '.join(self.refs()) or 'none'})")
        return matches[-1]

    def refs(self) -> list[str]:
        """The ref names in index.json, in order."""
        return [d.ref_name for d in self.index().manifests if d.ref_name is not None]

    def remove_ref(self, ref_name: str) -> None:
        """Drop the index.json entry named ``ref_name`` (its blobs stay until garbage-collected)."""

        def remove(index: Index) -> Index:
            kept = tuple(d for d in index.manifests if d.ref_name != ref_name)
            if len(kept) == len(index.manifests):
                raise LayoutError(f"{self.path}: no image named {ref_name!r} in index.json")
            return replace(index, manifests=kept)

        self.update_index(remove)

    # -- walking -------------------------------------------------------------------------------
    def walk(self, roots: Iterable[Descriptor] | None = None) -> Iterator[Descriptor]:
        """Every stored blob reachable from ``roots`` (default: index.json's entries), each once:
        indexes, the manifests they list, each manifest's config, layers and ``subject``. A
        descriptor whose blob is missing leads nowhere (a layer never fetched, a foreign blob)."""
        seen: set[str] = set()
        todo = list(self.index().manifests if roots is None else roots)
        while todo:
            desc = todo.pop()
            # this layout stores sha256 blobs only: a descriptor of another algorithm leads nowhere
            if desc.digest in seen or not desc.digest.startswith("sha256:") or not self.has_blob(desc.digest):
                continue
            seen.add(desc.digest)
            yield desc
            if desc.media_type in mt.INDEX_TYPES:
                todo.extend(self.read_index(desc).manifests)
            elif desc.media_type in mt.MANIFEST_TYPES:
                manifest = self.read_manifest(desc)
                todo.append(manifest.config)
                todo.extend(manifest.layers)
                if manifest.subject is not None:
                    todo.append(manifest.subject)

    def reachable(self, roots: Iterable[Descriptor] | None = None) -> set[str]:
        """Digests of every stored blob reachable from ``roots`` (default: index.json's entries)."""
        return {desc.digest for desc in self.walk(roots)}

    def garbage_collect(self) -> list[str]:
        """Delete blobs no index.json entry reaches (and stale temp files); returns their digests."""
        with self._index_lock():
            keep = self.reachable()
            removed = []
            for entry in sorted(self.blobs_dir.iterdir()):
                if entry.name.startswith(TEMP_PREFIX):
                    # a writer may still be filling it: only old leftovers of a crash go
                    if time.time() - entry.stat().st_mtime > STALE_TEMP_SECONDS:
                        entry.unlink()
                elif "sha256:" + entry.name not in keep:
                    entry.unlink()
                    removed.append("sha256:" + entry.name)
        return removed
