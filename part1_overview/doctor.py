"""What this host can do for the course: ``doctor()``.

Every check reads a file or looks a program up on PATH; nothing is changed. The chapters use
the report to explain what will work here and why something will not.
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import asdict, dataclass, field

#: tools the course uses, and what for
TOOLS: dict[str, str] = {
    "busybox": "the static userland of the part 2 image (busybox-static)",
    "skopeo": "inspect and copy images between layouts, archives and registries",
    "umoci": "unpack an OCI image into a runtime bundle",
    "runc": "the reference OCI runtime, to compare with part 6",
    "oci-image-tool": "validate an OCI image layout",
    "buildah": "the reference builder for the benchmarks",
    "newuidmap": "map a range of uids into a user namespace (uidmap package)",
    "newgidmap": "map a range of gids into a user namespace (uidmap package)",
    "slirp4netns": "outbound network for rootless containers",
    "docker-registry": "a local registry on 127.0.0.1 for push and pull tests",
}


@dataclass(frozen=True)
class HostReport:
    """The facts ``doctor()`` found."""

    kernel: str
    machine: str
    root: bool
    user_namespaces: bool
    max_user_namespaces: int | None
    overlayfs: bool
    cgroup_version: str  # "v1", "v2", "hybrid" or "none"
    seccomp: bool
    pivot_root: bool
    tools: dict[str, str | None] = field(default_factory=dict)  # name -> path or None

    def to_json(self) -> dict:
        return asdict(self)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def cgroup_version() -> str:
    """``v2`` (unified only), ``hybrid`` (v1 controllers plus /sys/fs/cgroup/unified), ``v1`` or ``none``."""
    mounts = _read("/proc/self/mounts") or ""
    types = {(line.split()[1], line.split()[2]) for line in mounts.splitlines() if len(line.split()) > 2}
    if ("/sys/fs/cgroup", "cgroup2") in types:
        return "v2"
    has_v1 = any(fs == "cgroup" for _, fs in types)
    has_v2 = any(fs == "cgroup2" for _, fs in types)
    if has_v1 and has_v2:
        return "hybrid"
    if has_v1:
        return "v1"
    return "none"


def doctor() -> HostReport:
    """Look at this host and report what the course can do on it."""
    max_userns_text = _read("/proc/sys/user/max_user_namespaces")
    max_userns = int(max_userns_text) if max_userns_text and max_userns_text.strip().isdigit() else None
    unpriv = _read("/proc/sys/kernel/unprivileged_userns_clone")
    userns = os.path.exists("/proc/self/ns/user") and (max_userns or 0) > 0
    if unpriv is not None and unpriv.strip() == "0" and os.geteuid() != 0:
        userns = False
    filesystems = _read("/proc/filesystems") or ""
    status = _read("/proc/self/status") or ""
    seccomp = any(line.startswith("Seccomp:") for line in status.splitlines())
    uname = platform.uname()
    return HostReport(
        kernel=uname.release,
        machine=uname.machine,
        root=os.geteuid() == 0,
        user_namespaces=userns,
        max_user_namespaces=max_userns,
        overlayfs=any(line.split()[-1] == "overlay" for line in filesystems.splitlines() if line.split()),
        cgroup_version=cgroup_version(),
        seccomp=seccomp,
        # pivot_root(2) exists on every Linux; it needs CAP_SYS_ADMIN in the mount namespace,
        # which root or a user namespace gives.
        pivot_root=uname.system == "Linux" and (os.geteuid() == 0 or userns),
        tools={name: shutil.which(name) for name in TOOLS},
    )
