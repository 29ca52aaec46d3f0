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
from support import capstone, in_child, make_context, quiet_build

from capstone.errors import DockerfileError
from capstone.runner import run_image
from capstone.store import Store

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds need root (namespaces, overlay mounts)")

HOST_DISK = os.stat(Path(__file__)).st_dev


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
    quiet_build(store, ctx, tags=["contained"], secrets=["id=tok,env=SECRET_SOURCE"])
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
    quiet_build(store, ctx, tags=["contained"])
    seen = cat(store, tmp_path, "/probe")
    assert "READ" not in seen
    # the device cgroup refuses making a block-device node anywhere (nodev on the root
    # filesystem, checked with a character device in test_part6_containment, is the second wall)
    assert "mknod: /tmp/disk: Operation not permitted" in seen, seen
    assert "mknod: /dev/disk: Operation not permitted" in seen, seen


def test_capstone_run_cannot_read_the_hosts_disk(store, tmp_path):
    out = tmp_path / "out"

    def body():
        with open(out, "wb") as f:
            return run_image(store, "capstone/busybox", command=["sh", "-c", _disk_probe()], network="none", stdout=f, stderr=f)

    assert in_child(body) == 0
    seen = out.read_text()
    assert "READ" not in seen, seen
    assert "mknod: /tmp/disk: Operation not permitted" in seen and "mknod: /dev/disk: Operation not permitted" in seen, seen


def test_a_disk_node_an_archive_brings_is_inert_in_a_step_and_a_run(store, tmp_path):
    """An image may hold device nodes (Docker keeps them, and ADD unpacks them): a node of the
    host's disk, mode 0666, in the layer and the snapshot the step runs on. The step and a
    container of the image cannot open it: the root filesystem is ``nodev`` and the device
    cgroup lists no disk."""
    import io
    import tarfile

    major, minor = os.major(HOST_DISK), os.minor(HOST_DISK)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as t:
        for name, kind in (("disk", tarfile.BLKTYPE), ("mem", tarfile.CHRTYPE)):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode = kind, 0o666
            ti.devmajor, ti.devminor = (major, minor) if kind == tarfile.BLKTYPE else (1, 1)
            t.addfile(ti)
    # only ever read: a write that got through would damage this machine
    probe = "for n in /dev-from-image/disk /dev-from-image/mem; do head -c 512 $n > /dev/null && echo READ $n; done; true"
    ctx = make_context(tmp_path / "ctx", f"FROM capstone/busybox\nADD nodes.tar /dev-from-image/\nRUN ({probe}) > /probe 2>&1\n",
                       {"nodes.tar": archive.getvalue()})
    quiet_build(store, ctx, tags=["contained"])
    seen = cat(store, tmp_path, "/probe")
    assert "READ" not in seen and seen.count("Permission denied") == 2, seen
    out = tmp_path / "run-out"

    def body():
        with open(out, "wb") as f:
            return run_image(store, "contained", command=["sh", "-c", probe], network="none", stdout=f, stderr=f)

    assert in_child(body) == 0
    seen = out.read_text()
    assert "READ" not in seen and seen.count("Permission denied") == 2, seen


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
        quiet_build(store, ctx, tags=["contained"])
    quiet_build(store, ctx, tags=["contained"], allow=["security.insecure"])
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
        quiet_build(store, ctx, tags=["contained"])
    ctx = make_context(tmp_path / "ctx2", 'FROM capstone/busybox\nRUN ["/etc/passwd"]\n')
    with pytest.raises(DockerfileError, match=r'returned 126: '):
        quiet_build(store, ctx, tags=["contained"])
    ctx = make_context(tmp_path / "ctx3", "FROM capstone/busybox\nRUN nosuch\n")  # the shell says 127
    with pytest.raises(DockerfileError, match=r'process "/bin/sh -c nosuch" returned 127'):
        quiet_build(store, ctx, tags=["contained"])


# -- RUN --mount=type=bind of the context --------------------------------------------------------

