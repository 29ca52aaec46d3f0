"""Docker's default seccomp policy, loaded through libseccomp.

seccomp(2) puts a BPF program in front of every system call. Docker's default profile
(moby profiles/seccomp/default.json) is an allow list: about 350 ordinary calls pass, a few
pass only with given arguments (``personality``, ``clone`` without namespace flags), a few
only with a capability the container holds (``chroot`` with CAP_SYS_CHROOT), and everything
else fails with EPERM. ``clone3`` fails with ENOSYS instead, so that glibc falls back to
``clone``, whose flags the filter can inspect (clone3 passes them in memory, out of reach).
The profile follows moby's as of 2026: no ``io_uring_*`` (moby #46762), no AF_ALG or
AF_VSOCK sockets (moby #44562, #52494), the calls of kernels up to 6.7 (moby #47341).

libseccomp compiles the rules into BPF for this architecture; the bindings are ctypes on
libseccomp.so.2 (only this part uses them, so they live here, with their C prototypes).
Compiling Docker's profile takes a few milliseconds, and a builder runs the same profile for
every RUN step: :func:`compile_docker_default` and :func:`compile_profile` export the BPF
program once per process (the runtime compiles it before it forks the container, so every
fork of a process that compiled it finds it ready), and :func:`load_program` loads it in the
container with seccomp(2), as ``seccomp_load`` would.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Iterable

from part1_overview import model
from part5_namespaces import syscalls

# -- Docker's default profile, as data -------------------------------------------------------

#: allowed with any arguments (names separated by spaces)
DOCKER_ALLOWED = (
    "accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32 "
    "clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime "
    "clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect "
    "copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old "
    "epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit "
    "exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir "
    "fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr "
    "flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync "
    "ftruncate ftruncate64 futex futex_time64 futex_waitv futimesat getcpu getcwd getdents "
    "getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 "
    "getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid "
    "getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname "
    "getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch "
    "inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents "
    "io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit ipc kill landlock_add_rule landlock_create_ruleset "
    "landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listxattr llistxattr "
    "_llseek lremovexattr lseek lsetxattr lstat lstat64 madvise membarrier memfd_create "
    "memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect "
    "mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend "
    "mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall "
    "munmap name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause "
    "pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll "
    "ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 "
    "pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv "
    "recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat "
    "renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask "
    "rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 "
    "rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max "
    "sched_get_priority_min sched_getscheduler sched_rr_get_interval "
    "sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam "
    "sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop "
    "semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 "
    "setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority "
    "setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 "
    "setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid "
    "setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 "
    "sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx "
    "symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create "
    "timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime "
    "timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime "
    "timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat "
    "utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev "
    # minKernel 4.8: ptrace no longer bypasses seccomp
    "process_vm_readv process_vm_writev ptrace "
    # kernels 6.5 to 6.7 (moby #47341)
    "cachestat fchmodat2 map_shadow_stack futex_wake futex_wait futex_requeue"
)

#: numbers of the calls above that an older libseccomp may not know by name; from 424 on,
#: every architecture shares one numbering (asm-generic/unistd.h, arch/x86/entry/syscalls)
UNIFIED_SYSCALL_NUMBERS = {
    "cachestat": 451,
    "fchmodat2": 452,
    "map_shadow_stack": 453,
    "futex_wake": 454,
    "futex_wait": 455,
    "futex_requeue": 456,
}

#: allowed on one architecture only (platform.machine() names)
DOCKER_ARCH_ALLOWED = {
    "x86_64": ("arch_prctl", "modify_ldt"),
    "aarch64": ("arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"),
}

#: allowed only when the container holds the capability
DOCKER_CAP_ALLOWED = {
    "CAP_DAC_READ_SEARCH": ("open_by_handle_at",),
    "CAP_SYS_ADMIN": (
        "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount "
        "mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname "
        "sethostname setns syslog umount umount2 unshare"
    ),
    "CAP_SYS_BOOT": ("reboot",),
    "CAP_SYS_CHROOT": ("chroot",),
    "CAP_SYS_MODULE": ("delete_module", "init_module", "finit_module"),
    "CAP_SYS_PACCT": ("acct",),
    "CAP_SYS_PTRACE": ("kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"),
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    "CAP_SYS_TIME": ("settimeofday", "stime", "clock_settime", "clock_settime64"),
    "CAP_SYS_TTY_CONFIG": ("vhangup",),
    "CAP_SYS_NICE": ("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"),
    "CAP_SYSLOG": ("syslog",),
    "CAP_BPF": ("bpf",),
    "CAP_PERFMON": ("perf_event_open",),
}

#: personality(2) is allowed with these personas only (PER_LINUX, PER_LINUX32, UNAME26 ...)
DOCKER_PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

#: socket(2) families refused: AF_ALG (38, the kernel crypto API: CVE-2026-31431, moby #52494)
#: and AF_VSOCK (40, host <-> VM sockets: moby #44562). A rule's conditions on one argument
#: are ANDed, so "not 38 and not 40" is written as three allow rules: < 38, == 39, > 40.
AF_ALG = 38
AF_VSOCK = 40

#: how many syscall numbers above the profile's highest get ENOSYS instead of EPERM (runc
#: does this for calls newer than the profile, so that libc falls back to older calls)
ENOSYS_ABOVE = 64

#: the namespace flags clone(2) may not carry without CAP_SYS_ADMIN
#: (NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET = 0x7E020000)
CLONE_NAMESPACE_FLAGS = 0x7E020000

EPERM = 1
ENOSYS = 38
EFAULT = 14

# -- libseccomp ------------------------------------------------------------------------------

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_KILL_THREAD = 0x00000000
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_TRAP = 0x00030000
SCMP_ACT_LOG = 0x7FFC0000
SCMP_FLTATR_CTL_NNP = 3  # enum scmp_filter_attr: let us decide about no_new_privs
SCMP_CMP_NE = 1
SCMP_CMP_LT = 2
SCMP_CMP_LE = 3
SCMP_CMP_EQ = 4
SCMP_CMP_GE = 5
SCMP_CMP_GT = 6
SCMP_CMP_MASKED_EQ = 7
_NR_SCMP_ERROR = -1


def SCMP_ACT_ERRNO(errno: int) -> int:  # noqa: N802 - the C macro's name
    return 0x00050000 | (errno & 0x0000FFFF)


def SCMP_ACT_TRACE(msg: int) -> int:  # noqa: N802 - the C macro's name
    return 0x7FF00000 | (msg & 0x0000FFFF)


class ArgCmp(ctypes.Structure):
    # struct scmp_arg_cmp { unsigned int arg; enum scmp_compare op;
    #                       scmp_datum_t datum_a; scmp_datum_t datum_b; };
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


_lib = None


def libseccomp() -> ctypes.CDLL:
    """libseccomp.so.2, loaded on first use (load it before pivot_root: it is a host file)."""
    global _lib
    if _lib is None:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        # scmp_filter_ctx seccomp_init(uint32_t def_action);
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        # int seccomp_syscall_resolve_name(const char *name);
        lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        # int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action, int syscall,
        #                            unsigned int arg_cnt, const struct scmp_arg_cmp *arg_array);
        lib.seccomp_rule_add_array.restype = ctypes.c_int
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(ArgCmp)]
        # int seccomp_attr_set(scmp_filter_ctx ctx, enum scmp_filter_attr attr, uint32_t value);
        lib.seccomp_attr_set.restype = ctypes.c_int
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        # int seccomp_load(scmp_filter_ctx ctx);
        lib.seccomp_load.restype = ctypes.c_int
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        # void seccomp_release(scmp_filter_ctx ctx);
        lib.seccomp_release.restype = None
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        # int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);
        lib.seccomp_export_bpf.restype = ctypes.c_int
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        # uint32_t seccomp_arch_resolve_name(const char *arch_name);
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        # int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
        lib.seccomp_arch_add.restype = ctypes.c_int
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        _lib = lib
    return _lib


def _check(result: int, what: str) -> None:
    # libseccomp returns -errno instead of setting errno
    if result < 0:
        raise OSError(-result, f"{what}: {os.strerror(-result)}")


def policy_rules(capabilities: Iterable[str], machine: str | None = None) -> list[tuple[str, int, tuple]]:
    """Docker's default profile for a container holding ``capabilities``, as a list of
    ``(syscall name, action, ((arg, op, a, b), ...))``."""
    caps = set(capabilities)
    machine = machine or platform.machine()
    allow = DOCKER_ALLOWED.split() + list(DOCKER_ARCH_ALLOWED.get(machine, ()))
    for cap, calls in DOCKER_CAP_ALLOWED.items():
        if cap in caps:
            allow.extend(calls.split() if isinstance(calls, str) else calls)
    rules = [(name, SCMP_ACT_ALLOW, ()) for name in dict.fromkeys(allow)]
    rules.append(("socket", SCMP_ACT_ALLOW, ((0, SCMP_CMP_LT, AF_ALG, 0),)))
    rules.append(("socket", SCMP_ACT_ALLOW, ((0, SCMP_CMP_EQ, AF_ALG + 1, 0),)))
    rules.append(("socket", SCMP_ACT_ALLOW, ((0, SCMP_CMP_GT, AF_VSOCK, 0),)))
    rules += [("personality", SCMP_ACT_ALLOW, ((0, SCMP_CMP_EQ, p, 0),)) for p in DOCKER_PERSONALITIES]
    if "CAP_SYS_ADMIN" not in caps:
        clone_arg = 1 if machine.startswith("s390") else 0
        rules.append(("clone", SCMP_ACT_ALLOW, ((clone_arg, SCMP_CMP_MASKED_EQ, CLONE_NAMESPACE_FLAGS, 0),)))
        rules.append(("clone3", SCMP_ACT_ERRNO(ENOSYS), ()))
    return rules


_OP_NAMES = {SCMP_CMP_NE: "SCMP_CMP_NE", SCMP_CMP_LT: "SCMP_CMP_LT", SCMP_CMP_LE: "SCMP_CMP_LE",
             SCMP_CMP_EQ: "SCMP_CMP_EQ", SCMP_CMP_GE: "SCMP_CMP_GE", SCMP_CMP_GT: "SCMP_CMP_GT",
             SCMP_CMP_MASKED_EQ: "SCMP_CMP_MASKED_EQ"}
_ARCHES = {"x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]}
#: the runtime spec's architecture names -> libseccomp's
_ARCH_TOKENS = {
    "SCMP_ARCH_X86": "x86", "SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_X32": "x32", "SCMP_ARCH_ARM": "arm",
    "SCMP_ARCH_AARCH64": "aarch64", "SCMP_ARCH_MIPS": "mips", "SCMP_ARCH_MIPS64": "mips64",
    "SCMP_ARCH_MIPS64N32": "mips64n32", "SCMP_ARCH_MIPSEL": "mipsel", "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32", "SCMP_ARCH_PPC": "ppc", "SCMP_ARCH_PPC64": "ppc64",
    "SCMP_ARCH_PPC64LE": "ppc64le", "SCMP_ARCH_S390": "s390", "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_RISCV64": "riscv64",
}


def profile_json(capabilities: Iterable[str], machine: str | None = None) -> dict:
    """The same policy as a runtime-spec ``linux.seccomp`` object, for runc's config.json."""
    machine = machine or platform.machine()
    syscalls = []
    for name, action, args in policy_rules(capabilities, machine):
        rule: dict = {"names": [name]}
        if action == SCMP_ACT_ALLOW:
            rule["action"] = "SCMP_ACT_ALLOW"
        else:
            rule["action"] = "SCMP_ACT_ERRNO"
            rule["errnoRet"] = action & 0xFFFF
        if args:
            rule["args"] = [{"index": i, "value": a, "valueTwo": b, "op": _OP_NAMES[op]} for i, op, a, b in args]
        syscalls.append(rule)
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "architectures": _ARCHES.get(machine, []),
        "syscalls": syscalls,
    }


