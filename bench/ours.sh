#!/usr/bin/env bash
# The builder's own share of a cold build whose RUN steps wait on the network (debian-apt):
# each RUN's command is timed inside the container (date +%s%N around it, printed as
# "RUNTIME <ns>"), and the build's time minus those is what the builder itself spent (image
# load, container set-up, layers, cache, commit), for buildah and for the capstone.
# Usage: ours.sh WORKDIR [NAME]   (NAME: a benchmark with RUN steps; default debian-apt;
# run setup_bases.sh WORKDIR WORKDIR/store first, as for run.sh)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-$here/../.venv/bin/python}; [ -x "$py" ] || py=python3
work=${1:?usage: ours.sh WORKDIR [NAME]}; name=${2:-debian-apt}
store="$work/store"; ctx="$work/ctx-ours/$name"
rm -rf "$ctx"; mkdir -p "$ctx"; cp -a "$here/dockerfiles/$name/." "$ctx/"
# RUN CMD  ->  RUN s=$(date +%s%N) && CMD && echo "RUNTIME $(($(date +%s%N) - s))"
# (a RUN in exec form or with a heredoc is left as it is, and so counted as the builder's)
"$py" - "$ctx/Dockerfile" <<'PY'
import re, sys
path = sys.argv[1]
out = []
for line in open(path).read().splitlines():
    m = re.match(r"RUN (?!\[)(?!.*<<)(.*)$", line)
    out.append(f'RUN s=$(date +%s%N) && {{ {m.group(1)} ; }} && echo "RUNTIME $(($(date +%s%N) - s))"' if m else line)
open(path, "w").write("\n".join(out) + "\n")
PY
root=$("$py" -c 'import capstone, os; print(os.path.dirname(os.path.dirname(capstone.__file__)))' 2>/dev/null) &&
  "$py" -m compileall -q -j 0 "$root"/capstone "$root"/part*_*/ >/dev/null 2>&1
now() { date +%s.%N; }
printf '%-9s %8s %8s %8s\n' builder build run ours
t0=$(now)
buildah bud --pull=never --runtime runc --network host --layers --no-cache -t "bench-ours-$name" "$ctx" >"$work/ours-buildah.out" 2>&1 || { echo "buildah failed (see $work/ours-buildah.out)"; exit 1; }
t1=$(now)
"$py" -m capstone --store "$store" build --no-cache --network host -t "bench-ours-$name" "$ctx" >"$work/ours-capstone.out" 2>&1 || { echo "capstone failed (see $work/ours-capstone.out)"; exit 1; }
t2=$(now)
"$py" - "$t0" "$t1" "$t2" "$work/ours-buildah.out" "$work/ours-capstone.out" <<'PY'
import re, sys
t0, t1, t2 = map(float, sys.argv[1:4])
ours = {}
for who, total, out in (("buildah", t1 - t0, sys.argv[4]), ("capstone", t2 - t1, sys.argv[5])):
    run = sum(int(n) for n in re.findall(r"RUNTIME (\d+)", open(out, errors="replace").read())) / 1e9
    ours[who] = total - run
    print(f"{who:<9} {total:8.2f} {run:8.2f} {total - run:8.2f}")
print(f"ratio of the builders' own shares (capstone / buildah): {ours['capstone'] / ours['buildah']:.2f}")
PY
