"""RUN: a command in a container over the image built so far; what it changed is the layer.

The pieces are the course's: the image's layers as overlay lower dirs (the store's snapshots,
part 7 ``extract_lower``, made once per layer), an overlay with a fresh upper dir (part 7),
the container (part 6 ``run``: namespaces, pivot_root, capabilities, seccomp), and the upper
dir turned into a layer (part 7 ``write_changes``: whiteouts for deletions, opaque dirs).
``capstone.runner.Container`` ties them together for both ``capstone run`` and this step.

The command:

* shell form is wrapped in the stage's SHELL (``/bin/sh -c``); exec form runs as written;
* ``RUN <<EOF`` (a heredoc and nothing else) runs the body as a script: with a ``#!`` line it
  is written to a file and executed, else it is given to the shell; heredocs after a command
  (``RUN cat <<EOF > /f``) are passed to the shell with the command, as a shell would read them;
* environment: ENV and the declared ARGs (plus proxy build args), working directory WORKDIR,
  user USER, network ``--network`` of the step or of the build;
* ``--mount=type=bind`` (from the context, a stage or an image; read-only unless ``rw``, whose
  writes are thrown away), ``type=cache`` (a directory kept in the store between builds, never
  part of the layer nor of the cache key), ``type=tmpfs`` (``size=`` as BuildKit reads it; all
  the tmpfs mounts of a step together at most half of the host's memory, see :func:`tmpfs_budget`);
* ``--mount=type=secret`` and ``type=ssh`` (the build's ``--secret`` / ``--ssh``; see
  :mod:`.secretmounts`): a read-only file or an environment variable, an agent socket; only the
  secret's id is part of the cache key, never its value.

A command that exits non-zero fails the build: ``Dockerfile:LINE: RUN ... returned N``. A step
that changes nothing adds no layer (only a history entry), as BuildKit does.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import shutil
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from part1_overview import field, model, replace

if TYPE_CHECKING:  # imported where used: a fully cached build loads no runtime
    from part6_runtime import Mount
    from part7_union import OverlayMount

from ..dockerfile import Heredoc, Run
from ..dockerfile.mounts import MountSyntaxError, mount_fields, parse_mount
from .errors import BuildError, StepFailure


class RunSetupError(StepFailure):
    """A RUN that cannot be set up (bad --mount, unknown network); the step reports the line."""


NETWORKS = {"default": None, "none": "none", "host": "host", "private": "private", "sandbox": None}

#: BuildKit's entitlements: what a Dockerfile may ask for only when the command line allows it
ENTITLEMENTS = ("network.host", "security.insecure")


def parse_entitlements(allow, network: str = "private") -> frozenset[str]:
    """The ``--allow`` values as a set; ``--network host`` for the whole build grants
    ``network.host`` too (buildx does the same). An unknown name is an error, as BuildKit's."""
    granted = set()
    for value in allow:
        for name in str(value).split(","):
            name = name.strip()
            if name not in ENTITLEMENTS:
                raise BuildError(f"--allow {name}: unknown entitlement (expected {' or '.join(ENTITLEMENTS)})")
            granted.add(name)
    if network == "host":
        granted.add("network.host")
    return frozenset(granted)


def check_entitlements(ins: Run, granted: frozenset[str]) -> bool:
    """Refuse a RUN whose ``--network=host`` or ``--security=insecure`` was not allowed on
    the command line (BuildKit: "network.host is not allowed"); True for an allowed
    ``--security=insecure``."""
    if ins.network == "host" and "network.host" not in granted:
        raise RunSetupError("network.host is not allowed: RUN --network=host needs "
                            "`capstone build --allow network.host`")
    if ins.security == "insecure":
        if "security.insecure" not in granted:
            raise RunSetupError("security.insecure is not allowed: RUN --security=insecure needs "
                                "`capstone build --allow security.insecure`")
        return True
    return False


def insecure_fields() -> dict:
    """The part 6 spec fields of ``RUN --security=insecure``, as BuildKit's insecure spec: every
    capability the builder has, no seccomp filter, no masked or read-only paths, every device
    allowed by the device cgroup (and no ``nodev``), setuid binaries working again."""
    from part6_runtime import CapabilitySets, DeviceRule, current_capabilities

    every = current_capabilities()
    return dict(
        capabilities=CapabilitySets(every, every, every, every, every),
        seccomp=False, masked_paths=(), readonly_paths=(), nodev=False, no_new_privileges=False,
        devices=(DeviceRule(True, "c", None, None, "rwm"), DeviceRule(True, "b", None, None, "rwm")),
    )


