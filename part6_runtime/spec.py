"""The container spec: what to run, and the safe defaults a runtime owes its users.

A ``ContainerSpec`` is a value (a frozen model, part 1's ``@model``): the capstone builds one per RUN step, the
chapter script builds one from the command line, and ``spec_from_bundle`` builds one from an
OCI runtime bundle's config.json. Nothing here touches the kernel.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from os import PathLike, fspath

from part1_overview import field, model
from part5_namespaces import IdMap

from .devices import DEFAULT_DEVICE_RULES, DeviceRule
from .errors import SpecError

#: the PATH a container gets when its environment has none (Docker's default)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Docker's default capability set (moby oci/caps/defaults.go); CapEff 0x00000000a80425fb
DOCKER_DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

#: what Docker hides from a container (runc's list, plus powercap, and /proc/interrupts and
#: the CPUs' thermal_throttle since moby #49560: a thermal side channel): files get /dev/null
#: bound over them, directories a read-only tmpfs; paths this kernel lacks are skipped, and a
#: ``*`` is expanded inside the container
DEFAULT_MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/interrupts",
    "/sys/devices/system/cpu/*/thermal_throttle",
)

#: what runc makes read-only: the kernel's knobs under /proc
DEFAULT_READONLY_PATHS = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

NETWORK_MODES = ("none", "host", "private")

#: the mounts every container gets from the setup steps: destination -> filesystem type
SYSTEM_MOUNTS = {
    "/proc": "proc", "/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs", "/dev/mqueue": "mqueue",
    "/sys": "sysfs", "/sys/fs/cgroup": "cgroup",
}

#: namespace names as in the runtime spec (linux.namespaces[].type)
NAMESPACES = ("pid", "mount", "uts", "ipc", "network", "user", "cgroup")

#: rlimit names accepted in Limits.rlimits (with or without the RLIMIT_ prefix, any case)
RLIMIT_NAMES = (
    "as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
    "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
)


@model(frozen=True)
class Mount:
    """An extra mount: ``bind`` (``source`` is a host path) or ``tmpfs``.

    A bind's ``source`` may also be an open descriptor (an ``int``): an ``O_PATH`` descriptor
    of a file or directory of the caller's mount namespace, or a detached mount tree made by
    ``open_tree(OPEN_TREE_CLONE)`` (what a caller that runs part 6 in a mount namespace of its
    own must give). The container then gets what the caller resolved and opened, whatever a
    path would point to by then (a symlink swapped in). The caller keeps it open until ``run``
    returns. ``options`` are mount(8)-style words:
    ``ro``, ``rw``, ``nosuid``, ``nodev``, ``noexec``, ``rbind``, and for tmpfs data such as
    ``size=64m`` or ``mode=1777``.
    """

    destination: str
    type: str = "bind"
    source: str | int | None = None
    options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))
        if not self.destination.startswith("/"):
            raise SpecError(f"mount destination {self.destination!r} must be an absolute path")
        if self.type == "bind" or "bind" in self.options or "rbind" in self.options:
            if self.source is None or self.source == "" or (isinstance(self.source, int) and self.source < 0):
                raise SpecError(f"bind mount on {self.destination} needs a source")
        elif self.type not in ("tmpfs", "proc", "sysfs", "devpts", "mqueue", "cgroup"):
            raise SpecError(f"mount on {self.destination}: unsupported type {self.type!r} (bind, tmpfs)")

    @property
    def is_bind(self) -> bool:
        return self.type == "bind" or "bind" in self.options or "rbind" in self.options

    @property
    def source_path(self) -> str | None:
        """The source as a path: ``/proc/self/fd/N`` for a descriptor."""
        return f"/proc/self/fd/{self.source}" if isinstance(self.source, int) else self.source


@model(frozen=True)
class Limits:
    """Resource limits: memory in bytes, a number of processes, CPUs (1.5 = one and a half
    CPUs of time per period) through cgroups; ``rlimits`` maps a name (``nofile``) to
    ``(soft, hard)``, applied within the hard limits the host allows."""

    memory: int | None = None
    pids: int | None = None
    cpus: float | None = None
    rlimits: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.memory is not None and self.memory < 4096:
            raise SpecError(f"memory limit {self.memory} is below one page")
        if self.pids is not None and self.pids < 1:
            raise SpecError(f"pids limit {self.pids} must be at least 1")
        if self.cpus is not None and self.cpus <= 0:
            raise SpecError(f"cpus {self.cpus} must be positive")
        normal = {}
        for name, value in dict(self.rlimits).items():
            key = name.lower().removeprefix("rlimit_")
            if key not in RLIMIT_NAMES:
                raise SpecError(f"unknown rlimit {name!r}")
            soft, hard = (value, value) if isinstance(value, int) else value
            if soft > hard:
                raise SpecError(f"rlimit {name}: soft {soft} above hard {hard}")
            normal[key] = (int(soft), int(hard))
        object.__setattr__(self, "rlimits", normal)

    @property
    def uses_cgroups(self) -> bool:
        return self.memory is not None or self.pids is not None or self.cpus is not None


@model(frozen=True)
class CapabilitySets:
    """The five capability sets of a process, by name (``CAP_CHOWN``), as in the runtime spec."""

    bounding: tuple[str, ...] = ()
    effective: tuple[str, ...] = ()
    permitted: tuple[str, ...] = ()
    inheritable: tuple[str, ...] = ()
    ambient: tuple[str, ...] = ()

    @classmethod
    def docker(cls, names: Iterable[str] = DOCKER_DEFAULT_CAPABILITIES, *, root: bool = True) -> "CapabilitySets":
        """Docker's rule: the set bounds everything; a root process also has it permitted and
        effective, a non-root process nothing; inheritable and ambient stay empty
        (CVE-2022-24769)."""
        names = tuple(names)
        return cls(bounding=names, effective=names if root else (), permitted=names if root else ())


@model(frozen=True)
class ContainerSpec:
    """Everything the runtime needs to start one container.

    ``rootfs`` is a directory on the host; ``args`` the command (looked up in the container's
    PATH); ``env`` ``KEY=VALUE`` strings (a mapping is accepted); ``user`` ``uid[:gid]`` or
    names from the container's /etc/passwd and /etc/group; ``network`` ``none`` (own network
    namespace with only loopback, up), ``host`` or ``private`` (own namespace, outbound access
    through slirp4netns). ``capabilities``: None is Docker's default set, a tuple of names is
    applied the Docker way, a :class:`CapabilitySets` exactly. ``masked_paths`` and
    ``readonly_paths``: None means runc's defaults. ``uid_maps``/``gid_maps`` (part 5
    ``IdMap``) put the container in a user namespace. ``seccomp``: True is Docker's default
    profile, False none, a dict a runtime-spec ``linux.seccomp`` object. ``devices``: the
    device cgroup rules (None: Docker's, deny all then runc's default list). ``nodev``: the
    root filesystem and every mount but /dev refuse to open device nodes. ``cgroupfs``:
    mount /sys/fs/cgroup (read-only, the container's own cgroup) as Docker's spec asks.
    """

    rootfs: str
    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: str = "0"
    hostname: str | None = "container"
    mounts: tuple[Mount, ...] = ()
    network: str = "none"
    limits: Limits = field(default_factory=Limits)
    readonly_rootfs: bool = False
    init: bool = False
    terminal: bool = False
    capabilities: tuple[str, ...] | CapabilitySets | None = None
    # beyond the contract's list: what an OCI bundle can also say
    additional_gids: tuple[int, ...] = ()
    no_new_privileges: bool = True
    seccomp: bool | dict = True
    masked_paths: tuple[str, ...] | None = None
    readonly_paths: tuple[str, ...] | None = None
    uid_maps: tuple[IdMap, ...] = ()
    gid_maps: tuple[IdMap, ...] = ()
    namespaces: frozenset[str] | None = None
    etc_files: bool = True  # bind generated /etc/hosts, /etc/hostname, /etc/resolv.conf
    #: options for the mounts the setup steps make (/proc, /dev, /dev/pts, /dev/shm,
    #: /dev/mqueue, /sys), by destination, replacing Docker's (an OCI bundle lists its own)
    system_mounts: tuple[Mount, ...] = ()
    devices: tuple[DeviceRule, ...] | None = None
    nodev: bool = True
    cgroupfs: bool = True

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("rootfs", fspath(self.rootfs) if isinstance(self.rootfs, PathLike) else str(self.rootfs))
        if isinstance(self.args, str):
            raise SpecError("args must be a sequence of strings, not one string")
        set_("args", tuple(self.args))
        if not self.args:
            raise SpecError("a container needs a command (args is empty)")
        if isinstance(self.env, Mapping):
            set_("env", tuple(f"{k}={v}" for k, v in self.env.items()))
        else:
            set_("env", tuple(self.env))
        for item in self.env:
            if "=" not in item or item.startswith("="):
                raise SpecError(f"environment entry {item!r} is not KEY=VALUE")
        if not self.cwd.startswith("/"):
            raise SpecError(f"working directory {self.cwd!r} must be absolute")
        if self.network not in NETWORK_MODES:
            raise SpecError(f"network {self.network!r}: expected one of {', '.join(NETWORK_MODES)}")
        if self.hostname is not None and not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,62})", self.hostname):
            raise SpecError(f"hostname {self.hostname!r} is not a valid host name")
        set_("mounts", tuple(self.mounts))
        set_("system_mounts", tuple(self.system_mounts))
        for m in self.system_mounts:
            if m.destination not in SYSTEM_MOUNTS:
                raise SpecError(f"system mount {m.destination}: expected one of {', '.join(SYSTEM_MOUNTS)}")
        if self.devices is not None:
            set_("devices", tuple(self.devices))
        set_("additional_gids", tuple(int(g) for g in self.additional_gids))
        set_("uid_maps", tuple(self.uid_maps))
        set_("gid_maps", tuple(self.gid_maps))
        if bool(self.uid_maps) != bool(self.gid_maps):
            raise SpecError("uid_maps and gid_maps go together (a user namespace needs both)")
        if isinstance(self.capabilities, (list, tuple)):
            set_("capabilities", tuple(_cap_name(c) for c in self.capabilities))
        if self.masked_paths is not None:
            set_("masked_paths", tuple(self.masked_paths))
        if self.readonly_paths is not None:
            set_("readonly_paths", tuple(self.readonly_paths))
        if self.namespaces is not None:
            set_("namespaces", frozenset(self.namespaces))
            unknown = self.namespaces - set(NAMESPACES)
            if unknown:
                raise SpecError(f"unknown namespace type(s): {', '.join(sorted(unknown))}")

    # -- derived values ------------------------------------------------------------------------
    @property
    def namespace_set(self) -> frozenset[str]:
        """The namespaces the container gets (the runtime spec's names)."""
        if self.namespaces is not None:
            names = set(self.namespaces)
        else:
            names = {"pid", "mount", "uts", "ipc", "cgroup"}
            if self.network != "host":
                names.add("network")
        if self.uid_maps:
            names.add("user")
        return frozenset(names)

    @property
    def device_rules(self) -> tuple[DeviceRule, ...]:
        """The device cgroup rules, in order: the spec's, or deny all then runc's list without
        block-device nodes (``DEFAULT_DEVICE_RULES``)."""
        return DEFAULT_DEVICE_RULES if self.devices is None else self.devices

    @property
    def effective_masked_paths(self) -> tuple[str, ...]:
        return DEFAULT_MASKED_PATHS if self.masked_paths is None else self.masked_paths

    @property
    def effective_readonly_paths(self) -> tuple[str, ...]:
        return DEFAULT_READONLY_PATHS if self.readonly_paths is None else self.readonly_paths


def _cap_name(name: str) -> str:
    name = name.upper()
    return name if name.startswith("CAP_") else "CAP_" + name


_SIZE = re.compile(r"(?i)^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$")


def parse_size(text: str | int) -> int:
    """``32m`` -> 33554432 (Docker's units: k, m, g, t are powers of 1024; plain = bytes)."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(text)
    if not m:
        raise SpecError(f"size {text!r}: expected a number with an optional k, m, g or t suffix")
    return int(float(m.group(1)) * 1024 ** "bkmgt".index((m.group(2) or "b").lower()))
