"""Each namespace really isolates: observed from inside (a child) and from outside (the test).

The demonstrations of the chapter return their evidence as data; these tests assert on it and
add direct checks of the syscall bindings (setns, pivot_root, umount2) in child processes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import mount_points_under, use_own_tempdir

from part5_namespaces import (
    CloneFlags,
    IdMap,
    MountFlags,
    UmountFlags,
    call_in_namespaces,
    mount,
    pivot_root,
    setns,
    spawn,
    syscalls,
    umount2,
)
from part5_namespaces.demos import (
    DEMO_HOSTNAME,
    demo_cgroup,
    demo_ipc,
    demo_mount,
    demo_net,
    demo_pid,
    demo_uts,
    ns_id,
)

F = CloneFlags


def test_uts_hostname_changes_only_inside():
    before = socket.gethostname()
    result = demo_uts()
    assert result.isolated
    assert result.row("hostname") == (before, DEMO_HOSTNAME)
    assert socket.gethostname() == before


def test_pid_namespace_child_sees_itself_as_pid_1_and_nothing_else():
    result = demo_pid()
    assert result.isolated
    host_pid, inside_pid = result.row("my pid (getpid)")
    assert inside_pid == "1" and host_pid == str(os.getpid())
    assert result.row("parent pid (getppid)")[1] == "0"
    assert result.row("processes in /proc")[1] == "1"
    assert int(result.row("processes in /proc")[0]) > 1
    # NSpid of the child, read before its new /proc: its host pid, then 1
    host_view, inside_one = result.row("NSpid (host ... inside)")[1].split()
    assert inside_one == "1" and int(host_view) != 1


def test_mount_made_inside_does_not_reach_the_host(tmp_path, monkeypatch):
    # the demo mounts in a directory of its temporary directory: this test's own, so the host's
    # mount table is looked at there only (other work on the host mounts elsewhere at any time)
    tmp = use_own_tempdir(monkeypatch, tmp_path / "tmp")
    result = demo_mount()
    assert result.isolated
    where = next(label for label, *_ in result.rows if label.startswith(f"{tmp}/"))
    host, inside = result.row(where)
    assert host == "(not a mount point)" and inside.startswith("tmpfs on ")
    assert result.row(f"ls {where}") == ("(empty)", "only-in-the-mount-namespace")
    assert mount_points_under(tmp) == []
    assert not Path(where).exists()  # the demo cleaned up


def test_network_namespace_has_only_a_loopback_that_is_down():
    result = demo_net()
    assert result.isolated
    host, inside = result.row("interfaces (/proc/self/net/dev)")
    assert inside == "lo" and "lo" in host.split() and len(host.split()) > 1
    assert result.row("link states (ip -o link)")[1] == "lo:DOWN"


def test_ipc_objects_of_the_host_are_invisible_inside():
    result = demo_ipc()
    assert result.isolated
    host_queues, inside_queues = result.row("message queues")
    assert inside_queues == "(none)" and host_queues != "(none)"
    assert result.row("shared memory")[1] == "(none)"
    key = next(label for label, *_ in result.rows if label.startswith("msgget("))
    host, inside = result.row(key)
    assert host.startswith("queue id") and inside == "No such file or directory"
    # removed afterwards (/proc/sysvipc lists keys in decimal)
    key_hex = key.split("(")[1].split(",")[0]
    assert str(int(key_hex, 16)) not in [row.split()[0] for row in Path("/proc/sysvipc/msg").read_text().splitlines()[1:]]


def test_cgroup_namespace_makes_the_current_group_the_root():
    result = demo_cgroup()
    assert result.isolated
    host, inside = result.row("/proc/self/cgroup")
    assert host.startswith("0::/") and host.endswith(f"part5-demo-{os.getpid()}")
    assert inside == "0::/"


def test_every_namespace_of_a_child_with_all_flags_differs_from_the_hosts():
    names = ("uts", "ipc", "net", "mnt", "cgroup", "user")
    everything = F.NEWUSER | F.NEWPID | F.NEWNS | F.NEWUTS | F.NEWIPC | F.NEWNET | F.NEWCGROUP
    maps = [IdMap(0, 100000, 65536)]  # root on the host may map any range directly

    def look():
        return {name: ns_id(name) for name in names + ("pid",)}, os.getpid(), os.getuid()

    inside, pid, uid = call_in_namespaces(look, everything, uid_maps=maps, gid_maps=maps)
    assert all(inside[name] != ns_id(name) for name in names + ("pid",))
    assert (pid, uid) == (1, 0)


def test_setns_joins_the_namespace_of_a_running_child():
    ready_r, ready_w = os.pipe()

    def hold_uts():
        socket.sethostname("joined-by-setns")
        os.write(ready_w, b"ready\n")
        time.sleep(60)

    with spawn(hold_uts, F.NEWUTS) as holder:
        os.close(ready_w)
        assert os.read(ready_r, 6) == b"ready\n"

        def join() -> tuple[str, str]:
            fd = os.open(f"/proc/{holder.pid}/ns/uts", os.O_RDONLY)
            setns(fd, F.NEWUTS)
            os.close(fd)
            return socket.gethostname(), ns_id("uts")

        hostname, ns = call_in_namespaces(join, CloneFlags(0))
        assert hostname == "joined-by-setns"
        assert ns == ns_id("uts", holder.pid) != ns_id("uts")
    os.close(ready_r)


def test_setns_with_the_wrong_type_is_an_oserror_naming_the_call():
    def wrong():
        fd = os.open("/proc/self/ns/uts", os.O_RDONLY)
        setns(fd, F.NEWNET)

    with pytest.raises(OSError, match=r"setns\(NEWNET\): Invalid argument"):
        call_in_namespaces(wrong, CloneFlags(0))


def test_pivot_root_in_a_mount_namespace(tmp_path):
    new_root = tmp_path / "root"
    new_root.mkdir()

    def pivot() -> tuple[list[str], bool]:
        mount(None, "/", None, MountFlags.REC | MountFlags.PRIVATE)
        mount("tmpfs", new_root, "tmpfs", 0, "size=1m")
        (new_root / "old").mkdir()
        (new_root / "marker").write_text("new root\n")
        pivot_root(new_root, new_root / "old")
        os.chdir("/")
        umount2("/old", UmountFlags.DETACH)
        return sorted(os.listdir("/")), os.path.exists("/old/proc/self")

    listing, old_still_there = call_in_namespaces(pivot, F.NEWNS)
    assert listing == ["marker", "old"] and not old_still_there
    assert list(new_root.iterdir()) == []  # the tmpfs existed only in the child's namespace


def test_mount_errors_name_the_target(tmp_path):
    missing = tmp_path / "missing"

    def bad_mount():
        mount("tmpfs", missing, "tmpfs")

    with pytest.raises(OSError, match=rf"mount tmpfs.*No such file or directory: {missing}"):
        call_in_namespaces(bad_mount, F.NEWNS)


def test_unshare_in_a_multithreaded_process_is_refused_for_a_user_namespace():
    # the reason spawn() unshares right after fork: a process with threads cannot
    def with_a_thread():
        import threading

        stop = threading.Event()
        t = threading.Thread(target=stop.wait)
        t.start()
        try:
            syscalls.unshare(F.NEWUSER)
        finally:
            stop.set()
            t.join()

    with pytest.raises(OSError, match=r"unshare\(NEWUSER\): Invalid argument"):
        call_in_namespaces(with_a_thread, CloneFlags(0))


def test_chapter_script_runs_every_demonstration():
    r = subprocess.run(
        [sys.executable, "-m", "part5_namespaces", "all"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("isolated: yes") == 7
    for label in ("UTS namespace", "PID namespace", "mount namespace", "network namespace", "IPC namespace",
                  "user namespace", "cgroup namespace", "/proc/self/uid_map", "single mapping"):
        assert label in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


def test_chapter_script_refuses_an_unknown_namespace():
    r = subprocess.run([sys.executable, "-m", "part5_namespaces", "time"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_pivot_root_has_a_syscall_number_per_architecture(monkeypatch):
    # linux: arch/x86/entry/syscalls/syscall_64.tbl (155), include/uapi/asm-generic/unistd.h (41)
    import platform

    for machine, number in (("x86_64", 155), ("aarch64", 41)):
        monkeypatch.setattr(platform, "machine", lambda m=machine: m)
        assert syscalls.syscall_number("pivot_root") == number
    monkeypatch.setattr(platform, "machine", lambda: "riscv64")
    with pytest.raises(OSError, match="no syscall number for pivot_root on riscv64") as e:
        syscalls.syscall_number("pivot_root")
    assert e.value.errno == 38  # ENOSYS
