"""gzip on every core, as pigz makes it: one gzip member whose deflate stream is cut in blocks.

::

    tar bytes ─► blocks of BLOCK bytes ─► each compressed on its own (any core, any order)
              ─► joined in order: header, block 1, block 2, ..., last block, CRC-32 + length

A deflate stream is a sequence of deflate blocks, and a compressor can end its output on a byte
boundary without ending the stream: a *sync flush* appends an empty stored block. So each
block of input is compressed alone as raw deflate, ended by a sync flush (the last one by the
final block instead), and the pieces, joined in order, are one valid deflate stream: with a
fixed gzip header (no name, mtime 0) and the trailer (the CRC-32 of all the input, combined
from the blocks' own, and its length), one gzip member that gzip, zcat, Go's compress/gzip
and every registry read as any other.

Blocks share no history (each starts with an empty window, which costs a fraction of a percent
of the size at 1 MiB), so the output depends only on the input, the block size and the level:
never on how many threads compressed it or which finished first. A layer packed on one core
and on sixteen has the same digest. ISA-L, zlib, hashlib and CRC-32 release the GIL, so
threads are enough to use every core.
"""

from __future__ import annotations

import functools
import os
import queue
import struct
import threading
from collections import deque

from .buffers import BufferPool

#: input bytes per independently compressed block (pigz uses 128 KiB; larger blocks mean fewer
#: flush markers and less lost history, and 1 MiB still gives every core work on an 8 MiB layer)
BLOCK = 1 << 20
#: gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS 3 (Unix)
HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"
#: blocks compressed ahead of the one being written, per thread (bounds memory)
AHEAD = 2


def _backend():
    """(compressobj, crc32, crc32_combine or None, sync flush, finish, highest level)."""
    try:
        from isal import isal_zlib as z
    except ImportError:
        import zlib as z

        return z.compressobj, z.crc32, None, z.Z_SYNC_FLUSH, z.Z_FINISH, 9, z.DEFLATED
    return z.compressobj, z.crc32, z.crc32_combine, z.Z_SYNC_FLUSH, z.Z_FINISH, 3, z.DEFLATED


class _Job:
    __slots__ = ("buf", "data", "final", "done", "out", "crc", "error")

    def __init__(self, buf: bytearray | None, data, final: bool) -> None:
        self.buf = buf  # the pool's buffer ``data`` is a view of (given back once collected)
        self.data = data
        self.final = final
        self.done = threading.Event()
        self.out: tuple[bytes, ...] = ()
        self.crc = 0
        self.error: BaseException | None = None


def _compress(compressobj, level: int, method: int, sync: int, finish: int, crc32, job: _Job) -> None:
    try:
        c = compressobj(level, method, -15)  # raw deflate: the header is ours
        job.out = (c.compress(job.data), c.flush(finish if job.final else sync))  # pieces, never re-joined here
        job.crc = crc32(job.data) if crc32 is not None else 0
    except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread by _collect
        job.error = exc
    job.done.set()


def _work(jobs: queue.SimpleQueue, run) -> None:
    while True:
        job = jobs.get()
        if job is None:
            return
        run(job)


