"""Times the snapshot of a big COPY: the manyfiles tree (20,000 files in 200 directories).

A script, not a test (timings never decide a test)::

    python -m compileall -q . && python tests/bench_capstone_copy.py [--work DIR] [--repeat N]

A RUN after a COPY needs the COPY's layer as a directory: ``materialize`` writes it from the
copied files through part 4's RootDir (every name resolved inside the snapshot, the last
component never followed), in a child process beside the layer when the COPY is big. This
prints, for the manyfiles COPY plan: ``materialize`` alone (wall and CPU seconds, min and
median of N runs, in this process), and the COPY step of a ``--no-cache`` build of
``FROM busybox; WORKDIR /srv; COPY tree/ ./node_modules/; RUN true`` (the layer, its snapshot
made by the child meanwhile). The machine is shared: compare figures of one run, and prefer the
minimum. The contexts come from bench/make_contexts.sh (made once in DIR/ctx).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_capstone_build import BENCH, busybox_rootfs  # noqa: E402

DOCKERFILE = "FROM busybox:bench\nWORKDIR /srv\nCOPY tree/ ./node_modules/\nRUN true\n"


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def summary(xs: list[float]) -> str:
    return f"min {min(xs):6.2f}  median {statistics.median(xs):6.2f}"


def main() -> int:
    from capstone.dockerfile import parse
    from capstone.engine import build
    from capstone.engine.contenthash import FileDigests
    from capstone.engine.copystep import made_time, materialize, plan_copy
    from capstone.engine.rootfs import RootfsView
    from capstone.engine.sources import ContextSource
    from capstone.store import Store

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("/var/tmp/capstone-copy-bench"))
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    work = args.work
    ctx = work / "ctx" / "manyfiles"
    if not (ctx / "tree").is_dir():
        subprocess.run([str(BENCH / "make_contexts.sh"), str(work / "ctx")], check=True, stdout=subprocess.DEVNULL)

    ins = next(i for i in parse(DOCKERFILE.encode()).instructions if i.keyword == "COPY")
    walls, cpus = [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(dir=work) as tmp:
            plan = plan_copy(ins, ContextSource(ctx), RootfsView([]), "/srv", digests=FileDigests(),
                             staging=Path(tmp) / "heredocs", made_mtime=made_time(0))
            t0, c0 = time.perf_counter(), cpu_seconds()
            materialize(plan, Path(tmp) / "snapshot")
            walls.append(time.perf_counter() - t0)
            cpus.append(cpu_seconds() - c0)
    print(f"manyfiles COPY plan: {len(plan)} entries")
    print(f"materialize  wall  {summary(walls)}")
    print(f"materialize  cpu   {summary(cpus)}")

    store_dir = work / "store"
    shutil.rmtree(store_dir, ignore_errors=True)
    store = Store.open(store_dir)
    store.import_rootfs(busybox_rootfs(work / "busybox-rootfs"), "busybox:bench")
    dockerfile = work / "Dockerfile.copy"
    dockerfile.write_text(DOCKERFILE)
    steps, totals = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        with open(os.devnull, "wb") as devnull:
            result = build(store, ctx, dockerfile, no_cache=True, network="none", run_output=devnull)
        totals.append(time.perf_counter() - t0)
        steps.append(next(s for s in result.steps if s.kind == "COPY").seconds)
    print(f"COPY step    wall  {summary(steps)}  (the layer; its snapshot made by a child meanwhile)")
    print(f"build        wall  {summary(totals)}  (FROM, WORKDIR, COPY, RUN true; --no-cache)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
