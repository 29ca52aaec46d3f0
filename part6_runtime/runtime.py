"""The runtime's side: prepare, start the container, pass signals and stdio, return its exit code.

``run(spec)`` does what ``runc run`` does for a bundle:

1. resolve what the child needs while the host's files are still at hand: the user from the
   image's /etc/passwd, the environment, the capability sets, generated /etc files, missing
   mount points (created now, removed afterwards, so the image is left as it was);
2. create the cgroup with the limits;
3. ``spawn`` (part 5) the child in new namespaces; it runs ``container_main`` as PID 1;
4. move PID 1 into the cgroup and start slirp4netns for a private network, then release it
   (on cgroup v1 as the host's root, PID 1 joins its groups itself once released: the
   kernel moves a thread that moves itself without a lock that costs an RCU grace period);
5. forward SIGINT/SIGTERM, relay the terminal, wait; a setup step that failed is raised
   as ``RuntimeSetupError(step, cause)``; the exit code is returned (128+N for signal N).
"""

from __future__ import annotations

import contextlib
import errno as errno_
import fcntl
import functools
import json
import os
import select
import shutil
import signal
import socket
import stat
import tempfile
import termios
import threading
import tty
from collections.abc import Callable
from typing import IO

from part1_overview import replace
from part4_tar import LayerError, RootDir
from part5_namespaces import CloneFlags, NamespaceError, spawn, syscalls

from . import capabilities as caps
from . import seccomp
from .cgroups import Cgroup, CgroupError, caller_members, delegation_problem, privileged
from .errors import ContainerError, RuntimeSetupError, SpecError
from .network import SLIRP_DNS, Slirp
from .setup import Plan, container_main
from .spec import DEFAULT_PATH, CapabilitySets, ContainerSpec
from .users import check_ids, resolve_user

#: runtime-spec namespace names -> clone flags (cgroup is entered by PID 1 itself, after it
#: joined its cgroup, so that the namespace's root is the container's own cgroup)
NAMESPACE_FLAGS = {
    "mount": CloneFlags.NEWNS,
    "pid": CloneFlags.NEWPID,
    "uts": CloneFlags.NEWUTS,
    "ipc": CloneFlags.NEWIPC,
    "network": CloneFlags.NEWNET,
    "user": CloneFlags.NEWUSER,
}

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)

StdioArg = int | IO | None


def run(
    spec: ContainerSpec,
    *,
    stdin: StdioArg = None,
    stdout: StdioArg = None,
    stderr: StdioArg = None,
    on_step: Callable[[str], None] | None = None,
    kill_on_interrupt: bool = False,
    stop_signal: int | None = None,
    stop_timeout: float | None = 10.0,
) -> int:
    """Run the container described by ``spec`` and wait for it.

    ``stdin``/``stdout``/``stderr``: a file descriptor or an object with ``fileno()``; None
    passes the caller's own. With ``spec.terminal`` the command gets a pty whose other end is
    relayed to ``stdin``/``stdout``. ``on_step(name)`` is called (from a helper thread) as
    the container starts each setup step. SIGINT, SIGTERM, SIGHUP and SIGQUIT to the caller
    are forwarded to PID 1 (which, without ``init``, ignores those it has no handler for, as
    under ``docker run``); with ``kill_on_interrupt`` (a builder's RUN step, as BuildKit
    cancels one) the container is killed instead and the result is 128+N for that signal N.
    With ``stop_signal`` (``capstone run``, as ``docker stop``) SIGINT or SIGTERM stops the
    container instead: ``stop_signal`` (the image's StopSignal) goes to PID 1 and, if it still
    runs ``stop_timeout`` seconds later (None: no limit), SIGKILL; a PID 1 that ignores the
    signal cannot keep it running. A second SIGINT or SIGTERM (^C again) sends SIGKILL at once.
    Returns the exit code, 128+N after signal N.
    Raises ``RuntimeSetupError(step, cause)`` when a setup step fails, ``SpecError`` for a
    spec that cannot run.
    """
    stdio = tuple(_fd(x) for x in (stdin, stdout, stderr))
    with _Resources() as res:
        plan = _prepare(spec, stdio, res)
        stop = (stop_signal, stop_timeout) if stop_signal is not None else None
        return _start_and_wait(plan, res, on_step, kill_on_interrupt, stop)


