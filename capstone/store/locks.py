"""The store's two locks: ``STORE/lock``, which writers hold exclusively, and ``STORE/gc.lock``,
which builds and runs hold shared for their whole length so that ``prune`` (exclusive) waits
until nothing uses the blobs and snapshots it would remove."""

from __future__ import annotations

import _thread  # threading's RLock is this one: the module itself is not needed to make it
import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class StoreLocks:
    """The locks of the store at ``path``; each re-entrant within this object (and its threads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mutex = _thread.RLock()
        self._lock_fd: int | None = None
        self._lock_depth = 0
        self._session_fd: int | None = None
        self._session_depth = 0

    def _flock(self, name: str, operation: int) -> int:
        """An fd of ``STORE/name`` (created if missing) holding ``flock(operation)``."""
        fd = os.open(self.path / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, operation)
        except BaseException:
            os.close(fd)
            raise
        return fd

    @contextlib.contextmanager
    def writer(self) -> Iterator[None]:
        """Exclusive writer lock (``STORE/lock``)."""
        with self._mutex:
            if self._lock_depth == 0:
                self._lock_fd = self._flock("lock", fcntl.LOCK_EX)
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0:
                    os.close(self._lock_fd)
                    self._lock_fd = None

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Shared ``gc.lock``, held by a build or a run for its whole length."""
        with self._mutex:
            if self._session_depth == 0:
                self._session_fd = self._flock("gc.lock", fcntl.LOCK_SH)
            self._session_depth += 1
        try:
            yield
        finally:
            with self._mutex:
                self._session_depth -= 1
                if self._session_depth == 0:
                    os.close(self._session_fd)
                    self._session_fd = None

    @contextlib.contextmanager
    def exclusive_session(self) -> Iterator[None]:
        """Exclusive ``gc.lock`` (``prune``): waits for every other process's session."""
        with self._mutex:
            if self._session_depth:
                # upgrade our own shared lock (waits for other processes' sessions)
                fcntl.flock(self._session_fd, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(self._session_fd, fcntl.LOCK_SH)
                return
            fd = self._flock("gc.lock", fcntl.LOCK_EX)
            try:
                yield
            finally:
                os.close(fd)
