"""``python -m part4_tar``: layers as tar streams, narrated on a small tree.

    python -m part4_tar [demo] [--workdir DIR]
    python -m part4_tar pack SRC OUT [--compression gzip|zstd|none] [--source-date-epoch N]
    python -m part4_tar unpack LAYER... DEST [--no-whiteouts]
    python -m part4_tar pipe [--timeout S]

``pack`` prints the layer's digest, diff_id and size; ``unpack`` applies layers in order
(lowest first) onto DEST, whiteouts included. ``SOURCE_DATE_EPOCH`` in the environment is used
when ``--source-date-epoch`` is not given. Errors are one line on stderr, exit code 1 (2 for
usage errors); a failed ``pack`` leaves no OUT, a failed ``unpack`` into a new DEST no DEST. ``pipe``
shows the deadlock of a writer and a reader on one thread, which the worker thread avoids.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

from part1_overview import Narrator, lab_main, run_cli
from part2_manual_oci import atomic_file

from .blobinfo import layer_info
from .compression import gzip_backend
from .errors import LayerError
from .extract import apply_layers
from .writer import LayerInfo, LayerWriter, write_layer

#: the demo's fixed time (2023-11-14 22:13:20 UTC): every mtime of the demo tree, so the
#: digests it prints are the same on every run and every machine with the same gzip backend
DEMO_EPOCH = 1700000000

_TYPE = {tarfile.REGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink",
         tarfile.LNKTYPE: "hard link", tarfile.FIFOTYPE: "fifo", tarfile.CHRTYPE: "char dev",
         tarfile.BLKTYPE: "block dev"}


def _entries(path: str) -> list[tuple[str, str, str, str, str]]:
    rows = []
    with tarfile.open(path, "r:*") as tar:
        for m in tar:
            target = f" -> {m.linkname}" if m.issym() else (f" => {m.linkname}" if m.islnk() else "")
            rows.append((_TYPE.get(m.type, m.type.decode()), f"{m.mode:04o}", f"{m.uid}:{m.gid}", str(m.size), m.name + ("/" if m.isdir() else "") + target))
    return rows


def _make_tree(root: str) -> None:
    """The demo's tree: files, a directory, a symlink and a hard link, all with fixed times."""
    files = {
        "etc/hostname": "demo\n",
        "etc/motd": "Welcome to part 4.\n",
        "bin/hello": "#!/bin/sh\necho hello from a layer\n",
        "usr/share/doc/demo/README": "Layers are tar streams.\n",
        "usr/share/doc/demo/NOTES": "Whiteouts delete lower files.\n",
    }
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755 if rel.startswith("bin/") else 0o644)
    os.symlink("hello", os.path.join(root, "bin/hi"))
    os.link(os.path.join(root, "etc/hostname"), os.path.join(root, "etc/hostname.bak"))
    _fix_times(root)


def _fix_times(root: str) -> None:
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (DEMO_EPOCH, DEMO_EPOCH), follow_symlinks=False)
        os.chmod(dirpath, 0o755)
        os.utime(dirpath, (DEMO_EPOCH, DEMO_EPOCH))


def _sh(n: Narrator, command: str) -> str:
    n.command(command)
    out = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, check=True).stdout
    n.output(out)
    return out


def _tree(root: str) -> str:
    lines = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            path = os.path.join(dirpath, name)
            shown = name if rel == "." else f"{rel}/{name}"
            if os.path.islink(path):
                lines.append(f"{shown} -> {os.readlink(path)}")
            else:
                with open(path, encoding="utf-8", errors="replace") as f:
                    lines.append(f"{shown}: {f.read().strip().splitlines()[-1]!r}")
    return "\n".join(lines)


def demo(n: Narrator, workdir: str, *, keep: bool = True) -> None:
    n.title("Part 4: layers as tar streams")
    src = os.path.join(workdir, "tree")
    _make_tree(src)

    n.step("a small tree")
    n.say("Five files, a symlink (bin/hi -> hello) and a hard link (etc/hostname.bak), every\n"
          f"mtime set to {DEMO_EPOCH} so this page's digests are the same on every run.")
    n.fact("source", src)
    info_tar = _demo_tar(n, src, workdir)
    gz, info = _demo_gzip(n, src, workdir)
    _demo_digests(n, gz, info, info_tar)
    _demo_same_digest(n, src, workdir, info)
    gz2 = _demo_whiteouts(n, workdir)
    _demo_apply(n, workdir, gz, gz2, keep)
    n.done("packed, digested, and applied two layers")


