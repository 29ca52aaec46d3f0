"""The container's side: an ordered tuple of named setup steps, then exec.

``container_main`` runs as PID 1 of the new PID namespace (part 5's ``spawn`` created the
namespaces and wrote the id maps). It walks ``SETUP_STEPS`` in order; before each step it
tells the parent the step's name over the report pipe, and when one raises it reports the
name and the error and exits 125, so the parent can raise ``RuntimeSetupError(step, cause)``.
When every step passed, ``exec`` replaces this Python process with the container's command,
and the report pipe (close-on-exec) closes by itself.

**PID 1 is always a freshly executed program.** The process that runs the steps is a fork of
the caller (a builder holding secrets, open files, its environment), but no program of the
container runs before ``exec``: every descriptor above 2 is marked close-on-exec
(close_range), the environment given to execve is exactly the container's, and execve
replaces the caller's memory. With ``init`` the process that stays PID 1 (and forks the
command) must not be a fork of the caller either: the ``fresh init`` step re-executes Python
(``-I -S``, an empty environment, only the report pipe and the plan inherited, as ``runc
init`` does) and the new interpreter runs the remaining steps.

Everything runs in one process whose mount namespace is its own: after ``pivot_root`` the
host's files (Python's own modules included) are out of reach, so nothing here may import
lazily. The process keeps running the code it already loaded.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import glob
import json
import os
import pickle
import re
import resource
import signal
import socket
import stat
import sys

from part1_overview import field, model
from part4_tar import RootDir
from part5_namespaces import (
    CloneFlags,
    MountFlags,
    UmountFlags,
    forward_signals,
    in_user_namespace,
    mount,
    pivot_root,
    prctl,
    sethostname,
    syscalls,
    umount2,
    unshare,
)

from . import capabilities as caps
from . import seccomp
from .network import interface_up
from .spec import CapabilitySets, ContainerSpec, Mount
from .users import ResolvedUser

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
MountAttr = syscalls.MountAttr

#: the character devices every container gets in /dev: (name, major, minor)
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))

#: the standard /dev symlinks (runc adds core -> /proc/kcore only where the kernel has one)
DEV_SYMLINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))

#: signals the --init reaper passes on to the command
REAPER_FORWARDS = (
    signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
    signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT,
)

# ioctl(2) requests for the console (asm-generic/ioctls.h)
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCSCTTY = 0x540E

_OPTION_FLAGS = {
    "ro": MountFlags.RDONLY, "rw": 0, "nosuid": MountFlags.NOSUID, "suid": 0,
    "nodev": MountFlags.NODEV, "dev": 0, "noexec": MountFlags.NOEXEC, "exec": 0,
    "sync": MountFlags.SYNCHRONOUS, "async": 0, "noatime": MountFlags.NOATIME,
    "nodiratime": MountFlags.NODIRATIME, "relatime": MountFlags.RELATIME,
    "strictatime": MountFlags.STRICTATIME, "bind": MountFlags.BIND,
    "rbind": MountFlags.BIND | MountFlags.REC,
}
_PROPAGATION = {"private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable"}
#: mount(8) words that mount_setattr(2) can set on a bind mount and on everything below it
_OPTION_ATTRS = {
    "ro": MountAttr.RDONLY, "nosuid": MountAttr.NOSUID, "nodev": MountAttr.NODEV,
    "noexec": MountAttr.NOEXEC, "nosymfollow": MountAttr.NOSYMFOLLOW,
}
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")  # mountinfo writes a space as \040
_STATVFS_FLAGS = (
    (os.ST_NOSUID, MountFlags.NOSUID), (os.ST_NODEV, MountFlags.NODEV), (os.ST_NOEXEC, MountFlags.NOEXEC),
    (os.ST_NOATIME, MountFlags.NOATIME), (os.ST_NODIRATIME, MountFlags.NODIRATIME), (os.ST_RELATIME, MountFlags.RELATIME),
)


@model(frozen=True)
class Plan:
    """What the parent resolved for the child: paths, ids, environment, file descriptors."""

    spec: ContainerSpec
    rootfs: str  # absolute host path
    user: ResolvedUser
    env: tuple[str, ...]
    capability_sets: CapabilitySets
    cap_last: int
    etc_files: tuple[tuple[str, str], ...]  # (generated host file, path in the container)
    report_fd: int  # child -> parent: JSON lines, close-on-exec
    go_fd: int  # parent -> child: one byte once cgroup and network are ready
    stdio: tuple[int | None, int | None, int | None] = (None, None, None)
    console_fd: int | None = None  # a socket to pass the pty master to the parent
    #: the container's cgroup: its version (0: none made) and, per hierarchy, (name under
    #: /sys/fs/cgroup, mount options, host directory)
    cgroup_version: int = 0
    cgroup_members: tuple[tuple[str, str, str], ...] = ()
    #: v1 ``tasks`` files PID 1 writes "0" into to join its groups itself (see enter_namespaces);
    #: empty when the parent moves it (cgroup.procs)
    cgroup_tasks: tuple[str, ...] = ()
    #: the directory holding the part6_runtime package, for a fresh interpreter's sys.path
    import_root: str = ""
    #: per spec mount: a detached copy of a descriptor source's mount tree (open_tree), or -1
    mount_trees: tuple[int, ...] = ()
    #: the seccomp filter, compiled by the parent (None: no filter)
    seccomp_program: seccomp.Program | None = None


@model
class Context:
    """The state the steps share inside the container's process."""

    plan: Plan
    spec: ContainerSpec = field(init=False)
    root: str = field(init=False)
    namespaces: frozenset = field(init=False)
    #: in a user namespace (the spec's own, or one the runtime was started in, as a rootless
    #: build is): no mknod of devices, host ids may be unmapped
    userns: bool = field(init=False)

    def __post_init__(self) -> None:
        self.spec = self.plan.spec
        self.root = self.plan.rootfs
        self.namespaces = self.spec.namespace_set
        self.userns = "user" in self.namespaces or in_user_namespace()

    def path(self, inside: str) -> str:
        """A container path as a host path, before pivot_root (resolved inside the rootfs by
        part 4's RootDir: an image's symlinks never lead to the host's files)."""
        with RootDir(self.root) as rd:
            real = rd.resolve(inside)
        return os.path.join(self.root, real) if real else self.root


