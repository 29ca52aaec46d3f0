"""Part 5's lab: spawn a child in new namespaces, with its id maps (``python -m part5_namespaces lab start DIR``).

The student gets ``idmap.py`` and ``process.py`` with two holes: ``write_id_maps`` (who may write
which map, and ``deny`` to setgroups first for an unprivileged single mapping) and the parent's
side of ``spawn`` (fork, wait for "unshared", write the maps, run ``before_release``, release the
child, learn PID 1's host pid, raise a failed setup step). The child's side (``_child``,
``_middle``) is given. Every check runs real namespaces and asserts on what the child sees.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import socket
import subprocess
from pathlib import Path

from part1_overview import Lab, LabContext, Task

from .errors import IdMapError, NamespaceError
from .idmap import IdMap, current_user_mapping, subid_mapping
from .process import spawn as course_spawn
from .run import call_as_user, ensure_user
from .syscalls import CloneFlags

F = CloneFlags


def _view() -> dict:
    """What a process sees of its user namespace."""
    return {
        "uid": os.getuid(),
        "uid_map": Path("/proc/self/uid_map").read_text().split(),
        "gid_map": Path("/proc/self/gid_map").read_text().split(),
        "setgroups": Path("/proc/self/setgroups").read_text().strip(),
    }


def _inside(spawn, flags, fn, **kwargs) -> dict:
    """``fn()`` in a child made by ``spawn``, its JSON result read back over a pipe."""
    r, w = os.pipe()

    def target() -> int:
        os.close(r)
        os.write(w, json.dumps(fn()).encode())
        return 0

    try:
        child = spawn(target, flags, **kwargs)
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    code = child.wait()
    hint = (" (126: its setup broke after spawn returned: read the status pipe to its end, a 'pid1' message comes "
            "first with NEWPID)") if code == 126 else ""
    assert code == 0 and data, f"the child ended with {code} before it reported what it sees{hint}"
    return json.loads(data)


def _with_maps(write_id_maps, uid_maps, gid_maps) -> dict:
    """A child in a new user namespace whose maps the code under test writes."""
    return _inside(course_spawn, F.NEWUSER, _view, before_release=lambda pid: write_id_maps(pid, uid_maps, gid_maps))


def _rootless(flags: CloneFlags) -> tuple[CloneFlags, dict]:
    """``flags`` as an ordinary user may ask for them: with a user namespace first, mapping
    the caller's own ids (as root: unchanged)."""
    if os.geteuid() == 0:
        return flags, {}
    uid_maps, gid_maps = current_user_mapping()
    return flags | F.NEWUSER, {"uid_maps": uid_maps, "gid_maps": gid_maps}


def _range_user() -> tuple[str, bool]:
    """A user with subordinate ids: this one when it has a range, else (as root) a new one."""
    me = pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() != 0:
        return me, False
    name = f"lab5-{os.getpid()}"
    return name, ensure_user(name)


def check_id_maps(ctx: LabContext) -> None:
    write = ctx.idmap.write_id_maps
    if os.geteuid() == 0:
        rng = [IdMap(0, 100000, 65536)]
        view = _with_maps(write, rng, rng)
        assert view["uid_map"] == ["0", "100000", "65536"], (
            f"root wrote uid_map {view['uid_map']}, expected 0 100000 65536 (root on the host may write any map directly)"
        )
        assert view["gid_map"] == ["0", "100000", "65536"], f"gid_map is {view['gid_map']}, expected 0 100000 65536"
        assert view["setgroups"] == "allow", "root writing a map must leave setgroups at 'allow' (deny is only for an unprivileged single mapping)"
    user, created = _range_user()
    try:
        def single() -> dict:
            uid_maps, gid_maps = current_user_mapping()
            try:
                return _with_maps(write, uid_maps, gid_maps)
            except IdMapError as e:
                return {"error": str(e), "errno": e.errno}
            except OSError as e:
                return {"error": f"{type(e).__name__}: {e}", "errno": e.errno}

        view = single() if os.geteuid() != 0 else call_as_user(user, single)
        uid = pwd.getpwnam(user).pw_uid
        if "error" in view:
            hint = " (write 'deny' to /proc/PID/setgroups before gid_map: the kernel requires it of an unprivileged writer)" if view["errno"] == errno.EPERM else ""
            raise AssertionError(f"as the ordinary user {user}, writing the single mapping failed: {view['error']}{hint}")
        assert view["uid_map"] == ["0", str(uid), "1"], f"as {user}: uid_map is {view['uid_map']}, expected 0 {uid} 1"
        assert view["setgroups"] == "deny", f"as {user}: /proc/PID/setgroups is {view['setgroups']!r}: an unprivileged single mapping needs 'deny' first"

        def ranged() -> dict:
            maps = subid_mapping(user)
            if maps is None:
                return {"skip": True}
            try:
                return _with_maps(write, maps[0], maps[1])
            except (IdMapError, OSError) as e:
                return {"error": f"{type(e).__name__}: {e}"}

        view = ranged() if os.geteuid() != 0 else call_as_user(user, ranged)
        if not view.get("skip"):
            assert "error" not in view, (
                f"as {user}, mapping its /etc/subuid range failed: {view.get('error')} (a range goes through newuidmap and newgidmap)"
            )
            assert len(view["uid_map"]) == 6 and view["uid_map"][3] == "1", (
                f"as {user}: uid_map is {view['uid_map']}: expected its own uid as 0 and its /etc/subuid range from 1"
            )
            assert view["setgroups"] == "allow", "a range written by newgidmap needs no 'deny' in setgroups"
    finally:
        if created:
            subprocess.run(["userdel", user], capture_output=True)