#: where a ``RUN <<EOF`` script with a ``#!`` line is bind-mounted in the container
SCRIPT_PATH = "/.capstone-run-script"


def run_argv(ins: Run, shell: tuple[str, ...]) -> tuple[list[str], str | None]:
    """The argv of a RUN (expanded), and the text of a script to mount at :data:`SCRIPT_PATH`
    (a ``RUN <<EOF`` body with a ``#!`` line), or None."""
    cmd = ins.command
    if not ins.heredocs:
        if cmd.shell_form:
            return list(shell) + [cmd.args[0]], None
        return list(cmd.args), None
    first = ins.heredocs[0]
    text = cmd.args[0] if cmd.args else ""
    if cmd.shell_form and len(ins.heredocs) == 1 and _is_bare_heredoc(text, first):
        body = first.body
        if body.startswith("#!"):
            return [SCRIPT_PATH], body
        return list(shell) + [body], None
    if not cmd.shell_form:
        return list(cmd.args), None
    script = text
    for doc in ins.heredocs:
        script += "\n" + doc.content + doc.name
    return list(shell) + [script], None


def _is_bare_heredoc(text: str, doc: Heredoc) -> bool:
    word = text.strip()
    if not word.startswith("<<"):
        return False
    rest = word[2:].lstrip("-").strip("'\"")
    return rest == doc.name


