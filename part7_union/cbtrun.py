"""The end of the cbt story: ``cbt run``, the blog's last command, for real.

The blog's part 3 left ``cbt run $CONTAINER -l root -u deps -- /bin/sh -c "echo hello world"`` as
a stub: the lower layers (``root``, the base image), the upper layer that receives the changes.
This chapter is what it was waiting for: an overlay of the layer folders, with the upper layer
folder as overlayfs's upper directory. Running needs part 6 as well, and cbt lives in part 3,
which may not import later parts; the ``cbt`` command (``capstone/cbt.py``) is where they meet.
So this demonstration runs that command, as a user would, and narrates what it does: a run
over the base image, a second run stacked on the first, a build of both layer folders (with
the whiteouts translated), and the proof that the image's layers give the merged view back.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

from part1_overview import Narrator
from part2_manual_oci import OCILayout, build_busybox_image, validate_layout
from part4_tar import apply_layers

CBT = [sys.executable, "-m", "capstone.cbt"]

FIRST_RUN = "echo hello world; mkdir -p /opt/app; echo 'echo app ready' > /opt/app/start.sh; rm /etc/group"
SECOND_RUN = "cat /opt/app/start.sh; ls /etc/group 2>&1; echo v1 > /opt/app/VERSION"


def _cbt(n: Narrator, home: Path, *args: str) -> subprocess.CompletedProcess:
    n.command(["cbt", *(shlex.quote(a) for a in args)])
    r = subprocess.run([*CBT, *args], capture_output=True, text=True, env={**os.environ, "CBT_HOME": str(home)})
    n.output(r.stdout + r.stderr)
    return r


def _tree(folder: Path) -> list[str]:
    rows = []
    for path in sorted(folder.rglob("*")):
        st = os.lstat(path)
        note = ""
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            note = "  (a 0/0 device: overlayfs's whiteout)"
        rows.append(f"{stat.filemode(st.st_mode)} {path.relative_to(folder)}{note}")
    return rows


def run_cbt_story(n: Narrator, work: Path) -> bool:
    """The demonstration in the empty directory ``work``; True when every step worked."""
    home = work / "cbt-home"
    n.title("Part 7: cbt run, the end of the cbt story")
    n.step("a base image and a working folder (parts 2 and 3)")
    build_busybox_image(work / "busybox")
    n.command(f"python -m part2_manual_oci --out {work / 'busybox'}")
    ok = _cbt(n, home, "from", f"oci-layout:{work / 'busybox'}").returncode == 0

    n.step("cbt run busybox -l root -u deps: over the base image, into layers/deps")
    n.say("layers/root does not exist yet: the first run makes it from the base image's layers (part 4,\n"
          "whiteouts applied). Then the cbt command mounts an overlay: lowerdir the layer folders (top\n"
          "first), upperdir layers/deps, and runs the command in it with the part 6 runtime.")
    ok &= _cbt(n, home, "run", "busybox", "-l", "root", "-u", "deps", "--network", "none", "--", "/bin/sh", "-c", FIRST_RUN).returncode == 0
    layers = home / "busybox" / "layers"
    n.fact("layer folders", " ".join(sorted(p.name for p in layers.iterdir())))
    n.say("layers/deps is exactly what the command changed, in overlayfs's spelling:")
    n.output("\n".join(_tree(layers / "deps")))

    n.step("cbt run busybox -l root,deps -u app: a second run, stacked on the first")
    ok &= _cbt(n, home, "run", "busybox", "-l", "root,deps", "-u", "app", "--network", "none", "--", "/bin/sh", "-c", SECOND_RUN).returncode == 0
    n.say("deps is a lower layer now: its whiteout hides /etc/group of root, as the kernel reads it.")

    n.step("cbt build: the layer folders as layers, whiteouts translated")
    ok &= _cbt(n, home, "config", "busybox", "--cmd", "sh /opt/app/start.sh").returncode == 0
    out = work / "out"
    built = _cbt(n, home, "build", "busybox", f"oci-layout:{out}:app:v1", "--layers", "deps,app")
    ok &= built.returncode == 0
    n.say("The cbt command packs a folder that was an upper directory with part 7's write_changes:\n"
          "the 0/0 device etc/group became etc/.wh.group. Part 3's own build refuses such a folder:")
    refused = subprocess.run([sys.executable, "-m", "part3_go_style_builder", "build", "busybox", f"oci-layout:{out}:x", "--layers", "deps"],
                             capture_output=True, text=True, env={**os.environ, "CBT_HOME": str(home)})
    n.command(["python -m part3_go_style_builder", "build", "busybox", f"oci-layout:{out}:x", "--layers", "deps"])
    n.output(refused.stderr)
    ok &= refused.returncode == 1

    n.step("check: the image is valid, and its layers give the merged view back")
    problems = validate_layout(out)
    n.fact("validate_layout", "no violations" if not problems else problems[0])
    ok &= not problems
    layout = OCILayout.open(out)
    manifest = layout.read_manifest(layout.resolve("app:v1"))
    rootfs = work / "rootfs"
    apply_layers([layout.blob_path(layer.digest) for layer in manifest.layers], rootfs)
    checks = {
        "/opt/app/start.sh": (rootfs / "opt/app/start.sh").read_text().strip() if (rootfs / "opt/app/start.sh").exists() else None,
        "/opt/app/VERSION": (rootfs / "opt/app/VERSION").read_text().strip() if (rootfs / "opt/app/VERSION").exists() else None,
        "/etc/group exists": (rootfs / "etc/group").exists(),
    }
    for label, value in checks.items():
        n.fact(label, value)
    ok &= checks == {"/opt/app/start.sh": "echo app ready", "/opt/app/VERSION": "v1", "/etc/group exists": False}
    n.done("cbt: from, config, run, build" if ok else "a step failed")
    return ok
