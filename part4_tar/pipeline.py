"""One streaming pass from tar bytes to a compressed blob, with both digests.

::

    tar bytes ─► sha256 (diff_id) ─► compressor ─► sha256 + byte count (digest, size) ─► out

"The diff_id is the digest of the uncompressed tar"; the layer's ``digest`` and ``size`` are
those of the compressed bytes. Both are computed while the bytes pass, so there is never an
uncompressed copy on disk nor a whole file in memory.

On a multi-core machine the second half (compress, hash, write) runs in a worker thread, and
the compressor itself spreads a large layer over every core (gzip in blocks, :mod:`.pgzip`;
zstd's worker threads): hashlib, ISA-L and zstd release the GIL, so hashing the tar stream,
compressing it and hashing the blob run at once. Bounded queues keep memory flat.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from typing import BinaryIO

from .compression import make_compressor
from .errors import LayerError

#: writes smaller than this are gathered into one chunk (tar headers, small files)
GATHER = 1 << 20
#: a worker thread is started once this many bytes have passed (small layers stay single-threaded)
THREAD_AFTER = 8 << 20
#: chunks waiting for the worker (each up to the reader's chunk size, 4 MiB)
QUEUE_DEPTH = 4


class BlobPipeline:
    """``write(tar_bytes)`` ... ``finish()`` -> (digest, size, diff_id)."""

    def __init__(self, out: BinaryIO, compression: str, level: int | None = None, *, threads: bool = True) -> None:
        self._out = out
        self._compressor = make_compressor(compression, level, None if threads else 1)
        self._diff = hashlib.sha256()
        self._blob = hashlib.sha256()
        self.uncompressed_size = 0
        self.size = 0
        self._pending = bytearray()
        self._threads = threads
        self._queue: queue.Queue | None = None
        self._worker: threading.Thread | None = None
        self._error: BaseException | None = None
        self._finished = False

    # -- the producer side (caller's thread) ----------------------------------------------
    def write(self, data) -> int:
        """Add tar bytes. Large blocks pass as they are; small ones are gathered."""
        n = len(data)
        if n >= GATHER // 4:
            self._flush_pending()
            self._send(bytes(data) if not isinstance(data, bytes) else data)
        else:
            self._pending += data
            if len(self._pending) >= GATHER:
                self._flush_pending()
        return n

    def _flush_pending(self) -> None:
        if self._pending:
            chunk = bytes(self._pending)
            self._pending.clear()
            self._send(chunk)

    def _send(self, chunk: bytes) -> None:
        self._diff.update(chunk)
        self.uncompressed_size += len(chunk)
        if self._error is not None:
            raise LayerError(f"writing the layer failed: {self._error}") from self._error
        if self._worker is None and self._threads and self.uncompressed_size > THREAD_AFTER:
            self._queue = queue.Queue(maxsize=QUEUE_DEPTH)
            self._worker = threading.Thread(target=self._work, name="layer-compress", daemon=True)
            self._worker.start()
        if self._queue is not None:
            self._queue.put(chunk)
        else:
            self._compress(chunk)

    # -- the consumer side (worker thread, or inline for small layers) ---------------------
    def _compress(self, chunk: bytes) -> None:
        self._emit(self._compressor.compress(chunk))

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
            chunk = self._queue.get()
            if chunk is None:
                return
            if self._error is None:
                try:
                    self._compress(chunk)
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
        self._flush_pending()
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
        self._pending.clear()
        self._stop_worker()
        close = getattr(self._compressor, "close", None)
        if close is not None:
            close()  # the compressor's own threads
        self._finished = True