# -- the steps ---------------------------------------------------------------------------------


def enter_namespaces(ctx: Context) -> None:
    """Namespaces and id maps are made by spawn; take stdio, wait for cgroup and network.

    The parent moves this process (PID 1) into the cgroup and starts slirp4netns, then
    writes one byte to the go pipe."""
    _dup_stdio(ctx.plan.stdio)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.read(ctx.plan.go_fd, 1) != b"g":
        raise OSError(125, "the runtime gave up before the container started")
    os.close(ctx.plan.go_fd)
    # v1, host root: PID 1 joins its groups itself, before anything of the container runs.
    # The kernel moves a thread that writes "0" to a tasks file without the global lock a
    # move of another process takes (cgroup_threadgroup_rwsem: an RCU grace period, about
    # 12 ms here when the last move was a while ago); this process has one thread
    for tasks in ctx.plan.cgroup_tasks:
        try:
            with open(tasks, "w") as f:
                f.write("0")
        except OSError as e:
            raise OSError(e.errno, f"joining the container's cgroup: {e.strerror}", tasks) from None


def fresh_init(ctx: Context) -> None:
    """With init: re-execute Python (-I -S, empty environment) to run the remaining steps."""
    if not ctx.spec.init:
        return
    reexecute(ctx.plan, next(i for i, (name, _) in enumerate(SETUP_STEPS) if name == "fresh init") + 1)


def enter_cgroup_namespace(ctx: Context) -> None:
    """A cgroup namespace rooted at the container's own cgroup (/proc/self/cgroup shows /)."""
    if "cgroup" in ctx.namespaces:
        unshare(CloneFlags.NEWCGROUP)


