"""Part 5: the blog's re-exec pattern, and why a multi-threaded process needs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from part5_namespaces.reexec import INSIDE_HOSTNAME, reexec_argv, run_reexec, self_exe, threads_and_unshare

REPO = Path(__file__).resolve().parent.parent


def test_the_child_reexecutes_itself_in_a_new_uts_namespace():
    host = socket.gethostname()
    code, output = run_reexec(["sh", "-c", "hostname; readlink /proc/self/ns/uts"])
    lines = output.splitlines()
    assert code == 0 and lines[0] == INSIDE_HOSTNAME
    assert lines[1] != os.readlink("/proc/self/ns/uts")
    assert socket.gethostname() == host


def test_the_reexecuted_program_is_this_interpreter():
    assert os.path.realpath(sys.executable) == self_exe()
    assert reexec_argv(["true"])[1:] == ["-m", "part5_namespaces", "reexec", "ns", "--", "true"]
    code, output = run_reexec(["sh", "-c", "exit 5"])
    assert code == 5


def test_unshare_user_refuses_a_process_with_two_threads():
    assert threads_and_unshare() == {1: "ok", 2: "Invalid argument (errno 22)"}


def test_the_chapter_runs_the_pattern():
    r = subprocess.run([sys.executable, "-m", "part5_namespaces", "reexec"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"     {INSIDE_HOSTNAME}\n" in r.stdout
    assert f"the host's hostname, unchanged: {socket.gethostname()}" in r.stdout
    assert "a process with 2 threads: unshare(CLONE_NEWUSER): Invalid argument (errno 22)" in r.stdout
    bad = subprocess.run([sys.executable, "-m", "part5_namespaces", "reexec", "ns", "--"], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode != 0 and "a command is needed after --" in bad.stderr
