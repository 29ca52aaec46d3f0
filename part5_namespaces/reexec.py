"""The blog's re-exec pattern (``cmd/reexec``), in Python, and why Python can fork instead.

The blog's Go program has two subcommands. ``run CMD`` starts ``/proc/self/exe ns CMD`` (the
program itself, again) with ``SysProcAttr.Cloneflags = CLONE_NEWUTS``: the kernel clones the
child into a new UTS namespace and the child execs a fresh copy of the program. ``ns CMD``,
now inside, sets the hostname to ``inside-container`` and execs CMD.

Go needs the detour because a Go program is multi-threaded from its first instruction (the
scheduler and the garbage collector run threads), and both ways to change namespaces without
it fail there: ``unshare(CLONE_NEWUSER)`` refuses a process with more than one thread
(EINVAL), and ``fork()`` would copy only the calling thread of a runtime that needs the others.
So Go asks ``clone`` for the namespaces and runs its setup code in a freshly executed process.

A Python process has one thread until it starts one, so part 5 does it directly: ``spawn()``
forks (the child has one thread), unshares in the child, and runs the setup as Python code,
with no second interpreter start. :func:`run_reexec` does it the blog's way anyway, to compare:
the child is made by ``spawn`` in the new namespaces and re-executes this interpreter
(``/proc/self/exe``) as ``python -m part5_namespaces reexec ns -- CMD``. The same pattern is
how a runtime gets a clean PID 1: a fresh program has none of its parent's memory.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Sequence

from .errors import NamespaceError
from .idmap import current_user_mapping
from .process import spawn
from .run import call_in_namespaces
from .syscalls import CloneFlags, unshare

#: what the re-executed child names its UTS namespace (the blog's choice)
INSIDE_HOSTNAME = "inside-container"


def self_exe() -> str:
    """What ``/proc/self/exe`` points at: the program this process runs (the interpreter)."""
    return os.readlink("/proc/self/exe")


def reexec_argv(cmd: Sequence[str]) -> list[str]:
    """The argv the child re-executes: this interpreter, this package, the hidden ``ns``."""
    return [sys.executable, "-m", "part5_namespaces", "reexec", "ns", "--", *cmd]


def _flags_and_maps() -> tuple[CloneFlags, dict]:
    if os.geteuid() == 0:
        return CloneFlags.NEWUTS, {}
    uid_maps, gid_maps = current_user_mapping()  # an ordinary user: a user namespace first
    return CloneFlags.NEWUSER | CloneFlags.NEWUTS, {"uid_maps": uid_maps, "gid_maps": gid_maps}


def run_reexec(cmd: Sequence[str]) -> tuple[int, str]:
    """``run CMD``: a child in a new UTS namespace re-executes ``/proc/self/exe`` as ``ns CMD``.

    Returns (exit code, what it printed on stdout and stderr)."""
    out_r, out_w = os.pipe()
    argv = reexec_argv(cmd)

    def child() -> int:
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        os.execv("/proc/self/exe", argv)  # never returns: the fresh program runs `ns`
        return 127

    flags, maps = _flags_and_maps()
    try:
        process = spawn(child, flags, **maps)
    finally:
        os.close(out_w)
    with os.fdopen(out_r, "rb") as f:
        output = f.read().decode(errors="replace")
    return process.wait(), output


def ns_exec(cmd: Sequence[str]) -> None:
    """``ns CMD``, in the re-executed child: set the hostname, then become CMD. Never returns."""
    if not cmd:
        raise NamespaceError(22, "reexec ns: a command is needed after --")
    socket.sethostname(INSIDE_HOSTNAME)
    os.execvp(cmd[0], list(cmd))


def _unshare_user_with_threads(threads: int) -> str:
    """Start ``threads`` extra threads, then try unshare(CLONE_NEWUSER): "ok" or the error."""
    stop = threading.Event()
    started = [threading.Thread(target=stop.wait, daemon=True) for _ in range(threads)]
    for t in started:
        t.start()
    try:
        unshare(CloneFlags.NEWUSER)
        return "ok"
    except OSError as e:
        return f"{os.strerror(e.errno)} (errno {e.errno})"
    finally:
        stop.set()


def threads_and_unshare() -> dict[int, str]:
    """unshare(CLONE_NEWUSER) in a process with 1 thread and with 2, each in a child of its own."""
    return {1 + extra: call_in_namespaces(lambda extra=extra: _unshare_user_with_threads(extra), 0) for extra in (0, 1)}


def startup_costs(repeat: int = 5) -> dict[str, float]:
    """Seconds for a child in a new namespace that runs ``true``: forked (spawn, then exec) and
    re-executed (a fresh interpreter first, then exec); the best of ``repeat`` runs each."""
    flags, maps = _flags_and_maps()

    def fork_way() -> None:
        spawn(lambda: os.execvp("true", ["true"]), flags, **maps).wait()

    def reexec_way() -> None:
        run_reexec(["true"])

    costs = {}
    for name, way in (("fork", fork_way), ("re-exec", reexec_way)):
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            way()
            best = min(best, time.perf_counter() - start)
        costs[name] = best
    return costs