@model(frozen=True)
class Program:
    """A compiled filter: the BPF instructions (``struct sock_filter`` array, 8 bytes each) as
    libseccomp exports them, with the number of rules added and the names it skipped."""

    bpf: bytes
    added: int
    skipped: tuple[str, ...]


#: compiled programs of this process, by (default action, rules, architectures)
_compiled: dict[tuple, Program] = {}


def compile_docker_default(capabilities: Iterable[str]) -> Program:
    """Docker's default filter for this architecture, compiled (once per process).

    Calls numbered above the highest one in the profile fail with ENOSYS (as under runc), every
    other call the profile does not allow with EPERM."""
    return _compile(SCMP_ACT_ERRNO(EPERM), policy_rules(capabilities), ())


def compile_profile(profile: dict) -> Program:
    """A runtime-spec ``linux.seccomp`` profile (an OCI bundle's), compiled (once per process);
    the same ENOSYS rule as :func:`compile_docker_default`."""
    default, rules, arches = profile_rules(profile)
    return _compile(default, rules, arches)


def load_docker_default(capabilities: Iterable[str]) -> tuple[int, list[str]]:
    """Build Docker's default filter for this architecture and load it on the calling thread.

    Returns (number of rules added, names libseccomp does not know here, skipped). The filter
    is inherited by children and survives execve; it can never be removed.
    """
    program = compile_docker_default(capabilities)
    load_program(program)
    return program.added, list(program.skipped)


