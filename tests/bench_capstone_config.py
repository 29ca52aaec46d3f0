"""How a build's time grows with the number of config instructions: it must grow linearly.

A script, not a test (timings never decide a test)::

    python -m compileall -q . && python tests/bench_capstone_config.py [--work DIR] [--sizes 12500,25000,50000,100000]

For each size N it writes one stage of N lines: ARG, ENV and LABEL lines (eight ARG to one of
each of the others, so that 100,000 lines still make an image config under the 4 MiB that
podman and skopeo accept: every ENV and LABEL adds a history entry), builds it with
``capstone build --no-cache`` in a child process, and prints the time, the time per line, and
the least-squares slope (CPU seconds per 1,000 lines: the child's user and system time, which
other work on a shared machine disturbs far less than the wall time, also printed) with how
well a straight line fits (R²). A
second series does LABEL lines only, up to 25,000 (about 27,000 fit in 4 MiB). Each size is
built ``--repeat`` times and the fastest run counts: other work on a shared machine only ever
adds time. Linear means
the time per line stays flat and R² is close to 1; before the config steps were recorded
instead of copied, 8,000 LABEL lines took 68 s and doubling the lines quadrupled the time.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def mixed(n: int) -> str:
    lines = ["FROM scratch"]
    for i in range(n):
        kind = i % 20
        if kind < 16:
            lines.append(f"ARG A{i}=value{i}")
        elif kind < 18:
            lines.append(f"ENV E{i}=$A{i - kind}")
        else:
            lines.append(f"LABEL l{i}=v{i}")
    return "\n".join(lines) + "\n"


def labels(n: int) -> str:
    return "FROM scratch\n" + "".join(f"LABEL l{i}=v{i}\n" for i in range(n))


def timed_build(work: Path, text: str) -> tuple[float, float]:
    ctx = work / "ctx"
    shutil.rmtree(ctx, ignore_errors=True)
    ctx.mkdir(parents=True)
    (ctx / "Dockerfile").write_text(text)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "capstone", "--store", str(work / "store"), "build", "--no-cache",
                        "-q", str(ctx)], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    took = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"the build failed:\n{r.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, took


def fit(points: list[tuple[int, float]]) -> tuple[float, float, float]:
    """Least squares ``t = a + b n``: (a, b, R²)."""
    k = len(points)
    mx = sum(n for n, _ in points) / k
    my = sum(t for _, t in points) / k
    sxx = sum((n - mx) ** 2 for n, _ in points)
    sxy = sum((n - mx) * (t - my) for n, t in points)
    b = sxy / sxx
    a = my - b * mx
    ss_res = sum((t - (a + b * n)) ** 2 for n, t in points)
    ss_tot = sum((t - my) ** 2 for _, t in points)
    return a, b, 1 - ss_res / ss_tot if ss_tot else 1.0


def series(work: Path, title: str, make, sizes: list[int], repeat: int) -> None:
    print(f"{title}:")
    points = []
    for n in sizes:
        cpu, wall = min(timed_build(work, make(n)) for _ in range(repeat))
        points.append((n, cpu))
        print(f"  {n:>7} lines  CPU {cpu:7.2f} s  {cpu / n * 1e6:7.1f} us/line   (wall {wall:6.2f} s)", flush=True)
    a, b, r2 = fit(points)
    print(f"  slope {b * 1000:.3f} CPU s per 1,000 lines (fixed cost {a:.2f} s), R^2 {r2:.4f}; "
          f"CPU time ratio largest/smallest {points[-1][1] / points[0][1]:.2f} for {sizes[-1] / sizes[0]:.0f}x the lines")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=None, help="scratch directory (default: a new temporary one)")
    p.add_argument("--sizes", default="12500,25000,50000,100000")
    p.add_argument("--label-sizes", default="3125,6250,12500,25000")
    p.add_argument("--repeat", type=int, default=3, help="builds per size; the fastest counts (the machine is shared)")
    args = p.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="capstone-bench-config-"))
    try:
        series(work, "ARG/ENV/LABEL lines, one stage", mixed, [int(x) for x in args.sizes.split(",")], args.repeat)
        series(work, "LABEL lines only", labels, [int(x) for x in args.label_sizes.split(",")], args.repeat)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