IGNORED_CONTEXT = {
    ".dockerignore": "secret.txt\nbuild\n*.log\n!keep.log\ndocs\n!docs/public\n",
    "app.txt": "app\n",
    "secret.txt": "SECRET-IN-CONTEXT\n",
    "build/out.bin": "artifact\n",
    "trace.log": "log\n",
    "keep.log": "kept\n",
    "docs/public/index.html": "public\n",
    "docs/internal/plan.txt": "internal\n",
    "sub/deep/secret.txt": "nested, not excluded by a root pattern\n",
}


@pytest.mark.parametrize("mode", ["ro", "rw"])
def test_a_context_bind_shows_only_what_dockerignore_keeps(store, tmp_path, mode):
    ctx = make_context(tmp_path / "ctx", f"""\
FROM capstone/busybox
RUN --mount=type=bind,source=.,target=/ctx{',rw' if mode == 'rw' else ''} \\
    (cd /ctx && find . | sort; cat secret.txt build/out.bin 2>&1; echo changed > app.txt; echo new > made.txt) > /probe 2>&1; true
""", IGNORED_CONTEXT)
    before = {p: p.read_bytes() for p in ctx.rglob("*") if p.is_file()}
    quiet_build(store, ctx, tags=["contained"])
    seen = cat(store, tmp_path, "/probe")
    listed = [line for line in seen.splitlines() if line.startswith(".")]
    assert listed == [".", "./.dockerignore", "./Dockerfile", "./app.txt", "./docs", "./docs/public", "./docs/public/index.html",
                      "./keep.log", "./sub", "./sub/deep", "./sub/deep/secret.txt"], seen
    assert "SECRET-IN-CONTEXT" not in seen and "artifact" not in seen
    assert "cat: can't open 'secret.txt': No such file or directory" in seen
    if mode == "ro":
        assert "Read-only file system" in seen
    # the context is as it was: nothing written through the bind, rw or not
    assert {p: p.read_bytes() for p in ctx.rglob("*") if p.is_file()} == before


def test_a_context_bind_cannot_leave_the_context(store, tmp_path):
    """``source=../..`` is the context's root, as BuildKit joins the source to "/"; the
    canary next to the context is not reachable, nor is an excluded file named directly."""
    (tmp_path / "canary.txt").write_text("OUTSIDE-THE-CONTEXT\n")
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox
RUN --mount=type=bind,source=../..,target=/up (ls /up; cat /up/canary.txt /up/../canary.txt) > /probe 2>&1; true
""", {"inside.txt": "in\n"})
    quiet_build(store, ctx, tags=["contained"])
    seen = cat(store, tmp_path, "/probe")
    assert "OUTSIDE-THE-CONTEXT" not in seen and "inside.txt" in seen, seen
    ctx2 = make_context(tmp_path / "ctx2", "FROM capstone/busybox\nRUN --mount=type=bind,source=secret.txt,target=/s cat /s\n",
                        IGNORED_CONTEXT)
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: .*source secret.txt not found in the build context"):
        quiet_build(store, ctx2, tags=["contained"])


def test_a_read_only_context_bind_is_read_only_below_its_top(store, tmp_path):
    """A file system mounted inside the context (by the CI, say) is in a bind of the context:
    read-only must hold there too, not only at the bind's top."""
    from part5_namespaces import mount

    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox
RUN --mount=type=bind,target=/c (cat /c/sub/canary; touch /c/sub/planted && echo WROTE; touch /c/top && echo WROTE) \\
    > /probe 2>&1; true
