"""How build cost grows with the context: many small files, then one big file.

::

    python bench/scale.py WORKDIR                          # every size, both builders
    python bench/scale.py WORKDIR --files 1000,10000 --sizes 64M --builders capstone
    python bench/scale.py WORKDIR --files 100000 --sizes '' --copy two --builders capstone

Each point is a context whose Dockerfile is ``FROM busybox:bench`` + ``COPY data /data``: N
small files (100 folders of N/100 files, 40 to 300 bytes each) or one file of SIZE (random
bytes, incompressible). ``--copy`` chooses another kind of copy of the N files, each planned
its own way before: ``two`` directories of N files each (``COPY data more /data/``: the same
folders, other names), ``parents`` (``COPY --parents data/**/*.txt /data/``), ``archive`` (``ADD``
of a tar of the N files). Each is built by buildah and by the capstone (``--store WORKDIR/store``),
cold (``--no-cache``) then cached, as bench/run.sh does; ``setup_bases.sh WORKDIR WORKDIR/store``
makes ``busybox:bench`` for both first. For every build it prints the wall time and the peak
resident memory of the builder (``ru_maxrss`` of the process and the children it waited for,
from ``wait4``), then per builder the slope: seconds per 10,000 files and per GiB, a least-squares
line through the points, and the same between each pair of neighbouring points (a cost linear in
the input keeps those about equal; a step quadratic in the number of files makes them grow).

The contexts are kept in WORKDIR/scale (made again only when missing); each point's images are
removed after it (``buildah rmi``; the capstone's ``rmi`` and ``prune --all``, which empties its
build cache), so the disk holds one point at a time: about 4x the largest size (the context,
buildah's copy, the capstone's layer blob and snapshot).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_FILES = "1000,10000,100000,200000"
DEFAULT_SIZES = "64M,512M,4G"
UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in UNITS:
        return int(float(text[:-1]) * UNITS[text[-1]])
    return int(text)


def shown_size(n: int) -> str:
    for unit in ("G", "M", "K"):
        if n >= UNITS[unit] and n % UNITS[unit] == 0:
            return f"{n // UNITS[unit]}{unit}"
    return str(n)


#: the COPY of each kind (``--copy``)
COPIES = {"dir": "COPY data /data", "two": "COPY data more /data/", "parents": "COPY --parents data/**/*.txt /data/",
          "archive": "ADD data.tar /data/"}


def make_files(data: Path, count: int, seed: int, prefix: str = "f") -> None:
    rng = random.Random(seed)
    folders = 100
    for d in range(folders):
        folder = data / f"d{d:03d}"
        folder.mkdir(parents=True)
        for i in range(count // folders + (1 if d < count % folders else 0)):
            (folder / f"{prefix}{i:06d}.txt").write_bytes(rng.randbytes(20).hex().encode() * rng.randint(1, 7) + b"\n")


def make_files_context(root: Path, count: int, copy: str = "dir") -> Path:
    ctx = root / (f"files-{count}" if copy == "dir" else f"files-{count}-{copy}")
    if (ctx / ".complete").exists():
        return ctx
    shutil.rmtree(ctx, ignore_errors=True)
    make_files(ctx / "data", count, count)
    if copy == "two":
        make_files(ctx / "more", count, count + 1, "g")
    elif copy == "archive":
        subprocess.run(["tar", "-C", str(ctx / "data"), "-cf", str(ctx / "data.tar"), "."], check=True)
        shutil.rmtree(ctx / "data")
    (ctx / "Dockerfile").write_text(f"FROM busybox:bench\n{COPIES[copy]}\n")
    (ctx / ".complete").touch()
    return ctx


def make_big_context(root: Path, size: int) -> Path:
    ctx = root / f"size-{shown_size(size)}"
    if (ctx / ".complete").exists():
        return ctx
    shutil.rmtree(ctx, ignore_errors=True)
    (ctx / "data").mkdir(parents=True)
    rng = random.Random(size)
    block = 1 << 20
    with open(ctx / "data" / "blob.bin", "wb") as f:
        left = size
        while left:
            n = min(block, left)
            f.write(rng.randbytes(n))  # new random bytes each block: nothing to compress or deduplicate
            left -= n
    (ctx / "Dockerfile").write_text("FROM busybox:bench\nCOPY data /data\n")
    (ctx / ".complete").touch()
    return ctx


PR_SET_CHILD_SUBREAPER = 36
SAMPLE_SECONDS = 0.02


def become_subreaper() -> None:
    """Orphans below this script (a child the builder forked and left) become its children,
    where :func:`tree_rss` still sees them, instead of init's."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def tree_rss(top: int) -> int:
    """The resident memory (bytes) of every process below ``top`` (not ``top`` itself), summed
    as proportional set sizes: a page two processes share (a forked child's, until either
    writes it) is counted once between them."""
    total = 0
    stack = [top]
    while stack:
        pid = stack.pop()
        try:
            if pid != top:
                with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
                    for line in f:
                        if line.startswith(b"Pss:"):
                            total += int(line.split()[1]) * 1024
                            break
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children", "rb") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue  # it ended meanwhile
    return total


