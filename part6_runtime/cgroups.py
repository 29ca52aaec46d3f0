"""The container's control group: resource limits and the device rules, v1 or v2.

A cgroup is a directory in a cgroup filesystem: writing a pid into its ``cgroup.procs``
moves the process (and its future children) in, and the files beside it are the limits.
Like runc, every container gets its own group, limits or not: the device rules
(devices.py) live there, and the container's ``/sys/fs/cgroup`` shows that group as its root.

- **v2** (one tree at /sys/fs/cgroup, ``cgroup.controllers`` at its top): ``memory.max``,
  ``memory.swap.max``, ``pids.max``, ``cpu.max``; a controller works in a child only after
  ``+name`` is written to the parent's ``cgroup.subtree_control``. The device rules are an
  eBPF program attached to the group (there is no controller file for them).
- **v1** (one tree per controller, /sys/fs/cgroup/memory, /sys/fs/cgroup/pids, ...; the
  "hybrid" layout of these machines): a directory in *every* mounted hierarchy, as runc
  makes them; ``memory.limit_in_bytes`` (+ ``memory.memsw.limit_in_bytes`` so the limit cannot
  be dodged into swap), ``pids.max``, ``cpu.cfs_quota_us``/``cfs_period_us``, and
  ``devices.deny``/``devices.allow``.

The kernel's OOM killer ends a process that needs more than the memory limit with SIGKILL
(exit status 137); fork(2) fails with EAGAIN once ``pids.max`` processes exist.

Rootless, a cgroup can be made only where the tree is *delegated*: a directory (the caller's
own cgroup, or on v2 its parent) that root gave to the user, as systemd does for
``user@UID.service``. Root of a user namespace is no help: the files belong to the host's root.
An unprivileged caller gets groups only for its limits (the hierarchies of the controllers
they need; no device rules: its user namespace already refuses device nodes), and
:func:`delegation_problem` says, before anything is made, why limits cannot apply here.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from part1_overview import field, model
from part5_namespaces import in_user_namespace, syscalls

from .devices import DeviceRule, device_filter
from .errors import ContainerError
from .spec import Limits

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000


class CgroupError(ContainerError):
    """A cgroup could not be created, limited, joined or removed."""


def cgroup_version(root: Path | None = None) -> int:
    """2 when /sys/fs/cgroup is the unified hierarchy, 1 for the legacy or hybrid layouts."""
    return 2 if ((root or CGROUP_ROOT) / "cgroup.controllers").exists() else 1


@model(frozen=True)
class Hierarchy:
    """A mounted v1 hierarchy: its name under /sys/fs/cgroup (``cpu``, ``cpu,cpuacct``,
    ``systemd``) and the mount options that name it (``cpu,cpuacct``, ``name=systemd``)."""

    name: str
    options: str

    @property
    def controllers(self) -> tuple[str, ...]:
        return tuple(self.options.split(","))


#: super options of a v1 cgroup mount that do not name a controller
_NOT_CONTROLLERS = {"rw", "ro", "xattr", "noprefix", "clone_children", "cpuset_v2_mode", "favordynmods"}


def v1_hierarchies(root: Path | None = None) -> list[Hierarchy]:
    """The cgroup v1 hierarchies mounted directly below ``root`` (from /proc/self/mountinfo)."""
    root = root or CGROUP_ROOT
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            dash = fields.index("-")
            mount_point, fstype, super_options = fields[4], fields[dash + 1], fields[dash + 3]
            if fstype != "cgroup" or os.path.dirname(mount_point) != str(root):
                continue
            wanted = [o for o in super_options.split(",") if o not in _NOT_CONTROLLERS and ("=" not in o or o.startswith("name="))]
            found.append(Hierarchy(os.path.basename(mount_point), ",".join(wanted)))
    return found


def caller_members(root: Path | None = None) -> tuple[int, tuple[tuple[str, str, Path], ...]]:
    """(version, members) of the caller's own cgroup, for a container that gets none of its
    own (an unprivileged caller): what its /sys/fs/cgroup shows then."""
    root = root or CGROUP_ROOT
    if cgroup_version(root) == 2:
        return 2, (("", "", root / _own_v2_path().lstrip("/")),)
    return 1, tuple((h.name, h.options, root / h.name / _own_v1_path(h.controllers[0]).lstrip("/"))
                    for h in v1_hierarchies(root))


def privileged() -> bool:
    """Root of the host, who may make cgroups anywhere (root of a user namespace may not)."""
    return os.geteuid() == 0 and not in_user_namespace()


def _own_v2_path() -> str:
    """The caller's cgroup in the unified hierarchy (``0::/a/b``)."""
    with open("/proc/self/cgroup") as f:
        return next((line.rstrip("\n").split(":", 2)[2] for line in f if line.startswith("0::")), "/")


