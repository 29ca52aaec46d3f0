"""The capstone chapter's registry lab (README, "Lab: a registry of your own"), run as written.

The set-up block (a self-signed certificate, an htpasswd user, ``docker-registry`` over TLS)
and every command of the console block run for real, in a directory of the test's own
(``HOME``, ``XDG_RUNTIME_DIR`` and the store too), with ``/tmp/reg`` and ``127.0.0.1:5000``
replaced by that directory and a free port. Each command must print what the page shows, up
to digests, image ids, sizes and times, and the order in which transfers that run side by side
end. ``python tests/test_capstone_registry_lab.py`` prints the session as it runs today, to
paste into the page.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from registry_server import free_port
from support import REPO

README = REPO / "capstone" / "README.md"
HEADING = "### Lab: a registry of your own\n"


def lab_blocks() -> tuple[str, list[tuple[str, list[str]]]]:
    """The set-up script and the console session [(command, lines shown)] of the lab."""
    section = README.read_text().split(HEADING, 1)[1]
    section = re.split(r"\n#{1,3} ", section, maxsplit=1)[0]
    setup = section.split("```bash\n", 1)[1].split("```", 1)[0]
    console = section.split("```console\n", 1)[1].split("```", 1)[0]
    session: list[tuple[str, list[str]]] = []
    for line in console.splitlines():
        if line.startswith("$ "):
            session.append((line[2:], []))
        else:
            session[-1][1].append(line)
    return setup, session


def normalized(lines: list[str]) -> list[str]:
    """``lines`` without what differs from run to run."""
    out = []
    for line in lines:
        line = re.sub(r"[0-9a-f]{64}", "<digest>", line)
        line = re.sub(r"\b[0-9a-f]{12}\b", "<id>", line)
        line = re.sub(r"\(\d+(\.\d+)? (B|KiB|MiB|GiB) in \d+\.\d s\)", "(<size> in <time>)", line)
        out.append(line)
    ordered: list[str] = []
    run: list[str] = []
    for line in [*out, None]:  # transfers that run side by side end in any order
        if line is not None and line.startswith("Copying "):
            run.append(line)
            continue
        ordered.extend(sorted(run))
        run = []
        if line is not None:
            ordered.append(line)
    return ordered


class Lab:
    """The lab's registry and environment under ``root``; ``run(command)`` -> its lines, as
    the page would show them."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "reg"
        self.host = f"127.0.0.1:{free_port()}"
        bin_dir = root / "bin"
        bin_dir.mkdir(parents=True)
        # `python` is this interpreter (a wrapper, not a symlink: a venv is found by its path)
        (bin_dir / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
        (bin_dir / "python").chmod(0o755)
        for d in ("home", "run"):
            (root / d).mkdir(mode=0o700)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("REGISTRY_AUTH_FILE", "DOCKER_", "CAPSTONE_", "CONTAINERS_", "XDG_"))}
        self.env = {**env, "HOME": str(root / "home"), "XDG_RUNTIME_DIR": str(root / "run"),
                    "CAPSTONE_STORE": str(root / "store"), "PYTHONPATH": str(REPO),
                    "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        self.pid: int | None = None

    def mine(self, text: str) -> str:
        return text.replace("/tmp/reg", str(self.dir)).replace("127.0.0.1:5000", self.host)

    def theirs(self, text: str) -> str:
        return text.replace(str(self.dir), "/tmp/reg").replace(self.host, "127.0.0.1:5000")

    def start(self, setup: str) -> None:
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", self.mine(setup)], cwd=REPO, env=self.env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        self.pid = int((self.dir / "registry.pid").read_text())
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"https://{self.host}/v2/", verify=False, timeout=1).status_code == 401:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (self.dir / "registry.log").read_text()
            time.sleep(0.1)

    def run(self, command: str) -> list[str]:
        r = subprocess.run(["bash", "-c", self.mine(command)], cwd=REPO, env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=600)
        return self.theirs(r.stdout).splitlines()

    def stop(self) -> None:
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while Path(f"/proc/{self.pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)


def test_the_registry_lab_prints_what_the_chapter_shows(tmp_path):
    setup, session = lab_blocks()
    lab = Lab(tmp_path)
    try:
        lab.start(setup)
        for command, shown in session:
            got = lab.run(command)
            assert normalized(got) == normalized(shown), f"$ {command}\n" + "\n".join(got)
    finally:
        lab.stop()


if __name__ == "__main__":  # print the session as it runs today
    import tempfile

    setup, session = lab_blocks()
    with tempfile.TemporaryDirectory() as tmp:
        lab = Lab(Path(tmp))
        try:
            lab.start(setup)
            for command, _ in session:
                print(f"$ {command}")
                for line in lab.run(command):
                    print(line)
        finally:
            lab.stop()
