"""``ADD`` of a local archive over an image, as Docker unpacks it.

BuildKit (``applyRootArchive``) and moby's ``Untar`` before it: an entry naming the archive's
root (``.``, ``./``) is skipped whatever its type; a later entry replaces what is there unless
both are directories (a file replaces a directory and all below it, a directory a file); a
directory the archive names takes its owner and mode; a parent that unpacking makes for an
entry below it leaves an image directory as it is and fails on an image file ("not a
directory"); a symlink of the image on the way is followed inside the root, so an archive with
``lib/x`` unpacked over ``lib -> usr/lib`` writes ``usr/lib/x``. Real builds with the CLI,
checked by running the image.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
import threading
import uuid
from pathlib import Path

import pytest
from support import capstone, image_rootfs, make_context, quiet_build

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds need root (namespaces, overlay mounts)")


def tar(*entries: tuple) -> bytes:
    """A tar of (name, text) files and (name, None, mode) directories, in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data, *mode in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, mode[0] if mode else 0o755
                tf.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tf.addfile(info, io.BytesIO(data.encode()))
    return buf.getvalue()


def build(store: Path, ctx: Path, tag: str):
    return capstone(store, "build", "-q", "--network", "none", "-t", tag, str(ctx))


def run(store: Path, tag: str, script: str) -> str:
    r = capstone(store, "run", "--rm", "--network", "none", tag, "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_entries_replace_directories_with_files_and_files_with_directories(tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox
RUN mkdir -p /dest/etc/sub/deep && echo d > /dest/etc/sub/deep/f && echo f > /dest/target
ADD file-over-dir.tar dir-over-file.tar /dest/
ADD within.tar /w/
ADD root-dir.tar /r1/
ADD root-file.tar /r2/
""", {
        "file-over-dir.tar": tar(("etc/sub", "now a file\n")),
        "dir-over-file.tar": tar(("target", None), ("target/inner", "inner\n")),
        "within.tar": tar(("x", "file x\n"), ("x", None), ("x/y", "y\n"), ("z", None), ("z/q", "q\n"),
                          ("z", "z is a file\n")),
        "root-dir.tar": tar(("./", None, 0o700), ("./a", "a\n")),
        "root-file.tar": tar((".", "a file for the root\n"), ("b", "b\n")),
    })
    store = tmp_path / "store"
    r = build(store, ctx, "arch:1")
    assert r.returncode == 0, r.stderr
    out = run(store, "arch:1", "find /dest /w /r1 /r2 | sort; cat /dest/etc/sub /w/z; stat -c '%a' /r1")
    assert out.splitlines() == [
        "/dest", "/dest/etc", "/dest/etc/sub", "/dest/target", "/dest/target/inner",
        "/r1", "/r1/a", "/r2", "/r2/b",
        "/w", "/w/x", "/w/x/y", "/w/z",
        "now a file", "z is a file",
        "755",  # the archive's "./" does not touch the destination
    ]


def test_image_directories_on_the_way_stay_as_they_are_and_symlinks_are_followed(tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox
RUN mkdir -p /usr/lib && ln -s usr/lib /lib2 && mkdir -m 700 /keep && chown 5:6 /keep
ADD below-link.tar /
ADD below-dir.tar /
ADD named-dir.tar /
ADD --chown=7:8 chowned.tar /
""", {
        "below-link.tar": tar(("lib2/x.so", "x\n")),
        "below-dir.tar": tar(("keep/k.txt", "k\n")),
        "named-dir.tar": tar(("named", None, 0o750), ("named/n", "n\n"), ("made/deep/m", "m\n")),
        "chowned.tar": tar(("owned", None, 0o700), ("owned/o", "o\n")),
    })
    store = tmp_path / "store"
    r = build(store, ctx, "arch:2")
    assert r.returncode == 0, r.stderr
    out = run(store, "arch:2", "readlink /lib2; cat /usr/lib/x.so; stat -c '%n %a %u:%g' /keep /keep/k.txt "
                               "/named /made /made/deep /owned /owned/o")
    assert out.splitlines() == [
        "usr/lib",  # still the image's symlink
        "x",  # what the archive had below it went where it leads
        "/keep 700 5:6",  # there before, not named by the archive: untouched
        "/keep/k.txt 644 0:0",
        "/named 750 0:0",  # named by the archive: its mode
        "/made 755 0:0",  # made for what is below it: 0755, root
        "/made/deep 755 0:0",
        "/owned 700 7:8",
        "/owned/o 644 7:8",
    ]


