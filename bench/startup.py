"""The builder's fixed cost: ``capstone --help``, a fully cached rebuild of ``hello`` and of
``debian-apt`` (against buildah's cached build), best and median of N runs.

A script, not a test (timings never decide a test)::

    python bench/startup.py WORKDIR [--runs N] [--no-buildah] [NAMES...]

Run ``bench/setup_bases.sh WORKDIR WORKDIR/store`` first (the base images). It compiles the
bytecode (this environment may set ``PYTHONDONTWRITEBYTECODE=1``), makes the contexts in
``WORKDIR/ctx`` when they are missing, builds each benchmark once so that the cache holds every
step, then times N cached rebuilds with the same command line as ``bench/run.sh``, and as many of
``python -c pass`` (the interpreter's own start-up here, ``.pth`` files included, which no
change to the builder removes). On a shared machine the minimum is the figure to compare; the
load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def timed(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        times.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{r.stderr[-2000:]}")
    return times


def row(name: str, times: list[float], ref: list[float] | None = None) -> str:
    line = f"{name:<28} {min(times):8.3f} {statistics.median(times):8.3f}"
    if ref:
        line += f" {min(ref):8.3f} {min(times) / min(ref):7.2f}"
    return line


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("work", type=Path, help="the work directory of setup_bases.sh and run.sh")
    p.add_argument("--runs", type=int, default=10, help="runs of each command (default 10)")
    p.add_argument("--no-buildah", action="store_true", help="leave buildah's cached builds out")
    p.add_argument("names", nargs="*", default=["hello", "debian-apt"])
    args = p.parse_args()
    work = args.work.resolve()
    store, ctx = work / "store", work / "ctx"
    py = sys.executable
    subprocess.run([py, "-m", "compileall", "-q", "-j", "0", str(REPO / "capstone"),
                    *map(str, sorted(REPO.glob("part*_*")))], check=True, stdout=subprocess.DEVNULL)
    if not (ctx / "hello").is_dir():
        subprocess.run([str(HERE / "make_contexts.sh"), str(ctx)], check=True, stdout=subprocess.DEVNULL)
    load0 = os.getloadavg()
    print(f"{'command':<28} {'min':>8} {'median':>8} {'buildah':>8} {'ratio':>7}   ({args.runs} runs, {py})")
    print(row("python -c pass", timed([py, "-c", "pass"], args.runs)))
    print(row("capstone --help", timed([py, "-m", "capstone", "--help"], args.runs)))
    for name in args.names:
        cap = [py, "-m", "capstone", "--store", str(store), "build", "--network", "host", "--progress",
               "quiet", "-t", f"bench-{name}", str(ctx / name)]
        timed(cap, 1)  # fills the cache when it is empty
        ours = timed(cap, args.runs)
        ref = None
        if not args.no_buildah:
            bah = ["buildah", "bud", "--pull=never", "--runtime", "runc", "--network", "host", "--layers",
                   "-q", "-t", f"bench-{name}", str(ctx / name)]
            timed(bah, 1)
            ref = timed(bah, args.runs)
        print(row(f"{name} cached", ours, ref))
    load1 = os.getloadavg()
    print(f"load average before {load0[0]:.2f} {load0[1]:.2f}, after {load1[0]:.2f} {load1[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
