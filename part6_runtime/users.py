"""Who the command runs as: ``uid[:gid]`` or names, resolved in the *container's* files.

Docker's rules: a name is looked up in the image's /etc/passwd (never the host's); a uid
that is not there still works (with gid 0 and HOME=/); supplementary groups are the groups
of /etc/group that list the user's name; ``user:group`` takes the group from /etc/group.
"""

from __future__ import annotations

import errno
import os
import stat

from part1_overview import model
from part4_tar import RootDir, UnsafePathError

from .errors import SpecError

#: the most read of a file of an image (a passwd file of 50,000 users is 3 MiB)
MAX_DB_BYTES = 4 << 20


@model(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups, for setgroups(2)
    home: str
    name: str | None


def read_image_file(file: int | str | os.PathLike, shown: str, limit: int = MAX_DB_BYTES) -> bytes | None:
    """The bytes of a file of an image, the one reader every caller uses (``/etc/passwd`` for
    a user name here and for a build's ``--chown``, ``/etc/group``); None when it is absent.

    ``file``: a descriptor opened by the caller (taken over and closed here), or a host path,
    opened without following a final symlink. Opened without blocking (``O_NONBLOCK``: a
    FIFO's open does not wait for a writer), then checked on the descriptor: anything but a
    regular file (a FIFO, a device, a directory), or more than ``limit`` bytes, raises
    :class:`SpecError` naming ``shown``.
    """
    if isinstance(file, int):
        fd = file
    else:
        try:
            fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            what = "a symbolic link" if e.errno == errno.ELOOP else (e.strerror or str(e))
            raise SpecError(f"{shown}: cannot be read: {what}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SpecError(f"{shown}: not a regular file")
        if st.st_size > limit:
            raise SpecError(f"{shown}: {st.st_size} bytes, larger than the {limit} bytes read from an image file")
        chunks = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # it grew while read
            raise SpecError(f"{shown}: larger than the {limit} bytes read from an image file")
        return b"".join(chunks)
    finally:
        os.close(fd)


def parse_user_db(data: bytes | str | None) -> list[list[str]]:
    """The colon-separated entries of a passwd or group file (None: no file, no entries);
    blank and ``#`` lines are skipped."""
    if data is None:
        return []
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    return [line.split(":") for line in text.split("\n") if line.strip() and not line.startswith("#")]


def _read_db(rootfs: str, name: str) -> list[list[str]]:
    """The entries of /etc/passwd or /etc/group in the rootfs ([] if absent).

    Resolved with part 4's RootDir (symlinks resolve inside the rootfs, never to the host's
    files) and read by :func:`read_image_file` (a regular file only, bounded)."""
    try:
        with RootDir(rootfs) as rd:
            fd = rd.open(f"/etc/{name}", os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except UnsafePathError as e:
        raise SpecError(f"/etc/{name}: {e.reason}") from None
    return parse_user_db(read_image_file(fd, f"/etc/{name}"))


def _number(text: str) -> bool:
    return text.isascii() and text.isdigit()  # "²".isdigit() too, and int() refuses it


def _id(text: str, what: str) -> int:
    if not _number(text):
        raise SpecError(f"{what}: the id {text!r} is not a number")
    return int(text)


def resolve_user(rootfs: str, user: str | None, additional_gids: tuple[int, ...] = ()) -> ResolvedUser:
    """Resolve ``user`` (``""``/None = root) against the rootfs' /etc/passwd and /etc/group."""
    user = (user or "0").strip()
    user_part, _, group_part = user.partition(":")
    passwd = [e for e in _read_db(rootfs, "passwd") if len(e) >= 7]
    groups = [e for e in _read_db(rootfs, "group") if len(e) >= 3]

    entry = None
    if _number(user_part):
        uid = int(user_part)
        entry = next((e for e in passwd if e[2] == user_part), None)
    else:
        entry = next((e for e in passwd if e[0] == user_part), None)
        if entry is None:
            # runc's and podman's words; the image's path, never where this host keeps its files
            raise SpecError(f"unable to find user {user_part}: no matching entries in passwd file")
        uid = _id(entry[2], f"user {user_part!r} in /etc/passwd")
    name = entry[0] if entry else None
    home = entry[5] if entry and entry[5] else "/"

    if group_part:
        if _number(group_part):
            gid = int(group_part)
        else:
            g = next((e for e in groups if e[0] == group_part), None)
            if g is None:
                raise SpecError(f"unable to find group {group_part}: no matching entries in group file")
            gid = _id(g[2], f"group {group_part!r} in /etc/group")
    else:
        gid = int(entry[3]) if entry and _number(entry[3]) else 0

    supplementary: list[int] = []
    if name is not None and not group_part:
        for g in groups:
            members = [m for m in g[3].split(",") if m] if len(g) > 3 else []
            if name in members and _number(g[2]):
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

