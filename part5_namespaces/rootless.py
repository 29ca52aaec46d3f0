"""Rootless: an ordinary user becomes root in a user namespace of its own.

An unprivileged process may create a user namespace (and, owned by it, every other kind), but
what it can do inside depends on the map it gets:

* the **full range** (what ``podman unshare`` and ``buildah unshare`` set up): the user's own
  uid becomes 0 and the range delegated to it in /etc/subuid (/etc/subgid) becomes 1..65536.
  Files can belong to any of those ids, ``chown 1000`` works, a process can switch to a
  non-root USER. Written by the setuid helpers ``newuidmap``/``newgidmap`` (Debian's uidmap).
* the **single mapping**: only the user's own uid (0 inside). Any user may write it, but every
  other id is unmapped: ``chown`` to it fails with EINVAL, a layer whose files belong to uid 33
  cannot be extracted, USER 1000 cannot be switched to, and setgroups(2) is denied.

:func:`rootless_mapping` picks the full range when the user has one and the helpers are
installed, else the single mapping with the reason and the fix (the ``usermod`` command);
:func:`run_in_user_namespace` runs a function as root of a new user (and mount) namespace
and returns its exit code, as ``buildah unshare`` runs a command. :func:`in_user_namespace`
tells code that must behave differently there (no mknod of devices, ``userxattr`` overlays)
where it runs.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
from collections.abc import Callable

from part1_overview import model

from .idmap import (
    SUBGID_FILE,
    SUBUID_FILE,
    IdMap,
    IdMaps,
    free_subid_start,
    read_map,
    subid_mapping,
)
from .process import FORWARDED_SIGNALS, forward_signals, spawn
from .syscalls import CloneFlags

#: the size of a range ``usermod --add-subuids`` is told to delegate (what podman expects)
SUBID_COUNT = 65536
#: the uid_map of the initial user namespace: every id is itself
INITIAL_MAP = (IdMap(0, 0, 4294967295),)

#: what the single mapping cannot do, said once wherever it is chosen
SINGLE_LIMITS = "files of other owners, chown to them and a non-root USER cannot work"


@model(frozen=True)
class UserNamespaceMapping:
    """The uid and gid maps an unprivileged ``user`` gets for a user namespace of its own.

    ``limitation`` is None for the full subordinate range; otherwise it says why only the
    user's own ids are mapped (no range in /etc/subuid, no newuidmap).
    """

    user: str
    uid_maps: IdMaps
    gid_maps: IdMaps
    limitation: str | None = None

    @property
    def full(self) -> bool:
        return self.limitation is None

    @property
    def ids(self) -> int:
        """How many uids exist inside (1 for the single mapping, 65537 for a usual range)."""
        return sum(m.count for m in self.uid_maps)

    def describe(self) -> str:
        """The uid map as /proc/self/uid_map lists it, lines joined: ``0 1001 1; 1 100000 65536``."""
        return "; ".join(m.line() for m in self.uid_maps)

    def warning(self) -> str | None:
        """One line for the single mapping: why, what then cannot work, and the fix."""
        if self.full:
            return None
        return f"{self.limitation}: only uid {self.uid_maps[0].outside} is mapped (as root), so {SINGLE_LIMITS}; {self.fix()}"

    def fix(self) -> str:
        """How to get the full range."""
        if self.limitation and "newuidmap" in self.limitation:
            return "install the uidmap package (apt-get install uidmap)"
        return f"add a range with `{add_subids_command(self.user)}`"


def add_subids_command(user: str) -> str:
    """The command (for root) that delegates a free range of subordinate ids to ``user``."""
    start = free_subid_start()
    end = start + SUBID_COUNT - 1
    return f"sudo usermod --add-subuids {start}-{end} --add-subgids {start}-{end} {user}"


def _helper_problem() -> str | None:
    """Why newuidmap/newgidmap cannot write a range, or None when they look usable."""
    for tool in ("newuidmap", "newgidmap"):
        exe = shutil.which(tool) or (f"/usr/bin/{tool}" if os.path.exists(f"/usr/bin/{tool}") else None)
        if exe is None:
            return f"{tool} is not installed"
        st = os.stat(exe)
        try:
            has_caps = bool(os.getxattr(exe, "security.capability"))
        except OSError:
            has_caps = False
        if not (st.st_mode & stat.S_ISUID and st.st_uid == 0) and not has_caps:
            return f"{exe} is neither setuid root nor given capabilities"
    return None


def rootless_mapping(user: str | int | None = None) -> UserNamespaceMapping:
    """The maps for a user namespace of ``user`` (default: the effective uid).

    The full range when /etc/subuid and /etc/subgid delegate one to the user and newuidmap and
    newgidmap are usable; else the single mapping with the reason in ``limitation``.
    """
    uid = os.geteuid() if user is None else user
    try:
        entry = pwd.getpwnam(uid) if isinstance(uid, str) else pwd.getpwuid(uid)
        name = entry.pw_name
    except KeyError:
        entry, name = None, str(uid)
    own_uid = entry.pw_uid if entry else os.geteuid()
    own_gid = entry.pw_gid if entry else os.getegid()
    single = ((IdMap(0, own_uid, 1),), (IdMap(0, own_gid, 1),))
    if entry is None:
        return UserNamespaceMapping(name, *single, f"uid {uid} has no entry in /etc/passwd")
    full = subid_mapping(name)
    if full is None:
        return UserNamespaceMapping(name, *single, f"no subordinate ids for {name} in {SUBUID_FILE} and {SUBGID_FILE}")
    problem = _helper_problem()
    if problem is not None:
        return UserNamespaceMapping(name, *single, f"{problem}, so newuidmap cannot map {name}'s subordinate ids")
    return UserNamespaceMapping(name, *full)


def in_user_namespace() -> bool:
    """True when this process is in a user namespace other than the initial one (its uid map
    is not the identity): root here has no power over the host's devices and trusted xattrs."""
    try:
        return read_map("self", "uid") != INITIAL_MAP
    except OSError:
        return False


def run_in_user_namespace(
    target: Callable[[], int | None],
    mapping: UserNamespaceMapping | None = None,
    *,
    flags: CloneFlags | int = CloneFlags.NEWNS,
) -> int:
    """Run ``target()`` as root (uid 0, all capabilities) of a new user namespace with
    ``mapping`` (default :func:`rootless_mapping`), and of the namespaces ``flags`` (a mount
    namespace unless told otherwise: mounts made inside stay there); its exit code.

    The caller waits, passing SIGTERM, SIGHUP and SIGQUIT (and SIGINT when it did not come from
    the terminal, which sends it to both) on to the child. Raises IdMapError when the maps
    cannot be written (newuidmap refused the range), NamespaceError when the namespaces
    cannot be created.
    """
    mapping = mapping or rootless_mapping()
    restore: list[Callable[[], None]] = []

    def forward(pid: int) -> None:
        # installed before the child is released: from its first instruction, a signal to us
        # reaches it (and, forked before, the child keeps the default handlers); the child is in
        # our process group, where a terminal's ^C reaches it without us
        restore.append(forward_signals(pid, FORWARDED_SIGNALS, same_group=True))

    try:
        child = spawn(target, CloneFlags.NEWUSER | CloneFlags(int(flags)), uid_maps=mapping.uid_maps,
                      gid_maps=mapping.gid_maps, before_release=forward)
        with child:
            return child.wait()
    finally:
        for undo in reversed(restore):
            undo()


__all__ = [
    "SUBID_COUNT",
    "UserNamespaceMapping",
    "add_subids_command",
    "in_user_namespace",
    "rootless_mapping",
    "run_in_user_namespace",
]

