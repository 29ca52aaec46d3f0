"""Nothing left behind: a build killed with SIGKILL (or SIGTERM) at any point leaves no mount, no
process and no scratch directory that the next build's start-up or ``prune`` does not remove,
and the store as it was.

Each test starts ``capstone build`` (or ``capstone run``) in a child process, waits until it is
at a chosen point (inside a RUN step, a RUN with a ``--mount`` overlay, a COPY, an ADD download,
a container's command), kills it, and
then looks only at its own things: the mounts under its own temp dir (``/proc/self/mountinfo``),
the processes whose command line carries its own marker, and its own store.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile_http import HostileServer
from support import Terminal, make_context

from capstone.store import Store, mounts_under
from part2_manual_oci import validate_layout

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="RUN steps need root (namespaces, overlay mounts)")


def start_build(store: Path, ctx: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "capstone", "--store", str(store), "build", "-q", "--network",
                             "none", *extra, str(ctx)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})


def wait_for(condition, what: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the build ended ({proc.returncode}) before {what}: {proc.stderr.read().decode()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def command_lines() -> dict[int, list[bytes]]:
    """Every process's arguments (those that end meanwhile left out)."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    found[int(entry)] = f.read().split(b"\0")[:-1]
            except OSError:
                pass
    return found


def processes_with(marker: str) -> list[int]:
    """Pids whose command line, its arguments joined by spaces, holds ``marker`` (this test's
    own, unique): ``sh -c '... exec sleep N'`` before the exec, and ``sleep N`` after it."""
    return [pid for pid, argv in command_lines().items() if marker.encode() in b" ".join(argv)]


def sleeping(seconds: str) -> list[int]:
    """Pids of exactly ``sleep SECONDS``: a container's command, not the command line that
    asked for it."""
    return [pid for pid, argv in command_lines().items() if argv == [b"sleep", seconds.encode()]]


def wait_gone(marker: str, timeout: float = 20) -> list[int]:
    deadline = time.monotonic() + timeout
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return processes_with(marker)


def scratch_entries(store: Path) -> list[str]:
    return sorted(p.name for p in (store / "tmp").iterdir()) if (store / "tmp").exists() else []


def check_store(store_dir: Path, tagged: list[str]) -> None:
    store = Store.open(store_dir)
    validate_layout(store.path / "oci")
    for name in tagged:
        assert store.resolve(name) is not None, name
    assert scratch_entries(store_dir) == []
    for sub in ("snapshots", "oci/blobs/sha256", "cache"):
        assert not [p for p in (store_dir / sub).iterdir() if p.name.startswith(".tmp")], sub


@pytest.fixture
def store_dir(tmp_path) -> Path:
    s = Store.open(tmp_path / "store")
    s.load("capstone/busybox")
    return s.path


def context(tmp_path: Path, dockerfile: str, files: dict[str, bytes] | None = None) -> Path:
    """A build context of its own below ``tmp_path`` (a test and its clean-up make several)."""
    return make_context(tmp_path / f"ctx-{secrets.token_hex(3)}", dockerfile, files)


def run_marker() -> tuple[str, str]:
    seconds = str(900000 + secrets.randbelow(99999))
    return seconds, f"sleep {seconds}"


def started(store_dir: Path) -> bool:
    base = store_dir / "build-cache-mounts"
    return base.exists() and any(p.name == "started" for p in base.rglob("started"))


