"""Part 6's lab: the container's root filesystem, /proc and pivot_root (``python -m part6_runtime lab start DIR``).

The student gets ``setup.py`` with three holes among the named setup steps: the rootfs steps
(every mount private, the rootfs a mount point), ``mount_proc`` and ``pivot``. Each check runs
real containers with the course's runtime, with the student's step functions in place of the
course's in ``SETUP_STEPS``, and asserts on what the container sees (``/proc/self/mountinfo``,
``ls /``, ``/proc``), the way the chapter's tests do. The rootfs check puts the root filesystem
under a *shared* mount (in a mount namespace of its own), so a step that forgets to make the
mounts private is caught: its mounts would reach the host.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

from part1_overview import Lab, LabContext, Task
from part5_namespaces import CloneFlags, MountFlags, call_in_namespaces, current_user_mapping, mount, setns, umount2

from . import setup as course_setup
from .errors import RuntimeSetupError
from .rootfs import make_busybox_rootfs
from .runtime import run
from .spec import ContainerSpec

#: the hole functions of this lab, by name (the SETUP_STEPS entries they stand for)
HOLES = ("private_propagation", "bind_rootfs", "mount_proc", "pivot")


def _use_steps(ctx: LabContext) -> None:
    """Put the code under test's step functions in the course's SETUP_STEPS (this process only:
    every check runs in a child of its own)."""
    mine = ctx.modules["setup"]
    course_setup.SETUP_STEPS = tuple(
        (name, getattr(mine, fn.__name__) if fn.__name__ in HOLES else fn) for name, fn in course_setup.SETUP_STEPS
    )


def _real_root() -> bool:
    """Root of the host: uid 0 in the initial user namespace (not root of a user namespace)."""
    return os.geteuid() == 0 and Path("/proc/self/uid_map").read_text().split() == ["0", "0", "4294967295"]


def _spec(rootfs: Path, command: str) -> ContainerSpec:
    extra = {}
    if not _real_root():  # a student on a shared lab server: a user namespace makes the mounts possible
        uid_maps, gid_maps = current_user_mapping()
        extra = {"uid_maps": uid_maps, "gid_maps": gid_maps}
    return ContainerSpec(rootfs=str(rootfs), args=("sh", "-c", command), hostname="lab", **extra)


def _run(rootfs: Path, command: str) -> tuple[int, str]:
    """Run ``command`` in a container; (exit code, its output). A failed step is raised in words."""
    with tempfile.TemporaryFile("w+") as out:
        try:
            code = run(_spec(rootfs, command), stdin=os.open(os.devnull, os.O_RDONLY), stdout=out, stderr=out)
        except RuntimeSetupError as e:
            text = str(e)
            if "lab task" in text:
                raise  # an untouched hole: not started
            raise AssertionError(f"the container did not start: {text}{_advice(e)}") from None
        out.seek(0)
        return code, out.read()


def _advice(e: RuntimeSetupError) -> str:
    if e.step == "pivot_root" and getattr(e.cause, "errno", None) == 22:
        return (" (pivot_root says EINVAL when the new root is not a mount point: bind the rootfs on itself; "
                "or when a mount on the way is shared: make every mount private first)")
    if "/proc" in str(e.cause):
        return " (the container has no /proc: mount a proc file system on the rootfs's /proc)"
    return ""


def _mount_points(mountinfo: str) -> list[str]:
    return sorted(line.split()[4] for line in mountinfo.splitlines() if len(line.split()) > 4 and line.split()[0].isdigit())


PROBE = "cat /proc/self/mountinfo"


def check_rootfs(ctx: LabContext) -> None:
    _use_steps(ctx)
    shared = ctx.tmp / "shared"
    shared.mkdir()

    def body() -> dict:
        # a mount namespace of our own whose mounts are private to us, then a shared tmpfs
        # below it: what a systemd host looks like, without touching the real host
        mount(None, "/", None, MountFlags.REC | MountFlags.PRIVATE)
        mount("tmpfs", str(shared), "tmpfs", 0, "mode=755")
        mount(None, str(shared), None, MountFlags.SHARED)
        rootfs = make_busybox_rootfs(shared / "rootfs")
        before = _mount_points(Path("/proc/self/mountinfo").read_text())
        try:
            code, out = _run(rootfs, PROBE)
        except AssertionError as e:
            return {"error": str(e)}
        after = _mount_points(Path("/proc/self/mountinfo").read_text())
        leaked = sorted(set(after) - set(before))
        for target in leaked:
            umount2(target, 2)
        umount2(str(shared), 2)
        return {"code": code, "out": out, "leaked": leaked}

    if _real_root():
        seen = call_in_namespaces(body, CloneFlags.NEWNS)
    else:
        uid_maps, gid_maps = current_user_mapping()
        seen = call_in_namespaces(body, CloneFlags.NEWUSER | CloneFlags.NEWNS, uid_maps=uid_maps, gid_maps=gid_maps)
    assert "error" not in seen, seen.get("error")
    assert seen["code"] == 0, f"`{PROBE}` exited with {seen['code']} in the container: {seen['out'][-300:]}"
    assert not seen["leaked"], (
        f"a mount the container made reached the host: {seen['leaked'][0]} (make every mount private (MS_REC|MS_PRIVATE on /) "
        "before mounting anything)"
    )
    shared_lines = [line for line in seen["out"].splitlines() if " shared:" in line.split(" - ")[0]]
    assert not shared_lines, f"a mount in the container still propagates (shared): {shared_lines[0].split()[4]}"
    points = _mount_points(seen["out"])
    assert points.count("/") == 1, f"the container must see exactly one root mount, it sees {points.count('/')}"


def check_proc(ctx: LabContext) -> None:
    _use_steps(ctx)
    rootfs = make_busybox_rootfs(ctx.tmp / "rootfs")
    code, out = _run(rootfs, "ls /proc | grep -c '^[0-9]'; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
                             "grep ' /proc ' /proc/self/mountinfo; echo $$")
    lines = out.splitlines()
    assert code == 0 and len(lines) >= 4, f"/proc is not usable in the container (exit {code}): {out.strip()[-300:] or 'nothing printed'} (mount proc on the rootfs's /proc)"
    count, cmdline, proc_line, pid = lines[0], lines[1], lines[2], lines[-1]
    assert pid == "1", f"the shell is pid {pid}, not 1"
    assert cmdline.startswith("sh -c"), f"/proc/1 of the container is {cmdline!r}, not its own PID 1 (sh): a proc of the host's PID namespace?"
    assert int(count) < 5, f"/proc lists {count} processes: it must be a new proc of the container's PID namespace (mount -t proc), not the host's"
    assert " - proc " in proc_line, f"/proc is not a proc filesystem: {proc_line}"
    options = proc_line.split()[5].split(",")
    missing = [o for o in ("nosuid", "nodev", "noexec") if o not in options]
    assert not missing, f"/proc is mounted without {', '.join(missing)} (MS_NOSUID | MS_NODEV | MS_NOEXEC, as Docker does)"


def _pid1_of_a_container_of_ours() -> int | None:
    """The host pid of PID 1 of a container this process started (a grandchild of ours whose
    pid in its own namespace is 1)."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = dict(line.split(":", 1) for line in (entry / "status").read_text().splitlines() if ":" in line)
            parent = int(status["PPid"])
            grandparent = int(dict(line.split(":", 1) for line in Path(f"/proc/{parent}/status").read_text().splitlines()
                                   if ":" in line)["PPid"])
        except (OSError, KeyError, ValueError):
            continue
        if grandparent == me and status.get("NSpid", "").split()[-1:] == ["1"]:
            return int(entry.name)
    return None


