"""Stages that need neither each other are built at the same time (capstone.engine.schedule),
each line of their output prefixed with its stage; a failure in one stops the others.

Concurrency is shown without a clock: two RUN steps of two stages wait for each other's mark in
a cache mount (the same directory for both), which only works when they run at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO, descendants, image_rootfs, make_context, mount_points_under

from capstone.engine import build
from capstone.engine.schedule import concurrent

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="RUN steps need root (namespaces, overlay mounts)")

#: each of two stages leaves its mark, then waits (at most 60 s) for the other's
RENDEZVOUS = """\
FROM capstone/busybox AS one
RUN --mount=type=cache,target=/meet,id={id} touch /meet/one && echo one is here && \\
    for i in $(seq 600); do [ -e /meet/two ] && break; sleep 0.1; done && [ -e /meet/two ] && echo one met two > /one
FROM capstone/busybox AS two
RUN --mount=type=cache,target=/meet,id={id} touch /meet/two && echo two is here && \\
    for i in $(seq 600); do [ -e /meet/one ] && break; sleep 0.1; done && [ -e /meet/one ] && echo two met one > /two
FROM capstone/busybox
COPY --from=one /one /one
COPY --from=two /two /two
"""


def test_independent_stages_run_at_the_same_time_and_each_line_names_its_stage(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", RENDEZVOUS.format(id=tmp_path.name))
    lines: list[str] = []
    out = tmp_path / "run-output"
    with open(out, "wb") as run_output:
        result = build(store, ctx, tags=["met"], network="none", no_cache=True, progress="plain",
                       log=lines.append, run_output=run_output)
    image = store.load("met")
    assert image.config_descriptor.digest == result.image_id
    assert [s.number for s in result.steps] == list(range(1, 8))
    assert sum(1 for s in result.steps if s.cached is False) == 4  # two RUNs, two COPYs
    # the RUN output of each stage, whole lines with its stage in front
    said = out.read_text().splitlines()
    assert "[1/3] one is here" in said and "[2/3] two is here" in said
    # every progress line of the two concurrent stages names its stage, the step lines and
    # the "-->" lines alike
    for pos, name in (("1/3", "one"), ("2/3", "two")):
        mine = [line for line in lines if line.startswith(f"[{pos}] ")]
        assert any(f"FROM capstone/busybox AS {name}" in line for line in mine)
        assert any(line.startswith(f"[{pos}] --> ") for line in mine)
    assert not [line for line in lines if line.startswith("-->") and lines.index(line) < lines.index(
        next(line for line in lines if "STEP 5/7" in line))]
    # what the COPYs took from each stage

    root = image_rootfs(store, image, tmp_path / "root")
    assert (root / "one").read_text() == "one met two\n" and (root / "two").read_text() == "two met one\n"

    # and again from the cache: every step a hit, nothing run
    again = build(store, ctx, tags=["met"], network="none", progress="quiet")
    assert again.image_id == result.image_id and not again.ran


def test_a_failing_stage_stops_the_others_and_leaves_nothing(store, tmp_path):
    """Stage two fails at once while stage one's RUN is running: one is stopped (its mark of
    a finished run never appears), the error names stage two's line, and no process, mount or
    scratch directory is left."""
    meet = tmp_path.name
    ctx = make_context(tmp_path / "ctx", f"""\
FROM capstone/busybox AS one
RUN --mount=type=cache,target=/meet,id={meet} touch /meet/started && sleep 60 && touch /meet/finished
FROM capstone/busybox AS two
RUN --mount=type=cache,target=/meet,id={meet} for i in $(seq 600); do [ -e /meet/started ] && break; sleep 0.1; done; exit 3
FROM capstone/busybox
COPY --from=one /etc/passwd /one
COPY --from=two /etc/passwd /two
""")
    script = (
        "import sys\n"
        "from capstone.engine import build\n"
        "from capstone.store import Store\n"
        "build(Store.open(sys.argv[1]), sys.argv[2], network='none', no_cache=True, progress='quiet')\n"
    )
    r = subprocess.run([sys.executable, "-c", script, str(store.path), str(ctx)], capture_output=True, text=True,
                       timeout=50, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 1
    assert "Dockerfile:4:" in r.stderr and "returned 3" in r.stderr
    cache = Path(store.path) / "build-cache-mounts"
    marks = {p.name for d in cache.iterdir() for p in d.iterdir()}
    assert "started" in marks and "finished" not in marks
    assert not [c for c in descendants().values() if c == "sleep"]
    assert mount_points_under(store.path) == []
    assert [p for p in (Path(store.path) / "tmp").iterdir() if p.name.startswith("build-")] == []


def test_a_chain_of_stages_is_built_in_order_in_this_process(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", (
        "FROM capstone/busybox AS a\nRUN echo a > /a\n"
        "FROM a AS b\nRUN echo b > /b\n"
        "FROM capstone/busybox\nCOPY --from=b /a /b /\n"))
    from capstone.engine.plan import make_plan, read_dockerfile

    assert not concurrent(make_plan(read_dockerfile(ctx / "Dockerfile"), {}))
    assert concurrent(make_plan(read_dockerfile(make_context(tmp_path / "r", RENDEZVOUS.format(id="x")) / "Dockerfile"), {}))
    out = tmp_path / "run-output"
    with open(out, "wb") as run_output:
        build(store, ctx, network="none", no_cache=True, run_output=run_output)
    assert not out.read_text().startswith("[")


def test_stages_from_a_big_copy_wait_for_its_snapshot(store, tmp_path):
    """A COPY big enough to have its snapshot made by a child process of the builder, then two
    stages built on it at the same time: each RUN sees the copied files (the builder finishes
    that snapshot before it starts the stages, whose processes could not wait for it)."""
    from capstone.engine.executor import PARALLEL_SNAPSHOT_ENTRIES

    ctx = make_context(tmp_path / "ctx", (
        "FROM capstone/busybox AS base\nCOPY many /many\n"
        "FROM base AS one\nRUN ls /many | wc -l > /one\n"
        "FROM base AS two\nRUN ls /many | wc -l > /two\n"
        "FROM capstone/busybox\nCOPY --from=one /one /one\nCOPY --from=two /two /two\n"))
    count = PARALLEL_SNAPSHOT_ENTRIES + 10
    (ctx / "many").mkdir()
    for i in range(count):
        (ctx / "many" / f"f{i}").write_text(str(i))
    result = build(store, ctx, tags=["big-base"], network="none", no_cache=True, progress="quiet")
    assert sum(1 for s in result.steps if s.cached is False) == 5

    root = image_rootfs(store, "big-base", tmp_path / "root")
    assert (root / "one").read_text() == (root / "two").read_text() == f"{count}\n"
    assert [p for p in (Path(store.path) / "tmp").iterdir() if p.name.startswith("build-")] == []
