#!/usr/bin/env python3
"""Benchmark (a script, not a test): pack the 512 MiB ``bigfile`` context as a gzip layer.

Compares, in the same run and on the same warm page cache:

    ours:      part4_tar.write_layer(DIR, out, "gzip")   (digest, size and diff_id in one pass)
    baseline:  tar -cf - DIR | gzip -1 | sha256sum

and prints both wall times, the ratio (target: at most 0.3) and the peak RSS of the child that
ran our packer (target: under 150 MB), measured with wait4's rusage of that one process.

    python tests/bench_part4_pack.py [--dir DIR] [--compression gzip|zstd|none] [--repeat N]

The context is created if missing, with the same content as bench/make_contexts.sh:
256 MiB of random bytes (seeded) then 256 MiB of repeated text.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time

DEFAULT_DIR = "/var/tmp/capbench/ctx/bigfile"
OURS = r"""
import sys
from part4_tar import write_layer
with open(sys.argv[3], "wb") as out:
    info = write_layer(sys.argv[1], out, sys.argv[2])
print(info.digest, info.diff_id, info.size)
"""


def make_context(directory: str) -> None:
    blob = os.path.join(directory, "blob.bin")
    if os.path.exists(blob) and os.path.getsize(blob) == 512 << 20:
        return
    os.makedirs(directory, exist_ok=True)
    print(f"creating {blob} (512 MiB) ...", flush=True)
    r = random.Random(42)
    tmp = blob + ".tmp"
    with open(tmp, "wb") as f:
        for _ in range(256):
            f.write(r.randbytes(1 << 20))
        line = b"the quick brown fox jumps over the lazy dog 0123456789\n"
        chunk = line * ((1 << 20) // len(line) + 1)
        for _ in range(256):
            f.write(chunk[: 1 << 20])
    os.replace(tmp, blob)
    dockerfile = os.path.join(directory, "Dockerfile")
    if not os.path.exists(dockerfile):
        with open(dockerfile, "w") as f:
            f.write("FROM scratch\nCOPY blob.bin /data/blob.bin\n")  # as in bench/dockerfiles/bigfile


def timed(argv: list[str]) -> tuple[float, int, str]:
    """Wall time, peak RSS in bytes (wait4 rusage of this child) and stdout of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed with exit code {proc.returncode}")
    return elapsed, usage.ru_maxrss * 1024, out.strip()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default=DEFAULT_DIR, help=f"the context directory (default {DEFAULT_DIR})")
    p.add_argument("--compression", default="gzip", choices=("gzip", "zstd", "none"))
    p.add_argument("--repeat", type=int, default=1, help="runs of each side; the best time counts")
    p.add_argument("--out", default=os.devnull, help="where our blob goes (default: /dev/null)")
    args = p.parse_args()
    make_context(args.dir)
    # warm the page cache, so neither side pays for the first read from disk
    subprocess.run(["cat", os.path.join(args.dir, "blob.bin")], stdout=subprocess.DEVNULL, check=True)

    ours_t, ours_rss, base_t = [], [], []
    ours_out = base_out = ""
    for _ in range(args.repeat):
        t, rss, ours_out = timed([sys.executable, "-c", OURS, args.dir, args.compression, args.out])
        ours_t.append(t)
        ours_rss.append(rss)
        shell = f"set -o pipefail; tar -cf - -C {args.dir} . | gzip -1 | sha256sum"
        t, _, base_out = timed(["bash", "-c", shell])
        base_t.append(t)
    ours, base = min(ours_t), min(base_t)
    ratio = ours / base
    print(f"context:   {args.dir} ({sum(os.path.getsize(os.path.join(args.dir, n)) for n in os.listdir(args.dir)) >> 20} MiB)")
    print(f"ours:      {ours:.2f} s  ({args.compression}; digest diff_id size = {ours_out})")
    print(f"baseline:  {base:.2f} s  (tar -cf - DIR | gzip -1 | sha256sum -> {base_out.split()[0][:16]}...)")
    print(f"ratio:     {ratio:.3f}  (target <= 0.300: {'met' if ratio <= 0.3 else 'NOT met'})")
    print(f"peak RSS:  {max(ours_rss) / 1e6:.1f} MB  (target < 150 MB: {'met' if max(ours_rss) < 150e6 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