def _namespace_root(rootfs: Path) -> list[str]:
    """What ``/`` of the container's *mount namespace* holds (not of its process): a process
    that joins a mount namespace gets the namespace's root as its root. After chroot that is
    still the host's root; after pivot_root it is the rootfs."""
    stdin_r, stdin_w = os.pipe()
    out_r, out_w = os.pipe()
    done: dict = {}

    def container() -> None:
        try:
            done["code"] = run(_spec(rootfs, "echo ready; read line"), stdin=stdin_r, stdout=out_w, stderr=out_w)
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            done["error"] = e
        finally:
            os.close(out_w)

    thread = threading.Thread(target=container, daemon=True)
    thread.start()
    try:
        seen = b""
        while b"ready" not in seen:
            chunk = os.read(out_r, 4096)
            if not chunk:
                error = done.get("error")
                raise AssertionError(f"the container did not start: {error}" if error else f"the container ended early: {seen.decode()[-200:]}")
            seen += chunk
        pid1 = _pid1_of_a_container_of_ours()
        assert pid1 is not None, "cannot find the container's PID 1"
        userns = os.readlink(f"/proc/{pid1}/ns/user") != os.readlink("/proc/self/ns/user")

        def listing() -> list[str]:
            if userns:
                fd = os.open(f"/proc/{pid1}/ns/user", os.O_RDONLY)
                setns(fd, CloneFlags.NEWUSER)
                os.close(fd)
            fd = os.open(f"/proc/{pid1}/ns/mnt", os.O_RDONLY)
            setns(fd, CloneFlags.NEWNS)
            os.close(fd)
            return sorted(os.listdir("/"))

        return call_in_namespaces(listing, 0)
    finally:
        os.write(stdin_w, b"go\n")
        thread.join(60)
        for fd in (stdin_r, stdin_w, out_r):
            os.close(fd)


