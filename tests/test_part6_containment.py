"""Part 6: what a container can no longer reach of its caller and of the host.

PID 1 is a freshly executed program (the caller's environment, memory and descriptors are out
of reach), device nodes are refused by ``nodev`` and by the device cgroup (v1 controller, and
the v2 eBPF program in this host's unified tree), a bundle without a mount namespace is
refused, a bundle's seccomp profile and cgroup mount are applied as runc applies them, and a
command that cannot run exits 127 or 126.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import pytest
from support import runc_run

from part6_runtime import BundleError, ContainerSpec, load_bundle, make_busybox_rootfs, run, run_bundle
from part6_runtime import cgroups as cgroups_module
from part6_runtime.devices import DEFAULT_DEVICE_RULES, DOCKER_DEVICE_RULES, device_filter, effective_rules

ROOT = Path(__file__).resolve().parent.parent
UNIFIED = Path("/sys/fs/cgroup/unified")


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory) -> Path:
    return make_busybox_rootfs(tmp_path_factory.mktemp("part6-contain") / "rootfs")


def sh(rootfs: Path, script: str, **kw) -> tuple[int, str]:
    r, w = os.pipe()
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(r, 65536), b"")))
    reader.start()
    try:
        with open(os.devnull) as null:
            code = run(ContainerSpec(rootfs=str(rootfs), args=("sh", "-c", script), **kw), stdin=null, stdout=w, stderr=w)
    finally:
        os.close(w)
        reader.join()
        os.close(r)
    return code, b"".join(chunks).decode(errors="replace")


# -- PID 1 is freshly executed -------------------------------------------------------------------


@pytest.mark.parametrize("init", [False, True], ids=["command-as-pid-1", "init"])
def test_pid_1_holds_nothing_of_the_caller(rootfs, init, monkeypatch):
    canary = f"CANARY-{uuid.uuid4().hex}"
    monkeypatch.setenv("PART6_HOST_SECRET", canary)  # in the caller's environment
    held = os.open(ROOT / "pyproject.toml", os.O_RDONLY)  # a descriptor the caller holds open,
    os.set_inheritable(held, True)  # even one it would let a child inherit
    try:
        probes = {
            # each ends with "; true" so that sh, not the last command, stays PID 1
            "environ": "tr '\\0' '\\n' < /proc/1/environ; true",
            "fds": "ls /proc/1/fd; true",
            "own fds": "ls /proc/self/fd; true",
            "fd targets": "ls -l /proc/1/fd/ /proc/self/fd/; true",
            "memory": f"grep -c {canary} /proc/1/mem; true",
            "cmdline": "tr '\\0' ' ' < /proc/1/cmdline; true",
        }
        seen = {name: sh(rootfs, probe, env=("ONLY=this",), init=init)[1] for name, probe in probes.items()}
    finally:
        os.close(held)
    assert not any(canary in out or "pyproject" in out for out in seen.values()), seen
    assert seen["fds"].split() == ["0", "1", "2"] and seen["own fds"].split() == ["0", "1", "2", "3"], seen
    if init:
        # the reaper is a fresh interpreter (never the caller's fork) and not dumpable: its
        # environment, descriptor targets and memory cannot be read from the container
        assert "Permission denied" in seen["environ"] and "Permission denied" in seen["memory"], seen
        assert " -I -S -c " in seen["cmdline"], seen
    else:
        # exactly the container's environment: the spec's, PATH and HOME
        assert seen["environ"].split() == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "ONLY=this", "HOME=/root"]
        assert seen["cmdline"].startswith("sh -c tr"), seen


def test_init_is_the_fresh_interpreter_and_the_command_pid_2(rootfs):
    code, out = sh(rootfs, "echo $$; tr '\\0' ' ' < /proc/1/cmdline; echo; grep -E '^(PPid|NSpid)' /proc/self/status", init=True)
    lines = out.splitlines()
    assert code == 0 and lines[0] == "2" and " -I -S -c " in lines[1], out


# -- devices -------------------------------------------------------------------------------------

HOST_DISK = os.stat(ROOT).st_dev  # the block device holding this checkout (and the rootfs)


def _disk_probe() -> str:
    """mknod the host's disk and try to read it (only read: if a regression let the open
    through, a write would damage this machine; writing needs the same cgroup grant, "w")."""
    major, minor = os.major(HOST_DISK), os.minor(HOST_DISK)
    return (
        f"mknod /disk b {major} {minor} && echo made on rootfs; head -c 512 /disk > /dev/null && echo READ rootfs; "
        f"mknod /dev/disk b {major} {minor} && echo made in dev; head -c 512 /dev/disk > /dev/null && echo READ dev; "
        f"head -c 1 /dev/zero | wc -c; echo end"
    )


def test_a_block_device_of_the_host_cannot_be_opened(rootfs):
    code, out = sh(rootfs, _disk_probe())
    try:
        assert "READ" not in out, out
        # making a block-device node is refused (DEFAULT_DEVICE_RULES: runc's list less "b *:* m"),
        # so the node never exists, on the root filesystem or in /dev
        assert "made on rootfs" not in out and "made in dev" not in out, out
        assert "mknod: /disk: Operation not permitted" in out
        assert "mknod: /dev/disk: Operation not permitted" in out
        assert out.rstrip().endswith("1\nend"), out  # /dev/zero, on the list, still works
    finally:
        (rootfs / "disk").unlink(missing_ok=True)


def test_the_device_cgroup_lists_runcs_defaults(rootfs):
    code, out = sh(rootfs, "cat /sys/fs/cgroup/devices/devices.list")
    assert code == 0 and out.splitlines() == [r.v1_line for r in DEFAULT_DEVICE_RULES[1:]], out
    assert "b *:* m" not in out.splitlines() and "c *:* m" in out.splitlines()


def test_v2_device_filter_refuses_the_host_disk(rootfs, monkeypatch):
    """This host's controllers are on v1; its unified tree (/sys/fs/cgroup/unified) still takes
    an eBPF device program, so the v2 path runs for real: the runtime makes the container's
    group there, attaches the program and mounts the cgroup2 tree at /sys/fs/cgroup."""
    monkeypatch.setattr(cgroups_module, "CGROUP_ROOT", UNIFIED)
    code, out = sh(rootfs, _disk_probe() + "; cat /proc/self/cgroup; cut -d' ' -f5,9 /proc/self/mountinfo | grep cgroup", nodev=False)
    try:
        assert "READ" not in out, out
        assert "mknod: /disk: Operation not permitted" in out and "mknod: /dev/disk: Operation not permitted" in out
        assert "\n0::/\n" in out and "/sys/fs/cgroup cgroup2" in out, out
    finally:
        (rootfs / "disk").unlink(missing_ok=True)
    assert not list((UNIFIED / "part6").glob(f"part6-{os.getpid()}-*"))


def test_device_rules_reduce_as_the_v1_controller_does():
    default_allow, exceptions = effective_rules(DOCKER_DEVICE_RULES)
    assert not default_allow and len(exceptions) == len(DOCKER_DEVICE_RULES) - 1
    # a later deny takes access away from the exception it names, as devices.deny does
    from part6_runtime import DeviceRule

    rules = DOCKER_DEVICE_RULES + (DeviceRule(False, "c", 1, 3, "w"),)
    _, exceptions = effective_rules(rules)
    assert DeviceRule(True, "c", 1, 3, "rm") in exceptions
    assert len(device_filter(DOCKER_DEVICE_RULES)) % 8 == 0


# -- bundles -------------------------------------------------------------------------------------


def _bundle(tmp_path: Path, args: list[str], namespaces=("pid", "mount", "ipc", "uts", "network"), **linux) -> Path:
    bundle = tmp_path / "bundle"
    make_busybox_rootfs(bundle / "rootfs")
    config = {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": args, "cwd": "/",
                    "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
        "root": {"path": "rootfs"},
        "hostname": "bundle",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {"namespaces": [{"type": t} for t in namespaces], "resources": {"devices": [{"allow": False, "access": "rwm"}]}, **linux},
    }
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def _runc(bundle: Path) -> tuple[int, str]:
    """runc's exit code and output (the probes send stderr to stdout themselves)."""
    r = runc_run(bundle, "part6-contain")
    return r.returncode, r.stdout + r.stderr


