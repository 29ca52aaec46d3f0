"""The chapter's demonstration, as a function the tests (and ``__main__``) can call.

It narrates, for real on this machine: two layers packed with part 4 and extracted as overlay
lowers; an overlay mount; a write that copies a file up; a deletion that leaves a whiteout
device; a directory deleted and recreated (opaque); the layer made from the upper directory;
and the proof: base layers + that layer, applied by part 4, give the merged view back.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from pathlib import Path

from part1_overview import Narrator
from part4_tar import apply_layers, open_decompressed, write_layer

from .changes import upper_changes, write_changes
from .lower import extract_lower
from .overlay import OverlayMount, overlay_supported
from .snapshot import CopySnapshotter
from .tree import describe_tree
from .whiteouts import is_opaque, opaque_xattr, use_userxattr


def _put(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)


def _ls(root: Path) -> list[list[str]]:
    """Rows of an ``ls -lR``-like listing: mode, owner, size or device, name, note."""
    rows = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            st = os.lstat(p)
            size = f"{os.major(st.st_rdev)},{os.minor(st.st_rdev)}" if stat.S_ISCHR(st.st_mode) else str(st.st_size)
            note = ""
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                note = "whiteout"
            elif stat.S_ISDIR(st.st_mode) and is_opaque(p):
                note = "opaque"
            elif stat.S_ISLNK(st.st_mode):
                note = "-> " + os.readlink(p)
            rows.append([stat.filemode(st.st_mode), f"{st.st_uid}:{st.st_gid}", size, str(p.relative_to(root)), note])
    return rows


def _tar_rows(blob: Path) -> list[list[str]]:
    rows = []
    with open(blob, "rb") as f, tarfile.open(fileobj=open_decompressed(f), mode="r|") as tar:
        for m in tar:
            kind = {tarfile.DIRTYPE: "d", tarfile.SYMTYPE: "l", tarfile.LNKTYPE: "h", tarfile.CHRTYPE: "c"}.get(m.type, "-")
            name = m.name + ("/" if m.isdir() else "")
            note = "whiteout" if os.path.basename(m.name).startswith(".wh.") else ""
            if os.path.basename(m.name) == ".wh..wh..opq":
                note = "opaque marker"
            rows.append([kind + stat.filemode(m.mode)[1:], f"{m.uid}:{m.gid}", str(m.size), name, note])
    return rows


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def build_layers(work: Path) -> list[Path]:
    """The two layers of the demonstration (bottom first), as gzip blobs."""
    from part4_tar import LayerWriter

    base = work / "src/base"
    _put(base / "etc/motd", "Welcome to the base layer.\n")
    _put(base / "etc/issue", "base 1.0\n")
    _put(base / "bin/old-tool", "#!/bin/sh\necho old\n", 0o755)
    _put(base / "var/cache/index-1", "cached 1\n")
    _put(base / "var/cache/index-2", "cached 2\n")
    app = work / "src/app"
    _put(app / "srv/app.sh", "#!/bin/sh\necho app\n", 0o755)
    _put(app / "etc/os-release", "NAME=demo\n")
    blobs = [work / "base.tar.gz", work / "app.tar.gz"]
    with open(blobs[0], "wb") as f:
        write_layer(base, f, source_date_epoch=0)
    with open(blobs[1], "wb") as f, LayerWriter(f, source_date_epoch=0) as w:
        w.add_tree(app)
        w.add_whiteout("etc/issue")  # the app layer deletes a base file
    return blobs


def make_changes(merged: Path) -> None:
    """What a RUN step would do: append to a lower file, delete one, replace a directory."""
    with open(merged / "etc/motd", "a") as f:
        f.write("Changed by a RUN step.\n")
    os.unlink(merged / "bin/old-tool")
    shutil.rmtree(merged / "var/cache")
    (merged / "var/cache").mkdir()
    _put(merged / "var/cache/index-new", "rebuilt\n")
    _put(merged / "srv/new-file", "added\n")


def run_chapter(n: Narrator, work: Path) -> bool:
    """Run the demonstration in the empty directory ``work``; True when every check held."""
    n.title("Part 7: union mounts")
    if os.geteuid() == 0 and use_userxattr():
        uid_map = "; ".join(" ".join(line.split()) for line in Path("/proc/self/uid_map").read_text().splitlines())
        n.fact("running as", f"root of a user namespace of your own (uid_map {uid_map}): overlays mount with userxattr")
    n.step("two layers, packed by part 4, extracted as overlay lower directories")
    blobs = build_layers(work)
    lowers_bottom_first = [extract_lower(b, work / "lowers" / name) for b, name in zip(blobs, ("base", "app"))]
    for b in blobs:
        n.fact(b.name, f"{b.stat().st_size} bytes")
    n.say("The app layer's .wh.issue became overlay's own whiteout: a character device 0/0.")
    n.table(_ls(work / "lowers/app"), ["mode", "owner", "size", "lowers/app/...", ""])
    lowers = lowers_bottom_first[::-1]  # overlay wants the top layer first

    if not overlay_supported():
        n.warn("this process cannot mount overlayfs here (not root?): showing the copy snapshotter only")
        return _copy_demo(n, work, blobs, lowers)

    upper, workdir, merged = work / "upper", work / "work", work / "merged"
    m = OverlayMount(lowers, upper, workdir, merged)
    n.step("mount the union: lowerdir (top first), upperdir, workdir")
    n.command(["mount", "-t", "overlay", "overlay", "-o", m.options(), str(merged)])
    with m:
        line = next(line for line in Path("/proc/self/mountinfo").read_text().splitlines() if line.split()[4] == str(merged))
        n.fact("mountinfo", line.split(" - ")[1])
        n.say("The merged view: base's files, app's files, and no etc/issue.")
        n.output("\n".join(sorted(str(p.relative_to(merged)) for p in merged.rglob("*"))))

        n.step("write to a lower file: copy-up")
        before = _sha(work / "lowers/base/etc/motd")
        n.fact("upper before", sorted(os.listdir(upper)) or "(empty)")
        make_changes(merged)
        n.say("Appending to etc/motd made overlayfs copy the whole file up into the upper directory\n"
              "first (copy-up), then write there; the lower file is untouched:")
        n.fact("lowers/base/etc/motd sha256", f"{before} before, {_sha(work / 'lowers/base/etc/motd')} after")
        n.output((upper / "etc/motd").read_text())

        n.step("deletions: a whiteout device, and an opaque directory")
        n.say("bin/old-tool was deleted, var/cache deleted and made again. The upper directory now holds:")
        n.table(_ls(upper), ["mode", "owner", "size", "upper/...", ""])
        n.command(["stat", "-c", "'%A %t,%T'", str(upper / "bin/old-tool")])
        st = os.lstat(upper / "bin/old-tool")
        n.output(f"{stat.filemode(st.st_mode)} {os.major(st.st_rdev):x},{os.minor(st.st_rdev):x}")
        opaque = opaque_xattr(m.userxattr)
        n.fact(f"{opaque} on upper/var/cache", os.getxattr(upper / "var/cache", opaque).decode())
        view = describe_tree(merged)
    n.fact("unmounted", not os.path.ismount(merged))

    n.step("the upper directory as a layer (part 4's LayerWriter)")
    n.say("Changes, as `docker diff` would list them:")
    n.output("\n".join(str(c) for c in upper_changes(upper, lowers)))
    layer = work / "changes.tar.gz"
    with open(layer, "wb") as f:
        info = write_changes(upper, f, source_date_epoch=0)
    n.fact("digest", info.digest)
    n.fact("diff_id", info.diff_id)
    n.fact("size", info.size)
    n.table(_tar_rows(layer), ["type+mode", "owner", "size", "entry", ""])

    n.step("check: base + app + this layer, applied by part 4, is the merged view")
    rootfs = work / "applied"
    apply_layers([*blobs, layer], rootfs)
    got = describe_tree(rootfs)
    got.pop(".")
    view.pop(".")
    same = got == view
    n.fact("merged view == base + layer", same)
    n.say(f"({len(view)} entries compared: type, mode, owner, content digest, link target, xattrs)")

    n.step("the same step with the copy snapshotter (for hosts without overlayfs)")
    same_copy = _copy_check(n, work, blobs, lowers, view)
    n.done()
    return same and same_copy


def _copy_check(n: Narrator, work: Path, blobs: list[Path], lowers: list[Path], view: dict) -> bool:
    with CopySnapshotter().prepare(lowers, work / "copy") as snap:
        make_changes(snap.root)
        n.say("The copy snapshotter copied the merged layers into a plain rootfs, and now compares:")
        n.output("\n".join(str(c) for c in snap.changes()))
        layer = work / "copy-changes.tar.gz"
        with open(layer, "wb") as f:
            info = snap.write_changes(f, source_date_epoch=0)
    n.fact("copy layer digest", info.digest)
    apply_layers([*blobs, layer], work / "applied-copy")
    got = describe_tree(work / "applied-copy")
    got.pop(".")
    same = got == view
    n.fact("base + copy layer == merged view", same)
    return same


def _copy_demo(n: Narrator, work: Path, blobs: list[Path], lowers: list[Path]) -> bool:
    from .tree import LayerStack

    view = describe_tree(LayerStack(lowers))
    with CopySnapshotter().prepare(lowers, work / "copy-view") as snap:
        make_changes(snap.root)
        view = describe_tree(snap.root)
    view.pop(".")
    ok = _copy_check(n, work, blobs, lowers, view)
    n.done()
    return ok