def check_pivot(ctx: LabContext) -> None:
    rootfs = make_busybox_rootfs(ctx.tmp / "rootfs")
    before = sorted(os.listdir(rootfs))
    command = "ls -a / | tr '\\n' ' '; echo; pwd; ls /.. | tr '\\n' ' '; echo; cat /proc/self/mountinfo"
    _, want = _run(rootfs, command)  # the course's pivot: what the container must see
    _use_steps(ctx)
    code, out = _run(rootfs, command)
    assert code == 0, f"the container exited with {code}: {out.strip()[-300:]}"
    got_lines, want_lines = out.splitlines(), want.splitlines()
    got_list, want_list = set(got_lines[0].split()), set(want_lines[0].split())
    left = sorted(set(os.listdir(rootfs)) - set(before))
    assert not left, f"{left[0]} is left in the rootfs: remove the directory made for the old root after the unmount"
    assert got_list == want_list, f"ls / in the container shows {sorted(got_list - {'.', '..'})[:8]}..., not the rootfs: pivot into it"
    assert got_lines[1] == "/", f"the working directory after pivot_root is {got_lines[1]!r}: chdir('/') after it"
    assert got_lines[2] == want_lines[2], "/.. in the container is not / : the old root is still reachable"
    extra = sorted(set(_mount_points(out)) - set(_mount_points(want)))
    assert not extra, f"the container still sees a mount of the host at {extra[0]}: unmount the old root (umount2 with MNT_DETACH)"
    missing = sorted(set(_mount_points(want)) - set(_mount_points(out)))
    assert not missing, f"the container lacks the mount {missing[0]} the course's runtime gives it"
    namespace_root = _namespace_root(rootfs)
    assert set(namespace_root) <= set(before) | {"proc", "dev", "sys"}, (
        f"the container's mount namespace still has the host's root as its root ({', '.join(namespace_root[:5])}, ...): "
        "chroot changes the process's root only; pivot_root moves the namespace's root and lets you detach the old one"
    )


LAB = Lab(
    package="part6_runtime",
    title="Part 6, a mini container runtime: rootfs, /proc, pivot_root",
    intro="""
Two hours. You write three of the setup steps a container's first process runs on itself
before it execs the command: making its mounts private and its root filesystem a mount point,
mounting its own /proc, and `pivot_root` into the rootfs so that the host's files are gone.
Every other step (namespaces, /dev, capabilities, seccomp, the user) is the course's. Start with
`python -m part6_runtime` and read the table of setup steps it prints: the checks run real
containers with your three steps in that table and look at what the container sees.
""",
    modules=("setup.py",),
    tasks=(
        Task(1, "private mounts, and the rootfs as a mount point", ("setup.py:private_propagation", "setup.py:bind_rootfs"),
             """`private_propagation(ctx)` makes every mount of the container's (new) mount namespace
private, recursively, so that nothing it mounts reaches the host and nothing the host mounts
reaches it. `bind_rootfs(ctx)` bind-mounts the rootfs (`ctx.root`) on itself, recursively: pivot_root
wants the new root to be a mount point.""",
             ("Concepts",),
             ("`mount(source, target, fstype, flags, data)` from part5_namespaces; `MountFlags.REC | MountFlags.PRIVATE`, "
              "`MountFlags.BIND | MountFlags.REC`.",
              "Changing propagation takes no source and no file system type: `mount(None, \"/\", None, flags)`.",
              "Only with a mount namespace: `\"mount\" in ctx.namespaces`."),
             "a container whose rootfs lies under a shared mount (in a mount namespace of the check's own): it must start, see "
             "one root and no shared mount, and leave no mount behind in the namespace that started it.",
             check_rootfs),
        Task(2, "a /proc of the container's own", ("setup.py:mount_proc",),
             """`mount_proc(ctx)` mounts a proc file system at the rootfs's `/proc` (before pivot_root, so
by its host path `ctx.path("/proc")`), with nosuid, nodev and noexec. It is mounted from inside
the new PID namespace, so it shows only the container's processes.""",
             ("Concepts",),
             ("`_system_options(ctx, \"/proc\", default_flags, None)` gives the flags and data to use (a bundle may give its own).",
              "`mount(\"proc\", target, \"proc\", flags, data)`."),
             "`ls /proc`, `/proc/1/cmdline`, `$$` and /proc's line of mountinfo (file system type and options) inside a container.",
             check_proc),
        Task(3, "pivot_root into the rootfs", ("setup.py:pivot",),
             """`pivot(ctx)` makes the rootfs the container's `/` and the host's root unreachable:
`pivot_root` (the new root is the bind mount of task 1), detach the old root (`umount2` with
MNT_DETACH), and `os.chdir("/")`. The course's way is `pivot_root(".", ".")` (the old root stacked on
the new one, unmounted from where it is); the blog's way puts it in a directory `put_old` under the
new root and removes that directory afterwards: either passes if nothing is left behind.""",
             ("Concepts",),
             ("`os.open(path, os.O_DIRECTORY | os.O_RDONLY)` and `os.fchdir(fd)` move between the old and the new root by descriptor.",
              "`pivot_root(new_root, put_old)` and `umount2(target, UmountFlags.DETACH)` are in part5_namespaces.",
              "Before unmounting the old root, make it a slave (`MountFlags.REC | MountFlags.SLAVE`): the unmount must not propagate."),
             "`ls /`, `pwd`, `ls /..` and the mount table inside a container, against what the course's own pivot gives.",
             check_pivot),
    ),
    timeout=180,
)
