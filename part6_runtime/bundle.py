"""OCI runtime bundles: a directory with ``config.json`` and a root filesystem.

``umoci unpack`` produces one from an image; ``runc run`` runs it. This module reads the
subset of the runtime spec (config.json) that this runtime implements into a
``ContainerSpec``. Whatever it does not implement is *reported* (a list of warnings naming
the JSON path, also issued as ``BundleWarning``), never silently dropped.

The mounts a runtime always provides (/proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys,
/sys/fs/cgroup) are recognised and done by the setup steps with the bundle's options; other
bind and tmpfs mounts become ``Mount``s. As runc: a bundle without a mount namespace is
refused (pivot_root would move the caller's own root), ``linux.seccomp`` is loaded, the
device cgroup is the bundle's ``linux.resources.devices`` followed by runc's default list,
and the root filesystem keeps the device semantics config.json gives it (no ``nodev``
added: only part 6's own containers get that).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from part5_namespaces import IdMap

from .devices import RUNC_ALLOWED_DEVICES, parse_device_rule
from .errors import BundleError, SpecError
from .seccomp import profile_rules
from .spec import NAMESPACES, SYSTEM_MOUNTS, CapabilitySets, ContainerSpec, Limits, Mount


class BundleWarning(UserWarning):
    """A config.json field this runtime does not implement."""


#: mounts the setup steps make themselves: destination -> the type they use
BUILTIN_MOUNTS = SYSTEM_MOUNTS

_TOP = {"ociVersion", "process", "root", "hostname", "mounts", "linux", "annotations"}
_PROCESS = {"terminal", "user", "args", "env", "cwd", "capabilities", "rlimits", "noNewPrivileges"}
_USER = {"uid", "gid", "additionalGids"}
_CAPS = {"bounding", "effective", "permitted", "inheritable", "ambient"}
_ROOT = {"path", "readonly"}
_MOUNT = {"destination", "type", "source", "options"}
_LINUX = {"namespaces", "uidMappings", "gidMappings", "maskedPaths", "readonlyPaths", "resources", "seccomp"}
_SECCOMP = {"defaultAction", "defaultErrnoRet", "architectures", "syscalls"}
_RESOURCES = {"memory", "pids", "cpu", "devices"}


def load_bundle(bundle_dir: str | os.PathLike) -> tuple[ContainerSpec, list[str]]:
    """Read ``bundle_dir/config.json``: (the spec, warnings for fields not implemented)."""
    bundle = Path(bundle_dir)
    path = bundle / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(f"{path}: no config.json in the bundle") from None
    except json.JSONDecodeError as e:
        raise BundleError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
    if not isinstance(config, dict):
        raise BundleError(f"{path}: the top level must be an object")
    w: list[str] = []
    try:
        spec = _spec(bundle, config, w)
    except SpecError as e:
        raise BundleError(f"{path}: {e}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise BundleError(f"{path}: invalid field: {e}") from None
    return spec, w


def spec_from_bundle(bundle_dir: str | os.PathLike) -> ContainerSpec:
    """The ``ContainerSpec`` of a bundle; each unimplemented field is issued as a BundleWarning."""
    spec, found = load_bundle(bundle_dir)
    for message in found:
        warnings.warn(message, BundleWarning, stacklevel=2)
    return spec


def run_bundle(bundle_dir: str | os.PathLike, **stdio) -> int:
    """Run a bundle like ``runc run``: the exit code of its process."""
    from .runtime import run

    return run(spec_from_bundle(bundle_dir), **stdio)


def _unknown(obj: dict, known: set[str], where: str, w: list[str]) -> None:
    for key in obj:
        if key not in known:
            w.append(f"{where}.{key}: not implemented by this runtime, ignored")


def _spec(bundle: Path, config: dict, w: list[str]) -> ContainerSpec:
    """The ContainerSpec a bundle's config.json asks for (``w`` collects what is ignored)."""
    _unknown(config, _TOP, "config", w)
    process = config.get("process") or {}
    if not process.get("args"):
        raise BundleError("process.args is required")
    _unknown(process, _PROCESS, "process", w)
    user = process.get("user") or {}
    _unknown(user, _USER, "process.user", w)
    capabilities = _capabilities(process, w)
    root = config.get("root") or {}
    _unknown(root, _ROOT, "root", w)
    rootfs = Path(root.get("path", "rootfs"))
    if not rootfs.is_absolute():
        rootfs = bundle / rootfs
    mounts, system_mounts = _mounts(config, w)
    linux = config.get("linux") or {}
    _unknown(linux, _LINUX, "linux", w)
    namespaces, uid_maps, gid_maps = _namespaces(linux, w)
    limits, devices = _resources(linux.get("resources") or {}, process, w)
    seccomp = _seccomp(linux, w)
    uid = int(user.get("uid", 0))
    gid = int(user.get("gid", 0))
    return ContainerSpec(
        rootfs=str(rootfs),
        args=tuple(process["args"]),
        env=tuple(process.get("env") or ()),
        cwd=process.get("cwd", "/"),
        user=f"{uid}:{gid}",
        additional_gids=tuple(user.get("additionalGids") or ()),
        hostname=config.get("hostname") or None,
        mounts=tuple(mounts),
        network="none" if "network" in namespaces else "host",
        limits=limits,
        readonly_rootfs=bool(root.get("readonly", False)),
        terminal=bool(process.get("terminal", False)),
        capabilities=capabilities,
        no_new_privileges=bool(process.get("noNewPrivileges", False)),
        # the runtime spec filters system calls only when linux.seccomp says so
        seccomp=seccomp if seccomp is not None else False,
        masked_paths=tuple(linux.get("maskedPaths") or ()),
        readonly_paths=tuple(linux.get("readonlyPaths") or ()),
        uid_maps=uid_maps,
        gid_maps=gid_maps,
        namespaces=frozenset(namespaces),
        etc_files=False,
        system_mounts=tuple(system_mounts),
        devices=devices,
        nodev=False,
        cgroupfs=any(m.destination == "/sys/fs/cgroup" for m in system_mounts),
    )


