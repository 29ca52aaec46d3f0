"""What this host can do for the course: ``doctor()``.

Every check reads a file or looks a program up on PATH; nothing is changed. The chapters use
the report to explain what will work here and why something will not.
"""

from __future__ import annotations

import os
import platform
import pwd
import re
import shutil

from .models import asdict, field, model, replace

#: tools the course uses, and what for
TOOLS: dict[str, str] = {
    "busybox": "the static userland of the part 2 image (busybox-static)",
    "skopeo": "inspect and copy images between layouts, archives and registries",
    "umoci": "unpack an OCI image into a runtime bundle",
    "runc": "the reference OCI runtime, to compare with part 6",
    "oci-image-tool": "validate an OCI image layout",
    "buildah": "the reference builder for the benchmarks",
    "podman": "the reference engine for side-by-side runs in the benchmarks",
    "newuidmap": "map a range of uids into a user namespace (uidmap package)",
    "newgidmap": "map a range of gids into a user namespace (uidmap package)",
    "slirp4netns": "outbound network for rootless containers",
    "docker-registry": "a local registry on 127.0.0.1 for push and pull tests",
}

#: which chapters use each tool
TOOL_PARTS: dict[str, str] = {
    "busybox": "parts 2, 3, 6 (the base image)",
    "skopeo": "parts 2, 3 (interop checks)",
    "umoci": "parts 2, 3, 4, 6 (interop checks)",
    "runc": "parts 2, 3, 6 (interop checks)",
    "oci-image-tool": "parts 2, 3, 4 (validation)",
    "buildah": "capstone benchmarks",
    "podman": "capstone benchmarks",
    "newuidmap": "part 5 (rootless)",
    "newgidmap": "part 5 (rootless)",
    "slirp4netns": "part 6 (rootless network)",
    "docker-registry": "capstone push/pull",
}

#: what stops working on a host that lacks a feature or a tool (the tour's warnings say it)
IF_MISSING: dict[str, str] = {
    "root": "parts 5-7 and RUN work only inside a user namespace (rootless); part 6's cgroup "
    "limits, runc and the interop tests that run images need root",
    "user namespaces": "part 5's user namespace demo and every rootless run (parts 5-7 as a "
    "non-root user) will not work",
    "overlayfs": "part 7 cannot mount a union; its copy snapshotter stands in for overlayfs "
    "(slower, more disk)",
    "cgroups": "part 6 cannot limit memory, pids or CPU: containers run without limits",
    "seccomp": "part 6 cannot put its syscall filter (Docker's default profile) on a container",
    "pivot_root": "part 6 cannot switch a container into its root filesystem: containers and "
    "RUN will not start",
    "busybox": "part 2 cannot build its busybox image, so parts 3 and 6 and their tests have "
    "no base image",
    "skopeo": "the skopeo interop checks of parts 2 and 3 fail; nothing copies images from "
    "registries into a layout",
    "umoci": "images cannot be unpacked into runtime bundles: the run checks of parts 2-4 "
    "and 6 fail",
    "runc": "images cannot be run with the reference runtime: the run checks of parts 2, 3 "
    "and 6 fail",
    "oci-image-tool": "layouts are checked only by our own validate_layout, not by the "
    "spec's tool: the validation checks of parts 2-4 fail",
    "buildah": "not installed: benchmarks have no reference",
    "podman": "not installed: benchmarks have no reference",
    "newuidmap": "a non-root user can map only its own uid into a user namespace, not its "
    "/etc/subuid range",
    "newgidmap": "a non-root user can map only its own gid into a user namespace, not its "
    "/etc/subgid range",
    "slirp4netns": "rootless containers get no outbound network",
    "docker-registry": "the capstone's push and pull tests have no local registry",
}

#: tools only the benchmarks use: a host without them runs every chapter and test, so their
#: absence is reported, never counted as a failed check
OPTIONAL_TOOLS = frozenset({"buildah", "podman"})

#: the Debian package of each tool
TOOL_PACKAGES: dict[str, str] = {
    "busybox": "busybox-static",
    "newuidmap": "uidmap",
    "newgidmap": "uidmap",
}


@model(frozen=True)
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
    #: seccomp of this process: "disabled", "strict" or "filter" (None: kernel without seccomp)
    seccomp_mode: str | None = None
    #: how many seccomp filters already sit on this process (a container runtime adds one more)
    seccomp_filters: int | None = None
    #: the filter actions the kernel offers (/proc/sys/kernel/seccomp/actions_avail)
    seccomp_actions: tuple[str, ...] = ()
    #: Debian/Ubuntu's switch for user namespaces without privilege (None: no such switch)
    unprivileged_userns_clone: bool | None = None
    #: Ubuntu 23.10+'s AppArmor restriction on unprivileged user namespaces (None: absent)
    apparmor_restricts_userns: bool | None = None
    #: subordinate uid ranges of the current user in /etc/subuid (rootless ranges need them)
    subuid_ranges: int = 0
    #: overlayfs in a user namespace ("userxattr") needs kernel 5.11 or later
    overlay_in_userns: bool = False
    #: the cgroup v2 controllers enabled at the root of the unified hierarchy
    cgroup2_controllers: tuple[str, ...] = ()
    #: what each tool in ``tools`` is used for in the course
    tool_purposes: dict[str, str] = field(default_factory=lambda: dict(TOOLS))

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


