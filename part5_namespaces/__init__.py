"""Part 5: Linux namespaces, the kernel's isolation.

A namespace wraps a global resource (hostnames, PIDs, mounts, network, IPC, users, cgroups)
so that the processes inside see their own instance. This part holds the raw system-call
bindings of the whole course (``syscalls``) and one runnable demonstration per namespace.
"""

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
    "CloneFlags",
    "MountFlags",
    "UmountFlags",
    "mount",
    "pivot_root",
    "prctl",
    "sethostname",
    "setns",
    "umount2",
    "unshare",
]
