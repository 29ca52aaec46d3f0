"""The cost of one RUN container: part 6's runtime against ``runc run``, on the same bundle.

Usage: python bench/runstep.py WORKDIR [--runs N] [--only runc,part6,capstone]

Makes ``WORKDIR/runstep/bundle`` once (a busybox root filesystem, the config.json ``runc spec``
writes with ``process.terminal`` false, ``true`` as the command and Docker's seccomp profile,
which a RUN step gets from either runtime), then times ``N`` runs
(default 30) of each, alternating so that a burst of other work on the machine hits each
alike:

- ``runc``: ``runc run -b BUNDLE ID`` as a child process (what buildah does per RUN);
- ``part6``: ``part6_runtime.run_bundle(BUNDLE)`` in this process (the runtime a builder calls);
- ``capstone``: a RUN step as the builder runs it: ``capstone.runner.Container.run(["true"])``
  over the busybox root as an overlay lower (the helper's own mount namespace, the overlay
  mount, part 6's ``run`` with the builder's spec).

Prints min, median and max per RUN in milliseconds (wall clock), the ratios to runc of the
minimum and the median, the median CPU time per RUN (user + system, this process and the
children it waited for: runc's own process tree, or the container's), and the load average
before and after. Needs root, runc and busybox-static.
Compile the bytecode first (``python -m compileall -q .``) when PYTHONDONTWRITEBYTECODE is set.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from part6_runtime import make_busybox_rootfs, run_bundle
from part6_runtime.seccomp import profile_json


def make_bundle(where: Path) -> Path:
    bundle = where / "bundle"
    if (bundle / "config.json").exists():
        return bundle
    shutil.rmtree(bundle, ignore_errors=True)
    bundle.mkdir(parents=True)
    make_busybox_rootfs(bundle / "rootfs")
    subprocess.run(["runc", "spec", "-b", str(bundle)], check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["true"]
    # runc spec's ambient set is not in its inheritable set: runc only warns, part 6 refuses
    config["process"]["capabilities"].pop("ambient", None)
    # Docker's seccomp profile, as a RUN step gets it from either runtime (buildah's runc too)
    config["linux"]["seccomp"] = profile_json(config["process"]["capabilities"]["bounding"])
    (bundle / "config.json").write_text(json.dumps(config, indent=2))
    return bundle


DEVNULL = os.open(os.devnull, os.O_RDONLY)


def time_runc(bundle: Path, n: int) -> float:
    t = time.perf_counter()
    subprocess.run(["runc", "run", "-b", str(bundle), f"runstep-bench-{os.getpid()}-{n}"],
                   stdin=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def time_part6(bundle: Path, _n: int) -> float:
    t = time.perf_counter()
    code = run_bundle(bundle, stdin=DEVNULL)
    elapsed = time.perf_counter() - t
    if code != 0:
        raise SystemExit(f"part6: exit {code}")
    return elapsed


def capstone_runner(bundle: Path, scratch_parent: Path):
    from capstone.runner import Container

    def time_capstone(_bundle: Path, _n: int) -> float:
        scratch = Path(tempfile.mkdtemp(prefix="c-", dir=scratch_parent))
        t = time.perf_counter()
        with Container([bundle / "rootfs"], scratch) as c:
            # the fields the builder's RUN step passes (capstone.engine.executor.run_step)
            code = c.run(["true"], env=["PATH=/bin"], hostname="buildsandbox", kill_on_interrupt=True)
        elapsed = time.perf_counter() - t
        if code != 0:
            raise SystemExit(f"capstone: exit {code}")
        return elapsed

    return time_capstone


def _cpu() -> float:
    """User + system time of this process and of the children it waited for (median per run:
    less sensitive than the wall clock to other work on a shared machine)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("workdir", type=Path)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--only", default="runc,part6,capstone")
    a = p.parse_args()
    where = a.workdir / "runstep"
    where.mkdir(parents=True, exist_ok=True)
    bundle = make_bundle(where)
    scratch = where / "scratch"
    scratch.mkdir(exist_ok=True)
    runners = {"runc": time_runc, "part6": time_part6, "capstone": capstone_runner(bundle, scratch)}
    chosen = [name for name in a.only.split(",") if name]
    for name in chosen:  # warm-up: page cache, imports, first cgroup directories
        runners[name](bundle, -1)
    load = os.getloadavg()
    times: dict[str, list[float]] = {name: [] for name in chosen}
    cpu: dict[str, list[float]] = {name: [] for name in chosen}
    for i in range(a.runs):
        for name in chosen:
            before = _cpu()
            times[name].append(runners[name](bundle, i))
            cpu[name].append(_cpu() - before)
    load_after = os.getloadavg()
    base, base_cpu = times.get("runc"), cpu.get("runc")
    print(f"{'runtime':<9} {'min ms':>8} {'median':>8} {'max':>8} {'min/runc':>9} {'med/runc':>9} {'cpu ms':>8} {'cpu/runc':>9}")
    for name in chosen:
        ts = times[name]
        lo, med, hi = min(ts), statistics.median(ts), max(ts)
        c = statistics.median(cpu[name])
        r_min = f"{lo / min(base):9.2f}" if base else " " * 9
        r_med = f"{med / statistics.median(base):9.2f}" if base else " " * 9
        r_cpu = f"{c / statistics.median(base_cpu):9.2f}" if base_cpu else " " * 9
        print(f"{name:<9} {lo * 1e3:8.1f} {med * 1e3:8.1f} {hi * 1e3:8.1f} {r_min} {r_med} {c * 1e3:8.1f} {r_cpu}")
    print(f"runs: {a.runs} each; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} before, "
          f"{load_after[0]:.2f} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
