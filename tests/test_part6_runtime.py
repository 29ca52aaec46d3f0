"""Part 6: what a container run by ``part6_runtime.run`` observes, checked from inside it."""

from __future__ import annotations

import http.server
import os
import resource
import shutil
import signal
import tempfile
import threading
from pathlib import Path

import pytest

from part5_namespaces import IdMap
from part6_runtime import ContainerSpec, Limits, Mount, RuntimeSetupError, SpecError, make_busybox_rootfs, run
from part6_runtime.cgroups import CGROUP_ROOT

DOCKER_CAP_EFF = 0x00000000A80425FB


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory) -> Path:
    return make_busybox_rootfs(tmp_path_factory.mktemp("part6") / "rootfs")


def sh(rootfs: Path, script: str, *, stdin=None, **kw) -> tuple[int, str]:
    """Run ``sh -c script`` in a container; (exit code, stdout+stderr)."""
    r, w = os.pipe()
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(r, 65536), b"")))
    reader.start()
    try:
        code = run(
            ContainerSpec(rootfs=str(rootfs), args=("sh", "-c", script), **kw),
            stdin=stdin if stdin is not None else _devnull(),
            stdout=w,
            stderr=w,
        )
    finally:
        os.close(w)
        reader.join()
        os.close(r)
    return code, b"".join(chunks).decode()


_null: list[int] = []


def _devnull() -> int:
    if not _null:
        _null.append(os.open(os.devnull, os.O_RDONLY))
    return _null[0]


def status_field(text: str, name: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(name + ":"))


# -- namespaces ------------------------------------------------------------------------------


def test_command_is_pid_1(rootfs):
    assert sh(rootfs, "echo $$") == (0, "1\n")


def test_hostname_is_the_one_in_the_spec(rootfs):
    assert sh(rootfs, "hostname; cat /etc/hostname", hostname="box1") == (0, "box1\nbox1\n")


def test_only_its_own_processes_are_visible(rootfs):
    code, out = sh(rootfs, "ls /proc | grep '^[0-9]*$' | sort -n | tr '\\n' ' '")
    pids = [int(p) for p in out.split()]
    assert code == 0 and pids[0] == 1 and max(pids) < 10, out


def test_mount_table_is_the_containers_own(rootfs):
    code, out = sh(rootfs, "cat /proc/self/mountinfo")
    points = {line.split()[4] for line in out.splitlines()}
    assert {"/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup", "/etc/hosts"} <= points
    # nothing of the host's mount table shows through, and the root is the rootfs
    assert not any(p.startswith(("/tmp/", "/work")) for p in points), points
    root_line = next(line for line in out.splitlines() if line.split()[4] == "/")
    # field 4 is the root of the mount inside its file system: the rootfs's whole path when it
    # lives on /, the part below the mount point when /tmp is a file system of its own (tmpfs)
    mount_root = root_line.split()[3]
    assert mount_root != "/" and str(rootfs).endswith(mount_root), (mount_root, rootfs)
    # /sys/fs/cgroup holds the container's own cgroups, read-only, each the root of its namespace
    groups = [line.split() for line in out.splitlines() if line.split()[4].startswith("/sys/fs/cgroup/")]
    assert groups and all(g[3] == "/" and g[5].startswith("ro,") for g in groups), groups