@model
class MountPlan:
    """The --mount options of a RUN turned into part 6 mounts, with what the key needs."""

    mounts: list[Mount] = field(default_factory=list)
    key: list[dict] = field(default_factory=list)
    #: overlays mounted for bind sources of multi-layer stages (unmounted after the step)
    overlays: list[OverlayMount] = field(default_factory=list)
    #: temporary copies (rw binds, secrets) removed after the step
    temps: list[Path] = field(default_factory=list)
    #: environment the mounts add to the step (secrets with ``env=``, ``SSH_AUTH_SOCK``)
    env: dict[str, str] = field(default_factory=dict)
    #: ssh agent relays, closed after the step
    relays: list = field(default_factory=list)
    #: the O_PATH descriptors the mounts are made from (closed after the step)
    fds: list[int] = field(default_factory=list)
    #: the tmpfs mounts: (index in ``mounts``, size asked for or None, the --mount value)
    tmpfs: list[tuple[int, int | None, str]] = field(default_factory=list)

    def hold(self, fd: int) -> int:
        """Keep ``fd`` (a mount source) open until :meth:`cleanup`; returns it."""
        self.fds.append(fd)
        return fd

    def bind(self, target: str, fd: int, options: tuple[str, ...]) -> None:
        """Mount what ``fd`` (an O_PATH descriptor the build resolved) holds at ``target``, as
        a detached copy of its mount tree made now (open_tree): the runtime and the container
        run in mount namespaces of their own, where a descriptor of this namespace's mounts
        could not be bind-mounted, but a detached tree can be attached anywhere."""
        from part5_namespaces import syscalls
        from part6_runtime import Mount

        self.mounts.append(Mount(target, "bind", self.hold(syscalls.open_tree(fd, "", recursive=True)), options))

    def cleanup(self) -> None:
        for relay in self.relays:
            relay.close()
        self.relays.clear()
        for fd in self.fds:  # first: a descriptor inside an overlay would keep it busy
            os.close(fd)
        self.fds.clear()
        for ov in reversed(self.overlays):
            try:
                ov.unmount()
            except OSError:
                ov.unmount(lazy=True)
        self.overlays.clear()
        for t in self.temps:
            # a copy of a node is unlinked: rmtree opens the path it is given, and a FIFO's
            # open waits for a writer for ever, a device's is the host's device
            if os.path.isdir(t) and not os.path.islink(t):
                shutil.rmtree(t, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(t)
        self.temps.clear()


def plan_mounts(specs, *, context, workdir: str, scratch: Path, cache_root: Path,
                stage_lowers, content_digest, secrets=None) -> MountPlan:
    """Turn ``--mount`` values into mounts. ``context``: the build context (a
    :class:`~.sources.ContextSource`, with its .dockerignore); ``stage_lowers(name) -> (lowers,
    digest)`` gives a stage's or image's snapshot dirs; ``content_digest(entries) -> str``
    hashes the (relative path, path, lstat) of what a context bind shows; ``secrets`` is the
    build's :class:`~.secretmounts.BuildSecrets` (None: none given)."""
    plan = MountPlan()
    if not specs:
        return plan

    ssh_count = 0
    try:
        for n, spec in enumerate(specs):
            if (dict(_fields(spec)).get("type") or "").lower() in ("secret", "ssh"):
                ssh_count = _secret_mount(plan, spec, workdir=workdir, scratch=scratch, secrets=secrets,
                                          ssh_count=ssh_count)
                continue
            _other_mount(plan, n, spec, context=context, workdir=workdir, scratch=scratch, cache_root=cache_root,
                         stage_lowers=stage_lowers, content_digest=content_digest)
        _size_tmpfs(plan, tmpfs_budget())
    except BaseException:
        plan.cleanup()
        raise
    return plan


def tmpfs_budget() -> int:
    """What the tmpfs mounts of one RUN step may hold together: half of this host's memory,
    the size the kernel gives one tmpfs that names none (tmpfs(5)). Left to that default,
    each of a step's mounts could take as much, together more memory than the host has."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemTotal:"):
                    return int(line.split()[1]) * 1024 // 2
    except (OSError, ValueError, IndexError):
        pass
    return 1 << 30  # no /proc/meminfo to read: a modest bound rather than none


def _size_tmpfs(plan: MountPlan, budget: int) -> None:
    """Give every tmpfs mount of the step its ``size=``: the one it asked for, within
    ``budget`` for all of them together; those that asked for none share what the others
    leave, equally (BuildKit leaves them to the kernel's default, per mount)."""
    if not plan.tmpfs:
        return
    asked = sum(size for _, size, _ in plan.tmpfs if size)
    if asked > budget:
        shown = " ".join(f"--mount={spec}" for _, size, spec in plan.tmpfs if size)
        raise RunSetupError(f"{shown}: tmpfs sizes of {asked} bytes in all, more than the {budget} bytes "
                            f"(half of this host's memory) the tmpfs mounts of one RUN may have")
    unsized = [i for i, size, _ in plan.tmpfs if not size]
    share = (budget - asked) // len(unsized) if unsized else 0
    if unsized and share < 1 << 20:
        spec = next(spec for _, size, spec in plan.tmpfs if not size)
        raise RunSetupError(f"--mount={spec}: no size given, and the sized tmpfs mounts of this RUN leave "
                            f"{budget - asked} bytes of the {budget} (half of this host's memory): give it a size")
    for i, size, _ in plan.tmpfs:
        m = plan.mounts[i]
        plan.mounts[i] = replace(m, options=(*m.options, f"size={size or share}"))


def _fields(spec: str):
    try:
        return mount_fields(spec)
    except MountSyntaxError as e:
        raise RunSetupError(str(e)) from None


def _secret_mount(plan: MountPlan, spec: str, *, workdir: str, scratch: Path, secrets, ssh_count: int) -> int:
    """A ``type=secret`` or ``type=ssh`` mount, as BuildKit's ``dispatchSecret``/``dispatchSSH``
    read them; returns the number of ssh mounts so far (their default targets count up)."""

    from .secretmounts import AgentRelay, private_dir, write_secret_file

    try:
        m = parse_mount(spec)
    except MountSyntaxError as e:
        raise RunSetupError(f"--mount={spec}: {e}") from None
    uid = m.uid or 0
    gid = m.gid or 0

    def absolute(path: str) -> str:
        return path if path.startswith("/") else os.path.normpath(os.path.join(workdir or "/", path))

    if m.type == "secret":
        ident = m.source or m.id or posixpath.basename(m.target or "")
        target = absolute(m.target) if m.target else None
        if target is None and m.env is None:
            target = "/run/secrets/" + posixpath.basename(ident)
        data = secrets.secret(ident) if secrets is not None else None
        if data is None:
            if m.required:
                raise RunSetupError(f"--mount=type=secret: secret {ident} is required but was not given "
                                    f"(build --secret id={ident},src=FILE)")
            plan.key.append({"type": "secret", "id": ident, "missing": True})
            return ssh_count
        if m.env is not None:
            plan.env[m.env] = data.decode("utf-8", "surrogateescape")
        if target is not None:
            directory = private_dir(scratch)
            plan.temps.append(directory)
            path = write_secret_file(directory, "secret", data, mode=0o400 if m.mode is None else m.mode,
                                     uid=uid, gid=gid)
            plan.bind(target, plan.hold(open_own(path)), ("rbind", "ro", "nosuid", "nodev", "noexec"))
        plan.key.append({"type": "secret", "id": ident, "target": target, "env": m.env,
                         "mode": m.mode, "uid": m.uid, "gid": m.gid})  # the id, never the value
        return ssh_count
    ident = m.id or "default"
    target = absolute(m.target) if m.target else f"/run/buildkit/ssh_agent.{ssh_count}"
    upstream = secrets.agent_socket(ident) if secrets is not None else None
    if upstream is None:
        if m.required:
            raise RunSetupError(f"--mount=type=ssh: ssh agent {ident} is required but was not given "
                                f"(build --ssh {ident}[=SOCKET])")
        plan.key.append({"type": "ssh", "id": ident, "missing": True})
        return ssh_count
    directory = private_dir(scratch)
    plan.temps.append(directory)
    relay = AgentRelay(directory / "agent.sock", upstream, mode=0o600 if m.mode is None else m.mode,
                       uid=uid, gid=gid)
    plan.relays.append(relay)
    # the directory is 0700 root: a step running as another user must be able to reach the socket
    if uid or gid:
        os.chmod(directory, 0o711)
    plan.bind(target, plan.hold(open_own(relay.path)), ("rbind", "nosuid", "nodev", "noexec"))
    plan.env.setdefault("SSH_AUTH_SOCK", target)
    plan.key.append({"type": "ssh", "id": ident, "target": target, "mode": m.mode, "uid": m.uid, "gid": m.gid})
    return ssh_count + 1


def _other_mount(plan: MountPlan, n: int, spec: str, *, context, workdir, scratch, cache_root,
                 stage_lowers, content_digest) -> None:
    """A bind, cache or tmpfs mount."""
    from part6_runtime import Mount

    try:
        fields = dict(mount_fields(spec))
    except MountSyntaxError as e:
        raise RunSetupError(str(e)) from None
    kind = (fields.pop("type", None) or "bind").lower()
    target = fields.pop("target", None) or fields.pop("dst", None) or fields.pop("destination", None)
    if not target:
        raise RunSetupError(f"--mount={spec}: a target is required")
    if not target.startswith("/"):
        target = os.path.normpath(os.path.join(workdir or "/", target))
    readonly = not ("rw" in fields or "readwrite" in fields)
    if "ro" in fields or "readonly" in fields:
        readonly = True
    if kind == "tmpfs":
        try:  # BuildKit's checks of the expanded value: a size it cannot read is an error here too
            size = parse_mount(spec).size_limit or None  # 0: BuildKit's "no size"
        except MountSyntaxError as e:
            raise RunSetupError(f"--mount={spec}: {e}") from None
        # the size goes to the kernel as a number of bytes, never as the text given (a quoted
        # "size=1m,nr_inodes=0" would add mount options); sizes are settled by _size_tmpfs
        plan.tmpfs.append((len(plan.mounts), size, spec))
        plan.mounts.append(Mount(target, "tmpfs", None, ("nosuid", "nodev")))
        plan.key.append({"type": "tmpfs", "target": target})
        return
    if kind == "cache":
        ident = fields.get("id") or target
        directory = cache_root / hashlib.sha256(ident.encode()).hexdigest()[:32]
        if not directory.exists():
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, int(fields.get("mode") or "755", 8))
            os.chown(directory, int(fields.get("uid") or 0), int(fields.get("gid") or 0))
        plan.bind(target, plan.hold(open_own(directory)), ("rbind", "ro" if readonly and "ro" in fields else "rw"))
        plan.key.append({"type": "cache", "target": target})  # contents never in the key
        return
    if kind == "bind":
        source = fields.get("source") or fields.get("src") or "/"
        # BuildKit joins the source to "/": "../.." is the root of the context or stage
        rel = posixpath.normpath("/" + source).lstrip("/")
        origin = fields.get("from")
        if origin:
            lowers, digest = stage_lowers(origin)
            if not lowers:
                raise RunSetupError(f"--mount={spec}: {origin} has no files")
            if len(lowers) == 1 and readonly:
                base = Path(lowers[0])
            else:  # the stage's layers as one tree; rw: writes go to an upper dir, thrown away
                base = _overlay(plan, scratch, n, lowers, writable=not readonly)
            # inside the stage's own root: its symlinks (even "/etc" or "../../..") stay in it
            host = open_inside(base, rel)
            if host is None:
                raise RunSetupError(f"--mount={spec}: source {source} not found in {origin}")
            plan.hold(host)
            key = {"type": "bind", "from": digest, "source": rel, "target": target, "rw": not readonly}
        else:
            host, key = _context_bind(plan, n, spec, context, rel, target, readonly, scratch, content_digest)
        if not readonly and not stat.S_ISDIR(os.fstat(host).st_mode):  # one file: the step writes to a copy
            copy = scratch / f"rw{n}"
            plan.temps.append(copy)
            _writable_copy(host, copy)
            host = plan.hold(open_own(copy))
        plan.bind(target, host, ("rbind", "ro" if readonly else "rw"))
        plan.key.append(key)
        return
    raise RunSetupError(f"--mount={spec}: unknown mount type {kind!r}")


def open_inside(root: str | os.PathLike, rel: str) -> int | None:
    """An O_PATH descriptor of ``rel`` resolved inside ``root`` by part 4's RootDir (symlinks
    followed as if ``root`` were ``/``, ``..`` stopping at it), or None when it is not there."""
    from part4_tar import RootDir, UnsafePathError

    try:
        with RootDir(root) as rd:
            return rd.open(rel)
    except (FileNotFoundError, NotADirectoryError, UnsafePathError):
        return None


def _writable_copy(source: int, copy: Path) -> None:
    """``copy``: what a ``rw`` bind of the one file ``source`` (an O_PATH descriptor) shows
    the step, as overlayfs copies a file up. A regular file's bytes are copied; anything else
    (a FIFO, a device node, a socket a stage made) is made again as the same node, never
    opened: the builder runs on the host, where a stage's ``mknod /m c 1 1`` would be the
    host's memory and a FIFO would block the build for ever. The node is then as inert as in
    the stage: the step's mounts are ``nodev`` and its device cgroup refuses it."""
    from part4_tar import copy_data, fd_path

    st = os.fstat(source)
    if not stat.S_ISREG(st.st_mode):
        os.mknod(copy, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev)
        os.chmod(copy, stat.S_IMODE(st.st_mode))
        return
    src = os.open(fd_path(source), os.O_RDONLY | os.O_CLOEXEC)  # the inode ``source`` holds, a regular file
    try:
        dst = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            copy_data(src, dst)
            os.fchmod(dst, stat.S_IMODE(st.st_mode))
        finally:
            os.close(dst)
    finally:
        os.close(src)


def open_own(path: str | os.PathLike) -> int:
    """An O_PATH descriptor of a file or directory the build made itself (never a symlink)."""
    return os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)


