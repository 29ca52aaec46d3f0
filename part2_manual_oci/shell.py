"""The chapter's image made the blog's way: shell tools only (tar, gzip -n, sha256sum, stat).

``SCRIPT`` is a bash script that builds the same busybox image as ``build_busybox_image``,
step by step, with nothing but coreutils, GNU tar and gzip. :func:`build_with_shell` runs it
and reads back the facts it prints (``diff_id: sha256:...``); the chapter script
(``python -m part2_manual_oci shell``) runs both builds and compares them. The chapter page
shows the script; a test keeps the page and ``SCRIPT`` the same.

What the comparison teaches: the two root filesystems are the same tree, and both images are
valid, yet the layers' bytes differ. GNU tar writes ``0000000`` in the device-number fields of
every header where Python's tarfile leaves them empty (NUL), so the checksums and the diff_ids
differ; and gzip's own deflate compresses to other bytes than zlib, so the digests differ too.
A digest names bytes, not files: a reproducible build fixes the tools, not only their options.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .busybox import DEFAULT_BUSYBOX
from .errors import LayoutError

SCRIPT = r"""#!/bin/bash
# The chapter's busybox image by hand: tar, gzip -n, sha256sum, stat and printf.
# usage: by-hand.sh OUT_LAYOUT WORKDIR [BUSYBOX] [TAG]
set -euo pipefail
out=$1 work=$2 busybox=${3:-/usr/bin/busybox} tag=${4:-latest}
epoch=${SOURCE_DATE_EPOCH:-0}
export LC_ALL=C  # names sorted by their bytes, as the Python version sorts them

# 1. a root filesystem: busybox, one symlink per applet, /etc/passwd and /etc/group
root=$work/rootfs
mkdir -p "$root"/{bin,dev,etc,home,proc,root,sbin,sys,tmp,usr/bin,usr/sbin}
chmod 755 "$root" "$root"/{bin,dev,etc,home,proc,sbin,sys,usr,usr/bin,usr/sbin}
chmod 700 "$root/root"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
chmod 755 "$root/bin/busybox"
for applet in $("$busybox" --list-full); do
    [ "$applet" = bin/busybox ] && continue
    mkdir -p "$root/$(dirname "$applet")"
    ln -sfn /bin/busybox "$root/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' > "$root/etc/group"
chmod 644 "$root/etc/passwd" "$root/etc/group"

# 2. the layer: a deterministic tar of the tree; its sha256 is the diff_id
(cd "$root" && tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    --format=ustar -cf "$work/layer.tar" $(ls -A))
diff_id=sha256:$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
echo "diff_id: $diff_id"

# 3. the blob: gzip without a name or a time stamp; its sha256 is the digest
gzip -n -9 -c "$work/layer.tar" > "$work/layer.tar.gz"
layer=$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1)
layer_size=$(stat -c %s "$work/layer.tar.gz")
echo "layer: sha256:$layer $layer_size"

# 4. the layout: oci-layout, and each blob under blobs/sha256/<its sha256>
mkdir -p "$out/blobs/sha256"
printf '{"imageLayoutVersion":"1.0.0"}' > "$out/oci-layout"
cp "$work/layer.tar.gz" "$out/blobs/sha256/$layer"
blob() {  # blob FILE: store it, print "sha256:<hex> <size>"
    local hex
    hex=$(sha256sum "$1" | cut -d' ' -f1)
    cp "$1" "$out/blobs/sha256/$hex"
    echo "sha256:$hex $(stat -c %s "$1")"
}

# 5. the config: compact JSON with sorted keys, written byte by byte
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
case $(uname -m) in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
printf '{"architecture":"%s","config":{"Cmd":["sh"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},"created":"%s","history":[{"created":"%s","created_by":"by hand: tar, gzip -n, sha256sum, stat and printf"}],"os":"linux","rootfs":{"diff_ids":["%s"],"type":"layers"}}' \
    "$arch" "$created" "$created" "$diff_id" > "$work/config.json"
read -r config config_size < <(blob "$work/config.json")
echo "config: $config $config_size"

# 6. the manifest: the config's descriptor and the layer's
printf '{"config":{"digest":"%s","mediaType":"application/vnd.oci.image.config.v1+json","size":%s},"layers":[{"digest":"sha256:%s","mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":%s}],"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}' \
    "$config" "$config_size" "$layer" "$layer_size" > "$work/manifest.json"
read -r manifest manifest_size < <(blob "$work/manifest.json")
echo "manifest: $manifest $manifest_size"

# 7. index.json, last: it names the manifest under the tag
printf '{"manifests":[{"annotations":{"org.opencontainers.image.ref.name":"%s"},"digest":"%s","mediaType":"application/vnd.oci.image.manifest.v1+json","platform":{"architecture":"%s","os":"linux"},"size":%s}],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}' \
    "$tag" "$manifest" "$arch" "$manifest_size" > "$out/index.json"
echo "index: $out/index.json"
"""


def build_with_shell(out: str | os.PathLike, workdir: str | os.PathLike, busybox: str | os.PathLike = DEFAULT_BUSYBOX,
                     tag: str = "latest") -> dict[str, str]:
    """Run ``SCRIPT`` with bash: the image into the new layout ``out``, its rootfs and files
    in ``workdir``. Returns what it printed as ``{"diff_id": ..., "layer": ..., ...}``."""
    out, workdir = Path(out), Path(workdir)
    if out.exists() and any(out.iterdir()):
        raise LayoutError(f"{out}: not empty; the shell build writes a new layout")
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "by-hand.sh"
    script.write_text(SCRIPT)
    r = subprocess.run(["bash", str(script), str(out), str(workdir), os.fspath(busybox), tag],
                       capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    if r.returncode != 0:
        lines = (r.stderr or r.stdout).strip().splitlines()
        raise LayoutError(f"{script}: exit code {r.returncode}: {lines[-1] if lines else 'no output'}")
    facts = {}
    for line in r.stdout.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            facts[key] = value
    return facts


def header_differences(a: str | os.PathLike, b: str | os.PathLike) -> dict[str, int]:
    """Which fields of the 512-byte headers two tars of the same entries differ in, and how
    many headers differ there (the tars must have their headers at the same offsets)."""
    fields = (("name", 0, 100), ("mode", 100, 108), ("uid", 108, 116), ("gid", 116, 124), ("size", 124, 136),
              ("mtime", 136, 148), ("checksum", 148, 156), ("type", 156, 157), ("linkname", 157, 257),
              ("magic", 257, 265), ("uname", 265, 297), ("gname", 297, 329), ("devmajor", 329, 337),
              ("devminor", 337, 345), ("prefix", 345, 500))
    counts: dict[str, int] = {}
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ha, hb = fa.read(512), fb.read(512)
            if not ha or not hb or ha == b"\0" * 512:
                break
            for name, start, end in fields:
                if ha[start:end] != hb[start:end]:
                    counts[name] = counts.get(name, 0) + 1
            size = int(ha[124:136].strip(b"\0 ") or b"0", 8)
            skip = (size + 511) // 512 * 512
            if fa.read(skip) != fb.read(skip):
                counts["data"] = counts.get("data", 0) + 1
    return counts
