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

``manylayers`` is hello's Dockerfile over a base of ``--base-layers`` layers (default 60: busybox
and 59 COPY steps, with an ENV and a LABEL after each, so its history has 177 entries more),
made here in ``WORKDIR/ctx`` and built once into each store as ``manylayers-base:bench``: what a
cache hit costs must not grow with the base's size.

``--instructions`` adds the number of instructions each command executes (valgrind's
cachegrind, one run each, about 15 s): unlike a time, it does not move with the machine's load,
so two versions of the code compare exactly on a busy machine.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
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


def instructions(argv: list[str]) -> int:
    """Instructions ``argv`` executes (user space, the process and its children), by cachegrind."""
    r = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", "--trace-children=yes",
                        "--cachegrind-out-file=/dev/null", *argv],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    counts = re.findall(r"I\s+refs:\s+([\d,]+)", r.stderr)
    if r.returncode != 0 or not counts:
        raise SystemExit(f"valgrind {' '.join(argv)} failed:\n{r.stderr[-2000:]}")
    return sum(int(c.replace(",", "")) for c in counts)


def many_layer_contexts(ctx: Path, layers: int) -> tuple[Path, Path]:
    """The contexts of ``manylayers``: its base (busybox:bench and ``layers - 1`` COPY steps,
    an ENV and a LABEL after each) and hello's Dockerfile over it."""
    base, top = ctx / "manylayers-base", ctx / "manylayers"
    lines = ["FROM busybox:bench"]
    for i in range(1, layers):
        lines += [f"COPY f{i:03d} /layers/", f"ENV LAYER_{i:03d}={i}", f"LABEL bench.layer.{i:03d}=layer-{i}"]
    text = "\n".join(lines) + "\n"
    if not (base / "Dockerfile").is_file() or (base / "Dockerfile").read_text() != text:
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        for i in range(1, layers):
            (base / f"f{i:03d}").write_text(f"layer {i}\n")
        (base / "Dockerfile").write_text(text)
    if not top.is_dir():  # made once: a fresh copy would make its files' digests be read again
        shutil.copytree(ctx / "hello", top)
        dockerfile = top / "Dockerfile"
        dockerfile.write_text(dockerfile.read_text().replace("FROM busybox:bench", "FROM manylayers-base:bench", 1))
    return base, top


def row(name: str, times: list[float], ref: list[float] | None = None, count: int | None = None) -> str:
    line = f"{name:<28} {min(times):8.3f} {statistics.median(times):8.3f}"
    line += f" {min(ref):8.3f} {min(times) / min(ref):7.2f}" if ref else " " * 16
    if count is not None:
        line += f" {count / 1e6:10.0f}"
    return line


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("work", type=Path, help="the work directory of setup_bases.sh and run.sh")
    p.add_argument("--runs", type=int, default=10, help="runs of each command (default 10)")
    p.add_argument("--no-buildah", action="store_true", help="leave buildah's cached builds out")
    p.add_argument("--instructions", action="store_true",
                   help="also count each command's instructions (millions; valgrind)")
    p.add_argument("--base-layers", type=int, default=60, help="layers of manylayers' base (default 60)")
    p.add_argument("names", nargs="*", default=["hello", "debian-apt"],
                   help="benchmarks: hello, debian-apt, manylayers, ... (default hello debian-apt)")
    args = p.parse_intermixed_args()
    work = args.work.resolve()
    store, ctx = work / "store", work / "ctx"
    py = sys.executable
    subprocess.run([py, "-m", "compileall", "-q", "-j", "0", str(REPO / "capstone"),
                    *map(str, sorted(REPO.glob("part*_*")))], check=True, stdout=subprocess.DEVNULL)
    if not (ctx / "hello").is_dir():
        subprocess.run([str(HERE / "make_contexts.sh"), str(ctx)], check=True, stdout=subprocess.DEVNULL)
    if args.instructions and not shutil.which("valgrind"):
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")

    def count(argv: list[str]) -> int | None:
        return instructions(argv) if args.instructions else None

    load0 = os.getloadavg()
    extra = f"{'Minstr':>11}" if args.instructions else ""
    print(f"{'command':<28} {'min':>8} {'median':>8} {'buildah':>8} {'ratio':>7}{extra}   ({args.runs} runs, {py})")
    for name, argv in (("python -c pass", [py, "-c", "pass"]), ("capstone --help", [py, "-m", "capstone", "--help"])):
        print(row(name, timed(argv, args.runs), count=count(argv)))
    if "manylayers" in args.names:
        base, _ = many_layer_contexts(ctx, args.base_layers)
        timed([py, "-m", "capstone", "--store", str(store), "build", "--progress", "quiet",
               "-t", "manylayers-base:bench", str(base)], 1)
        if not args.no_buildah:
            timed(["buildah", "bud", "--pull=never", "--layers", "-q", "-t", "manylayers-base:bench", str(base)], 1)
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
        print(row(f"{name} cached", ours, ref, count(cap)))
    load1 = os.getloadavg()
    print(f"load average before {load0[0]:.2f} {load0[1]:.2f}, after {load1[0]:.2f} {load1[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