def _demo_tar(n: Narrator, src: str, workdir: str) -> LayerInfo:
    n.step("tar: the tree as one stream of entries")
    plain = os.path.join(workdir, "layer.tar")
    with open(plain, "wb") as f:
        info_tar = write_layer(src, f, "none", source_date_epoch=DEMO_EPOCH)
    n.say("Each entry is a 512-byte header (name, type, mode, numeric owner, size, mtime, link\n"
          "target) then its data padded to 512 bytes; two zero blocks end the archive. Entries are\n"
          "sorted, user and group names are left out, and the second name of a hard link is\n"
          "stored as a link to the first: nothing depends on the machine that packed it.")
    n.table(_entries(plain), ("type", "mode", "owner", "size", "name"))
    n.fact("tar size", f"{info_tar.size} bytes ({info_tar.size // 512} blocks)")
    n.fact("sha256 of the tar", info_tar.digest)

    return info_tar


def _demo_gzip(n: Narrator, src: str, workdir: str) -> tuple[str, LayerInfo]:
    n.step("gzip: the blob that is stored and pushed")
    gz = os.path.join(workdir, "layer.tar.gz")
    with open(gz, "wb") as f:
        info = write_layer(src, f, "gzip", source_date_epoch=DEMO_EPOCH)
    n.say(f"Compressed in the same pass that wrote the tar (gzip level 1 with {gzip_backend()}); the\n"
          "gzip header carries no time stamp and no file name.")
    n.fact("media type", info.media_type)
    n.fact("size", f"{info.size} bytes")

    return gz, info


def _demo_digests(n: Narrator, gz: str, info: LayerInfo, info_tar: LayerInfo) -> None:
    n.step("digest and diff_id, computed while the bytes passed")
    n.say("The manifest names the blob by the digest of its compressed bytes; the config lists\n"
          "the diff_id, the digest of the uncompressed tar. Check both with standard tools:")
    n.fact("digest", info.digest)
    _sh(n, f"sha256sum {gz}")
    n.fact("diff_id", info.diff_id)
    _sh(n, f"gzip -dc {gz} | sha256sum")
    n.say("The diff_id equals the sha256 of the uncompressed tar of step 2: "
          + ("yes" if info.diff_id == info_tar.digest else "NO"))
    again = layer_info(open(gz, "rb"))
    n.fact("layer_info(blob) reads them back", f"{again.digest == info.digest and again.diff_id == info.diff_id}")



def _demo_same_digest(n: Narrator, src: str, workdir: str, info: LayerInfo) -> None:
    n.step("same tree, same digest")
    for dirpath, _, filenames in os.walk(src):
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as f:
                f.read()  # changes the atime (on mounts without noatime), which a layer never records
    with open(os.path.join(workdir, "again.tar.gz"), "wb") as f:
        second = write_layer(src, f, "gzip", source_date_epoch=DEMO_EPOCH)
    n.fact("second pack", second.digest)
    n.say("identical: " + ("yes" if second.digest == info.digest else "NO"))



def _demo_whiteouts(n: Narrator, workdir: str) -> str:
    n.step("whiteouts: a second layer deletes and replaces")
    upper = os.path.join(workdir, "upper")
    os.makedirs(os.path.join(upper, "usr/share/doc/demo"))
    with open(os.path.join(upper, "usr/share/doc/demo/README"), "w") as f:
        f.write("Only this file is left in the opaque directory.\n")
    _fix_times(upper)
    gz2 = os.path.join(workdir, "layer2.tar.gz")
    with open(gz2, "wb") as f, LayerWriter(f, "gzip", source_date_epoch=DEMO_EPOCH) as w:
        w.add_whiteout("etc/motd")
        w.add_path(os.path.join(upper, "usr"), "usr")
        w.add_path(os.path.join(upper, "usr/share"), "usr/share")
        w.add_path(os.path.join(upper, "usr/share/doc"), "usr/share/doc")
        w.add_tree(os.path.join(upper, "usr/share/doc/demo"), "usr/share/doc/demo")
        w.add_opaque("usr/share/doc/demo")
    n.say("`.wh.motd` deletes etc/motd of the layer below; `.wh..wh..opq` makes the directory\n"
          "opaque: its lower content is hidden, the entries of this layer stay.")
    n.table(_entries(gz2), ("type", "mode", "owner", "size", "name"))
    n.fact("layer 2 digest", w.info.digest)

    return gz2


