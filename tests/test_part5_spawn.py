"""spawn(): exit codes, signal deaths as 128+N, PID 1, signal forwarding, setup errors named.

Everything runs for real in child processes; the test process itself never unshares.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from part5_namespaces import Child, CloneFlags, IdMap, IdMapError, NamespaceError, call_in_namespaces, spawn

F = CloneFlags


def _wait_for_line(fd: int) -> str:
    """Read one line from a pipe (the child's "ready" message)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1024)
        assert chunk, "child closed the pipe before it was ready"
        data += chunk
    return data.decode().strip()


@pytest.mark.parametrize("flags", [CloneFlags(0), F.NEWUTS, F.NEWPID, F.NEWUSER | F.NEWPID])
def test_return_value_is_the_exit_code(flags):
    assert spawn(lambda: 7, flags).wait() == 7


def test_none_means_success_and_systemexit_is_honoured():
    assert spawn(lambda: None, F.NEWPID).wait() == 0
    assert spawn(lambda: (_ for _ in ()).throw(SystemExit(3)), F.NEWUTS).wait() == 3


def test_exception_in_target_exits_1_with_one_line_on_stderr(capfd):
    def boom():
        raise RuntimeError("the target failed")

    assert spawn(boom, F.NEWPID).wait() == 1
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if "the target failed" in line]
    assert len(lines) == 1 and lines[0].startswith("spawn target: RuntimeError: the target failed")


def test_signal_death_without_pid_namespace_is_128_plus_n():
    assert spawn(lambda: os.kill(os.getpid(), signal.SIGKILL), F.NEWUTS).wait() == 128 + signal.SIGKILL
    assert spawn(lambda: os.kill(os.getpid(), signal.SIGUSR1), CloneFlags(0)).wait() == 128 + signal.SIGUSR1


def test_target_is_pid_1_of_a_new_pid_namespace():
    def where() -> tuple[int, int, str]:
        return os.getpid(), os.getppid(), os.readlink("/proc/self/ns/pid")

    pid, ppid, ns = call_in_namespaces(where, F.NEWPID)
    assert (pid, ppid) == (1, 0)  # the parent (the middle process) is outside the namespace
    assert ns != os.readlink("/proc/self/ns/pid")


def test_pid_namespace_applies_to_children_only():
    # a process that unshares NEWPID itself stays where it was; its next child is PID 1
    def unshare_then_fork() -> tuple[bool, bool, int]:
        from part5_namespaces import unshare

        pid, ns = os.getpid(), os.readlink("/proc/self/ns/pid")
        unshare(F.NEWPID)
        same = (os.getpid() == pid, os.readlink("/proc/self/ns/pid") == ns)
        child = os.fork()
        if child == 0:
            os._exit(0 if os.getpid() == 1 else 1)
        _, status = os.waitpid(child, 0)
        return (*same, os.waitstatus_to_exitcode(status))

    assert call_in_namespaces(unshare_then_fork, CloneFlags(0)) == (True, True, 0)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT])
def test_signals_are_forwarded_to_pid_1(sig):
    ready_r, ready_w = os.pipe()

    def wait_forever():
        os.write(ready_w, b"ready\n")
        while True:
            time.sleep(10)

    with spawn(wait_forever, F.NEWPID | F.NEWUTS) as child:
        os.close(ready_w)
        assert _wait_for_line(ready_r) == "ready"
        child.send_signal(sig)
        assert child.wait() == 128 + sig
    os.close(ready_r)


def test_sigkill_of_the_middle_process_takes_pid_1_with_it():
    ready_r, ready_w = os.pipe()

    def report_host_pid_and_wait():
        nspid = next(row for row in Path("/proc/self/status").read_text().splitlines() if row.startswith("NSpid:"))
        os.write(ready_w, f"{nspid.split()[1]}\n".encode())
        while True:
            time.sleep(10)

    child = spawn(report_host_pid_and_wait, F.NEWPID)
    os.close(ready_w)
    host_pid = int(_wait_for_line(ready_r))
    os.close(ready_r)
    assert host_pid != child.pid
    child.send_signal(signal.SIGKILL)
    assert child.wait() == 128 + signal.SIGKILL
    # PR_SET_PDEATHSIG kills PID 1 when the middle process dies; give the host's init a
    # moment to reap it (the deadline is generous: this checks that, not how fast)
    deadline = time.monotonic() + 20
    while Path(f"/proc/{host_pid}").exists() and time.monotonic() < deadline:
        status = Path(f"/proc/{host_pid}/status").read_text() if Path(f"/proc/{host_pid}").exists() else ""
        if "State:\tZ" in status:
            break
        time.sleep(0.05)
    assert not Path(f"/proc/{host_pid}").exists() or "State:\tZ" in Path(f"/proc/{host_pid}/status").read_text()


