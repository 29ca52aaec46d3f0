"""Part 4: layers as tar streams.

A layer is a tar archive of the files a build step added, changed or deleted. This part writes
one from a directory (deterministic and streaming: sorted entries, numeric owners, modes,
extended attributes, hard links, symlinks, devices; mtimes clamped to ``SOURCE_DATE_EPOCH``),
compresses it (gzip with ISA-L, or zstd) and computes in the same pass the two digests an image
needs: the blob's ``digest`` (compressed bytes, in the manifest) and its ``diff_id``
(uncompressed tar, in the config). It reads layers back safely: nothing outside the root is
ever created, changed or followed, and whiteouts (``.wh.name``, ``.wh..wh..opq``) delete what
lower layers put there.

The mechanism behind safe extraction is public, since every write into a root filesystem needs
it: :class:`RootDir` resolves paths inside a root directory the way ``openat2(RESOLVE_IN_ROOT)``
does (symlinks followed as if the root were ``/``, ``..`` stopping at it), from a descriptor of
the root, and never follows the last component of a name it writes.
"""

from typing import TYPE_CHECKING

from part1_overview import lazy_exports

from .errors import LayerError, SkippedEntriesWarning, UnsafeArchiveError, UnsafePathError
from .rootdir import Parent, RootDir, copy_data, fd_path, split_name

if TYPE_CHECKING:
    from .blobinfo import layer_info, recompress_layer
    from .compression import detect_compression, open_decompressed
    from .extract import apply_layers, extract_layer
    from .writer import LayerInfo, LayerWriter, write_layer

#: the tar machinery (tarfile, zlib, the compression threads) is imported when one of its names
#: is first used (PEP 562): what only resolves paths inside a root (``RootDir``: reading a
#: Dockerfile in its context, a fully cached build) never needs it.
_LAZY = {
    **{name: "blobinfo" for name in ("layer_info", "recompress_layer")},
    **{name: "compression" for name in ("detect_compression", "open_decompressed")},
    **{name: "extract" for name in ("apply_layers", "extract_layer")},
    **{name: "writer" for name in ("LayerInfo", "LayerWriter", "write_layer")},
}

__getattr__ = lazy_exports(__name__, globals(), _LAZY)


__all__ = [
    "LayerError",
    "LayerInfo",
    "LayerWriter",
    "Parent",
    "RootDir",
    "SkippedEntriesWarning",
    "UnsafeArchiveError",
    "UnsafePathError",
    "apply_layers",
    "copy_data",
    "detect_compression",
    "extract_layer",
    "fd_path",
    "layer_info",
    "open_decompressed",
    "recompress_layer",
    "split_name",
    "write_layer",
]
