"""Where a blob is known to be: ``STORE/sources/<blob hex>`` holds ``REGISTRY/REPOSITORY``
lines (it was pulled from or pushed there), so that a push to another repository of the same
registry mounts it from there instead of uploading it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Container
from pathlib import Path

from part2_manual_oci import digest_hex


class BlobSources:
    """The records in ``directory`` (made on the first record)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def add(self, digest: str, repository: str) -> None:
        """Note that ``REGISTRY/REPOSITORY`` has the blob ``digest``."""
        if repository in self.of(digest):
            return
        self.directory.mkdir(exist_ok=True)
        # one short line appended in one write: concurrent writers never interleave it
        fd = os.open(self.directory / digest_hex(digest), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, (repository + "\n").encode())
        finally:
            os.close(fd)

    def of(self, digest: str) -> list[str]:
        """The ``REGISTRY/REPOSITORY`` names known to have the blob, oldest first."""
        try:
            text = (self.directory / digest_hex(digest)).read_text(errors="replace")
        except (FileNotFoundError, NotADirectoryError):
            return []
        return list(dict.fromkeys(line for line in text.splitlines() if line))

    def prune(self, keep: Container[str]) -> None:
        """Forget the blobs not in ``keep`` (digests)."""
        with contextlib.suppress(FileNotFoundError):
            for entry in self.directory.iterdir():
                if "sha256:" + entry.name not in keep:
                    entry.unlink()
