"""Call a function in new namespaces (or as another user) and get its return value back.

:func:`spawn` gives an exit code; the demonstrations and the tests want data: what the child
saw from inside. :func:`call_in_namespaces` runs ``fn`` through spawn and sends its return
value (or its error) back to the caller over a pipe, pickled.

:func:`call_as_user` runs ``fn`` in a child that first drops from root to an ordinary user
(setgroups, setgid, setuid: in that order, because after setuid it could no longer change
its groups). That is how this chapter shows the unprivileged paths for real on a machine
where everything runs as root. :func:`ensure_user` creates that user (``alice``) and its
subordinate id ranges when they are missing.
"""

from __future__ import annotations

import os
import pickle
import pwd
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from .errors import NamespaceError
from .idmap import SUBGID_FILE, SUBUID_FILE, IdMap, _subid_ranges, free_subid_start
from .process import PR_SET_DUMPABLE, spawn
from .syscalls import CloneFlags, prctl

T = TypeVar("T")


def call_in_namespaces(
    fn: Callable[[], T],
    flags: CloneFlags | int,
    *,
    uid_maps: Sequence[IdMap] | None = None,
    gid_maps: Sequence[IdMap] | None = None,
) -> T:
    """``fn()`` run in a child inside the namespaces ``flags``; its (picklable) return value.

    An exception in ``fn`` is raised here as NamespaceError with the original type and message.
    """
    result_r, result_w = os.pipe()

    def target() -> int:
        os.close(result_r)
        try:
            payload = ("ok", fn())
        except BaseException as e:  # noqa: BLE001 - sent to the parent
            message = str(e)
            if isinstance(e, OSError) and e.strerror:
                message = e.strerror if e.filename is None else f"{e.strerror}: {e.filename}"
            payload = ("error", type(e).__name__, message, getattr(e, "errno", None) or 0)
        data = pickle.dumps(payload)
        with os.fdopen(result_w, "wb") as f:
            f.write(data)
        return 0

    try:
        child = spawn(target, flags, uid_maps=uid_maps, gid_maps=gid_maps)
    except BaseException:
        os.close(result_r)
        os.close(result_w)
        raise
    os.close(result_w)
    with child, os.fdopen(result_r, "rb") as f:
        data = f.read()
        code = child.wait()
    where = f"{getattr(fn, '__name__', 'function')} in namespaces {CloneFlags(int(flags)).name or 'none'}"
    if not data:
        raise NamespaceError(0, f"{where}: child ended ({code}) without a result")
    payload = pickle.loads(data)
    if payload[0] == "error":
        _, kind, message, errno = payload
        if kind in ("NamespaceError", "IdMapError"):
            raise NamespaceError(errno, message)  # already names its step
        raise NamespaceError(errno, f"{where}: {kind}: {message}")
    return payload[1]


def drop_to_user(user: str | int) -> None:
    """Become ``user`` (name or uid) with its primary group and no supplementary groups.

    Needs root. Changing uid makes the process non-dumpable, which hands its /proc/PID
    files to root; we set it dumpable again so the user can write its children's id maps.
    """
    entry = pwd.getpwnam(user) if isinstance(user, str) else pwd.getpwuid(user)
    os.setgroups([])
    os.setresgid(entry.pw_gid, entry.pw_gid, entry.pw_gid)
    os.setresuid(entry.pw_uid, entry.pw_uid, entry.pw_uid)
    prctl(PR_SET_DUMPABLE, 1)
    os.environ["HOME"] = entry.pw_dir
    os.environ["USER"] = os.environ["LOGNAME"] = entry.pw_name


def call_as_user(user: str | int, fn: Callable[[], T]) -> T:
    """``fn()`` run in a child process that has dropped from root to ``user``; its result.

    Modules ``fn`` needs must already be imported: the user may not be able to read the
    Python installation's directory (e.g. under /root).
    """

    def as_user() -> T:
        drop_to_user(user)
        return fn()

    as_user.__name__ = f"{getattr(fn, '__name__', 'function')} as {user}"
    return call_in_namespaces(as_user, 0)


def _run(argv: list[str]) -> None:
    r = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise NamespaceError(1, f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")


def ensure_user(name: str, *, subid_count: int = 65536) -> bool:
    """Make sure user ``name`` exists and has subordinate uid and gid ranges.

    Creates the user (no home directory, no login shell) with useradd and adds ranges with
    usermod when missing. Returns True when the user was created by this call. Needs root.
    """
    try:
        entry = pwd.getpwnam(name)
        created = False
    except KeyError:
        if os.geteuid() != 0:
            raise NamespaceError(1, f"creating user {name!r} needs root") from None
        _run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name])
        entry = pwd.getpwnam(name)
        created = True
    names = {entry.pw_name, str(entry.pw_uid)}
    missing = [
        option
        for option, path in (("--add-subuids", SUBUID_FILE), ("--add-subgids", SUBGID_FILE))
        if not _subid_ranges(Path(path), names)
    ]
    if missing:
        if os.geteuid() != 0:
            raise NamespaceError(1, f"adding subordinate ids for {name!r} needs root")
        start = free_subid_start()
        argv = ["usermod"]
        for option in missing:
            argv += [option, f"{start}-{start + subid_count - 1}"]
        _run(argv + [name])
    return created