def private_propagation(ctx: Context) -> None:
    """Make every mount private, so nothing we mount leaks to the host (and back)."""
    if "mount" in ctx.namespaces:
        mount(None, "/", None, MountFlags.REC | MountFlags.PRIVATE)


def bind_rootfs(ctx: Context) -> None:
    """Bind the rootfs on itself (pivot_root wants a mount point), nodev unless a bundle's."""
    mount(ctx.root, ctx.root, None, MountFlags.BIND | MountFlags.REC)
    if ctx.spec.nodev:
        set_mount_attrs(ctx.root, MountAttr.NODEV)


def network(ctx: Context) -> None:
    """Bring up loopback in the new network namespace (none, private)."""
    if "network" in ctx.namespaces:
        interface_up("lo")


def mount_proc(ctx: Context) -> None:
    """Mount a proc filesystem of the new PID namespace at /proc."""
    flags, data = _system_options(ctx, "/proc", MountFlags.NOSUID | MountFlags.NODEV | MountFlags.NOEXEC, None)
    mount("proc", ctx.path("/proc"), "proc", flags, data)


def populate_dev(ctx: Context) -> None:
    """A tmpfs /dev with null zero full random urandom tty, pts, shm, mqueue and symlinks."""
    dev = ctx.path("/dev")
    flags, data = _system_options(ctx, "/dev", MountFlags.NOSUID | MountFlags.STRICTATIME, "mode=755,size=65536k")
    mount("tmpfs", dev, "tmpfs", flags, data)
    for name, major, minor in DEVICES:
        node = os.path.join(dev, name)
        if ctx.userns:
            # mknod is not allowed in a user namespace: bind the host's node instead
            open(node, "w").close()
            mount(f"/dev/{name}", node, None, MountFlags.BIND)
        else:
            os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            os.chmod(node, 0o666)  # the umask applied to mknod
    os.mkdir(os.path.join(dev, "pts"), 0o755)
    flags, pts_options = _system_options(ctx, "/dev/pts", MountFlags.NOSUID | MountFlags.NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5")
    if ctx.userns and pts_options:  # gid 5 of the host may not be mapped inside
        pts_options = ",".join(o for o in pts_options.split(",") if not o.startswith("gid="))
    mount("devpts", os.path.join(dev, "pts"), "devpts", flags, pts_options)
    os.mkdir(os.path.join(dev, "shm"), 0o1777)
    flags, data = _system_options(ctx, "/dev/shm", MountFlags.NOSUID | MountFlags.NODEV | MountFlags.NOEXEC, "mode=1777,size=65536k")
    mount("shm", os.path.join(dev, "shm"), "tmpfs", flags, data)
    os.mkdir(os.path.join(dev, "mqueue"), 0o755)
    if "ipc" in ctx.namespaces:
        flags, data = _system_options(ctx, "/dev/mqueue", MountFlags.NOSUID | MountFlags.NODEV | MountFlags.NOEXEC, None)
        mount("mqueue", os.path.join(dev, "mqueue"), "mqueue", flags, data)
    for name, target in DEV_SYMLINKS:
        os.symlink(target, os.path.join(dev, name))
    if os.path.exists("/proc/kcore"):
        os.symlink("/proc/kcore", os.path.join(dev, "core"))


def mount_sys(ctx: Context) -> None:
    """A read-only sysfs at /sys (a read-only bind of the host's when sysfs is refused)."""
    target = ctx.path("/sys")
    flags, data = _system_options(ctx, "/sys", MountFlags.RDONLY | MountFlags.NOSUID | MountFlags.NODEV | MountFlags.NOEXEC, None)
    try:
        mount("sysfs", target, "sysfs", flags, data)
    except OSError as e:
        if e.errno != 1:  # EPERM: a user namespace sharing the host's network namespace
            raise
        mount("/sys", target, None, MountFlags.BIND | MountFlags.REC)
        remount_readonly(target)


def mount_cgroupfs(ctx: Context) -> None:
    """/sys/fs/cgroup as runc mounts it: the container's own cgroup(s), read-only."""
    if ctx.spec.cgroupfs:
        mount_cgroup_tree(ctx)


def extra_mounts(ctx: Context) -> None:
    """The spec's extra mounts: bind mounts of host paths and tmpfs."""
    trees = ctx.plan.mount_trees or (-1,) * len(ctx.spec.mounts)
    for m, tree in zip(ctx.spec.mounts, trees):
        _mount_one(ctx, m, tree)


def etc_files(ctx: Context) -> None:
    """Bind the generated /etc/hosts, /etc/hostname, /etc/resolv.conf over the image's."""
    for source, inside in ctx.plan.etc_files:
        target = ctx.path(inside)
        mount(source, target, None, MountFlags.BIND)
        if ctx.spec.nodev:
            set_mount_attrs(target, MountAttr.NODEV)


def console(ctx: Context) -> None:
    """With a terminal: a pty from the container's own devpts, its master sent to the parent.

    Either way PID 1 leads a session of its own, as under containerd's shim or conmon: the
    caller's terminal sends its ^C to the caller, which decides what the container gets (PID 1
    a signal, or a stop), never to every process of the container at once."""
    if not ctx.spec.terminal:
        os.setsid()
        return
    pts = os.path.join(ctx.root, "dev", "pts")
    master = os.open(os.path.join(pts, "ptmx"), os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, ctypes.c_int(0))  # unlockpt(3)
    number = ctypes.c_uint(0)
    fcntl.ioctl(master, TIOCGPTN, number)  # ptsname(3)
    slave_path = os.path.join(pts, str(number.value))
    slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY)
    os.fchown(slave, ctx.plan.user.uid, -1)
    console_node = os.path.join(ctx.root, "dev", "console")
    open(console_node, "w").close()
    mount(slave_path, console_node, None, MountFlags.BIND)
    with socket.socket(fileno=os.dup(ctx.plan.console_fd)) as sock:
        socket.send_fds(sock, [b"m"], [master])
    os.close(master)
    os.close(ctx.plan.console_fd)
    os.setsid()
    fcntl.ioctl(slave, TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.close(slave)


def pivot(ctx: Context) -> None:
    """pivot_root into the rootfs and detach the old root: the host's files are gone."""
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY)
    new_root = os.open(ctx.root, os.O_DIRECTORY | os.O_RDONLY)
    try:
        os.fchdir(new_root)
        pivot_root(".", ".")  # the old root is now stacked on top of the new one
        os.fchdir(old_root)
        mount(None, ".", None, MountFlags.REC | MountFlags.SLAVE)
        umount2(".", UmountFlags.DETACH)
        os.chdir("/")
    finally:
        os.close(old_root)
        os.close(new_root)