""", {"sub/hidden": "under the mount\n"})

    def body():  # in a mount namespace of its own: the submount is this test's only
        mount("containment-test", ctx / "sub", "tmpfs", 0, "size=64k")
        (ctx / "sub/canary").write_text("on the submount\n")
        quiet_build(store, ctx, tags=["contained"])
        return sorted(os.listdir(ctx / "sub")), (ctx / "sub/canary").read_text()

    assert in_child(body) == (["canary"], "on the submount\n")
    seen = cat(store, tmp_path, "/probe")
    assert "on the submount" in seen and "WROTE" not in seen and seen.count("Read-only file system") == 2, seen
    assert sorted(p.name for p in ctx.iterdir()) == ["Dockerfile", "sub"]


def test_an_excluded_file_does_not_change_the_cache_key_of_a_context_bind(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM capstone/busybox\nRUN --mount=type=bind,target=/ctx cat /ctx/app.txt > /seen\n",
                       IGNORED_CONTEXT)
    first = quiet_build(store, ctx, tags=["contained"])
    (ctx / "secret.txt").write_text("changed, but excluded\n")
    (ctx / "build/more.bin").write_text("more\n")
    second = quiet_build(store, ctx, tags=["contained"])
    assert second.ran == () and second.image_id == first.image_id
    (ctx / "app.txt").write_text("changed and kept\n")
    third = quiet_build(store, ctx, tags=["contained"])
    assert [s.kind for s in third.ran] == ["RUN"]
    assert cat(store, tmp_path, "/seen") == "changed and kept\n"


def test_a_rw_bind_of_a_stage_writes_nowhere(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox AS tools
RUN mkdir /t && echo tool > /t/x
FROM capstone/busybox
RUN --mount=type=bind,from=tools,source=/t,target=/t,rw echo changed > /t/x && echo new > /t/y && cat /t/x > /seen
RUN --mount=type=bind,from=tools,source=/t,target=/t (cat /t/x; ls /t) > /again
""")
    quiet_build(store, ctx, tags=["contained"])
    assert cat(store, tmp_path, "/seen", "/again") == "changed\ntool\nx\n"


def test_a_rw_bind_of_a_stages_node_copies_the_node_never_opens_it(store, tmp_path):
    """A ``rw`` bind of one file is a copy made by the builder, on the host: a device node or a
    FIFO a stage made must be made again as that node, never opened there (``c 1 1`` would be
    the host's memory, ``c 1 5`` an endless copy filling the disk, a FIFO a build blocked for
    ever). Run as a command with a time limit: a build that opens the FIFO fails instead of
    hanging the suite."""
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox AS evil
RUN mknod /null c 1 3 && mkfifo /fifo && chmod 0640 /fifo
FROM capstone/busybox
RUN --mount=type=bind,from=evil,source=null,target=/n,rw --mount=type=bind,from=evil,source=fifo,target=/f,rw \\
    (stat -c '%n %F %t,%T %a' /n /f; echo x > /n) > /probe 2>&1; true
""")
    r = capstone(store.path, "build", "-q", "--network", "none", "-t", "contained", str(ctx), timeout=120)
    assert r.returncode == 0, r.stderr
    seen = cat(store, tmp_path, "/probe")
    assert seen.splitlines()[:2] == ["/n character special file 1,3 644", "/f fifo 0,0 640"], seen
    # nodev on the step's mounts: the copied node is as inert as the stage's
    assert "Permission denied" in seen, seen


# -- every mount source resolved inside its own root ---------------------------------------------


def test_a_stage_symlink_cannot_mount_a_host_directory(store, tmp_path):
    """A stage makes LINK a symlink to a host path (absolute, and ../..-style); a later bind of
    ``from=stage,source=LINK`` resolves it inside the stage, never on the host."""
    canary = tmp_path / "host-secret"
    canary.mkdir()
    (canary / "token").write_text("HOST-CANARY\n")
    ctx = make_context(tmp_path / "ctx", f"""\
FROM capstone/busybox AS evil
RUN ln -s {canary} /abs && ln -s ../../../../../../../..{canary} /rel && mkdir -p /inside/x
FROM capstone/busybox
RUN --mount=type=bind,from=evil,source=abs,target=/a,rw (ls /a; cat /a/token; echo x > /a/planted) > /probe-a 2>&1; true
RUN --mount=type=bind,from=evil,source=rel,target=/r (ls /r; cat /r/token) > /probe-r 2>&1; true
""")
    with pytest.raises(DockerfileError, match=r"^Dockerfile:4: .*source abs not found in evil"):
        quiet_build(store, ctx, tags=["contained"])
    # the same links, pointing where the stage does have a directory: that one is mounted
    ctx2 = make_context(tmp_path / "ctx2", """\
