"""Containment of RUN steps and ``capstone run``: hostile Dockerfiles against the host.

Each test is a Dockerfile (or a ``capstone run`` command) that tries to reach outside: the
builder's environment and secrets through PID 1, the host's disk through a device node, the
host's 127.0.0.1 through ``RUN --network=host``, the privileges of ``--security=insecure``.
Canaries outside the context and the store (an environment value, a secret, a server on the
host's loopback) show that nothing was read or changed.
"""

from __future__ import annotations

import http.server
import os
import threading
import uuid
from pathlib import Path

import pytest
from support import capstone, in_child, make_context

from capstone.engine import build
from capstone.errors import DockerfileError
from capstone.runner import run_image
from capstone.store import Store

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds need root (namespaces, overlay mounts)")

HOST_DISK = os.stat(Path(__file__)).st_dev


@pytest.fixture()
def store(tmp_path) -> Store:
    s = Store.open(tmp_path / "store")
    s.load("capstone/busybox")
    return s


def run_build(store, ctx: Path, **kw):
    with open(os.devnull, "wb") as devnull:
        return build(store, ctx, tags=["contained"], network="none", run_output=devnull, **kw)


def cat(store: Store, tmp_path: Path, *paths: str, image: str = "contained") -> str:
    """The files ``paths`` of an image, read by a container of it."""
    out = tmp_path / f"cat-{uuid.uuid4().hex[:8]}"

    def body():
        with open(out, "wb") as f:
            return run_image(store, image, command=["cat", *paths], network="none", stdout=f, stderr=f)

    in_child(body)
    return out.read_text(errors="replace")


# -- PID 1 ---------------------------------------------------------------------------------------


def test_a_run_steps_pid_1_shows_nothing_of_the_builder(store, tmp_path, monkeypatch):
    canary = f"CANARY-{uuid.uuid4().hex}"
    secret = f"SECRET-{uuid.uuid4().hex}"
    monkeypatch.setenv("BUILDER_CANARY", canary)  # the builder's own environment
    monkeypatch.setenv("SECRET_SOURCE", secret)  # a --secret id=tok,env=... the step never mounts
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox
ENV FROM_IMAGE=yes
RUN exec > /probe 2>&1; tr '\\0' '\\n' < /proc/1/environ; ls /proc/1/fd; \\
    tr '\\0' ' ' < /proc/1/cmdline; echo; grep -c SECRET- /proc/1/mem; true
""")
    run_build(store, ctx, secrets=["id=tok,env=SECRET_SOURCE"])
    seen = cat(store, tmp_path, "/probe")
    assert canary not in seen and secret not in seen, seen
    lines = seen.splitlines()
    # the image's environment and the step's, nothing else; descriptors 0-2 only
    assert lines[:3] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "FROM_IMAGE=yes", "HOME=/root"], seen
    assert lines[3:6] == ["0", "1", "2"] and lines[6].startswith("/bin/sh -c exec > /probe"), seen


def test_capstone_run_pid_1_shows_nothing_of_the_caller(store, tmp_path):
    canary = f"CANARY-{uuid.uuid4().hex}"
    env = {**os.environ, "RUN_CANARY": canary}
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "capstone", "--store", str(store.path), "run", "--rm", "--network", "none",
                        "capstone/busybox", "sh", "-c", "tr '\\0' '\\n' < /proc/1/environ; ls /proc/1/fd; true"],
                       cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert canary not in r.stdout
    lines = r.stdout.splitlines()
    assert lines[-3:] == ["0", "1", "2"] and lines[0].startswith("HOSTNAME="), r.stdout


# -- devices -------------------------------------------------------------------------------------


def _disk_probe() -> str:
    major, minor = os.major(HOST_DISK), os.minor(HOST_DISK)
    # only ever read: a write that got through would damage this machine
    return (f"mknod /tmp/disk b {major} {minor}; head -c 512 /tmp/disk > /dev/null && echo READ; "
            f"mknod /dev/disk b {major} {minor}; head -c 512 /dev/disk > /dev/null && echo READ; true")


def test_a_run_step_cannot_read_the_hosts_disk(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", f"FROM capstone/busybox\nRUN ({_disk_probe()}) > /probe 2>&1\n")
    run_build(store, ctx)
    seen = cat(store, tmp_path, "/probe")
    assert "READ" not in seen
    assert "head: /tmp/disk: Permission denied" in seen  # nodev on the root filesystem
    assert "head: /dev/disk: Operation not permitted" in seen  # the device cgroup


def test_capstone_run_cannot_read_the_hosts_disk(store, tmp_path):
    out = tmp_path / "out"

    def body():
        with open(out, "wb") as f:
            return run_image(store, "capstone/busybox", command=["sh", "-c", _disk_probe()], network="none", stdout=f, stderr=f)

    assert in_child(body) == 0
    seen = out.read_text()
    assert "READ" not in seen and "Permission denied" in seen and "Operation not permitted" in seen, seen


# -- entitlements --------------------------------------------------------------------------------


@pytest.fixture()
def host_server():
    """A server on the host's 127.0.0.1 that counts the requests it gets (the canary)."""
    hits: list[str] = []

    class Canary(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"host-only\n")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Canary)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()


