"""Who the command runs as: ``uid[:gid]`` or names, resolved in the *container's* files.

Docker's rules: a name is looked up in the image's /etc/passwd (never the host's); a uid
that is not there still works (with gid 0 and HOME=/); supplementary groups are the groups
of /etc/group that list the user's name; ``user:group`` takes the group from /etc/group.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from part4_tar import RootDir, UnsafePathError

from .errors import SpecError

#: /etc/passwd and /etc/group are read up to this size (a hostile image's are not read whole)
MAX_DB_BYTES = 4 << 20


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups, for setgroups(2)
    home: str
    name: str | None


def _read_db(rootfs: str, name: str) -> list[list[str]]:
    """The colon-separated lines of /etc/passwd or /etc/group in the rootfs ([] if absent).

    Read through part 4's RootDir: symlinks resolve inside the rootfs, never to the host's
    files, and only a regular file is read (an image's ``/etc/passwd -> /dev/sda`` or a fifo
    there is no user database)."""
    try:
        with RootDir(rootfs) as rd:
            fd = rd.open(f"/etc/{name}", os.O_RDONLY | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except UnsafePathError as e:
        raise SpecError(f"{rootfs}/etc/{name}: {e.reason}") from None
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return []
        text = f.read(MAX_DB_BYTES).decode("utf-8", "replace")
    return [line.split(":") for line in text.split("\n") if line.strip() and not line.startswith("#")]


def resolve_user(rootfs: str, user: str | None, additional_gids: tuple[int, ...] = ()) -> ResolvedUser:
    """Resolve ``user`` (``""``/None = root) against the rootfs' /etc/passwd and /etc/group."""
    user = (user or "0").strip()
    user_part, _, group_part = user.partition(":")
    passwd = [e for e in _read_db(rootfs, "passwd") if len(e) >= 7]
    groups = [e for e in _read_db(rootfs, "group") if len(e) >= 3]

    entry = None
    if user_part.isdigit():
        uid = int(user_part)
        entry = next((e for e in passwd if e[2] == user_part), None)
    else:
        entry = next((e for e in passwd if e[0] == user_part), None)
        if entry is None:
            raise SpecError(f"user {user_part!r}: no matching entry in {rootfs}/etc/passwd")
        uid = int(entry[2])
    name = entry[0] if entry else None
    home = entry[5] if entry and entry[5] else "/"

    if group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            g = next((e for e in groups if e[0] == group_part), None)
            if g is None:
                raise SpecError(f"group {group_part!r}: no matching entry in {rootfs}/etc/group")
            gid = int(g[2])
    else:
        gid = int(entry[3]) if entry and entry[3].isdigit() else 0

    supplementary: list[int] = []
    if name is not None and not group_part:
        for g in groups:
            members = [m for m in g[3].split(",") if m] if len(g) > 3 else []
            if name in members and g[2].isdigit():
                supplementary.append(int(g[2]))
    for extra in additional_gids:
        supplementary.append(int(extra))
    # as runc: the groups that list the user, then additionalGids (the primary gid is
    # not repeated unless /etc/group lists the user in it)
    return ResolvedUser(uid, gid, tuple(dict.fromkeys(supplementary)), home, name)


def check_ids(uid: int, gid: int) -> None:
    for what, value in (("uid", uid), ("gid", gid)):
        if not 0 <= value < 2**32 - 1:
            raise SpecError(f"{what} {value} is out of range")

