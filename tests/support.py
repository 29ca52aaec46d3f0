"""Helpers shared by several test files (imported as ``support``: pytest puts tests/ on the path)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import tarfile
import tempfile
import uuid
from pathlib import Path

from part5_namespaces import CloneFlags, MountFlags, call_in_namespaces, mount

REPO = Path(__file__).resolve().parent.parent


# -- what a test may compare: only its own state --------------------------------------------------
# Other builds, containers and test suites run on the same host at the same time: a test looks
# at the mounts under its own directories and at its own processes, never at the whole host's.


def mount_points_under(*roots: str | os.PathLike) -> list[str]:
    """Mount points of this process's mount table at or under one of ``roots`` (a leak there is
    a test's own; the rest of the table changes with whatever else the host runs)."""
    prefixes = [os.path.realpath(r) for r in roots]
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            # field 5 is the mount point, with space, tab, newline and backslash octal-escaped
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes):
                found.append(point)
    return sorted(found)


def descendants() -> dict[int, str]:
    """Every process below this one, at any depth: pid -> command name (comm)."""
    found: dict[int, str] = {}
    todo = ["self"]
    while todo:
        pid = todo.pop()
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue  # gone meanwhile
        for task in tasks:
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                try:
                    found[child] = Path(f"/proc/{child}/comm").read_text().strip()
                except OSError:
                    continue
                todo.append(str(child))
    return found


def use_own_tempdir(monkeypatch, path: Path) -> Path:
    """Make ``path`` the temporary directory of the code under test (``tempfile`` and, for
    children, ``TMPDIR``), so what it leaves behind is counted there and nowhere else."""
    path.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    monkeypatch.setenv("TMPDIR", str(path))
    return path


# -- tar entries built by hand: (TarInfo, data or None) ------------------------------------------
def sym(name, target):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = tarfile.SYMTYPE, target
    return ti, None


def hard(name, target):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = tarfile.LNKTYPE, target
    return ti, None


def outside_state(top, skip):
    """Every path under ``top`` (but not under ``skip``) with type, mode, owner, mtime, content:
    compared before and after a hostile input, it shows that nothing outside ``skip`` changed."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        if os.path.abspath(dirpath) == os.path.abspath(skip):
            dirnames[:] = []
            continue
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) != str(skip)]
        for name in [dirpath] + [os.path.join(dirpath, f) for f in filenames + dirnames]:
            st = os.lstat(name)
            item = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_nlink)
            if stat.S_ISREG(st.st_mode):
                with open(name, "rb") as f:
                    item += (hashlib.sha256(f.read()).hexdigest(),)
            elif stat.S_ISLNK(st.st_mode):
                item += (os.readlink(name),)
            out[name] = item
    return out


# -- the capstone ---------------------------------------------------------------------------------
def in_child(fn):
    """``fn()`` in a child with a private mount namespace; its result, or its error."""

    def body():
        mount(None, "/", None, MountFlags.REC | MountFlags.PRIVATE)
        return fn()

    return call_in_namespaces(body, CloneFlags.NEWNS)


def capstone(store_dir: Path, *args: str, env: dict[str, str | None] | None = None,
             timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
    """``python -m capstone --store STORE_DIR ARGS...``, output captured; ``env`` changes this
    process's environment for the command (a None value removes the variable); ``input`` is
    its standard input (default: none, as from /dev/null)."""
    environ = None
    if env is not None:
        environ = dict(os.environ)
        for key, value in env.items():
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = value
    return subprocess.run([sys.executable, "-m", "capstone", "--store", str(store_dir), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout, env=environ,
                          input=input, stdin=subprocess.DEVNULL if input is None else None)


def image_rootfs(store_dir: Path, ref: str, dest: Path) -> Path:
    """The root filesystem of image ``ref`` in the store at ``store_dir``, extracted to ``dest``."""
    from capstone.store import Store
    from part4_tar import apply_layers

    dest.mkdir(parents=True)
    apply_layers([layer.open() for layer in Store.open(store_dir).load(ref).layers], dest)
    return dest


def make_context(root: Path, dockerfile: str, files: dict[str, str | bytes] | None = None) -> Path:
    """A build context: ``root/Dockerfile`` and ``files`` (relative name -> text or bytes)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    for name, content in (files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


# -- runc -----------------------------------------------------------------------------------------
#: the mounts `docker run` (and BuildKit's RUN) hand runc, as config.json says them
DOCKER_MOUNTS = (
    {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
)
#: Docker's /sys/fs/cgroup mount (part 6 makes it too)
CGROUP_MOUNT = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]}

def runc_run(bundle: Path, name_prefix: str, **process) -> subprocess.CompletedProcess:
    """Run an unpacked bundle with runc (no terminal; ``process`` keys replace those of its
    config.json's ``process``), then delete the container whatever happened."""
    config_path = bundle / "config.json"
    config = json.loads(config_path.read_text())
    config["process"]["terminal"] = False
    config["process"].update(process)
    config_path.write_text(json.dumps(config))
    name = f"{name_prefix}-{uuid.uuid4().hex[:12]}"
    try:
        return subprocess.run(["runc", "run", "--bundle", str(bundle), name], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120)
    finally:
        subprocess.run(["runc", "delete", "-f", name], capture_output=True, text=True, timeout=60)