def _limit_controllers(limits: Limits) -> list[str]:
    """The controllers ``limits`` need, in a fixed order."""
    needs = {"memory": limits.memory, "pids": limits.pids, "cpu": limits.cpus}
    return [controller for controller, value in needs.items() if value is not None]


def _delegated_v2_base(root: Path) -> Path:
    """Where an unprivileged caller makes v2 groups: beside its own cgroup, in the parent
    (v2's "no internal processes" rule: the caller's own group holds it, so it cannot also
    hand controllers to children; systemd's user@UID.service delegation is laid out so)."""
    own = root / _own_v2_path().lstrip("/")
    return own.parent if own != root else own


def _unprivileged_parents(limits: Limits, root: Path) -> list[Path]:
    """Where an unprivileged caller would make the groups for ``limits``."""
    if cgroup_version(root) == 2:
        return [_delegated_v2_base(root)]
    wanted = set(_limit_controllers(limits))
    return [root / h.name / _own_v1_path(h.controllers[0]).lstrip("/")
            for h in v1_hierarchies(root) if wanted & set(h.controllers)]


def delegation_problem(limits: Limits, root: Path | None = None) -> str | None:
    """Why ``limits`` cannot be applied by this process, in one line; None when they can (or
    need no cgroup). Only a privileged caller or a delegated cgroup tree can make groups."""
    if not limits.uses_cgroups or privileged():
        return None
    for parent in _unprivileged_parents(limits, root or CGROUP_ROOT):
        if not os.access(parent, os.W_OK):
            return (f"cgroup limits need a cgroup delegated to this user, and {parent} is not "
                    "(ask root to delegate one, or run without limits)")
    return None