def _demo_apply(n: Narrator, workdir: str, gz: str, gz2: str, keep: bool) -> None:
    n.step("apply both layers: the image's root filesystem")
    rootfs = os.path.join(workdir, "rootfs")
    apply_layers([gz, gz2], rootfs)
    n.say("Extraction resolves every path inside the root (a symlink to /etc means the image's\n"
          "/etc), replaces rather than writes through existing files, and applies whiteouts in\n"
          "the same pass:")
    n.output(_tree(rootfs))
    if keep:
        mine = os.path.join(workdir, "my-rootfs")
        n.say("Unpack the two layers yourself, and compare with the demo's root filesystem:")
        n.command(f"python -m part4_tar unpack {gz} {gz2} {mine} && diff -r --no-dereference {rootfs} {mine}")
    else:
        n.say("These files live in a temporary directory removed at the end; keep them with:")
        n.command("python -m part4_tar demo --workdir DIR")


PROG = "python -m part4_tar"


def _oserror(exc: OSError) -> str:
    """``PATH: strerror``: one line naming the file, whatever the OSError."""
    if exc.filename is not None:
        return f"{os.fsdecode(exc.filename)}: {exc.strerror or exc}"
    return exc.strerror or str(exc)


def pack(src: str, out: str, compression: str, source_date_epoch: int | None) -> LayerInfo:
    """Pack ``src`` into the file ``out``, atomically (part 2's ``atomic_file``: a temp file next
    to it, renamed when complete), so a failed pack leaves no blob (and an existing ``out``
    untouched)."""
    if not os.path.isdir(src):
        raise LayerError(f"{src}: {'not a directory' if os.path.exists(src) else 'no such directory'}")
    target = os.path.abspath(out)
    with contextlib.ExitStack() as stack:
        try:
            f = stack.enter_context(atomic_file(target, 0o644 & ~_umask(), prefix=f".{os.path.basename(out)}."))
        except OSError as exc:
            raise LayerError(f"cannot write {out}: {exc.strerror}") from exc
        return write_layer(src, f.file, compression, source_date_epoch=source_date_epoch)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def unpack(layers: list[str], dest: str, *, whiteouts: bool = True) -> None:
    """Apply ``layers`` onto ``dest``. A new ``dest`` appears only when every layer applied:
    they are extracted into a temporary directory next to it, renamed at the end. An existing
    ``dest`` is applied onto in place (a failure then leaves it part-way)."""
    from .extract import extract_layer

    for layer in layers:
        if not os.path.isfile(layer):
            raise LayerError(f"{layer}: {'not a file' if os.path.exists(layer) else 'no such file'}")
    target = dest
    fresh = not os.path.lexists(dest)
    if not fresh and not os.path.isdir(dest):
        raise LayerError(f"{dest}: not a directory")
    if fresh:
        parent = os.path.dirname(os.path.abspath(dest))
        try:
            target = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(dest)}.")
            os.chmod(target, 0o755 & ~_umask())
        except OSError as exc:
            raise LayerError(f"cannot create {dest}: {exc.strerror}") from exc
    try:
        if whiteouts:
            apply_layers(layers, target)
        else:
            for layer in layers:
                with open(layer, "rb") as f:
                    try:
                        extract_layer(f, target, whiteouts=False)
                    except LayerError as exc:
                        raise LayerError(f"{layer}: {exc}") from exc
        if fresh:
            os.rename(target, dest)
    except BaseException:
        if fresh:
            shutil.rmtree(target, ignore_errors=True)
        raise