def test_run_network_host_needs_the_entitlement(store, tmp_path, host_server):
    port, hits = host_server
    ctx = make_context(tmp_path / "ctx", f"FROM capstone/busybox\nRUN --network=host wget -qO /got http://127.0.0.1:{port}/x\n")
    r = capstone(store.path, "build", "--network", "none", "-t", "hostnet", str(ctx))
    assert r.returncode == 1 and hits == []
    assert r.stderr.strip().splitlines()[-1] == (
        "Dockerfile:2: network.host is not allowed: RUN --network=host needs `capstone build --allow network.host`")
    assert store.resolve("hostnet") is None


def test_an_allowed_network_host_is_never_silent(store, tmp_path, host_server):
    port, hits = host_server
    ctx = make_context(tmp_path / "ctx", f"FROM capstone/busybox\nRUN --network=host wget -qO /got http://127.0.0.1:{port}/x\n")
    r = capstone(store.path, "build", "--network", "none", "--allow", "network.host", "-t", "hostnet", str(ctx))
    assert r.returncode == 0, r.stderr
    assert hits == ["/x"]
    assert "Dockerfile:2: RUN --network=host: the host's network (allowed by --allow network.host) instead of --network none" in r.stderr


def test_run_security_insecure_needs_the_entitlement(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM capstone/busybox\nRUN --security=insecure grep CapEff /proc/self/status > /caps\n")
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: security.insecure is not allowed"):
        run_build(store, ctx)
    run_build(store, ctx, allow=["security.insecure"])
    caps = cat(store, tmp_path, "/caps")
    assert caps.split()[1] != "00000000a80425fb" and int(caps.split()[1], 16) > 0xA80425FB, caps


def test_an_unknown_entitlement_is_refused(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM capstone/busybox\n")
    r = capstone(store.path, "build", "--allow", "device", str(ctx))
    assert r.returncode == 2 and "invalid choice: 'device'" in r.stderr


# -- exit codes ----------------------------------------------------------------------------------


def test_capstone_run_exits_127_for_a_missing_command_and_126_for_a_non_executable_one(store):
    for command, expected in (("nosuch", 127), ("/etc/passwd", 126)):
        r = capstone(store.path, "run", "--rm", "--network", "none", "capstone/busybox", command)
        assert r.returncode == expected, (command, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("capstone: run: "), r.stderr


def test_a_run_step_that_cannot_exec_says_127_or_126(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", 'FROM capstone/busybox\nRUN ["nosuch", "arg"]\n')
    with pytest.raises(DockerfileError, match=r'^Dockerfile:2: RUN \["nosuch", "arg"\]: process "nosuch arg" returned 127: '):
        run_build(store, ctx)
    ctx = make_context(tmp_path / "ctx2", 'FROM capstone/busybox\nRUN ["/etc/passwd"]\n')
    with pytest.raises(DockerfileError, match=r'returned 126: '):
        run_build(store, ctx)
    ctx = make_context(tmp_path / "ctx3", "FROM capstone/busybox\nRUN nosuch\n")  # the shell says 127
    with pytest.raises(DockerfileError, match=r'process "/bin/sh -c nosuch" returned 127'):
        run_build(store, ctx)
