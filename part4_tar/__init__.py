"""Part 4: layers as tar streams.

A layer is a tar archive of the files a build step added, changed or deleted. This part writes
one from a directory (deterministic and streaming: sorted entries, numeric owners, modes,
extended attributes, hard links, symlinks, devices; mtimes clamped to ``SOURCE_DATE_EPOCH``),
compresses it (gzip with ISA-L, or zstd) and computes in the same pass the two digests an image
needs: the blob's ``digest`` (compressed bytes, in the manifest) and its ``diff_id``
(uncompressed tar, in the config). It reads layers back safely: nothing outside the root is
ever created, changed or followed, and whiteouts (``.wh.name``, ``.wh..wh..opq``) delete what
lower layers put there.
"""

from .blobinfo import layer_info
from .compression import detect_compression, open_decompressed
from .errors import LayerError, UnsafeArchiveError
from .extract import apply_layers, extract_layer
from .writer import LayerInfo, LayerWriter, write_layer

__all__ = [
    "LayerError",
    "LayerInfo",
    "LayerWriter",
    "UnsafeArchiveError",
    "apply_layers",
    "detect_compression",
    "extract_layer",
    "layer_info",
    "open_decompressed",
    "write_layer",
]
