"""The store is private: no other local user reaches a snapshot's setuid-root program.

A snapshot holds an image's files as they are: a setuid-root binary from a base image, or one a
RUN step made, sits there with its owner and mode. The store's directories are 0700, so another
user (nobody, in a child process) cannot even stat it; a store made with 0755 directories (as
before this rule) lets nobody reach the file, and opening it again fixes the modes.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from support import make_context

from capstone.engine import build
from capstone.store import Store
from capstone.store.store import PRIVATE_DIRS

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="another user is simulated with setuid (root only)")

NOBODY = 65534


def reachable_by_nobody(path: Path) -> bool:
    """Whether uid/gid 65534 can stat ``path`` (checked in a child that becomes nobody)."""
    pid = os.fork()
    if pid == 0:
        code = 2
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                os.stat(path)
                code = 0
            except PermissionError:
                code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 1), f"the child as nobody failed ({code})"
    return code == 0


@pytest.fixture
def public_dir():
    """A directory every user may traverse (pytest's own temp dirs are 0700: nothing in them is
    reachable by another user whatever the store does, so the test would prove nothing)."""
    d = Path(tempfile.mkdtemp(prefix="capstone-store-private-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def modes(store_dir: Path) -> dict[str, int]:
    return {sub: stat.S_IMODE(os.stat(store_dir / sub).st_mode) for sub in ("", *PRIVATE_DIRS)}


def test_a_new_store_is_private(public_dir):
    Store.open(public_dir / "store")
    assert set(modes(public_dir / "store").values()) == {0o700}


def test_a_directory_with_other_files_keeps_its_mode_and_the_store_dirs_are_private(public_dir):
    (public_dir / "notes.txt").write_text("mine\n")
    Store.open(public_dir)
    assert stat.S_IMODE(os.stat(public_dir).st_mode) == 0o755
    assert {k: v for k, v in modes(public_dir).items() if k} == {sub: 0o700 for sub in PRIVATE_DIRS}


def test_setuid_programs_in_snapshots_are_out_of_other_users_reach(public_dir, tmp_path):
    store_dir = public_dir / "store"
    store = Store.open(store_dir)
    store.load("capstone/busybox")
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox
RUN cp /bin/busybox /suid-shell && chmod 4755 /suid-shell
""")
    with open(os.devnull, "wb") as devnull:
        result = build(store, ctx, tags=["suid"], network="none", run_output=devnull)
    run_layer = [s for s in result.steps if s.kind == "RUN"][0]
    suid = store.snapshots_dir / run_layer.diff_id.split(":", 1)[1] / "suid-shell"
    st = os.stat(suid)
    assert st.st_uid == 0 and st.st_mode & stat.S_ISUID, "the snapshot holds the setuid-root program"
    assert reachable_by_nobody(public_dir), "the test's own control: nobody can reach the store's parent"
    assert not reachable_by_nobody(suid)

    # a store made before the rule (0755 everywhere): nobody reaches the program ...
    for sub in ("", *PRIVATE_DIRS):
        os.chmod(store_dir / sub, 0o755)
    assert reachable_by_nobody(suid)
    # ... until the store is opened again
    Store.open(store_dir)
    assert set(modes(store_dir).values()) == {0o700}
    assert not reachable_by_nobody(suid)
