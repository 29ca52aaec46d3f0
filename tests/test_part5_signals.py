"""forward_signals(): the handlers that pass signals on to a child (spawn's middle process,
part 6's --init), tested on real processes."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

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