def _capabilities(process: dict, w: list[str]) -> CapabilitySets:
    caps = process.get("capabilities")
    if caps is None:
        return CapabilitySets()  # the runtime spec: no capabilities listed, none kept
    _unknown(caps, _CAPS, "process.capabilities", w)
    sets = {k: tuple(caps.get(k) or ()) for k in _CAPS}
    # The kernel raises an ambient capability only if it is both permitted and inheritable
    # (prctl PR_CAP_AMBIENT_RAISE, else EPERM). `runc spec` lists ambient capabilities with no
    # inheritable set at all, and runc goes on without them; so does this runtime, and says so.
    raisable = set(sets["permitted"]) & set(sets["inheritable"])
    dropped = [name for name in sets["ambient"] if name not in raisable]
    if dropped:
        w.append(f"process.capabilities.ambient: {', '.join(dropped)} not also permitted and inheritable: not raised (as runc)")
        sets["ambient"] = tuple(name for name in sets["ambient"] if name in raisable)
    return CapabilitySets(**sets)


def _mounts(config: dict, w: list[str]) -> tuple[list[Mount], list[Mount]]:
    """(the bundle's own mounts, the ones the setup steps make with the bundle's options)."""
    mounts = []
    system_mounts = []
    for i, m in enumerate(config.get("mounts") or ()):
        _unknown(m, _MOUNT, f"mounts[{i}]", w)
        dest, mtype = m["destination"], m.get("type")
        options = tuple(m.get("options") or ())
        if BUILTIN_MOUNTS.get(dest) == mtype:
            # the setup steps make it, with the bundle's options
            system_mounts.append(Mount(dest, mtype, m.get("source"), options))
            continue
        if mtype == "bind" or "bind" in options or "rbind" in options or mtype in ("tmpfs", "proc", "mqueue"):
            mounts.append(Mount(dest, "bind" if mtype in (None, "none", "bind") else mtype, m.get("source"), options))
        else:
            w.append(f"mounts[{i}]: {dest} of type {mtype}: not implemented by this runtime, skipped")
    return mounts, system_mounts


def _namespaces(linux: dict, w: list[str]) -> tuple[set[str], tuple[IdMap, ...], tuple[IdMap, ...]]:
    """(the namespace types, the uid maps, the gid maps); a mount namespace is required."""
    namespaces = set()
    for i, ns in enumerate(linux.get("namespaces") or ()):
        if ns.get("type") not in NAMESPACES:
            raise BundleError(f"linux.namespaces[{i}]: unknown type {ns.get('type')!r}")
        if ns.get("path"):
            w.append(f"linux.namespaces[{i}].path: joining an existing {ns['type']} namespace is not implemented; a new one is made")
        namespaces.add(ns["type"])
    if "mount" not in namespaces:
        # runc: "unable to restore the rootfs without a mount namespace"; here pivot_root
        # and every mount would change the caller's own mount table
        raise BundleError("linux.namespaces: no mount namespace; this runtime (like runc) needs one")
    uid_maps = tuple(IdMap(m["containerID"], m["hostID"], m["size"]) for m in linux.get("uidMappings") or ())
    gid_maps = tuple(IdMap(m["containerID"], m["hostID"], m["size"]) for m in linux.get("gidMappings") or ())
    if (uid_maps or gid_maps) and "user" not in namespaces:
        raise BundleError("linux.uidMappings need a user namespace in linux.namespaces")
    return namespaces, uid_maps, gid_maps


def _resources(resources: dict, process: dict, w: list[str]) -> tuple[Limits, tuple]:
    """(the limits: memory, pids, cpu, rlimits; the device rules, runc's defaults after them)."""
    _unknown(resources, _RESOURCES, "linux.resources", w)
    memory = resources.get("memory") or {}
    _unknown(memory, {"limit"}, "linux.resources.memory", w)
    pids = resources.get("pids") or {}
    _unknown(pids, {"limit"}, "linux.resources.pids", w)
    cpu = resources.get("cpu") or {}
    _unknown(cpu, {"quota", "period"}, "linux.resources.cpu", w)
    cpus = None
    if cpu.get("quota") and cpu["quota"] > 0:
        cpus = cpu["quota"] / (cpu.get("period") or 100_000)
    try:
        devices = tuple(parse_device_rule(d) for d in resources.get("devices") or ()) + RUNC_ALLOWED_DEVICES
    except (ValueError, TypeError) as e:
        raise BundleError(f"linux.resources.devices: {e}") from None
    rlimits = {}
    for r in process.get("rlimits") or ():
        rlimits[r["type"]] = (int(r["soft"]), int(r["hard"]))
    pids_limit = pids.get("limit")
    limits = Limits(
        memory=memory.get("limit") if memory.get("limit", -1) > 0 else None,
        pids=pids_limit if pids_limit and pids_limit > 0 else None,
        cpus=cpus,
        rlimits=rlimits,
    )
    return limits, devices


def _seccomp(linux: dict, w: list[str]) -> dict | None:
    """linux.seccomp, refused now if it could not be loaded in the container."""
    seccomp = linux.get("seccomp")
    if seccomp is not None:
        _unknown(seccomp, _SECCOMP, "linux.seccomp", w)
        try:
            profile_rules(seccomp)
        except (ValueError, TypeError, KeyError) as e:
            raise BundleError(f"linux.seccomp: {e}") from None
    return seccomp
