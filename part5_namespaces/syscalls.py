"""The kernel bindings of the course, in one place.

Each function wraps one system call through ctypes (or the stdlib where it has the call), with
the C prototype as a comment. Every failure goes through :func:`_check`, which raises
``OSError(errno, strerror, path)`` so the message names what was being done.
"""

from __future__ import annotations

import ctypes
import enum
import os
import platform
import socket

_libc = None


def libc() -> ctypes.CDLL:
    """The C library, loaded on first use (no work at import time): the symbols the running
    interpreter already has (dlopen(NULL)), so that no ``ldconfig`` is run to find it (a
    container's fresh init must not start a host program)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


class CloneFlags(enum.IntFlag):
    """Namespace flags of clone(2), unshare(2) and setns(2) (linux/sched.h)."""

    NEWTIME = 0x00000080
    NEWNS = 0x00020000  # mount
    NEWCGROUP = 0x02000000
    NEWUTS = 0x04000000
    NEWIPC = 0x08000000
    NEWUSER = 0x10000000
    NEWPID = 0x20000000
    NEWNET = 0x40000000


class MountFlags(enum.IntFlag):
    """Flags of mount(2) (linux/mount.h)."""

    NONE = 0
    RDONLY = 1
    NOSUID = 2
    NODEV = 4
    NOEXEC = 8
    SYNCHRONOUS = 16
    REMOUNT = 32
    MANDLOCK = 64
    DIRSYNC = 128
    NOSYMFOLLOW = 256
    NOATIME = 1024
    NODIRATIME = 2048
    BIND = 4096
    MOVE = 8192
    REC = 16384
    SILENT = 32768
    UNBINDABLE = 1 << 17
    PRIVATE = 1 << 18
    SLAVE = 1 << 19
    SHARED = 1 << 20
    RELATIME = 1 << 21
    STRICTATIME = 1 << 24


class UmountFlags(enum.IntFlag):
    """Flags of umount2(2)."""

    NONE = 0
    FORCE = 1
    DETACH = 2
    EXPIRE = 4
    NOFOLLOW = 8


#: syscall numbers of calls glibc has no wrapper for, per architecture
SYSCALL_NUMBERS: dict[str, dict[str, int]] = {
    "x86_64": {"pivot_root": 155},
    "aarch64": {"pivot_root": 41},
}


def syscall_number(name: str) -> int:
    machine = platform.machine()
    try:
        return SYSCALL_NUMBERS[machine][name]
    except KeyError:
        raise OSError(38, f"no syscall number for {name} on {machine}") from None


def _check(result: int, what: str, path: str | None = None) -> int:
    """The one error path: -1 from libc becomes OSError(errno, strerror, path)."""
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return result


def _b(path: str | os.PathLike | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


# int unshare(int flags);
def unshare(flags: CloneFlags | int) -> None:
    """Move the calling process into new namespaces (PID: only its future children)."""
    _check(libc().unshare(ctypes.c_int(int(flags))), f"unshare({CloneFlags(int(flags)).name or 0})")


# int setns(int fd, int nstype);
def setns(fd: int, nstype: CloneFlags | int = 0) -> None:
    """Join the namespace that ``fd`` (an open /proc/PID/ns/* file) refers to."""
    _check(libc().setns(ctypes.c_int(fd), ctypes.c_int(int(nstype))), f"setns({CloneFlags(int(nstype)).name or 0})")


# int mount(const char *source, const char *target, const char *filesystemtype,
#           unsigned long mountflags, const void *data);
def mount(
    source: str | os.PathLike | None,
    target: str | os.PathLike,
    fstype: str | None = None,
    flags: MountFlags | int = 0,
    data: str | None = None,
) -> None:
    """Attach a filesystem (or bind, remount, change propagation) at ``target``."""
    _check(
        libc().mount(
            _b(source),
            _b(target),
            None if fstype is None else fstype.encode(),
            ctypes.c_ulong(int(flags)),
            None if data is None else data.encode(),
        ),
        f"mount {fstype or source or ''} ({MountFlags(flags)!r})".replace("  ", " "),
        os.fspath(target),
    )


# int umount2(const char *target, int flags);
def umount2(target: str | os.PathLike, flags: UmountFlags | int = 0) -> None:
    """Detach the filesystem mounted at ``target``."""
    _check(libc().umount2(_b(target), ctypes.c_int(int(flags))), "umount2", os.fspath(target))


# int syscall(SYS_pivot_root, const char *new_root, const char *put_old);
def pivot_root(new_root: str | os.PathLike, put_old: str | os.PathLike) -> None:
    """Make ``new_root`` the root of this mount namespace; the old root moves to ``put_old``.

    glibc has no wrapper, so this goes through syscall(2) with the architecture's number.
    """
    libc().syscall.restype = ctypes.c_long
    _check(
        libc().syscall(ctypes.c_long(syscall_number("pivot_root")), _b(new_root), _b(put_old)),
        "pivot_root",
        os.fspath(new_root),
    )


# int sethostname(const char *name, size_t len);
def sethostname(name: str) -> None:
    """Set the hostname of this UTS namespace (the stdlib has the call)."""
    socket.sethostname(name)


# int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5);
def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """Process controls (no_new_privs, capability bounding set, parent death signal)."""
    return _check(
        libc().prctl(
            ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)
        ),
        f"prctl({option})",
    )


# int mknod(const char *pathname, mode_t mode, dev_t dev);  -- the stdlib has it
mknod = os.mknod


# -- System V IPC: the objects an IPC namespace isolates ----------------------------------------
IPC_CREAT = 0o1000
IPC_EXCL = 0o2000
IPC_RMID = 0


# int msgget(key_t key, int msgflg);
def msgget(key: int, flags: int = IPC_CREAT | 0o600) -> int:
    """Create (or open) the System V message queue ``key``; returns its id."""
    return _check(libc().msgget(ctypes.c_int(key), ctypes.c_int(flags)), f"msgget(0x{key:08x})")


# int msgctl(int msqid, int cmd, struct msqid_ds *buf);
def msg_remove(msqid: int) -> None:
    """msgctl(msqid, IPC_RMID, NULL): delete a message queue."""
    _check(libc().msgctl(ctypes.c_int(msqid), ctypes.c_int(IPC_RMID), None), f"msgctl({msqid}, IPC_RMID)")


# int shmget(key_t key, size_t size, int shmflg);
def shmget(key: int, size: int, flags: int = IPC_CREAT | 0o600) -> int:
    """Create (or open) the System V shared memory segment ``key``; returns its id."""
    return _check(
        libc().shmget(ctypes.c_int(key), ctypes.c_size_t(size), ctypes.c_int(flags)), f"shmget(0x{key:08x})"
    )


# int shmctl(int shmid, int cmd, struct shmid_ds *buf);
def shm_remove(shmid: int) -> None:
    """shmctl(shmid, IPC_RMID, NULL): delete a shared memory segment."""
    _check(libc().shmctl(ctypes.c_int(shmid), ctypes.c_int(IPC_RMID), None), f"shmctl({shmid}, IPC_RMID)")


# -- descriptors, mount attributes and eBPF: what a runtime needs beyond namespaces ----------------
#: syscall numbers shared by every architecture (asm-generic/unistd.h, from 424 on)
_UNIFIED = {"open_tree": 428, "move_mount": 429, "close_range": 436, "mount_setattr": 442}
#: bpf(2) predates the shared numbering
_BPF = {"x86_64": 321, "aarch64": 280}

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000

CLOSE_RANGE_UNSHARE = 1 << 1
CLOSE_RANGE_CLOEXEC = 1 << 2


class MountAttr(enum.IntFlag):
    """MOUNT_ATTR_* of mount_setattr(2) (linux/mount.h)."""

    NONE = 0
    RDONLY = 0x00000001
    NOSUID = 0x00000002
    NODEV = 0x00000004
    NOEXEC = 0x00000008
    NOATIME = 0x00000010
    STRICTATIME = 0x00000020
    NODIRATIME = 0x00000080
    NOSYMFOLLOW = 0x00200000


def _syscall(name: str, *args) -> int:
    number = _UNIFIED.get(name) if name in _UNIFIED else _BPF.get(platform.machine()) if name == "bpf" else None
    if number is None:
        raise OSError(38, f"no syscall number for {name} on {platform.machine()}")
    libc().syscall.restype = ctypes.c_long
    return libc().syscall(ctypes.c_long(number), *args)


# int syscall(SYS_close_range, unsigned int first, unsigned int last, unsigned int flags);
def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    """Close (or with CLOSE_RANGE_CLOEXEC, mark close-on-exec) every descriptor in
    [first, last]: one call, however many descriptors the process holds."""
    _check(_syscall("close_range", ctypes.c_uint(first), ctypes.c_uint(last), ctypes.c_uint(flags)), f"close_range({first})")


class _MountAttrStruct(ctypes.Structure):
    # struct mount_attr { __u64 attr_set; __u64 attr_clr; __u64 propagation; __u64 userns_fd; };
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


# int syscall(SYS_mount_setattr, int dirfd, const char *pathname, unsigned int flags,
#             struct mount_attr *attr, size_t size);
def mount_setattr(path: str | os.PathLike, attr_set: MountAttr | int = 0, attr_clr: MountAttr | int = 0, *,
                  recursive: bool = True, dirfd: int = AT_FDCWD) -> None:
    """Set and clear mount attributes of the mount at ``path`` and, with ``recursive``
    (AT_RECURSIVE), of every mount below it in one call (read-only that covers submounts).
    ``path`` "" with ``dirfd`` an open mount (open_tree) changes that mount."""
    attr = _MountAttrStruct(int(attr_set), int(attr_clr), 0, 0)
    flags = (AT_RECURSIVE if recursive else 0) | (AT_EMPTY_PATH if os.fspath(path) == "" else 0)
    _check(
        _syscall("mount_setattr", ctypes.c_int(dirfd), _b(path), ctypes.c_uint(flags), ctypes.byref(attr),
                 ctypes.c_size_t(ctypes.sizeof(attr))),
        f"mount_setattr({MountAttr(int(attr_set))!r})",
        os.fspath(path),
    )


# -- eBPF: the device filter of a cgroup v2 -----------------------------------------------------
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2


class _BpfProgLoad(ctypes.Structure):
    # union bpf_attr, BPF_PROG_LOAD: { __u32 prog_type; __u32 insn_cnt; __aligned_u64 insns;
    #   __aligned_u64 license; __u32 log_level; __u32 log_size; __aligned_u64 log_buf;
    #   __u32 kern_version; __u32 prog_flags; ... }
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32), ("insns", ctypes.c_uint64),
                ("license", ctypes.c_uint64), ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32), ("prog_flags", ctypes.c_uint32)]


class _BpfProgAttach(ctypes.Structure):
    # union bpf_attr, BPF_PROG_ATTACH/DETACH: { __u32 target_fd; __u32 attach_bpf_fd;
    #   __u32 attach_type; __u32 attach_flags; __u32 replace_bpf_fd; }
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_bpf_fd", ctypes.c_uint32), ("attach_type", ctypes.c_uint32),
                ("attach_flags", ctypes.c_uint32), ("replace_bpf_fd", ctypes.c_uint32)]


# int syscall(SYS_bpf, int cmd, union bpf_attr *attr, unsigned int size);  -- BPF_PROG_LOAD
def bpf_prog_load(prog_type: int, instructions: bytes, license: str = "Apache") -> int:
    """Load an eBPF program (``instructions``: struct bpf_insn, 8 bytes each); returns its fd.
    A refusal by the verifier raises OSError with the verifier's log as the message."""
    code = ctypes.create_string_buffer(instructions, len(instructions))
    lic = ctypes.create_string_buffer(license.encode())
    log = ctypes.create_string_buffer(65536)
    attr = _BpfProgLoad(prog_type, len(instructions) // 8, ctypes.addressof(code), ctypes.addressof(lic),
                        1, len(log), ctypes.addressof(log), 0, 0)
    fd = _syscall("bpf", ctypes.c_int(BPF_PROG_LOAD), ctypes.byref(attr), ctypes.c_uint(ctypes.sizeof(attr)))
    if fd == -1:
        err = ctypes.get_errno()
        detail = log.value.decode(errors="replace").strip().replace("\n", "; ")
        raise OSError(err, f"bpf(BPF_PROG_LOAD): {os.strerror(err)}" + (f": {detail}" if detail else ""))
    os.set_inheritable(fd, False)
    return fd


# int syscall(SYS_bpf, int cmd, union bpf_attr *attr, unsigned int size);  -- BPF_PROG_ATTACH
def bpf_prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int = BPF_F_ALLOW_MULTI) -> None:
    """Attach program ``prog_fd`` to ``target_fd`` (an open cgroup v2 directory)."""
    attr = _BpfProgAttach(target_fd, prog_fd, attach_type, flags, 0)
    _check(_syscall("bpf", ctypes.c_int(BPF_PROG_ATTACH), ctypes.byref(attr), ctypes.c_uint(ctypes.sizeof(attr))),
           "bpf(BPF_PROG_ATTACH)")


OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x00000004
MOVE_MOUNT_T_EMPTY_PATH = 0x00000040


# int syscall(SYS_open_tree, int dirfd, const char *pathname, unsigned int flags);
def open_tree(dirfd: int, path: str | os.PathLike = "", *, recursive: bool = True) -> int:
    """A detached copy (OPEN_TREE_CLONE) of the mount tree at ``path`` relative to ``dirfd``
    (``""``: ``dirfd`` itself, a file or directory opened with O_PATH): a bind mount that is
    not attached anywhere yet, and can be attached in another mount namespace with
    :func:`move_mount`. Closing the descriptor unattached drops it."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    if os.fspath(path) == "":
        flags |= AT_EMPTY_PATH
    return _check(_syscall("open_tree", ctypes.c_int(dirfd), _b(path), ctypes.c_uint(flags)), "open_tree", os.fspath(path) or None)


# int syscall(SYS_move_mount, int from_dirfd, const char *from_path, int to_dirfd,
#             const char *to_path, unsigned int flags);
def move_mount(from_fd: int, to_fd: int) -> None:
    """Attach the mount ``from_fd`` (from :func:`open_tree`) on the file or directory
    ``to_fd`` (an O_PATH descriptor of the mount point): both by descriptor, no path walked."""
    _check(
        _syscall("move_mount", ctypes.c_int(from_fd), b"", ctypes.c_int(to_fd), b"",
                 ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)),
        "move_mount",
    )
