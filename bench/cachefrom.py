"""A fully cached build from a registry cache on an empty store (a benchmark, not a test).

    python bench/cachefrom.py WORKDIR [--size-mib 512] [--layers 4] [--tools-mib 256] [--runs 3]
    python bench/cachefrom.py WORKDIR --code before=/path/to/old/checkout --code after=.

What a CI runner with an empty store and ``--cache-from type=registry,ref=...`` pays when no
step has to run, against the same build on the store that made the cache (its local cache).
Two Dockerfiles, each exported once with ``--cache-to ...,mode=max`` to a fresh
``docker-registry`` on 127.0.0.1 (tests/registry_server.py):

- ``single``: bench/registry.py's image, ``FROM capstone/busybox`` and ``--layers`` COPY layers of
  incompressible bytes (``--size-mib`` in all), a RUN and a CMD: every layer is the result's.
- ``multistage``: a ``tools`` stage with a COPY layer of ``--tools-mib`` and a RUN, then the
  same result stage plus ``COPY --from=tools`` of one small file: a fully cached build needs
  none of the tools stage's layers.

Each run builds each Dockerfile with each ``--code`` (a checkout of this repository; default
this one), interleaved, on its local cache and on an empty store, and counts from the
registry's access log the blob requests the build made and their bytes. It prints the medians
(wall time, and the CPU time of the build on the empty store, which other work on the machine
moves less), the load average before and after, and writes ``WORKDIR/cachefrom-results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from registry import CHUNK, Fresh, make_context  # noqa: E402  (the same image and registry set-up)

TOOLS = """\
FROM capstone/busybox AS tools
COPY sdk /opt/sdk
RUN head -c 4096 /opt/sdk > /opt/tool
"""


def make_multistage(ctx: Path, single: Path, tools_mib: int) -> None:
    """``single``'s context and Dockerfile behind a tools stage whose big layer the result
    never reads (only one small file of it is copied)."""
    if (ctx / "Dockerfile").exists():
        return
    ctx.mkdir(parents=True)
    for part in single.glob("part*"):
        os.link(part, ctx / part.name)
    rng = random.Random(16)
    with open(ctx / "sdk", "wb") as f:
        for _ in range(tools_mib):
            f.write(rng.randbytes(CHUNK))
    lines = (single / "Dockerfile").read_text().splitlines()
    lines.insert(len(lines) - 1, "COPY --from=tools /opt/tool /opt/tool")
    (ctx / "Dockerfile").write_text(TOOLS + "\n".join(lines) + "\n")


def capstone(code: Path, store: Path, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(code)}
    # run from the checkout: ``python -m`` puts the working directory first on sys.path
    r = subprocess.run([sys.executable, "-m", "capstone", "--store", str(store), *args], env=env, cwd=code,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode:
        sys.exit(f"capstone {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()[-2000:]}")


def blob_gets(log: Path, since: int) -> tuple[int, int, int]:
    """(lines of the access log now, blob GETs since line ``since``, their bytes)."""
    lines = log.read_text(errors="replace").splitlines()
    count = size = 0
    for line in lines[since:]:
        parts = line.split('"')
        if len(parts) > 2 and parts[1].startswith("GET ") and "/blobs/" in parts[1]:
            status = parts[2].split()
            count += 1
            size += int(status[1]) if len(status) > 1 and status[1].isdigit() else 0
    return len(lines), count, size


def compile_code(code: Path) -> None:
    # measure compiled code, as an installed copy runs (PYTHONDONTWRITEBYTECODE may be set here)
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(code / "capstone"),
                    *map(str, code.glob("part*_*"))], check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--tools-mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--code", action="append", default=[], metavar="NAME=DIR",
                    help="a checkout to time (repeatable; default: this repository)")
    a = ap.parse_args()
    work = a.workdir.absolute()
    work.mkdir(parents=True, exist_ok=True)
    codes = {}
    for item in a.code or [f"this={HERE.parent}"]:
        name, _, where = item.partition("=")
        codes[name] = Path(where).resolve()
    for code in codes.values():
        compile_code(code)
    single = work / f"ctx-{a.size_mib}x{a.layers}"
    make_context(single, a.size_mib, a.layers)
    multi = work / f"ctx-{a.size_mib}x{a.layers}-tools{a.tools_mib}"
    make_multistage(multi, single, a.tools_mib)
    no_tls = "--tls-verify=false"
    build = ("build", "--network", "none", "--progress", "quiet")
    results: dict[str, dict[str, list]] = {}
    load_before = os.getloadavg()
    with Fresh(work / "reg") as reg:
        log = reg.log_path
        first = next(iter(codes.values()))
        for name, ctx in (("single", single), ("multistage", multi)):
            src = work / f"store-src-{name}"
            shutil.rmtree(src, ignore_errors=True)
            capstone(first, src, *build, no_tls, "-t", "bench/big:1", "--cache-to",
                     f"type=registry,ref={reg.host}/bench/{name}:cache,mode=max", str(ctx))
            for n in range(a.runs):
                for label, code in codes.items():
                    row = results.setdefault(f"{name} {label}", {"local": [], "registry": [], "registry cpu": [],
                                                                 "gets": [], "bytes": []})
                    row["local"].append(_timed(capstone, code, src, *build, "-t", "bench/big:1", str(ctx))[0])
                    empty = work / "store-empty"
                    shutil.rmtree(empty, ignore_errors=True)
                    since, _, _ = blob_gets(log, 0)
                    wall, cpu = _timed(capstone, code, empty, *build, no_tls, "-t", "bench/big:1",
                                       "--cache-from", f"{reg.host}/bench/{name}:cache", str(ctx))
                    row["registry"].append(wall)
                    row["registry cpu"].append(cpu)
                    _, gets, size = blob_gets(log, since)
                    row["gets"].append(gets)
                    row["bytes"].append(size)
                    shutil.rmtree(empty, ignore_errors=True)
                    print(f"run {n + 1}/{a.runs} {name:<10} {label:<8} local {row['local'][-1]:6.2f}s  registry "
                          f"{row['registry'][-1]:6.2f}s (CPU {cpu:5.2f}s)  {gets} blob GETs, {size / (1 << 20):.0f} MiB  "
                          f"(load {os.getloadavg()[0]:.1f})", flush=True)
            shutil.rmtree(src, ignore_errors=True)
    load_after = os.getloadavg()
    print(f"\n{a.size_mib} MiB in {a.layers} layers (multistage: a tools stage of {a.tools_mib} MiB more), "
          f"median of {a.runs} runs; load {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print(f"{'':22} {'local cache':>12} {'registry cache':>15} {'its CPU':>8} {'ratio':>6} {'blob GETs':>10} "
          f"{'MiB fetched':>12}")
    med = {}
    for key, row in results.items():
        m = {k: statistics.median(v) for k, v in row.items()}
        med[key] = m
        print(f"{key:22} {m['local']:11.2f}s {m['registry']:14.2f}s {m['registry cpu']:7.2f}s "
              f"{m['registry'] / m['local']:6.1f} "
              f"{m['gets']:10.0f} {m['bytes'] / (1 << 20):12.0f}")
    (work / "cachefrom-results.json").write_text(json.dumps(
        {"size_mib": a.size_mib, "layers": a.layers, "tools_mib": a.tools_mib, "codes": {k: str(v) for k, v in codes.items()},
         "load": [load_before, load_after], "runs": results, "median": med}, indent=1))


def _timed(fn, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the builder: user + system of the children waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    fn(*args)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


if __name__ == "__main__":
    main()
