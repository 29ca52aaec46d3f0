"""Just enough decompression to check a layer's diff_id (part 4 owns layers in depth).

gzip through ISA-L (``isal.igzip``) when installed, else the stdlib; zstd through
``zstandard``. Both are streamed: a layer is never held in memory.
"""

from __future__ import annotations

from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def sniff(head: bytes) -> str:
    """"gzip", "zstd" or "none" from a blob's first bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


def decompressing_reader(stream: BinaryIO, compression: str) -> BinaryIO:
    """A reader of the uncompressed bytes of ``stream``."""
    if compression == "gzip":
        try:
            from isal import igzip as gzip_impl
        except ImportError:  # pragma: no cover - isal is a dependency, the stdlib is the fallback
            import gzip as gzip_impl
        return gzip_impl.GzipFile(fileobj=stream, mode="rb")
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)
    if compression == "none":
        return stream
    raise ValueError(f"unknown compression {compression!r}")
