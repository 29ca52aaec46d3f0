"""SOURCE_DATE_EPOCH: one timestamp for a reproducible build, read as docker buildx reads it.

buildx passes ``SOURCE_DATE_EPOCH`` from its environment as the build argument of that name
unless ``--build-arg`` sets it (docker/buildx#1482); BuildKit's Dockerfile frontend also takes
the default of a global ``ARG SOURCE_DATE_EPOCH=...``, dates the image config and every history
entry with it, and rejects a value that is not a number ("invalid SOURCE_DATE_EPOCH: ...", its
``dockerfile_source_date_epoch_test.go``). The files of the layers the build writes get their
mtimes clamped to it (BuildKit's ``rewrite-timestamp``), so two ``--no-cache`` builds of one
context give one image id. Real builds with the CLI, checked on the stored image.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from support import capstone, make_context

from capstone.store import Store
from part2_manual_oci import rfc3339
from part4_tar import open_decompressed

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds need root (namespaces, overlay mounts)")

EPOCH = 1_700_000_000
DOCKERFILE = """\
FROM capstone/busybox
ARG SOURCE_DATE_EPOCH
COPY src/ /app/
ADD arch.tar.gz /arch/
WORKDIR /w/d
RUN echo run > out && mkdir -p /made/x && echo "$SOURCE_DATE_EPOCH" > /epoch
COPY <<EOT /here.txt
hello
EOT
ENV A=b
"""


def _archive() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("in/x.txt")
        info.size, info.mtime = 1, 2_000_000_000  # after the epoch: clamped
        tf.addfile(info, io.BytesIO(b"x"))
    return buf.getvalue()


@pytest.fixture
def ctx(tmp_path) -> Path:
    ctx = make_context(tmp_path / "ctx", DOCKERFILE, {"src/new": "n", "src/old": "o", "arch.tar.gz": _archive()})
    os.utime(ctx / "src/old", (1_000_000_000, 1_000_000_000))  # before the epoch: kept
    return ctx


def build(store: Path, ctx: Path, *args: str, env: dict | None = None) -> str:
    env = {"SOURCE_DATE_EPOCH": None, **(env or {})}
    r = capstone(store, "build", "-q", "--network", "none", "--no-cache", "-t", "epoch:1", *args, str(ctx),
                 env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def config(store: Path, ref: str = "epoch:1"):
    return Store.open(store).load(ref).config


def layer_mtimes(store: Path, skip: int) -> dict[str, int]:
    """Every entry of the image's layers after the first ``skip`` (the base's): name -> mtime."""
    out = {}
    for layer in Store.open(store).load("epoch:1").layers[skip:]:
        with layer.open() as raw, open_decompressed(raw) as f, tarfile.open(fileobj=f, mode="r|") as tf:
            for m in tf:
                out[m.name] = m.mtime
    return out


def test_environment_dates_config_history_and_layers(ctx, tmp_path):
    store = tmp_path / "store"
    build(store, ctx, env={"SOURCE_DATE_EPOCH": str(EPOCH)})
    cfg = config(store)
    assert cfg.created == rfc3339(EPOCH)
    base_layers = len(Store.open(store).load("capstone/busybox").layers)
    ours = cfg.history[-7:]  # the seven steps after FROM
    assert [h.created for h in ours] == [rfc3339(EPOCH)] * 7
    mtimes = layer_mtimes(store, base_layers)
    assert mtimes["app/old"] == 1_000_000_000  # clamped, not set: older files keep their time
    assert mtimes["arch/in/x.txt"] == EPOCH
    assert mtimes["w/d/out"] == EPOCH and mtimes["made/x"] == EPOCH and mtimes["here.txt"] == EPOCH
    assert max(mtimes.values()) == EPOCH
    r = capstone(store, "run", "--rm", "--network", "none", "epoch:1", "cat", "/epoch")
    assert r.stdout == f"{EPOCH}\n", r.stderr  # RUN sees it when the stage declares ARG


def test_two_no_cache_builds_give_one_image_id(ctx, tmp_path):
    env = {"SOURCE_DATE_EPOCH": str(EPOCH)}
    first = build(tmp_path / "a", ctx, env=env)
    # later, in another store, with every context file touched: the same image
    for path in ctx.rglob("*"):
        if path.name != "old":
            os.utime(path)
    assert build(tmp_path / "b", ctx, env=env) == first
    assert build(tmp_path / "a", ctx, env=env) == first
    # without it the image is dated by the clock
    assert build(tmp_path / "c", ctx) != first
    assert config(tmp_path / "c").created != rfc3339(EPOCH)


def test_build_arg_wins_over_the_environment_and_empty_unsets(ctx, tmp_path):
    store = tmp_path / "store"
    build(store, ctx, "--build-arg", "SOURCE_DATE_EPOCH=1600000000", env={"SOURCE_DATE_EPOCH": str(EPOCH)})
    assert config(store).created == rfc3339(1_600_000_000)
    build(store, ctx, env={"SOURCE_DATE_EPOCH": ""})
    assert config(store).created not in (rfc3339(EPOCH), rfc3339(0))


def test_global_arg_default_is_used(tmp_path):
    ctx = make_context(tmp_path / "ctx", "ARG SOURCE_DATE_EPOCH=1445412480\nFROM scratch\nCOPY f /f\n", {"f": "f"})
    store = tmp_path / "store"
    build(store, ctx)
    assert config(store).created == rfc3339(1_445_412_480)
    build(store, ctx, env={"SOURCE_DATE_EPOCH": str(EPOCH)})  # the environment is the build arg
    assert config(store).created == rfc3339(EPOCH)


def _store_state(store: Path) -> list:
    return sorted((str(p.relative_to(store)), p.read_bytes() if p.name.endswith(".json") else p.stat().st_size)
                  for p in store.rglob("*") if p.is_file())


def test_a_bad_value_fails_in_one_line_and_changes_nothing(ctx, tmp_path):
    store = tmp_path / "store"
    build(store, ctx)
    before = _store_state(store)
    for value in ["abc", "1.5", "12 ", "-1", "99999999999999999999"]:
        r = capstone(store, "build", "-q", "--network", "none", "-t", "epoch:2", str(ctx),
                     env={"SOURCE_DATE_EPOCH": value})
        assert (r.returncode, r.stderr) == (1, f"capstone: invalid SOURCE_DATE_EPOCH: {value}\n")
        assert _store_state(store) == before
