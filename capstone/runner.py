"""A container over an image's layers, and ``run IMAGE``: part 7's overlay under part 6's runtime.

:class:`Container` is the piece both ``capstone run`` and the builder's RUN steps use::

    with Container(store.lowers(image), scratch) as c:      # lowers: snapshot dirs, top first
        code = c.run(["sh", "-c", "echo hi > /f"], env=image_env, cwd="/", user="0")
        with open(layer_path, "wb") as f:
            info = c.write_changes(f, "gzip")               # part 4 LayerInfo of the upper dir

The root filesystem is one of part 7's snapshots of the layers, with the init layer (below) as
their extra lower: an ``OverlaySnapshot`` prepared unmounted (the upper dir kept for the layer and
the snapshot store), or a ``CopySnapshot`` made in ``merged`` where the overlay cannot be.

Layout of ``scratch`` (the container owns it; created when missing)::

    scratch/init/     mount points for the runtime (Docker's "init layer"), a lower on top
    scratch/upper/    overlay upperdir: exactly what the command changed
    scratch/work/     overlay workdir
    scratch/merged/   the overlay mount: the container's root filesystem

**Where the overlay is mounted.** Never in the caller's mount namespace. Each :meth:`run`
forks a helper process with a mount namespace of its own (part 5's ``spawn`` with NEWNS, its
mounts made private so nothing propagates back); the helper mounts the overlay at
``scratch/merged`` there and calls part 6's ``run``, whose container copies that mount table and
pivots into the overlay. When the helper ends, its namespace and the mount end with it, however
it ends: a build or a run killed with SIGKILL leaves no mount behind. The helper learns of its
caller's death from ``PR_SET_PDEATHSIG`` with a signal the caller never passes on (SIGUSR1),
and unwinds part 6's ``run``, which kills the container and removes what it set up: a SIGTERM
the caller passes on goes to the container (``capstone run``, as ``docker run``, whose PID 1
may ignore it), the caller's death always ends it.
The upper dir is an ordinary directory of the caller's: read and packed after the command,
with no mount up. ``__exit__`` deletes the work, merged and init dirs (the upper too unless
``keep_upper=True``).

**Where the kernel refuses an overlay** (a store on a file system overlayfs cannot use as an
upper, such as another overlay; an old kernel in a user namespace), the container falls back to
part 7's copy snapshotter, as buildah falls back to its vfs driver: ``merged`` is then a plain
copy of the layers (init layer included) that part 6 runs in without any mount, and the changes
are what differs between the copy and the layers, not an upper dir. ``snapshotter="overlay"``
or ``"copy"`` asks for one of them (``auto``: overlay, the copy where the helper's mount is
refused); ``kind`` says which one was used.

**The init layer.** Part 6 binds generated ``/etc/hosts``, ``/etc/hostname`` and
``/etc/resolv.conf`` over the image's and needs ``/proc``, ``/dev``, ``/sys`` and each extra
mount's target to exist. Created in the merged dir, those mount points would land in the upper
dir (and ``/etc`` would be copied up) and so in the RUN step's layer. As Docker does with its
``-init`` layer, the missing ones are created in a small extra lower directory placed just above
the image's layers (``/etc`` in it takes the image's mode, owner and mtime), so a step that
writes nothing produces an empty change set.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import signal
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO

from part1_overview import replace
from part2_manual_oci import env_to_dict
from part4_tar import LayerInfo, RootDir, fd_path
from part6_runtime import ContainerError, ContainerSpec, Mount, RuntimeSetupError, SpecError
from part6_runtime import run as run_container
from part6_runtime import warm as warm_runtime
from part7_union import (
    Change,
    CopySnapshot,
    LayerStack,
    OverlayError,
    OverlayMount,
    OverlaySnapshot,
    SnapshotError,
    write_change_list,
)

from .errors import CapstoneError

if TYPE_CHECKING:
    from .store import BuildStore

__all__ = ["Container", "ContainerRunError", "container_command", "merge_env", "run_image"]

PathLike = str | os.PathLike

#: mount points part 6 needs: directories, and files it binds generated content over
RUNTIME_DIRS = ("proc", "dev", "sys")
RUNTIME_FILES = ("etc/hosts", "etc/hostname", "etc/resolv.conf")
SNAPSHOTTERS = ("auto", "overlay", "copy")
#: what mount(2) says when overlayfs will not stack these directories here (EINVAL: an upper on
#: a file system it does not support; ENODEV: no overlayfs; EPERM: not allowed here)
OVERLAY_REFUSED = (errno.EINVAL, errno.ENODEV, errno.EPERM, errno.EOPNOTSUPP)


class ContainerRunError(CapstoneError):
    """A container could not be prepared or started (overlay mount, runtime setup, bad spec).

    ``exit_code`` is what ``docker run`` would exit with: 127 when the command does not
    exist, 126 when it cannot be executed, 125 for every other failure."""

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# -- the container over layers -------------------------------------------------------------


class Container:
    """A writable root filesystem over read-only layer dirs, and commands run in it.

    ``lowers``: overlay lower directories, top layer first (``store.lowers(image)``, plus any
    snapshot the caller made); may be empty (FROM scratch). ``scratch``: a directory this
    container owns. ``mounts``: part 6 ``Mount`` s used by :meth:`run` by default; their targets
    get mount points in the init layer. ``keep_upper``: keep ``scratch/upper`` on exit (``run``
    without ``--rm``); everything else in ``scratch`` is always removed. ``upper``: an upper
    directory of the caller's instead of ``scratch/upper`` (on the file system of ``scratch``:
    overlayfs wants its work dir there), never removed: ``cbt run`` writes into a layer folder
    (an overlay only: the copy snapshotter has no upper to write to). ``snapshotter``: ``auto``,
    ``overlay`` or ``copy`` (see the module page); ``kind`` says which one ran: ``overlay``,
    ``copy``, or None before the first :meth:`run`. Without ``--rm`` a copy keeps its ``merged``.
    """

    def __init__(
        self,
        lowers: Sequence[PathLike],
        scratch: PathLike,
        *,
        mounts: Iterable[Mount] = (),
        keep_upper: bool = False,
        upper: PathLike | None = None,
        snapshotter: str = "auto",
    ) -> None:
        if snapshotter not in SNAPSHOTTERS:
            raise ContainerRunError(f"unknown snapshotter {snapshotter!r}: expected {', '.join(SNAPSHOTTERS)}")
        if snapshotter == "copy" and upper is not None:
            raise ContainerRunError("the copy snapshotter has no upper directory to write into: an overlay is needed")
        self.snapshotter = snapshotter
        self.kind: str | None = None
        self.lowers = tuple(Path(os.path.abspath(p)) for p in lowers)
        self.scratch = Path(os.path.abspath(scratch))
        self.mounts = tuple(mounts)
        self.keep_upper = keep_upper or upper is not None
        self.init = self.scratch / "init"
        self.upper = Path(os.path.abspath(upper)) if upper is not None else self.scratch / "upper"
        self.work = self.scratch / "work"
        self.root = self.scratch / "merged"
        # part 7's snapshots of the same layers, the init layer on top: the overlay (mounted by
        # each run in the helper's namespace) and the copy (made when the overlay cannot be)
        self._overlay: OverlaySnapshot | None = None
        self._copy = CopySnapshot(self.lowers, self.scratch, init=self.init, root=self.root)

    # -- lifetime ----------------------------------------------------------------------------
    def __enter__(self) -> "Container":
        try:
            self.prepare()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prepare(self) -> "Container":
        """Make init/upper/work/merged (done by ``__enter__``); the overlay itself is mounted
        by each :meth:`run`, in the helper's own mount namespace."""
        if self._overlay is not None:
            return self
        self.scratch.mkdir(parents=True, exist_ok=True)
        for d in (self.upper, self.work, self.root):
            d.mkdir(exist_ok=True)
        missing = [p for p in self.lowers if not p.is_dir()]
        if missing:
            raise ContainerRunError(f"layer snapshot missing: {missing[0]}")
        _make_init_layer(self.init, self.lowers, self.upper, self.mounts)
        try:
            self._overlay = OverlaySnapshot(self.lowers, self.scratch, init=self.init, upper=self.upper)
        except OverlayError as e:
            raise ContainerRunError(f"{e.strerror or e}: {self.root}") from None
        return self

    @property
    def snapshot(self) -> OverlaySnapshot | CopySnapshot | None:
        """The part 7 snapshot the commands ran in (None before the first :meth:`run`)."""
        return self._copy if self.kind == "copy" else self._overlay if self.kind == "overlay" else None

    @property
    def changes_dir(self) -> Path:
        """Where the changed files are read from: the upper dir, or the copy."""
        return self._copy.changes_dir if self.kind == "copy" else self.upper

    def _copy_layers(self) -> None:
        """The copy snapshotter: the layers (init layer on top) copied into ``merged``, once."""
        if self.kind == "copy":
            return
        try:
            self._copy.mount()
        except SnapshotError as e:
            raise ContainerRunError(f"copy snapshotter: {e}") from e
        self.kind = "copy"

    def close(self) -> None:
        """Delete work, merged, init, binds (and upper unless ``keep_upper``; a copy keeps
        ``merged`` instead)."""
        kept = ("merged" if self.kind == "copy" else "upper") if self.keep_upper else None
        names = [name for name in ("work", "merged", "init", "binds", "upper") if name != kept]
        for name in names:
            p = self.scratch / name
            if os.path.ismount(p):  # never delete through a mount that is still there
                continue
            shutil.rmtree(p, ignore_errors=True)
        if not self.keep_upper or self.upper.parent != self.scratch:
            try:
                self.scratch.rmdir()
            except OSError:
                pass  # the caller left other things in its scratch dir

    # -- running -----------------------------------------------------------------------------
    def spec(self, args: Sequence[str], **fields) -> ContainerSpec:
        """A part 6 ``ContainerSpec`` for ``args`` on this container's root (``fields``: any
        other ContainerSpec field: env, cwd, user, hostname, network, limits, init, ...)."""
        fields.setdefault("mounts", self.mounts)
        try:
            return ContainerSpec(rootfs=str(self.root), args=tuple(args), **fields)
        except SpecError as e:
            raise ContainerRunError(str(e)) from None

    def run(
        self,
        args: Sequence[str],
        *,
        env: Sequence[str] | Mapping[str, str] = (),
        cwd: str = "/",
        user: str = "0",
        network: str = "none",
        hostname: str | None = "container",
        stdin: int | IO | None = None,
        stdout: int | IO | None = None,
        stderr: int | IO | None = None,
        on_step: Callable[[str], None] | None = None,
        kill_on_interrupt: bool = False,
        stop_signal: int | None = None,
        stop_timeout: float | None = 10.0,
        **fields,
    ) -> int:
        """Run ``args`` in the container (part 6 ``run``) and return its exit code (128+N after
        signal N). Setup failures raise :class:`ContainerRunError` naming the step.
        ``kill_on_interrupt``: SIGINT or SIGTERM to this process kills the container (a build's
        RUN step) instead of being passed on to it; ``stop_signal`` (``capstone run``): they stop
        it, as ``docker stop`` (the signal, then SIGKILL after ``stop_timeout`` seconds; see part
        6's ``run``)."""
        if self._overlay is None:
            raise ContainerRunError(f"container not prepared: {self.root} (use it as a context manager)")
        spec = self.spec(args, env=env, cwd=cwd or "/", user=user or "0", network=network, hostname=hostname, **fields)
        try:  # here, not in the helper (a fork per run): what part 6 prepares once is kept
            warm_runtime(spec)
        except RuntimeSetupError as e:
            raise ContainerRunError(str(e)) from e
        if self.snapshotter == "copy":
            self._copy_layers()
        if self.kind != "copy":
            try:
                code = _run_in_own_mounts(self._overlay.overlay, spec, stdio=(stdin, stdout, stderr), on_step=on_step,
                                          kill_on_interrupt=kill_on_interrupt, stop=(stop_signal, stop_timeout))
                self.kind = "overlay"
                return code
            except _OverlayRefused as e:
                if self.snapshotter == "overlay" or self.upper.parent != self.scratch:
                    raise ContainerRunError(str(e), 125) from e
                self._copy_layers()  # the kernel will not stack these directories here
        return _run_in_own_mounts(None, spec, stdio=(stdin, stdout, stderr), on_step=on_step,
                                  kill_on_interrupt=kill_on_interrupt, stop=(stop_signal, stop_timeout))

    # -- what changed ------------------------------------------------------------------------
    def changes(self) -> list[Change]:
        """What the commands changed, as ``docker diff`` lists it (part 7 ``Change`` s)."""
        if self.kind == "copy":
            return self._copy.changes()
        if self._overlay is None:
            raise ContainerRunError(f"container not prepared: {self.root} (use it as a context manager)")
        return self._overlay.changes()

    def write_changes(
        self, out: BinaryIO, compression: str = "gzip", *, source_date_epoch: int | None = None
    ) -> LayerInfo:
        """The upper dir as an OCI layer written to ``out`` (whiteouts and opaque dirs
        translated; whiteouts of names no lower has are dropped). Returns part 4 ``LayerInfo``."""
        return write_change_list(self.changes(), self.changes_dir, out, compression, source_date_epoch=source_date_epoch)

    def __repr__(self) -> str:
        return f"Container({len(self.lowers)} lowers, root={self.root})"