def test_child_wait_is_idempotent_and_poll_reports_the_end():
    child = spawn(lambda: 5, F.NEWUTS)
    assert isinstance(child, Child)
    assert child.wait() == 5
    assert child.wait() == 5 and child.poll() == 5
    assert "exit 5" in repr(child)


def test_unshare_failure_is_raised_by_spawn_naming_the_call():
    # 0x1 is part of CSIGNAL, not an unshare(2) flag: the kernel answers EINVAL
    with pytest.raises(NamespaceError) as info:
        spawn(lambda: 0, CloneFlags(0x1) | F.NEWUTS)
    assert info.value.errno == errno.EINVAL
    assert "unshare(" in str(info.value) and "NEWUTS" in str(info.value)
    assert "Invalid argument" in str(info.value)


def test_a_bad_id_map_is_raised_by_spawn_naming_the_file():
    overlapping = [IdMap(0, 100000, 10), IdMap(5, 200000, 10)]
    with pytest.raises(IdMapError) as info:
        spawn(lambda: 0, F.NEWUSER, uid_maps=overlapping, gid_maps=overlapping)
    assert info.value.errno == errno.EINVAL
    assert "/uid_map" in str(info.value) and "spawn: id maps of pid" in str(info.value)


def test_maps_without_a_user_namespace_are_refused():
    with pytest.raises(ValueError, match="NEWUSER"):
        spawn(lambda: 0, F.NEWUTS, uid_maps=[IdMap(0, 0, 1)])


def test_an_exception_in_a_called_function_comes_back_named():
    def fails():
        raise LookupError("nothing here")

    with pytest.raises(NamespaceError, match=r"fails in namespaces NEWUTS: LookupError: nothing here"):
        call_in_namespaces(fails, F.NEWUTS)


def test_the_caller_is_never_moved():
    before = {name: os.readlink(f"/proc/self/ns/{name}") for name in ("uts", "pid", "mnt", "net", "ipc", "user", "cgroup")}
    hostname = socket.gethostname()
    everything = F.NEWUSER | F.NEWPID | F.NEWNS | F.NEWUTS | F.NEWIPC | F.NEWNET | F.NEWCGROUP
    maps = [IdMap(0, 0, 65536)]

    def rename():
        socket.sethostname("moved")
        return 0

    assert spawn(rename, everything, uid_maps=maps, gid_maps=maps).wait() == 0
    after = {name: os.readlink(f"/proc/self/ns/{name}") for name in before}
    assert after == before and socket.gethostname() == hostname


def test_target_pid_is_the_host_pid_of_pid_1():
    ready_r, ready_w = os.pipe()

    def report():
        nspid = next(row for row in Path("/proc/self/status").read_text().splitlines() if row.startswith("NSpid:"))
        os.write(ready_w, f"{nspid.split()[1]}\n".encode())
        return 0

    child = spawn(report, F.NEWPID)
    os.close(ready_w)
    assert int(_wait_for_line(ready_r)) == child.target_pid != child.pid
    os.close(ready_r)
    assert child.wait() == 0
    plain = spawn(lambda: 0, F.NEWUTS)
    assert plain.target_pid == plain.pid and plain.wait() == 0


def test_before_release_runs_after_unshare_and_before_the_target():
    seen = {}
    note_r, note_w = os.pipe()

    def hook(pid: int) -> None:
        # the child is already in its new namespaces, and its maps are written
        seen["uts"] = os.readlink(f"/proc/{pid}/ns/uts")
        seen["uid_map"] = Path(f"/proc/{pid}/uid_map").read_text().split()
        os.write(note_w, b"released")

    def target():
        os.set_blocking(note_r, False)  # the hook's note is already there, or this raises
        return 0 if os.read(note_r, 8) == b"released" else 9

    child = spawn(target, F.NEWUSER | F.NEWUTS, uid_maps=[IdMap(0, 0, 1)], gid_maps=[IdMap(0, 0, 1)], before_release=hook)
    assert child.wait() == 0
    assert seen["uts"] != os.readlink("/proc/self/ns/uts") and seen["uid_map"] == ["0", "0", "1"]
    os.close(note_r)
    os.close(note_w)


def test_a_failing_before_release_kills_the_child_and_propagates():
    pids = []

    def hook(pid: int) -> None:
        pids.append(pid)
        raise RuntimeError("cgroup setup failed")

    with pytest.raises(RuntimeError, match="cgroup setup failed"):
        spawn(lambda: time.sleep(60), F.NEWPID, before_release=hook)
    with pytest.raises(ChildProcessError):
        os.waitpid(pids[0], os.WNOHANG)  # already reaped
