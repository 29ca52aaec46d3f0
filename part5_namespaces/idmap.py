"""uid and gid maps: who a process is inside a user namespace, and who it is outside.

A new user namespace starts with no mapping at all: every id reads as the overflow id
(65534, ``nobody``) until a process outside writes ``/proc/PID/uid_map`` and ``gid_map``.
Each line of a map is ``inside outside count``, user_namespaces(7). The kernel accepts a
write (once per file) when the writer

1. has CAP_SETUID (CAP_SETGID) in the new namespace -- true for the parent, whose effective
   uid owns the namespace its child created;
2. is in the new namespace or in its parent namespace;
3. and either has CAP_SETUID in the *parent* namespace (root on the host: any mapping), or
   writes exactly one line mapping its own effective id (the "single mapping": the caller
   becomes root inside). For gid_map that second case also needs ``deny`` written to
   ``/proc/PID/setgroups`` first: otherwise the unprivileged user could drop a supplementary
   group with setgroups(2) inside, and escape a "deny by group" permission on a file.

An unprivileged user who wants more than its own id (a full range, so that files owned by
uid 33 can exist inside) asks the setuid helpers ``newuidmap``/``newgidmap``, which check the
request against the ranges delegated to that user in /etc/subuid and /etc/subgid.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from part1_overview import model

from .errors import IdMapError

SUBUID_FILE = Path("/etc/subuid")
SUBGID_FILE = Path("/etc/subgid")

#: capability numbers (linux/capability.h) needed to write any mapping directly
CAP_SETGID = 6
CAP_SETUID = 7


@model(frozen=True)
class IdMap:
    """One line of /proc/PID/uid_map or gid_map: ids ``inside..inside+count-1`` are
    ``outside..outside+count-1`` in the parent namespace."""

    inside: int
    outside: int
    count: int

    def __post_init__(self) -> None:
        if self.inside < 0 or self.outside < 0 or self.count < 1:
            raise ValueError(f"invalid id mapping {self.inside} {self.outside} {self.count}")

    def line(self) -> str:
        return f"{self.inside} {self.outside} {self.count}"

    def to_outside(self, inside: int) -> int | None:
        """The parent-namespace id of ``inside``, or None when this line does not map it."""
        if self.inside <= inside < self.inside + self.count:
            return self.outside + (inside - self.inside)
        return None


IdMaps = tuple[IdMap, ...]


def format_map(maps: Sequence[IdMap]) -> str:
    """The text written to uid_map/gid_map (one line per mapping)."""
    return "".join(m.line() + "\n" for m in maps)


def parse_map(text: str) -> IdMaps:
    """Parse the contents of /proc/PID/uid_map (columns: inside outside count)."""
    maps = []
    for line in text.splitlines():
        if line.strip():
            inside, outside, count = (int(x) for x in line.split())
            maps.append(IdMap(inside, outside, count))
    return tuple(maps)


def read_map(pid: int | str = "self", which: str = "uid") -> IdMaps:
    """The uid (or gid) map of a process, as the reader's namespace sees it."""
    return parse_map(Path(f"/proc/{pid}/{which}_map").read_text())


def current_user_mapping() -> tuple[IdMaps, IdMaps]:
    """The single mapping: the caller's effective uid and gid become 0 (root) inside.

    Any user may write this one for its own child, with no helper and no /etc/subuid.
    """
    return (IdMap(0, os.geteuid(), 1),), (IdMap(0, os.getegid(), 1),)


def _subid_ranges(path: Path, names: set[str]) -> list[tuple[int, int]]:
    """(start, count) ranges of /etc/subuid-style ``name_or_id:start:count`` lines for a user."""
    ranges = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        return ranges
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3:
            raise IdMapError(22, f"{path}:{lineno}: expected name:start:count, got {line!r}")
        if parts[0] in names:
            try:
                ranges.append((int(parts[1]), int(parts[2])))
            except ValueError:
                raise IdMapError(22, f"{path}:{lineno}: start and count must be numbers: {line!r}") from None
    return ranges


