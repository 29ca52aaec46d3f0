"""Pulls and pushes as they go: a few layers at a time, retries, resumption, interruption,
chunked uploads, cross-repository mounts, and what a command shows while they run.

The registry is the real ``docker-registry`` on 127.0.0.1; where a failure is needed, the
client talks to it through ``fault_proxy.FaultProxy``, which forwards everything and fails on
purpose (a 503, a connection reset halfway through a layer, a layer that stalls). What each
test checks is what the registry or the proxy saw, and the store afterwards.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
from io import StringIO
from pathlib import Path

import pytest
from fault_proxy import FaultProxy
from registry_server import Registry
from support import REPO, capstone

from capstone.download import DownloadError
from capstone.engine import build
from capstone.registry import pull, push
from capstone.store import Store
from capstone.transferview import LineView
from part2_manual_oci import validate_layout

LAYERS = 4
LAYER_BYTES = 3 << 19  # 1.5 MiB of random bytes each: gzip keeps them as big


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    r = Registry(tmp_path_factory.mktemp("transfer-registry"))
    yield r
    r.stop()


@pytest.fixture
def proxy(registry):
    p = FaultProxy(registry.host)
    yield p
    p.stop()


def make_image(root: Path, layers: int = LAYERS) -> tuple[Path, list[str]]:
    """A store under ``root`` with ``test/layers:1``: ``layers`` layers of random bytes (new
    ones: no registry has them yet); the store's path and the layer digests."""
    ctx = root / "ctx"
    ctx.mkdir(parents=True)
    lines = ["FROM scratch"]
    for i in range(layers):
        (ctx / f"f{i}").write_bytes(os.urandom(LAYER_BYTES))
        lines.append(f"COPY f{i} /f{i}")
    (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")
    store = Store.open(root / "store")
    build(store, ctx, tags=["test/layers:1"])
    return root / "store", [layer.descriptor.digest for layer in store.load("test/layers:1").layers]


@pytest.fixture(scope="module")
def image(tmp_path_factory, registry) -> tuple[Path, list[str]]:
    """:func:`make_image`, pushed to ``layers/app:1``."""
    store_dir, layers = make_image(tmp_path_factory.mktemp("transfer-image"))
    push(Store.open(store_dir), "test/layers:1", f"{registry.host}/layers/app:1")
    return store_dir, layers


def temp_files(store: Store) -> list[str]:
    return [p.name for p in store.layout.blobs_dir.iterdir() if p.name.startswith(".tmp")]


# -- a few at a time -------------------------------------------------------------------------------


def test_layers_are_pulled_and_pushed_a_few_at_a_time(image, proxy, tmp_path):
    store_dir, layers = image
    proxy.slow("GET", "/blobs/sha256:", 0.4)
    got = pull(Store.open(tmp_path / "s"), f"{proxy.host}/layers/app:1")
    assert 2 <= proxy.max_in_flight <= 3  # Limits.parallel: three at a time, not one, not all five
    assert got.digest == Store.open(store_dir).resolve("test/layers:1").digest

    proxy.clear()
    proxy.max_in_flight = 0
    proxy.slow("HEAD", "/blobs/sha256:", 0.4)
    push(Store.open(store_dir), "test/layers:1", f"{proxy.host}/layers/again:1")
    assert 2 <= proxy.max_in_flight <= 3


# -- retries and resumption ------------------------------------------------------------------------


def test_server_errors_are_retried_with_backoff(image, proxy, tmp_path):
    _, layers = image
    proxy.status("GET", "/manifests/1", 503, times=2)
    proxy.status("GET", layers[1], 502, times=1)
    notes: list[str] = []
    store = Store.open(tmp_path / "s")
    pull(store, f"{proxy.host}/layers/app:1", on_progress=notes.append)
    assert [m for m, p, _ in proxy.requests if m == "GET" and p.endswith("/manifests/1")] == ["GET"] * 3
    assert len(proxy.blob_gets(layers[1])) == 2
    retries = [n for n in notes if "retrying in" in n]
    assert len(retries) == 3 and "503 Service Unavailable; retrying in" in retries[0]
    assert validate_layout(store.layout.path) == []


def test_a_server_that_keeps_failing_ends_in_one_line(image, proxy, tmp_path):
    proxy.status("GET", "/manifests/1", 503, times=100)
    r = capstone(tmp_path / "s", "pull", "-q", f"{proxy.host}/layers/app:1")
    assert r.returncode == 1
    assert r.stderr.splitlines() == [f"capstone: GET http://{proxy.host}/v2/layers/app/manifests/1: 503 Service "
                                     "Unavailable"], r.stderr
    assert len([m for m, p, _ in proxy.requests if p.endswith("/manifests/1")]) == 4  # 1 + 3 retries


def test_a_layer_whose_connection_breaks_goes_on_where_it_stopped(image, proxy, tmp_path):
    store_dir, layers = image
    proxy.cut("GET", layers[2], after=700_000)
    store = Store.open(tmp_path / "s")
    pull(store, f"{proxy.host}/layers/app:1")
    first, second = proxy.blob_gets(layers[2])
    assert first is None and second.startswith("bytes=")
    offset = int(second.removeprefix("bytes=").rstrip("-"))
    assert 0 < offset <= 700_000  # what arrived before the reset was kept, not fetched again
    assert store.layout.blob_path(layers[2]).read_bytes() == Store.open(store_dir).layout.blob_path(layers[2]).read_bytes()
    assert validate_layout(store.layout.path) == [] and temp_files(store) == []


def test_a_layer_that_keeps_breaking_fails_and_leaves_nothing(image, proxy, tmp_path):
    """A broken connection that made progress is resumed as often as it takes; one that
    brings nothing new is given up after the retries."""
    _, layers = image
    proxy.cut("GET", layers[0], after=300_000, times=1)
    proxy.cut("GET", layers[0], after=0, times=100)
    store = Store.open(tmp_path / "s")
    with pytest.raises(DownloadError, match=rf"blobs/{layers[0]}: the body ended after \d+ of \d+ bytes "
                                            r"\(it broke off 4 times in a row\)"):
        pull(store, f"{proxy.host}/layers/app:1")
    assert len(proxy.blob_gets(layers[0])) == 4  # the first, and 3 that brought nothing
    assert store.resolve(f"{proxy.host}/layers/app:1") is None
    assert not store.layout.has_blob(layers[0]) and temp_files(store) == []


# -- interrupted --------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_pull_leaves_nothing_half_written_and_the_next_reuses_what_was_verified(image, proxy,
                                                                                               tmp_path, sig):
    _, layers = image
    held = threading.Event()
    proxy.hold("GET", layers[3], held)
    store_dir = tmp_path / "s"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-m", "capstone", "--store", str(store_dir), "pull", "-q",
                              f"{proxy.host}/layers/app:1"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        store = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the other layers are in; the last one is stuck
            if store is None and (store_dir / "oci").is_dir():
                store = Store.open(store_dir)
            if store is not None and all(store.layout.has_blob(d) for d in layers[:3]) and \
                    proxy.blob_gets(layers[3]):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the pull did not get that far")
        time.sleep(0.3)  # the stuck layer's temporary file exists now
        t0 = time.monotonic()
        child.send_signal(sig)
        child.wait(20)
        assert time.monotonic() - t0 < 5  # promptly: the stalled read is cut, not waited out
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        held.set()
    assert child.returncode == 130
    assert b"Traceback" not in child.stderr.read()
    store = Store.open(store_dir)
    assert temp_files(store) == []  # nothing half-written
    assert store.resolve(f"{proxy.host}/layers/app:1") is None  # no name for an incomplete image
    assert not store.layout.has_blob(layers[3])
    assert all(store.layout.has_blob(d) for d in layers[:3])

    proxy.clear()
    r = capstone(store_dir, "pull", "-q", f"{proxy.host}/layers/app:1")
    assert r.returncode == 0, r.stderr
    assert [len(proxy.blob_gets(d)) for d in layers] == [1, 1, 1, 2]  # only the missing one again
    assert validate_layout(store.layout.path) == []


