"""Part 6: OCI runtime bundles (config.json), the spec model, and interop with umoci and runc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
import warnings
from pathlib import Path

import pytest
from support import runc_run

from part2_manual_oci import build_busybox_image
from part6_runtime import (
    BundleError,
    BundleWarning,
    CapabilitySets,
    ContainerSpec,
    Limits,
    Mount,
    SpecError,
    load_bundle,
    make_busybox_rootfs,
    parse_size,
    run,
    run_bundle,
    spec_from_bundle,
)
from part6_runtime.seccomp import ENOSYS, SCMP_ACT_ERRNO, policy_rules
from part6_runtime.users import resolve_user

ROOT = Path(__file__).resolve().parent.parent


def write_bundle(path: Path, config: dict) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    return path


def minimal_config(**changes) -> dict:
    config = {
        "ociVersion": "1.0.2",
        "process": {"args": ["sh", "-c", "echo hi"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"]},
        "root": {"path": "rootfs"},
        "hostname": "b1",
        "linux": {"namespaces": [{"type": t} for t in ("pid", "mount", "uts", "ipc", "network")]},
    }
    config.update(changes)
    return config


# -- the spec model --------------------------------------------------------------------------------


def test_spec_rejects_an_empty_command_and_bad_values():
    with pytest.raises(SpecError):
        ContainerSpec(rootfs="/x", args=())
    with pytest.raises(SpecError):
        ContainerSpec(rootfs="/x", args=("sh",), network="bridge")
    with pytest.raises(SpecError):
        ContainerSpec(rootfs="/x", args=("sh",), cwd="relative")
    with pytest.raises(SpecError):
        Limits(rlimits={"nofiles": (1, 1)})


def test_spec_accepts_an_env_mapping_and_normalises_capability_names():
    spec = ContainerSpec(rootfs="/x", args=["sh"], env={"A": "1"}, capabilities=["chown", "CAP_KILL"])
    assert spec.env == ("A=1",) and spec.capabilities == ("CAP_CHOWN", "CAP_KILL")
    assert spec.namespace_set == {"pid", "mount", "uts", "ipc", "cgroup", "network"}


def test_parse_size_uses_dockers_units():
    assert parse_size("32m") == 32 << 20 and parse_size("1g") == 1 << 30 and parse_size("512") == 512


def test_user_resolution_in_the_containers_files(tmp_path):
    root = make_busybox_rootfs(tmp_path / "r")
    alice = resolve_user(str(root), "alice")
    assert (alice.uid, alice.gid, alice.groups, alice.home) == (1000, 1000, (10, 29), "/home/alice")
    assert resolve_user(str(root), "alice:audio").gid == 29
    assert resolve_user(str(root), "1234").gid == 0 and resolve_user(str(root), "1234").home == "/"
    with pytest.raises(SpecError):
        resolve_user(str(root), "root:nogroup-here")


def test_seccomp_policy_has_dockers_special_rules():
    rules = {(name, action) for name, action, _ in policy_rules(CapabilitySets.docker().bounding, "x86_64")}
    names = {name for name, _ in rules}
    assert ("clone3", SCMP_ACT_ERRNO(ENOSYS)) in rules
    assert "chroot" in names and "arch_prctl" in names  # CAP_SYS_CHROOT is a default capability
    assert "mount" not in names and "unshare" not in names and "keyctl" not in names
    assert not any(n.startswith("io_uring") for n in names)  # moby #46762
    sockets = [args for name, _, args in policy_rules(CapabilitySets.docker().bounding, "x86_64") if name == "socket"]
    assert sockets == [((0, 2, 38, 0),), ((0, 4, 39, 0),), ((0, 6, 40, 0),)]  # < AF_ALG, == 39, > AF_VSOCK


# -- bundles -----------------------------------------------------------------------------------------


def test_bundle_fields_become_the_spec(tmp_path):
    config = minimal_config()
    config["process"].update(
        terminal=False,
        user={"uid": 1000, "gid": 1000, "additionalGids": [5]},
        capabilities={"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
        rlimits=[{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}],
        noNewPrivileges=True,
    )
    config["root"]["readonly"] = True
    config["mounts"] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/data", "type": "bind", "source": "/tmp", "options": ["rbind", "ro"]},
    ]
    config["linux"].update(
        maskedPaths=["/proc/kcore"],
        readonlyPaths=["/proc/sys"],
        resources={"memory": {"limit": 64 << 20}, "pids": {"limit": 20}},
    )
    spec, found = load_bundle(write_bundle(tmp_path, config))
    assert found == []
    assert spec.rootfs == str(tmp_path / "rootfs") and spec.hostname == "b1" and spec.user == "1000:1000"
    assert spec.additional_gids == (5,) and spec.readonly_rootfs and spec.no_new_privileges
    assert spec.capabilities == CapabilitySets(bounding=("CAP_KILL",), effective=("CAP_KILL",), permitted=("CAP_KILL",))
    assert spec.limits == Limits(memory=64 << 20, pids=20, rlimits={"nofile": (100, 200)})
    assert [m.destination for m in spec.mounts] == ["/data"]
    assert spec.system_mounts == (Mount("/proc", "proc", "proc", ()),)  # its options, not Docker's
    assert spec.masked_paths == ("/proc/kcore",) and spec.network == "none"
    assert spec.namespace_set == {"pid", "mount", "uts", "ipc", "network"}


def test_unknown_bundle_fields_are_reported_not_ignored(tmp_path):
    config = minimal_config(hooks={"prestart": []})
    config["process"]["oomScoreAdj"] = 100
    config["process"]["consoleSize"] = {"height": 24, "width": 80}
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    config["mounts"] = [{"destination": "/mnt", "type": "nfs", "source": "server:/export"}]
    bundle = write_bundle(tmp_path, config)
    _, found = load_bundle(bundle)
    assert any(w.startswith("config.hooks:") for w in found)
    assert any(w.startswith("process.oomScoreAdj:") for w in found)
    assert any(w.startswith("process.consoleSize:") for w in found)
    assert any(w.startswith("linux.sysctl:") for w in found)
    assert any("/mnt of type nfs" in w for w in found)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec_from_bundle(bundle)
    assert len([w for w in caught if issubclass(w.category, BundleWarning)]) == len(found) == 5


def test_invalid_bundle_is_a_bundle_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(BundleError, match="config.json:1"):
        load_bundle(tmp_path)
    write_bundle(tmp_path, minimal_config(process={"args": []}))
    with pytest.raises(BundleError, match="process.args"):
        load_bundle(tmp_path)


def test_run_bundle_runs_the_process(tmp_path):
    make_busybox_rootfs(tmp_path / "rootfs")
    config = minimal_config()
    config["process"]["args"] = ["sh", "-c", "hostname; exit 3"]
    bundle = write_bundle(tmp_path, config)
    with tempfile.TemporaryFile() as out:
        code = run_bundle(bundle, stdin=os.open(os.devnull, os.O_RDONLY), stdout=out)
        out.seek(0)
        assert (code, out.read()) == (3, b"b1\n")


# -- interop: umoci unpack -> runc and this runtime --------------------------------------------------

PROBE = (
    "echo pid=$$; hostname; id; grep -E '^(Cap...|NoNewPrivs):' /proc/self/status; "
    "ls /dev | tr '\\n' ' '; echo; ulimit -n; pwd; env | sort; cat /proc/self/uid_map; "
    "tail -n +3 /proc/net/dev | cut -d: -f1; wc -c < /proc/timer_list; "
    "echo x 2>&1 > /proc/sys/kernel/hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
    # every mount and its options, /sys/fs/cgroup's included
    "cut -d' ' -f5,6 /proc/self/mountinfo; ls /sys/fs/cgroup | tr '\\n' ' '"
)


def _umoci_bundle(tmp_path: Path) -> Path:
    build_busybox_image(tmp_path / "image")
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{tmp_path / 'image'}:latest", str(bundle)], check=True, capture_output=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False  # not on a terminal here
    config["process"]["args"] = ["sh", "-c", PROBE]
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def test_umoci_bundle_gives_the_same_output_under_runc_and_this_runtime(tmp_path):
    bundle = _umoci_bundle(tmp_path)
    name = f"part6-{uuid.uuid4().hex[:12]}"
    try:
        by_runc = subprocess.run(["runc", "run", name], cwd=bundle, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    finally:
        subprocess.run(["runc", "delete", "-f", name], capture_output=True)
    with tempfile.TemporaryFile("w+") as out:
        with warnings.catch_warnings():
            warnings.simplefilter("error", BundleWarning)  # umoci's config.json: nothing left out
            code = run(spec_from_bundle(bundle), stdin=os.open(os.devnull, os.O_RDONLY), stdout=out, stderr=out)
        out.seek(0)
        ours = out.read()
    assert by_runc.returncode == code == 0, by_runc.stdout
    assert ours == by_runc.stdout
    assert "pid=1\numoci-default\n" in ours and "Read-only file system" in ours
    # the bundle's own options for /proc (none: rw) were used, not Docker's nosuid,nodev,noexec
    assert "\n/proc rw,relatime\n" in ours and "\n/proc/sys ro,relatime\n" in ours
    # the bundle's cgroup mount, as runc makes it: a tmpfs with each hierarchy read-only below
    assert "\n/sys/fs/cgroup rw,nosuid,nodev,noexec,relatime\n" in ours
    assert "\n/sys/fs/cgroup/devices ro,nosuid,nodev,noexec,relatime\n" in ours


def test_chapter_cli_runs_a_bundle_and_reports_unimplemented_fields(tmp_path):
    bundle = _umoci_bundle(tmp_path)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["sh", "-c", "echo from-the-bundle; exit 5"]
    (bundle / "config.json").write_text(json.dumps(config))
    r = subprocess.run([sys.executable, "-m", "part6_runtime", "run", "--bundle", str(bundle)], cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (5, "from-the-bundle\n", "")  # umoci's fields: all implemented
    config["process"]["oomScoreAdj"] = 100
    (bundle / "config.json").write_text(json.dumps(config))
    r = subprocess.run([sys.executable, "-m", "part6_runtime", "run", "--bundle", str(bundle)], cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert r.returncode == 5 and "process.oomScoreAdj: not implemented" in r.stderr


def test_chapter_cli_runs_a_rootfs(tmp_path):
    root = make_busybox_rootfs(tmp_path / "rootfs")
    r = subprocess.run(
        [sys.executable, "-m", "part6_runtime", "run", "--hostname", "cli", "-e", "GREETING=hi", "-u", "alice", "-w", "/tmp", str(root), "--", "sh", "-c", "echo $GREETING $(hostname) $(id -un) $(pwd)"],
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )
    assert (r.returncode, r.stdout) == (0, "hi cli alice /tmp\n"), r.stderr


def test_chapter_script_narrates_the_setup_steps():
    r = subprocess.run([sys.executable, "-m", "part6_runtime"], cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "=> namespaces => fresh init => cgroup namespace" in r.stdout and "pivot_root" in r.stdout
    assert "PID 1" in r.stdout and "137" in r.stdout and "00000000a80425fb" in r.stdout
    # the container's processes, seen by its shell alone: the same on every run
    assert "   its processes (/proc):\n   $ cd /proc && echo [0-9]*\n     1\n" in r.stdout


def _runc_spec_bundle(tmp_path: Path, inheritable: bool) -> Path:
    bundle = tmp_path / ("with-inheritable" if inheritable else "runc-spec")
    make_busybox_rootfs(bundle / "rootfs")
    subprocess.run(["runc", "spec"], cwd=bundle, check=True, capture_output=True)
    config = json.loads((bundle / "config.json").read_text())
    caps = config["process"]["capabilities"]
    assert caps["ambient"] and "inheritable" not in caps  # what runc 1.1 writes
    if inheritable:
        caps["inheritable"] = caps["ambient"][:2]
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


@pytest.mark.parametrize("inheritable", [False, True], ids=["runc-spec", "with-inheritable"])
def test_ambient_capabilities_are_raised_as_runc_raises_them(tmp_path, inheritable):
    """`runc spec` lists ambient capabilities without an inheritable set: the kernel refuses to
    raise them and runc goes on without; this runtime too, with a warning naming them. Those that
    are also inheritable are raised, by both."""
    bundle = _runc_spec_bundle(tmp_path, inheritable)
    by_runc = runc_run(bundle, "part6-ambient", args=["sh", "-c", "grep Cap /proc/self/status"])
    r = subprocess.run([sys.executable, "-m", "part6_runtime", "run", "--bundle", str(bundle)], cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert by_runc.returncode == r.returncode == 0, (by_runc.stderr, r.stderr)
    assert r.stdout == by_runc.stdout
    ambient = int(r.stdout.split("CapAmb:")[1].split()[0], 16)
    if inheritable:
        assert ambient == (1 << 29) | (1 << 5)  # CAP_AUDIT_WRITE and CAP_KILL
        assert "process.capabilities.ambient: CAP_NET_BIND_SERVICE not also permitted and inheritable" in r.stderr
    else:
        assert ambient == 0
        assert "process.capabilities.ambient: CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE not also permitted and inheritable" in r.stderr
