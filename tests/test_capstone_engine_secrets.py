"""capstone.engine secrets and SSH forwarding: ``--secret``/``RUN --mount=type=secret`` and
``--ssh``/``RUN --mount=type=ssh``. A step sees the secret; the store (layers, configs,
snapshots, cache index) never holds its bytes; the mount points leave no trace in the layer."""

from __future__ import annotations

import gzip
import hashlib
import os
import secrets as pysecrets
import shutil
import socket
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from support import capstone, make_context, quiet_build

from capstone.engine import BuildError
from capstone.engine.secretmounts import SecretSource, parse_secret, parse_ssh
from capstone.errors import DockerfileError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds need root (namespaces, overlay mounts)")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def secret_value() -> bytes:
    return b"s3cr3t-" + pysecrets.token_hex(16).encode()


def assert_nowhere_in_store(store_dir: Path, value: bytes) -> int:
    """No file under the store (blobs decompressed, snapshots, cache index) holds ``value``."""
    scanned = 0
    for path in store_dir.rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        assert value not in data, f"secret found in {path}"
        scanned += 1
    return scanned


def layer_names(store, tag: str, last: int = 0) -> list[str]:
    """The entry names of the image's layers (only the ``last`` N layers when given)."""
    names = []
    for layer in store.load(tag).layers[-last:]:
        with layer.open() as f, tarfile.open(fileobj=f, mode="r|*") as tar:
            names += [m.name for m in tar]
    return names


def test_secret_file_is_read_by_run_and_never_stored(store, tmp_path):
    value = secret_value()
    (tmp_path / "tok.txt").write_bytes(value)
    ctx = make_context(tmp_path / "ctx", f"""\
FROM capstone/busybox
RUN --mount=type=secret,id=tok test "$(sha256sum < /run/secrets/tok | cut -d' ' -f1)" = {sha(value)} \\
    && test "$(stat -c '%a %u' /run/secrets/tok)" = "400 0" \\
    && ! sh -c 'echo overwritten > /run/secrets/tok' 2>/dev/null && echo ran > /ran
RUN --mount=type=secret,id=tok,target=/etc/tok.conf,mode=0440,uid=5,gid=6 \\
    test "$(stat -c '%a %u %g' /etc/tok.conf)" = "440 5 6" && cat /etc/tok.conf | wc -c > /size
""")
    result = quiet_build(store, ctx, tags=["secrettest"], secrets=[f"id=tok,src={tmp_path / 'tok.txt'}"])
    assert [s.cached for s in result.ran] == [False, False]
    names = layer_names(store, "secrettest", last=2)
    assert sorted(names) == ["ran", "size"]  # the RUN layers: no mount point, no /run, no /etc
    assert not any("secrets" in n or "tok.conf" in n for n in layer_names(store, "secrettest"))
    assert assert_nowhere_in_store(Path(store.path), value) > 5
    cfg = store.load("secrettest").config.to_json()
    assert value.decode() not in str(cfg)


def test_secret_with_the_wrong_value_fails_the_step(store, tmp_path):
    (tmp_path / "tok.txt").write_bytes(b"wrong")
    ctx = make_context(tmp_path / "ctx", f"""\
FROM capstone/busybox
RUN --mount=type=secret,id=tok test "$(cat /run/secrets/tok)" = {sha(b'x')}
""")
    with pytest.raises(DockerfileError) as err:
        quiet_build(store, ctx, tags=["secrettest"], secrets=[SecretSource("tok", str(tmp_path / "tok.txt"))])
    assert "Dockerfile:2" in str(err.value) and "returned 1" in str(err.value)


def test_secret_as_environment_variable_only(store, tmp_path, monkeypatch):
    value = secret_value()
    monkeypatch.setenv("CAPSTONE_TEST_TOKEN", value.decode())
    ctx = make_context(tmp_path / "ctx", f"""\
FROM capstone/busybox
ENV TOKEN=placeholder
RUN --mount=type=secret,id=tok,env=TOKEN test "$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)" = {sha(value)} \\
    && test ! -e /run/secrets/tok && echo ok > /env-ok
RUN test "$TOKEN" = placeholder
""")
    quiet_build(store, ctx, tags=["secrettest"], secrets=["id=tok,env=CAPSTONE_TEST_TOKEN"])
    assert "env-ok" in layer_names(store, "secrettest")
    assert assert_nowhere_in_store(Path(store.path), value) > 5
    assert "TOKEN=placeholder" in store.load("secrettest").config.config.env


def test_secret_value_is_not_part_of_the_cache_key(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox
RUN --mount=type=secret,id=tok,required test -s /run/secrets/tok && echo x > /x
""")
    for i, expect_cached in ((1, False), (2, True)):
        (tmp_path / "tok.txt").write_bytes(secret_value())
        result = quiet_build(store, ctx, tags=["secrettest"], secrets=[f"id=tok,src={tmp_path / 'tok.txt'}"])
        assert result.steps[-1].cached is expect_cached, i


def test_required_secret_missing_is_a_one_line_error(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox
RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent
RUN --mount=type=secret,id=absent,required=true true
""")
    with pytest.raises(DockerfileError) as err:
        quiet_build(store, ctx, tags=["secrettest"])
    message = str(err.value)
    assert "\n" not in message
    assert "Dockerfile:3" in message and "secret absent is required" in message


