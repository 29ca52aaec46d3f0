"""Running commands as an unprivileged user, for the rootless tests.

``.ci/run`` makes the CI's user with ``.ci/rootless-user``: an ordinary account with a
subordinate uid and gid range, as a student on a shared lab server has. The tests run as root;
:class:`UserSession` runs commands as that user (``setpriv``: its uid and primary gid, no
supplementary groups, an environment of its own) in a directory of the test's own that holds
the user's HOME, XDG directories and TMPDIR. A test that needs the user and finds it missing
fails, naming the command that makes it: on CI nothing is skipped.

The user must be able to run this interpreter and read the repository. When the interpreter
lives where the user cannot go (pyenv under /root, mode 0700), its commands run in a mount
namespace of their own in which that directory is a tmpfs traversable by all, holding only the
interpreter's tree (bound back at the same path): nothing changes on the host, and every path
stays what it is.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from part5_namespaces.idmap import SUBGID_FILE, SUBUID_FILE, _subid_ranges

REPO = Path(__file__).resolve().parent.parent
#: the CI's unprivileged user (``.ci/rootless-user`` makes it)
CI_USER = "capstone-ci"
#: a user with no subordinate ids on every Debian system: the single mapping
NO_RANGE_USER = "nobody"

#: make the interpreter's directory reachable in a private mount namespace (see the docstring)
_VIEW_SCRIPT = r"""
set -e
blocked=$1 needed=$2; shift 2
hold=$(mktemp -d)
mount --bind "$needed" "$hold"
mount -t tmpfs -o mode=0711,size=64k tmpfs "$blocked"
mkdir -p "$needed"
mount --move "$hold" "$needed"
rmdir "$hold"
exec "$@"
"""


def require_user(name: str = CI_USER, *, with_range: bool = True) -> pwd.struct_passwd:
    """The passwd entry of ``name``; fails the test when it is missing (or has no range)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        pytest.fail(f"the unprivileged user {name!r} is missing: `bash .ci/rootless-user` makes it (.ci/run does)")
    if with_range:
        names = {entry.pw_name, str(entry.pw_uid)}
        if not (_subid_ranges(SUBUID_FILE, names) and _subid_ranges(SUBGID_FILE, names)):
            pytest.fail(f"{name} has no subordinate ids in {SUBUID_FILE} and {SUBGID_FILE}: "
                        "`bash .ci/rootless-user` adds them (.ci/run does)")
    return entry


def subid_start(entry: pwd.struct_passwd) -> int:
    """The first subordinate uid of ``entry`` (uid 1 inside its user namespace)."""
    return _subid_ranges(SUBUID_FILE, {entry.pw_name, str(entry.pw_uid)})[0][0]


def _can_traverse(path: Path, uid: int, gid: int) -> bool:
    st = os.stat(path)
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


@functools.cache
def _interpreter_view(uid: int, gid: int) -> tuple[str, ...]:
    """The argv prefix that makes this interpreter reachable for ``uid``, or () when it is."""
    prefix = Path(os.path.realpath(sys.prefix))
    for blocked in reversed(prefix.parents):
        if blocked != Path("/") and not _can_traverse(blocked, uid, gid):
            needed = blocked / prefix.relative_to(blocked).parts[0]
            return ("unshare", "--mount", "--propagation", "private", "sh", "-c", _VIEW_SCRIPT, "sh",
                    str(blocked), str(needed))
    return ()


@dataclass
class UserSession:
    """Commands as ``entry``'s user in ``base`` (its HOME, TMPDIR and work space)."""

    entry: pwd.struct_passwd
    base: Path
    #: environment every command of the session gets (a test module's own defaults)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def uid(self) -> int:
        return self.entry.pw_uid

    @property
    def home(self) -> Path:
        return self.base / "home"

    @property
    def tmp(self) -> Path:
        return self.base / "tmp"

    @property
    def store(self) -> Path:
        """The default store: the XDG data directory of the user's HOME."""
        return self.home / ".local" / "share" / "capstone"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(self.home),
            "USER": self.entry.pw_name,
            "LOGNAME": self.entry.pw_name,
            "TMPDIR": str(self.tmp),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": str(REPO),
        }
        env.update(self.extra_env)
        env.update(extra or {})
        return env

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` as the user: setpriv, behind the interpreter's view when one is needed."""
        setpriv = ["setpriv", f"--reuid={self.uid}", f"--regid={self.entry.pw_gid}", "--clear-groups", "--"]
        return [*_interpreter_view(self.uid, self.entry.pw_gid), *setpriv, *argv]

    def run(self, argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | os.PathLike = REPO,
            timeout: float = 300, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(argv), env=self.env(env), cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, input=input, stdin=None if input is not None else subprocess.DEVNULL)

    def python(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run([sys.executable, *args], **kwargs)

    def capstone(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.python("-m", "capstone", *args, **kwargs)

    def give(self, path: Path) -> Path:
        """Hand ``path`` (a tree the test made) to the user."""
        for p in [path, *path.rglob("*")]:
            os.chown(p, self.uid, self.entry.pw_gid, follow_symlinks=False)
        return path

    def leftovers(self) -> list[str]:
        """What the user's commands left in its TMPDIR (nothing, when they clean up)."""
        return sorted(os.listdir(self.tmp))


def user_session(name: str = CI_USER, *, with_range: bool = True) -> UserSession:
    """A session for ``name`` in a fresh private directory (remove it with :func:`end_session`).

    The directory is under the system's temp dir (pytest's own is root's alone), mode 0700 and
    owned by the user; the check that the user can run the interpreter and import the
    repository's packages fails the test with the reason when it cannot.
    """
    entry = require_user(name, with_range=with_range)
    base = Path(tempfile.mkdtemp(prefix="capstone-rootless-", dir="/tmp"))
    session = UserSession(entry, base)
    for d in (session.base, session.home, session.tmp):
        d.mkdir(exist_ok=True)
        os.chown(d, entry.pw_uid, entry.pw_gid)
    probe = session.python("-c", "import capstone, part5_namespaces, rich, isal")
    if probe.returncode != 0:
        end_session(session)
        pytest.fail(f"{name} cannot run {sys.executable} on the repository {REPO}: "
                    f"{probe.stderr.strip().splitlines()[-1:] or probe.returncode}")
    return session


def end_session(session: UserSession) -> None:
    """Remove the session's directory (as root: the subordinate ids' files included)."""
    shutil.rmtree(session.base, ignore_errors=True)


# -- fixtures (a test module imports the ones it uses) -----------------------------------------------


@pytest.fixture(scope="module")
def user():
    """A session of the CI's user (with its subordinate range), for one test module."""
    session = user_session()
    yield session
    end_session(session)


@pytest.fixture(scope="module")
def nobody():
    """A session of ``nobody``, who has no subordinate range: the single mapping."""
    session = user_session(NO_RANGE_USER, with_range=False)
    yield session
    end_session(session)