def _overlay(plan: MountPlan, scratch: Path, n: int, lowers, *, writable: bool) -> Path:
    """``lowers`` (top first) as one tree at ``scratch/mountN``, unmounted after the step;
    ``writable``: with an upper dir in the scratch, so that writes never reach a lower."""
    from part7_union import OverlayMount

    base = scratch / f"mount{n}"
    upper = work = None
    if writable:
        upper, work = scratch / f"upper{n}", scratch / f"work{n}"
        upper.mkdir(parents=True)
        work.mkdir()
        plan.temps += [upper, work]
    ov = OverlayMount([Path(p) for p in lowers], upper, work, base)
    ov.mount()
    plan.overlays.append(ov)
    return base


def _context_bind(plan: MountPlan, n: int, spec: str, context, rel: str, target: str, readonly: bool,
                  scratch: Path, content_digest) -> tuple[int, dict]:
    """A bind of the build context, as a descriptor: resolved inside the context (its
    symlinks stay in it); what ``.dockerignore`` excludes is not there (a file is "not found";
    a directory is shown through an overlay whose top layer whites them out, see
    :mod:`.contextmounts`); ``rw`` writes go to an upper dir in the scratch."""
    from .contextmounts import context_view, kept_items, make_mask
    from .sources import SourceItem

    found = context.locate(rel)
    source = open_inside(context.root, found[0]) if found is not None else None
    if source is None:
        raise RunSetupError(f"--mount={spec}: source {rel or '/'} not found in the build context")
    plan.hold(source)
    top = SourceItem(found[0], os.path.join(context.root, found[0]) if found[0] else context.root, os.fstat(source))
    key = {"type": "bind", "source": rel, "target": target, "rw": not readonly}
    if not top.is_dir:
        key["content"] = content_digest([(".", top.path, top.st)])
        return source, key
    view = context_view(context, top)
    key["content"] = content_digest([("." if item is top else item.rel, item.path, item.st) for item in kept_items(view)])
    if not view.hidden and readonly:
        return source, key
    lowers = [Path(f"/proc/self/fd/{source}")]  # overlayfs too takes the lower the descriptor holds
    if view.hidden:
        mask = scratch / f"mask{n}"
        mask.parent.mkdir(parents=True, exist_ok=True)
        plan.temps.append(mask)
        make_mask(view, mask)
        lowers.insert(0, mask)
    return plan.hold(open_own(_overlay(plan, scratch, n, lowers, writable=not readonly))), key


__all__ = [
    "ENTITLEMENTS", "MountPlan", "NETWORKS", "RunSetupError", "SCRIPT_PATH", "check_entitlements",
    "insecure_fields", "open_inside", "open_own", "parse_entitlements", "plan_mounts", "run_argv",
]