def test_cli_build_with_secret(tmp_path):
    value = secret_value()
    (tmp_path / "tok.txt").write_bytes(value)
    ctx = make_context(tmp_path / "ctx", f"""\
FROM capstone/busybox
RUN --mount=type=secret,id=tok,dst=/tmp/t,required test "$(sha256sum < /tmp/t | cut -d' ' -f1)" = {sha(value)}
""")
    store_dir = tmp_path / "store"
    done = capstone(store_dir, "build", "-q", "--network", "none", "--secret",
                    f"id=tok,src={tmp_path / 'tok.txt'}", str(ctx))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("sha256:")
    assert_nowhere_in_store(store_dir, value)
    done = capstone(store_dir, "build", "-q", "--network", "none", str(ctx))
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "Dockerfile:2" in done.stderr


def test_secret_and_ssh_command_line_values(tmp_path, monkeypatch):
    monkeypatch.setenv("MYTOKEN", "v")
    assert parse_secret("id=MYTOKEN") == SecretSource("MYTOKEN", None, "MYTOKEN")
    assert parse_secret("type=env,id=a,src=MYTOKEN") == SecretSource("a", None, "MYTOKEN")
    assert parse_secret(f"id=a,source={tmp_path}/f") == SecretSource("a", f"{tmp_path}/f", None)
    with pytest.raises(BuildError, match="unexpected key 'bogus'"):
        parse_secret("id=a,bogus=1")
    with pytest.raises(BuildError, match="needs an id"):
        parse_secret("src=/x")
    with pytest.raises(BuildError, match="does not exist"):
        parse_ssh(f"default={tmp_path}/nope")
    key = tmp_path / "k"
    key.write_text("x")
    assert parse_ssh(f"git={key}").keys == (str(key),)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(BuildError, match="SSH_AUTH_SOCK is not set"):
        parse_ssh("default")


# -- SSH: a real ssh-agent, a real ssh-add in the step ---------------------------------------------
def _tools_context(ctx: Path) -> None:
    """``ssh-add`` and the libraries it loads, copied from this host into ``ctx/tools``."""
    out = subprocess.run(["ldd", "/usr/bin/ssh-add"], capture_output=True, text=True, check=True).stdout
    paths = ["/usr/bin/ssh-add"]
    for line in out.splitlines():
        words = line.split()
        for w in words:
            if w.startswith("/"):
                paths.append(w)
                break
    for p in paths:
        dest = ctx / "tools" / p.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.realpath(p), dest)


@pytest.fixture()
def agent(tmp_path):
    """A real ssh-agent (its socket and the fingerprint of the one key it holds)."""
    for tool in ("ssh-agent", "ssh-add", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian: openssh-client)")
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "capstone-test", "-f", str(key)],
                   check=True)
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(1000):  # until it listens: the socket exists a moment before
            with socket.socket(socket.AF_UNIX) as probe:
                if sock.exists() and probe.connect_ex(str(sock)) == 0:
                    break
            time.sleep(0.01)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(key)], env=env, check=True, capture_output=True)
        fp = subprocess.run(["ssh-keygen", "-lf", f"{key}.pub"], capture_output=True, text=True,
                            check=True).stdout.split()[1]
        yield sock, fp, key
    finally:
        proc.terminate()
        proc.wait(5)


def test_ssh_agent_is_forwarded_to_the_step(store, tmp_path, agent):
    sock, fingerprint, _ = agent
    ctx = tmp_path / "ctx"
    _tools_context(ctx)
    make_context(ctx, f"""\
FROM capstone/busybox
COPY tools/ /
RUN --mount=type=ssh test "$SSH_AUTH_SOCK" = /run/buildkit/ssh_agent.0 && test -S "$SSH_AUTH_SOCK" \\
    && ssh-add -l | grep -F {fingerprint} && echo agent > /agent-ok
RUN --mount=type=ssh,id=other,target=/tmp/agent,uid=1000,mode=0600 \\
    test "$(stat -c '%u %a' /tmp/agent)" = "1000 600" \\
    && SSH_AUTH_SOCK=/tmp/agent ssh-add -l | grep -F {fingerprint}
RUN --mount=type=ssh,id=absent test -z "$SSH_AUTH_SOCK"
""")
    quiet_build(store, ctx, tags=["secrettest"], ssh=[f"default={sock}", f"other={sock}"])
    assert layer_names(store, "secrettest", last=1) == ["agent-ok"]
    assert not any("ssh_agent" in n for n in layer_names(store, "secrettest"))
    # without the agent, a required ssh mount is a clear error; with an empty agent ssh-add fails
    ctx2 = make_context(tmp_path / "ctx2", """\
FROM secrettest
RUN --mount=type=ssh,required ssh-add -l
""")
    with pytest.raises(DockerfileError, match=r"Dockerfile:2: .*ssh agent default is required"):
        quiet_build(store, ctx2, tags=["secrettest"])


def test_ssh_key_file_starts_a_private_agent(store, tmp_path, agent):
    _, fingerprint, key = agent
    ctx = tmp_path / "ctx"
    _tools_context(ctx)
    make_context(ctx, f"""\
FROM capstone/busybox
COPY tools/ /
RUN --mount=type=ssh,id=deploy ssh-add -l | grep -F {fingerprint}
""")
    quiet_build(store, ctx, tags=["secrettest"], ssh=[f"deploy={key}"])
    private = key.read_bytes()
    assert assert_nowhere_in_store(Path(store.path), private.split(b"\n")[1]) > 5
