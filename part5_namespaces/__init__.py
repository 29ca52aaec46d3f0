"""Part 5: Linux namespaces, the kernel's isolation.

A namespace wraps a global resource (hostnames, PIDs, mounts, network, IPC, users, cgroups)
so that the processes inside see their own instance. This part holds the raw system-call
bindings of the whole course (``syscalls``), uid/gid maps (``IdMap``, single mapping or a
full range through newuidmap/newgidmap), rootless operation (``rootless_mapping``: the
user's subordinate range or the single mapping; ``run_in_user_namespace``: a function run as
root of a user namespace of the caller's own, as ``buildah unshare`` does), ``spawn()``
which runs a function in a child inside new namespaces in the right order, and one runnable
demonstration per namespace (``python -m part5_namespaces``).
"""

from . import syscalls
from .errors import IdMapError, NamespaceError
from .idmap import IdMap, current_user_mapping, read_map, subid_mapping, write_id_maps
from .process import Child, forward_signals, spawn
from .rootless import UserNamespaceMapping, add_subids_command, in_user_namespace, rootless_mapping, run_in_user_namespace
from .run import call_as_user, call_in_namespaces, ensure_user
from .syscalls import (
    CloneFlags,
    MountFlags,
    UmountFlags,
    mount,
    pivot_root,
    prctl,
    sethostname,
    setns,
    umount2,
    unshare,
)

__all__ = [
    "Child",
    "CloneFlags",
    "IdMap",
    "IdMapError",
    "MountFlags",
    "NamespaceError",
    "UmountFlags",
    "UserNamespaceMapping",
    "add_subids_command",
    "call_as_user",
    "call_in_namespaces",
    "current_user_mapping",
    "ensure_user",
    "forward_signals",
    "in_user_namespace",
    "mount",
    "pivot_root",
    "prctl",
    "read_map",
    "rootless_mapping",
    "run_in_user_namespace",
    "sethostname",
    "setns",
    "spawn",
    "subid_mapping",
    "syscalls",
    "umount2",
    "unshare",
    "write_id_maps",
]