def warm(spec: ContainerSpec) -> None:
    """Do once, in this process, the work ``run(spec)`` would otherwise repeat in every fork
    of it: compile the container's seccomp filter (kept per process, by profile). A caller that
    starts each container from a fresh fork of itself (the capstone's per-RUN helper) calls
    this first, so that the forks inherit the compiled filter. Raises ``RuntimeSetupError``
    as ``run`` would."""
    _seccomp_program(spec, _capability_sets(spec, 0))


# -- preparation (in the caller's process, with the host's files at hand) ----------------------


class _Resources:
    """What a run creates on the host, undone in reverse order even when something failed."""

    def __init__(self) -> None:
        self.undo: list[Callable[[], None]] = []

    def __enter__(self) -> "_Resources":
        return self

    def __exit__(self, *exc: object) -> None:
        errors = []
        for undo in reversed(self.undo):
            try:
                undo()
            except Exception as e:  # noqa: BLE001 - keep cleaning, report the first
                errors.append(e)
        if errors and exc[0] is None:
            raise errors[0]


def _fd(x: StdioArg) -> int | None:
    if x is None or isinstance(x, int):
        return x
    return x.fileno()


def _prepare(spec: ContainerSpec, stdio: tuple, res: _Resources) -> Plan:
    rootfs = os.path.realpath(spec.rootfs)
    if not os.path.isdir(rootfs):
        raise SpecError(f"rootfs {spec.rootfs}: not a directory")
    user = resolve_user(rootfs, spec.user, spec.additional_gids)
    check_ids(user.uid, user.gid)
    if spec.uid_maps and not any(m.to_outside(user.uid) is not None for m in spec.uid_maps):
        raise SpecError(f"uid {user.uid} is not mapped by the container's uid_maps")

    sets = _capability_sets(spec, user.uid)
    hostname = spec.hostname or socket.gethostname()
    env = _environment(spec, user.home)

    workdir = tempfile.mkdtemp(prefix="part6-", dir=_scratch_base())
    res.undo.append(functools.partial(shutil.rmtree, workdir, ignore_errors=True))
    etc = _generate_etc_files(workdir, spec, hostname) if spec.etc_files else []
    if spec.uid_maps:
        # the generated files must be readable and writable by the container's root
        root_uid = next(m.to_outside(0) for m in spec.uid_maps if m.to_outside(0) is not None)
        root_gid = next((m.to_outside(0) for m in spec.gid_maps if m.to_outside(0) is not None), 0)
        for path in [workdir] + [p for p, _ in etc]:
            os.chown(path, root_uid, root_gid)
    _make_mountpoints(rootfs, spec, [inside for _, inside in etc], res)

    # a source given as a descriptor: a detached copy of its mount tree, made here in the
    # caller's mount namespace and attached by the child in the container's (a descriptor of
    # a mount of another namespace cannot be bind-mounted there); a caller that runs us in a
    # namespace of our own gives the detached tree itself, made in its namespace
    trees = []
    for m in spec.mounts:
        if m.is_bind and isinstance(m.source, int):
            res.undo.append(functools.partial(os.close, tree := _mount_tree(m)))
            trees.append(tree)
        else:
            trees.append(-1)

    # load what the child needs from the host before its pivot_root (libc), and compile its
    # seccomp filter here, once per process: the child only loads it
    syscalls.libc()
    return Plan(
        spec=spec,
        rootfs=rootfs,
        user=user,
        env=env,
        capability_sets=sets,
        cap_last=caps.last_cap(),
        etc_files=tuple(etc),
        report_fd=-1,
        go_fd=-1,
        stdio=stdio,
        import_root=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        mount_trees=tuple(trees),
        seccomp_program=_seccomp_program(spec, sets),
    )


def _seccomp_program(spec: ContainerSpec, sets: CapabilitySets) -> seccomp.Program | None:
    """The container's filter, compiled (libseccomp; once per profile in this process)."""
    try:
        if isinstance(spec.seccomp, dict):
            return seccomp.compile_profile(spec.seccomp)
        if spec.seccomp:
            return seccomp.compile_docker_default(sets.bounding)
    except (OSError, ValueError) as e:
        raise RuntimeSetupError("seccomp", e) from e
    return None


