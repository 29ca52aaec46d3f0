"""Compression of layer blobs: gzip, zstd or none, and detection by magic bytes.

A layer's media type names its compression (``tar+gzip``, ``tar+zstd``), but blobs found in the
wild are best identified by their first bytes. Detection needs at most six bytes and works on
streams shorter than that (an empty blob is an uncompressed, empty stream).

gzip uses ISA-L (``isal``) when it is installed, about 7x faster than zlib at level 1, and falls
back to the standard library's zlib; either way the stream is compressed in 1 MiB blocks on
every core (:mod:`.pgzip`, as pigz does), one gzip member whose bytes do not depend on the
number of cores. zstd uses the ``zstandard`` package with worker threads (one per core, at
least one: zstd's output is the same for any number of workers, but not the same as its
single-threaded mode's), in 2 MiB jobs, which keep its buffers near 30 MB where zstd's default
jobs take over 100 MB.
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


#: zstd's job size with worker threads (its default for level 3 keeps about 100 MB of buffers)
ZSTD_JOB_SIZE = 2 << 20


def make_compressor(compression: str, level: int | None = None, threads: int | None = None) -> Compressor:
    """A streaming compressor object (``compress(bytes) -> bytes``, ``flush() -> bytes``).

    ``threads``: how many cores may compress (default: all; 1: the caller's thread only). The
    same tar stream always compresses to the same bytes, whatever ``threads`` is (with the same
    backend and level): gzip in fixed blocks with a fixed header (mtime 0, no file name),
    zstd with at least one worker and a fixed job size.
    """
    if compression == "none":
        return _Identity()
    if compression == "gzip":
        from .pgzip import ParallelGzip

        return ParallelGzip(DEFAULT_LEVEL["gzip"] if level is None else level, threads)
    if compression == "zstd":
        import os

        import zstandard

        lvl = DEFAULT_LEVEL["zstd"] if level is None else level
        workers = max(1, threads if threads is not None else (os.cpu_count() or 1))
        params = zstandard.ZstdCompressionParameters.from_level(lvl, threads=workers, job_size=ZSTD_JOB_SIZE)
        return zstandard.ZstdCompressor(compression_params=params).compressobj()
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


ZSTD_FRAME_MAGIC = 0xFD2FB528
#: skippable frames (RFC 8878 section 3.1.2): magic 0x184D2A50..0x184D2A5F, a size, then data
ZSTD_SKIPPABLE_MASK, ZSTD_SKIPPABLE = 0xFFFFFFF0, 0x184D2A50


class ZstdFrameTracker:
    """Follows the frame structure of a zstd stream (RFC 8878) as its bytes pass.

    The ``zstandard`` stream reader ends quietly when its input ends inside a frame, so a
    truncated zstd layer would extract as a shorter tar and hash to a wrong diff_id without an
    error. This tracker reads only the frame and block headers (block contents are skipped, so
    it costs a few operations per 128 KiB block) and says whether the input ended where a frame
    ends.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip = 0
        self._state = "magic"
        self._need = 4
        self._checksum = False
        self.frames = 0

    def feed(self, data) -> None:
        view = memoryview(data)
        i, n = 0, len(view)
        while i < n:
            if self._skip:
                step = min(self._skip, n - i)
                self._skip -= step
                i += step
                continue
            step = min(self._need - len(self._buf), n - i)
            self._buf += view[i:i + step]
            i += step
            if len(self._buf) == self._need:
                field = bytes(self._buf)
                self._buf.clear()
                self._parse(field)

    def _parse(self, field: bytes) -> None:
        value = int.from_bytes(field, "little")
        state = self._state
        if state == "magic":
            if value == ZSTD_FRAME_MAGIC:
                self._state, self._need = "descriptor", 1
            elif value & ZSTD_SKIPPABLE_MASK == ZSTD_SKIPPABLE:
                self._state, self._need = "skippable", 4
            else:
                raise LayerError(f"corrupt zstd stream: no frame starts at {field.hex()}")
        elif state == "descriptor":
            fcs_flag, single = value >> 6, (value >> 5) & 1
            if value & 0x08:
                raise LayerError("corrupt zstd stream: reserved bit set in a frame header")
            self._checksum = bool(value & 0x04)
            rest = (0 if single else 1) + (0, 1, 2, 4)[value & 3] + ((1 if single else 0), 2, 4, 8)[fcs_flag]
            self._state, self._need = ("header", rest) if rest else ("block", 3)
        elif state == "header":
            self._state, self._need = "block", 3
        elif state == "block":
            last, kind, size = value & 1, (value >> 1) & 3, value >> 3
            if kind == 3:
                raise LayerError("corrupt zstd stream: reserved block type")
            self._skip = 1 if kind == 1 else size  # an RLE block stores its one byte
            if last:
                self.frames += 1
                self._state, self._need = ("checksum", 4) if self._checksum else ("magic", 4)
        elif state == "checksum":
            self._state, self._need = "magic", 4
        elif state == "skippable":
            self._skip = value
            self._state, self._need = "magic", 4

    @property
    def complete(self) -> bool:
        """True when the bytes fed so far end exactly where a frame ends."""
        return self._state == "magic" and not self._buf and not self._skip


class _TrackedSource(io.RawIOBase):
    """The compressed input of a zstd reader, fed to a frame tracker on its way."""

    def __init__(self, raw: BinaryIO, tracker: ZstdFrameTracker) -> None:
        self._raw = raw
        self.tracker = tracker

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self.tracker.feed(data)
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)


