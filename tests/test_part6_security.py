"""Part 6: capabilities, no_new_privs and the seccomp filter, as a process inside sees them,
compared with runc running the same rootfs with Docker's defaults written into config.json.

The probe is the host's own Python, bind-mounted read-only into a busybox rootfs: it makes the
system calls directly (ctypes) and prints the errno each one gets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from support import DOCKER_MOUNTS

from part6_runtime import DOCKER_DEFAULT_CAPABILITIES, ContainerSpec, Mount, make_busybox_rootfs, run
from part6_runtime.seccomp import profile_json
from part6_runtime.spec import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS

PREFIX = os.path.realpath(sys.base_prefix)
PYTHON = os.path.realpath(sys.executable)

#: each line: a label, then the errno name the call got ("OK" when it succeeded)
PROBE = r"""
import ctypes, errno, os, socket
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def name(e): return errno.errorcode.get(e, str(e)) if e else "OK"
def call(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return name(ctypes.get_errno() if r < 0 else 0)
def sock(family, kind):
    try:
        socket.socket(family, kind).close()
        return "OK"
    except OSError as e:
        return name(e.errno)
status = {k: v.strip() for k, v in (l.split(":", 1) for l in open("/proc/self/status"))}
for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"):
    print(key, status[key])
print("socket AF_INET", sock(socket.AF_INET, socket.SOCK_DGRAM))
print("socket AF_UNIX", sock(socket.AF_UNIX, socket.SOCK_STREAM))
print("socket AF_ALG", sock(38, socket.SOCK_SEQPACKET))
print("socket AF_VSOCK", sock(40, socket.SOCK_STREAM))
print("io_uring_setup", call(425, 1, 0))
print("keyctl", call(250, 0, -1, 0))
print("clone3", call(435, 0, 0))
print("statmount", call(457, 0, 0, 0, 0))
print("personality(ADDR_NO_RANDOMIZE)", call(135, 0x40000))
print("personality(query)", call(135, 0xFFFFFFFF))
print("unshare(NEWUTS)", call(272, 0x04000000))
print("mount", call(165, 0, 0, 0, 0, 0))
print("chroot", call(161, 0))
print("fchmodat2", call(452, -100, 0, 0o755, 0))  # a NULL path: EFAULT when allowed
"""


@pytest.fixture(scope="module")
def python_rootfs():
    """A busybox rootfs that can run the host's Python (its prefix and /usr bound read-only).
    Every directory above it is world-traversable, as runc's user-less setup needs nothing more."""
    top = tempfile.mkdtemp(prefix="part6-sec-")
    os.chmod(top, 0o755)
    try:
        root = make_busybox_rootfs(os.path.join(top, "rootfs"))
        for link in ("lib", "lib64"):
            if os.path.islink("/" + link):
                os.symlink(os.readlink("/" + link), root / link)
        (root / PREFIX.lstrip("/")).mkdir(parents=True, exist_ok=True)  # /usr itself for Debian's python3
        yield root
    finally:
        shutil.rmtree(top)


def _binds() -> list[tuple[str, str]]:
    return [("/usr", "/usr")] + ([(PREFIX, PREFIX)] if PREFIX != "/usr" else [])


def _ours(root: Path) -> tuple[int, str]:
    mounts = tuple(Mount(dst, "bind", src, ("rbind", "ro")) for src, dst in _binds())
    with tempfile.TemporaryFile("w+") as out:
        code = run(
            ContainerSpec(rootfs=str(root), args=(PYTHON, "-S", "-c", PROBE), mounts=mounts, env=("PYTHONDONTWRITEBYTECODE=1",)),
            stdin=os.open(os.devnull, os.O_RDONLY), stdout=out, stderr=out,
        )
        out.seek(0)
        return code, out.read()


def _docker_like_config(root: Path) -> dict:
    """What `docker run` hands runc, for what this test looks at: Docker's capabilities,
    no_new_privs (`--security-opt no-new-privileges`), its seccomp profile, masked paths."""
    caps = list(DOCKER_DEFAULT_CAPABILITIES)
    mounts = [
        *DOCKER_MOUNTS,
    ] + [{"destination": dst, "type": "bind", "source": src, "options": ["rbind", "ro"]} for src, dst in _binds()]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": [PYTHON, "-S", "-c", PROBE],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONDONTWRITEBYTECODE=1"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": True,
        },
        "root": {"path": str(root)},
        "hostname": "container",
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": [p for p in DEFAULT_MASKED_PATHS if "*" not in p],
            "readonlyPaths": list(DEFAULT_READONLY_PATHS),
            "seccomp": profile_json(caps),
        },
    }


def _runc(root: Path, bundle: Path) -> tuple[int, str]:
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(_docker_like_config(root)))
    name = f"part6-sec-{uuid.uuid4().hex[:10]}"
    try:
        r = subprocess.run(["runc", "run", name], cwd=bundle, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60)
    finally:
        subprocess.run(["runc", "delete", "-f", name], capture_output=True)
    return r.returncode, r.stdout


def test_default_security_matches_runc_with_dockers_defaults(python_rootfs, tmp_path):
    code, ours = _ours(python_rootfs)
    runc_code, theirs = _runc(python_rootfs, tmp_path / "bundle")
    assert (code, runc_code) == (0, 0), ours + theirs
    assert ours == theirs


def test_default_security_as_the_container_sees_it(python_rootfs):
    code, out = _ours(python_rootfs)
    seen = dict(line.rsplit(" ", 1) for line in out.splitlines())
    assert code == 0, out
    # Docker's 14 capabilities bound, permitted and effective; nothing inheritable or ambient
    assert (seen["CapBnd"], seen["CapPrm"], seen["CapEff"]) == ("00000000a80425fb",) * 3
    assert (seen["CapInh"], seen["CapAmb"]) == ("0000000000000000",) * 2
    assert (seen["NoNewPrivs"], seen["Seccomp"]) == ("1", "2")
    assert seen["socket AF_INET"] == seen["socket AF_UNIX"] == "OK"
    assert seen["socket AF_ALG"] == seen["socket AF_VSOCK"] == "EPERM"  # moby #52494, #44562
    assert seen["io_uring_setup"] == "EPERM"  # moby #46762
    assert seen["keyctl"] == seen["personality(ADDR_NO_RANDOMIZE)"] == "EPERM"
    assert seen["clone3"] == "ENOSYS"  # so that glibc falls back to clone(2)
    assert seen["statmount"] == "ENOSYS"  # newer than the profile: ENOSYS, as under runc
    assert seen["unshare(NEWUTS)"] == seen["mount"] == "EPERM"
    assert seen["chroot"] != "EPERM"  # CAP_SYS_CHROOT is one of Docker's: allowed (EFAULT here)
    assert seen["fchmodat2"] == "EFAULT" and seen["personality(query)"] == "OK"
