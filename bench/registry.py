"""Registry benchmark (a script, not a test): push and pull of a big image over loopback, the
capstone against ``skopeo copy``, and a fully cached build from a registry cache on an empty
store against a cached build on the store that made it.

    python bench/registry.py WORKDIR [--size-mib 512] [--layers 4] [--runs 3]

Each measurement gets a fresh ``docker-registry`` on 127.0.0.1 (tests/registry_server.py) and
an empty destination, so nothing is skipped because it is already there. The image is
``FROM capstone/busybox`` plus ``--layers`` COPY layers of incompressible bytes (the same bytes
every time), ``--size-mib`` in all; skopeo's push reads the same image as an OCI layout that
``capstone save`` wrote, and its pull writes an OCI layout: neither extracts nor recompresses
layers, as neither does the capstone's. Medians of ``--runs`` are printed with the ratios
(capstone / skopeo, registry cache / local cache; below 1 the first is faster) and written to
``WORKDIR/registry-results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from registry_server import Registry  # noqa: E402  (the tests' real registry on 127.0.0.1)

CHUNK = 1 << 20
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def capstone(store: Path, *args: str) -> None:
    run([sys.executable, "-m", "capstone", "--store", str(store), *args])


def run(argv: list[str]) -> None:
    r = subprocess.run(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode:
        sys.exit(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()[-2000:]}")


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def make_context(ctx: Path, size_mib: int, layers: int) -> None:
    """``layers`` files of random bytes (seeded: the same image every time) and a Dockerfile
    that COPYs each into its own layer, then RUNs over them (a step the cache must carry)."""
    if (ctx / "Dockerfile").exists():
        return
    ctx.mkdir(parents=True)
    rng = random.Random(14)
    per = size_mib // layers
    lines = ["FROM capstone/busybox"]
    for i in range(layers):
        with open(ctx / f"part{i}", "wb") as f:
            for _ in range(per):
                f.write(rng.randbytes(CHUNK))
        lines.append(f"COPY part{i} /data/part{i}")
    lines += ["RUN ls -l /data > /data/list", 'CMD ["cat", "/data/list"]']
    (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")


class Fresh:
    """A registry of its own for one measurement, under ``root``; removed afterwards."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __enter__(self) -> Registry:
        shutil.rmtree(self.root, ignore_errors=True)
        self.registry = Registry(self.root)
        return self.registry

    def __exit__(self, *exc) -> None:
        self.registry.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    work = a.workdir.absolute()
    work.mkdir(parents=True, exist_ok=True)
    # measure compiled code, as an installed copy runs (PYTHONDONTWRITEBYTECODE may be set here)
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(REPO / "capstone"),
                    *map(str, REPO.glob("part*_*"))], check=True, stdout=subprocess.DEVNULL)
    ctx = work / f"ctx-{a.size_mib}x{a.layers}"
    make_context(ctx, a.size_mib, a.layers)
    src = work / "store-src"
    image = "bench/big:1"
    capstone(src, "build", "--network", "none", "--progress", "quiet", "-t", image, str(ctx))
    layout = work / "oci-src"
    shutil.rmtree(layout, ignore_errors=True)
    capstone(src, "save", image, f"oci:{layout}:1")
    no_tls = "--tls-verify=false"

    times: dict[str, list[float]] = {k: [] for k in
                                     ("capstone push", "skopeo push", "capstone pull", "skopeo pull",
                                      "cached build, local cache", "cached build, registry cache, empty store")}
    for n in range(a.runs):
        pulled, out, empty = work / "store-pull", work / "oci-pull", work / "store-empty"
        with Fresh(work / "reg") as reg:
            times["capstone push"].append(timed(capstone, src, "push", "-q", no_tls, image,
                                                f"docker://{reg.host}/bench/big:1"))
            shutil.rmtree(pulled, ignore_errors=True)
            times["capstone pull"].append(timed(capstone, pulled, "pull", "-q", no_tls, f"{reg.host}/bench/big:1"))
            shutil.rmtree(pulled, ignore_errors=True)
        with Fresh(work / "reg") as reg:
            times["skopeo push"].append(timed(run, ["skopeo", "copy", "-q", "--dest-tls-verify=false",
                                                    f"oci:{layout}:1", f"docker://{reg.host}/bench/big:1"]))
            shutil.rmtree(out, ignore_errors=True)
            times["skopeo pull"].append(timed(run, ["skopeo", "copy", "-q", "--src-tls-verify=false",
                                                    f"docker://{reg.host}/bench/big:1", f"oci:{out}:1"]))
            shutil.rmtree(out, ignore_errors=True)
        with Fresh(work / "reg") as reg:
            cache = f"{reg.host}/bench/cache:1"
            # store A made the image already; this exports its cache (not timed)
            capstone(src, "build", "--network", "none", "--progress", "quiet", no_tls, "-t", image,
                     "--cache-to", f"type=registry,ref={cache},mode=max", str(ctx))
            times["cached build, local cache"].append(timed(
                capstone, src, "build", "--network", "none", "--progress", "quiet", "-t", image, str(ctx)))
            shutil.rmtree(empty, ignore_errors=True)
            times["cached build, registry cache, empty store"].append(timed(
                capstone, empty, "build", "--network", "none", "--progress", "quiet", no_tls, "-t", image,
                "--cache-from", cache, str(ctx)))
            shutil.rmtree(empty, ignore_errors=True)
        print(f"run {n + 1}/{a.runs}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), flush=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    mib = a.size_mib
    print(f"\n{a.size_mib} MiB in {a.layers} layers, median of {a.runs} runs (seconds)")
    print(f"{'':44} {'time':>7} {'MiB/s':>7}")
    for k, v in med.items():
        rate = f"{mib / v:7.0f}" if "push" in k or "pull" in k else ""
        print(f"{k:44} {v:7.2f} {rate}")
    ratios = {
        "push: capstone / skopeo": med["capstone push"] / med["skopeo push"],
        "pull: capstone / skopeo": med["capstone pull"] / med["skopeo pull"],
        "cached build: registry cache on an empty store / local cache":
            med["cached build, registry cache, empty store"] / med["cached build, local cache"],
    }
    for k, v in ratios.items():
        print(f"{k:62} {v:6.2f}")
    (work / "registry-results.json").write_text(json.dumps(
        {"size_mib": a.size_mib, "layers": a.layers, "runs": times, "median": med, "ratios": ratios}, indent=1))


if __name__ == "__main__":
    main()