# -- uploads ------------------------------------------------------------------------------------------


def test_large_blobs_are_uploaded_in_chunks(registry, tmp_path):
    store_dir, _ = make_image(tmp_path / "image", layers=2)
    r = capstone(store_dir, "push", "-q", "test/layers:1", f"{registry.host}/layers/chunked:1",
                 env={"CAPSTONE_UPLOAD_CHUNK": "256K"})
    assert r.returncode == 0, r.stderr
    patches = [p for m, p in registry.requests() if m == "PATCH" and "/layers/chunked/" in p]
    sizes = [layer.size for layer in Store.open(store_dir).manifest("test/layers:1").layers]
    assert len(patches) == sum(-(-size // (256 << 10)) for size in sizes)
    other = Store.open(tmp_path / "other")
    assert pull(other, f"{registry.host}/layers/chunked:1").digest == r.stdout.strip()
    assert validate_layout(other.layout.path) == []


def test_a_failed_chunk_is_sent_again_from_where_the_upload_stands(proxy, tmp_path):
    store_dir, _ = make_image(tmp_path / "image", layers=1)
    proxy.status("PATCH", "/blobs/uploads/", 500, times=1)
    r = capstone(store_dir, "push", "-q", "test/layers:1", f"{proxy.host}/layers/rechunk:1",
                 env={"CAPSTONE_UPLOAD_CHUNK": "512K"})
    assert r.returncode == 0, r.stderr
    status_checks = [p for m, p, _ in proxy.requests if m == "GET" and "/blobs/uploads/" in p]
    assert len(status_checks) == 1  # the registry was asked where the upload stood
    assert pull(Store.open(tmp_path / "s"), f"{proxy.host}/layers/rechunk:1").digest == r.stdout.strip()


def test_a_push_to_another_repository_of_the_registry_mounts_the_blobs(image, registry, tmp_path):
    store_dir, layers = image
    r = capstone(store_dir, "push", "test/layers:1", f"{registry.host}/mount/one:1")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("mounted from another repository") == LAYERS + 1  # from layers/app, pushed before
    before = len(registry.requests())
    r = capstone(store_dir, "push", "test/layers:1", f"{registry.host}/mount/two:1")
    assert r.returncode == 0, r.stderr
    seen = registry.requests()[before:]
    mounts = [p for m, p in seen if m == "POST" and "mount=" in p]
    assert len(mounts) == LAYERS + 1 and all("from=mount%2Fone" in p for p in mounts)
    assert not [p for m, p in seen if m in ("PUT", "PATCH") and "/blobs/uploads/" in p]  # no byte sent again
    assert r.stderr.count("mounted from another repository") == LAYERS + 1
    # a store that pulled from one repository mounts from it too
    other = tmp_path / "other"
    assert capstone(other, "pull", "-q", f"{registry.host}/mount/one:1").returncode == 0
    r = capstone(other, "push", f"{registry.host}/mount/one:1", f"{registry.host}/mount/three:1")
    assert r.returncode == 0 and r.stderr.count("mounted from another repository") == LAYERS + 1, r.stderr


# -- what a command shows -------------------------------------------------------------------------------


def test_off_a_terminal_progress_is_plain_lines(image, registry, tmp_path):
    _, layers = image
    r = capstone(tmp_path / "s", "pull", f"{registry.host}/layers/app:1", env={"CAPSTONE_PROGRESS_INTERVAL": "0"})
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    short = layers[0].removeprefix("sha256:")[:12]
    running = [line for line in lines if line.startswith(f"Copying blob {short}: ") and " of 1.5 MiB (" in line]
    assert running and running[-1].endswith("%)")
    assert any(line.startswith(f"Copying blob {short}: done (1.5 MiB in ") for line in lines)
    assert "\x1b" not in r.stderr  # no terminal codes in a log
    r = capstone(tmp_path / "s", "pull", f"{registry.host}/layers/app:1")
    assert f"Copying blob {short}: skipped: already exists" in r.stderr.splitlines()
    r = capstone(tmp_path / "t", "pull", "-q", f"{registry.host}/layers/app:1")
    assert r.returncode == 0 and r.stderr == ""


def test_a_failed_transfer_says_how_far_it_got_and_one_that_never_moved_says_nothing():
    out = StringIO()
    view = LineView(out, interval=3600)
    view.begin("a", "blob aaaaaaaaaaaa", 80 << 20)
    view.advance("a", 12 << 20)
    view.end("a", "failed")
    view.begin("b", "blob bbbbbbbbbbbb", 100)  # refused before a byte moved: the error line says why
    view.end("b", "failed")
    assert out.getvalue() == "Copying blob aaaaaaaaaaaa: failed after 12.0 MiB of 80.0 MiB\n"


def test_on_a_terminal_progress_is_bars(image, registry, tmp_path):
    """stderr on a pseudo-terminal: rich draws a bar per blob (and ends with each one done)."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm", "COLUMNS": "120"}
    env.pop("NO_COLOR", None)
    child = subprocess.Popen([sys.executable, "-m", "capstone", "--store", str(tmp_path / "s"), "pull",
                              f"{registry.host}/layers/app:1"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=secondary, stdin=subprocess.DEVNULL)
    os.close(secondary)
    shown = b""
    while True:
        ready, _, _ = select.select([primary], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(primary, 65536)
        except OSError:  # the child closed its end
            break
        if not data:
            break
        shown += data
    os.close(primary)
    assert child.wait(30) == 0
    text = shown.decode(errors="replace")
    assert "━" in text and "\x1b[" in text  # rich's bar, drawn with terminal codes
    _, layers = image
    assert f"Copying blob {layers[0].removeprefix('sha256:')[:12]} done" in text
    assert "MiB" in text


def test_a_build_shows_its_pulls_and_its_large_copies(image, registry, tmp_path):
    _, layers = image
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    with open(ctx / "big", "wb") as f:  # 64 MiB and a bit: a large COPY (zeros: quick to compress)
        f.truncate((64 << 20) + 4096)
    (ctx / "Dockerfile").write_text(f"FROM {registry.host}/layers/app:1\nCOPY big /big\n")
    r = capstone(tmp_path / "s", "build", "--progress", "plain", str(ctx), env={"CAPSTONE_PROGRESS_INTERVAL": "0"})
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    short = layers[0].removeprefix("sha256:")[:12]
    assert any(line.startswith(f"Copying blob {short}: done (1.5 MiB in ") for line in lines)
    copying = [line for line in lines if line.startswith("Copying files of COPY big /big: ")]
    assert copying[-1].startswith("Copying files of COPY big /big: done (64.0 MiB in ")
    assert any(" of 64.0 MiB (" in line for line in copying)
    # the lines come where they belong: the pull under FROM, the copy under its step
    assert lines.index(copying[-1]) > lines.index("STEP 2/2: COPY big /big")
    r = capstone(tmp_path / "t", "build", "-q", str(ctx))
    assert r.returncode == 0 and r.stderr == "", r.stderr