def test_an_entry_below_an_image_file_fails_in_one_line(tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM capstone/busybox\nRUN echo f > /afile\nADD over.tar /\n",
                       {"over.tar": tar(("afile/x", "x\n"))})
    store = tmp_path / "store"
    r = build(store, ctx, "arch:3")
    assert (r.returncode, r.stderr) == (1, "Dockerfile:3: ADD failed: over.tar: cannot unpack afile/: "
                                           "/afile is not a directory\n")


def test_a_corrupt_archive_fails_in_one_line_naming_the_line(tmp_path):
    good = tar(("a", "a\n"), ("b", "b" * 5000))
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nADD bad.tar /x/\n", {"bad.tar": good[:1024 + 512 + 100]})  # inside b's data
    r = build(tmp_path / "store", ctx, "arch:4")
    assert r.returncode == 1
    assert r.stderr.startswith("Dockerfile:2: ADD failed: bad.tar: ") and r.stderr.count("\n") == 1, r.stderr


def test_a_hostile_archive_stays_inside_the_image_or_fails_in_one_line(tmp_path):
    # a name climbing out is refused (BuildKit: "outside extraction root"); a symlink to /etc
    # leads to the image's /etc, below the destination, never to the host's
    canary = f"add-canary-{uuid.uuid4().hex[:12]}"
    climb = tar((f"../../{canary}", "x"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        link = tarfile.TarInfo("l")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        tf.addfile(link)
        info = tarfile.TarInfo(f"l/{canary}")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nADD climb.tar /x/\n",
                       {"climb.tar": climb, "through-link.tar": buf.getvalue()})
    store = tmp_path / "store"
    r = build(store, ctx, "arch:5")
    assert (r.returncode, r.stderr) == (1, f"Dockerfile:2: ADD failed: climb.tar: layer entry "
                                           f"'../../{canary}': '..' would escape the root\n")
    make_context(ctx, "FROM scratch\nADD through-link.tar /x/\n")
    r = build(store, ctx, "arch:6")
    assert r.returncode == 0, r.stderr
    root = image_rootfs(store, "arch:6", tmp_path / "rootfs")
    assert (root / "x/etc" / canary).read_text() == "x" and os.readlink(root / "x/l") == "/etc"
    assert not [p for p in ("/etc", "/tmp", str(tmp_path), str(tmp_path.parent)) if os.path.exists(f"{p}/{canary}")]


def test_an_added_archive_is_read_once_as_a_stream(busybox_store, tmp_path, monkeypatch):
    """ADD unpacks a local archive in one pass: the archive's own directories (which take its
    mode) are noted as its entries go by, not in a first reading. The archive comes through a
    pipe here, which can be read only once: a second pass (or a seek back) would fail."""
    from capstone.engine import copystep

    original, opened = copystep._open_source, []

    def through_a_pipe(e):
        fd = original(e)
        if not e.archive:
            return fd
        opened.append(e.src)
        r, w = os.pipe()

        def feed() -> None:
            with os.fdopen(fd, "rb") as src, os.fdopen(w, "wb") as out:
                shutil.copyfileobj(src, out)

        threading.Thread(target=feed, daemon=True).start()
        return r

    monkeypatch.setattr(copystep, "_open_source", through_a_pipe)
    data = tar(("named/", None, 0o700), ("named/f", "f"), ("made/sub/g", "g"))
    ctx = make_context(tmp_path / "ctx", "FROM capstone/busybox\nADD a.tar.gz /dest/\n",
                       {"a.tar.gz": gzip.compress(data)})
    quiet_build(busybox_store, ctx, tags=["archive-once"], no_cache=True)
    assert opened == [str(ctx / "a.tar.gz")]
    root = image_rootfs(busybox_store, "archive-once", tmp_path / "root")
    assert (root / "dest/named/f").read_text() == "f" and (root / "dest/made/sub/g").read_text() == "g"
    assert oct(os.stat(root / "dest/named").st_mode & 0o7777) == oct(0o700)  # the archive names it
    assert oct(os.stat(root / "dest/made").st_mode & 0o7777) == oct(0o755)  # unpacking made it
