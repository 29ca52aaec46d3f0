#!/usr/bin/env bash
# Builds each benchmark with buildah (the reference) and with the capstone, cold then cached,
# in one run on one machine, and prints the times and the capstone/buildah ratios.
# Usage: run.sh WORKDIR [names...]   (run setup_bases.sh WORKDIR WORKDIR/store first; see README.md)
# Names: hello manyfiles bigfile multistage debian-apt (default: all)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# the interpreter the README sets up (the repository's .venv), or $PYTHON
py=${PYTHON:-$here/../.venv/bin/python}; [ -x "$py" ] || py=python3
work=${1:?usage: run.sh WORKDIR [names...]}; shift
names=${*:-hello manyfiles bigfile multistage debian-apt}
store="$work/store"; ctx="$work/ctx"
[ -d "$ctx/bigfile" ] || "$here/make_contexts.sh" "$ctx" >/dev/null
# measure what an installed copy runs: compiled bytecode (PYTHONDONTWRITEBYTECODE may be set)
root=$("$py" -c 'import capstone, os; print(os.path.dirname(os.path.dirname(capstone.__file__)))' 2>/dev/null) &&
  "$py" -m compileall -q -j 0 "$root"/capstone "$root"/part*_*/ >/dev/null 2>&1
now() { date +%s.%N; }
# Each timed build starts with nothing left to write back (sync, untimed): otherwise a build pays
# for the dirty pages the one before it left (buildah does not fsync its layers, and the
# capstone's few fsyncs then wait on that writeback: multistage right after bigfile's builds took
# 1.0 s instead of 0.34 s, with the same code).
printf '%-11s %9s %9s %9s %9s %7s %7s\n' bench buildah capstone bah-cache cap-cache ratio r-cache
for n in $names; do
  sync; t0=$(now)
  buildah bud --pull=never --runtime runc --network host --layers --no-cache -q -t "bench-$n" "$ctx/$n" >/dev/null 2>"$work/buildah-$n.err" || { echo "$n: buildah failed (see $work/buildah-$n.err)"; continue; }
  t1=$(now); sync; t2=$(now)
  buildah bud --pull=never --runtime runc --network host --layers -q -t "bench-$n" "$ctx/$n" >/dev/null 2>>"$work/buildah-$n.err"
  t3=$(now); sync; t4=$(now)
  "$py" -m capstone --store "$store" build --no-cache --network host --progress quiet -t "bench-$n" "$ctx/$n" >/dev/null 2>"$work/capstone-$n.err" || { echo "$n: capstone failed (see $work/capstone-$n.err)"; continue; }
  t5=$(now); sync; t6=$(now)
  "$py" -m capstone --store "$store" build --network host --progress quiet -t "bench-$n" "$ctx/$n" >/dev/null 2>>"$work/capstone-$n.err"
  t7=$(now)
  "$py" - "$n" "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$t6" "$t7" <<'PY'
import sys
n, t0, t1, t2, t3, t4, t5, t6, t7 = sys.argv[1], *map(float, sys.argv[2:])
b, bc, c, cc = t1 - t0, t3 - t2, t5 - t4, t7 - t6
print(f"{n:<11} {b:9.2f} {c:9.2f} {bc:9.2f} {cc:9.2f} {c / b:7.2f} {cc / bc:7.2f}")
PY
done
