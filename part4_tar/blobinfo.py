"""The digest, size and diff_id of an existing layer blob, in one pass."""

from __future__ import annotations

import hashlib
from typing import BinaryIO

from part2_manual_oci import HashingReader

from .compression import decompressing_reader, detect_compression, read_head
from .errors import LayerError
from .writer import LayerInfo

CHUNK = 1 << 20


def layer_info(blob: BinaryIO, media_type: str | None = None) -> LayerInfo:
    """Digest and size of the blob's bytes, and diff_id of its uncompressed tar, in one read.

    The compression is found from the magic bytes; a ``media_type`` that says otherwise is an
    error. Without one, the OCI media type for the detected compression is used.
    """
    from part2_manual_oci.mediatypes import LAYER_COMPRESSION, layer_media_type

    hashing = HashingReader(blob)
    head, whole = read_head(hashing)
    compression = detect_compression(head)
    if media_type is not None:
        declared = LAYER_COMPRESSION.get(media_type)
        if declared is not None and declared != compression:
            raise LayerError(f"media type {media_type} says {declared}, but the blob's bytes are {compression}")
    else:
        if compression not in ("gzip", "zstd", "none"):
            raise LayerError(f"a {compression} layer has no OCI media type (pass media_type)")
        media_type = layer_media_type(compression)
    diff = hashlib.sha256()
    try:
        reader = decompressing_reader(whole, compression)
        while chunk := reader.read(CHUNK):
            diff.update(chunk)
        # whatever the decompressor left unread still belongs to the blob
        hashing.drain()
    except LayerError:
        raise
    except Exception as exc:  # zlib, zstd, lzma, bz2 each raise their own error types
        raise LayerError(f"the {compression} layer blob is corrupt: {exc}") from exc
    return LayerInfo(hashing.digest, hashing.size, "sha256:" + diff.hexdigest(), media_type, compression)


def recompress_layer(blob: BinaryIO, out: BinaryIO, compression: str) -> LayerInfo:
    """Write the layer ``blob`` (any compression, found from its magic bytes) to ``out``
    compressed with ``compression`` (``gzip``, ``zstd`` or ``none``), in one pass; the new
    blob's digest, size and media type, and the diff_id, which recompression never changes
    (it is the digest of the same uncompressed tar)."""
    from part2_manual_oci.mediatypes import layer_media_type

    from .compression import make_compressor

    try:
        media_type = layer_media_type(compression)
    except ValueError as exc:
        raise LayerError(str(exc)) from None
    head, whole = read_head(blob)
    source = detect_compression(head)
    compressor = make_compressor(compression)
    diff, written = hashlib.sha256(), hashlib.sha256()
    size = 0

    def emit(data: bytes) -> None:
        nonlocal size
        if data:
            written.update(data)
            size += len(data)
            out.write(data)

    try:
        reader = decompressing_reader(whole, source)
        while chunk := reader.read(CHUNK):
            diff.update(chunk)
            emit(compressor.compress(chunk))
        emit(compressor.flush())
    except LayerError:
        raise
    except Exception as exc:  # zlib, zstd, lzma, bz2 each raise their own error types
        raise LayerError(f"the {source} layer blob is corrupt: {exc}") from exc
    return LayerInfo("sha256:" + written.hexdigest(), size, "sha256:" + diff.hexdigest(), media_type, compression)
