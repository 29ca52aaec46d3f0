"""Bounded downloads (capstone.download) against a misbehaving server on 127.0.0.1.

Every response comes from a fixture of ``tests/fixtures/hostile/http/``, served by
``hostile_http.HostileServer``: bodies without end, bodies longer or shorter than declared, a
trickle of one byte at a time, silence, a reset, something that is not HTTP, a gzip bomb. Each
must end in one line (no traceback), promptly, leaving no file and nothing in the store; the
same mechanism bounds ``ADD URL`` and every registry transfer.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile_http import HostileServer

from capstone.download import (
    NETWORK_READ,
    Body,
    DownloadError,
    DownloadIncomplete,
    DownloadTooLarge,
    DownloadTooSlow,
    Limits,
    NetworkError,
    download,
    http_client,
)
from capstone.registry import pull
from capstone.store import Store
from part2_manual_oci import mediatypes as mt

REPO = Path(__file__).resolve().parent.parent
FAST = Limits(connect_timeout=2, read_timeout=1, min_rate=1024, rate_window=1.5, max_undeclared=1 << 20,
              retry_delay=0.05)
#: the same limits for a capstone command in a child process
FAST_ENV = {"CAPSTONE_CONNECT_TIMEOUT": "2", "CAPSTONE_READ_TIMEOUT": "1", "CAPSTONE_MIN_RATE": "1K",
            "CAPSTONE_RATE_WINDOW": "1.5", "CAPSTONE_MAX_UNDECLARED": "1M", "CAPSTONE_RETRY_DELAY": "0.05"}


def fetch(server: HostileServer, tmp_path: Path, **kw):
    t0 = time.monotonic()
    try:
        return download(f"{server.url}/f", tmp_path / "out", limits=FAST, **kw)
    finally:
        assert time.monotonic() - t0 < 10, "the download was not cut off promptly"


# -- the mechanism ---------------------------------------------------------------------------------


def test_an_honest_body_is_written_with_its_digest(tmp_path):
    with HostileServer({"/f": (b"hello\n", "text/plain")}) as server:
        got = fetch(server, tmp_path)
    assert (got.size, got.digest) == (6, "sha256:" + hashlib.sha256(b"hello\n").hexdigest())
    assert (tmp_path / "out").read_bytes() == b"hello\n"
    assert os.stat(tmp_path / "out").st_mode & 0o777 == 0o600


def test_a_body_without_end_stops_at_the_limit(tmp_path):
    with HostileServer({"/f": "endless-body"}) as server, \
            pytest.raises(DownloadTooLarge, match=r"more than 1048576 bytes \(the limit for a body of undeclared size\)"):
        fetch(server, tmp_path)
    assert not (tmp_path / "out").exists()


def test_a_body_longer_than_its_descriptor_stops_at_the_declared_size(tmp_path):
    with HostileServer({"/f": "endless-body"}) as server, \
            pytest.raises(DownloadTooLarge, match=r"more than 100 bytes \(the size that was declared\)"):
        fetch(server, tmp_path, expected_size=100)
    assert not (tmp_path / "out").exists()


def test_bytes_past_the_content_length_are_never_taken(tmp_path):
    with HostileServer({"/f": "longer-than-declared"}) as server:
        got = fetch(server, tmp_path)
    assert got.size == 100 and (tmp_path / "out").read_bytes() == b"x" * 100


def test_a_content_length_larger_than_expected_is_refused_before_the_body(tmp_path):
    with HostileServer({"/f": "shorter-than-declared"}) as server, \
            pytest.raises(DownloadTooLarge, match="declares 1048576 bytes, expected 100"):
        fetch(server, tmp_path, expected_size=100)


def test_a_body_shorter_than_its_content_length_is_incomplete(tmp_path):
    with HostileServer({"/f": "shorter-than-declared"}) as server, \
            pytest.raises(DownloadIncomplete, match="ended after 1000 of 1048576 bytes"):
        fetch(server, tmp_path)
    assert not (tmp_path / "out").exists()


def test_a_trickle_is_cut_off_by_the_minimum_rate(tmp_path):
    with HostileServer({"/f": "trickle"}) as server, \
            pytest.raises(DownloadTooSlow, match=r"too slow: \d+ bytes in the last 1.5 s \(at least 1024 bytes/s"):
        fetch(server, tmp_path)


def test_silence_after_the_head_is_a_read_timeout(tmp_path):
    with HostileServer({"/f": "stall"}) as server, pytest.raises(DownloadTooSlow, match="timed out waiting for data"):
        fetch(server, tmp_path)


def test_a_reset_connection_is_one_line(tmp_path):
    with HostileServer({"/f": "reset"}) as server, pytest.raises(NetworkError) as info:
        fetch(server, tmp_path)
    assert "\n" not in str(info.value) and str(info.value).startswith(f"GET {server.url}/f: ")


def test_a_server_that_does_not_speak_http_is_one_line(tmp_path):
    with HostileServer({"/f": "garbage"}) as server, pytest.raises(NetworkError) as info:
        fetch(server, tmp_path)
    assert "\n" not in str(info.value)


def test_tls_to_a_server_that_does_not_speak_it_is_one_line(tmp_path):
    with HostileServer({}, greeting=b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") as server, \
            pytest.raises(NetworkError, match=r"https://127.0.0.1:\d+/f: TLS error: ") as info:
        download(f"https://{server.host}/f", tmp_path / "out", limits=FAST)
    assert "\n" not in str(info.value)


def test_a_refused_connection_is_one_line(tmp_path):
    with HostileServer({}) as server:
        url = f"{server.url}/f"
    with pytest.raises(NetworkError, match="Connection refused"):
        download(url, tmp_path / "out", limits=FAST)


def test_a_gzip_bomb_is_kept_as_the_bytes_that_came(tmp_path):
    """We ask for identity; a server that compresses anyway gets its bytes stored as sent, never
    expanded (64 MiB of zeros in a 64 KiB gzip stream stays 64 KiB)."""
    with HostileServer({"/f": "gzip-bomb"}) as server:
        got = fetch(server, tmp_path)
    assert got.size < 1 << 20
    assert (tmp_path / "out").read_bytes()[:2] == b"\x1f\x8b"


def test_http_errors_name_the_status(tmp_path):
    with HostileServer({}) as server, pytest.raises(DownloadError, match=r"GET http://127.0.0.1:\d+/f: HTTP 404"):
        fetch(server, tmp_path)


def test_a_big_body_comes_in_large_pieces_and_reads_hand_them_over_whole(tmp_path):
    """A layer is read in pieces of up to NETWORK_READ (httpcore's 64 KiB made each 64 KiB a
    trip through its parser), ``read`` hands a whole piece on as it came, and reads of any size
    mixed with ``readinto`` and ``chunks`` give the body's bytes in order, bounded as before."""
    body = bytes(range(256)) * (8 << 12)  # 8 MiB
    with HostileServer({"/f": (body, "application/octet-stream")}) as server, http_client(FAST) as client, \
            client.stream("GET", f"{server.url}/f") as response:
        time.sleep(0.3)  # the socket fills up: a read takes all it holds, up to NETWORK_READ
        reader = Body(response, what="GET f", expected=len(body), limits=FAST)
        got = [reader.read(3), reader.read(NETWORK_READ)]
        pieces = [len(got[-1])]
        buffer = bytearray(100_000)
        n = reader.readinto(buffer)
        got.append(bytes(buffer[:n]))
        while piece := reader.read(NETWORK_READ):
            got.append(piece)
            pieces.append(len(piece))
    assert b"".join(got) == body
    assert max(pieces) > 64 << 10 and max(pieces) <= NETWORK_READ, pieces
    with HostileServer({"/f": "endless-body"}) as server, http_client(FAST) as client, \
            client.stream("GET", f"{server.url}/f") as response, \
            pytest.raises(DownloadTooLarge, match=r"more than 100000 bytes"):
        reader = Body(response, what="GET f", expected=100_000, limits=FAST)
        reader.read(10)
        reader.readinto(bytearray(20))
        list(reader.chunks())


