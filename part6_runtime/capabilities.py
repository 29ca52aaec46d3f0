"""Capabilities: root's powers split into ~41 bits, and the five sets a process carries.

``bounding`` caps what the process (and everything it execs) can ever get; ``permitted`` is
what it may use; ``effective`` what the kernel checks now; ``inheritable`` and ``ambient``
what survives execve(2). A container root keeps Docker's 14 capabilities: enough to chown,
bind port 80 or chroot, not enough to mount, load modules or change the clock.

Part 5 has the raw calls shared by the course; capget/capset are only used here, so their
bindings live in this module (C prototypes as comments, errors as OSError).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable

from part5_namespaces import prctl, syscalls

from .spec import CapabilitySets

#: linux/capability.h
CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}

# prctl(2) options
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    # struct __user_cap_header_struct { __u32 version; int pid; };
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    # struct __user_cap_data_struct { __u32 effective; __u32 permitted; __u32 inheritable; };
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def cap_number(name: str) -> int:
    try:
        return CAPABILITIES[name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper()]
    except KeyError:
        raise ValueError(f"unknown capability {name!r}") from None


def mask(names: Iterable[str]) -> int:
    """The bit mask of capability names (as /proc/PID/status prints it: CapEff 0xa80425fb)."""
    value = 0
    for name in names:
        value |= 1 << cap_number(name)
    return value


def names(bits: int) -> tuple[str, ...]:
    """Capability names of a bit mask, in number order."""
    return tuple(n for n, i in sorted(CAPABILITIES.items(), key=lambda kv: kv[1]) if bits >> i & 1)


def last_cap() -> int:
    """The highest capability this kernel knows (/proc/sys/kernel/cap_last_cap)."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


# int capget(cap_user_header_t hdrp, cap_user_data_t datap);
def capget() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) masks of the calling thread."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if syscalls.libc().capget(ctypes.byref(header), data) == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"capget: {os.strerror(err)}")
    join = lambda field: getattr(data[0], field) | getattr(data[1], field) << 32  # noqa: E731
    return join("effective"), join("permitted"), join("inheritable")


# int capset(cap_user_header_t hdrp, const cap_user_data_t datap);
def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set the three capability sets of the calling thread (each a 64-bit mask)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        data[i].effective = effective >> (32 * i) & 0xFFFFFFFF
        data[i].permitted = permitted >> (32 * i) & 0xFFFFFFFF
        data[i].inheritable = inheritable >> (32 * i) & 0xFFFFFFFF
    if syscalls.libc().capset(ctypes.byref(header), data) == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"capset(eff={effective:#x}, prm={permitted:#x}, inh={inheritable:#x}): {os.strerror(err)}")


def apply(sets: CapabilitySets, top: int) -> None:
    """Give the calling process exactly ``sets`` (all capabilities above ``top`` dropped).

    Order matters: dropping from the bounding set needs CAP_SETPCAP in the *effective* set,
    so the permitted set is made effective first; the final capset can only shrink.
    """
    _, permitted, inheritable = capget()
    capset(permitted, permitted, inheritable)
    keep = mask(sets.bounding)
    for cap in range(top + 1):
        if not keep >> cap & 1 and prctl(PR_CAPBSET_READ, cap) == 1:
            prctl(PR_CAPBSET_DROP, cap)
    capset(mask(sets.effective) & permitted, mask(sets.permitted) & permitted, mask(sets.inheritable))
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    for name in sets.ambient:
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap_number(name))


def keep_capabilities_across_setuid(on: bool = True) -> None:
    """PR_SET_KEEPCAPS: keep the permitted set when all uids leave 0 (cleared by execve)."""
    prctl(PR_SET_KEEPCAPS, 1 if on else 0)


def set_no_new_privs() -> None:
    """PR_SET_NO_NEW_PRIVS: execve can never grant privileges again (setuid bits, file caps)."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def current_capabilities() -> tuple[str, ...]:
    """The names of the capabilities this process holds (its permitted set): "all of them"
    for a privileged container (RUN --security=insecure), never more than the caller has."""
    return names(capget()[1])