def masked_paths(ctx: Context) -> None:
    """Hide what Docker hides: /dev/null over files, a read-only tmpfs over directories."""
    for pattern in ctx.spec.effective_masked_paths:
        for path in sorted(glob.glob(pattern)) if "*" in pattern else [pattern]:
            _mask(path)


def _mask(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return  # this kernel has no such file (/proc/kcore here)
    if stat.S_ISDIR(st.st_mode):
        mount("tmpfs", path, "tmpfs", MountFlags.RDONLY)
    else:
        mount("/dev/null", path, None, MountFlags.BIND)


def readonly_paths(ctx: Context) -> None:
    """Make the kernel's knobs read-only: /proc/sys, /proc/sysrq-trigger, ..."""
    for path in ctx.spec.effective_readonly_paths:
        if not os.path.lexists(path):
            continue
        mount(path, path, None, MountFlags.BIND | MountFlags.REC)
        remount_readonly(path)


def working_directory(ctx: Context) -> None:
    """cd to the working directory, creating it when the image lacks it."""
    os.makedirs(ctx.spec.cwd, 0o755, exist_ok=True)
    os.chdir(ctx.spec.cwd)


def readonly_rootfs(ctx: Context) -> None:
    """Remount the root read-only (the mounts on top of it stay as they are)."""
    if ctx.spec.readonly_rootfs:
        remount_readonly("/")


def hostname(ctx: Context) -> None:
    """Set the hostname of the container's UTS namespace."""
    if "uts" in ctx.namespaces and ctx.spec.hostname:
        sethostname(ctx.spec.hostname)


def rlimits(ctx: Context) -> None:
    """Set the resource limits (clamped to the hard limits this host allows)."""
    for name, (soft, hard) in ctx.spec.limits.rlimits.items():
        which = getattr(resource, f"RLIMIT_{name.upper()}")
        _, host_hard = resource.getrlimit(which)
        hard = _min_limit(hard, host_hard)
        soft = _min_limit(soft, hard)
        resource.setrlimit(which, (soft, hard))


def no_new_privs(ctx: Context) -> None:
    """PR_SET_NO_NEW_PRIVS: setuid binaries and file capabilities grant nothing any more."""
    if ctx.spec.no_new_privileges:
        caps.set_no_new_privs()


def seccomp_filter(ctx: Context) -> None:
    """Load Docker's default seccomp policy (libseccomp), or a bundle's linux.seccomp."""
    # compiled by the parent (runtime._prepare, once per process and profile): only loaded here
    if ctx.plan.seccomp_program is not None:
        seccomp.load_program(ctx.plan.seccomp_program)


def switch_user(ctx: Context) -> None:
    """setgroups, setgid, setuid to the container's user (capabilities kept for the next step)."""
    user = ctx.plan.user
    if _setgroups_allowed():
        os.setgroups(list(user.groups))
    # else the single mapping of a user namespace: the kernel denies setgroups(2) (part 5), and
    # no group but the caller's own is mapped there anyway
    os.setresgid(user.gid, user.gid, user.gid)
    caps.keep_capabilities_across_setuid(True)
    os.setresuid(user.uid, user.uid, user.uid)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # a change of credentials clears it


def drop_capabilities(ctx: Context) -> None:
    """Drop to the container's capability sets (Docker's default 14 unless told otherwise)."""
    caps.apply(ctx.plan.capability_sets, ctx.plan.cap_last)


def reaper(ctx: Context) -> None:
    """With init: stay as PID 1, fork the command, reap every zombie, forward signals."""
    if not ctx.spec.init:
        return
    # the command waits for the end of this pipe, which comes when PID 1 has closed its
    # descriptors: scheduled first (a busy host), it could otherwise see PID 1 still holding
    # the report pipe in /proc/1/fd
    closed_r, closed_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(closed_w)
        os.read(closed_r, 1)
        os.close(closed_r)
        return  # the command's process goes on to exec
    syscalls.close_range(3)  # the report pipe included: only the command reports from now on
    # not dumpable: the container's processes cannot read this one's memory or environment
    prctl(PR_SET_DUMPABLE, 0)
    forward_signals(child, REAPER_FORWARDS)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            os._exit(128 - code if code < 0 else code)


def execute(ctx: Context) -> None:
    """execvpe the command with exactly the container's environment, descriptors 0-2 only."""
    # one call marks every other descriptor close-on-exec: the report pipe still works if
    # execve fails, and nothing of the caller's (lock files, pipes, sockets) gets through
    syscalls.close_range(3, flags=syscalls.CLOSE_RANGE_CLOEXEC)
    # Python ignores SIGPIPE and SIGXFSZ; an exec'd program must start with the defaults
    for sig in (signal.SIGPIPE, signal.SIGXFSZ) + REAPER_FORWARDS:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    env = dict(item.split("=", 1) for item in ctx.plan.env)
    args = list(ctx.spec.args)
    try:
        os.execvpe(args[0], args, env)
    except FileNotFoundError:
        if "/" in args[0]:
            raise
        raise OSError(2, f"executable file not found in $PATH ({env.get('PATH', '')})", args[0]) from None


#: the child's setup, in order: (name, function). The names are what failures report.
SETUP_STEPS = (
    ("namespaces", enter_namespaces),
    ("fresh init", fresh_init),
    ("cgroup namespace", enter_cgroup_namespace),
    ("mount propagation", private_propagation),
    ("rootfs", bind_rootfs),
    ("network", network),
    ("/proc", mount_proc),
    ("/dev", populate_dev),
    ("/sys", mount_sys),
    ("/sys/fs/cgroup", mount_cgroupfs),
    ("mounts", extra_mounts),
    ("/etc files", etc_files),
    ("console", console),
    ("pivot_root", pivot),
    ("read-only paths", readonly_paths),
    ("masked paths", masked_paths),
    ("working directory", working_directory),
    ("read-only rootfs", readonly_rootfs),
    ("hostname", hostname),
    ("rlimits", rlimits),
    ("no_new_privs", no_new_privs),
    ("seccomp", seccomp_filter),
    ("user", switch_user),
    ("capabilities", drop_capabilities),
    ("init", reaper),
    ("exec", execute),
)


def describe_steps() -> list[tuple[str, str]]:
    """(name, first line of the docstring) of every setup step, for the chapter."""
    return [(name, (fn.__doc__ or "").strip().splitlines()[0]) for name, fn in SETUP_STEPS]


def container_main(plan: Plan, start: int = 0) -> int:
    """Run the setup steps (from step ``start`` on), reporting each by name; exec the
    command (returns only on error)."""
    ctx = Context(plan)
    for name, step in SETUP_STEPS[start:]:
        _send(plan.report_fd, {"step": name})
        try:
            step(ctx)
        except BaseException as e:  # noqa: BLE001 - everything goes to the parent, by step name
            _send(
                plan.report_fd,
                {
                    "failed": name,
                    "errno": getattr(e, "errno", None) or 0,
                    "error": getattr(e, "strerror", None) or str(e) or type(e).__name__,
                    "path": _text(getattr(e, "filename", None)),
                    "type": type(e).__name__,
                },
            )
            if name == "exec":
                return 127 if getattr(e, "errno", None) == errno.ENOENT else 126
            return 125
    return 125  # not reached: exec does not return


# -- a fresh interpreter as PID 1 (with init) --------------------------------------------------

#: what the fresh interpreter runs: the import root on the first line of the plan's
#: descriptor, then the pickled (plan, next step); nothing comes from the environment
_RESUME = (
    "import os, sys; f = os.fdopen({fd}, 'rb'); "
    "sys.path[:0] = [f.readline()[:-1].decode('utf-8', 'surrogateescape')]; "
    "from part6_runtime.setup import resume; resume(f)"
)


def reexecute(plan: Plan, start: int) -> None:
    """Replace this process (a fork of the caller) by a fresh Python that runs
    ``SETUP_STEPS[start:]``. Only the report pipe, the console socket and the plan (a
    memfd) are inherited; the environment is empty. Does not return."""
    data = os.memfd_create("part6-plan", 0)  # not close-on-exec: the new interpreter reads it
    with os.fdopen(os.dup(data), "wb") as f:
        f.write(plan.import_root.encode("utf-8", "surrogateescape") + b"\n")
        pickle.dump((plan, start), f, protocol=pickle.HIGHEST_PROTOCOL)
    os.lseek(data, 0, os.SEEK_SET)
    syscalls.close_range(3, flags=syscalls.CLOSE_RANGE_CLOEXEC)
    # the mount trees of the sources given as descriptors are attached by the new interpreter
    for fd in (data, plan.report_fd, plan.console_fd, *plan.mount_trees):
        if fd is not None and fd >= 0:
            os.set_inheritable(fd, True)
    argv = [sys.executable, "-I", "-S", "-c", _RESUME.format(fd=data)]
    os.execve(sys.executable, argv, {})


def resume(f) -> None:
    """In the fresh interpreter: read the plan and run the remaining steps. Never returns."""
    plan, start = pickle.load(f)
    f.close()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        # PID 1 gets no default action: a handler that ends it as the default would
        signal.signal(sig, lambda signum, _frame: os._exit(128 + signum))
    for fd in (plan.report_fd, plan.console_fd):
        if fd is not None and fd >= 0:
            os.set_inheritable(fd, False)
    # load what the steps need from the host before pivot_root
    syscalls.libc()
    code = 125
    try:
        code = container_main(plan, start)
    finally:
        os._exit(code)


# -- helpers -----------------------------------------------------------------------------------


def _send(fd: int, message: dict) -> None:
    try:
        os.write(fd, json.dumps(message, default=str).encode() + b"\n")
    except OSError:
        pass  # the parent is gone; the death signal will follow


def _text(value: object) -> str | None:
    if value is None:
        return None
    return os.fsdecode(value) if isinstance(value, bytes) else str(value)


def _dup_stdio(stdio: tuple[int | None, int | None, int | None]) -> None:
    # dup first: a caller's stdout may be our fd 0, and dup2 must not clobber it early
    copies = [None if fd is None else os.dup(fd) for fd in stdio]
    for target, fd in enumerate(copies):
        if fd is not None:
            os.dup2(fd, target)
            os.close(fd)


def _setgroups_allowed() -> bool:
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() != "deny"
    except FileNotFoundError:
        return True


def _min_limit(a: int, b: int) -> int:
    inf = resource.RLIM_INFINITY
    if a == inf:
        return b
    if b == inf:
        return a
    return min(a, b)


def set_mount_attrs(path: str, attrs: int) -> None:
    """Add mount attributes (read-only, nodev...) to the mount at ``path`` and to every mount
    below it: mount_setattr(2) with AT_RECURSIVE, else (before Linux 5.12) one remount each."""
    try:
        syscalls.mount_setattr(path, attrs, recursive=True)
        return
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
    flags = 0
    for mount_flag, attr in ((MountFlags.RDONLY, MountAttr.RDONLY), (MountFlags.NOSUID, MountAttr.NOSUID),
                             (MountFlags.NODEV, MountAttr.NODEV), (MountFlags.NOEXEC, MountAttr.NOEXEC)):
        if attrs & attr:
            flags |= mount_flag
    for mount_point in _mounts_at_or_below(path):
        _remount(mount_point, flags)


def _mounts_at_or_below(path: str) -> list[str]:
    path = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == path or point.startswith(path.rstrip("/") + "/"):
                found.append(point)
    return found


def mount_cgroup_tree(ctx: Context) -> None:
    """Mount /sys/fs/cgroup the way runc does. v1: a tmpfs holding one directory per
    hierarchy, each a cgroup mount of that hierarchy (with a cgroup namespace its root is the
    container's group) or, without one, a bind of the container's directory; v2: one cgroup2
    mount (or bind). Read-only unless the options say otherwise."""
    target = ctx.path("/sys/fs/cgroup")
    flags, _ = _system_options(ctx, "/sys/fs/cgroup", MountFlags.RDONLY | MountFlags.NOSUID | MountFlags.NODEV | MountFlags.NOEXEC, None)
    flags &= ~(MountFlags.BIND | MountFlags.REC)
    own_ns = "cgroup" in ctx.namespaces
    if ctx.plan.cgroup_version == 2:
        if own_ns:
            mount("cgroup2", target, "cgroup2", flags)
        else:
            _bind_cgroup(ctx.plan.cgroup_members[0][2], target, flags)
        return
    mount("tmpfs", target, "tmpfs", MountFlags.NOSUID | MountFlags.NODEV | MountFlags.NOEXEC, "mode=755")
    for name, options, directory in ctx.plan.cgroup_members:
        where = os.path.join(target, name)
        os.mkdir(where, 0o755)
        if own_ns:
            mount("systemd" if options.startswith("name=") else "cgroup", where, "cgroup", flags, options)
        else:
            _bind_cgroup(directory, where, flags)
        if "," in name:  # co-mounted controllers: cpu -> cpu,cpuacct, as runc links them
            for controller in name.split(","):
                os.symlink(name, os.path.join(target, controller))


def _bind_cgroup(source: str, target: str, flags: int) -> None:
    mount(source, target, None, MountFlags.BIND)
    _remount(target, flags)


def _remount(path: str, add: int) -> None:
    """Remount one mount with ``add`` flags, keeping the flags it has (the kernel refuses to
    clear one that a more privileged namespace locked, so they are read back and passed again)."""
    flags = MountFlags.BIND | MountFlags.REMOUNT | add
    st = os.statvfs(path)
    if st.f_flag & os.ST_RDONLY:
        flags |= MountFlags.RDONLY
    for st_flag, mount_flag in _STATVFS_FLAGS:
        if st.f_flag & st_flag:
            flags |= mount_flag
    mount(None, path, None, flags)


def remount_readonly(path: str) -> None:
    """Make one mount read-only, keeping its other flags (the kernel refuses to clear a flag
    that a more privileged namespace locked, so they are read back and passed again)."""
    _remount(path, MountFlags.RDONLY)


def _parse_options(options: tuple[str, ...]) -> tuple[int, list[str]]:
    """mount(8)-style words -> (mount flags, the filesystem's data words)."""
    flags = 0
    data = []
    for option in options:
        if option in _OPTION_FLAGS:
            flags |= _OPTION_FLAGS[option]
        elif option in _PROPAGATION:
            continue  # every mount here is private already
        else:
            data.append(option)
    return flags, data


def _system_options(ctx: Context, destination: str, flags: int, data: str | None) -> tuple[int, str | None]:
    """The flags and data for one of the mounts every container gets: the spec's own
    (``system_mounts``, from a bundle) when it lists that destination, else Docker's."""
    for m in ctx.spec.system_mounts:
        if m.destination == destination:
            own_flags, own_data = _parse_options(m.options)
            return own_flags & ~(MountFlags.BIND | MountFlags.REC), ",".join(own_data) or None
    return flags, data


def _mount_one(ctx: Context, m: Mount, tree: int = -1) -> None:
    flags, data = _parse_options(m.options)
    nodev = ctx.spec.nodev and "dev" not in m.options
    if m.is_bind:
        # read-only, nosuid, noexec and nodev hold for the submounts of an rbind too
        attrs = MountAttr.NODEV if nodev else MountAttr.NONE
        for word in m.options:
            attrs |= _OPTION_ATTRS.get(word, 0)
        if tree >= 0:
            # a source given as a descriptor: the parent cloned its mount tree (open_tree), its
            # attributes are set before anyone can see it, and it is attached on the mount
            # point's descriptor: no path is walked, none can be swapped
            if attrs:
                syscalls.mount_setattr("", attrs, dirfd=tree)
            _at_mount_point(ctx, m.destination, lambda where: syscalls.move_mount(tree, where))
            return
        _at_mount_point(ctx, m.destination, lambda where: mount(m.source_path, f"/proc/self/fd/{where}", None, MountFlags.BIND | (flags & MountFlags.REC)))
        if attrs:  # opened again: now it is the root of the new mount
            _at_mount_point(ctx, m.destination, lambda where: set_mount_attrs(f"/proc/self/fd/{where}", attrs))
        return
    if nodev:
        flags |= MountFlags.NODEV
    _at_mount_point(ctx, m.destination, lambda where: mount(m.source or m.type, f"/proc/self/fd/{where}", m.type, flags & ~(MountFlags.BIND | MountFlags.REC), ",".join(data) or None))


def _at_mount_point(ctx: Context, destination: str, action) -> None:
    """``action(fd)`` with ``fd`` an O_PATH descriptor of ``destination``, resolved inside the
    rootfs (part 4's RootDir)."""
    with RootDir(ctx.root) as rd:
        where = rd.open(destination)
    try:
        action(where)
    finally:
        os.close(where)
