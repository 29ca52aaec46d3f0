"""Layer snapshots: each layer extracted once as an overlay lower directory,
``STORE/snapshots/<diff_id hex>``, never extracted again; and beside it the blob each snapshot
was checked against, ``STORE/snapshot-blobs/<diff_id hex>`` (inode, size, mtime of the blob's
file), so that a damaged blob is found before its snapshot is used.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import warnings
from collections.abc import Callable, Container, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from part2_manual_oci import (
    BlobCorrupt,
    BlobNotFound,
    Descriptor,
    HashingReader,
    LayoutError,
    OCILayout,
    canonical_json,
    digest_hex,
    write_file_atomic,
)
from part3_go_style_builder import Image

from .errors import StoreError
from .leases import TEMP_PREFIX, lease, remove_tree

CHUNK = 1 << 20


class Snapshots:
    """The snapshots in ``directory`` of the layers of ``layout``; ``markers``: the directory of
    the blob records; ``session``: the store's shared lock, held while a snapshot is placed so
    that ``prune`` does not take a temp directory away midway."""

    def __init__(self, directory: Path, markers: Path, layout: OCILayout,
                 session: Callable[[], AbstractContextManager]) -> None:
        self.directory = directory
        self.markers = markers
        self.layout = layout
        self._session = session

    def path(self, diff_id: str) -> Path:
        return self.directory / digest_hex(diff_id)

    def has(self, diff_id: str) -> bool:
        return self.path(diff_id).is_dir()

    def get(self, layer: Descriptor, diff_id: str, *, blob: BinaryIO | None = None) -> Path:
        """The layer extracted as an overlay lower dir.

        Extracted once (into a temp dir, checked against ``diff_id``, renamed into place) and
        reused ever after. The bytes come from the store's blob, or from ``blob`` (a stream of
        the layer) for a layer not stored yet.
        """
        final = self.path(diff_id)
        if final.is_dir():
            return final
        from part4_tar import LayerError  # parts 4 and 7 only when a layer is extracted
        from part7_union import UnionError

        with self._session():  # prune must not take the temp dir away mid-extraction
            try:
                return self._extract(layer, diff_id, final, blob)
            except (LayerError, LayoutError, BlobCorrupt, BlobNotFound, UnionError) as e:
                raise StoreError(f"snapshot of layer {layer.digest}: {e}") from e

    def _extract(self, layer: Descriptor, diff_id: str, final: Path, blob: BinaryIO | None) -> Path:
        from part4_tar import SkippedEntriesWarning, open_decompressed
        from part7_union import extract_lower

        # leased: what a build killed midway leaves, the next build's sweep removes at once
        with lease(self.directory, f"{TEMP_PREFIX}{digest_hex(diff_id)[:12]}-{os.urandom(4).hex()}") as tmp:
            with contextlib.ExitStack() as stack:
                raw = blob if blob is not None else stack.enter_context(self.layout.open_blob(layer))
                reader = HashingReader(stack.enter_context(open_decompressed(raw)))
                with warnings.catch_warnings(record=True) as seen:
                    warnings.simplefilter("always", SkippedEntriesWarning)
                    extract_lower(reader, tmp / "fs")
                for w in seen:  # the same warning, saying which layer
                    if issubclass(w.category, SkippedEntriesWarning):
                        warnings.warn(SkippedEntriesWarning(f"layer {layer.digest}: {w.message}"), stacklevel=4)
                    else:
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
                reader.drain()  # to the end: the blob's digest and the diff_id are checked there
                if blob is None:
                    while raw.read(CHUNK):
                        pass
            got = reader.digest
            if got != diff_id:
                raise StoreError(f"layer {layer.digest}: uncompressed content hashes to {got}, its diff_id is {diff_id}")
            try:
                os.rename(tmp / "fs", final)
            except OSError as e:
                if not final.is_dir():
                    raise StoreError(f"cannot place snapshot {final}: {e.strerror}") from None
                # another process extracted it first: keep theirs
            # the store's blob was read to its end and matched its digest: record which one
            self._mark(diff_id, layer.digest, checked=blob is None)
        return final

    def adopt(self, diff_id: str, directory: str | os.PathLike, layer: Descriptor | None = None) -> Path:
        """Keep ``directory`` as the snapshot of the layer ``diff_id`` instead of extracting the
        layer later: a RUN step's upper dir, or the staged files of a COPY, are that layer in
        overlay's format already. It is renamed into place (so it must be on the store's file
        system); if a snapshot is there already, ``directory`` is left alone. ``layer``: the
        blob just written from the same files (recorded as good for the snapshot)."""
        final = self.path(diff_id)
        directory = Path(directory)
        if final.is_dir():
            return final
        if not directory.is_dir():
            raise StoreError(f"adopt_snapshot: {directory} is not a directory")
        with self._session():
            try:
                os.rename(directory, final)
            except OSError as e:
                if not final.is_dir():
                    if e.errno == errno.EXDEV:
                        raise StoreError(f"adopt_snapshot: {directory} is on another file system than "
                                         f"{self.directory}") from None
                    raise StoreError(f"adopt_snapshot: cannot place {final}: {e.strerror}") from None
            if layer is not None:
                self._mark(diff_id, layer.digest, checked=True)
        return final

    def lowers(self, image: Image) -> list[Path]:
        """The image's layers as overlay lower dirs, top layer first (overlay's order)."""
        out = []
        for layer in reversed(image.layers):
            if self.has(layer.diff_id):
                self.check(layer.descriptor, layer.diff_id)
                out.append(self.path(layer.diff_id))
            elif self.layout.has_blob(layer.descriptor.digest):
                out.append(self.get(layer.descriptor, layer.diff_id))
            else:
                with layer.open() as f:
                    out.append(self.get(layer.descriptor, layer.diff_id, blob=f))
        return out

    def prune(self, keep_diff_ids: Container[str]) -> None:
        """Remove the snapshots (and their records) of layers not in ``keep_diff_ids``."""
        keep_hex = {digest_hex(d) for d in keep_diff_ids}
        for parent in (self.directory, self.markers):
            for entry in _entries(parent):
                if entry.name not in keep_hex:
                    remove_tree(entry)

    # -- the blob a snapshot was checked against ------------------------------------------------
    def _marker(self, diff_id: str) -> Path:
        return self.markers / digest_hex(diff_id)

    def _blob_state(self, digest: str) -> list[int] | None:
        """What says the store's blob is still the file it was: (inode, size, mtime)."""
        try:
            st = os.stat(self.layout.blob_path(digest))
        except FileNotFoundError:
            return None
        return [st.st_ino, st.st_size, st.st_mtime_ns]

    def _mark(self, diff_id: str, digest: str, *, checked: bool) -> None:
        """Record beside the snapshot of ``diff_id`` that the blob ``digest`` was found good
        (``checked``: its bytes were hashed, or it was written from the same content just now)
        as its file is now; unchecked, the blob is hashed when the snapshot is next used."""
        path = self._marker(diff_id)
        try:
            marker = json.loads(path.read_bytes())
            blobs = marker["blobs"] if marker.get("diff_id") == diff_id and isinstance(marker.get("blobs"), dict) else {}
        except (OSError, ValueError, KeyError):
            blobs = {}
        state = self._blob_state(digest) if checked else None
        if state is None:
            blobs.pop(digest, None)
        else:
            blobs[digest] = state
        # not fsynced: a lost or torn marker only means the blob is hashed again at its next use
        write_file_atomic(path, canonical_json({"diff_id": diff_id, "blobs": blobs}), durable=False)

    def check(self, layer: Descriptor, diff_id: str) -> None:
        """Before a snapshot is used: is the store's blob of ``layer`` still the file it was when
        it was last found good (the marker beside the snapshot says)? If it changed, or was never
        compared, it is hashed now: a damaged blob is a :class:`StoreError` (the image must be
        pulled or built again), a good one (repaired) is recorded. A layer whose blob is not in
        the store has only its snapshot, made and checked against its diff_id when extracted."""
        state = self._blob_state(layer.digest)
        if state is None:
            return
        try:
            marker = json.loads(self._marker(diff_id).read_bytes())
            if marker.get("diff_id") == diff_id and marker.get("blobs", {}).get(layer.digest) == state:
                return
        except (OSError, ValueError, AttributeError):
            pass
        from part2_manual_oci import digest_stream

        with open(self.layout.blob_path(layer.digest), "rb") as f:
            digest, size = digest_stream(f)
        if (digest, size) != (layer.digest, layer.size):
            raise StoreError(f"layer blob {layer.digest} in the store is damaged ({size} bytes hashing to {digest}; "
                             f"the snapshot of {diff_id[:19]} is not used): pull or build the image again")
        self._mark(diff_id, layer.digest, checked=True)


def _entries(directory: Path) -> Iterator[Path]:
    with contextlib.suppress(FileNotFoundError):
        yield from list(directory.iterdir())
