"""forward_signals(): the handlers that pass signals on to a child (spawn's middle process,
part 6's --init), tested on real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO, Terminal

from part5_namespaces import forward_signals


@pytest.fixture
def sleeper():
    child = subprocess.Popen(["sleep", "30"])
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM])
def test_a_signal_to_this_process_reaches_the_child_as_the_same_signal(sleeper, sig):
    restore = forward_signals(sleeper.pid, [signal.SIGUSR1, signal.SIGTERM])
    try:
        signal.raise_signal(sig)
        assert sleeper.wait(timeout=10) == -sig
    finally:
        restore()


def test_signals_not_in_the_list_are_left_alone(sleeper):
    before = signal.getsignal(signal.SIGUSR2)
    restore = forward_signals(sleeper.pid, [signal.SIGUSR1])
    try:
        assert signal.getsignal(signal.SIGUSR2) is before
        assert sleeper.poll() is None
    finally:
        restore()


def test_restore_puts_the_previous_handlers_back(sleeper):
    seen = []

    def mine(signum, _frame):
        seen.append(signum)

    old1 = signal.signal(signal.SIGUSR1, mine)
    old2 = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        restore = forward_signals(sleeper.pid, (signal.SIGUSR1, signal.SIGUSR2))
        assert signal.getsignal(signal.SIGUSR1) is not mine
        assert signal.getsignal(signal.SIGUSR2) is not signal.SIG_IGN
        restore()
        assert signal.getsignal(signal.SIGUSR1) is mine
        assert signal.getsignal(signal.SIGUSR2) is signal.SIG_IGN
        signal.raise_signal(signal.SIGUSR1)
        assert seen == [signal.SIGUSR1]
        assert sleeper.poll() is None  # nothing was forwarded after restore()
    finally:
        signal.signal(signal.SIGUSR1, old1)
        signal.signal(signal.SIGUSR2, old2)


def test_a_child_that_is_gone_is_ignored():
    # pids are below pid_max: no process can have this one
    gone = int(Path("/proc/sys/kernel/pid_max").read_text())
    restore = forward_signals(gone, [signal.SIGUSR1])
    try:
        signal.raise_signal(signal.SIGUSR1)  # no ProcessLookupError escapes the handler
    finally:
        restore()


#: a parent that forwards SIGINT to a child of its own process group (``same_group=True``); the
#: child says who sent each SIGINT it got within 2 s of "ready" (0: the kernel, for a terminal)
SENDERS = r"""
import os, signal, sys
from part5_namespaces import forward_signals
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])  # the child takes them one by one
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(w, b"r")
    senders = []
    while (info := signal.sigtimedwait([signal.SIGINT], 2)) is not None:
        senders.append("us" if info.si_pid == os.getppid() else str(info.si_pid))
    os.write(w, (" ".join(senders) or "none").encode())
    os._exit(0)
assert os.read(r, 1) == b"r"
restore = forward_signals(pid, [signal.SIGINT], same_group=True)
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
print("ready", flush=True)
os.waitpid(pid, 0)
print("senders:", os.read(r, 100).decode(), flush=True)
"""


def test_a_child_of_the_same_group_gets_a_terminals_ctrl_c_once_from_the_terminal():
    """A terminal sends ^C to its whole foreground group: with ``same_group`` the child gets it
    from the terminal alone, never a second time from us."""
    term = Terminal([sys.executable, "-c", SENDERS], env={**os.environ, "PYTHONPATH": str(REPO)})
    assert b"ready" in term.read_until(b"ready", 30)
    term.type(b"\x03")
    assert term.wait(30) == 0, term.seen
    assert b"senders: 0\r\n" in term.seen, term.seen


def test_without_a_terminal_same_group_still_passes_sigint_on():
    proc = subprocess.Popen([sys.executable, "-c", SENDERS], env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGINT)
        assert proc.stdout.read() == "senders: us\n"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
