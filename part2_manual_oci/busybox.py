"""The chapter's image, built by hand: busybox in one layer, with nothing but the stdlib.

Each step is a small function, in the order the chapter narrates them:

1. ``make_rootfs``: a root filesystem: /bin/busybox, a link per applet, /etc/passwd, ...
2. ``tar_rootfs``: a deterministic tar of it; its sha256 is the layer's **diff_id**
3. ``compress_layer``: gzip it (no name, mtime 0); its sha256 is the layer's **digest**
4. ``OCILayout.create``: the directory with ``oci-layout`` and an empty ``index.json``
5. ``put_blob``: the compressed layer, stored as ``blobs/sha256/<digest>``
6. ``busybox_config``: the image config (what to run, and the diff_id), stored as a blob
7. ``busybox_manifest``: config + layer descriptors, stored as a blob
8. ``add_manifest``: index.json names the manifest under the tag (written last)

Part 4 does layers properly (any tree, hard links, xattrs, safe extraction); this tar only has
to handle the tree step 1 makes: directories, regular files and symlinks.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from part1_overview import model, replace

from . import mediatypes as mt
from .digest import HashingWriter
from .errors import LayoutError
from .hostinfo import rfc3339, source_date_epoch
from .layout import OCILayout
from .models import ContainerConfig, Descriptor, History, ImageConfig, Manifest, Platform, canonical_json
from .platforms import elf_platform, host_platform

DEFAULT_BUSYBOX = "/usr/bin/busybox"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
GROUP = "root:x:0:\nnobody:x:65534:\n"

# directory -> mode; /tmp is world-writable with the sticky bit, /root private
DIRECTORIES = {
    "bin": 0o755,
    "dev": 0o755,
    "etc": 0o755,
    "home": 0o755,
    "proc": 0o755,
    "root": 0o700,
    "sbin": 0o755,
    "sys": 0o755,
    "tmp": 0o1777,
    "usr": 0o755,
    "usr/bin": 0o755,
    "usr/sbin": 0o755,
}


# -- step 1: the root filesystem -------------------------------------------------------------


@model(frozen=True)
class Rootfs:
    """What ``make_rootfs`` made."""

    path: Path
    busybox_version: str
    applets: tuple[str, ...]  # paths of the applet links, relative to the root


def busybox_applets(busybox: str | os.PathLike) -> tuple[str, str]:
    """(version line, ``busybox --list-full`` output): every applet with its install path."""
    try:
        listing = subprocess.run([os.fspath(busybox), "--list-full"], capture_output=True, text=True, check=True).stdout
        helptext = subprocess.run([os.fspath(busybox), "--help"], capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise LayoutError(f"{busybox}: cannot list applets ({e}); install busybox-static") from None
    match = re.search(r"BusyBox (v\S+)", helptext)
    return (match.group(1) if match else "unknown"), listing


def make_rootfs(root: str | os.PathLike, busybox: str | os.PathLike = DEFAULT_BUSYBOX) -> Rootfs:
    """Lay out a busybox root filesystem under ``root`` (which must not exist yet).

    The binary goes to /bin/busybox; each applet (``usr/bin/wc``, ``bin/sh``, ...) becomes a
    symlink to it: busybox looks at argv[0] to know which applet to run.
    """
    root = Path(root)
    busybox = Path(busybox)
    if not busybox.is_file():
        raise LayoutError(f"{busybox}: not found; install busybox-static (a static busybox runs in an empty root)")
    version, listing = busybox_applets(busybox)
    try:
        root.mkdir(parents=True)
    except FileExistsError:
        raise LayoutError(f"{root}: already exists; the root filesystem is made in a new directory") from None
    os.chmod(root, 0o755)
    for rel, mode in DIRECTORIES.items():
        (root / rel).mkdir(exist_ok=True)
        os.chmod(root / rel, mode)  # explicit: the umask must not change the image
    shutil.copyfile(busybox, root / "bin/busybox")
    os.chmod(root / "bin/busybox", 0o755)
    applets = []
    for line in listing.split():
        rel = PurePosixPath(line)
        if rel.is_absolute() or ".." in rel.parts or str(rel) == "bin/busybox":
            continue
        link = root / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            os.symlink("/bin/busybox", link)
        applets.append(str(rel))
    for rel, text in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
        (root / rel).write_text(text)
        os.chmod(root / rel, 0o644)
    return Rootfs(root, version, tuple(sorted(applets)))


# -- step 2: tar -> diff_id ------------------------------------------------------------------


def _tree(root: Path) -> list[tuple[str, Path]]:
    """(name in the tar, path) of everything under ``root``, sorted by name; symlinks not followed."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        for name in dirnames + filenames:
            entries.append(((rel / name).as_posix(), Path(dirpath) / name))
    return sorted(entries)