def free_subid_start() -> int:
    """The first id after every range already delegated in /etc/subuid and /etc/subgid (at
    least 100000, where useradd starts): a new range there overlaps no other user's."""
    end = 100000
    for path in (SUBUID_FILE, SUBGID_FILE):
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                end = max(end, int(parts[1]) + int(parts[2]))
    return end


def subid_mapping(
    user: str | int,
    *,
    subuid_file: str | os.PathLike = SUBUID_FILE,
    subgid_file: str | os.PathLike = SUBGID_FILE,
) -> tuple[IdMaps, IdMaps] | None:
    """A full range for ``user`` (a name or a uid): its own id becomes root (0) inside and its
    first delegated range in /etc/subuid (/etc/subgid) becomes ids 1..count.

    None when the user has no range in either file (then only the single mapping is possible).
    """
    try:
        entry = pwd.getpwnam(user) if isinstance(user, str) else pwd.getpwuid(user)
    except KeyError:
        raise IdMapError(2, f"subid_mapping: no such user {user!r} in /etc/passwd") from None
    names = {entry.pw_name, str(entry.pw_uid)}
    uid_ranges = _subid_ranges(Path(subuid_file), names)
    gid_ranges = _subid_ranges(Path(subgid_file), names)
    if not uid_ranges or not gid_ranges:
        return None
    (ustart, ucount), (gstart, gcount) = uid_ranges[0], gid_ranges[0]
    return (
        (IdMap(0, entry.pw_uid, 1), IdMap(1, ustart, ucount)),
        (IdMap(0, entry.pw_gid, 1), IdMap(1, gstart, gcount)),
    )


def has_capability(cap: int, pid: int | str = "self") -> bool:
    """Whether ``cap`` is in the effective set of a process (/proc/PID/status CapEff)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> cap & 1)
    return False


def _is_own_single(maps: Sequence[IdMap], own: int) -> bool:
    return len(maps) == 1 and maps[0].outside == own and maps[0].count == 1


def _write_proc(pid: int, name: str, text: str) -> None:
    path = f"/proc/{pid}/{name}"
    try:
        # one write(2): the kernel accepts each map file exactly once, in a single write
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise IdMapError(e.errno, f"writing {text.strip()!r} to {path}: {os.strerror(e.errno)}") from None


def _run_helper(tool: str, pid: int, maps: Sequence[IdMap]) -> None:
    exe = shutil.which(tool) or f"/usr/bin/{tool}"
    argv = [exe, str(pid)] + [str(x) for m in maps for x in (m.inside, m.outside, m.count)]
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    except FileNotFoundError:
        raise IdMapError(2, f"{tool} not found: install the uidmap package for range mappings") from None
    if r.returncode != 0:
        detail = (r.stderr or r.stdout).strip().splitlines()
        raise IdMapError(1, f"{' '.join(argv)} failed ({r.returncode}): {detail[-1] if detail else 'no output'}")


def write_id_maps(pid: int, uid_maps: Sequence[IdMap] | None, gid_maps: Sequence[IdMap] | None) -> None:
    """Write the uid and gid maps of process ``pid`` (which has just unshared CLONE_NEWUSER).

    - with CAP_SETUID/CAP_SETGID (root on the host): written directly, any mapping;
    - a single mapping of the caller's own id: written directly, after ``deny`` to
      /proc/PID/setgroups (the kernel requires it before an unprivileged gid_map);
    - anything else: ``newuidmap``/``newgidmap``, checked against /etc/subuid and /etc/subgid.
    """
    if uid_maps:
        if has_capability(CAP_SETUID) or _is_own_single(uid_maps, os.geteuid()):
            _write_proc(pid, "uid_map", format_map(uid_maps))
        else:
            _run_helper("newuidmap", pid, uid_maps)
    if gid_maps:
        if has_capability(CAP_SETGID):
            _write_proc(pid, "gid_map", format_map(gid_maps))
        elif _is_own_single(gid_maps, os.getegid()):
            _write_proc(pid, "setgroups", "deny")
            _write_proc(pid, "gid_map", format_map(gid_maps))
        else:
            _run_helper("newgidmap", pid, gid_maps)
