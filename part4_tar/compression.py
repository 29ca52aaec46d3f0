"""Compression of layer blobs: gzip, zstd or none, and detection by magic bytes.

A layer's media type names its compression (``tar+gzip``, ``tar+zstd``), but blobs found in the
wild are best identified by their first bytes. Detection needs at most six bytes and works on
streams shorter than that (an empty blob is an uncompressed, empty stream).

gzip uses ISA-L (``isal``) when it is installed, about 7x faster than zlib at level 1, and falls
back to the standard library's zlib. zstd uses the ``zstandard`` package in single-threaded
mode: the layer pipeline already compresses in its own worker thread, and zstd's worker threads
cost about 100 MB of job buffers for no gain on two cores (0.48 s vs 0.51 s for 512 MiB, 140 MB
vs 29 MB of RSS, measured here). Single-threaded output is also the same on every machine.
"""

from __future__ import annotations

import io
from typing import BinaryIO, Protocol

from .errors import LayerError

#: magic bytes at the start of a compressed stream
MAGIC: tuple[tuple[str, bytes], ...] = (
    ("gzip", b"\x1f\x8b"),
    ("zstd", b"\x28\xb5\x2f\xfd"),
    ("bzip2", b"BZh"),
    ("xz", b"\xfd7zXZ\x00"),
)
#: the longest magic (xz's six bytes): how many bytes detection needs
HEAD_SIZE = 6
COMPRESSIONS = ("gzip", "zstd", "none")
#: default levels: gzip 1 is what `gzip -1` does (fast, the bench target), zstd 3 is zstd's default
DEFAULT_LEVEL = {"gzip": 1, "zstd": 3}


def detect_compression(head: bytes) -> str:
    """``"gzip"``, ``"zstd"``, ``"bzip2"``, ``"xz"`` or ``"none"`` from a stream's first bytes.

    ``head`` may be shorter than any magic (a tiny or empty blob): it is then ``"none"``.
    """
    head = bytes(head[:HEAD_SIZE])
    for name, magic in MAGIC:
        if head.startswith(magic):
            return name
    return "none"


class Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def gzip_backend() -> str:
    """``"isal"`` when ISA-L is importable, else ``"zlib"``."""
    try:
        import isal.isal_zlib  # noqa: F401
    except ImportError:
        return "zlib"
    return "isal"


def make_compressor(compression: str, level: int | None = None) -> Compressor:
    """A streaming compressor object (``compress(bytes) -> bytes``, ``flush() -> bytes``).

    gzip: wbits 31 gives the gzip container with mtime 0 and no file name, so the same tar
    stream always compresses to the same bytes (with the same backend and level).
    """
    if compression == "none":
        return _Identity()
    if compression == "gzip":
        lvl = DEFAULT_LEVEL["gzip"] if level is None else level
        try:
            from isal import isal_zlib
        except ImportError:
            import zlib

            return zlib.compressobj(max(0, min(9, lvl)), zlib.DEFLATED, 31)
        # ISA-L levels are 0..3
        return isal_zlib.compressobj(max(0, min(3, lvl)), isal_zlib.DEFLATED, 31)
    if compression == "zstd":
        import zstandard

        lvl = DEFAULT_LEVEL["zstd"] if level is None else level
        return zstandard.ZstdCompressor(level=lvl, threads=0).compressobj()
    raise LayerError(f"unknown compression {compression!r} (expected gzip, zstd or none)")


class _HeadStream(io.RawIOBase):
    """A stream that first returns ``head`` (bytes already read for detection), then the rest."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(b))
        if not data:
            return 0
        n = len(data)
        b[:n] = data
        return n


def read_head(stream: BinaryIO) -> tuple[bytes, BinaryIO]:
    """Read up to HEAD_SIZE bytes; return them and a stream that yields everything from the start.

    Works with pipes and sockets (no seek, no peek needed); short reads are retried until EOF.
    """
    head = b""
    while len(head) < HEAD_SIZE:
        more = stream.read(HEAD_SIZE - len(head))
        if not more:
            break
        head += more
    return head, io.BufferedReader(_HeadStream(head, stream), buffer_size=1 << 20)


def decompressing_reader(stream: BinaryIO, compression: str) -> BinaryIO:
    """Wrap ``stream`` (compressed with ``compression``) in a reader of the uncompressed bytes."""
    if compression == "none":
        return stream
    if compression == "gzip":
        try:
            from isal import igzip

            return igzip.IGzipFile(fileobj=stream, mode="rb")
        except ImportError:
            import gzip

            return gzip.GzipFile(fileobj=stream, mode="rb")
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True, closefd=False)
    if compression == "bzip2":
        import bz2

        return bz2.BZ2File(stream, "rb")
    if compression == "xz":
        import lzma

        return lzma.LZMAFile(stream, "rb")
    raise LayerError(f"unknown compression {compression!r}")


def open_decompressed(stream: BinaryIO) -> BinaryIO:
    """A reader of the uncompressed bytes of ``stream``, whatever its compression (by magic)."""
    head, whole = read_head(stream)
    return decompressing_reader(whole, detect_compression(head))