def reap_orphans() -> None:
    """Wait for the processes left to this subreaper (zombies, or still running)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, 0)
        except ChildProcessError:
            return
        if not pid:
            return


def timed(argv: list[str], log: Path) -> tuple[float, int, int]:
    """Run ``argv``: (seconds, peak RSS in bytes, exit code). The peak is the larger of
    ``wait4``'s ``ru_maxrss`` and the sampled peak of the summed RSS of every process below
    this one (see the module's docstring)."""
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        me = os.getpid()
        while not done.is_set():
            peak = max(peak, tree_rss(me))
            done.wait(SAMPLE_SECONDS)

    with open(log, "ab") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        reap_orphans()  # what the builder left running is measured until it ends
        done.set()
        sampler.join()
    return seconds, max(usage.ru_maxrss * 1024, peak), proc.returncode


def builders(py: str, store: Path) -> dict[str, tuple]:
    return {
        "buildah": (
            lambda ctx, tag, cold: ["buildah", "bud", "--pull=never", "--runtime", "runc", "--layers", "-q",
                                    *(["--no-cache"] if cold else []), "-t", tag, str(ctx)],
            lambda tag: [["buildah", "rmi", "-f", tag]],
        ),
        "capstone": (
            lambda ctx, tag, cold: [py, "-m", "capstone", "--store", str(store), "build", "--progress", "quiet",
                                    *(["--no-cache"] if cold else []), "-t", tag, str(ctx)],
            lambda tag: [[py, "-m", "capstone", "--store", str(store), "rmi", tag],
                         [py, "-m", "capstone", "--store", str(store), "prune", "--all"]],
        ),
    }


def fit(points: list[tuple[float, float]]) -> float:
    """The least-squares slope of (x, y) points."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("--files", default=DEFAULT_FILES, help=f"numbers of small files (default {DEFAULT_FILES}; '' for none)")
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help=f"big file sizes (default {DEFAULT_SIZES}; '' for none)")
    ap.add_argument("--builders", default="buildah,capstone")
    ap.add_argument("--copy", choices=sorted(COPIES), default="dir", help="the kind of COPY of the files (default dir)")
    args = ap.parse_args(argv)
    become_subreaper()
    py = os.environ.get("PYTHON") or sys.executable
    work = args.work.resolve()
    ctx_root = work / "scale"
    ctx_root.mkdir(parents=True, exist_ok=True)
    # measure what an installed copy runs: compiled bytecode (PYTHONDONTWRITEBYTECODE may be set)
    root = HERE.parent
    subprocess.run([py, "-m", "compileall", "-q", "-j", "0", str(root / "capstone"),
                    *map(str, root.glob("part*_*/"))], stdout=subprocess.DEVNULL, check=False)
    chosen = {k: v for k, v in builders(py, work / "store").items() if k in args.builders.split(",")}
    files = [int(n) for n in args.files.split(",") if n]
    sizes = [parse_size(s) for s in args.sizes.split(",") if s]
    points = [("files", n, lambda n=n: make_files_context(ctx_root, n, args.copy)) for n in files] + \
             [("bytes", s, lambda s=s: make_big_context(ctx_root, s)) for s in sizes]
    results: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    print(f"{'point':<14} {'builder':<9} {'cold s':>8} {'cold RSS':>9} {'cached s':>9} {'cached RSS':>10}", flush=True)
    for kind, n, make in points:
        ctx = make()
        label = (f"{n} files" + (f" {args.copy}" if args.copy != "dir" else "")) if kind == "files" else shown_size(n)
        for name, (build, remove) in chosen.items():
            tag = f"scale-{kind}-{n}".lower()
            log = work / f"scale-{name}.err"
            cold, cold_rss, rc1 = timed(build(ctx, tag, True), log)
            cached, cached_rss, rc2 = timed(build(ctx, tag, False), log)
            for cmd in remove(tag):
                subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            if rc1 or rc2:
                print(f"{label:<14} {name:<9} failed (exit {rc1 or rc2}; see {log})", flush=True)
                continue
            print(f"{label:<14} {name:<9} {cold:8.2f} {cold_rss / 1e6:7.0f}MB {cached:9.2f} {cached_rss / 1e6:8.0f}MB", flush=True)
            x = n / 10_000 if kind == "files" else n / (1 << 30)
            results.setdefault((kind, name, "cold"), []).append((x, cold))
            results.setdefault((kind, name, "cached"), []).append((x, cached))
    print()
    for (kind, name, mode), pts in sorted(results.items()):
        if len(pts) < 2:
            continue
        unit = "s per 10,000 files" if kind == "files" else "s per GiB"
        steps = ", ".join(f"{(y2 - y1) / (x2 - x1):.3f}" for (x1, y1), (x2, y2) in zip(pts, pts[1:]))
        print(f"slope {kind:<5} {name:<9} {mode:<6} {fit(pts):8.3f} {unit} (between neighbours: {steps})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
