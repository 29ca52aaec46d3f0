"""The build cache: one small JSON file per key, ``STORE/cache/<key hex>``.

Every ``sha256:...`` string in a value keeps that blob (an image manifest: the whole image)
alive through ``prune``: the garbage collector starts its walk from :meth:`BuildCache.roots`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Container, Iterator
from pathlib import Path
from typing import BinaryIO

from part2_manual_oci import atomic_file, write_file_atomic

from .leases import TEMP_PREFIX

HEX64 = re.compile(r"^[a-f0-9]{64}$")
DIGEST_IN_TEXT = re.compile(r"sha256:[a-f0-9]{64}")


class BuildCache:
    """The cache entries in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _file(self, key: str) -> Path:
        name = key if HEX64.match(key) else hashlib.sha256(key.encode()).hexdigest()
        return self.directory / name

    def get(self, key: str) -> dict | None:
        """The value stored under ``key``, or None (a missing or unreadable entry is a miss)."""
        try:
            value = json.loads(self._file(key).read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def put(self, key: str, value: dict) -> None:
        """Store ``value`` under ``key`` (atomically).

        Strings may carry file names that are not UTF-8 (the bytes kept as surrogateescape
        code points, as ``os.listdir`` gives them): the file is ASCII JSON, those code points
        written as ``\\udcXX`` escapes, which :meth:`get` reads back as they were."""
        data = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        # not fsynced: after a crash an entry is there whole, or missing, or unreadable (a miss)
        write_file_atomic(self._file(key), data.encode("ascii"), durable=False)

    def open_file(self, key: str) -> BinaryIO | None:
        """An entry too big to be one JSON value (the file digests of a big context), open to
        be read piece by piece; None when there is none."""
        try:
            return open(self._file(key), "rb")
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def write_file(self, key: str) -> Iterator[BinaryIO]:
        """Write such an entry as a stream; it replaces the old one (atomically) when the block
        ends without an error."""
        with atomic_file(self._file(key), 0o644) as f:
            yield f

    def roots(self) -> set[str]:
        """Every digest the entries name: what the cache keeps alive."""
        roots: set[str] = set()
        for entry in self.directory.iterdir():
            if entry.name.startswith(TEMP_PREFIX):
                continue
            with contextlib.suppress(OSError):
                roots.update(DIGEST_IN_TEXT.findall(entry.read_text(errors="replace")))
        return roots

    def refers_to(self, digest: str) -> bool:
        return digest in self.roots()

    def clear(self) -> None:
        """Every entry removed (``prune --all``, like ``docker builder prune -a``)."""
        for entry in self.directory.iterdir():
            entry.unlink()

    def drop_stale(self, keep: Container[str]) -> None:
        """Remove temp files, and entries that name digests none of which is in ``keep`` (the
        image they recorded is gone)."""
        for entry in self.directory.iterdir():
            with contextlib.suppress(OSError):
                named = set(DIGEST_IN_TEXT.findall(entry.read_text(errors="replace")))
                if entry.name.startswith(TEMP_PREFIX) or (named and not any(d in keep for d in named)):
                    entry.unlink()
