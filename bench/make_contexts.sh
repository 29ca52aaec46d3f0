#!/usr/bin/env bash
# Builds the benchmark build contexts under $1 (default: ./ctx). Deterministic content.
set -euo pipefail
out=${1:-ctx}
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
# the interpreter the README sets up (the repository's .venv), or $PYTHON
py=${PYTHON:-$here/../.venv/bin/python}; [ -x "$py" ] || py=python3
for d in "$here"/dockerfiles/*/; do
  name=$(basename "$d")
  rm -rf "$out/$name"; mkdir -p "$out/$name"
  cp -a "$d"/. "$out/$name"/
done
# manyfiles: 20,000 small files in 200 folders, like a node_modules tree
"$py" - "$out/manyfiles/tree" <<'PY'
import os, sys, hashlib
root = sys.argv[1]
for i in range(200):
    d = os.path.join(root, f"pkg{i:03d}", "lib")
    os.makedirs(d, exist_ok=True)
    for j in range(100):
        with open(os.path.join(d, f"mod{j:03d}.js"), "w") as f:
            f.write(f"// package {i} module {j}\n" + hashlib.sha256(f"{i}-{j}".encode()).hexdigest() * (1 + j % 7) + "\n")
PY
# bigfile: 512 MiB, half random (incompressible), half text (compressible)
"$py" - "$out/bigfile/blob.bin" <<'PY'
import sys, random
r = random.Random(42)
with open(sys.argv[1], "wb") as f:
    for _ in range(256):
        f.write(r.randbytes(1 << 20))
    line = b"the quick brown fox jumps over the lazy dog 0123456789\n"
    chunk = line * ((1 << 20) // len(line) + 1)
    for _ in range(256):
        f.write(chunk[: 1 << 20])
PY
echo "contexts ready in $out"
