"""Part 5: Linux namespaces, the kernel's isolation.

A namespace wraps a global resource (hostnames, PIDs, mounts, network, IPC, users, cgroups)
so that the processes inside see their own instance. This part holds the raw system-call
bindings of the whole course (``syscalls``), uid/gid maps (``IdMap``, single mapping or a
full range through newuidmap/newgidmap), ``spawn()`` which runs a function in a child inside
new namespaces in the right order, and one runnable demonstration per namespace
(``python -m part5_namespaces``).
"""

from . import syscalls
from .errors import IdMapError, NamespaceError
from .idmap import IdMap, current_user_mapping, read_map, subid_mapping, write_id_maps
from .process import Child, forward_signals, spawn
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
    "call_as_user",
    "call_in_namespaces",
    "current_user_mapping",
    "ensure_user",
    "forward_signals",
    "mount",
    "pivot_root",
    "prctl",
    "read_map",
    "sethostname",
    "setns",
    "spawn",
    "subid_mapping",
    "syscalls",
    "umount2",
    "unshare",
    "write_id_maps",
]