def test_limits_from_the_environment():
    limits = Limits.from_environment(FAST_ENV)
    assert limits == Limits(2, 1, 1024, 1.5, 1 << 20, retry_delay=0.05)
    with pytest.raises(DownloadError, match="CAPSTONE_READ_TIMEOUT"):
        Limits.from_environment({"CAPSTONE_READ_TIMEOUT": "soon"})


# -- ADD URL: the same mechanism, one line from the command line ----------------------------------


def build_cli(tmp_path: Path, dockerfile: str) -> subprocess.CompletedProcess:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    env = {**os.environ, **FAST_ENV, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "capstone", "--store", str(tmp_path / "store"), "build", "-q",
                           str(ctx)], cwd=REPO, capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize(("fixture_name", "message"), [
    ("endless-body", "more than 1048576 bytes"),
    ("trickle", "too slow"),
    ("stall", "timed out waiting for data"),
    ("reset", "Connection reset by peer"),
])
def test_add_url_from_a_hostile_server_fails_in_one_line(tmp_path, fixture_name, message):
    with HostileServer({"/f": fixture_name}) as server:
        r = build_cli(tmp_path, f"FROM scratch\nADD {server.url}/f /f\n")
    assert r.returncode == 1
    assert r.stderr.startswith("Dockerfile:2: ") and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert list((tmp_path / "store" / "tmp").iterdir()) == []


