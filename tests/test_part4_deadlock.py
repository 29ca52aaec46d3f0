"""Part 4: the pipe deadlock of a writer and a reader on one thread, and the writer thread."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from part4_tar.deadlock import one_thread, pipe_capacity, writer_thread

REPO = Path(__file__).resolve().parent.parent


def test_one_thread_blocks_once_the_pipe_is_full():
    result = one_thread(1 << 20, timeout=0.5)
    assert result["blocked"] is True
    assert result["written"] == result["read"] == pipe_capacity()
    assert 0.4 < result["seconds"] < 30


def test_a_small_write_fits_and_does_not_block():
    result = one_thread(1000, timeout=5)
    assert result == {**result, "blocked": False, "written": 1000, "read": 1000}


def test_a_writer_thread_moves_every_byte():
    result = writer_thread(3 << 20)
    assert result["read"] == 3 << 20
    assert result["sha256"] == "sha256:" + hashlib.sha256(b"\0" * (3 << 20)).hexdigest()


def test_the_chapter_shows_the_deadlock_safely():
    r = subprocess.run([sys.executable, "-m", "part4_tar", "pipe", "--timeout", "0.3"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"written before the write blocked: {pipe_capacity()} of 1048576 bytes" in r.stdout
    assert "blocked: yes (interrupted after 0.3 s)" in r.stdout
    assert "read and hashed: 1048576 bytes" in r.stdout