def check_spawn(ctx: LabContext) -> None:
    spawn = ctx.process.spawn
    child = spawn(lambda: 7, CloneFlags(0))
    assert hasattr(child, "wait"), f"spawn must return a Child, not {type(child).__name__}"
    assert child.wait() == 7, "the target's return value must be the child's exit code (spawn(lambda: 7, ...).wait() == 7)"
    host = socket.gethostname()

    def inside() -> dict:
        socket.sethostname("lab-inside")
        return {"pid": os.getpid(), "hostname": socket.gethostname(), "uts": os.readlink("/proc/self/ns/uts")}

    flags, maps = _rootless(F.NEWUTS | F.NEWPID)
    seen = _inside(spawn, flags, inside, **maps)
    assert seen["pid"] == 1, f"with NEWPID the target must be PID 1 of the new namespace, it was pid {seen['pid']}"
    assert seen["uts"] != os.readlink("/proc/self/ns/uts") and socket.gethostname() == host, "the child must be in a new UTS namespace"

    uid_maps, gid_maps = ([IdMap(0, 100000, 65536)],) * 2 if os.geteuid() == 0 else current_user_mapping()
    noted = {}

    def hook(pid: int) -> None:
        noted["uid_map"] = Path(f"/proc/{pid}/uid_map").read_text().split()
        noted["pid"] = pid

    view = _inside(spawn, F.NEWUSER | F.NEWPID | F.NEWUTS, _view, uid_maps=uid_maps, gid_maps=gid_maps, before_release=hook)
    want = uid_maps[0].line().split()
    assert view["uid_map"] == want, f"spawn(..., uid_maps=...) must write the maps: the child sees uid_map {view['uid_map']}, expected {want}"
    assert view["uid"] == 0, "after the maps are written the child switches to root inside (released only after the maps)"
    assert noted.get("uid_map") == want, (
        "before_release(pid) must run after the maps are written and before the child goes on"
        if noted else "before_release(pid) was not called"
    )

    r, w = os.pipe()

    def report_nspid() -> int:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("NSpid:"))
        os.write(w, line.split()[1].encode())
        return 0

    flags, maps = _rootless(F.NEWPID)
    child = spawn(report_nspid, flags, **maps)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        host_pid = int(f.read() or 0)
    assert child.wait() == 0
    assert child.target_pid == host_pid != child.pid, (
        f"with NEWPID, child.target_pid must be PID 1's host pid ({host_pid}), read from the child's 'pid1' message "
        f"(got {child.target_pid}; child.pid {child.pid} is the middle process)"
    )
    try:
        spawn(lambda: 0, CloneFlags(0x1) | F.NEWUTS)
    except NamespaceError as e:
        assert e.errno == errno.EINVAL and "unshare(" in str(e), f"a failed unshare must be raised naming the step and its errno, got {e}"
    except Exception as e:  # noqa: BLE001 - the wrong exception
        raise AssertionError(f"a failed unshare in the child raised {type(e).__name__}: {e}; expected NamespaceError naming the step") from None
    else:
        raise AssertionError("spawn returned although the child's unshare failed (EINVAL): read the child's error message and raise it")
    bad = [IdMap(0, 100000, 10), IdMap(5, 200000, 10)]  # overlapping: the kernel (or newuidmap) refuses it
    try:
        spawn(lambda: 0, F.NEWUSER, uid_maps=bad, gid_maps=bad)
    except IdMapError as e:
        assert "uid_map" in str(e) or "newuidmap" in str(e), f"a map the kernel refuses must be raised naming the file, got {e}"
    else:
        raise AssertionError("spawn returned although writing the id maps failed: raise the IdMapError (and reap the child)")
    leftover = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == os.getpid()]
    assert not leftover, f"spawn left {len(leftover)} child process(es) unreaped after a failed setup"


