#!/usr/bin/env bash
# Prepares the two base images every benchmark uses, in buildah's storage and in the capstone
# store: busybox:bench (busybox-static) and debian:bench (debootstrap --variant=minbase bookworm).
# Usage: setup_bases.sh WORKDIR [STORE]   (WORKDIR keeps the root filesystems between runs, and
# their tars WORKDIR/busybox.tar and WORKDIR/debian.tar)
#   BUILDAH=0  leave buildah out (neither installed nor given the images): rootless.sh needs only
#              the capstone's side
set -euo pipefail
work=${1:?usage: setup_bases.sh WORKDIR [STORE]}; store=${2:-${CAPSTONE_STORE:-}}
here=$(cd "$(dirname "$0")" && pwd)
# the interpreter the README sets up (the repository's .venv), or $PYTHON
py=${PYTHON:-$here/../.venv/bin/python}; [ -x "$py" ] || py=python3
"$py" -c 'import capstone' 2>/dev/null || { echo "setup_bases.sh: $py cannot import capstone: do the README's set-up first, or set PYTHON" >&2; exit 1; }
mkdir -p "$work"
need() { command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }
with_buildah=${BUILDAH:-1}
need busybox busybox-static; need debootstrap debootstrap
if [ "$with_buildah" != 0 ]; then
  need buildah buildah; need runc runc
  # buildah/runc on these machines: keep rlimits within the hard limits the machine allows
  if [ ! -f /etc/containers/containers.conf ]; then
    mkdir -p /etc/containers
    printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=32768:32768"]\n' "$(ulimit -Hn)" "$(ulimit -Hn)" > /etc/containers/containers.conf
  fi
fi
bb="$work/busybox-rootfs"
if [ ! -x "$bb/bin/busybox" ]; then
  rm -rf "$bb"; mkdir -p "$bb"/{bin,etc,tmp,root,usr/bin,sbin}
  cp "$(command -v busybox)" "$bb/bin/busybox"
  for a in $("$bb/bin/busybox" --list); do [ -e "$bb/bin/$a" ] || ln -s busybox "$bb/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$bb/etc/passwd"; echo 'root:x:0:' > "$bb/etc/group"
  chmod 1777 "$bb/tmp"
fi
deb="$work/debian-rootfs"
if [ ! -x "$deb/bin/bash" ]; then
  rm -rf "$deb"; debootstrap --variant=minbase bookworm "$deb" http://deb.debian.org/debian >/dev/null
  rm -rf "$deb"/var/cache/apt/archives/*.deb "$deb"/var/lib/apt/lists/*
fi
for pair in "busybox:bench $bb" "debian:bench $deb"; do
  set -- $pair
  tar="$work/${1%%:*}.tar"
  # the tar of the rootfs as it is now (made again when the rootfs is newer)
  [ -f "$tar" ] && [ "$tar" -nt "$2" ] || tar -C "$2" -cf "$tar" .
  if [ "$with_buildah" != 0 ] && ! buildah inspect --type image "localhost/$1" >/dev/null 2>&1; then
    ctr=$(buildah from scratch); buildah add -q "$ctr" "$tar" / >/dev/null
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/sh "$ctr"
    buildah commit -q "$ctr" "localhost/$1" >/dev/null; buildah rm "$ctr" >/dev/null
  fi
  "$py" -m capstone ${store:+--store "$store"} import "$2" "$1" >/dev/null
done
echo "bases ready: busybox:bench, debian:bench"
