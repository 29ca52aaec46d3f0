"""Chapter script: ``python -m part2_manual_oci --out DIR [--tag TAG] [--archive FILE]``.

Builds a runnable busybox image by hand and narrates every step with the digests it computes.
``shell --out DIR`` makes the same image with shell tools only (tar, gzip -n, sha256sum, stat), as
the blog does, and compares it with the Python version; ``lab start DIR`` / ``lab check DIR`` are the
chapter's lab (part1_overview.labkit).
Errors are one line on stderr and exit code 1 (2 for usage errors); outputs that cannot be
written are refused before any work is done.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from part1_overview import Narrator, lab_main, run_cli

from .archive import write_oci_archive
from .busybox import DEFAULT_BUSYBOX, build_busybox_image
from .digest import DigestError
from .errors import LayoutError
from .layout import OCILayout
from .validate import validate_layout


def _pretty(data: bytes) -> str:
    return json.dumps(json.loads(data), indent=2)


def _narrate_rootfs(n: Narrator, facts: dict) -> None:
    rootfs = facts["rootfs"]
    n.step("make a root filesystem")
    n.say(
        f"Copy {facts['busybox']} (static: it needs no libraries) to /bin/busybox and make one\n"
        "symlink per applet: busybox looks at argv[0] to know whether it is sh, ls or wc.\n"
        "Add /etc/passwd and /etc/group (root, nobody), /tmp (mode 1777), /root, /home and\n"
        "the empty mount points /dev, /proc and /sys."
    )
    n.fact("busybox", rootfs.busybox_version)
    n.fact("applet links", f"{len(rootfs.applets)} (from `busybox --list-full`), e.g. {', '.join(rootfs.applets[:4])}")
    n.fact("rootfs", rootfs.path)


def _narrate_tar(n: Narrator, facts: dict) -> None:
    n.step("tar the root filesystem: the uncompressed layer")
    n.say(
        "Entries sorted by name, owner 0:0, every mtime set to SOURCE_DATE_EPOCH, relative names:\n"
        "the same tree always gives the same bytes. The sha256 of these bytes is the diff_id,\n"
        "the name the image config gives the layer."
    )
    n.fact("layer.tar", f"{facts['size']} bytes (mtime {facts['mtime']})")
    n.fact("diff_id", facts["diff_id"])
    if facts.get("kept"):
        n.command(f"sha256sum {facts['path']}    # the same diff_id")
    else:
        n.say("(run with --workdir DIR to keep rootfs/, layer.tar and layer.tar.gz and check them)")


def _narrate_compress(n: Narrator, facts: dict) -> None:
    n.step("gzip the tar: the layer blob")
    n.say(
        "gzip with no file name and mtime 0 in its header (like `gzip -n`). The sha256 of the\n"
        "compressed bytes is the layer's digest, the name the manifest gives it."
    )
    n.fact("layer.tar.gz", f"{facts['size']} bytes ({facts['size'] * 100 // facts['tar_size']}% of the tar)")
    n.fact("digest", facts["digest"])


def _narrate_layout(n: Narrator, facts: dict) -> None:
    layout = facts["layout"]
    n.step("create the image layout")
    n.say(
        "An OCI image layout is a directory: the oci-layout marker, blobs/sha256/ holding\n"
        "every blob under its digest, and index.json naming the images (empty for now)."
    )
    n.fact("oci-layout", (layout.path / "oci-layout").read_text())
    n.fact("layout", layout.path)


def _narrate_layer(n: Narrator, facts: dict) -> None:
    desc = facts["descriptor"]
    n.step("store the layer blob")
    n.say(
        "put_blob hashes while it writes a temp file in blobs/sha256, fsyncs and renames it\n"
        "to its digest: a blob file is either complete and correct or absent."
    )
    n.fact("blob", facts["path"])
    n.fact("descriptor", json.dumps(desc.to_json()))


def _narrate_config(n: Narrator, facts: dict) -> None:
    config = facts["config"]
    n.step("write the image config")
    n.say(
        f"What to run (Cmd {list(config.config.cmd)}, Env PATH), for which platform\n"
        f"({config.os}/{config.architecture}, from this host), and rootfs.diff_ids: one diff_id per layer."
    )
    n.output(_pretty(facts["bytes"]))
    n.fact("config digest", f"{facts['descriptor'].digest} ({facts['descriptor'].size} bytes)")


def _narrate_manifest(n: Narrator, facts: dict) -> None:
    n.step("write the manifest")
    n.say(
        "The manifest ties it together: a descriptor (media type, digest, size) of the config\n"
        "and one per layer, bottom layer first. It is stored as compact JSON: the digest is of\n"
        "these exact bytes, so re-indenting it would make a different blob."
    )
    n.output(_pretty(facts["bytes"]))
    n.fact("manifest digest", f"{facts['descriptor'].digest} ({facts['descriptor'].size} bytes)")


def _narrate_index(n: Narrator, facts: dict) -> None:
    desc = facts["descriptor"]
    n.step("name the manifest in index.json")
    n.say(
        "Last, index.json gets an entry for the manifest with the annotation\n"
        "org.opencontainers.image.ref.name; it is replaced atomically, so it only ever names\n"
        "blobs that are already stored."
    )
    n.output(_pretty(facts["path"].read_bytes()))
    n.fact("ref", f"{desc.ref_name} -> {desc.digest}")


#: what the reader is told after each step of ``build_busybox_image``, in the chapter's order
NARRATION = {
    "rootfs": _narrate_rootfs,
    "tar": _narrate_tar,
    "compress": _narrate_compress,
    "layout": _narrate_layout,
    "layer": _narrate_layer,
    "config": _narrate_config,
    "manifest": _narrate_manifest,
    "index": _narrate_index,
}


def narrate_step(n: Narrator, name: str, facts: dict) -> None:
    """Tell the reader what one step of ``build_busybox_image`` did."""
    tell = NARRATION.get(name)
    if tell is not None:
        tell(n, facts)


PROG = "python -m part2_manual_oci"


def _oserror(e: OSError) -> str:
    """``PATH: strerror``: one line naming the file, whatever the OSError."""
    if e.filename is not None:
        return f"{os.fsdecode(e.filename)}: {e.strerror or e}"
    return e.strerror or str(e)


def _probe_writable(directory: Path, what: str) -> None:
    """Make and remove a temporary entry in ``directory``: the one honest writability check
    (as root, os.access says yes to read-only mounts and to /proc)."""
    try:
        with tempfile.TemporaryDirectory(dir=directory, prefix=".part2-probe-"):
            pass
    except OSError as e:
        raise LayoutError(f"{what}: cannot write in {directory} ({e.strerror})") from None


def check_outputs(out: Path, archive: Path | None) -> None:
    """Refuse, before any work, outputs that cannot be written: nothing is left half-made."""
    if out.exists():
        if not out.is_dir():
            raise LayoutError(f"{out}: not a directory")
        if any(out.iterdir()) and not (out / "oci-layout").is_file():
            raise LayoutError(f"{out}: not empty and not an OCI image layout; give a new or empty directory, or a layout to add to")
        _probe_writable(out, str(out))
    else:
        ancestor = out.absolute().parent
        while not ancestor.exists():
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise LayoutError(f"{out}: {ancestor} is not a directory")
        _probe_writable(ancestor, str(out))
    if archive is not None:
        if archive.is_dir():
            raise LayoutError(f"{archive}: is a directory; an oci-archive is a file")
        parent = archive.absolute().parent
        if not parent.is_dir():
            raise LayoutError(f"{archive}: no such directory {parent}")
        _probe_writable(parent, str(archive))


def _sha(value: str) -> str:
    return value.split()[0]


def shell_demo(n: Narrator, out: Path, workdir: Path, busybox: str) -> bool:
    """The image made with shell tools only, beside the Python version; True when both are valid."""
    from .shell import build_with_shell, header_differences

    n.title("Part 2: the same image with shell tools only")
    n.step("run the blog's way: tar, gzip -n, sha256sum, stat and printf")
    n.say(f"The script (`{PROG} shell --print` prints it) makes the root filesystem\n"
          "with mkdir, cp and ln -s, tars it with GNU tar, gzips it with gzip -n, and writes every JSON\n"
          "document with printf, naming each blob by its sha256sum and sizing it with stat.")
    n.command(f"bash by-hand.sh {out} {workdir / 'shell'} {busybox}")
    facts = build_with_shell(out, workdir / "shell", busybox)
    for key in ("diff_id", "layer", "config", "manifest"):
        n.fact(key, facts[key])

    n.step("check it: validate_layout, and the spec's own tool")
    problems = validate_layout(out)
    for p in problems:
        n.warn(p)
    n.fact("violations", "none" if not problems else len(problems))
    n.command(f"oci-image-tool validate --type image --ref name=latest {out}")
    n.command(f"skopeo inspect oci:{out}:latest")

    n.step("the Python version of the same steps")
    python_out = workdir / "python-oci"
    build_busybox_image(python_out, workdir=workdir / "python", busybox=busybox)
    layout = OCILayout.open(python_out)
    manifest = layout.read_manifest(layout.resolve("latest"))
    config = layout.read_config(manifest)
    shown = {
        "diff_id": (facts["diff_id"], config.rootfs_diff_ids[0]),
        "layer digest": (_sha(facts["layer"]), manifest.layers[0].digest),
        "config digest": (_sha(facts["config"]), manifest.config.digest),
        "manifest digest": (_sha(facts["manifest"]), layout.resolve("latest").digest),
    }
    n.table(((k, a[:19] + "...", b[:19] + "...", "same" if a == b else "differs") for k, (a, b) in shown.items()),
            ("", "shell", "python", ""))

    n.step("why the bytes differ although the trees are the same")
    listings = [subprocess.run(["tar", "-tvf", str(workdir / d / "layer.tar")], capture_output=True, text=True).stdout
                for d in ("shell", "python")]
    n.fact("tar -tvf of the two layers", "the same listing" if listings[0] == listings[1] else "different listings")
    diffs = header_differences(workdir / "shell" / "layer.tar", workdir / "python" / "layer.tar")
    n.fact("header fields that differ", ", ".join(f"{k} ({v} headers)" for k, v in diffs.items()) or "none")
    n.say("GNU tar writes 0000000 in the device-number fields of every header; Python's tarfile leaves\n"
          "them NUL. Same files, other bytes: another diff_id, so another config and manifest. And gzip's\n"
          "deflate is not zlib's: another layer digest. Both images are valid: a digest names bytes,\n"
          "not files. A reproducible build pins its tools, not only their options (sorted names, owner\n"
          "0:0, mtime, gzip -n), and a diff_id can be checked against the tar, never guessed from the files.")
    ok = not problems and not validate_layout(python_out)
    n.done("two valid images of one tree" if ok else "an image is not valid")
    return ok


def shell_main(argv: list[str]) -> int:
    """``shell --out DIR [--workdir W] [--busybox B] | --print``."""
    from .shell import SCRIPT

    parser = argparse.ArgumentParser(prog=f"{PROG} shell", description="The chapter's image made with shell tools only, beside the Python version.")
    parser.add_argument("--out", type=Path, help="the new OCI image layout the script writes")
    parser.add_argument("--workdir", type=Path, help="keep the script, both root filesystems and layers here")
    parser.add_argument("--busybox", default=DEFAULT_BUSYBOX, help=f"the static busybox binary (default: {DEFAULT_BUSYBOX})")
    parser.add_argument("--print", action="store_true", help="print the script and stop")
    args = parser.parse_args(argv)
    if args.print:
        sys.stdout.write(SCRIPT)
        return 0
    if args.out is None:
        parser.error("--out DIR is required (or --print)")
    try:
        if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
            raise LayoutError(f"{args.out}: not a new or empty directory")
        with tempfile.TemporaryDirectory(prefix="part2-shell-") as tmp:
            workdir = args.workdir or Path(tmp)
            if workdir.exists() and any(workdir.iterdir()):
                raise LayoutError(f"{workdir}: not a new or empty directory")
            ok = shell_demo(Narrator(), args.out, workdir, args.busybox)
    except BrokenPipeError:
        raise
    except (LayoutError, DigestError) as e:
        print(f"{PROG} shell: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{PROG} shell: error: {_oserror(e)}", file=sys.stderr)
        return 1
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["lab"]:
        from .lab import LAB

        return lab_main(LAB, argv[1:])
    if argv[:1] == ["shell"]:
        return shell_main(argv[1:])
    parser = argparse.ArgumentParser(prog=PROG, description="Build a runnable busybox OCI image by hand, narrating each step.")
    parser.add_argument("--out", required=True, type=Path, help="the OCI image layout directory to write (created or added to)")
    parser.add_argument("--tag", default="latest", help="the ref name in index.json (default: latest)")
    parser.add_argument("--archive", type=Path, help="also write the layout as an oci-archive (a plain tar) to FILE")
    parser.add_argument("--busybox", default=DEFAULT_BUSYBOX, help=f"the static busybox binary (default: {DEFAULT_BUSYBOX})")
    parser.add_argument("--workdir", type=Path, help="keep rootfs/, layer.tar and layer.tar.gz in this directory")
    args = parser.parse_args(argv)

    try:
        check_outputs(args.out, args.archive)
    except LayoutError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    n = Narrator()
    n.title("Part 2: an OCI image by hand")
    try:
        desc = build_busybox_image(args.out, args.tag, args.busybox, workdir=args.workdir, on_step=lambda name, facts: narrate_step(n, name, facts))
        n.step("validate the layout")
        problems = validate_layout(args.out)
        n.say("validate_layout checks every blob's digest and size, that index -> manifest -> config and\nlayers resolve, and that each diff_id is the sha256 of the decompressed layer.")
        if problems:
            for p in problems:
                n.warn(p)
            return 1
        n.fact("violations", "none")
        if args.archive:
            n.step("write an oci-archive")
            write_oci_archive(args.out, args.archive)
            n.say("An oci-archive is just a tar of the layout directory.")
            n.fact("archive", f"{args.archive} ({args.archive.stat().st_size} bytes)")
            n.command(f"skopeo inspect oci-archive:{args.archive}:{args.tag}")
    except BrokenPipeError:
        raise  # the reader went away: run_cli ends quietly
    except (LayoutError, DigestError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{PROG}: error: {_oserror(e)}", file=sys.stderr)
        return 1

    n.step("check it with real tools")
    out, tag = args.out, args.tag
    # the bundle goes beside what the reader asked to keep: the work directory, else the layout
    bundle = args.workdir / "bundle" if args.workdir else Path(f"{out}-bundle")
    n.command(f"skopeo inspect oci:{out}:{tag}")
    n.command(f"oci-image-tool validate --type image --ref name={tag} {out}")
    n.command(f"umoci unpack --image {out}:{tag} {bundle}")
    n.say("umoci's config.json asks for a terminal; off a terminal set process.terminal to false, then:")
    n.command(f"runc run -b {bundle} part2-demo    # a busybox shell; `exit` to leave")
    n.done(f"image {tag} is {desc.digest}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
