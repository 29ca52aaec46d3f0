"""A RUN step sees what a container of runc sees, given the spec Docker and BuildKit give runc.

The probe runs once as a RUN step of a capstone build (its output becomes /probe in the image)
and once under ``runc run``, on the same image unpacked by umoci, with the config.json a
Docker-style RUN gets: Docker's 14 capabilities, its seccomp profile (``profile_json``, the
one part 6 compiles), no_new_privs (this project's deliberate choice, see part 6's chapter),
runc's masked and read-only paths, the default mounts with /sys/fs/cgroup, a device cgroup
denying everything before runc's own list, and new pid, ipc, uts, mount, network and cgroup
namespaces. Compared: the capability sets, NoNewPrivs, Seccomp, PID 1's environment and
descriptors, device access, and every mount's flags. The only differences allowed are the
two the containment rules add: ``nodev`` on the root filesystem and the bound /etc files, and
no block-device node can be made (runc lets it be made and refuses opening it).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from support import CGROUP_MOUNT, DOCKER_MOUNTS, make_context, runc_run

from capstone.engine import build
from capstone.store import Store
from part6_runtime import DOCKER_DEFAULT_CAPABILITIES
from part6_runtime.seccomp import profile_json
from part6_runtime.spec import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds need root (namespaces, overlay mounts)")

PROBE = (
    "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status; "
    "echo '# environ'; tr '\\0' '\\n' < /proc/1/environ | sort; "
    "echo '# fds'; ls /proc/1/fd; "  # no pipe: PID 1 would hold its end while ls looks
    "echo '# devices'; for d in null zero full random urandom tty; do head -c 0 /dev/$d 2>&1 && echo $d usable; done; "
    "mknod /dev/disk b 8 0 && echo made a disk node; head -c 1 /dev/disk 2>&1 | sed 's/^/  /'; "
    "mknod /dev/kmem2 c 1 2 && echo made a kmem node; head -c 1 /dev/kmem2 2>&1 | sed 's/^/  /'; "
    "echo '# mounts'; cut -d' ' -f5,6 /proc/self/mountinfo; true"
)


def _docker_run_config(rootfs: Path, etc: Path) -> dict:
    caps = list(DOCKER_DEFAULT_CAPABILITIES)
    mounts = [
        *DOCKER_MOUNTS, CGROUP_MOUNT,
    ] + [{"destination": f"/etc/{name}", "type": "bind", "source": str(etc / name), "options": ["rbind", "rprivate"]}
         for name in ("hosts", "hostname", "resolv.conf")]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["/bin/sh", "-c", "exec 2>&1; " + PROBE], "cwd": "/",
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": True,
        },
        "root": {"path": str(rootfs)},
        "hostname": "buildsandbox",
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network", "cgroup")],
            "maskedPaths": [p for p in DEFAULT_MASKED_PATHS if "*" not in p],
            "readonlyPaths": list(DEFAULT_READONLY_PATHS),
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "seccomp": profile_json(caps),
        },
    }


@pytest.fixture(scope="module")
def views(tmp_path_factory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("parity")
    store = Store.open(root / "store")
    store.load("capstone/busybox")
    ctx = make_context(root / "ctx", f"FROM capstone/busybox\nRUN exec > /probe 2>&1; {PROBE}\n")
    with open(os.devnull, "wb") as devnull:
        build(store, ctx, tags=["parity:1"], network="none", outputs=[f"type=oci,dest={root / 'oci'}"], run_output=devnull)
    bundle = root / "bundle"
    r = subprocess.run(["umoci", "unpack", "--image", f"{root / 'oci'}:parity:1", str(bundle)], capture_output=True, text=True)
    if r.returncode != 0:  # the layout names the image by its tag alone
        r = subprocess.run(["umoci", "unpack", "--image", f"{root / 'oci'}:1", str(bundle)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ours = (bundle / "rootfs/probe").read_text()
    (bundle / "rootfs/probe").unlink()
    etc = root / "etc"
    etc.mkdir()
    for name, text in (("hosts", "127.0.0.1\tlocalhost\n"), ("hostname", "buildsandbox\n"), ("resolv.conf", "")):
        (etc / name).write_text(text)
    config = _docker_run_config(bundle / "rootfs", etc)
    (bundle / "config.json").write_text(json.dumps(config))
    r = runc_run(bundle, "capstone-parity")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    return ours, r.stdout


def _section(text: str, name: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(f"# {name}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("# ")), len(lines))
    return lines[start:end]


def test_capabilities_no_new_privs_and_seccomp_match_runc(views):
    ours, theirs = views
    head = lambda text: text.split("# environ")[0].splitlines()  # noqa: E731
    assert head(ours) == head(theirs)
    assert "CapEff:\t00000000a80425fb" in head(ours) and "Seccomp:\t2" in head(ours) and "NoNewPrivs:\t1" in head(ours)


def test_pid_1_environment_and_descriptors_match_runc(views):
    ours, theirs = views
    assert _section(ours, "environ") == _section(theirs, "environ") == [
        "HOME=/root", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert _section(ours, "fds") == _section(theirs, "fds") == ["0", "1", "2"]


def test_device_access_matches_runc_but_no_block_node_is_made(views):
    ours, theirs = views
    # runc lets the node of the host's disk be made (and refuses opening it); we refuse making
    # it: part 6's DEFAULT_DEVICE_RULES, runc's list less "b *:* m". Everything else is runc's.
    disk_lines = ("made a disk node", "  head: /dev/disk: Operation not permitted")
    assert [line for line in _section(theirs, "devices") if line not in disk_lines] == \
        [line for line in _section(ours, "devices") if not line.startswith(("mknod: /dev/disk", "  head: /dev/disk"))]
    assert all(line in _section(theirs, "devices") for line in disk_lines)
    seen = _section(ours, "devices")
    assert "mknod: /dev/disk: Operation not permitted" in seen and "made a disk node" not in seen, seen
    assert "made a kmem node" in seen and "  head: /dev/kmem2: Operation not permitted" in seen


def test_mount_flags_match_runc_plus_nodev(views):
    ours, theirs = views
    mine = dict(line.split(" ", 1) for line in _section(ours, "mounts"))
    runcs = dict(line.split(" ", 1) for line in _section(theirs, "mounts"))
    assert list(mine) == list(runcs)  # the same mount points, in the same order
    for point, options in runcs.items():
        expected = set(options.split(","))
        if point == "/" or point.startswith("/etc/"):
            expected.add("nodev")  # the containment rule: no device node outside /dev
        assert set(mine[point].split(",")) == expected, (point, mine[point], options)
