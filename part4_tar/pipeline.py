"""One streaming pass from tar bytes to a compressed blob, with both digests.

::

    tar bytes ─► sha256 (diff_id) ─► compressor ─► sha256 + byte count (digest, size) ─► out

"The diff_id is the digest of the uncompressed tar"; the layer's ``digest`` and ``size`` are
those of the compressed bytes. Both are computed while the bytes pass, so there is never an
uncompressed copy on disk nor a whole file in memory.

On a multi-core machine the second half (compress, hash, write) runs in a worker thread, and
the compressor itself spreads a large layer over every core (gzip in blocks, :mod:`.pgzip`;
zstd's worker threads): hashlib, ISA-L and zstd release the GIL, so hashing the tar stream,
compressing it and hashing the blob run at once. The tar bytes travel in a fixed set of 1 MiB
buffers (:mod:`.buffers`: file content is read straight into them, small pieces gathered), which
the worker gives back as it compresses them, so memory is the same for a layer of any size.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from typing import BinaryIO

from .buffers import BufferPool
from .compression import make_compressor
from .errors import LayerError

#: the pipeline's buffers: tar bytes travel in chunks of this size
BUFFER = 1 << 20
#: a worker thread is started once this many bytes have passed (small layers stay single-threaded)
THREAD_AFTER = 8 << 20
#: chunks that may wait for the worker; with the one being filled and the one being compressed,
#: the pipeline's buffers number QUEUE_DEPTH + 2, whatever the layer's size
QUEUE_DEPTH = 4


class BlobPipeline:
    """``write(tar_bytes)`` (or ``read_from(fd, n)``) ... ``finish()`` -> (digest, size, diff_id)."""

    def __init__(self, out: BinaryIO, compression: str, level: int | None = None, *, threads: bool = True) -> None:
        self._out = out
        self._compressor = make_compressor(compression, level, None if threads else 1)
        self._diff = hashlib.sha256()
        self._blob = hashlib.sha256()
        self.uncompressed_size = 0
        self.size = 0
        #: every chunk is one of these; the worker gives each back once it is compressed
        self.buffers = BufferPool(BUFFER, QUEUE_DEPTH + 2)
        self._buf: bytearray | None = None
        self._fill = 0
        self._threads = threads
        self._queue: queue.SimpleQueue | None = None
        self._worker: threading.Thread | None = None
        self._error: BaseException | None = None
        self._finished = False

    # -- the producer side (caller's thread) ----------------------------------------------
    def write(self, data) -> int:
        """Add tar bytes (copied into the pipeline's buffers)."""
        view = memoryview(data).cast("B")
        n = len(view)
        while view:
            buf = self._current()
            take = min(len(view), len(buf) - self._fill)
            buf[self._fill:self._fill + take] = view[:take]
            self._fill += take
            view = view[take:]
            if self._fill == len(buf):
                self._send()
        return n

    def read_from(self, fd: int, size: int) -> int:
        """Add up to ``size`` bytes read from the file descriptor ``fd``, read straight into the
        pipeline's buffers; how many were read (fewer than ``size`` only at the end of the file)."""
        done = 0
        while done < size:
            buf = self._current()
            want = min(size - done, len(buf) - self._fill)
            with memoryview(buf) as view:
                n = os.readv(fd, [view[self._fill:self._fill + want]])
            if not n:
                break
            self._fill += n
            done += n
            if self._fill == len(buf):
                self._send()
        return done

    def _current(self) -> bytearray:
        if self._buf is None:
            self._buf = self.buffers.take()
        return self._buf

    def _send(self) -> None:
        """Hash the filled part of the current buffer and pass it to the compressor."""
        buf, n = self._buf, self._fill
        self._buf, self._fill = None, 0
        if buf is None:
            return
        if not n or self._error is not None:
            self.buffers.give(buf)
            if self._error is not None:
                raise LayerError(f"writing the layer failed: {self._error}") from self._error
            return
        with memoryview(buf) as view:
            self._diff.update(view[:n])
        self.uncompressed_size += n
        if self._worker is None and self._threads and self.uncompressed_size > THREAD_AFTER:
            self._queue = queue.SimpleQueue()
            self._worker = threading.Thread(target=self._work, name="layer-compress", daemon=True)
            self._worker.start()
        if self._queue is not None:
            self._queue.put((buf, n))
        else:
            self._compress(buf, n)

    # -- the consumer side (worker thread, or inline for small layers) ---------------------
    def _compress(self, buf: bytearray, n: int) -> None:
        """Compress the first ``n`` bytes of ``buf``, then give it back (the compressors keep
        no reference to their input: the gzip blocks are copies, zstd copies into its own)."""
        try:
            with memoryview(buf) as view:
                self._emit(self._compressor.compress(view[:n]))
        finally:
            self.buffers.give(buf)

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        self._blob.update(data)
        self.size += len(data)
        view = memoryview(data)
        while view:
            written = self._out.write(view)
            if written is None:  # a non-blocking raw stream that could not take it now
                raise LayerError("the layer output refused the write (non-blocking stream?)")
            view = view[written:]

    def _work(self) -> None:
        assert self._queue is not None
        while True:
            item = self._queue.get()
            if item is None:
                return
            buf, n = item
            if self._error is not None:
                self.buffers.give(buf)
                continue
            try:
                self._compress(buf, n)
            except BaseException as exc:  # noqa: BLE001 - reported to the producer on its next write
                self._error = exc

    def _stop_worker(self) -> None:
        if self._worker is not None:
            assert self._queue is not None
            self._queue.put(None)
            self._worker.join()
            self._worker = None
            self._queue = None

    # -- end ------------------------------------------------------------------------------
    def finish(self) -> tuple[str, int, str]:
        """Flush everything; return (digest of the blob, its size, diff_id)."""
        if self._finished:
            raise LayerError("the layer was already finished")
        self._send()
        self._stop_worker()
        if self._error is not None:
            raise LayerError(f"writing the layer failed: {self._error}") from self._error
        self._emit(self._compressor.flush())
        flush = getattr(self._out, "flush", None)
        if flush is not None:
            flush()
        self._finished = True
        return "sha256:" + self._blob.hexdigest(), self.size, "sha256:" + self._diff.hexdigest()

    def abort(self) -> None:
        """Stop the workers without finishing the blob (after an error)."""
        if self._buf is not None:
            self.buffers.give(self._buf)
            self._buf, self._fill = None, 0
        self._stop_worker()
        close = getattr(self._compressor, "close", None)
        if close is not None:
            close()  # the compressor's own threads
        self._finished = True
