"""Resource limits through control groups, v1 or v2, whichever the host has.

A cgroup is a directory in a cgroup filesystem: writing a pid into its ``cgroup.procs``
moves the process (and its future children) in, and the files beside it are the limits.

- **v2** (one tree at /sys/fs/cgroup, ``cgroup.controllers`` at its top): ``memory.max``,
  ``memory.swap.max``, ``pids.max``, ``cpu.max``; a controller works in a child only after
  ``+name`` is written to the parent's ``cgroup.subtree_control``.
- **v1** (one tree per controller, /sys/fs/cgroup/memory, /sys/fs/cgroup/pids, ...; the
  "hybrid" layout of these machines): ``memory.limit_in_bytes`` (+ ``memory.memsw.limit_in_bytes``
  so the limit cannot be dodged into swap), ``pids.max``, ``cpu.cfs_quota_us``/``cfs_period_us``.

The kernel's OOM killer ends a process that needs more than the memory limit with SIGKILL
(exit status 137); fork(2) fails with EAGAIN once ``pids.max`` processes exist.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import ContainerError
from .spec import Limits

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000


class CgroupError(ContainerError):
    """A cgroup could not be created, limited, joined or removed."""


def cgroup_version(root: Path = CGROUP_ROOT) -> int:
    """2 when /sys/fs/cgroup is the unified hierarchy, 1 for the legacy or hybrid layouts."""
    return 2 if (root / "cgroup.controllers").exists() else 1


def _controllers_for(limits: Limits) -> list[str]:
    """The controllers that ``limits`` needs, in a fixed order."""
    needs = {"memory": limits.memory, "pids": limits.pids, "cpu": limits.cpus}
    return [controller for controller, value in needs.items() if value is not None]


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


@dataclass
class Cgroup:
    """The cgroup directories of one container (one per v1 controller, or one v2 directory)."""

    version: int
    directories: tuple[Path, ...]

    @classmethod
    def create(cls, name: str, limits: Limits, root: Path = CGROUP_ROOT) -> "Cgroup":
        """Make the container's cgroup(s) named ``name`` and write ``limits`` into them."""
        if cgroup_version(root) == 2:
            return cls._create_v2(name, limits, root)
        return cls._create_v1(name, limits, root)

    @classmethod
    def _create_v1(cls, name: str, limits: Limits, root: Path) -> "Cgroup":
        wanted = _controllers_for(limits)
        made: list[Path] = []
        group = cls(1, ())
        try:
            for controller in wanted:
                mount = root / controller
                if not (mount / "cgroup.procs").exists():
                    raise CgroupError(f"cgroup v1 controller {controller} is not mounted at {mount}")
                # below the caller's own cgroup: the container stays inside whatever limits
                # the caller itself runs under
                parent = mount / _own_v1_path(controller).lstrip("/")
                directory = parent / name
                try:
                    directory.mkdir()
                except OSError as e:
                    raise CgroupError(f"mkdir {directory}: {os.strerror(e.errno)}") from e
                made.append(directory)
                group.directories = tuple(made)
                if controller == "memory":
                    _write(directory / "memory.limit_in_bytes", str(limits.memory))
                    memsw = directory / "memory.memsw.limit_in_bytes"
                    if memsw.exists():  # only with swap accounting; memsw must be >= the limit
                        _write(memsw, str(limits.memory))
                elif controller == "pids":
                    _write(directory / "pids.max", str(limits.pids))
                elif controller == "cpu":
                    _write(directory / "cpu.cfs_period_us", str(CPU_PERIOD_US))
                    _write(directory / "cpu.cfs_quota_us", str(max(1000, int(limits.cpus * CPU_PERIOD_US))))
        except BaseException:
            group.remove()
            raise
        return group

    @classmethod
    def _create_v2(cls, name: str, limits: Limits, root: Path) -> "Cgroup":
        wanted = _controllers_for(limits)
        available = (root / "cgroup.controllers").read_text().split()
        missing = [c for c in wanted if c not in available]
        if missing:
            raise CgroupError(f"cgroup v2 controller(s) {', '.join(missing)} not available in {root}")
        base = root / "part6"
        base.mkdir(exist_ok=True)
        # "no internal processes": controllers are delegated from the root to part6 to us
        enable = " ".join(f"+{c}" for c in wanted)
        if enable:
            _write(root / "cgroup.subtree_control", enable)
            _write(base / "cgroup.subtree_control", enable)
        directory = base / name
        try:
            directory.mkdir()
        except OSError as e:
            raise CgroupError(f"mkdir {directory}: {os.strerror(e.errno)}") from e
        group = cls(2, (directory,))
        try:
            if limits.memory is not None:
                _write(directory / "memory.max", str(limits.memory))
                if (directory / "memory.swap.max").exists():
                    _write(directory / "memory.swap.max", "0")
            if limits.pids is not None:
                _write(directory / "pids.max", str(limits.pids))
            if limits.cpus is not None:
                _write(directory / "cpu.max", f"{max(1000, int(limits.cpus * CPU_PERIOD_US))} {CPU_PERIOD_US}")
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