FROM capstone/busybox AS evil
RUN mkdir -p /srv/data && echo stage > /srv/data/token && ln -s /srv/data /abs && ln -s ../../../../../srv/data /rel
FROM capstone/busybox
RUN --mount=type=bind,from=evil,source=abs,target=/a cat /a/token > /probe-a
RUN --mount=type=bind,from=evil,source=rel,target=/r cat /r/token > /probe-r
""")
    quiet_build(store, ctx2, tags=["contained"])
    assert cat(store, tmp_path, "/probe-a", "/probe-r") == "stage\nstage\n"
    assert sorted(p.name for p in canary.iterdir()) == ["token"]


def test_a_context_symlink_cannot_mount_a_host_directory(store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "token").write_text("HOST-CANARY\n")
    ctx = make_context(tmp_path / "ctx", "FROM capstone/busybox\n"
                       "RUN --mount=type=bind,source=up,target=/u,rw (ls /u; cat /u/outside/token; echo x > /u/planted) > /probe 2>&1; true\n",
                       {"inside.txt": "in\n"})
    (ctx / "up").symlink_to("..")  # the context's parent, as a path would see it
    quiet_build(store, ctx, tags=["contained"])
    seen = cat(store, tmp_path, "/probe")
    assert "HOST-CANARY" not in seen and "inside.txt" in seen, seen  # ".." from the root is the root
    assert sorted(p.name for p in outside.iterdir()) == ["token"] and not (tmp_path / "planted").exists()
    assert not (ctx / "planted").exists()


def test_a_cache_id_cannot_leave_the_cache_directory(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM capstone/busybox\n"
                       "RUN --mount=type=cache,id=../../../../escape,target=/c echo x > /c/planted\n")
    quiet_build(store, ctx, tags=["contained"])
    planted = [p for p in Path(store.path).rglob("planted")]
    assert len(planted) == 1 and planted[0].is_relative_to(Path(store.path) / "build-cache-mounts"), planted
    assert not list(tmp_path.glob("escape*")) and not list(Path(store.path).parent.glob("escape*"))


def test_a_mount_target_through_an_image_symlink_stays_in_the_image(store, tmp_path):
    canary = tmp_path / "host-dir"
    canary.mkdir()
    ctx = make_context(tmp_path / "ctx", f"""\
FROM capstone/busybox
RUN ln -s {canary} /data
RUN --mount=type=bind,source=f.txt,target=/data/f.txt --mount=type=tmpfs,target=/data/t cat /data/f.txt > /probe
""", {"f.txt": "from the context\n"})
    quiet_build(store, ctx, tags=["contained"])
    assert cat(store, tmp_path, "/probe") == "from the context\n"
    assert list(canary.iterdir()) == []


def test_a_secret_mounted_through_an_image_symlink_stays_in_the_container(store, tmp_path):
    """The image makes ``/run/secrets`` (and a custom target's parent) links to host
    directories: the secret is mounted inside the container and no file appears on the host."""
    canary = tmp_path / "host-dir"
    canary.mkdir()
    (tmp_path / "tok").write_text("SECRET-VALUE\n")
    ctx = make_context(tmp_path / "ctx", f"""\
FROM capstone/busybox
RUN mkdir -p /run && ln -s {canary} /run/secrets && ln -s {canary} /conf
RUN --mount=type=secret,id=tok --mount=type=secret,id=tok,target=/conf/tok.conf \\
    (cat /run/secrets/tok /conf/tok.conf; ls -l /run/secrets) > /probe
""")
    quiet_build(store, ctx, tags=["contained"], secrets=[f"id=tok,src={tmp_path / 'tok'}"])
    assert cat(store, tmp_path, "/probe").startswith("SECRET-VALUE\nSECRET-VALUE\n")
    assert list(canary.iterdir()) == []


def test_capstone_run_init_is_a_fresh_reaper_and_the_command_pid_2(store):
    r = capstone(store.path, "run", "--rm", "--init", "--network", "none", "capstone/busybox",
                 "sh", "-c", "echo $$; tr '\\0' ' ' < /proc/1/cmdline; echo; cat /proc/1/environ; true")
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and lines[0] == "2" and " -I -S -c " in lines[1], (r.stdout, r.stderr)
    assert "Permission denied" in r.stdout + r.stderr  # the reaper's environment is not readable
