"""Times ``capstone build`` on the benchmark Dockerfiles, cold (``--no-cache``) and cached.

A script, not a test (timings never decide a test)::

    python tests/bench_capstone_build.py [--work DIR] [--fresh] [hello manyfiles bigfile multistage]

It makes the benchmark contexts with bench/make_contexts.sh (once, in DIR/ctx), imports
``busybox:bench`` from the host's busybox-static into DIR/store, and runs the same command
lines as bench/run.sh. ``--fresh`` starts from an empty store each time (no layer snapshots
left from an earlier run). buildah's times on this machine kind are printed beside ours, from
an earlier run of bench/run.sh (bench/README.md says how to measure them again).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH = Path(os.environ.get("CAPSTONE_BENCH", HERE.parent / "bench"))
#: buildah 1.28.2 (runc, overlay storage) on the project's 2-core machine: cold, cached seconds
BUILDAH = {"hello": (0.93, 0.45), "manyfiles": (10.67, 5.35), "bigfile": (18.78, 3.54),
           "multistage": (2.36, 0.75), "debian-apt": (7.78, 0.32)}


def busybox_rootfs(root: Path) -> Path:
    if (root / "bin/busybox").exists():
        return root
    for d in ("bin", "etc", "tmp", "root", "usr/bin", "sbin"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(shutil.which("busybox") or "/bin/busybox", root / "bin/busybox")
    applets = subprocess.run([str(root / "bin/busybox"), "--list"], capture_output=True, text=True).stdout.split()
    for a in applets:
        if not (root / "bin" / a).exists():
            os.symlink("busybox", root / "bin" / a)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")
    os.chmod(root / "tmp", 0o1777)
    return root


def capstone(store: Path, *args: str) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "capstone", "--store", str(store), *args],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit(f"capstone {' '.join(args)} failed:\n{r.stderr}")
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("/var/tmp/capstone-build-bench"))
    p.add_argument("--fresh", action="store_true", help="a new store for every benchmark")
    p.add_argument("names", nargs="*", default=["hello", "manyfiles", "bigfile", "multistage"])
    args = p.parse_args()
    work = args.work
    ctx = work / "ctx"
    if not (ctx / "bigfile" / "blob.bin").exists():
        subprocess.run([str(BENCH / "make_contexts.sh"), str(ctx)], check=True, stdout=subprocess.DEVNULL)
    rootfs = busybox_rootfs(work / "busybox-rootfs")
    print(f"{'bench':<11} {'cold':>7} {'cached':>7} {'buildah':>8} {'b-cache':>8} {'ratio':>6} {'r-cache':>7}")
    for name in args.names:
        store = work / ("store-" + name if args.fresh else "store")
        if args.fresh and store.exists():
            shutil.rmtree(store)
        capstone(store, "import", str(rootfs), "busybox:bench")
        common = ["build", "--network", "host", "--progress", "quiet", "-t", f"bench-{name}", str(ctx / name)]
        cold = capstone(store, *common[:1], "--no-cache", *common[1:])
        cached = capstone(store, *common)
        b_cold, b_cached = BUILDAH.get(name, (float("nan"), float("nan")))
        print(f"{name:<11} {cold:7.2f} {cached:7.2f} {b_cold:8.2f} {b_cached:8.2f} {cold / b_cold:6.2f} "
              f"{cached / b_cached:7.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