class _CheckedReader(io.RawIOBase):
    """The decompressed bytes; a corrupt or truncated stream is a LayerError, whatever library
    decompresses it (zlib, ISA-L, zstd, bz2 and lzma each raise their own exception types)."""

    def __init__(self, inner: BinaryIO, compression: str, source: _TrackedSource | None = None) -> None:
        self._inner = inner
        self._compression = compression
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        try:
            n = self._inner.readinto(b)
        except LayerError:
            raise
        except OSError as exc:
            if exc.errno is not None:
                raise  # a real I/O error of the underlying file, not bad data
            raise LayerError(f"corrupt {self._compression} stream: {exc}") from exc
        except Exception as exc:  # zstandard.ZstdError, lzma.LZMAError, EOFError, zlib.error...
            raise LayerError(f"corrupt {self._compression} stream: {exc}") from exc
        if not n and len(b) and self._source is not None:
            # the decompressor says EOF: the input must be over, and end where a frame ends
            while self._source.read(1 << 16):
                pass
            if not self._source.tracker.complete:
                raise LayerError(f"truncated {self._compression} stream: it ends inside a frame")
        return n


def decompressing_reader(stream: BinaryIO, compression: str) -> BinaryIO:
    """Wrap ``stream`` (compressed with ``compression``) in a reader of the uncompressed bytes.

    Reading it raises LayerError when the compressed data is corrupt or cut short.
    """
    if compression == "none":
        return stream
    source = None
    if compression == "gzip":
        try:
            from isal import igzip

            inner = igzip.IGzipFile(fileobj=stream, mode="rb")
        except ImportError:
            import gzip

            inner = gzip.GzipFile(fileobj=stream, mode="rb")
    elif compression == "zstd":
        import zstandard

        source = _TrackedSource(stream, ZstdFrameTracker())
        inner = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True, closefd=False)
    elif compression == "bzip2":
        import bz2

        inner = bz2.BZ2File(stream, "rb")
    elif compression == "xz":
        import lzma

        inner = lzma.LZMAFile(stream, "rb")
    else:
        raise LayerError(f"unknown compression {compression!r}")
    return io.BufferedReader(_CheckedReader(inner, compression, source), buffer_size=1 << 20)


def open_decompressed(stream: BinaryIO) -> BinaryIO:
    """A reader of the uncompressed bytes of ``stream``, whatever its compression (by magic)."""
    head, whole = read_head(stream)
    return decompressing_reader(whole, detect_compression(head))