# -- registry pulls ----------------------------------------------------------------------------------


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hostile_registry(layer_route, *, layer_size: int = 100, manifest_route=None) -> tuple[dict, str]:
    """Routes of a registry whose image x/y:1 has one layer of ``layer_size`` bytes, served by
    ``layer_route``; the manifest and config are honest unless ``manifest_route`` says."""
    layer_digest = _sha(b"L" * layer_size)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [layer_digest]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                           "config": {"mediaType": mt.OCI_CONFIG, "digest": _sha(config), "size": len(config)},
                           "layers": [{"mediaType": mt.OCI_LAYER, "digest": layer_digest,
                                       "size": layer_size}]}).encode()
    routes = {"/v2/x/y/manifests/1": manifest_route or (manifest, mt.OCI_MANIFEST),
              f"/v2/x/y/blobs/{_sha(config)}": (config, "application/octet-stream"),
              f"/v2/x/y/blobs/{layer_digest}": layer_route}
    return routes, layer_digest


def assert_store_unchanged(store: Store, name: str) -> None:
    assert store.resolve(name) is None
    assert [p for p in store.layout.blobs_dir.iterdir() if p.name.startswith(".tmp")] == []


def test_a_layer_declared_as_100_bytes_stops_after_100(tmp_path, monkeypatch):
    for var, value in FAST_ENV.items():
        monkeypatch.setenv(var, value)
    routes, layer = hostile_registry("endless-body")
    store = Store.open(tmp_path / "s")
    with HostileServer(routes) as server, \
            pytest.raises(DownloadTooLarge, match=f"blobs/{layer}: more than 100 bytes"):
        pull(store, f"{server.host}/x/y:1")
    assert_store_unchanged(store, f"{server.host}/x/y:1")
    assert not store.layout.has_blob(layer)


@pytest.mark.parametrize("fixture_name", ["trickle", "stall", "reset", "garbage"])
def test_a_hostile_layer_server_ends_the_pull_in_one_line(tmp_path, monkeypatch, fixture_name):
    for var, value in FAST_ENV.items():
        monkeypatch.setenv(var, value)
    routes, _ = hostile_registry(fixture_name, layer_size=1 << 20)
    store = Store.open(tmp_path / "s")
    with HostileServer(routes) as server, pytest.raises(DownloadError) as info:
        pull(store, f"{server.host}/x/y:1")
    assert "\n" not in str(info.value)
    assert_store_unchanged(store, f"{server.host}/x/y:1")


def test_a_manifest_without_end_stops_at_4_mib(tmp_path, monkeypatch):
    for var, value in FAST_ENV.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("CAPSTONE_MAX_UNDECLARED", "1G")
    routes, _ = hostile_registry("endless-body", manifest_route="endless-body")
    store = Store.open(tmp_path / "s")
    with HostileServer(routes) as server, pytest.raises(DownloadTooLarge, match=r"manifests/1: more than 4194304 bytes"):
        pull(store, f"{server.host}/x/y:1")


def test_cli_pull_from_a_hostile_registry_is_one_line(tmp_path):
    routes, layer = hostile_registry("endless-body")
    env = {**os.environ, **FAST_ENV, "PYTHONPATH": str(REPO)}
    with HostileServer(routes) as server:
        r = subprocess.run([sys.executable, "-m", "capstone", "--store", str(tmp_path / "s"), "pull",
                            f"{server.host}/x/y:1"], cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("capstone: ")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    assert errors[0].startswith("capstone: GET http://127.0.0.1:") and "more than 100 bytes" in errors[0]


# -- git sources: git's own transfers, bounded by the same limits ---------------------------------


@pytest.mark.parametrize("fixture_name", ["trickle", "stall"])
def test_git_over_a_trickling_http_server_is_cut_off(tmp_path, monkeypatch, fixture_name):
    """``git ls-remote`` gets the limits as http.lowSpeedLimit/lowSpeedTime: a server that
    trickles or stalls ends it after the rate window, not after the command's whole deadline."""
    from capstone.engine.gitsource import GitSourceError, parse_git_source, resolve

    for var, value in FAST_ENV.items():
        monkeypatch.setenv(var, value)
    route = "/repo.git/info/refs?service=git-upload-pack"
    with HostileServer({route: fixture_name}) as server:
        t0 = time.monotonic()
        with pytest.raises(GitSourceError, match="cannot reach the git repository") as info:
            resolve(parse_git_source(f"{server.url}/repo.git"))
        took = time.monotonic() - t0
    assert took < 20, took
    assert "\n" not in str(info.value)
