"""Content digests: ``sha256:<64 lowercase hex>``, the identity of every blob.

"The digest of a blob is the hash of its exact bytes"; so the same JSON re-indented is a
different blob. Large data is hashed as a stream, never read whole.
"""

from __future__ import annotations

import hashlib
import io
import re
from typing import BinaryIO

from part1_overview import CourseError

ALGORITHM = "sha256"
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
CHUNK = 1 << 20


class DigestError(CourseError, ValueError):
    """A string that is not a valid digest (a ValueError too: it is a malformed value)."""


def sha256_digest(data: bytes) -> str:
    """The digest of some bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_stream(f: BinaryIO, chunk: int = CHUNK) -> tuple[str, int]:
    """The digest and size of everything left in a binary stream, read in chunks."""
    h = hashlib.sha256()
    size = 0
    while block := f.read(chunk):
        h.update(block)
        size += len(block)
    return "sha256:" + h.hexdigest(), size


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is ``sha256:<64 lowercase hex>``, else raise DigestError."""
    if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
        raise DigestError(f"invalid digest {digest!r} (expected sha256:<64 lowercase hex>)")
    return digest


#: the algorithms a digest may name, with the length of their hex (go-digest's, as the OCI
#: image spec registers them); blobs of a layout are always sha256
ALGORITHMS = {"sha256": 64, "sha384": 96, "sha512": 128}
_ANY_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


def parse_digest(text: str) -> tuple[str, str]:
    """``(algorithm, hex)`` of ``algorithm:hex`` for one of :data:`ALGORITHMS` (what a content
    checksum such as ``ADD --checksum`` may be). Raises DigestError with go-digest's reasons:
    the format, an unsupported algorithm (md5, sha1...), the length of the hex."""
    if not isinstance(text, str) or not _ANY_DIGEST_RE.match(text):
        raise DigestError(f"invalid checksum digest format: {text!r} (expected ALGORITHM:HEX)")
    algorithm, _, encoded = text.partition(":")
    if algorithm not in ALGORITHMS:
        raise DigestError(f"unsupported digest algorithm {algorithm!r} in {text!r} "
                          f"(supported: {', '.join(ALGORITHMS)})")
    if len(encoded) != ALGORITHMS[algorithm]:
        raise DigestError(f"invalid checksum digest length: {text!r} ({algorithm} has {ALGORITHMS[algorithm]} hex digits)")
    if not re.fullmatch(r"[a-f0-9]+", encoded):
        raise DigestError(f"invalid checksum digest format: {text!r} (lowercase hex expected)")
    return algorithm, encoded


def digest_hex(digest: str) -> str:
    """The hex part of a digest (its blob file name under blobs/sha256/)."""
    return check_digest(digest).split(":", 1)[1]


class HashingReader(io.RawIOBase):
    """A read-only raw file object that hashes and counts every byte read through it from
    ``source``: a blob's digest checked while something else reads it (a decompressor, an
    extractor), in the same pass. ``algorithm``: one of :data:`ALGORITHMS`."""

    def __init__(self, source: BinaryIO, algorithm: str = ALGORITHM) -> None:
        super().__init__()
        self.source = source
        self.algorithm = algorithm
        self.hash = hashlib.new(algorithm)
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        # straight through: no buffer to fill and copy for a caller that reads bytes
        data = self.source.read(size)
        self._count(data)
        return data

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        if hasattr(self.source, "readinto"):
            n = self.source.readinto(view) or 0
        else:
            data = self.source.read(len(view))
            n = len(data)
            view[:n] = data
        self._count(view[:n])
        return n

    def _count(self, data) -> None:
        if data:
            self.hash.update(data)
            self.size += len(data)

    def drain(self, chunk: int = CHUNK) -> None:
        """Read the rest, so that the digest is of the whole stream."""
        while self.read(chunk):
            pass

    @property
    def digest(self) -> str:
        """``algorithm:hex`` of what was read so far."""
        return f"{self.algorithm}:{self.hash.hexdigest()}"


class HashingWriter:
    """A write-only file object that hashes and counts what passes through to ``sink``.

    ``sink`` may be None (hash only). Used to compute a blob digest while it is written.
    """

    def __init__(self, sink: BinaryIO | None = None) -> None:
        self.sink = sink
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        self._hash.update(data)
        n = len(data)
        self.size += n
        if self.sink is not None:
            self.sink.write(data)
        return n

    def flush(self) -> None:
        if self.sink is not None:
            self.sink.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()
