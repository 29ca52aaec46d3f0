"""spawn(): run a Python function in a child process inside new namespaces.

The order of the steps is the lesson of this chapter; each rule below is enforced here:

1. **Fork first, unshare in the child.** Namespace work never happens in the caller's process
   (it could not be undone, and pytest or a builder would live in it afterwards).
2. **One unshare(2) call, user namespace handled first.** unshare(CLONE_NEWUSER) fails with
   EINVAL in a multi-threaded process; right after fork the child has exactly one thread.
   When NEWUSER is among the flags the kernel creates the user namespace before the others,
   so the new UTS, mount, network... namespaces are *owned* by it and the child's
   capabilities in it (all of them) are what allow creating them, even for an unprivileged
   caller.
3. **The parent writes the id maps, then releases the child.** A process cannot usefully
   map itself (it has no capability in the parent namespace), so the child reports "unshared"
   over a pipe and blocks; the parent writes /proc/PID/uid_map and gid_map (after ``deny``
   to /proc/PID/setgroups for an unprivileged single mapping, see idmap.py) and then writes
   to a second pipe that releases the child.
4. **A PID namespace applies to children.** unshare(CLONE_NEWPID) does not move the caller:
   its *next child* becomes PID 1 of the new namespace. So with NEWPID the child forks once
   more; the middle process stays outside, forwards SIGINT/SIGTERM/SIGHUP/SIGQUIT to PID 1,
   waits for it and exits with its status (re-raising a signal death on itself).
5. **PID 1 is special.** The kernel drops signals sent to a namespace's init process unless
   it installed a handler (SIGKILL and SIGSTOP from an ancestor namespace excepted). So the
   function running as PID 1 gets handlers for the forwarded signals that end it with
   128+N, the status a default action would give. A program that PID 1 exec()s loses those
   handlers: that is why container runtimes offer an init (``docker run --init``).

Setup errors in the child (unshare, setuid, the second fork) travel back over the status pipe
and are raised by :func:`spawn` as :class:`NamespaceError` naming the step. The target's own
return value is the exit code; an exception in it prints one line to stderr and exits 1.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence

from .errors import IdMapError, NamespaceError
from .idmap import IdMap, write_id_maps
from .syscalls import CloneFlags, prctl, unshare

#: prctl(2) options used here
PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4

#: signals the middle process of a PID namespace passes on to PID 1
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def exit_code_from_status(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N for a death by signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class Child:
    """A process started by :func:`spawn`. With NEWPID, ``pid`` is the middle process (in the
    caller's PID namespace); the target is PID 1 of the new namespace below it."""

    def __init__(self, pid: int, flags: CloneFlags) -> None:
        self.pid = pid
        self.flags = flags
        #: the host pid of the process running the target (PID 1 inside, with NEWPID)
        self.target_pid = pid
        self.returncode: int | None = None

    def __repr__(self) -> str:
        state = "running" if self.returncode is None else f"exit {self.returncode}"
        return f"<Child pid={self.pid} flags={_flag_names(self.flags)} {state}>"

    def wait(self) -> int:
        """Wait for the child: its exit code, or 128+N when a signal N ended it."""
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = exit_code_from_status(status)
        return self.returncode

    def poll(self) -> int | None:
        """The exit code if the child has ended, else None (does not block)."""
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = exit_code_from_status(status)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the child (forwarded to PID 1 when there is a PID namespace)."""
        if self.returncode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *exc: object) -> None:
        # never leave a child behind, even when the body failed
        if self.poll() is None:
            self.kill()
            self.wait()


def _flag_names(flags: int) -> str:
    return CloneFlags(flags).name or "0"


# -- the status pipe: child -> parent --------------------------------------------------------
# Messages are JSON lines: {"ok": "unshared"} once, with NEWPID {"pid1": host pid of PID 1},
# then either EOF (the child closed its end right before calling target: setup succeeded) or
# {"step": ..., "errno": ..., "error": ...}.


def _send(fd: int, message: dict) -> None:
    os.write(fd, json.dumps(message).encode() + b"\n")


def _report_and_exit(fd: int, step: str, exc: BaseException) -> None:
    errno = getattr(exc, "errno", None) or 0
    # the step already names the call: keep only the reason
    text = os.strerror(errno) if errno else f"{type(exc).__name__}: {exc}"
    try:
        _send(fd, {"step": step, "errno": errno, "error": text})
    finally:
        os._exit(125)  # like `docker run`: 125 = the container could not be started


class _LineReader:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def next(self) -> dict | None:
        """The next message, or None at EOF."""
        while b"\n" not in self.buf:
            chunk = os.read(self.fd, 4096)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


def spawn(
    target: Callable[[], int | None],
    flags: CloneFlags | int,
    *,
    uid_maps: Sequence[IdMap] | None = None,
    gid_maps: Sequence[IdMap] | None = None,
    before_release: Callable[[int], None] | None = None,
) -> Child:
    """Run ``target()`` in a new child process inside the namespaces ``flags``.

    Returns once the target is about to run (setup done), or raises :class:`NamespaceError`
    naming the step that failed (the child is reaped first). ``uid_maps``/``gid_maps`` need
    CLONE_NEWUSER; see idmap.write_id_maps for who may write what. ``before_release(pid)``
    runs in the caller after the child has unshared (and its maps are written) but before it
    goes on: the place to put it into a cgroup or to give its network namespace an interface
    (with NEWPID, PID 1 is forked afterwards and inherits both). If it raises, the child is
    killed and the exception propagates.
    """
    flags = CloneFlags(int(flags))
    if (uid_maps or gid_maps) and not flags & CloneFlags.NEWUSER:
        raise ValueError("uid_maps/gid_maps need CloneFlags.NEWUSER")
    status_r, status_w = os.pipe()  # child -> parent: "unshared", then setup errors or EOF
    go_r, go_w = os.pipe()  # parent -> child: "maps written, go on"
    # buffered output written before the fork would otherwise be written twice
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass
    pid = os.fork()
    if pid == 0:  # the child: never return into the caller's code
        try:
            os.close(status_r)
            os.close(go_w)
            _child(target, flags, status_w, go_r, bool(uid_maps or gid_maps))
        finally:
            os._exit(126)
    os.close(status_w)
    os.close(go_r)
    child = Child(pid, flags)
    reader = _LineReader(status_r)
    try:
        message = reader.next()
        if message is None or "ok" not in message:
            _raise_setup_error(child, message)
        if uid_maps or gid_maps:
            try:
                write_id_maps(pid, uid_maps, gid_maps)
            except IdMapError as e:
                os.close(go_w)  # EOF on the go pipe: the child gives up
                go_w = -1
                child.wait()
                raise IdMapError(e.errno, f"spawn: id maps of pid {pid}: {e.strerror}") from None
        if before_release is not None:
            before_release(pid)
        os.write(go_w, b"g")
        os.close(go_w)
        go_w = -1
        message = reader.next()  # EOF: target is running
        if message is not None and "pid1" in message:
            child.target_pid = message["pid1"]
            message = reader.next()
        if message is not None:
            _raise_setup_error(child, message)
    except BaseException:
        if go_w >= 0:
            os.close(go_w)
        if child.returncode is None:
            child.kill()
            child.wait()
        raise
    finally:
        os.close(status_r)
    return child


def _raise_setup_error(child: Child, message: dict | None) -> None:
    code = child.wait()
    if message is None:
        raise NamespaceError(0, f"spawn: child {child.pid} exited ({code}) before reporting its setup")
    raise NamespaceError(message["errno"], f"spawn: {message['step']}: {message['error']}")


def _child(target: Callable[[], int | None], flags: CloneFlags, status_w: int, go_r: int, maps: bool) -> None:
    step = f"unshare({_flag_names(flags)})"
    try:
        if flags:
            unshare(flags)  # one call; the kernel sets up the user namespace first
        if flags & CloneFlags.NEWUSER and maps and prctl(PR_GET_DUMPABLE) != 1:
            # /proc/PID/uid_map belongs to root while a process is not dumpable (after a uid
            # change, e.g. a root parent that dropped to a user): make it ours again so the
            # parent (same uid) can write the maps. exec() recomputes this flag anyway.
            step = "prctl(PR_SET_DUMPABLE)"
            prctl(PR_SET_DUMPABLE, 1)
        _send(status_w, {"ok": "unshared"})
        if os.read(go_r, 1) != b"g":
            os._exit(125)  # the parent could not write the maps and has reported it
        os.close(go_r)
        if flags & CloneFlags.NEWUSER and maps:
            step = "become root in the user namespace"
            _become_root()
    except BaseException as e:  # noqa: BLE001 - everything goes to the parent
        _report_and_exit(status_w, step, e)
    if flags & CloneFlags.NEWPID:
        _middle(target, status_w)
    else:
        _run_target(target, status_w)


def _become_root() -> None:
    """Switch to uid/gid 0 inside when 0 is mapped but we are not it yet (a root caller that
    mapped 0 to a subordinate id: its own id is unmapped and reads as 65534)."""
    if os.getgid() != 0:
        try:
            os.setresgid(0, 0, 0)
        except OSError as e:
            if e.errno != 22:  # EINVAL: gid 0 is not mapped; stay as we are
                raise
    if os.getuid() != 0:
        try:
            os.setresuid(0, 0, 0)
        except OSError as e:
            if e.errno != 22:
                raise


def _middle(target: Callable[[], int | None], status_w: int) -> None:
    """The process between the caller and PID 1: forwards signals and passes the status on."""
    try:
        pid1 = os.fork()
    except OSError as e:
        _report_and_exit(status_w, "fork PID 1 of the new PID namespace", e)
    if pid1 == 0:
        try:
            # if the middle process dies (SIGKILL), take the whole namespace with it
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            for sig in FORWARDED_SIGNALS:
                signal.signal(sig, _exit_like_default)
        except BaseException as e:  # noqa: BLE001
            _report_and_exit(status_w, "set up PID 1", e)
        _run_target(target, status_w)
    # forward before reporting: once the caller hears from us it may signal at once, and a
    # signal that came first would end this process with its default action instead
    forward_signals(pid1, FORWARDED_SIGNALS)
    try:
        _send(status_w, {"pid1": pid1})
    finally:
        os.close(status_w)

    while True:
        try:
            _, status = os.waitpid(pid1, 0)
            break
        except ChildProcessError:
            os._exit(126)
    if os.WIFSIGNALED(status):
        die_by_signal(os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status))


def forward_signals(pid: int, signals: Iterable[int], *, same_group: bool = False) -> Callable[[], None]:
    """Pass each of ``signals`` that reaches this process on to process ``pid``.

    Installs one handler per signal that sends the same signal to ``pid`` (a ``pid`` that has
    already exited is ignored: its status is what the caller waits for). Returns ``restore()``,
    which puts the previous handlers back. The middle process of a PID namespace uses it
    towards PID 1, a container's ``--init`` towards its command.

    ``same_group``: ``pid`` is in this process's group. When that group is a terminal's
    foreground group, the terminal sends each ^C to the whole group, ``pid`` included: SIGINT is
    then ignored here rather than passed on, so that ``pid`` gets one SIGINT for one ^C (a
    runtime that kills at the second ^C would otherwise kill at the first). A SIGINT sent to
    this process alone by another is then lost, as with any program in that group.
    """

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    signals = list(signals)
    previous = {}
    if same_group and signal.SIGINT in signals and _terminal_sends_sigint():
        signals.remove(signal.SIGINT)
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous.update({sig: signal.signal(sig, forward) for sig in signals})

    def restore() -> None:
        for sig, handler in previous.items():
            # None: the handler was not installed from Python; the default is what it was
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    return restore


def _terminal_sends_sigint() -> bool:
    """Whether a ^C on the terminal reaches this process's group by itself (it is the
    terminal's foreground group)."""
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp():
                return True
        except OSError:
            continue
    return False


def die_by_signal(signum: int) -> None:
    """End this process by signal ``signum`` (so the parent sees the same death), or, if the
    signal does not kill (it is ignored or blocked), exit with 128+N. Never returns."""
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
        signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
        os.kill(os.getpid(), signum)
    finally:
        os._exit(128 + signum)


def _exit_like_default(signum: int, _frame: object) -> None:
    """PID 1's stand-in for a default action the kernel would not apply to it."""
    _flush()
    os._exit(128 + signum)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass


def _run_target(target: Callable[[], int | None], status_w: int) -> None:
    """Run the caller's function and exit with its result. Never returns."""
    code = 1
    try:
        os.close(status_w)  # EOF tells spawn() that setup is over
        result = target()
        code = 0 if result is None else int(result)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    except BaseException as e:  # noqa: BLE001 - one line on stderr, exit 1
        try:
            where = traceback.extract_tb(e.__traceback__)[-1]
            loc = f" ({os.path.basename(where.filename)}:{where.lineno})"
        except (IndexError, AttributeError):
            loc = ""
        try:
            os.write(2, f"spawn target: {type(e).__name__}: {e}{loc}\n".encode())
        except OSError:
            pass
        code = 1
    finally:
        _flush()
        os._exit(code & 0xFF)