def _own_v1_path(controller: str) -> str:
    """The caller's cgroup in a v1 hierarchy, from /proc/self/cgroup (``4:memory:/a/b``)."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                return path
    return "/"


def _write(path: Path, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise CgroupError(f"writing {value!r} to {path}: {os.strerror(e.errno)}") from e


@model
class Cgroup:
    """The cgroup directories of one container (one per v1 hierarchy, or one v2 directory).

    ``members``: (name under /sys/fs/cgroup, mount options, directory) per hierarchy, what
    the container's ``/sys/fs/cgroup`` is made of (v2: one entry named ``""``)."""

    version: int
    directories: tuple[Path, ...] = ()
    members: tuple[tuple[str, str, Path], ...] = field(default=())

    @classmethod
    def create(cls, name: str, limits: Limits, root: Path | None = None,
               devices: tuple[DeviceRule, ...] | None = None) -> "Cgroup":
        """Make the container's cgroup(s) named ``name`` and write ``limits`` and the device
        rules ``devices`` (None: no device rules) into them."""
        root = root or CGROUP_ROOT
        if cgroup_version(root) == 2:
            return cls._create_v2(name, limits, root, devices)
        return cls._create_v1(name, limits, root, devices)

    @classmethod
    def _create_v1(cls, name: str, limits: Limits, root: Path, devices) -> "Cgroup":
        group = cls(1)
        hierarchies = v1_hierarchies(root)
        present = {c for h in hierarchies for c in h.controllers}
        if not privileged():  # a delegated tree: only the hierarchies the limits need
            wanted = set(_limit_controllers(limits))
            hierarchies = [h for h in hierarchies if wanted & set(h.controllers)]
        for controller in [c for c in ("memory", "pids", "cpu") if getattr(limits, c if c != "cpu" else "cpus") is not None]:
            if controller not in present:
                raise CgroupError(f"cgroup v1 controller {controller} is not mounted at {root / controller}")
        if devices is not None and "devices" not in present:
            raise CgroupError(f"cgroup v1 controller devices is not mounted at {root / 'devices'}")
        try:
            for h in hierarchies:
                # below the caller's own cgroup: the container stays inside whatever limits
                # the caller itself runs under
                directory = root / h.name / _own_v1_path(h.controllers[0]).lstrip("/") / name
                try:
                    directory.mkdir()
                except OSError as e:
                    raise CgroupError(f"mkdir {directory}: {os.strerror(e.errno)}") from e
                group.directories += (directory,)
                group.members += ((h.name, h.options, directory),)
                cls._fill_v1(directory, h.controllers, limits, devices)
        except BaseException:
            group.remove()
            raise
        return group

    @staticmethod
    def _fill_v1(directory: Path, controllers: tuple[str, ...], limits: Limits, devices) -> None:
        if "cpuset" in controllers:
            # a new cpuset is empty, and a process cannot join an empty one: take the parent's
            for knob in ("cpuset.cpus", "cpuset.mems"):
                if not (directory / knob).read_text().strip():
                    _write(directory / knob, (directory.parent / knob).read_text().strip())
        if "memory" in controllers and limits.memory is not None:
            _write(directory / "memory.limit_in_bytes", str(limits.memory))
            memsw = directory / "memory.memsw.limit_in_bytes"
            if memsw.exists():  # only with swap accounting; memsw must be >= the limit
                _write(memsw, str(limits.memory))
        if "pids" in controllers and limits.pids is not None:
            _write(directory / "pids.max", str(limits.pids))
        if "cpu" in controllers and limits.cpus is not None:
            _write(directory / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(directory / "cpu.cfs_quota_us", str(max(1000, int(limits.cpus * CPU_PERIOD_US))))
        if "devices" in controllers and devices is not None:
            for rule in devices:
                _write(directory / ("devices.allow" if rule.allow else "devices.deny"), rule.v1_line)

    @classmethod
    def _create_v2(cls, name: str, limits: Limits, root: Path, devices) -> "Cgroup":
        wanted = _limit_controllers(limits)
        available = (root / "cgroup.controllers").read_text().split()
        missing = [c for c in wanted if c not in available]
        if missing:
            raise CgroupError(f"cgroup v2 controller(s) {', '.join(missing)} not available in {root}")
        enable = " ".join(f"+{c}" for c in wanted)
        if privileged():
            base = root / "part6"
            base.mkdir(exist_ok=True)
            # "no internal processes": controllers are delegated from the root to part6 to us
            if enable:
                _write(root / "cgroup.subtree_control", enable)
                _write(base / "cgroup.subtree_control", enable)
        else:
            base = _delegated_v2_base(root)
            if enable:
                _write(base / "cgroup.subtree_control", enable)
        directory = base / name
        try:
            directory.mkdir()
        except OSError as e:
            raise CgroupError(f"mkdir {directory}: {os.strerror(e.errno)}") from e
        group = cls(2, (directory,), (("", "", directory),))
        try:
            if limits.memory is not None:
                _write(directory / "memory.max", str(limits.memory))
                if (directory / "memory.swap.max").exists():
                    _write(directory / "memory.swap.max", "0")
            if limits.pids is not None:
                _write(directory / "pids.max", str(limits.pids))
            if limits.cpus is not None:
                _write(directory / "cpu.max", f"{max(1000, int(limits.cpus * CPU_PERIOD_US))} {CPU_PERIOD_US}")
            if devices is not None:
                attach_device_filter(directory, devices)
        except BaseException:
            group.remove()
            raise
        return group

    def add(self, pid: int) -> None:
        """Move process ``pid`` into the cgroup(s); its children are born inside."""
        for directory in self.directories:
            _write(directory / "cgroup.procs", str(pid))

    def read(self, filename: str) -> str | None:
        """A control file of the first directory that has it (``memory.max_usage_in_bytes``)."""
        for directory in self.directories:
            if (directory / filename).exists():
                return (directory / filename).read_text().strip()
        return None

    def oom_killed(self) -> bool:
        """Whether the OOM killer ended a process of this cgroup."""
        if self.version == 2:
            events = self.read("memory.events") or ""
            return any(line.split()[0] == "oom_kill" and int(line.split()[1]) > 0 for line in events.splitlines())
        control = self.read("memory.oom_control") or ""
        return any(line.startswith("oom_kill ") and int(line.split()[1]) > 0 for line in control.splitlines())

    def remove(self, timeout: float = 5.0) -> None:
        """rmdir the directories; processes that are still exiting get ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        for directory in self.directories:
            while True:
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise CgroupError(f"rmdir {directory}: {os.strerror(e.errno)}") from e
                    time.sleep(0.02)
        self.directories = ()
        self.members = ()


def attach_device_filter(directory: Path, rules: tuple[DeviceRule, ...]) -> None:
    """Load the eBPF program for ``rules`` and attach it to the v2 cgroup ``directory``; it
    stays attached (and loaded) as long as the cgroup exists."""
    try:
        prog = syscalls.bpf_prog_load(syscalls.BPF_PROG_TYPE_CGROUP_DEVICE, device_filter(rules))
    except OSError as e:
        raise CgroupError(f"loading the device filter for {directory}: {e.strerror}") from e
    try:
        target = os.open(directory, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            syscalls.bpf_prog_attach(target, prog, syscalls.BPF_CGROUP_DEVICE)
        finally:
            os.close(target)
    except OSError as e:
        raise CgroupError(f"attaching the device filter to {directory}: {e.strerror}") from e
    finally:
        os.close(prog)