def _parent(proc: Path) -> int | None:
    try:
        return int(next(x for x in (proc / "status").read_text().splitlines() if x.startswith("PPid:")).split()[1])
    except (OSError, StopIteration, ValueError):
        return None


LAB = Lab(
    package="part5_namespaces",
    title="Part 5, Linux namespaces: spawn and the id maps",
    intro="""
Two hours. You write the heart of part 5: `spawn()`, which runs a Python function in a child
inside new namespaces, in the order the kernel requires, and `write_id_maps()`, which writes who
the child is inside its user namespace. The child's side is given (`_child`: unshare, report,
wait for the parent, become root inside; `_middle`: PID 1's parent). Start with
`python -m part5_namespaces` and read "The ordering rules": your code enforces rules 1-4.
""",
    modules=("idmap.py", "process.py"),
    tasks=(
        Task(1, "write the id maps", ("idmap.py:write_id_maps",),
             """`write_id_maps(pid, uid_maps, gid_maps)` writes `/proc/PID/uid_map` and `gid_map` of a
child that has just unshared CLONE_NEWUSER: directly with CAP_SETUID / CAP_SETGID (root on the
host), directly for the caller's own single id (then `deny` goes to `/proc/PID/setgroups` before
`gid_map`), and through `newuidmap` / `newgidmap` for anything else (a range from /etc/subuid).""",
             ("The ordering rules (process.py enforces them)",),
             ("`has_capability(CAP_SETUID)`, `_is_own_single(maps, os.geteuid())`, `format_map(maps)` are in idmap.py.",
              "`_write_proc(pid, name, text)` writes a /proc file in one write(2) and raises IdMapError naming it.",
              "`_run_helper(\"newuidmap\", pid, maps)` runs the setuid helper."),
             "as root a range written directly (setgroups stays allow); as an ordinary user (a new user with a subordinate range "
             "when you are root) the single mapping (setgroups deny) and the range through newuidmap, each seen from inside the child.",
             check_id_maps),
        Task(2, "spawn: the parent's side", ("process.py:spawn",),
             """`spawn(target, flags, uid_maps=..., gid_maps=..., before_release=...)` forks; the child runs
`_child(...)` (given) and never returns into your code. The parent waits for the child's
"unshared" message on the status pipe, writes the id maps (`write_id_maps`), calls
`before_release(pid)`, releases the child through the go pipe, then reads on: a `pid1` message
(with NEWPID: PID 1's host pid, for `Child.target_pid`), then EOF (the target runs) or an error
message, raised as `NamespaceError` naming the step. A failure kills and reaps the child. Maps
without CLONE_NEWUSER are refused (ValueError).""",
             ("The ordering rules (process.py enforces them)", "The API"),
             ("Two pipes: `os.pipe()` for status (child -> parent) and one for go (parent -> child); close the ends each side does not use.",
              "Flush sys.stdout and sys.stderr before `os.fork()`, or buffered output is written twice.",
              "`_LineReader(fd).next()` reads one JSON message (None at EOF); `_raise_setup_error(child, message)` reaps and raises.",
              "An IdMapError from the maps: close the go pipe (the child gives up), wait for the child, raise."),
             "exit codes, PID 1 and a new UTS namespace, maps seen from inside, before_release after the maps, target_pid, a failed "
             "unshare (EINVAL, named), a map the kernel refuses (IdMapError), and no child left unreaped.",
             check_spawn),
    ),
    timeout=180,
)