def _flag(path: str) -> bool | None:
    text = _read(path)
    if text is None or not text.strip().lstrip("-").isdigit():
        return None
    return int(text) != 0


def _kernel_at_least(release: str, major: int, minor: int) -> bool:
    m = re.match(r"(\d+)\.(\d+)", release)
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (major, minor)


def _seccomp(status: str) -> tuple[str | None, int | None]:
    """The ``Seccomp:`` mode (0 disabled, 1 strict, 2 filter) and ``Seccomp_filters:`` count."""
    mode = filters = None
    for line in status.splitlines():
        key, _, value = line.partition(":")
        value = value.strip()
        if key == "Seccomp" and value.isdigit():
            mode = {0: "disabled", 1: "strict", 2: "filter"}.get(int(value), value)
        elif key == "Seccomp_filters" and value.isdigit():
            filters = int(value)
    return mode, filters


def _subuid_ranges(user: str, uid: int, path: str = "/etc/subuid") -> int:
    count = 0
    for line in (_read(path) or "").splitlines():
        owner = line.split(":", 1)[0].strip()
        if owner and owner in (user, str(uid)):
            count += 1
    return count


def _cgroup2_controllers() -> tuple[str, ...]:
    for path in ("/sys/fs/cgroup/cgroup.controllers", "/sys/fs/cgroup/unified/cgroup.controllers"):
        text = _read(path)
        if text is not None:
            return tuple(text.split())
    return ()


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
    seccomp_mode, seccomp_filters = _seccomp(status)
    uname = platform.uname()
    uid = os.geteuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
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
        seccomp_mode=seccomp_mode,
        seccomp_filters=seccomp_filters,
        seccomp_actions=tuple((_read("/proc/sys/kernel/seccomp/actions_avail") or "").split()),
        unprivileged_userns_clone=_flag("/proc/sys/kernel/unprivileged_userns_clone"),
        apparmor_restricts_userns=_flag("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
        subuid_ranges=_subuid_ranges(user, uid),
        overlay_in_userns=_kernel_at_least(uname.release, 5, 11),
        cgroup2_controllers=_cgroup2_controllers(),
    )


@model(frozen=True)
class HostCheck:
    """One line of the host table: a feature, whether this host has it, who needs it, and
    what will not work without it (``if_missing``)."""

    name: str
    ok: bool
    detail: str
    needed_by: str
    if_missing: str = ""
    #: a missing optional tool is reported but is not a failed check (see ``OPTIONAL_TOOLS``)
    optional: bool = False

    @property
    def failed(self) -> bool:
        return not self.ok and not self.optional

    def to_json(self) -> dict:
        return asdict(self)


def host_checks(report: HostReport) -> list[HostCheck]:
    """The report as the rows of the host table, kernel features first, then the tools."""
    userns_detail = f"max_user_namespaces={report.max_user_namespaces}"
    if report.unprivileged_userns_clone is not None:
        userns_detail += f", unprivileged_userns_clone={int(report.unprivileged_userns_clone)}"
    if report.apparmor_restricts_userns is not None:
        userns_detail += f", apparmor_restrict_unprivileged_userns={int(report.apparmor_restricts_userns)}"
    userns_detail += f", {report.subuid_ranges} /etc/subuid range(s) for this user"
    seccomp_detail = (
        f"this process: {report.seccomp_mode}, {report.seccomp_filters} filter(s); "
        f"actions: {' '.join(report.seccomp_actions) or 'none'}"
        if report.seccomp
        else "kernel built without seccomp"
    )
    cgroup_detail = {
        "v2": "unified hierarchy at /sys/fs/cgroup",
        "hybrid": "v1 controllers, plus cgroup2 at /sys/fs/cgroup/unified",
        "v1": "v1 controllers only",
        "none": "no cgroup filesystem mounted",
    }.get(report.cgroup_version, report.cgroup_version)
    if report.cgroup2_controllers:
        cgroup_detail += f" (v2 controllers: {' '.join(report.cgroup2_controllers)})"
    rows = [
        HostCheck("root", report.root, f"euid={os.geteuid()}", "parts 5-7 (or a user namespace)"),
        HostCheck("user namespaces", report.user_namespaces, userns_detail, "part 5, rootless runs"),
        HostCheck(
            "overlayfs",
            report.overlayfs,
            "in /proc/filesystems" + ("; usable in a user namespace (5.11+)" if report.overlay_in_userns else ""),
            "part 7, capstone RUN",
        ),
        HostCheck("cgroups", report.cgroup_version != "none", cgroup_detail, "part 6 limits"),
        HostCheck("seccomp", report.seccomp, seccomp_detail, "part 6"),
        HostCheck(
            "pivot_root",
            report.pivot_root,
            f"{report.kernel} {report.machine}, needs CAP_SYS_ADMIN in the mount namespace",
            "part 6",
        ),
    ]
    for name, path in report.tools.items():
        purpose = report.tool_purposes.get(name, "")
        rows.append(HostCheck(name, path is not None, f"{path or 'not found on PATH'}: {purpose}", TOOL_PARTS.get(name, ""),
                              optional=name in OPTIONAL_TOOLS))
    for i, row in enumerate(rows):
        effect = IF_MISSING.get(row.name, f"{row.needed_by} will not work")
        if row.name in report.tools:
            effect += f" (Debian: apt-get install {TOOL_PACKAGES.get(row.name, row.name)})"
        rows[i] = replace(row, if_missing=effect)
    return rows
