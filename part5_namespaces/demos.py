"""One demonstration per namespace: run a child in it, look from inside and from the host.

Each ``demo_*`` function returns a :class:`Comparison`: rows of evidence, one column for the
host (this process, looking at its own view) and one per child (the same probe run inside the
new namespaces). The chapter script prints them; the tests assert on them. Nothing here prints.

The probes read the kernel's own reports: ``/proc/self/ns/*`` (a namespace's identity is the
inode of that file), ``/proc/self/mountinfo``, ``/proc/self/net/dev`` (per network namespace,
unlike /sys/class/net, which shows the namespace of whoever mounted sysfs),
``/proc/sysvipc/*``, ``/proc/self/uid_map``, ``/proc/self/cgroup``.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from part1_overview import model

from . import syscalls
from .idmap import current_user_mapping
from .rootless import UserNamespaceMapping, rootless_mapping
from .run import call_as_user, call_in_namespaces, ensure_user
from .syscalls import CloneFlags, MountFlags

#: the unprivileged user of the user-namespace demonstration
DEMO_USER = "alice"


@model(frozen=True)
class Comparison:
    """What one namespace demonstration observed."""

    namespace: str  # the name in /proc/self/ns (uts, pid, mnt, net, ipc, user, cgroup)
    flags: CloneFlags
    command: str  # the same experiment with util-linux's unshare(1)
    headers: tuple[str, ...]  # ("", "host", "inside")
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()

    def row(self, label: str) -> tuple[str, ...]:
        """The values of one row (without its label)."""
        for r in self.rows:
            if r[0] == label:
                return r[1:]
        raise KeyError(label)

    @property
    def isolated(self) -> bool:
        """True when every child is in a different namespace than the host."""
        host, *children = self.row("namespace")
        return all(c != host for c in children)


def ns_id(name: str, pid: int | str = "self") -> str:
    """The identity of a namespace: ``uts:[4026531838]`` (the inode of /proc/PID/ns/NAME)."""
    return os.readlink(f"/proc/{pid}/ns/{name}")


def _lines(text: str) -> str:
    """A multi-line /proc file as one table cell."""
    return "; ".join(" ".join(line.split()) for line in text.strip().splitlines())


@functools.lru_cache(maxsize=1)
def demo_user_namespace() -> UserNamespaceMapping | None:
    """None for root; for anyone else the user namespace every demonstration adds. Without
    CAP_SYS_ADMIN a process may create the other namespaces only together with a user
    namespace, which then owns them (rule 2 of process.py)."""
    return None if os.geteuid() == 0 else rootless_mapping()


def _in_namespaces(fn: Callable[[], object], flags: CloneFlags) -> tuple[object, CloneFlags]:
    """``fn()`` run in new namespaces ``flags`` (plus a user namespace when not root): its
    result and the flags used."""
    userns = demo_user_namespace()
    if userns is None:
        return call_in_namespaces(fn, flags), CloneFlags(flags)
    flags = CloneFlags(flags) | CloneFlags.NEWUSER
    return call_in_namespaces(fn, flags, uid_maps=userns.uid_maps, gid_maps=userns.gid_maps), flags


def _unshare(command: str) -> str:
    """The same experiment with unshare(1), given the user namespace options a non-root user
    needs (``--map-users`` goes through newuidmap, as the demonstration does)."""
    userns = demo_user_namespace()
    if userns is None:
        return command
    options = "--map-root-user" + "".join(
        f" --map-{kind}={m.outside},{m.inside},{m.count}"
        for kind, maps in (("users", userns.uid_maps), ("groups", userns.gid_maps))
        for m in maps[1:]
    )
    return command.replace("unshare ", f"unshare {options} ")


def _make_mounts_private() -> None:
    # The host's / is usually a shared mount (systemd): without this, mounts made in the new
    # mount namespace would propagate back to the host's.
    syscalls.mount(None, "/", None, MountFlags.REC | MountFlags.PRIVATE)


# -- UTS: hostname and domain name ---------------------------------------------------------------

DEMO_HOSTNAME = "part5-container"


def demo_uts() -> Comparison:
    def probe() -> dict:
        return {"namespace": ns_id("uts"), "hostname": socket.gethostname()}

    def inside() -> dict:
        syscalls.sethostname(DEMO_HOSTNAME)
        return probe()

    child, flags = _in_namespaces(inside, CloneFlags.NEWUTS)
    host = probe()  # read after the child renamed its host: still the host's name
    return Comparison(
        "uts",
        flags,
        _unshare(f"unshare --uts sh -c 'hostname {DEMO_HOSTNAME}; hostname'; hostname"),
        ("", "host", "inside"),
        tuple((k, host[k], child[k]) for k in ("namespace", "hostname")),
        ("sethostname(2) inside changed only the new UTS namespace's copy.",),
    )


# -- PID: process ids, PID 1 ------------------------------------------------------------------------


def _pids() -> list[int]:
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit())


def _nspid() -> str:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return " ".join(line.split()[1:])
    return "?"


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def demo_pid() -> Comparison:
    def probe() -> dict:
        pids = _pids()
        return {
            "namespace": ns_id("pid"),
            "my pid (getpid)": str(os.getpid()),
            "parent pid (getppid)": str(os.getppid()),
            "PID 1": f"1 = {_comm(1)}",
            "processes in /proc": str(len(pids)),
        }

    def inside() -> dict:
        # /proc still shows the host's PID namespace until a new proc is mounted, which needs
        # the mount namespace too; NSpid, read before, lists our pid in every namespace level.
        nspid = _nspid()
        _make_mounts_private()
        syscalls.mount("proc", "/proc", "proc", MountFlags.NOSUID | MountFlags.NODEV | MountFlags.NOEXEC)
        return {**probe(), "NSpid (host ... inside)": nspid}

    child, flags = _in_namespaces(inside, CloneFlags.NEWPID | CloneFlags.NEWNS)
    host = probe()
    host["NSpid (host ... inside)"] = _nspid()
    keys = ("namespace", "my pid (getpid)", "parent pid (getppid)", "PID 1", "processes in /proc", "NSpid (host ... inside)")
    return Comparison(
        "pid",
        flags,
        _unshare("unshare --pid --fork --mount-proc sh -c 'echo $$; ps'"),
        ("", "host", "inside"),
        tuple((k, host[k], child[k]) for k in keys),
        (
            "unshare(CLONE_NEWPID) does not move the caller: spawn() forks once more so the",
            "target is PID 1; its parent is outside the namespace, so getppid() reads 0.",
        ),
    )


# -- mount: the mount table --------------------------------------------------------------------------


def _mountinfo() -> list[str]:
    return Path("/proc/self/mountinfo").read_text().splitlines()


def _mount_at(path: str) -> str:
    for line in _mountinfo():
        fields = line.split()
        if fields[4] == path:
            sep = fields.index("-")
            return f"{fields[sep + 1]} on {path} ({fields[5]})"
    return "(not a mount point)"


def demo_mount() -> Comparison:
    where = tempfile.mkdtemp(prefix="part5-mount-")
    try:

        def probe() -> dict:
            return {
                "namespace": ns_id("mnt"),
                "mounts in mountinfo": str(len(_mountinfo())),
                f"{where}": _mount_at(where),
                f"ls {where}": " ".join(sorted(os.listdir(where))) or "(empty)",
            }

        def inside() -> dict:
            _make_mounts_private()
            syscalls.mount("tmpfs", where, "tmpfs", MountFlags.NOSUID | MountFlags.NODEV, "size=1m,mode=755")
            Path(where, "only-in-the-mount-namespace").write_text("hello\n")
            return probe()

        child, flags = _in_namespaces(inside, CloneFlags.NEWNS)
        host = probe()
    finally:
        shutil.rmtree(where, ignore_errors=True)
    return Comparison(
        "mnt",
        flags,
        _unshare(f"unshare --mount sh -c 'mount -t tmpfs tmpfs {where}; findmnt {where}'; findmnt {where}"),
        ("", "host", "inside"),
        tuple((k, host[k], child[k]) for k in host),
        ("The child starts with a copy of the host's mount table; its tmpfs never reaches the host.",),
    )


# -- network: interfaces ---------------------------------------------------------------------------


def _interfaces() -> list[str]:
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":")[0].strip() for line in lines)


def _link_states() -> str:
    """``name:UP`` or ``name:DOWN`` per interface, from ``ip -o link`` (netlink: per namespace)."""
    ip = shutil.which("ip")
    if ip is None:
        return "(ip not installed)"
    r = subprocess.run([ip, "-o", "link"], capture_output=True, text=True)
    states = []
    for line in r.stdout.splitlines():
        fields = line.split()
        name, flags = fields[1].rstrip(":").split("@")[0], fields[2].strip("<>").split(",")
        states.append(f"{name}:{'UP' if 'UP' in flags else 'DOWN'}")
    return " ".join(sorted(states))


def demo_net() -> Comparison:
    def probe() -> dict:
        return {
            "namespace": ns_id("net"),
            "interfaces (/proc/self/net/dev)": " ".join(_interfaces()),
            "link states (ip -o link)": _link_states(),
        }

    child, flags = _in_namespaces(probe, CloneFlags.NEWNET)
    host = probe()
    return Comparison(
        "net",
        flags,
        _unshare("unshare --net ip -o link"),
        ("", "host", "inside"),
        tuple((k, host[k], child[k]) for k in host),
        ("A new network namespace has only a loopback interface, and it is down.",),
    )


# -- IPC: System V message queues and shared memory -------------------------------------------------


def _sysvipc(kind: str) -> list[str]:
    """Keys (hex) of the System V objects of one kind (msg, shm, sem) this namespace holds."""
    lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
    return [f"0x{int(line.split()[0]) & 0xFFFFFFFF:08x}" for line in lines if line.strip()]


def demo_ipc() -> Comparison:
    key = 0x50350000 | (os.getpid() & 0xFFFF)
    excl = syscalls.IPC_CREAT | syscalls.IPC_EXCL | 0o600
    msqid = syscalls.msgget(key, excl)
    try:
        shmid = syscalls.shmget(key, 4096, excl)
        try:

            def probe() -> dict:
                return {
                    "namespace": ns_id("ipc"),
                    "message queues": " ".join(_sysvipc("msg")) or "(none)",
                    "shared memory": " ".join(_sysvipc("shm")) or "(none)",
                    f"msgget(0x{key:08x}, 0)": _try_msgget(key),
                }

            child, flags = _in_namespaces(probe, CloneFlags.NEWIPC)
            host = probe()
        finally:
            syscalls.shm_remove(shmid)
    finally:
        syscalls.msg_remove(msqid)
    return Comparison(
        "ipc",
        flags,
        _unshare("ipcmk -Q; ipcs -q; unshare --ipc ipcs -q"),
        ("", "host", "inside"),
        tuple((k, host[k], child[k]) for k in host),
        (f"The host created message queue and shared memory key 0x{key:08x}; inside, the key does not exist.",),
    )


def _try_msgget(key: int) -> str:
    try:
        return f"queue id {syscalls.msgget(key, 0)}"
    except OSError as e:
        return os.strerror(e.errno)


# -- user: uid and gid maps --------------------------------------------------------------------------


def _cap_eff() -> str:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return line.split()[1]
    return "?"


def _user_probe() -> dict:
    return {
        "namespace": ns_id("user"),
        "uid gid (getuid)": f"{os.getuid()} {os.getgid()}",
        "/proc/self/uid_map": _lines(Path("/proc/self/uid_map").read_text()),
        "/proc/self/gid_map": _lines(Path("/proc/self/gid_map").read_text()),
        "/proc/self/setgroups": Path("/proc/self/setgroups").read_text().strip(),
        "CapEff": _cap_eff(),
    }


def demo_user(user: str | None = None) -> Comparison:
    """A child with the single mapping, and one with the full range from /etc/subuid when
    there is one, both made by an unprivileged user: as root, ``user`` (default alice, created
    with subordinate ids when missing) in a child that dropped to it; as anyone else, the
    caller itself."""
    rootless = os.geteuid() != 0
    if rootless:
        entry = pwd.getpwuid(os.geteuid())
        if user not in (None, entry.pw_name):
            raise PermissionError(1, f"only root can run the demonstration as {user}; run it as yourself")
        user, created = entry.pw_name, False
    else:
        user = user or DEMO_USER
        created = ensure_user(user)
        entry = pwd.getpwnam(user)
    shared = tempfile.mkdtemp(prefix="part5-user-")
    if not rootless:
        os.chown(shared, entry.pw_uid, entry.pw_gid)
    try:

        def inside(tag: str, chown_to: int | None) -> Callable[[], dict]:
            def probe() -> dict:
                facts = _user_probe()
                path = Path(shared, f"made-by-root-inside-{tag}")
                path.write_text("x\n")
                if chown_to is not None:
                    os.chown(path, chown_to, chown_to)
                facts["file made inside: owner inside"] = f"{path.stat().st_uid}"
                facts["_file"] = str(path)
                return facts

            return probe

        def as_user() -> list[dict]:
            flags = CloneFlags.NEWUSER | CloneFlags.NEWUTS
            single = current_user_mapping()
            results = [_user_probe()]
            results[0]["_file"] = ""
            results.append(call_in_namespaces(inside("single", None), flags, uid_maps=single[0], gid_maps=single[1]))
            ranged = rootless_mapping(user)
            if ranged.full:
                results.append(call_in_namespaces(inside("range", 1000), flags, uid_maps=ranged.uid_maps, gid_maps=ranged.gid_maps))
            return results

        results = as_user() if rootless else call_as_user(user, as_user)
        owners = ["-"] + [f"{os.stat(r['_file']).st_uid}" for r in results[1:]]
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    labels = [k for k in results[0] if not k.startswith("_")] + ["file made inside: owner inside"]
    rows = []
    for label in labels:
        rows.append((label, *(r.get(label, "-") for r in results)))
    rows.append(("file made inside: owner on the host", *owners))
    headers = ("", f"host ({user}, uid {entry.pw_uid})", "single mapping", "full range (/etc/subuid)")[: len(results) + 1]
    notes = [
        f"{user} is uid {entry.pw_uid} on the host and root (uid 0, all capabilities) inside.",
        "The single mapping needs no privilege but 'deny' in setgroups; the range needs newuidmap.",
    ]
    if created:
        notes.insert(0, f"Created user {user} with subordinate ids (useradd, usermod): remove with `userdel {user}`.")
    if len(results) < 3:
        notes.append(f"No full range: {rootless_mapping(user).limitation}.")
    return Comparison(
        "user",
        CloneFlags.NEWUSER | CloneFlags.NEWUTS,
        "unshare --user --map-root-user cat /proc/self/uid_map" if rootless else
        f"su -s /bin/sh {user} -c 'unshare --user --map-root-user cat /proc/self/uid_map'",
        headers,
        tuple(rows),
        tuple(notes),
    )


# -- cgroup: the cgroup root -------------------------------------------------------------------------


def _cgroup2_mount() -> str | None:
    for line in _mountinfo():
        fields = line.split()
        sep = fields.index("-")
        if fields[sep + 1] == "cgroup2":
            return fields[4]
    return None


def _own_cgroup2_path() -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    return "/"


def _cgroup_lines() -> str:
    text = Path("/proc/self/cgroup").read_text()
    v2 = [line for line in text.splitlines() if line.startswith("0::")]
    return v2[0] if v2 else _lines(text)


def demo_cgroup() -> Comparison:
    """Move a child into a new (empty, controller-less) cgroup v2 group below our own, then
    unshare a cgroup namespace there: inside, that group is the root ``/``. A user to whom
    the cgroup is not delegated cannot make a group: the child stays in ours."""
    mount_point = _cgroup2_mount()
    if mount_point is None:
        raise FileNotFoundError("no cgroup2 hierarchy in /proc/self/mountinfo")
    own = Path(mount_point + _own_cgroup2_path().rstrip("/"))
    group = own / f"part5-demo-{os.getpid()}"
    try:
        group.mkdir()
    except PermissionError:
        if os.geteuid() == 0:
            raise
        return _cgroup_in_place(own)
    try:

        def probe() -> dict:
            return {"namespace": ns_id("cgroup"), "/proc/self/cgroup": _cgroup_lines()}

        def in_group() -> list[dict]:
            Path(group, "cgroup.procs").write_text(f"{os.getpid()}\n")
            return [probe(), call_in_namespaces(probe, CloneFlags.NEWCGROUP)]

        host, child = call_in_namespaces(in_group, 0)
    finally:
        group.rmdir()
    return Comparison(
        "cgroup",
        CloneFlags.NEWCGROUP,
        "unshare --cgroup cat /proc/self/cgroup",
        ("", "host (same cgroup)", "inside"),
        tuple((k, host[k], child[k]) for k in host),
        (f"Both processes are in {group}; the namespace makes it the root of what the child sees.",),
    )


def _cgroup_in_place(own: Path) -> Comparison:
    """The cgroup demonstration without a group of its own (not delegated to this user)."""

    def probe() -> dict:
        return {"namespace": ns_id("cgroup"), "/proc/self/cgroup": _cgroup_lines()}

    host = probe()
    child, flags = _in_namespaces(probe, CloneFlags.NEWCGROUP)
    return Comparison(
        "cgroup",
        flags,
        _unshare("unshare --cgroup cat /proc/self/cgroup"),
        ("", "host (same cgroup)", "inside"),
        tuple((k, host[k], child[k]) for k in host),
        (
            f"{own} is not delegated to uid {os.geteuid()}, so no group of its own: the child stays in ours,",
            "and the namespace makes that group the root of what the child sees.",
        ),
    )


DEMOS: dict[str, Callable[[], Comparison]] = {
    "uts": demo_uts,
    "pid": demo_pid,
    "mount": demo_mount,
    "net": demo_net,
    "ipc": demo_ipc,
    "user": demo_user,
    "cgroup": demo_cgroup,
}