def profile_rules(profile: dict) -> tuple[int, list[tuple[str, int, tuple]], list[str]]:
    """A runtime-spec ``linux.seccomp`` object as (default action, rules, architectures).

    As runc reads it: ``errnoRet`` (default EPERM) for ERRNO and TRACE actions; the ``args``
    of one rule are ANDed, unless an index repeats, in which case each becomes a rule of its
    own (ORed). Raises ValueError for what this runtime cannot load (SCMP_ACT_NOTIFY)."""
    def action(name: str, errno_ret) -> int:
        errno_ret = EPERM if errno_ret is None else int(errno_ret)
        fixed = {"SCMP_ACT_ALLOW": SCMP_ACT_ALLOW, "SCMP_ACT_KILL": SCMP_ACT_KILL_THREAD,
                 "SCMP_ACT_KILL_THREAD": SCMP_ACT_KILL_THREAD, "SCMP_ACT_KILL_PROCESS": SCMP_ACT_KILL_PROCESS,
                 "SCMP_ACT_TRAP": SCMP_ACT_TRAP, "SCMP_ACT_LOG": SCMP_ACT_LOG}
        if name in fixed:
            return fixed[name]
        if name == "SCMP_ACT_ERRNO":
            return SCMP_ACT_ERRNO(errno_ret)
        if name == "SCMP_ACT_TRACE":
            return SCMP_ACT_TRACE(errno_ret)
        raise ValueError(f"seccomp action {name!r} is not implemented by this runtime")

    ops = {v: k for k, v in _OP_NAMES.items()}
    default = action(profile.get("defaultAction", "SCMP_ACT_ALLOW"), profile.get("defaultErrnoRet"))
    rules: list[tuple[str, int, tuple]] = []
    for i, entry in enumerate(profile.get("syscalls") or ()):
        act = action(entry.get("action", ""), entry.get("errnoRet"))
        conditions = []
        for arg in entry.get("args") or ():
            if arg.get("op") not in ops:
                raise ValueError(f"syscalls[{i}]: unknown comparison {arg.get('op')!r}")
            conditions.append((int(arg["index"]), ops[arg["op"]], int(arg.get("value", 0)), int(arg.get("valueTwo", 0))))
        indexes = [c[0] for c in conditions]
        groups = [(c,) for c in conditions] if len(set(indexes)) < len(indexes) else [tuple(conditions)]
        for name in entry.get("names") or ([entry["name"]] if entry.get("name") else []):
            rules += [(name, act, group) for group in groups]
    arches = []
    for arch in profile.get("architectures") or ():
        if arch not in _ARCH_TOKENS:
            raise ValueError(f"seccomp architecture {arch!r} is unknown")
        arches.append(_ARCH_TOKENS[arch])
    return default, rules, arches