def _scratch_base() -> str | None:
    """Where the generated /etc files live during a run: a tmpfs (/dev/shm) when this host has
    one, so that making and removing them never waits for a disk (an rmdir on this machines'
    ext4, mounted with discard, takes half a millisecond); else the default temp directory."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def _mount_tree(m) -> int:
    """A detached mount tree for ``m``'s descriptor source: a clone of the mount it names, or
    (when it is not a mount of this namespace) a duplicate of the detached tree it already is."""
    try:
        return syscalls.open_tree(m.source, "", recursive="rbind" in m.options)
    except OSError as e:
        if e.errno != errno_.EINVAL or _mount_id(m.source) in _visible_mount_ids():
            raise SpecError(f"bind mount on {m.destination}: cloning the source: {e.strerror}") from None
    return os.dup(m.source)


def _mount_id(fd: int) -> int | None:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    return None


def _visible_mount_ids() -> set[int]:
    with open("/proc/self/mountinfo") as f:
        return {int(line.split()[0]) for line in f}


def _capability_sets(spec: ContainerSpec, uid: int) -> CapabilitySets:
    if isinstance(spec.capabilities, CapabilitySets):
        sets = spec.capabilities
    elif spec.capabilities is None:
        sets = CapabilitySets.docker(root=uid == 0)
    else:
        sets = CapabilitySets.docker(spec.capabilities, root=uid == 0)
    for names in (sets.bounding, sets.effective, sets.permitted, sets.inheritable, sets.ambient):
        for name in names:
            try:
                caps.cap_number(name)
            except ValueError as e:
                raise SpecError(str(e)) from None
    return sets


def _environment(spec: ContainerSpec, home: str) -> tuple[str, ...]:
    """The command's environment: the spec's, with PATH (Docker's default) and HOME (from
    the image's /etc/passwd, as runc does) when it lacks them."""
    env: dict[str, str] = {}
    keys = {item.split("=", 1)[0] for item in spec.env}
    if "PATH" not in keys:
        env["PATH"] = DEFAULT_PATH
    for item in spec.env:
        key, value = item.split("=", 1)
        env[key] = value
    env.setdefault("HOME", home)
    return tuple(f"{k}={v}" for k, v in env.items())


def _generate_etc_files(workdir: str, spec: ContainerSpec, hostname: str) -> list[tuple[str, str]]:
    """hosts, hostname and resolv.conf for this container, bound over the image's copies."""
    if spec.network == "host":
        hosts = _read_host_file("/etc/hosts") or "127.0.0.1\tlocalhost\n"
    else:
        hosts = (
            "127.0.0.1\tlocalhost\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"127.0.1.1\t{hostname}\n"
        )
    host_resolv = _read_host_file("/etc/resolv.conf")
    if spec.network == "host":
        resolv = host_resolv
    else:
        # the host's loopback resolvers are unreachable from another network namespace
        kept = [
            line for line in host_resolv.splitlines()
            if not (line.startswith("nameserver") and (line.split()[1:2] or [""])[0].startswith(("127.", "::1")))
        ]
        if spec.network == "private":
            kept = [line for line in kept if not line.startswith("nameserver")] + [f"nameserver {SLIRP_DNS}"]
        resolv = "\n".join(kept) + ("\n" if kept else "")
    files = [("hosts", hosts), ("hostname", hostname + "\n"), ("resolv.conf", resolv)]
    out = []
    for name, content in files:
        path = os.path.join(workdir, name)
        with open(path, "w") as f:
            f.write(content)
        os.chmod(path, 0o644)
        out.append((path, f"/etc/{name}"))
    return out


def _read_host_file(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _make_mountpoints(rootfs: str, spec: ContainerSpec, etc_files: list[str], res: _Resources) -> None:
    """Create the mount points the image lacks; they are removed after the run (if still
    empty), so the rootfs, an overlay's upper dir for example, keeps no trace of them.

    Paths resolve inside the rootfs (part 4's RootDir: an image's ``/etc/resolv.conf ->
    /run/...`` means the rootfs' /run); nothing that exists is replaced."""
    wanted: list[tuple[str, bool]] = [("/proc", True), ("/dev", True), ("/sys", True)]
    wanted += [(inside, False) for inside in etc_files]
    for m in spec.mounts:
        is_dir = True
        if m.is_bind:
            if not os.path.exists(m.source_path):
                raise SpecError(f"bind mount source {m.source_path} does not exist")
            is_dir = os.path.isdir(m.source_path)
        wanted.append((m.destination, is_dir))
    with RootDir(rootfs) as rd:
        for inside, is_dir in wanted:
            made: list[str] = []
            try:
                real = rd.resolve(inside)
                if rd.lstat(real) is not None:
                    continue
                parts = real.split("/")
                for i in range(1, len(parts) + 1):
                    sub = "/".join(parts[:i])
                    st = rd.lstat(sub)
                    if st is not None:
                        if not stat.S_ISDIR(st.st_mode):
                            raise NotADirectoryError(errno_.ENOTDIR, f"/{sub} is not a directory")
                        continue
                    if i < len(parts) or is_dir:
                        os.close(rd.make_dir(sub, 0o755))
                    else:
                        os.close(rd.create_file(sub, 0o644))
                    made.append(sub)
            except (OSError, LayerError) as e:
                detail = getattr(e, "strerror", None) or str(e)
                raise RuntimeSetupError("mount points", OSError(getattr(e, "errno", None) or errno_.EINVAL,
                                        f"creating mount point {inside}: {detail}", rootfs)) from e
            finally:
                res.undo.extend(functools.partial(_remove_if_empty, rootfs, sub) for sub in made)


def _remove_if_empty(rootfs: str, real: str) -> None:
    """Remove the mount point ``real`` (below ``rootfs``) we made, unless the container put
    something there."""
    try:
        with RootDir(rootfs) as rd:
            p = rd.parent(real, create=False)
            st = os.stat(p.name, dir_fd=p.fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                os.rmdir(p.name, dir_fd=p.fd)
            elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                os.unlink(p.name, dir_fd=p.fd)
    except (OSError, LayerError):
        pass  # not empty any more, or gone: keep what is there


# -- start, relay, wait ----------------------------------------------------------------------


def _start_and_wait(plan: Plan, res: _Resources, on_step: Callable[[str], None] | None,
                    kill_on_interrupt: bool = False, stop: tuple[int, float | None] | None = None) -> int:
    spec = plan.spec
    cgroup, version, members = _container_cgroup(spec, res)
    # v1, host root, no user namespace (whose root may not write the host's cgroup files):
    # PID 1 joins its groups itself, which the kernel does without a global lock
    joins_itself = cgroup is not None and version == 1 and privileged() and "user" not in spec.namespace_set
    report_r, report_w = os.pipe()
    go_r, go_w = os.pipe()
    res.undo.append(functools.partial(_close_quietly, report_r))
    console_parent = console_child = None
    if spec.terminal:
        console_parent, console_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        res.undo.append(console_parent.close)
    plan = _replace(plan, report_fd=report_w, go_fd=go_r, console_fd=console_child.fileno() if console_child else None,
                    cgroup_version=version, cgroup_members=tuple((n, o, str(d)) for n, o, d in members),
                    cgroup_tasks=tuple(str(d / "tasks") for d in cgroup.directories) if joins_itself else ())
    child, flags = _spawn_container(plan, go_w, console_child)
    reporter = _Reporter(report_r, on_step)
    reporter.start()
    pid1 = _release(child, flags, None if joins_itself else cgroup, spec.network, res, go_w)
    relay = None
    if console_parent is not None:
        in_fd = plan.stdio[0] if plan.stdio[0] is not None else 0
        out_fd = plan.stdio[1] if plan.stdio[1] is not None else 1
        relay = _ConsoleRelay(console_parent, in_fd, out_fd)
        relay.start()
    code = _wait_for(child, relay, pid1 if kill_on_interrupt else None, (pid1, *stop) if stop is not None else None)
    if relay is not None:
        relay.finish()
    reporter.join()
    _raise_setup_failure(reporter, code)
    return code


def _container_cgroup(spec: ContainerSpec, res: _Resources):
    """(the container's own cgroup or None, the cgroup version, the members it joins).

    Every container gets a cgroup of its own (its device rules live there); an unprivileged
    caller (root of a user namespace included) makes one only for its limits, where the tree
    is delegated to it, and its user namespace already denies mknod and foreign devices."""
    host_root = privileged()
    if not (spec.limits.uses_cgroups or host_root):
        return None, *caller_members()
    problem = None if host_root else delegation_problem(spec.limits)
    if problem is not None:
        raise RuntimeSetupError("cgroup", CgroupError(problem))
    cgroup = Cgroup.create(f"part6-{os.getpid()}-{os.urandom(4).hex()}", spec.limits,
                           devices=spec.device_rules if host_root else None)
    res.undo.append(cgroup.remove)
    return cgroup, cgroup.version, cgroup.members


def _spawn_container(plan: Plan, go_w: int, console_child: socket.socket | None):
    """The container's first process, cloned into its namespaces, waiting on the go pipe:
    (the child, its clone flags). The child's ends of the pipes are closed here."""
    flags = CloneFlags(0)
    for name in plan.spec.namespace_set:
        flags |= NAMESPACE_FLAGS.get(name, 0)
    try:
        child = spawn(
            functools.partial(container_main, plan),
            flags,
            uid_maps=plan.spec.uid_maps or None,
            gid_maps=plan.spec.gid_maps or None,
        )
    except BaseException as e:
        os.close(go_w)  # the go pipe's other end is only closed when the child started
        if isinstance(e, NamespaceError):
            raise RuntimeSetupError("namespaces", e) from e
        raise
    finally:
        os.close(plan.report_fd)
        os.close(plan.go_fd)
        if console_child is not None:
            console_child.close()
    return child, flags


def _release(child, flags: CloneFlags, cgroup: Cgroup | None, network: str, res: _Resources, go_w: int) -> int:
    """What the container's process waits for before it sets itself up: its cgroup and its
    network (slirp4netns, for ``private``); then the go. The child is killed if any fails.
    Returns PID 1 of the container (seen from here)."""
    try:
        pid1 = _pid1_of(child.pid) if flags & CloneFlags.NEWPID else child.pid
        if cgroup is not None:  # None too when PID 1 joins its groups itself
            try:
                cgroup.add(pid1)
            except ContainerError as e:
                raise RuntimeSetupError("cgroup", e) from e
        if network == "private":
            try:
                slirp = Slirp(pid1)
            except ContainerError as e:
                raise RuntimeSetupError("network", e) from e
            res.undo.append(slirp.stop)
        os.write(go_w, b"g")
    except BaseException:
        child.kill()
        child.wait()
        raise
    finally:
        os.close(go_w)
    return pid1


def _wait_for(child, relay: _ConsoleRelay | None, kill_pid: int | None,
              stop: tuple[int, int, float | None] | None = None) -> int:
    """The container's exit code (128 + N when this process was interrupted by signal N),
    the caller's signals forwarded meanwhile (``kill_pid``: the process an interrupt kills;
    ``stop``: PID 1, the signal and the timeout an interrupt stops it with)."""
    forwarding = _SignalForwarding(child, relay, kill_pid, stop)
    with forwarding:
        try:
            code = child.wait()
        except BaseException:
            child.kill()
            child.wait()
            raise
    if forwarding.interrupted is not None:
        code = 128 + forwarding.interrupted
    return code


def _raise_setup_failure(reporter: _Reporter, code: int) -> None:
    """A setup step the container's process reported as failed, raised here with its cause;
    a process that exited non-zero before its first step failed in the namespaces."""
    if reporter.failure is not None:
        failure = reporter.failure
        cause: BaseException
        if failure["errno"]:
            cause = OSError(failure["errno"], failure["error"], failure["path"]) if failure["path"] else OSError(failure["errno"], failure["error"])
        else:
            cause = ContainerError(f"{failure['type']}: {failure['error']}")
        raise RuntimeSetupError(failure["failed"], cause) from cause
    if reporter.last_step is None and code != 0:
        raise RuntimeSetupError("namespaces", ContainerError(f"the container's process exited ({code}) before its first setup step"))

def _replace(plan: Plan, **changes) -> Plan:
    return replace(plan, **changes)


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _pid1_of(middle: int) -> int:
    """The host pid of PID 1: the only child of spawn's middle process."""
    try:
        with open(f"/proc/{middle}/task/{middle}/children") as f:
            children = f.read().split()
    except FileNotFoundError:
        children = []
    if not children:
        raise RuntimeSetupError("namespaces", ContainerError(f"process {middle} has no child: PID 1 did not start"))
    return int(children[0])


class _Reporter(threading.Thread):
    """Reads the child's JSON lines: step names as they start, and a failure if any."""

    def __init__(self, fd: int, on_step: Callable[[str], None] | None) -> None:
        super().__init__(name="part6-report", daemon=True)
        self.fd = fd
        self.on_step = on_step
        self.failure: dict | None = None
        self.last_step: str | None = None

    def run(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                message = json.loads(line)
                if "step" in message:
                    self.last_step = message["step"]
                    if self.on_step is not None:
                        self.on_step(message["step"])
                elif "failed" in message:
                    self.failure = message


class _SignalForwarding:
    """SIGINT/SIGTERM/SIGHUP/SIGQUIT to the runtime go to the container (main thread only),
    or, with ``kill_pid``, end it: SIGKILL to PID 1 (whose host pid that is). With ``stop``
    (PID 1's host pid, a signal, a timeout or None) SIGINT and SIGTERM stop it as ``docker
    stop`` does: the signal to PID 1, SIGKILL when the timeout has passed, or at once when
    asked again (a second ^C: the user will not wait)."""

    def __init__(self, child, relay: "_ConsoleRelay | None", kill_pid: int | None = None,
                 stop: tuple[int, int, float | None] | None = None) -> None:
        self.child = child
        self.relay = relay
        self.kill_pid = kill_pid
        self.stop = stop
        self.stopping = False
        self._timer: threading.Timer | None = None
        self.interrupted: int | None = None
        self.saved: dict[int, object] = {}

    def __enter__(self) -> "_SignalForwarding":
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in FORWARDED_SIGNALS:
            self.saved[sig] = signal.signal(sig, self._forward)
        if self.relay is not None:
            self.saved[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, lambda *_: self.relay.resize())
        return self

    def _forward(self, signum: int, _frame: object) -> None:
        try:
            if self.kill_pid is not None:
                self.interrupted = self.interrupted or signum
                os.kill(self.kill_pid, signal.SIGKILL)
            elif self.stop is not None and signum in (signal.SIGINT, signal.SIGTERM):
                self._stop_container()
            else:
                self.child.send_signal(signum)
        except ProcessLookupError:
            pass

    def _stop_container(self) -> None:
        pid1, stop_signal, timeout = self.stop
        if self.stopping:
            self._kill(pid1)
            return
        self.stopping = True
        if timeout is not None:
            self._timer = threading.Timer(timeout, self._kill, (pid1,))
            self._timer.daemon = True
            self._timer.start()
        # straight to PID 1, not through spawn's middle process, which forwards only a few
        # signals: the kernel delivers it from here only if PID 1 has a handler for it
        os.kill(pid1, stop_signal)

    def _kill(self, pid1: int) -> None:
        if self.child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid1, signal.SIGKILL)

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


class _ConsoleRelay(threading.Thread):
    """Receives the pty master from the container and copies bytes both ways."""

    def __init__(self, sock: socket.socket, in_fd: int, out_fd: int) -> None:
        super().__init__(name="part6-console", daemon=True)
        self.sock = sock
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.master: int | None = None
        self.stop = threading.Event()
        self.saved_tty = None

    def resize(self) -> None:
        if self.master is not None and os.isatty(self.in_fd):
            try:
                size = fcntl_ioctl(self.in_fd, termios.TIOCGWINSZ, b"\0" * 8)
                fcntl_ioctl(self.master, termios.TIOCSWINSZ, size)
            except OSError:
                pass

    def run(self) -> None:
        while not self.stop.is_set():
            ready, _, _ = select.select([self.sock], [], [], 0.1)
            if ready:
                break
        else:
            return
        _, fds, _, _ = socket.recv_fds(self.sock, 16, 1)
        if not fds:
            return
        self.master = fds[0]
        if os.isatty(self.in_fd):
            self.saved_tty = termios.tcgetattr(self.in_fd)
            tty.setraw(self.in_fd)
            self.resize()
        try:
            self._copy()
        finally:
            if self.saved_tty is not None:
                termios.tcsetattr(self.in_fd, termios.TCSAFLUSH, self.saved_tty)
            os.close(self.master)

    def _copy(self) -> None:
        master = self.master
        in_open = True
        while True:
            watch = [master] + ([self.in_fd] if in_open else [])
            ready, _, _ = select.select(watch, [], [], 0.1)
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError as e:
                    if e.errno == errno_.EIO:  # every slave end is closed: the container is gone
                        return
                    raise
                if not data:
                    return
                _write_all(self.out_fd, data)
            elif self.stop.is_set() and not ready:
                return  # the container has exited and nothing is left to read
            if in_open and self.in_fd in ready:
                data = os.read(self.in_fd, 65536)
                if data:
                    _write_all(master, data)
                else:
                    in_open = False
                    _write_all(master, b"\x04")  # end of input: ^D to the terminal

    def finish(self) -> None:
        self.stop.set()
        self.join()


def fcntl_ioctl(fd: int, request: int, arg: bytes) -> bytes:
    return fcntl.ioctl(fd, request, arg)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]

