"""Bounded builds: every per-instruction cost is constant or linear in the instruction itself.

Config instructions record their changes and the image is made once per run of them (a stage
of N LABEL lines is no longer N copies of an ever larger config), variable expansion has a size
cap, the variables of a scope and the image config have limits, EXPOSE ranges stay within the
ports there are. The hostile Dockerfiles are files in ``tests/fixtures/hostile/``; each must end
in one ``Dockerfile:LINE: ...`` error. How the time grows is measured by
``tests/bench_capstone_config.py`` (timing decides no test).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import make_context

from capstone.dockerfile import Lexer
from capstone.dockerfile.args import MAX_VARIABLES
from capstone.dockerfile.shell import MAX_EXPANSION
from capstone.engine import build
from capstone.engine.metadata import MAX_CONFIG_SIZE
from capstone.errors import DockerfileError, ExpansionError
from capstone.store import Store

REPO = Path(__file__).resolve().parent.parent
HOSTILE = REPO / "tests" / "fixtures" / "hostile"


def hostile(tmp_path: Path, name: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    shutil.copy(HOSTILE / f"Dockerfile.{name}", ctx / "Dockerfile")
    return ctx


# -- config instructions: recorded, the image made once ----------------------------------------------


def test_a_run_of_config_instructions_gives_one_history_entry_each(store, tmp_path):
    lines = [f"LABEL k{i}=v{i}" if i % 3 else f"ENV E{i}=x{i} F{i}=$E{i - 3}" for i in range(1, 301)]
    ctx = make_context(tmp_path / "ctx", "FROM scratch\n" + "\n".join(lines) + "\nUSER 7\nCMD [\"x\"]\nMAINTAINER me\n")
    result = build(store, ctx, tags=["cfg:many"])
    image = store.load("cfg:many")
    cfg = image.config.config
    assert cfg.labels == {f"k{i}": f"v{i}" for i in range(1, 301) if i % 3}
    env = cfg.env_dict()
    assert env["E3"] == "x3" and env["F3"] == "" and env["F6"] == "x3" and env["F300"] == "x297"
    assert (cfg.user, cfg.cmd, image.config.author) == ("7", ("x",), "me")
    history = image.config.history
    assert len(history) == 303 and all(h.empty_layer for h in history)
    assert history[0].created_by == "LABEL k1=v1" and history[2].created_by == "ENV E3=x3 F3="
    assert history[-1].created_by == "MAINTAINER me"
    assert image.config_descriptor.digest == result.image_id
    # the cache answers the same instructions with the same image
    again = build(store, ctx, tags=["cfg:many"])
    assert again.image_id == result.image_id and again.steps[-1].cached


def test_config_steps_between_layer_steps_reach_the_layer_steps(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nWORKDIR /a\nENV A=1\nUSER 5\nWORKDIR b\nLABEL x=y\nENV B=$A\n")
    (ctx / "f").write_text("f")
    build(store, ctx, tags=["cfg:mixed"])
    image = store.load("cfg:mixed")
    assert image.config.config.working_dir == "/a/b"
    assert image.config.config.env_dict()["B"] == "1"
    assert [h.created_by for h in image.config.history] == ["WORKDIR /a", "ENV A=1", "USER 5", "WORKDIR /a/b",
                                                             "LABEL x=y", "ENV B=1"]
    assert len(image.layers) == 2  # the two directories


# -- the hostile Dockerfiles ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "line", "message"), [
    ("arg-doubling", 23, f'failed to process "$A$A": the expansion is longer than {MAX_EXPANSION} characters'),
    ("replace-blowup", 14, f'failed to process "${{A//?/$A}}": the expansion is longer than {MAX_EXPANSION}'),
    ("config-too-large", 7, f"the image config would be larger than {MAX_CONFIG_SIZE} bytes"),
    ("variables-too-large", 5, f"setting d would make the variables take more than {MAX_VARIABLES} bytes"),
    ("expose-range", 3, "invalid containerPort: 1-4294967295"),
    ("stopsignal-out-of-range", 4, "invalid signal: 99999999999999999999"),
])
def test_hostile_dockerfile_ends_in_one_line_naming_its_line(store, tmp_path, name, line, message):
    ctx = hostile(tmp_path, name)
    with pytest.raises(DockerfileError) as info:
        build(store, ctx)
    assert info.value.line == line
    assert message in str(info.value)
    assert str(info.value).startswith(f"Dockerfile:{line}: ")


def test_cli_reports_the_doubling_in_one_line(tmp_path):
    ctx = hostile(tmp_path, "arg-doubling")
    r = subprocess.run([sys.executable, "-m", "capstone", "--store", str(tmp_path / "s"), "build", "-q", str(ctx)],
                       cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f'Dockerfile:23: failed to process "$A$A": the expansion is longer than {MAX_EXPANSION} characters']


def test_meta_args_have_the_same_limits(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", "ARG A=xx\n" + "ARG A=$A$A\n" * 21 + "FROM scratch\n")
    with pytest.raises(ExpansionError, match="the expansion is longer than") as info:
        build(store, ctx)
    assert info.value.line == 21


def test_expansion_cap_is_counted_while_the_result_is_made():
    lex = Lexer(max_length=100)
    env = {"A": "a" * 60}
    assert lex.process_word("$A", env) == "a" * 60
    for word in ("$A$A", '"$A$A"', "${X:-$A$A}", "${A//a/aa}", "x${A}y$A"):
        with pytest.raises(ExpansionError, match="longer than 100 characters"):
            lex.process_word(word, env)


@pytest.mark.parametrize(("signal", "ok"), [
    ("SIGKILL", True), ("term", True), ("9", True), ("+15", True), ("SIGRTMIN+15", True), ("RTMAX-14", True),
    ("CLD", True), ("0", False), ("SIGFOO", False), ("RTMIN+16", False), ("9223372036854775808", False),
    ("1.5", False), ("", False),
])
def test_stopsignal_is_a_signal_as_buildkit_parses_it(store, tmp_path, signal, ok):
    ctx = make_context(tmp_path / "ctx", f"FROM scratch\nSTOPSIGNAL {signal or '${EMPTY}'}\n")
    if ok:
        build(store, ctx, tags=["cfg:signal"])
        assert store.load("cfg:signal").config.config.stop_signal == signal
        return
    with pytest.raises(DockerfileError, match=re.escape(f"Dockerfile:2: invalid signal: {signal}")):
        build(store, ctx)


@pytest.mark.parametrize(("text", "number"), [
    ("SIGKILL", 9), ("term", 15), ("9", 9), ("+15", 15), ("SIGRTMIN+15", 49), ("RTMAX-14", 50), ("CLD", 17),
    ("RTMIN", 34), ("SIGUSR1", 10), ("0", None), ("65", None), ("9223372036854775807", None), ("SIGFOO", None),
])
def test_a_stopsignal_is_the_number_capstone_run_sends(text, number):
    """What ``capstone run`` sends to stop a container of an image with ``STOPSIGNAL text``
    (glibc's and moby's numbering: SIGRTMIN is 34); one that names no signal of this host, as a
    huge number BuildKit lets into an image does, is refused (the run then fails in one line)."""
    from capstone.engine.metadata import signal_number

    if number is None:
        with pytest.raises(ValueError):
            signal_number(text)
    else:
        assert signal_number(text) == number


def test_a_range_of_every_port_is_allowed(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nEXPOSE 1-65535/udp 80\n")
    build(store, ctx, tags=["cfg:ports"])
    ports = store.load("cfg:ports").config.config.exposed_ports
    assert len(ports) == 65536 and "65535/udp" in ports and "80/tcp" in ports


# -- digest and size flags -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "message"), [
    ("md5:d41d8cd98f00b204e9800998ecf8427e", "unsupported digest algorithm 'md5'"),
    ("sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709", "unsupported digest algorithm 'sha1'"),
    ("sha256:abc", "invalid checksum digest length"),
    ("sha256:" + "G" * 64, "invalid checksum digest format"),
    ("d41d8cd98f00b204e9800998ecf8427e", "invalid checksum digest format"),
])
def test_only_supported_digest_algorithms_are_checksums(text, message):
    from part2_manual_oci import DigestError, parse_digest

    with pytest.raises(DigestError, match=re.escape(message)):
        parse_digest(text)


def test_add_checksum_md5_is_refused_before_any_request(store, tmp_path):
    from hostile_http import HostileServer

    with HostileServer({"/f": (b"data", "text/plain")}) as server:
        ctx = make_context(tmp_path / "ctx", f"FROM scratch\nADD --checksum=md5:d41d8cd98f00b204e9800998ecf8427e {server.url}/f /f\n")
        with pytest.raises(DockerfileError, match="unsupported digest algorithm 'md5'") as info:
            build(store, ctx)
        assert server.requests == []
    assert info.value.line == 2 and str(info.value).startswith("Dockerfile:2: ADD --checksum: ")


def test_the_hostile_checksum_is_one_line_from_the_cli_and_fetches_nothing(tmp_path):
    from hostile_http import HostileServer

    ctx = hostile(tmp_path, "checksum-md5")
    with HostileServer({"/f": (b"data", "text/plain")}) as server:
        r = subprocess.run([sys.executable, "-m", "capstone", "--store", str(tmp_path / "s"), "build", "-q",
                            "--build-arg", f"URL={server.url}", str(ctx)], cwd=REPO, capture_output=True, text=True,
                           timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert server.requests == []
    assert r.returncode == 1
    assert r.stderr.splitlines() == ["Dockerfile:5: ADD --checksum: unsupported digest algorithm 'md5' in "
                                     "'md5:d41d8cd98f00b204e9800998ecf8427e' (supported: sha256, sha384, sha512)"], r.stderr


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
def test_add_checksum_of_each_supported_algorithm(store, tmp_path, algorithm):
    import hashlib

    from hostile_http import HostileServer

    body = b"checked content\n"
    good = f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"
    with HostileServer({"/f": (body, "text/plain")}) as server:
        ctx = make_context(tmp_path / "ctx", f"FROM scratch\nADD --checksum={good} {server.url}/f /f\n")
        build(store, ctx)
        bad = good[:-1] + ("0" if good[-1] != "0" else "1")
        (ctx / "Dockerfile").write_text(f"FROM scratch\nADD --checksum={bad} {server.url}/f /f\n")
        with pytest.raises(DockerfileError, match=f"checksum mismatch: expected {bad}, got {good}"):
            build(store, ctx, no_cache=True)


def test_a_20_mb_config_is_refused_by_pull_before_it_is_fetched(tmp_path):
    import json

    from hostile_http import HostileServer

    from capstone.registry import RegistryError, pull
    from part2_manual_oci import mediatypes as mt

    manifest = (HOSTILE / "manifest-config-20mb.json").read_bytes()
    config_digest = json.loads(manifest)["config"]["digest"]
    s = Store.open(tmp_path / "s")
    with HostileServer({"/v2/x/y/manifests/1": (manifest, mt.OCI_MANIFEST)}) as server:
        with pytest.raises(RegistryError, match=f"image config {config_digest} is 20000000 bytes, more than the {MAX_CONFIG_SIZE}"):
            pull(s, f"{server.host}/x/y:1")
        assert server.requests == ["/v2/x/y/manifests/1"]
        r = subprocess.run([sys.executable, "-m", "capstone", "--store", str(tmp_path / "s"), "pull",
                            f"{server.host}/x/y:1"], cwd=REPO, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
        assert server.requests == ["/v2/x/y/manifests/1"] * 2
    assert r.returncode == 1 and "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("capstone: ")]  # beside progress lines
    assert len(errors) == 1 and "is 20000000 bytes, more than the" in errors[0], r.stderr
    assert s.resolve(f"{server.host}/x/y:1") is None


def test_a_20_mb_config_in_a_docker_archive_is_refused(tmp_path):
    import io
    import json
    import tarfile

    from capstone.store import ExportError

    archive = tmp_path / "big.tar"
    with tarfile.open(archive, "w") as tf:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))

        add("manifest.json", json.dumps([{"Config": "c.json", "RepoTags": ["big:1"], "Layers": []}]).encode())
        add("c.json", b" " * 20_000_000)
    s = Store.open(tmp_path / "s")
    with pytest.raises(ExportError, match=f"c.json is 20000000 bytes, more than the {MAX_CONFIG_SIZE}"):
        s.load_archive(f"docker-archive:{archive}")
    r = subprocess.run([sys.executable, "-m", "capstone", "--store", str(tmp_path / "s"), "load", str(archive)],
                       cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 1
    assert len(r.stderr.splitlines()) == 1 and f"c.json is 20000000 bytes, more than the {MAX_CONFIG_SIZE}" in r.stderr, r.stderr
    assert s.resolve("big:1") is None
