"""``--chown`` and ``--chmod``: who owns what COPY/ADD write, and with which mode.

``--chown=USER[:GROUP]``: numbers are used as they are; names are looked up in the ``/etc/passwd``
and ``/etc/group`` of the image being built (not the host's), and a missing file or name is
an error. Without a group, the group is looked up as the user's spelling: ``--chown=1000``
means 1000:1000 (the Dockerfile reference: "a UID without GID will use the same numeric UID as
the GID"). Without ``--chown`` everything COPY writes from the build context is owned by 0:0.

``--chmod``: octal (``755``, ``0644``) or symbolic as chmod(1) (``u+x``, ``go=rX``, ``+x``,
``a-w,u=rwx``) applied to each copied entry; ``X`` is execute for directories and for files
that already have an execute bit.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Callable

from .errors import StepFailure


class OwnerError(StepFailure):
    """A ``--chown`` or ``--chmod`` value that cannot be used (the step names its line)."""


_SYMBOLIC = re.compile(r"^[ugoa]*[-+=][rwxXst]*$")


def _number(text: str) -> bool:
    return text.isascii() and text.isdigit()  # "²".isdigit() too, and int() refuses it


#: the largest uid or gid (the kernel's ids are 32 bits and (uid_t)-1 means "unchanged")
MAX_ID = 2**32 - 2


def _lookup(text: str | None, name: str) -> int | None:
    """The id of ``name`` in a passwd/group file's text (third field), or None."""
    if text is None:
        return None
    from part6_runtime import parse_user_db  # the runtime's parser: one reading of these files

    for fields in parse_user_db(text):
        if len(fields) >= 3 and fields[0] == name:
            return int(fields[2]) if _number(fields[2]) else None
    return None


def _checked(spec: str, what: str, value: int) -> int:
    if value > MAX_ID:
        raise OwnerError(f"invalid --chown={spec}: {what} {value} is out of range (0 to {MAX_ID})")
    return value


def parse_chown(spec: str, read_text: Callable[[str], str | None]) -> tuple[int, int]:
    """``(uid, gid)`` for ``--chown=spec``; ``read_text(path)`` reads a file of the image.

    Raises :class:`OwnerError` with a one-line reason (also for an id past :data:`MAX_ID`, given or
    found in the image's files).
    """
    user, _, group = spec.partition(":")
    if not user:
        raise OwnerError(f"invalid --chown={spec}: empty user")
    group = group or user
    if _number(user):
        uid = int(user)
    else:
        uid = _lookup(read_text("/etc/passwd"), user)
        if uid is None:
            raise OwnerError(f"unable to find user {user}: no matching entries in passwd file")
    if _number(group):
        gid = int(group)
    else:
        gid = _lookup(read_text("/etc/group"), group)
        if gid is None:
            raise OwnerError(f"unable to find group {group}: no matching entries in group file")
    return _checked(spec, "uid", uid), _checked(spec, "gid", gid)


class Chmod:
    """A parsed ``--chmod``: ``apply(mode_with_type) -> permission bits``."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.octal: int | None = None
        self.clauses: list[tuple[str, str, str]] = []
        if re.fullmatch(r"[0-7]{1,4}", spec):
            self.octal = int(spec, 8)
            return
        for clause in spec.split(","):
            if not _SYMBOLIC.match(clause):
                raise OwnerError(f"invalid --chmod={spec}: {clause!r} is not an octal or symbolic mode")
            m = re.match(r"^([ugoa]*)([-+=])(.*)$", clause)
            self.clauses.append((m.group(1) or "a", m.group(2), m.group(3)))

    def apply(self, mode: int) -> int:
        if self.octal is not None:
            return self.octal
        perm = stat.S_IMODE(mode)
        is_dir = stat.S_ISDIR(mode)
        for who, op, what in self.clauses:
            who = "ugo" if "a" in who else who
            bits = 0
            for w in who:
                shift = {"u": 6, "g": 3, "o": 0}[w]
                for c in what:
                    if c == "r":
                        bits |= 4 << shift
                    elif c == "w":
                        bits |= 2 << shift
                    elif c == "x" or (c == "X" and (is_dir or perm & 0o111)):
                        bits |= 1 << shift
                    elif c == "s" and w in "ug":
                        bits |= stat.S_ISUID if w == "u" else stat.S_ISGID
                    elif c == "t":
                        bits |= stat.S_ISVTX
            if op == "+":
                perm |= bits
            elif op == "-":
                perm &= ~bits
            else:
                mask = 0
                for w in who:
                    mask |= 0o7 << {"u": 6, "g": 3, "o": 0}[w]
                perm = (perm & ~mask) | bits
        return perm


def parse_chmod(spec: str) -> Chmod:
    return Chmod(spec)


__all__ = ["Chmod", "OwnerError", "parse_chmod", "parse_chown"]
