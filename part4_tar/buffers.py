"""A fixed set of byte buffers that go round a pipeline: what keeps a layer's memory flat.

A stage that needs room takes a buffer, fills it in place (``readv`` straight from a file, or
a copy of small pieces), hands it on, and the stage that is done with it gives it back. So a
layer of 4 GiB passes through the same few buffers as one of 64 MiB: the number alive is fixed
by the pool, never by how far a fast reader runs ahead of a slow compressor, and the same pages
are used again (no page faults for fresh memory, no freed megabytes of every size for the
allocator to keep in each thread's arena).
"""

from __future__ import annotations

import threading


class BufferPool:
    """At most ``count`` buffers of ``size`` bytes. :meth:`take` makes one while fewer than
    ``count`` exist, else waits until another thread gives one back; :meth:`give` returns it.
    ``made`` is how many were ever made (at most ``count``)."""

    def __init__(self, size: int, count: int) -> None:
        if size < 1 or count < 1:
            raise ValueError("a buffer pool needs a size and a count of at least 1")
        self.size = size
        self.count = count
        self.made = 0
        self._free: list[bytearray] = []
        self._cond = threading.Condition(threading.Lock())

    def take(self) -> bytearray:
        with self._cond:
            while not self._free:
                if self.made < self.count:
                    self.made += 1
                    return bytearray(self.size)
                self._cond.wait()
            return self._free.pop()

    def give(self, buf: bytearray) -> None:
        with self._cond:
            self._free.append(buf)
            self._cond.notify()
