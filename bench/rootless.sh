#!/usr/bin/env bash
# Rootless against root: each benchmark built cold (--no-cache) by root and by an ordinary user
# (the capstone then runs as root of a user namespace of the user's own), in one run on one
# machine; prints the best time of each over RUNS runs and the ratio rootless / root.
# Run as root (it builds as root, then as the user through setpriv).
# Usage: bench/rootless.sh WORKDIR [names...]
#   BENCH_USER  the ordinary user (default capstone-ci; .ci/rootless-user makes it with its range)
#   RUNS        cold builds of each kind per benchmark (default 3; the best counts)
# Names: hello manyfiles bigfile multistage debian-apt (default: all)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# the interpreter the README sets up (the repository's .venv), or $PYTHON: the user must be able
# to run it and to read the repository
py=${PYTHON:-$here/../.venv/bin/python}; [ -x "$py" ] || py=python3
work=${1:?usage: rootless.sh WORKDIR [names...]}; shift
names=${*:-hello manyfiles bigfile multistage debian-apt}
user=${BENCH_USER:-capstone-ci}
runs=${RUNS:-3}
[ "$(id -u)" = 0 ] || { echo "rootless.sh: run me as root (I build as root and as $user)" >&2; exit 1; }
uid=$(id -u "$user" 2>/dev/null) || { echo "rootless.sh: no user $user: make it with .ci/rootless-user" >&2; exit 1; }
gid=$(id -g "$user")

# root's store gets the base images from setup_bases.sh (no buildah needed here), which also
# leaves their tars in WORKDIR; the user's store (its XDG data directory) imports those tars
home="$work/rootless-home"; rstore="$work/rootless-root-store"
BUILDAH=0 "$here/setup_bases.sh" "$work" "$rstore" >/dev/null || exit 1
ctx="$work/ctx"
[ -d "$ctx/bigfile" ] || "$here/make_contexts.sh" "$ctx" >/dev/null
# measure what an installed copy runs: compiled bytecode (PYTHONDONTWRITEBYTECODE may be set)
root=$("$py" -c 'import capstone, os; print(os.path.dirname(os.path.dirname(capstone.__file__)))') || exit 1
"$py" -m compileall -q -j 0 "$root"/capstone "$root"/part*_*/ >/dev/null 2>&1

mkdir -p "$home/tmp" && chown "$uid:$gid" "$home" "$home/tmp"
as_user() {
  setpriv --reuid="$uid" --regid="$gid" --clear-groups -- env -i PATH="$PATH" HOME="$home" TMPDIR="$home/tmp" \
    PYTHONDONTWRITEBYTECODE=1 ${PYTHONPATH:+PYTHONPATH="$PYTHONPATH"} "$@"
}
as_user "$py" -c 'import capstone' 2>/dev/null ||
  { echo "rootless.sh: $user cannot run $py with the repository: use the README's .venv (or a PYTHON it can read)" >&2; exit 1; }
for b in busybox debian; do
  as_user "$py" -m capstone import "$work/$b.tar" "$b:bench" >/dev/null 2>"$work/rootless-import-$b.err" ||
    { echo "rootless.sh: $user could not import $b (see $work/rootless-import-$b.err)" >&2; exit 1; }
done

now() { date +%s.%N; }
best() { printf '%s\n' "$@" | sort -g | head -1; }
printf '%-11s %9s %9s %7s\n' bench root rootless ratio
for n in $names; do
  rt=(); ut=()
  for _ in $(seq "$runs"); do
    t0=$(now)
    "$py" -m capstone --store "$rstore" build --no-cache --network host --progress quiet -t "bench-$n" "$ctx/$n" \
      >/dev/null 2>"$work/rootless-root-$n.err" || { echo "$n: root's build failed (see $work/rootless-root-$n.err)"; continue 2; }
    t1=$(now)
    as_user "$py" -m capstone build --no-cache --network host --progress quiet -t "bench-$n" "$ctx/$n" \
      >/dev/null 2>"$work/rootless-user-$n.err" || { echo "$n: $user's build failed (see $work/rootless-user-$n.err)"; continue 2; }
    t2=$(now)
    rt+=("$(awk "BEGIN { print $t1 - $t0 }")"); ut+=("$(awk "BEGIN { print $t2 - $t1 }")")
  done
  r=$(best "${rt[@]}"); u=$(best "${ut[@]}")
  printf '%-11s %9.2f %9.2f %7.2f\n' "$n" "$r" "$u" "$(awk "BEGIN { print $u / $r }")"
done
