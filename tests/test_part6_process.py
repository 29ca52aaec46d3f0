"""Part 6: the runtime as a process: a terminal driven through a pty, signals, ``--init`` with
orphans, and nothing left behind (cgroups, temp dirs, mount points, processes, mounts) when a
setup step fails."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from support import Terminal, descendants, mount_points_under, use_own_tempdir

from part5_namespaces import IdMap
from part6_runtime import ContainerSpec, Limits, Mount, RuntimeSetupError, make_busybox_rootfs, run
from part6_runtime.cgroups import CGROUP_ROOT

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "part6_runtime", "run"]


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory) -> Path:
    return make_busybox_rootfs(tmp_path_factory.mktemp("part6-process") / "rootfs")


def test_interactive_shell_on_a_terminal_gets_input_and_its_exit_code(rootfs):
    term = Terminal([*CLI, str(rootfs), "--", "sh"])
    assert b"# " in term.read_until(b"# ")  # the prompt of an interactive shell on a tty
    term.type(b"tty; echo hi; exit 3\r")
    code = term.wait()
    out = term.seen.decode(errors="replace")
    assert code == 3, out
    assert "\r\nhi\r\n" in out and "/dev/pts/0\r\n" in out


def test_ctrl_c_on_the_terminal_interrupts_the_foreground_command(rootfs):
    term = Terminal([*CLI, str(rootfs), "--", "sh"])
    term.read_until(b"# ")
    term.type(b"sleep 30; echo not-interrupted\r")
    time.sleep(0.3)
    term.type(b"\x03")  # ^C: the container's terminal sends SIGINT to its foreground group
    after = term.read_until(b"# ", timeout=10)
    term.type(b"echo still-here; exit 4\r")
    code = term.wait()
    assert b"^C" in after and b"\r\nnot-interrupted" not in term.seen, term.seen
    assert code == 4 and b"still-here" in term.seen


# -- signals to the runtime --------------------------------------------------------------------


def _cli_with_signal(args: list[str], sig: int) -> tuple[int, str]:
    """Start the CLI (no terminal), wait for "ready" from the container, send ``sig``."""
    p = subprocess.Popen([*CLI, *args], cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        first = p.stdout.readline()
        assert first == b"ready\n", first + p.stdout.read()
        p.send_signal(sig)
        rest = p.stdout.read()
        return p.wait(timeout=20), (first + rest).decode()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_sigint_to_the_runtime_reaches_the_command(rootfs):
    script = "trap 'echo got INT; exit 42' INT; echo ready; sleep 30 & wait"
    code, out = _cli_with_signal([str(rootfs), "--", "sh", "-c", script], signal.SIGINT)
    assert code == 42 and "got INT" in out, out


def test_sigint_with_init_ends_a_command_that_does_not_handle_it(rootfs):
    # as PID 1, sh would ignore SIGINT (the kernel drops signals PID 1 has no handler for);
    # behind --init the command is PID 2 and the signal's default action applies
    code, out = _cli_with_signal(["--init", str(rootfs), "--", "sh", "-c", "echo ready; exec sleep 30"], signal.SIGINT)
    assert code == 128 + signal.SIGINT, out


# -- --init and orphans ------------------------------------------------------------------------

#: xargs waits only for the children it started: as PID 1 it leaves orphans as zombies
ORPHANS = (
    "printf '(sleep 0 &); (sleep 0 &)\\0sleep 0.3; ps -o pid,ppid,stat,comm\\0' > /tmp/steps; "
    "exec xargs -0 -n1 sh -c < /tmp/steps"
)


def _ps(rootfs: Path, init: bool) -> list[list[str]]:
    with tempfile.TemporaryFile("w+") as out, open(os.devnull) as null:
        code = run(ContainerSpec(rootfs=str(rootfs), args=("sh", "-c", ORPHANS), init=init), stdin=null, stdout=out, stderr=out)
        out.seek(0)
        text = out.read()
    assert code == 0, text
    return [line.split() for line in text.splitlines()[1:]]


def test_without_init_orphans_stay_zombies_under_a_pid_1_that_does_not_reap(rootfs):
    rows = _ps(rootfs, init=False)
    assert rows[0][0] == "1" and rows[0][3] == "xargs"
    zombies = [r for r in rows if r[2].startswith("Z")]
    assert len(zombies) == 2 and all(r[1] == "1" for r in zombies), rows


def test_init_reaps_orphans_and_runs_the_command_as_pid_2(rootfs):
    rows = _ps(rootfs, init=True)
    assert rows[0][:2] == ["1", "0"] and rows[1][:2] == ["2", "1"] and rows[1][3] == "xargs", rows
    assert not [r for r in rows if r[2].startswith("Z")], rows


# -- nothing left behind when a step fails -------------------------------------------------------


def _host_state(rootfs: Path, tmp: Path) -> dict:
    """What the runtime could leave behind, each limited to what is this test's own: its temp
    directory, its cgroups (named after this process), mounts under its directories, its
    descendants (slirp4netns among them) and descriptors. Other work on the host changes the
    rest at any time."""
    return {
        "temp dirs": sorted(p.name for p in tmp.iterdir()),
        "cgroups": sorted(str(p) for c in ("memory", "pids", "cpu") for p in (CGROUP_ROOT / c).rglob(f"part6-{os.getpid()}-*") if p.is_dir()),
        "mounts": mount_points_under(rootfs, tmp),
        "processes": descendants(),
        "fds": sorted(os.listdir("/proc/self/fd")),
        "rootfs": sorted(str(p.relative_to(rootfs)) for p in rootfs.rglob("*")),
    }


FAILURES = [
    # (step that fails, spec changes): each with cgroup limits, a private network and a mount
    # point the image lacks, so every kind of host resource exists when the step fails
    ("mounts", dict(mounts=(Mount("/new/dir", "tmpfs", None, ("size=lots",)),))),
    ("working directory", dict(cwd="/etc/passwd/sub")),
    ("exec", dict(args=("no-such-command",), init=True)),
    ("namespaces", dict(uid_maps=(IdMap(0, 4294967000, 65536),), gid_maps=(IdMap(0, 4294967000, 65536),))),
]


@pytest.mark.parametrize("step,changes", FAILURES, ids=[f[0] for f in FAILURES])
def test_a_failed_step_is_named_and_leaves_nothing_behind(rootfs, step, changes, tmp_path, monkeypatch):
    tmp = use_own_tempdir(monkeypatch, tmp_path / "tmp")
    before = _host_state(rootfs, tmp)
    spec = dict(
        rootfs=str(rootfs), args=("true",), limits=Limits(memory=64 << 20, pids=20, cpus=0.5), network="private",
        mounts=(Mount("/data/in", "bind", str(rootfs / "etc"), ("ro",)),),
    )
    spec.update(changes)
    if "mounts" in changes:
        spec["mounts"] = (Mount("/data/in", "bind", str(rootfs / "etc"), ("ro",)),) + changes["mounts"]
    with open(os.devnull) as null, pytest.raises(RuntimeSetupError) as info:
        run(ContainerSpec(**spec), stdin=null)
    assert info.value.step == step, info.value
    assert str(info.value).startswith(f"setup step {step!r} failed: ")
    assert _host_state(rootfs, tmp) == before