def _ours(bundle: Path) -> tuple[int, str]:
    with tempfile.TemporaryFile("w+") as out, open(os.devnull) as null:
        code = run_bundle(bundle, stdin=null, stdout=out, stderr=out)
        out.seek(0)
        return code, out.read()


def test_a_bundle_without_a_mount_namespace_is_refused(tmp_path):
    canary = tmp_path / "canary"
    canary.write_text("untouched")
    bundle = _bundle(tmp_path, ["sh", "-c", f"echo changed > {canary}"], namespaces=("pid", "uts"))
    with pytest.raises(BundleError, match="no mount namespace"):
        load_bundle(bundle)
    before = Path("/proc/self/mountinfo").read_text().count(str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "part6_runtime", "run", "--bundle", str(bundle)], cwd=ROOT,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1 and "no mount namespace" in r.stderr, r.stderr
    assert canary.read_text() == "untouched"
    assert Path("/proc/self/mountinfo").read_text().count(str(tmp_path)) == before


def test_a_bundles_seccomp_profile_is_applied_as_by_runc(tmp_path):
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95},
            {"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"},
        ],
    }
    probe = "exec 2>&1; mkdir /tmp/x; hostname other; grep -E '^Seccomp:' /proc/self/status; echo done"
    bundle = _bundle(tmp_path, ["sh", "-c", probe], seccomp=profile)
    ours = _ours(bundle)
    theirs = _runc(bundle)
    assert ours == theirs, (ours, theirs)
    assert "mkdir: can't create directory '/tmp/x': Operation not supported" in ours[1]
    assert "hostname: sethostname: Operation not permitted" in ours[1] and "Seccomp:\t2" in ours[1]


