"""Files read from an image (``/etc/passwd``, ``/etc/group``) go through part 6's one reader:
a FIFO, a device or a directory is refused (never opened for a blocking read), a file past the
size limit too, each with one line. Built for real: the hostile images come from the
Dockerfiles in ``tests/fixtures/hostile/``."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support import quiet_build

from capstone.errors import DockerfileError
from capstone.runner import run_image
from capstone.store import Store
from part6_runtime import MAX_DB_BYTES, SpecError, read_image_file

REPO = Path(__file__).resolve().parent.parent
HOSTILE = REPO / "tests" / "fixtures" / "hostile"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="RUN steps need root (namespaces, overlay mounts)")


@pytest.fixture(scope="module")
def fifo_image(store, tmp_path_factory) -> str:
    ctx = tmp_path_factory.mktemp("fifo")
    shutil.copy(HOSTILE / "Dockerfile.passwd-fifo", ctx / "Dockerfile")
    quiet_build(store, ctx, tags=["hostile:fifo"])
    return "hostile:fifo"


def child_build(store: Store, ctx: Path) -> subprocess.CompletedProcess:
    """The CLI in a child with a deadline: a hang fails the test instead of stopping the suite."""
    return subprocess.run([sys.executable, "-m", "capstone", "--store", str(store.path), "build", "-q",
                           "--network", "none", str(ctx)], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def test_the_reader_refuses_what_is_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    os.symlink("/etc/hostname", tmp_path / "link")
    (tmp_path / "ok").write_bytes(b"root:x:0:0::/root:/bin/sh\n")
    assert read_image_file(tmp_path / "ok", "/etc/passwd") == b"root:x:0:0::/root:/bin/sh\n"
    assert read_image_file(tmp_path / "missing", "/etc/passwd") is None
    for name, message in (("fifo", "not a regular file"), ("dir", "not a regular file"),
                          ("link", "cannot be read"), ):
        with pytest.raises(SpecError, match=f"^/etc/passwd: {message}"):
            read_image_file(tmp_path / name, "/etc/passwd")
    with pytest.raises(SpecError, match="/dev/zero: not a regular file"):
        read_image_file("/dev/zero", "/dev/zero")
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(SpecError, match="101 bytes, larger than the 100 bytes"):
        read_image_file(tmp_path / "big", "/etc/passwd", limit=100)


def test_the_image_really_has_fifos(store, fifo_image, tmp_path):
    image = store.load(fifo_image)
    top = store.lowers(image)[0]
    assert stat.S_ISFIFO(os.lstat(top / "etc/passwd").st_mode)


def test_user_name_over_a_fifo_passwd_fails_in_one_line(store, fifo_image, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {fifo_image}\nUSER nobody\nRUN id\n")
    r = child_build(store, ctx)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == ["Dockerfile:3: RUN: /etc/passwd: not a regular file"], r.stderr


def test_chown_name_over_a_fifo_passwd_fails_in_one_line(store, fifo_image, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f").write_text("f")
    (ctx / "Dockerfile").write_text(f"FROM {fifo_image}\nCOPY --chown=nobody f /f\n")
    with pytest.raises(DockerfileError, match="/etc/passwd: not a regular file") as info:
        quiet_build(store, ctx)
    assert info.value.line == 2


def test_run_user_over_a_fifo_passwd_fails_in_one_line(store, fifo_image):
    with pytest.raises(Exception, match="/etc/passwd: not a regular file"):
        run_image(store, fifo_image, command=["id"], user="nobody", network="none")


def test_numeric_user_still_runs_without_the_files(store, fifo_image, tmp_path):
    """A uid needs no lookup by name; a FIFO is refused even then, since runc reads the files
    for the home directory and groups: the same one-line error, never a hang."""
    with pytest.raises(Exception, match="/etc/passwd: not a regular file"):
        run_image(store, fifo_image, command=["id"], user="1000", network="none")


def test_a_huge_passwd_is_refused(store, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    shutil.copy(HOSTILE / "Dockerfile.passwd-huge", ctx / "Dockerfile")
    quiet_build(store, ctx, tags=["hostile:huge"])
    ctx2 = tmp_path / "ctx2"
    ctx2.mkdir()
    (ctx2 / "f").write_text("f")
    (ctx2 / "Dockerfile").write_text("FROM hostile:huge\nCOPY --chown=nobody f /f\n")
    with pytest.raises(DockerfileError, match=f"/etc/passwd: \\d+ bytes, larger than the {MAX_DB_BYTES} bytes"):
        quiet_build(store, ctx2)


def test_the_hostile_chown_is_one_line_from_the_cli(store, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    shutil.copy(HOSTILE / "Dockerfile.chown-out-of-range", ctx / "Dockerfile")
    (ctx / "f").write_text("f")
    r = child_build(store, ctx)
    assert r.returncode == 1
    assert r.stderr.splitlines() == ["Dockerfile:4: invalid --chown=99999999999999999999: "
                                     "uid 99999999999999999999 is out of range (0 to 4294967294)"], r.stderr


@pytest.mark.parametrize(("spec", "message"), [
    ("99999999999999999999", "uid 99999999999999999999 is out of range (0 to 4294967294)"),
    ("1:4294967295", "gid 4294967295 is out of range"),
    ("4294967294:4294967294", None),
])
def test_chown_ids_are_checked_against_the_kernel_range(store, tmp_path, spec, message):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f").write_text("f")
    (ctx / "Dockerfile").write_text(f"FROM scratch\nCOPY --chown={spec} f /f\n")
    if message is None:
        quiet_build(store, ctx)
        return
    with pytest.raises(DockerfileError, match=re.escape(message)) as info:
        quiet_build(store, ctx)
    assert info.value.line == 2
