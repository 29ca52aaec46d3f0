"""Helpers shared by several test files (imported as ``support``: pytest puts tests/ on the path)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pty
import re
import select
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
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


def tar_of(data: bytes, name: str = "f") -> bytes:
    """A tar archive (uncompressed, in memory) of one regular file ``name`` holding ``data``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


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


class Canaries:
    """Files outside everything a build may touch, and proof that it neither changed nor read
    them: ``dir`` holds a file, a subdirectory with a file, and a symlink; an inotify watch
    on both directories (armed after their state is taken) sees every open, read, write,
    attribute change, creation and deletion, and :meth:`check` asserts there was none and
    that the state is as it was. Hostile inputs point their symlinks at ``dir``."""

    EVENTS = 0xFFF  # IN_ACCESS ... IN_MOVE_SELF: everything that can happen to a file or in a dir

    def __init__(self, dir: Path) -> None:
        import ctypes

        self.dir = dir
        (dir / "sub").mkdir(parents=True)
        (dir / "victim").write_text("original\n")
        (dir / "sub" / "secret").write_text("secret\n")
        os.symlink("victim", dir / "link")
        self.before = outside_state(dir, dir / ".nothing-skipped")
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        for d in (dir, dir / "sub"):
            assert libc.inotify_add_watch(self.fd, str(d).encode(), self.EVENTS) >= 0

    def events(self) -> list[int]:
        import struct

        masks = []
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return masks
            offset = 0
            while offset < len(data):
                _wd, mask, _cookie, length = struct.unpack_from("iIII", data, offset)
                masks.append(mask)
                offset += 16 + length

    def check(self) -> None:
        try:
            events = self.events()
        finally:
            os.close(self.fd)
        assert events == [], f"something opened, read or changed the canaries: inotify masks {events}"
        assert outside_state(self.dir, self.dir / ".nothing-skipped") == self.before


def tree_listing(root: Path) -> dict:
    """Every entry below ``root``: path -> (mode, owner, contents or link target)."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid,
                                         os.readlink(p) if p.is_symlink() else
                                         p.read_bytes() if p.is_file() else None)
    return out


# -- a terminal, driven like a person at a keyboard ----------------------------------------------


class Terminal:
    """``argv`` started on a new pty (``pty.fork``: it is the foreground job of a terminal of its
    own), read and written like a keyboard: ``type(b"\\x03")`` is a ^C, which the terminal
    sends as SIGINT to its whole foreground process group. ``env``: the command's environment
    (default: this process's)."""

    def __init__(self, argv: list[str], *, env: dict[str, str] | None = None, cwd: str | os.PathLike = REPO) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.chdir(cwd)
                os.execvpe(argv[0], argv, os.environ if env is None else env)
            finally:
                os._exit(127)
        self.seen = b""

    def read_until(self, token: bytes, timeout: float = 20) -> bytes:
        deadline = time.monotonic() + timeout
        start = len(self.seen)
        while token not in self.seen[start:] and time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:  # EIO: the other side is closed
                    break
                if not data:
                    break
                self.seen += data
        return self.seen[start:]

    def type(self, text: bytes) -> None:
        os.write(self.fd, text)

    def wait(self, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.read_until(b"\0", 0.1)  # keep draining so the child never blocks on output
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        raise AssertionError(f"the terminal session did not end: {self.seen!r}")


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


def capstone_run(store_dir: Path, image: str) -> str:
    """``capstone run --rm --network none IMAGE``, which must succeed: what it printed."""
    r = capstone(store_dir, "run", "--rm", "--network", "none", image, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def capstone_inspect(store_dir: Path, image: str) -> dict:
    """``capstone inspect IMAGE``, which must succeed: the image's record."""
    r = capstone(store_dir, "inspect", image)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]


def skopeo(*args: str) -> str:
    """``skopeo ARGS...``, which must succeed: its standard output."""
    r = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def quiet_build(store, ctx: Path, **kw):
    """``capstone.engine.build(store, ctx, **kw)`` as the tests build: no network
    (``--network none``) and RUN's output thrown away, unless ``kw`` says otherwise."""
    from capstone.engine import build

    kw.setdefault("network", "none")
    with open(os.devnull, "wb") as devnull:
        kw.setdefault("run_output", devnull)
        return build(store, ctx, **kw)


def image_rootfs(store, image, dest: Path) -> Path:
    """The root filesystem of ``image`` (a name in ``store``, or an Image), extracted to the new
    directory ``dest``; ``store``: a Store, or the directory of one."""
    from capstone.store import Store
    from part4_tar import apply_layers

    if isinstance(image, str):
        image = (store if isinstance(store, Store) else Store.open(store)).load(image)
    dest.mkdir(parents=True)
    apply_layers([layer.open() for layer in image.layers], dest)
    return dest


def built_rootfs(store, ctx: Path, dest: Path, *, tag: str, **kw) -> Path:
    """:func:`quiet_build` of ``ctx`` tagged ``tag``; the image's root filesystem in ``dest``."""
    quiet_build(store, ctx, tags=[tag], **kw)
    return image_rootfs(store, tag, dest)


def check_copy_snapshots(store, steps, tmp_path: Path) -> int:
    """Each COPY/ADD layer of ``steps`` (a build's StepResults) has a snapshot made from its
    files that equals the extracted layer; how many were checked."""
    from part4_tar import apply_layers

    checked = 0
    for step in steps:
        if step.diff_id is None or step.kind not in ("COPY", "ADD"):
            continue
        snapshot = store.snapshots_dir / step.diff_id.split(":", 1)[1]
        extracted = tmp_path / f"layer-{step.diff_id[7:19]}"
        extracted.mkdir()
        apply_layers([store.layout.open_blob(step.layer_digest)], extracted)
        assert tree_listing(snapshot) == tree_listing(extracted)
        checked += 1
    return checked


def spy_on_snapshot_children(monkeypatch) -> list:
    """The jobs ``Builder._fork_snapshot`` returns while a build runs: (pid, dir) for a COPY
    whose snapshot a child process makes, None for one too small to fork for."""
    import capstone.engine.executor as executor

    jobs = []
    real = executor.Builder._fork_snapshot

    def spy(self, plan):
        jobs.append(real(self, plan))
        return jobs[-1]

    monkeypatch.setattr(executor.Builder, "_fork_snapshot", spy)
    return jobs


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