def _detached_sources(spec: ContainerSpec, where: Path, syscalls) -> dict[int, tuple[int, Path]]:
    """For each bind mount of ``spec`` whose source is a descriptor: (a detached clone of its
    mount tree, made in this namespace; an empty mount point for it under ``where``), by the
    mount's index."""
    trees: dict[int, tuple[int, Path]] = {}
    try:
        for i, m in enumerate(spec.mounts):
            if not (m.is_bind and isinstance(m.source, int)):
                continue
            point = where / str(i)
            where.mkdir(exist_ok=True)
            if stat.S_ISDIR(os.fstat(m.source).st_mode):
                point.mkdir()
            else:
                point.touch(mode=0o600)
            try:
                trees[i] = (syscalls.open_tree(m.source, "", recursive="rbind" in m.options), point)
            except OSError as e:
                raise ContainerRunError(f"bind mount on {m.destination}: cloning the source: {e.strerror}") from None
    except BaseException:
        for tree, _ in trees.values():
            os.close(tree)
        raise
    return trees


def _attach_sources(spec: ContainerSpec, trees: dict[int, tuple[int, Path]], syscalls) -> ContainerSpec:
    """In the helper: attach each detached source at its mount point, and give part 6 a
    descriptor of that mount instead (a mount of the helper's own namespace)."""
    if not trees:
        return spec
    mounts = list(spec.mounts)
    for i, (tree, point) in trees.items():
        to = os.open(point, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            syscalls.move_mount(tree, to)
        finally:
            os.close(to)
        mounts[i] = replace(mounts[i], source=os.open(point, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC))
    return replace(spec, mounts=tuple(mounts))


#: prctl(2): the signal this process gets when its parent dies
PR_SET_PDEATHSIG = 1
#: what the caller passes on to the helper (and part 6 there to the container, or kills it)
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
#: the helper's parent-death signal: not one the caller forwards, so the helper can tell its
#: caller's death (end the container) from a SIGTERM to pass on (which PID 1 may ignore: with
#: SIGTERM here, a killed ``capstone run`` left its container running, reparented to init)
CALLER_GONE = signal.SIGUSR1


class _CallerGone(BaseException):
    """Raised in the helper when its caller died: part 6's ``run`` unwinds, killing the
    container and undoing its set-up (a BaseException, so no ``except Exception`` stops it)."""


def _caller_gone(_signum: int, _frame: object) -> None:
    raise _CallerGone


class HelperTraceback(CapstoneError):
    """The traceback (with its chain of causes) of an error in the helper process, as text:
    the cause of the :class:`ContainerRunError` it became on this side of the pipe."""

    def __str__(self) -> str:
        return "\n" + self.args[0].rstrip() if self.args and self.args[0] else "(no traceback)"


def _formatted(exc: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(exc))


class _OverlayRefused(Exception):
    """The helper's overlay mount was refused by the kernel (see ``OVERLAY_REFUSED``)."""


def _run_in_own_mounts(overlay: OverlayMount | None, spec: ContainerSpec, *, stdio, on_step, kill_on_interrupt: bool,
                       stop: tuple[int | None, float | None] = (None, None)) -> int:
    """Part 6's ``run(spec)`` in a helper process with a mount namespace of its own, where
    ``overlay`` is mounted (see the module page; None: the rootfs is a plain copy). The helper
    reports part 6's setup steps, then the exit code or the error, as JSON lines on a pipe; the
    caller's SIGINT/SIGTERM/SIGHUP/SIGQUIT go to the helper meanwhile, and part 6 there does
    what it does with them. Raises :class:`_OverlayRefused` when the kernel refuses the mount."""
    from part5_namespaces import CloneFlags, NamespaceError, spawn, syscalls

    parent = os.getpid()
    # a bind source given as a descriptor is a mount of this namespace, which the helper's
    # cannot clone (EINVAL): clone it here, detached, and let the helper attach the copy in its
    # own namespace, where part 6 finds a mount it may clone
    trees = _detached_sources(spec, Path(spec.rootfs).parent / "binds", syscalls)
    report_r, report_w = os.pipe()

    def helper() -> int:
        os.close(report_r)
        return _helper(parent, lambda: _helper_run(overlay, spec, trees, report_w, stdio=stdio, on_step=on_step,
                                                   kill_on_interrupt=kill_on_interrupt, stop=stop))

    try:
        child = spawn(helper, CloneFlags.NEWNS)
    except BaseException as e:
        os.close(report_r)
        if isinstance(e, NamespaceError):
            raise ContainerRunError(f"a mount namespace for the container: {e}") from None
        raise
    finally:
        os.close(report_w)
        for tree, _ in trees.values():
            os.close(tree)  # the helper has its own copies
    return _helper_result(*_read_reports(child, report_r, on_step))


def _helper(parent: int, body: Callable[[], int]) -> int:
    """The helper process: ``body()``, ended (part 6 killing the container and cleaning up as
    the exception goes by) when the caller dies."""
    from part5_namespaces import prctl

    signal.signal(CALLER_GONE, _caller_gone)
    prctl(PR_SET_PDEATHSIG, CALLER_GONE)
    if os.getppid() != parent:
        return 125  # the caller died before the line above: nobody to run for
    try:
        return body()
    except _CallerGone:
        return 125  # part 6 killed the container and cleaned up as the exception went by


def _helper_run(overlay: OverlayMount | None, spec: ContainerSpec, trees, report_w: int, *, stdio, on_step,
                kill_on_interrupt: bool, stop: tuple[int | None, float | None] = (None, None)) -> int:
    """In the helper's mount namespace: the overlay mounted, the detached bind sources
    attached, part 6's ``run``; each setup step, then the exit code, the error or the
    kernel's refusal of the overlay, reported on ``report_w``."""
    from part5_namespaces import MountFlags, mount, syscalls

    def send(message: dict) -> None:
        os.write(report_w, json.dumps(message).encode() + b"\n")

    try:
        # private first: an unshared namespace keeps the host's propagation, and a mount
        # made under a shared mount would appear in the host's namespace too
        mount(None, "/", None, MountFlags.REC | MountFlags.PRIVATE)
        if overlay is not None:
            try:
                overlay.mount()
            except OverlayError as e:
                if e.errno in OVERLAY_REFUSED:
                    send({"refused": f"{e.strerror or e}: {overlay.target}"})
                    return 0
                raise
        here = _attach_sources(spec, trees, syscalls)
        code = run_container(here, stdin=stdio[0], stdout=stdio[1], stderr=stdio[2],
                             on_step=(lambda step: send({"step": step})) if on_step else None,
                             kill_on_interrupt=kill_on_interrupt, stop_signal=stop[0], stop_timeout=stop[1])
        send({"code": code})
    except RuntimeSetupError as e:
        send({"error": str(e), "exit_code": e.exit_code, "traceback": _formatted(e)})
    except OverlayError as e:
        send({"error": f"{e.strerror or e}: {e.filename}", "exit_code": 125, "traceback": _formatted(e)})
    except ContainerError as e:
        send({"error": str(e), "exit_code": 125, "traceback": _formatted(e)})
    except OSError as e:
        send({"error": f"{e.strerror or e}: {e.filename or spec.rootfs}", "exit_code": 125,
              "traceback": _formatted(e)})
    return 0


def _read_reports(child, report_r: int, on_step) -> tuple[dict | None, object]:
    """The helper's reports until it ends, the caller's signals forwarded to it meanwhile:
    (its last report that is not a setup step, its exit status)."""
    from part5_namespaces import forward_signals

    # the helper is in this process group: a terminal's ^C reaches it without us, and once is
    # what part 6 there must count (a second ^C kills the container at once)
    restore = forward_signals(child.pid, FORWARDED_SIGNALS, same_group=True)
    result: dict | None = None
    try:
        with child, os.fdopen(report_r, "rb") as reports:
            for line in reports:
                message = json.loads(line)
                if "step" in message:
                    on_step(message["step"])
                else:
                    result = message
            status = child.wait()
    finally:
        restore()
    return result, status


def _helper_result(result: dict | None, status) -> int:
    """The container's exit code from the helper's result; its error, or the overlay's
    refusal, raised on this side."""
    if result is None:
        raise ContainerRunError(f"the container's helper process ended ({status}) without a result")
    if "refused" in result:
        raise _OverlayRefused(result["refused"])
    if "error" in result:
        # the helper's traceback, with its causes, as this error's cause: what --debug shows
        raise ContainerRunError(result["error"], result["exit_code"]) from HelperTraceback(result.get("traceback", ""))
    return result["code"]

def _make_init_layer(init: Path, lowers: tuple[Path, ...], upper: Path, mounts: tuple[Mount, ...]) -> None:
    """The mount points the image lacks, in ``init`` (a lower dir above the image's layers),
    written through part 4's RootDir: a mount destination never leads out of ``init``."""
    if init.exists():
        shutil.rmtree(init)
    init.mkdir()
    stack = LayerStack(lowers) if lowers else None
    root = stack.root() if stack else None
    root_st = root.st if root else None
    wanted: list[tuple[str, bool]] = [(d, True) for d in RUNTIME_DIRS] + [(f, False) for f in RUNTIME_FILES]
    for m in mounts:
        is_dir = True
        if m.is_bind and m.source_path and os.path.exists(m.source_path):
            is_dir = os.path.isdir(m.source_path)
        wanted.append((m.destination.strip("/"), is_dir))
    made_dirs: list[tuple[str, os.stat_result]] = []
    with RootDir(init) as rd:
        for rel, is_dir in wanted:
            parts = [p for p in rel.split("/") if p not in ("", ".")]
            if not parts or ".." in parts:
                continue
            _ensure(rd, stack, root, parts, is_dir, made_dirs)
        # a directory that stands for one of the image's keeps its mtime (after its children exist)
        for rel, st in reversed(made_dirs):
            rd.set_times(rel, (st.st_atime_ns, st.st_mtime_ns))
    if root_st is not None:  # the merged root shows the upper's attributes: give it the image's
        for d in (init, upper):
            os.chown(d, root_st.st_uid, root_st.st_gid)
            os.chmod(d, stat.S_IMODE(root_st.st_mode))


def _ensure(rd: RootDir, stack: LayerStack | None, root, parts: list[str], is_dir: bool, made: list) -> None:
    node = root
    for i, name in enumerate(parts):
        last = i == len(parts) - 1
        child = stack.child(node, name) if node is not None and node.is_dir else None
        rel = "/".join(parts[: i + 1])
        if child is not None:
            if last:
                return  # the image has it: part 6 uses it as it is
            if not child.is_dir:
                return  # a symlink or file on the way: leave it to the runtime
            if rd.lstat(rel) is None:
                fd = rd.make_dir(rel, stat.S_IMODE(child.st.st_mode))
                try:
                    os.chown(fd_path(fd), child.st.st_uid, child.st.st_gid)
                    os.chmod(fd_path(fd), stat.S_IMODE(child.st.st_mode))
                finally:
                    os.close(fd)
                made.append((rel, child.st))
            node = child
            continue
        node = None
        if rd.lstat(rel) is not None:
            continue
        if last and not is_dir:
            os.close(rd.create_file(rel, 0o644))
        else:
            os.close(rd.make_dir(rel, 0o755))


# -- run an image from the store -------------------------------------------------------------


def container_command(config, command: Sequence[str] | None, entrypoint: Sequence[str] | None) -> list[str]:
    """Docker's rule: Entrypoint + (the command given, else the image's Cmd). ``--entrypoint``
    replaces the Entrypoint and drops the image's Cmd; an empty string clears the Entrypoint."""
    cfg = _container_config(config)
    image_entry = list(_get(cfg, "entrypoint", "Entrypoint") or [])
    image_cmd = list(_get(cfg, "cmd", "Cmd") or [])
    if entrypoint is not None:
        entry = [e for e in entrypoint if e != ""] if list(entrypoint) != [""] else []
        cmd = list(command) if command else []
    else:
        entry = image_entry
        cmd = list(command) if command else image_cmd
    argv = entry + cmd
    if not argv:
        raise ContainerRunError("no command specified: the image has no Entrypoint or Cmd, give one after the image name")
    return argv


def merge_env(image_env: Sequence[str], extra: Sequence[str]) -> list[str]:
    """The image's Env, then ``-e`` entries (``K=V`` sets, a bare ``K`` takes the caller's
    value when it has one, as docker does); later keys replace earlier ones in place."""
    out = env_to_dict(image_env)
    for item in extra:
        key, eq, value = item.partition("=")
        if not key:
            raise ContainerRunError(f"invalid environment entry {item!r}: expected KEY=VALUE")
        if not eq:
            if key not in os.environ:
                continue
            value = os.environ[key]
        out[key] = value
    return [f"{k}={v}" for k, v in out.items()]


def run_image(
    store: BuildStore,
    name: str,
    *,
    command: Sequence[str] | None = None,
    entrypoint: Sequence[str] | None = None,
    env: Sequence[str] = (),
    workdir: str | None = None,
    user: str | None = None,
    network: str = "private",
    rm: bool = True,
    tty: bool = False,
    init: bool = False,
    hostname: str | None = None,
    mounts: Sequence[Mount] = (),
    stdin: int | IO | None = None,
    stdout: int | IO | None = None,
    stderr: int | IO | None = None,
    on_container: Callable[[str, Path], None] | None = None,
    stop_timeout: float | None = 10.0,
) -> int:
    """``docker run``: the image ``name`` from ``store`` in a fresh container; its exit code.

    Entrypoint + (``command`` or the image's Cmd); env = the image's Env + ``env``; working
    directory and user from the image unless given. The container lives in
    ``store.path/containers/<id>/``; with ``rm`` it is deleted afterwards, without it its
    upper dir (what the command changed) is kept there. ``on_container(id, dir)`` is called
    once the container exists (the CLI prints the id). ``mounts``: part 6 ``Mount`` s (``-v``).
    ``init``: a freshly executed reaper as PID 1 that forks the command (``docker run --init``).
    SIGINT or SIGTERM to this process stops the container as ``docker stop`` does: the image's
    StopSignal (SIGTERM when it has none) to PID 1, then SIGKILL after ``stop_timeout`` seconds
    (None: no limit), so a PID 1 that ignores the signal cannot keep it, or this, running.
    """
    with store.session():  # prune waits while the image's snapshots are lowers of a container
        image = store.load(name)
        cfg = _container_config(image.config)
        argv = container_command(image.config, command, entrypoint)
        cid = secrets.token_hex(32)
        hostname = hostname or cid[:12]
        # as docker: HOSTNAME, and TERM=xterm with a terminal, unless the image or -e say otherwise
        defaults = [f"HOSTNAME={hostname}"] + (["TERM=xterm"] if tty else [])
        full_env = merge_env(defaults + list(_get(cfg, "env", "Env") or []), env)
        if workdir and not workdir.startswith("/"):  # docker's words
            raise ContainerRunError(f"run {name}: the working directory {workdir!r} is invalid, it needs to be "
                                    "an absolute path")
        cwd = workdir or _get(cfg, "working_dir", "WorkingDir") or "/"
        if not cwd.startswith("/"):
            cwd = "/" + cwd
        the_user = user or _get(cfg, "user", "User") or "0"
        stop_signal = _stop_signal(_get(cfg, "stop_signal", "StopSignal"), name)
        _check_emulator(image, name)
        lowers = store.lowers(image)
        # leased while this process lives: a run killed before it ends is swept away later
        with store.lease(store.containers_dir, cid, keep=not rm) as scratch:
            if on_container is not None:
                on_container(cid, scratch)
            try:
                with Container(lowers, scratch, mounts=mounts, keep_upper=not rm, snapshotter=store.snapshotter) as c:
                    code = c.run(
                        argv, env=full_env, cwd=cwd, user=the_user, network=network,
                        hostname=hostname, terminal=tty, init=init,
                        stdin=stdin, stdout=stdout, stderr=stderr,
                        stop_signal=stop_signal, stop_timeout=stop_timeout,
                    )
            except ContainerRunError as e:
                shutil.rmtree(scratch, ignore_errors=True)  # a container that never ran is not kept
                if e.exit_code != 125:
                    raise
                # the image by its name, not the container's directory in the store (as podman:
                # "run IMAGE: unable to find user -1: no matching entries in passwd file")
                raise ContainerRunError(f"run {name}: {e}", e.exit_code) from e.__cause__
            except BaseException:
                shutil.rmtree(scratch, ignore_errors=True)
                raise
            if not rm:
                _write_container_record(scratch, cid, name, image, argv, code)
    return code


def _check_emulator(image, name: str) -> None:
    """An image of another architecture runs through qemu-user: the same check as a RUN
    step's, before any container exists, and the same one line when the emulator is missing."""
    from .engine.emulation import EmulatorMissing, check_can_run

    try:
        check_can_run(image.config.platform)
    except EmulatorMissing as e:
        raise ContainerRunError(f"run {name}: {e}") from None


def _stop_signal(text: str | None, name: str) -> int:
    """The signal that stops a container of image ``name``: its StopSignal, else SIGTERM."""
    if not text:
        return signal.SIGTERM
    from .engine.metadata import signal_number

    try:
        return signal_number(text)
    except ValueError:
        raise ContainerRunError(f"run {name}: the image's StopSignal {text!r} is not a signal of this host") from None


def _write_container_record(scratch: Path, cid: str, name: str, image, argv: list[str], code: int) -> None:
    import json
    import time

    from part2_manual_oci import rfc3339, write_file_atomic

    record = {
        "id": cid,
        "image": name,
        "image_id": "sha256:" + image.config_descriptor.digest.split(":", 1)[1],
        "command": argv,
        "exit_code": code,
        "finished": rfc3339(int(time.time())),
    }
    write_file_atomic(scratch / "container.json", json.dumps(record, indent=2).encode() + b"\n")


def _container_config(config):
    """The ``config`` section of an image config (part 2 ImageConfig, or a JSON dict)."""
    if isinstance(config, Mapping):
        return config.get("config") or {}
    return getattr(config, "config", None) or {}


def _get(cfg, attr: str, key: str):
    if isinstance(cfg, Mapping):
        return cfg.get(key)
    return getattr(cfg, attr, None)
