"""How a command shows its transfers (pulls, pushes, a build's downloads and large COPYs).

A :class:`~capstone.download.TransferProgress` for each way of showing them:

* on a terminal (``auto``), :class:`BarView`: one rich progress bar per transfer (size, speed,
  time left), each kept when it ends with its outcome;
* off a terminal, or ``--progress plain``, :class:`LineView`: plain lines, stable enough for a
  log: one when a transfer ends, and one every ``$CAPSTONE_PROGRESS_INTERVAL`` seconds (default
  5) while a transfer runs::

      Copying blob 2a5e8f1b3c4d: 45.0 MiB of 512.0 MiB (8%)
      Copying blob 2a5e8f1b3c4d: done (512.0 MiB in 4.1 s)
      Copying blob 7c3b0d9e1f2a: skipped: already exists
      Copying blob 5d4c3b2a1f0e: mounted from another repository
      Copying blob 9e8d7c6b5a4f: failed after 12.0 MiB of 80.0 MiB

  (a transfer that fails before a byte moved has no line: the command's error says why);

* ``-q`` / ``--progress quiet``: the base class, which shows nothing.

Only the command line makes one (it owns the stream); the library reports into it.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO

OUTCOMES = {"exists": "skipped: already exists", "mounted": "mounted from another repository", "failed": "failed"}


class TransferProgress:
    """What a transfer reports while it runs, for a command to show (a bar on a terminal,
    lines in a log). The base class shows nothing: a quiet command, or a library call. It
    lives here, not beside the downloads, so that a build that transfers nothing imports no
    HTTP client to say so.

    ``key`` names one transfer (a blob digest, a URL); ``total`` is its size when known;
    ``outcome`` says how it ended: ``done``, ``exists`` (nothing to send or fetch),
    ``mounted`` (the registry took it from another repository), ``failed``. Methods are
    called from the transfers' threads."""

    def begin(self, key: str, label: str, total: int | None) -> None:
        pass

    def advance(self, key: str, amount: int) -> None:
        pass

    def end(self, key: str, outcome: str = "done") -> None:
        pass

    def note(self, text: str) -> None:
        pass


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get("CAPSTONE_PROGRESS_INTERVAL", "5")))
    except ValueError:
        return 5.0


class LineView(TransferProgress):
    """Plain lines into ``stream`` (see the module page). Thread-safe."""

    def __init__(self, stream: IO[str], *, interval: float | None = None) -> None:
        self.stream = stream
        self.interval = _interval() if interval is None else interval
        import threading  # a view's lock: a quiet build shows none

        self._lock = threading.Lock()
        self._state: dict[str, list] = {}  # key -> [label, total, done, started, last line]

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def begin(self, key: str, label: str, total: int | None) -> None:
        now = time.monotonic()
        with self._lock:
            self._state[key] = [label, total, 0, now, now]

    def advance(self, key: str, amount: int) -> None:
        with self._lock:
            state = self._state.get(key)
            if state is None:
                return
            state[2] += amount
            now = time.monotonic()
            if now - state[4] < self.interval:
                return
            state[4] = now
            label, total, done = state[0], state[1], state[2]
            shown = f"{human_bytes(done)} of {human_bytes(total)} ({100 * done // total}%)" if total else human_bytes(done)
            self._write(f"Copying {label}: {shown}")

    def end(self, key: str, outcome: str = "done") -> None:
        with self._lock:
            state = self._state.pop(key, None)
            if state is None:
                return
            label, total, done, started = state[:4]
            if outcome == "done":
                size = total if total is not None else done
                self._write(f"Copying {label}: done ({human_bytes(size)} in {time.monotonic() - started:.1f} s)")
            elif outcome == "failed":
                # the command's error line says why; a line per blob that never moved would only
                # repeat it (every blob fails at once on a refused login or an untrusted CA)
                if done:
                    of = f" of {human_bytes(total)}" if total else ""
                    self._write(f"Copying {label}: failed after {human_bytes(done)}{of}")
            else:
                self._write(f"Copying {label}: {OUTCOMES.get(outcome, outcome)}")

    def note(self, text: str) -> None:
        with self._lock:
            self._write(text)


class BarView(TransferProgress):
    """rich progress bars on the terminal ``stream``. The bars are live only while a transfer
    runs (the first begins: drawn; the last ends: left as they are), so a build's step lines
    and its RUN output, written between transfers, never break them. A context manager (the
    display is stopped on exit whatever happened). Thread-safe (rich's Progress is)."""

    def __init__(self, stream: IO[str]) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.console = Console(file=stream, highlight=False)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
                                 TransferSpeedColumn(), TimeRemainingColumn(), console=self.console)
        self._tasks: dict[str, int] = {}
        self._labels: dict[str, str] = {}
        import threading

        self._lock = threading.Lock()
        self._live = False

    def __enter__(self) -> "BarView":
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        if self._live:
            self.progress.stop()
            self._live = False
            for task in list(self.progress.task_ids):  # drawn for good: the next bars start anew
                self.progress.remove_task(task)

    def begin(self, key: str, label: str, total: int | None) -> None:
        with self._lock:
            if not self._live:
                self.progress.start()
                self._live = True
            self._labels[key] = label
            self._tasks[key] = self.progress.add_task(f"Copying {label}", total=total)

    def advance(self, key: str, amount: int) -> None:
        task = self._tasks.get(key)
        if task is not None:
            self.progress.advance(task, amount)

    def end(self, key: str, outcome: str = "done") -> None:
        with self._lock:
            task = self._tasks.pop(key, None)
            label = self._labels.pop(key, key)
        if task is None:
            return
        if outcome == "done":
            total = next((t.total for t in self.progress.tasks if t.id == task), None)
            self.progress.update(task, completed=total, description=f"Copying {label} done")
        elif outcome == "failed":
            self.progress.update(task, description=f"Copying {label} failed")
        else:  # nothing to send or fetch: the bar is full all the same
            total = next((t.total for t in self.progress.tasks if t.id == task), None)
            self.progress.update(task, completed=total, description=f"Copying {label} {OUTCOMES.get(outcome, outcome)}")
        self.progress.stop_task(task)
        with self._lock:
            if not self._tasks:
                self._stop()

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)


class _Quiet(TransferProgress):
    def __enter__(self) -> "_Quiet":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _Lines(LineView):
    def __enter__(self) -> "_Lines":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def transfer_view(mode: str = "auto", stream: IO[str] | None = None):
    """The view for ``--progress MODE`` (``auto``: bars on a terminal, else lines; ``plain``:
    lines; ``quiet``: nothing) on ``stream`` (default stderr): a context manager that is a
    :class:`~capstone.download.TransferProgress`."""
    stream = stream if stream is not None else sys.stderr
    if mode == "quiet":
        return _Quiet()
    on_terminal = hasattr(stream, "isatty") and stream.isatty() and os.environ.get("TERM") != "dumb"
    if mode == "auto" and on_terminal:
        return BarView(stream)
    return _Lines(stream)


__all__ = ["BarView", "LineView", "human_bytes", "transfer_view"]