def pipe_demo(n: Narrator, timeout: float = 1.0) -> None:
    """The blog's io.Pipe caveat with os.pipe: a writer and a reader on one thread deadlock."""
    from . import pipeline
    from .deadlock import one_thread, pipe_capacity, writer_thread

    size = 1 << 20
    n.title("Part 4: why the tar writer has a thread of its own")
    n.step("a pipe holds only so much")
    n.say("A pipe is a buffer in the kernel between a writing end and a reading end. A write into a\n"
          "full pipe waits until someone reads; a read from an empty one waits until someone writes.")
    n.fact("this kernel's pipe buffer (F_GETPIPE_SZ)", f"{pipe_capacity()} bytes")
    n.step(f"one thread writes a {size >> 20} MiB layer into the pipe, then reads it")
    n.say("As Go code that writes into io.Pipe without a goroutine: the write that fills the buffer\n"
          "waits for a reader, and the only reader is the same thread, stuck in that write. Forever:\n"
          f"here a timer interrupts it after {timeout:g} s.")
    result = one_thread(size, timeout)
    n.fact("written before the write blocked", f"{result['written']} of {size} bytes")
    n.fact("blocked", f"{'yes' if result['blocked'] else 'no'} (interrupted after {result['seconds']:.1f} s)")
    n.step("the writer in a thread of its own, the reader here")
    result = writer_thread(size)
    n.fact("read and hashed", f"{result['read']} bytes in {result['seconds'] * 1000:.0f} ms")
    n.fact("sha256", result["sha256"])
    n.step("what part 4's pipeline does")
    n.say("pipeline.py never makes one thread wait for itself: the caller's thread writes tar bytes\n"
          f"and hashes them (the diff_id); past {pipeline.THREAD_AFTER >> 20} MiB a worker thread compresses, hashes\n"
          f"(the digest) and writes the blob. {pipeline.QUEUE_DEPTH + 2} buffers of {pipeline.BUFFER >> 20} MiB go round between them: the\n"
          "producer waits only while the worker works, and an error in the worker reaches the\n"
          "producer on its next write (upstream cbt only printed it, and its pipe closed as if the\n"
          "tar were whole).")
    n.done("no deadlock with a thread per end")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["lab"]:
        from .lab import LAB

        return lab_main(LAB, argv[1:])
    p = argparse.ArgumentParser(prog=PROG, description="Layers as tar streams.")
    sub = p.add_subparsers(dest="command")
    d = sub.add_parser("demo", help="the narrated chapter demo (the default)")
    d.add_argument("--workdir", help="where to leave the demo's files (default: a temporary directory)")
    pk = sub.add_parser("pack", help="pack a directory as a layer blob; print digest, diff_id, size")
    pk.add_argument("src")
    pk.add_argument("out")
    pk.add_argument("--compression", choices=("gzip", "zstd", "none"), default="gzip")
    pk.add_argument("--source-date-epoch", type=int, default=None,
                    help="clamp mtimes to this time (default: $SOURCE_DATE_EPOCH when set)")
    up = sub.add_parser("unpack", help="apply layer blobs in order (lowest first) onto DEST")
    up.add_argument("layers", nargs="+", metavar="LAYER")
    up.add_argument("dest")
    up.add_argument("--no-whiteouts", action="store_true", help="write .wh. markers as plain files")
    dl = sub.add_parser("pipe", help="the pipe deadlock the blog warns about, shown safely, and the writer thread that avoids it")
    dl.add_argument("--timeout", type=float, default=1.0, help="seconds before the blocked write is interrupted (default 1)")
    args = p.parse_args(argv)
    n = Narrator()
    try:
        if args.command == "pack":
            sde = args.source_date_epoch
            if sde is None and os.environ.get("SOURCE_DATE_EPOCH", "").strip():
                try:
                    sde = int(os.environ["SOURCE_DATE_EPOCH"])
                except ValueError:
                    pk.error(f"SOURCE_DATE_EPOCH={os.environ['SOURCE_DATE_EPOCH']!r} is not an integer")
            info = pack(args.src, args.out, args.compression, sde)
            n.fact("digest", info.digest)
            n.fact("diff_id", info.diff_id)
            n.fact("size", info.size)
            n.fact("media_type", info.media_type)
        elif args.command == "pipe":
            pipe_demo(n, args.timeout)
        elif args.command == "unpack":
            unpack(args.layers, args.dest, whiteouts=not args.no_whiteouts)
            n.fact("unpacked", f"{len(args.layers)} layer(s) into {args.dest}")
        else:
            if getattr(args, "workdir", None):
                if os.path.exists(args.workdir) and (not os.path.isdir(args.workdir) or os.listdir(args.workdir)):
                    d.error(f"--workdir {args.workdir} is not an empty directory")
                os.makedirs(args.workdir, exist_ok=True)
                demo(n, args.workdir)
            else:
                workdir = tempfile.mkdtemp(prefix="part4-")
                try:
                    demo(n, workdir, keep=False)
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
    except BrokenPipeError:
        raise  # the reader went away: run_cli ends quietly
    except LayerError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{PROG}: error: {_oserror(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
