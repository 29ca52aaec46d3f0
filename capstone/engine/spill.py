"""Records kept on disk rather than in memory: a COPY of 200,000 files plans 200,000 entries.

A :class:`ChunkFile` is a sequence of records (anything ``marshal`` keeps: tuples of str,
bytes, int, float, None) written in chunks, each its length (8 bytes) then a marshalled list,
and read back front to back as often as needed. Without a path it is kept in memory (a small
plan, a test), with the same format and code.

:class:`SortedRuns` sorts more records than memory should hold, as ``sort`` does: records
are gathered :data:`RUN_ROWS` at a time, each batch sorted and written as a run, and the runs
are merged when read (``heapq.merge``), so memory holds one batch and one chunk per run.
"""

from __future__ import annotations

import heapq
import io
import marshal
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

#: records per chunk of a chunk file (a reader holds one chunk)
CHUNK_RECORDS = 1024
#: records gathered in memory before they are sorted and spilled as a run
RUN_ROWS = 65536


class ChunkFile:
    """Records appended to the file ``path`` (None: in memory), then read back in order."""

    __slots__ = ("_buffer", "_chunk", "_out", "count", "path")

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._out = open(self.path, "xb") if self.path is not None else io.BytesIO()
        self._buffer: bytes | None = None
        self._chunk: list = []
        self.count = 0

    def append(self, record) -> None:
        self._chunk.append(record)
        self.count += 1
        if len(self._chunk) == CHUNK_RECORDS:
            self._flush()

    def extend(self, records: Iterable) -> None:
        for record in records:
            self.append(record)

    def _flush(self) -> None:
        data = marshal.dumps(self._chunk)
        self._out.write(len(data).to_bytes(8, "little") + data)
        self._chunk.clear()

    def close(self) -> ChunkFile:
        """No more records: the file is complete (to be read, as often as needed)."""
        if self._out is not None:
            if self._chunk:
                self._flush()
            if self.path is None:
                self._buffer = self._out.getvalue()
            self._out.close()
            self._out = None
        return self

    def __iter__(self) -> Iterator:
        self.close()
        with (open(self.path, "rb") if self.path is not None else io.BytesIO(self._buffer)) as f:
            while head := f.read(8):
                yield from marshal.loads(f.read(int.from_bytes(head, "little")))

    def __len__(self) -> int:
        return self.count


class SortedRuns:
    """Records to be read back sorted: spilled as sorted runs to files named ``prefix-N``
    (``prefix`` None: one run, in memory)."""

    __slots__ = ("_batch", "count", "prefix", "runs")

    def __init__(self, prefix: str | os.PathLike | None = None) -> None:
        self.prefix = prefix
        self._batch: list = []
        self.runs: list[ChunkFile] = []
        self.count = 0

    def add(self, record) -> None:
        self._batch.append(record)
        self.count += 1
        if self.prefix is not None and len(self._batch) >= RUN_ROWS:
            self._spill()

    def _spill(self) -> None:
        self._batch.sort()
        run = ChunkFile(f"{self.prefix}-{len(self.runs)}" if self.prefix is not None else None)
        run.extend(self._batch)
        self.runs.append(run.close())
        self._batch.clear()

    def close(self) -> SortedRuns:
        """No more records: the last batch is spilled (before a forked child may read it)."""
        if self._batch or not self.runs:
            self._spill()
        return self

    def __iter__(self) -> Iterator:
        """Every record added, in order (records that compare equal in the order added)."""
        self.close()
        return heapq.merge(*self.runs) if len(self.runs) > 1 else iter(self.runs[0])


__all__ = ["CHUNK_RECORDS", "RUN_ROWS", "ChunkFile", "SortedRuns"]
