"""The pipe deadlock the blog warns about, and why part 4's writer has a thread of its own.

The blog streams a layer through ``io.Pipe``: the tar writer writes into one end, the hasher
reads the other. "A PipeWriter blocks until its data has been consumed", so the writing must
run in a goroutine: a writer and a reader on one thread wait for each other forever. A Unix
pipe (``os.pipe``) is the same, with a buffer: a write blocks once the kernel's pipe buffer
(64 KiB by default, ``F_GETPIPE_SZ``) is full, and only a read on the other end frees it.

:func:`one_thread` shows the deadlock safely: it writes a layer's worth of bytes into a pipe
before reading any, and an interval timer interrupts the write that blocks (so it must run in
the main thread). :func:`writer_thread` does the same with the writer in a thread: the bytes
flow. Part 4's own pipeline (pipeline.py) never has a writer wait for a reader on its own
thread: the producer fills buffers from a fixed set and a worker thread compresses and hashes
them and gives them back, so each side only ever waits for the *other* thread.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import threading
import time

#: fcntl(2): the capacity of a pipe's buffer (Linux 2.6.35+)
F_GETPIPE_SZ = 1032
CHUNK = 4096


class _Blocked(Exception):
    pass


def pipe_capacity() -> int:
    """The buffer size of a new pipe on this kernel."""
    r, w = os.pipe()
    try:
        return fcntl.fcntl(w, F_GETPIPE_SZ)
    finally:
        os.close(r)
        os.close(w)


def one_thread(total: int = 1 << 20, timeout: float = 1.0) -> dict:
    """Write ``total`` bytes into a pipe, then read them, all on this thread.

    Returns ``{"written", "read", "blocked", "seconds"}``: the write blocks when the buffer is
    full and nothing ever reads, until the timer interrupts it after ``timeout`` seconds.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("one_thread() uses a timer signal: call it from the main thread")
    r, w = os.pipe()
    written = read = 0
    blocked = False

    def interrupt(_signum, _frame):
        raise _Blocked

    previous = signal.signal(signal.SIGALRM, interrupt)
    start = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            block = b"\0" * CHUNK
            while written < total:
                written += os.write(w, block[: total - written])  # blocks once the pipe is full
        except _Blocked:
            blocked = True
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        os.close(w)
        w = -1
        while chunk := os.read(r, 65536):  # what did make it into the pipe
            read += len(chunk)
    finally:
        signal.signal(signal.SIGALRM, previous)
        os.close(r)
        if w >= 0:
            os.close(w)
    return {"written": written, "read": read, "blocked": blocked, "seconds": time.monotonic() - start}


def writer_thread(total: int = 1 << 20) -> dict:
    """The same bytes with the writer in a thread of its own: ``{"read", "sha256", "seconds"}``."""
    r, w = os.pipe()
    error: list[BaseException] = []

    def write() -> None:
        try:
            block = b"\0" * CHUNK
            left = total
            while left:
                left -= os.write(w, block[:left])
        except BaseException as e:  # noqa: BLE001 - handed to the reader, as part 4's pipeline does
            error.append(e)
        finally:
            os.close(w)

    start = time.monotonic()
    thread = threading.Thread(target=write, name="tar-writer")
    thread.start()
    digest = hashlib.sha256()
    read = 0
    try:
        while chunk := os.read(r, 65536):
            digest.update(chunk)
            read += len(chunk)
    finally:
        os.close(r)
        thread.join()
    if error:
        raise error[0]
    return {"read": read, "sha256": "sha256:" + digest.hexdigest(), "seconds": time.monotonic() - start}