def load_profile(profile: dict) -> tuple[int, list[str]]:
    """Load a runtime-spec ``linux.seccomp`` profile (an OCI bundle's) on the calling thread;
    the same return value as :func:`load_docker_default`."""
    program = compile_profile(profile)
    load_program(program)
    return program.added, list(program.skipped)


class _SockFprog(ctypes.Structure):
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; };
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


#: seccomp(2): operation and the x86_64/aarch64 call numbers (the host's own, as libseccomp)
SECCOMP_SET_MODE_FILTER = 1
_NR_SECCOMP = {"x86_64": 317, "aarch64": 277}


def load_program(program: Program) -> None:
    """Load a compiled filter on the calling thread: seccomp(SECCOMP_SET_MODE_FILTER, 0, prog),
    the call ``seccomp_load`` makes (no flags; no_new_privs or CAP_SYS_ADMIN needed)."""
    machine = platform.machine()
    if machine not in _NR_SECCOMP:
        raise OSError(ENOSYS, f"seccomp: no call number for {machine}")
    buf = ctypes.create_string_buffer(program.bpf, len(program.bpf))
    prog = _SockFprog(len(program.bpf) // 8, ctypes.addressof(buf))
    libc = syscalls.libc()
    if libc.syscall(ctypes.c_long(_NR_SECCOMP[machine]), ctypes.c_uint(SECCOMP_SET_MODE_FILTER),
                    ctypes.c_uint(0), ctypes.byref(prog)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp_load: {os.strerror(err)}")


def _compile(default: int, rules: list[tuple[str, int, tuple]], arches) -> Program:
    key = (default, tuple(rules), tuple(arches))
    program = _compiled.get(key)
    if program is None:
        program = _compiled[key] = _export(default, rules, arches)
    return program


def _export(default: int, rules: list[tuple[str, int, tuple]], arches) -> Program:
    lib = libseccomp()
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise OSError(ENOSYS, "seccomp_init: libseccomp could not create a filter")
    skipped: list[str] = []
    added = 0
    highest = -1
    try:
        # the no_new_privs step decides; loading a filter without it needs CAP_SYS_ADMIN
        _check(lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0), "seccomp_attr_set(CTL_NNP)")
        for arch in arches:
            result = lib.seccomp_arch_add(ctx, lib.seccomp_arch_resolve_name(arch.encode()))
            if result < 0 and result != -17:  # EEXIST: the native architecture is there already
                _check(result, f"seccomp_arch_add({arch})")
        for name, action, args in rules:
            if action == default:
                continue  # libseccomp refuses a rule that repeats the default action
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number == _NR_SCMP_ERROR:
                number = UNIFIED_SYSCALL_NUMBERS.get(name, _NR_SCMP_ERROR)
            if number == _NR_SCMP_ERROR:
                skipped.append(name)
                continue
            array = (ArgCmp * max(1, len(args)))(*[ArgCmp(*a) for a in args])
            result = lib.seccomp_rule_add_array(ctx, action, number, len(args), array)
            if result < 0:
                # a pseudo-syscall of another architecture: nothing to filter here
                skipped.append(name)
                continue
            added += 1
            highest = max(highest, number)
        if default not in (SCMP_ACT_ALLOW, SCMP_ACT_LOG) and highest >= 0:
            empty = (ArgCmp * 1)()
            for number in range(highest + 1, highest + 1 + ENOSYS_ABOVE):
                result = lib.seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(ENOSYS), number, 0, empty)
                if result == -EFAULT and arches:
                    # a number libseccomp has no name for cannot be translated to the profile's
                    # other architectures: it keeps the default action (a bundle's x86 + x32)
                    continue
                _check(result, f"seccomp_rule_add({number}, ENOSYS)")
        out = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            _check(lib.seccomp_export_bpf(ctx, out), "seccomp_export_bpf")
            size = os.lseek(out, 0, os.SEEK_CUR)
            bpf = os.pread(out, size, 0)
        finally:
            os.close(out)
    finally:
        lib.seccomp_release(ctx)
    return Program(bpf, added, tuple(skipped))