def test_an_unloadable_seccomp_profile_is_a_bundle_error(tmp_path):
    bundle = _bundle(tmp_path, ["true"], seccomp={"defaultAction": "SCMP_ACT_NOTIFY", "syscalls": []})
    with pytest.raises(BundleError, match="SCMP_ACT_NOTIFY"):
        load_bundle(bundle)


def test_dockers_profile_for_runc_runs_under_part6_as_under_runc(tmp_path):
    """profile_json (Docker's policy as a config.json object, with the x86 and x32 architectures
    beside x86_64) loads here as in runc: calls newer than libseccomp knows cannot be put into
    the other architectures' ENOSYS range, and are left to the default action instead of
    failing the step."""
    from part6_runtime.seccomp import profile_json

    probe = "exec 2>&1; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; hostname other; echo done"
    bundle = _bundle(tmp_path, ["sh", "-c", probe], seccomp=profile_json(("CAP_KILL",)))
    ours = _ours(bundle)
    assert ours == _runc(bundle), ours
    assert ours[0] == 0 and "Seccomp:\t2" in ours[1] and "sethostname: Operation not permitted" in ours[1]


def test_a_filter_is_compiled_once_per_process_and_loaded_by_the_container():
    from part6_runtime import seccomp

    first = seccomp.compile_docker_default(("CAP_CHOWN", "CAP_KILL"))
    assert seccomp.compile_docker_default(["CAP_CHOWN", "CAP_KILL"]) is first
    assert first.bpf and len(first.bpf) % 8 == 0 and first.added > 300
    assert seccomp.compile_docker_default(("CAP_KILL", "CAP_CHOWN")) is first  # the same rules
    assert seccomp.compile_docker_default(("CAP_SYS_ADMIN",)).bpf != first.bpf  # clone unrestricted
    # the program a container loads is the one its runtime compiled: same filter, same verdicts
    code = (f"import errno, os, sys; sys.path[:0] = [{str(ROOT)!r}]\n"
            "from part6_runtime import seccomp\n"
            "from part5_namespaces import prctl\n"
            "prctl(38, 1)\n"
            "seccomp.load_program(seccomp.compile_docker_default(('CAP_KILL',)))\n"
            "try:\n    os.chroot('/')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])\n"
            "print(open('/proc/self/status').read().count('Seccomp:\\t2'))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["EPERM", "1"], r.stderr


@pytest.mark.parametrize("cgroupns", [True, False], ids=["cgroup-namespace", "no-cgroup-namespace"])
def test_sys_fs_cgroup_is_mounted_as_runc_mounts_it(tmp_path, cgroupns):
    namespaces = ("pid", "mount", "ipc", "uts", "network") + (("cgroup",) if cgroupns else ())
    # one output stream (runc copies stdout and stderr apart, which can reorder them)
    probe = ("exec 2>&1; grep cgroup /proc/self/mountinfo | cut -d' ' -f5,6,9,11; ls -l /sys/fs/cgroup | cut -c1-10,57-; "
             "echo x > /sys/fs/cgroup/pids/pids.max; ls /sys/fs/cgroup/pids | grep -c part6")
    if cgroupns:  # each hierarchy's root is the container's own group
        probe += "; cut -d: -f2- /proc/self/cgroup | sort"
    bundle = _bundle(tmp_path, ["sh", "-c", probe], namespaces=namespaces)
    ours, theirs = _ours(bundle), _runc(bundle)
    assert ours == theirs, (ours, theirs)
    assert "Read-only file system" in ours[1] and "/sys/fs/cgroup/devices ro,nosuid,nodev,noexec,relatime cgroup" in ours[1]
    if cgroupns:
        assert "pids:/\n" in ours[1]


# -- exit codes ----------------------------------------------------------------------------------


def test_a_missing_command_exits_127_and_a_non_executable_one_126(rootfs):
    (rootfs / "not-executable").write_text("#!/bin/sh\necho no\n")
    os.chmod(rootfs / "not-executable", 0o644)
    try:
        for command, expected in (("nosuch", 127), ("/nosuch", 127), ("/not-executable", 126), ("/etc", 126)):
            r = subprocess.run([sys.executable, "-m", "part6_runtime", "run", str(rootfs), "--", command], cwd=ROOT,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
            assert r.returncode == expected and len(r.stderr.strip().splitlines()) == 1, (command, r.stderr)
            assert "setup step 'exec' failed" in r.stderr
    finally:
        (rootfs / "not-executable").unlink()


def test_nodev_is_on_the_root_and_the_mounts_but_not_dev(rootfs, tmp_path):
    from part6_runtime import Mount

    (tmp_path / "sub").mkdir()
    code, out = sh(rootfs, "cut -d' ' -f5,6 /proc/self/mountinfo",
                   mounts=(Mount("/data", "bind", str(tmp_path), ("rbind", "ro")), Mount("/scratch", "tmpfs", None, ())))
    options = dict(line.split(" ", 1) for line in out.splitlines())
    for point in ("/", "/data", "/scratch", "/etc/hosts", "/dev/shm", "/proc"):
        assert "nodev" in options[point].split(","), (point, out)
    assert "nodev" not in options["/dev"].split(",") and "nodev" not in options["/dev/pts"].split(",")
    assert options["/data"].split(",")[0] == "ro"


def test_read_only_binds_are_read_only_all_the_way_down(rootfs, tmp_path):
    """A submount below a read-only bind source is read-only in the container too
    (mount_setattr with AT_RECURSIVE), not only the top of the bind."""
    from part5_namespaces import CloneFlags, MountFlags, call_in_namespaces, mount
    from part6_runtime import Mount

    source = tmp_path / "src"
    (source / "inner").mkdir(parents=True)
    canary = tmp_path / "inner-backing"
    canary.mkdir()

    def body():
        mount(None, "/", None, MountFlags.REC | MountFlags.PRIVATE)
        mount(str(canary), str(source / "inner"), None, MountFlags.BIND)  # a writable submount
        return sh(rootfs, "echo x > /data/inner/written; echo x > /data/top; cut -d' ' -f5,6 /proc/self/mountinfo | grep /data",
                  mounts=(Mount("/data", "bind", str(source), ("rbind", "ro")),))

    code, out = call_in_namespaces(body, CloneFlags.NEWNS)
    assert "/data/inner/written: Read-only file system" in out and "/data/top: Read-only file system" in out, out
    assert not list(canary.iterdir()) and sorted(p.name for p in source.iterdir()) == ["inner"]
    assert all(line.split()[1].startswith("ro,") for line in out.splitlines() if line.startswith("/data")), out


def test_a_devices_node_in_a_bind_source_cannot_be_used(rootfs, tmp_path):
    """A device node lying in a directory bound into the container (a build's stage, a
    context) is refused by nodev, before the device cgroup is even asked."""
    from part6_runtime import Mount

    os.mknod(tmp_path / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # on the list: only nodev refuses it
    code, out = sh(rootfs, "echo x > /data/null && echo WROTE", mounts=(Mount("/data", "bind", str(tmp_path), ("rbind", "rw")),))
    assert "WROTE" not in out and "Permission denied" in out, out


# -- mounts by descriptor ------------------------------------------------------------------------


@pytest.mark.parametrize("init", [False, True], ids=["command-as-pid-1", "init"])
def test_a_source_given_as_a_descriptor_is_what_gets_mounted(rootfs, tmp_path, init):
    """The caller resolves and opens a source; swapping a symlink in at its path afterwards
    (before the container mounts it) changes nothing: the mount is made from the descriptor
    (a detached copy of its tree, attached on the mount point's descriptor)."""
    from part6_runtime import Mount

    opened = tmp_path / "opened"
    opened.mkdir()
    (opened / "file").write_text("the one that was opened\n")
    canary = tmp_path / "host-canary"
    canary.mkdir()
    (canary / "file").write_text("HOST CANARY\n")
    fd = os.open(opened, os.O_PATH | os.O_CLOEXEC)
    try:
        opened.rename(tmp_path / "moved-away")
        opened.symlink_to(canary)  # the path now leads to the host's directory
        code, out = sh(rootfs, "cat /data/file; echo x > /data/new", init=init,
                       mounts=(Mount("/data", "bind", fd, ("rbind", "ro")),))
    finally:
        os.close(fd)
    assert "the one that was opened" in out and "HOST CANARY" not in out, out
    assert "Read-only file system" in out and sorted(p.name for p in canary.iterdir()) == ["file"]


def test_a_mount_target_is_resolved_inside_the_rootfs(rootfs, tmp_path):
    """An image whose mount point is a symlink to a host path gets the mount inside itself."""
    from part6_runtime import Mount

    canary = tmp_path / "host-dir"
    canary.mkdir()
    (rootfs / "mnt-link").symlink_to(canary)  # absolute: the host's path, as the image says
    try:
        code, out = sh(rootfs, "echo inside > /mnt-link/made; ls /mnt-link", mounts=(Mount("/mnt-link", "tmpfs", None, ()),))
    finally:
        (rootfs / "mnt-link").unlink()
    assert list(canary.iterdir()) == [] and "made" in out, out
    assert not (rootfs / str(canary).lstrip("/")).exists()  # the mount point made for it is gone too