def test_network_none_has_only_loopback_and_it_is_up(rootfs):
    code, out = sh(rootfs, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; ip -o link show lo")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "lo" and lines[1].startswith("1: lo:"), out
    assert "UP" in lines[1].split("<")[1].split(">")[0].split(","), out


def test_uid_map_is_the_identity_without_a_user_namespace(rootfs):
    code, out = sh(rootfs, "cat /proc/self/uid_map")
    assert out.split() == ["0", "0", "4294967295"]


@pytest.fixture(scope="module")
def world_readable_rootfs():
    """A rootfs whose every parent directory a subordinate uid may traverse (pytest's
    tmp dirs are 0700: the container's root, host uid 200000, could not reach them)."""
    top = tempfile.mkdtemp(prefix="part6-userns-")
    os.chmod(top, 0o755)
    try:
        yield make_busybox_rootfs(os.path.join(top, "rootfs"))
    finally:
        shutil.rmtree(top)


def test_user_namespace_maps_container_root_to_a_host_range(world_readable_rootfs):
    maps = (IdMap(0, 200000, 65536),)
    code, out = sh(world_readable_rootfs, "cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c %U /", uid_maps=maps, gid_maps=maps)
    lines = out.splitlines()
    assert code == 0, out
    assert lines[0].split() == lines[1].split() == ["0", "200000", "65536"]
    assert lines[2] == "0"
    assert lines[3] == "nobody"  # the rootfs belongs to host root, which is unmapped inside


# -- privileges ------------------------------------------------------------------------------


def test_capabilities_are_dockers_default_set(rootfs):
    code, status = sh(rootfs, "cat /proc/self/status")
    assert int(status_field(status, "CapEff"), 16) == DOCKER_CAP_EFF
    assert int(status_field(status, "CapBnd"), 16) == DOCKER_CAP_EFF
    assert int(status_field(status, "CapPrm"), 16) == DOCKER_CAP_EFF
    assert int(status_field(status, "CapInh"), 16) == 0
    assert int(status_field(status, "CapAmb"), 16) == 0
    assert status_field(status, "NoNewPrivs") == "1"
    assert status_field(status, "Seccomp") == "2"  # filter mode


def test_seccomp_policy_allows_only_dockers_personalities(rootfs):
    # personality(ADDR_NO_RANDOMIZE) needs no capability: only the filter refuses it
    script = "linux64 -R true 2>&1; echo rc=$?"
    code, filtered = sh(rootfs, script)
    code, unfiltered = sh(rootfs, script, seccomp=False)
    assert "personality(0x40000): Operation not permitted" in filtered and "rc=1" in filtered
    assert unfiltered == "rc=0\n"


def test_named_user_gets_its_groups_home_and_no_capabilities(rootfs):
    code, out = sh(rootfs, "id; echo $HOME; grep CapEff /proc/self/status", user="alice")
    lines = out.splitlines()
    assert lines[0] == "uid=1000(alice) gid=1000(alice) groups=10(wheel),29(audio)", out
    assert lines[1] == "/home/alice"
    assert int(lines[2].split()[1], 16) == 0


def test_numeric_user_and_group(rootfs):
    assert sh(rootfs, "id -u; id -g", user="4242:4343") == (0, "4242\n4343\n")


def test_unknown_user_name_is_a_spec_error(rootfs):
    with pytest.raises(SpecError, match="no-such-user"):
        sh(rootfs, "true", user="no-such-user")


# -- filesystems -----------------------------------------------------------------------------


def test_masked_proc_paths(rootfs):
    code, out = sh(rootfs, "wc -c < /proc/timer_list; wc -c < /proc/keys; ls /sys/firmware | wc -l; test -e /proc/kcore; echo kcore=$?")
    assert out.split() == ["0", "0", "0", "kcore=1"], out


def test_proc_sys_is_read_only(rootfs):
    code, out = sh(rootfs, "echo other > /proc/sys/kernel/hostname; cat /proc/sys/kernel/ostype")
    assert "Read-only file system" in out and "Linux" in out, out


def test_dev_has_the_standard_nodes(rootfs):
    code, out = sh(rootfs, "ls /dev | tr '\\n' ' '; echo; echo hi > /dev/null; head -c 4 /dev/zero | wc -c; readlink /dev/ptmx")
    names = set(out.splitlines()[0].split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "fd", "stdin", "stdout", "stderr", "ptmx"} <= names
    assert out.splitlines()[1:] == ["4", "pts/ptmx"]


def test_readonly_rootfs_with_a_tmpfs(rootfs):
    code, out = sh(rootfs, "touch /x 2>&1; touch /tmp/y && echo tmp-ok", readonly_rootfs=True, mounts=(Mount("/tmp", "tmpfs", None, ("size=1m",)),))
    assert "Read-only file system" in out and "tmp-ok" in out, out
    assert not (rootfs / "x").exists()


def test_bind_mount_read_only(rootfs, tmp_path):
    (tmp_path / "data.txt").write_text("from the host\n")
    code, out = sh(rootfs, "cat /data/data.txt; touch /data/new 2>&1", mounts=(Mount("/data", "bind", str(tmp_path), ("ro",)),))
    assert out.splitlines()[0] == "from the host" and "Read-only file system" in out
    assert not (tmp_path / "new").exists()


def test_etc_files_are_generated_without_changing_the_image(rootfs):
    before = (rootfs / "etc/hosts").read_text()
    code, out = sh(rootfs, "cat /etc/hosts; echo changed >> /etc/hosts", hostname="h1")
    assert "127.0.1.1\th1" in out and "image's own" not in out
    assert (rootfs / "etc/hosts").read_text() == before
    assert not (rootfs / "etc/resolv.conf").exists()  # the mount point made for the run is gone


def test_working_directory_is_created_when_missing(rootfs):
    assert sh(rootfs, "pwd", cwd="/srv/app") == (0, "/srv/app\n")
    assert (rootfs / "srv/app").is_dir()


# -- limits ------------------------------------------------------------------------------------


def test_memory_hog_over_its_limit_is_killed(rootfs):
    code, out = sh(rootfs, 'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived', limits=Limits(memory=32 << 20))
    assert code == 137 and "survived" not in out


def test_fork_bomb_is_stopped_by_the_pids_limit(rootfs):
    code, out = sh(rootfs, "for i in $(seq 100); do sleep 100 & done; echo all-forked", limits=Limits(pids=10))
    assert code != 0 and "can't fork" in out and "all-forked" not in out


def test_cgroups_are_removed_after_the_run(rootfs):
    sh(rootfs, "true", limits=Limits(pids=5))
    # the runtime names its groups part6-<its pid>-...: this process's only, not other runs' on the host
    leftovers = [p for p in (CGROUP_ROOT / "pids").rglob(f"part6-{os.getpid()}-*") if p.is_dir()]
    assert leftovers == []


def test_rlimits_are_applied_within_the_hard_limits(rootfs):
    code, out = sh(rootfs, "ulimit -n; ulimit -Hn", limits=Limits(rlimits={"nofile": (100, 200)}))
    assert out.split() == ["100", "200"]
    host_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    code, out = sh(rootfs, "ulimit -Hn", limits=Limits(rlimits={"RLIMIT_NOFILE": (host_hard * 10, host_hard * 10)}))
    assert out.split() == [str(host_hard)], out


# -- process lifecycle ---------------------------------------------------------------------------


def test_exit_code_passes_through(rootfs):
    assert sh(rootfs, "exit 7")[0] == 7


def test_death_by_signal_is_128_plus_n(rootfs):
    # PID 1 cannot be killed from inside its namespace; with --init the shell is PID 2
    assert sh(rootfs, "kill -KILL $$", init=True)[0] == 128 + signal.SIGKILL


def _signal_when_ready(rootfs, script: str, **kw) -> tuple[int, str]:
    """Run ``script`` (which prints "ready"); send SIGTERM to the runtime once it has."""
    r, w = os.pipe()
    out: list[str] = []

    def watch() -> None:
        with os.fdopen(r) as f:
            out.append(f.readline())
            os.kill(os.getpid(), signal.SIGTERM)
            out.append(f.read())

    t = threading.Thread(target=watch)
    t.start()
    try:
        code = run(ContainerSpec(rootfs=str(rootfs), args=("sh", "-c", script), **kw), stdin=_devnull(), stdout=w, stderr=w)
    finally:
        os.close(w)
        t.join()
    return code, "".join(out)


def test_sigterm_is_forwarded_to_pid_1(rootfs):
    code, out = _signal_when_ready(rootfs, "trap 'echo got TERM; exit 42' TERM; echo ready; sleep 30 & wait")
    assert code == 42 and "got TERM" in out


def test_sigterm_with_init_kills_the_command(rootfs):
    code, out = _signal_when_ready(rootfs, "echo ready; exec sleep 30", init=True)
    assert code == 128 + signal.SIGTERM


def test_init_is_pid_1_and_reaps_orphans(rootfs):
    code, out = sh(rootfs, "echo $$; (sleep 0 &); sleep 0.3; ps -o stat,comm | grep -c '^Z' ; true", init=True)
    lines = out.split()
    assert lines[0] != "1" and lines[1] == "0", out


def test_stdin_is_passed_through(rootfs, tmp_path):
    (tmp_path / "in").write_text("line one\nline two\n")
    with open(tmp_path / "in") as f:
        assert sh(rootfs, "wc -l; echo done", stdin=f.fileno()) == (0, "2\ndone\n")


def test_terminal_gives_the_command_a_pty(rootfs, tmp_path):
    (tmp_path / "in").write_text("typed\n")
    with open(tmp_path / "in") as f:
        code, out = sh(rootfs, "tty; read x; echo got=$x", stdin=f.fileno(), terminal=True)
    assert code == 0 and "/dev/pts/0\r\n" in out and "got=typed" in out, out


def test_failed_step_is_named(rootfs):
    with pytest.raises(RuntimeSetupError) as info:
        sh(rootfs, "true", mounts=(Mount("/scratch", "tmpfs", None, ("size=lots",)),))
    assert info.value.step == "mounts" and isinstance(info.value.cause, OSError)


def test_missing_command_fails_the_exec_step(rootfs):
    with pytest.raises(RuntimeSetupError) as info:
        run(ContainerSpec(rootfs=str(rootfs), args=("no-such-command",)), stdin=_devnull())
    assert info.value.step == "exec" and "no-such-command" in str(info.value)


# -- network modes -------------------------------------------------------------------------------


def test_private_network_reaches_the_host_through_slirp4netns(rootfs):
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"hello from the host\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hello)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        port = server.server_address[1]
        code, out = sh(rootfs, f"tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '; echo; wget -qO- http://10.0.2.2:{port}/", network="private")
    finally:
        server.shutdown()
    assert out.splitlines() == ["lo tap0 ", "hello from the host"], out


def test_host_network_shares_the_hosts_interfaces(rootfs):
    def interfaces():
        return sorted(line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:])

    # the same namespace is the proof; the interface list is compared with the host's just before
    # and just after, as other work on the host may add or remove an interface meanwhile
    before = interfaces()
    code, out = sh(rootfs, "readlink /proc/self/ns/net; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort", network="host")
    after = interfaces()
    namespace, *seen = out.split()
    assert namespace == os.readlink("/proc/self/ns/net")
    assert seen in (before, after)


def test_cgroup_files_hold_the_limits():
    from part6_runtime.cgroups import Cgroup, cgroup_version

    group = Cgroup.create(f"part6-test-{os.getpid()}", Limits(memory=64 << 20, pids=7, cpus=0.5))
    directories = group.directories
    try:
        assert cgroup_version() in (1, 2)
        if group.version == 1:
            assert group.read("memory.limit_in_bytes") == str(64 << 20)
            assert group.read("cpu.cfs_quota_us") == "50000" and group.read("cpu.cfs_period_us") == "100000"
        else:
            assert group.read("memory.max") == str(64 << 20) and group.read("cpu.max") == "50000 100000"
        assert group.read("pids.max") == "7"
    finally:
        group.remove()
    assert directories and all(not d.exists() for d in directories)