def tar_rootfs(root: str | os.PathLike, out: BinaryIO, *, mtime: int = 0) -> tuple[str, int]:
    """Write ``root`` as a tar to ``out``; returns (diff_id, size) of the tar bytes.

    Deterministic: entries sorted by name, owner 0:0 with no user names, every mtime set to
    ``mtime``, relative names (a leading ``/`` would make extractors strip or refuse it).
    """
    hashing = HashingWriter(out)
    with tarfile.open(fileobj=hashing, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, path in _tree(Path(root)):
            st = path.lstat()
            info = tarfile.TarInfo(name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = mtime
            info.mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISLNK(st.st_mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                info.size = st.st_size
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                raise LayoutError(f"{path}: only directories, files and symlinks go in this layer (part 4 does the rest)")
    return hashing.digest, hashing.size


# -- step 3: gzip -> digest ------------------------------------------------------------------


def compress_layer(tar: BinaryIO, out: BinaryIO, *, level: int = 9) -> tuple[str, int]:
    """gzip the tar stream ``tar`` into ``out``; returns (digest, size) of the compressed bytes.

    No file name and mtime 0 in the gzip header (``gzip -n``): same tar, same digest.
    """
    hashing = HashingWriter(out)
    with gzip.GzipFile(filename="", mode="wb", fileobj=hashing, compresslevel=level, mtime=0) as gz:
        shutil.copyfileobj(tar, gz, 1 << 20)
    return hashing.digest, hashing.size


# -- steps 6 and 7: config and manifest ------------------------------------------------------


def busybox_config(diff_id: str, *, created: str, busybox_version: str = "unknown", plat: Platform | None = None) -> ImageConfig:
    """The image config: run ``sh`` with a PATH, on this platform, over one layer."""
    plat = plat or host_platform()
    return ImageConfig(
        architecture=plat.architecture,
        os=plat.os,
        variant=plat.variant,
        created=created,
        config=ContainerConfig(env=(DEFAULT_PATH,), cmd=("sh",)),
        rootfs_diff_ids=(diff_id,),
        history=(
            History(
                created=created,
                created_by=f"python -m part2_manual_oci: busybox {busybox_version} root filesystem, by hand",
                comment="one layer: /bin/busybox, applet links, /etc/passwd, /etc/group",
            ),
        ),
    )


def busybox_manifest(config: Descriptor, layer: Descriptor) -> Manifest:
    """The manifest: the config descriptor and the one layer descriptor."""
    return Manifest(config=config, layers=(layer,))


# -- all steps -------------------------------------------------------------------------------

StepCallback = Callable[[str, dict], None]


def build_busybox_image(
    out_dir: str | os.PathLike,
    tag: str = "latest",
    busybox: str | os.PathLike = DEFAULT_BUSYBOX,
    *,
    workdir: str | os.PathLike | None = None,
    epoch: int | None = None,
    on_step: StepCallback | None = None,
    platform: Platform | None = None,
) -> Descriptor:
    """Build the runnable busybox image into the layout ``out_dir`` under ``tag``.

    Returns the manifest's descriptor as written to index.json. ``workdir`` keeps the rootfs,
    layer.tar and layer.tar.gz there (default: a temporary directory). ``epoch`` (default
    $SOURCE_DATE_EPOCH, else 0) dates every file and the config. ``on_step(name, facts)``
    is called after each step with what it computed (the chapter script narrates those).
    ``platform`` is the one the image is for: by default the one ``busybox`` was compiled for
    (its ELF header: Debian's ``busybox-static:arm64`` makes a ``linux/arm64`` image), else
    this host's. Listing a foreign busybox's applets runs it, through qemu-user where the
    host has it registered with binfmt_misc.
    """
    report = on_step or (lambda name, facts: None)
    mtime = source_date_epoch(epoch)
    created = rfc3339(mtime)
    with tempfile.TemporaryDirectory(prefix="part2-busybox-") as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rootfs = make_rootfs(work / "rootfs", busybox)
        report("rootfs", {"rootfs": rootfs, "busybox": Path(busybox)})

        tar_path = work / "layer.tar"
        with open(tar_path, "wb") as f:
            diff_id, tar_size = tar_rootfs(rootfs.path, f, mtime=mtime)
        report("tar", {"path": tar_path, "diff_id": diff_id, "size": tar_size, "mtime": mtime, "kept": workdir is not None})

        gz_path = work / "layer.tar.gz"
        with open(tar_path, "rb") as src, open(gz_path, "wb") as dst:
            digest, gz_size = compress_layer(src, dst)
        report("compress", {"path": gz_path, "digest": digest, "size": gz_size, "tar_size": tar_size})

        layout = OCILayout.create(out_dir)
        report("layout", {"layout": layout})

        with open(gz_path, "rb") as f:
            layer = layout.put_blob(f, mt.OCI_LAYER_GZIP, expected_digest=digest)
        report("layer", {"descriptor": layer, "path": layout.blob_path(layer.digest)})

    plat = platform or elf_platform(busybox) or host_platform()
    config = busybox_config(diff_id, created=created, busybox_version=rootfs.busybox_version, plat=plat)
    config_desc = layout.put_json(config, mt.OCI_CONFIG)
    report("config", {"config": config, "descriptor": config_desc, "bytes": canonical_json(config)})

    manifest = busybox_manifest(config_desc, layer)
    manifest_desc = layout.put_json(manifest, mt.OCI_MANIFEST)
    report("manifest", {"manifest": manifest, "descriptor": manifest_desc, "bytes": canonical_json(manifest)})

    entry = layout.add_manifest(replace(manifest_desc, platform=Platform(plat.architecture, plat.os, variant=plat.variant)), ref_name=tag)
    report("index", {"descriptor": entry, "index": layout.index(), "path": layout.path / "index.json"})
    return entry