class ParallelGzip:
    """A streaming gzip compressor (``compress(bytes) -> bytes``, ``flush() -> bytes``, as
    ``zlib.compressobj``) that compresses blocks on ``threads`` worker threads (default: one
    per core; 1: all in the caller's thread). Output is the same for any ``threads``."""

    def __init__(self, level: int = 1, threads: int | None = None, block: int = BLOCK) -> None:
        compressobj, self._crc32, self._combine, self._sync, self._finish, top, self._method = _backend()
        self._compressobj = compressobj
        self._level = max(0, min(top, level))
        self._block = block
        self._threads = max(1, threads if threads is not None else (os.cpu_count() or 1))
        #: the blocks' input: one being filled and up to AHEAD per thread in flight
        self.buffers = BufferPool(block, AHEAD * self._threads + 1)
        self._buf: bytearray | None = None
        self._fill = 0
        self._jobs: deque[_Job] = deque()
        self._queue: queue.SimpleQueue | None = None
        self._workers: list[threading.Thread] = []
        self._crc = 0
        self._size = 0
        self._started = False
        self._finished = False

    # -- the caller's side ---------------------------------------------------------------------
    def compress(self, data) -> bytes:
        if self._finished:
            raise ValueError("the gzip stream is already finished")
        out = []
        if not self._started:
            self._started = True
            out.append(HEADER)
        view = memoryview(data).cast("B")
        while view:
            if self._buf is None:
                self._make_room(out)
                self._buf = self.buffers.take()
            take = min(len(view), self._block - self._fill)
            self._buf[self._fill:self._fill + take] = view[:take]
            self._fill += take
            view = view[take:]
            if self._fill == self._block:
                self._submit(final=False)
        self._collect(out, wait=False)
        return b"".join(out)

    def flush(self) -> bytes:
        """The rest of the stream: the last block and the trailer (the stream is then done)."""
        if self._finished:
            return b""
        head = b"" if self._started else HEADER
        self._started = True
        self._submit(final=True)
        out = [head]
        self._collect(out, wait=True, everything=True)
        self._finished = True
        self._stop()
        out.append(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
        return b"".join(out)

    def close(self) -> None:
        """Stop the worker threads without finishing the stream (after an error)."""
        self._finished = True
        self._jobs.clear()
        self._stop()

    # -- blocks --------------------------------------------------------------------------------
    def _make_room(self, out: list) -> None:
        """Before a new block is filled: wait for the oldest blocks until at most
        ``AHEAD * threads`` are in flight, so a buffer is free; what they gave goes to ``out``."""
        while len(self._jobs) >= self.buffers.count:
            self._collect(out, wait=True)

    def _submit(self, *, final: bool) -> None:
        """Compress the block being filled (the last one: ``final``, possibly empty)."""
        buf, n = self._buf, self._fill
        self._buf, self._fill = None, 0
        job = _Job(buf, memoryview(buf)[:n] if buf is not None else b"", final)
        self._jobs.append(job)
        if self._threads == 1 or (not self._workers and len(self._jobs) == 1 and final):
            self._run(job)  # one core, or a layer of one block: no thread to start
            return
        if not self._workers:
            # the workers hold the queue, never this object: one that is dropped unfinished
            # (a caller's error) is collected, and __del__ ends its threads
            self._queue = queue.SimpleQueue()
            self._workers = [threading.Thread(target=_work, args=(self._queue, self._run), name=f"gzip-{i}",
                                              daemon=True) for i in range(self._threads)]
            for w in self._workers:
                w.start()
        assert self._queue is not None
        self._queue.put(job)

    @property
    def _run(self):
        return functools.partial(_compress, self._compressobj, self._level, self._method, self._sync, self._finish,
                                 self._crc32 if self._combine is not None else None)

    def __del__(self) -> None:
        if self._queue is not None:
            for _ in self._workers:
                self._queue.put(None)

    def _collect(self, out: list, *, wait: bool, everything: bool = False) -> None:
        """The compressed blocks that are ready, in order, onto ``out`` (``wait``: at least the
        oldest; ``everything``: all of them); their buffers go back to the pool."""
        while self._jobs and (self._jobs[0].done.is_set() or wait):
            job = self._jobs[0]
            job.done.wait()
            self._jobs.popleft()
            if job.error is not None:
                raise job.error
            if self._combine is not None:
                self._crc = self._combine(self._crc, job.crc, len(job.data))
            else:
                self._crc = self._crc32(job.data, self._crc)
            self._size += len(job.data)
            out.extend(job.out)
            job.out = ()
            if job.buf is not None:
                job.data.release()
                self.buffers.give(job.buf)
            wait = everything

    def _stop(self) -> None:
        if self._queue is not None:
            for _ in self._workers:
                self._queue.put(None)
            for w in self._workers:
                w.join()
        self._workers = []
        self._queue = None