def then_clean(store_dir: Path, tmp_path: Path, how: str, tagged: list[str]) -> None:
    """After the kill: the next build's start-up (``how="build"``) or ``prune`` removes what is
    left; then nothing of ours is mounted and the store is whole."""
    if how == "build":
        ctx = context(tmp_path, "FROM scratch\nLABEL after=kill\n")
        r = subprocess.run([sys.executable, "-m", "capstone", "--store", str(store_dir), "build", "-q", str(ctx)],
                           cwd=REPO, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
    else:
        r = subprocess.run([sys.executable, "-m", "capstone", "--store", str(store_dir), "prune"], cwd=REPO,
                           capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    assert mounts_under(tmp_path) == []
    check_store(store_dir, tagged)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
@pytest.mark.parametrize("how", ["build", "prune"])
def test_killed_inside_a_run_step(store_dir, tmp_path, sig, how):
    seconds, marker = run_marker()
    ctx = context(tmp_path, "FROM capstone/busybox\nRUN --mount=type=cache,target=/c "
                            f"sh -c 'touch /c/started; exec sleep {seconds}'\n")
    proc = start_build(store_dir, ctx)
    wait_for(lambda: started(store_dir), "the RUN step", proc)
    assert mounts_under(tmp_path) == []  # the step's overlay is in its own mount namespace
    proc.send_signal(sig)
    proc.wait(30)
    assert wait_gone(marker) == [], "the RUN step's command outlived the build"
    assert mounts_under(tmp_path) == []
    then_clean(store_dir, tmp_path, how, ["capstone/busybox"])


@pytest.mark.parametrize("how", ["build", "prune"])
def test_killed_inside_a_run_step_with_a_mount_overlay(store_dir, tmp_path, how):
    """``RUN --mount=type=bind,from=STAGE`` of a stage of two layers mounts an overlay in the
    build's namespace: a SIGKILL leaves it, and the next build or prune detaches it."""
    seconds, marker = run_marker()
    ctx = context(tmp_path, "FROM capstone/busybox AS two\nRUN echo layer > /layer\n"
                            "FROM capstone/busybox\nRUN --mount=type=cache,target=/c --mount=type=bind,from=two,target=/two "
                            f"sh -c 'touch /c/started; exec sleep {seconds}'\n")
    proc = start_build(store_dir, ctx)
    wait_for(lambda: started(store_dir), "the RUN step", proc)
    proc.kill()
    proc.wait(30)
    assert wait_gone(marker) == []
    left = mounts_under(tmp_path)
    assert left and all(str(p).startswith(str(store_dir / "tmp")) for p in left)
    then_clean(store_dir, tmp_path, how, ["capstone/busybox"])


def test_killed_inside_a_copy(store_dir, tmp_path):
    big = os.urandom(1 << 20) * 96  # 96 MiB that compress badly: the layer takes a while
    ctx = context(tmp_path, "FROM capstone/busybox\nCOPY big /big\n", {"big": big})
    proc = start_build(store_dir, ctx)
    # in the COPY, past the base's snapshot (made once per store: a kill while it is extracted
    # leaves a temp dir in snapshots/ that the sweep removes only when an hour old)
    wait_for(lambda: any(p.name.endswith("-copy") for p in (store_dir / "tmp").glob("build-*/*"))
             and any(not p.name.startswith(".") for p in (store_dir / "snapshots").iterdir()), "the COPY", proc)
    time.sleep(0.2)
    proc.kill()
    proc.wait(30)
    assert scratch_entries(store_dir)  # what it left, until the next build
    then_clean(store_dir, tmp_path, "build", ["capstone/busybox"])


def test_killed_inside_a_download(store_dir, tmp_path):
    with HostileServer({"/f": "trickle"}) as server:
        ctx = context(tmp_path, f"FROM scratch\nADD {server.url}/f /f\n")
        proc = start_build(store_dir, ctx)
        wait_for(lambda: any((store_dir / "tmp").glob("build-*/*-copy/downloads/0/f")), "the download", proc)
        proc.kill()
        proc.wait(30)
    then_clean(store_dir, tmp_path, "prune", ["capstone/busybox"])


def test_a_live_build_is_not_swept(store_dir, tmp_path):
    """The sweep takes only dead builds' directories: one build running while another starts
    keeps its scratch directory and finishes."""
    seconds, marker = run_marker()
    ctx = context(tmp_path, "FROM capstone/busybox\nRUN --mount=type=cache,target=/c "
                            f"sh -c 'touch /c/started; sleep 1; echo {seconds} > /done'\n")
    proc = start_build(store_dir, ctx, "-t", "live:1")
    wait_for(lambda: started(store_dir), "the RUN step", proc)
    other = context(tmp_path, "FROM scratch\nLABEL other=build\n")
    r = subprocess.run([sys.executable, "-m", "capstone", "--store", str(store_dir), "build", "-q", str(other)],
                       cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    assert proc.wait(60) == 0, proc.stderr.read().decode()
    check_store(store_dir, ["capstone/busybox", "live:1"])


def test_a_killed_run_leaves_no_mount_no_command_and_prune_removes_its_container(store_dir, tmp_path):
    """``capstone run`` mounts its overlay in a helper's namespace too: killed with SIGKILL
    while its command runs, it leaves no mount and no command (the helper had passed SIGTERM on
    to PID 1, which ignores it: ``sleep`` ran on, reparented to init); the container directory
    it leased is prune's. (A SIGTERM to a live ``capstone run`` stops the container, as
    ``docker stop``: the tests below.)"""
    seconds, marker = run_marker()
    proc = subprocess.Popen([sys.executable, "-m", "capstone", "--store", str(store_dir), "run", "--network", "none",
                             "capstone/busybox", "sleep", seconds], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    wait_for(lambda: sleeping(seconds), "the container's command", proc)
    assert mounts_under(tmp_path) == []
    assert len(list((store_dir / "containers").iterdir())) == 1
    proc.kill()
    proc.wait(30)
    assert wait_gone(marker) == [], "the container's command outlived the run"
    assert mounts_under(tmp_path) == []
    then_clean(store_dir, tmp_path, "prune", ["capstone/busybox"])
    assert list((store_dir / "containers").iterdir()) == []


def test_a_killed_extraction_leaves_a_snapshot_temp_dir_the_next_sweep_takes(store_dir):
    """A snapshot is extracted into a leased temp dir of ``snapshots/``: while its process lives
    a sweep leaves it; once the process is killed, the next sweep removes it at once (not an hour
    later), and an unleased temp dir of another tool is left to the age rule."""
    store = Store.open(store_dir)
    snapshots = store.snapshots_dir
    snapshots.mkdir(parents=True, exist_ok=True)
    leased = snapshots / ".tmp-0123456789ab-dead"
    (leased / "fs").mkdir(parents=True)
    (leased / ".lease").touch()
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                               "fd = os.open(sys.argv[1], os.O_RDWR)\nfcntl.flock(fd, fcntl.LOCK_EX)\n"
                               "print('locked', flush=True)\ntime.sleep(600)\n", str(leased / ".lease")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        unleased = snapshots / ".tmp-fedcba987654-other"
        unleased.mkdir()
        assert store.sweep() == []
        assert leased.is_dir() and unleased.is_dir()
    finally:
        holder.kill()
        holder.wait(30)
    assert store.sweep() == [leased]
    assert not leased.exists() and unleased.is_dir()


def start_run(store_dir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "capstone", "--store", str(store_dir), "run", "--rm", "--network",
                             "none", *args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_run_whose_pid1_ignores_sigterm_is_killed_after_the_stop_timeout(store_dir, tmp_path, sig):
    """PID 1 ignores TERM and INT: ``capstone run`` stopped (SIGTERM, or ^C's SIGINT) sends
    the stop signal, then SIGKILL once ``--stop-timeout`` has passed, as ``docker stop``; it
    exits 137 and leaves no process, no mount and no container behind."""
    seconds, marker = run_marker()
    proc = start_run(store_dir, "--stop-timeout", "2", "capstone/busybox", "sh", "-c",
                     f"trap '' TERM INT; sleep {seconds} & wait; wait")
    wait_for(lambda: sleeping(seconds), "the container's command", proc)
    t0 = time.monotonic()
    proc.send_signal(sig)
    code = proc.wait(60)
    waited = time.monotonic() - t0
    assert code == 137, proc.stderr.read().decode()
    assert waited >= 1.5, f"SIGKILL came {waited:.1f} s after the stop, before the 2 s stop timeout"
    assert wait_gone(marker) == [], "the container's command outlived the run"
    assert mounts_under(tmp_path) == []
    assert list((store_dir / "containers").iterdir()) == []
    check_store(store_dir, ["capstone/busybox"])


def test_a_stopped_run_sends_the_images_stopsignal(store_dir, tmp_path):
    """The image says ``STOPSIGNAL SIGUSR1`` and its PID 1 ignores SIGTERM: a SIGTERM to
    ``capstone run`` reaches PID 1 as SIGUSR1, whose handler ends it (exit 3) long before the
    stop timeout."""
    ctx = context(tmp_path, "FROM capstone/busybox\nSTOPSIGNAL SIGUSR1\n")
    r = subprocess.run([sys.executable, "-m", "capstone", "--store", str(store_dir), "build", "-q", "-t", "stopsig:1",
                        str(ctx)], cwd=REPO, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    seconds, marker = run_marker()
    proc = start_run(store_dir, "--stop-timeout", "60", "stopsig:1", "sh", "-c",
                     f"trap '' TERM; trap 'exit 3' USR1; sleep {seconds} & wait; wait")
    wait_for(lambda: sleeping(seconds), "the container's command", proc)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 3, proc.stderr.read().decode()
    assert time.monotonic() - t0 < 30, "the stop signal did not end PID 1: the stop timeout did"
    assert wait_gone(marker) == [], "the container's command outlived the run"
    assert mounts_under(tmp_path) == []
    assert list((store_dir / "containers").iterdir()) == []


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_a_second_stop_request_kills_the_run_at_once(store_dir, tmp_path, how):
    """PID 1 ignores TERM and INT does nothing to it. The first ^C on the terminal (or SIGTERM)
    stops the container, which runs on through the 120 s stop timeout; the second kills it at
    once, as docker's second ^C does: 137, and no process, mount or container is left. One ^C
    is one stop request, though the terminal sends SIGINT to capstone and its helper alike, and
    it reaches no process of the container but PID 1 (PID 1's ``sleep`` would die of it)."""
    seconds, marker = run_marker()
    args = ["--stop-timeout", "120", "capstone/busybox", "sh", "-c",
            f"trap : INT; trap '' TERM; sleep {seconds}; echo the sleep ended"]
    if how == "ctrl-c":
        term = Terminal([sys.executable, "-m", "capstone", "--store", str(store_dir), "run", "--rm", "--network", "none",
                         *args], env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.monotonic() + 60
        while not sleeping(seconds) and time.monotonic() < deadline:
            term.read_until(b"\0", 0.05)
        stop, wait = (lambda: term.type(b"\x03")), term.wait
    else:
        proc = start_run(store_dir, *args)
        wait_for(lambda: sleeping(seconds), "the container's command", proc)
        stop, wait = (lambda: proc.send_signal(signal.SIGTERM)), proc.wait
    assert sleeping(seconds), "the container's command did not start"
    stop()
    time.sleep(1.5)
    assert sleeping(seconds), "one stop request killed the container: it has 120 s to stop"
    t0 = time.monotonic()
    stop()
    assert wait(60) == 137
    assert time.monotonic() - t0 < 30, "the second stop request waited for the stop timeout"
    assert wait_gone(marker) == [], "the container's command outlived the run"
    assert mounts_under(tmp_path) == []
    assert list((store_dir / "containers").iterdir()) == []
    check_store(store_dir, ["capstone/busybox"])


def test_ctrl_c_in_a_run_step_kills_it_at_once_and_the_store_is_as_it_was(store_dir, tmp_path):
    """^C on the terminal during a RUN whose command ignores INT and TERM: the step is killed
    at the first ^C, as BuildKit cancels one; a second one a moment later finds the build gone
    or cleaning up. Nothing is tagged, no process or mount is left, and what a cut clean-up
    left is the next build's sweep's: then the store is as it was."""
    seconds, marker = run_marker()
    ctx = context(tmp_path, "FROM capstone/busybox\nRUN --mount=type=cache,target=/c "
                            f"trap '' TERM INT; touch /c/started; sleep {seconds} & wait; wait\n")
    index = (store_dir / "oci/index.json").read_bytes()
    term = Terminal([sys.executable, "-m", "capstone", "--store", str(store_dir), "build", "--progress", "plain",
                     "--network", "none", "-t", "interrupted:1", str(ctx)], env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 60
    while not (started(store_dir) and sleeping(seconds)) and time.monotonic() < deadline:
        term.read_until(b"\0", 0.05)
    assert sleeping(seconds), term.seen.decode(errors="replace")
    t0 = time.monotonic()
    term.type(b"\x03")
    time.sleep(0.1)
    term.type(b"\x03")
    code = term.wait(60)
    shown = term.seen.decode(errors="replace")
    assert time.monotonic() - t0 < 20, "the build waited after ^C"
    assert code in (1, 130), shown
    if code == 1:  # the first ^C's end, BuildKit's: the step failed, killed
        assert "killed by signal 2" in shown and "Traceback" not in shown, shown
    assert wait_gone(marker) == [], "the RUN step's command outlived the build"
    assert mounts_under(tmp_path) == []
    assert (store_dir / "oci/index.json").read_bytes() == index
    then_clean(store_dir, tmp_path, "build", ["capstone/busybox"])
    assert Store.open(store_dir).resolve("interrupted:1") is None


def test_an_image_whose_stopsignal_is_no_signal_here_is_refused_in_one_line(store_dir, tmp_path):
    """BuildKit lets any non-zero number be a STOPSIGNAL; ``capstone run`` of such an image
    says so in one line before any container exists."""
    ctx = context(tmp_path, "FROM capstone/busybox\nSTOPSIGNAL 99999\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "capstone", "--store", str(store_dir), "build", "-q", "-t", "badsig:1",
                        str(ctx)], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "capstone", "--store", str(store_dir), "run", "--rm", "--network", "none",
                        "badsig:1", "true"], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 125
    assert r.stderr == "capstone: run badsig:1: the image's StopSignal '99999' is not a signal of this host\n"
    assert not (store_dir / "containers").exists() or list((store_dir / "containers").iterdir()) == []
