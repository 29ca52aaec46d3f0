"""Part 4's lab: write tar entries, apply whiteouts (``python -m part4_tar lab start DIR``).

The student gets ``tarformat.py``, ``writer.py`` and ``extract.py`` with four holes: the header
blocks of one entry (ustar, and PAX records where ustar falls short), the entries of a layer made
from ``lstat`` (every file type, hard links, xattrs), and the two kinds of whiteout applied while
a layer is extracted. The whiteout checks run hostile layers too: symlinks that point out of
the root, a whiteout of ``..``; canary files outside the root must be left alone.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import shutil
import socket
import stat
import subprocess
import tarfile
from pathlib import Path

from part1_overview import Lab, LabContext, Task

from .errors import LayerError, UnsafeArchiveError

EPOCH = 1700000000


# -- task 1: header blocks --------------------------------------------------------------------------

LONG_DIR = "usr/share/" + "d" * 120
#: (name, type, fields, data): the entries of the lab's hand-made stream
ENTRIES = (
    ("bin/", tarfile.DIRTYPE, {"mode": 0o755}, b""),
    ("bin/hello", tarfile.REGTYPE, {"mode": 0o755}, b"#!/bin/sh\necho hello from a layer\n"),
    ("bin/hi", tarfile.SYMTYPE, {"mode": 0o777, "linkname": "hello"}, b""),
    ("bin/hello.bak", tarfile.LNKTYPE, {"mode": 0o755, "linkname": "bin/hello"}, b""),
    ("dev/null", tarfile.CHRTYPE, {"mode": 0o666, "devmajor": 1, "devminor": 3}, b""),
    ("etc/café", tarfile.REGTYPE, {"mode": 0o644}, b"unicode names go in a PAX record\n"),
    (LONG_DIR + "/file", tarfile.REGTYPE, {"mode": 0o600, "uid": 3000000, "gid": 3000001}, b"x" * 700),
    ("lib/far", tarfile.SYMTYPE, {"mode": 0o777, "linkname": "../" + LONG_DIR + "/file"}, b""),
    ("sbin/ping", tarfile.REGTYPE, {"mode": 0o755, "xattrs": {"security.capability": b"\x01\x00\x00\x02\x00\x20\x00\x00", "user.lab": b"yes"}}, b"ping\n"),
)


def _stream(header, padding) -> bytes:
    out = bytearray()
    for name, kind, fields, data in ENTRIES:
        fields = dict(fields)
        linkname = fields.pop("linkname", "").encode()
        block = header(name.encode(), kind, size=len(data), mtime=EPOCH, linkname=linkname, **fields)
        assert isinstance(block, bytes), f"header() must return bytes, not {type(block).__name__}"
        assert len(block) and len(block) % 512 == 0, f"{name}: header() returned {len(block)} bytes: a header is whole 512-byte blocks"
        out += block + data + padding(len(data))
    return bytes(out + b"\0" * 1024)


def check_header(ctx: LabContext) -> None:
    ref = ctx.reference["tarformat"]
    stream = _stream(ctx.tarformat.header, ref.padding)
    try:
        members = {}
        with tarfile.open(fileobj=io.BytesIO(stream), mode="r:", errors="surrogateescape") as tar:
            for m in tar:
                members[m.name] = (m, tar.extractfile(m).read() if m.isfile() else b"")
    except tarfile.TarError as e:
        raise AssertionError(f"Python's tarfile cannot read your headers: {e} (is the checksum right? the octal fields?)") from None
    for name, kind, fields, data in ENTRIES:
        key = name.rstrip("/")
        assert key in members, f"{name!r}: no such entry when read back (got {sorted(members)[:4]}...): a name over 100 bytes or not ASCII needs a PAX 'path' record"
        m, body = members[key]
        assert m.type == kind, f"{name}: type {m.type!r}, expected {kind!r}"
        assert stat.S_IMODE(m.mode) == fields["mode"], f"{name}: mode {stat.S_IMODE(m.mode):o}, expected {fields['mode']:o}"
        assert (m.uid, m.gid) == (fields.get("uid", 0), fields.get("gid", 0)), (
            f"{name}: owner {m.uid}:{m.gid}, expected {fields.get('uid', 0)}:{fields.get('gid', 0)} (ids past 2097151 need PAX uid/gid records)"
        )
        assert m.mtime == EPOCH, f"{name}: mtime {m.mtime}, expected {EPOCH}"
        assert (m.uname, m.gname) == ("", ""), f"{name}: user and group names must be left empty (only the numeric ids count)"
        if "linkname" in fields:
            assert m.linkname == fields["linkname"], f"{name}: link target {m.linkname!r}, expected {fields['linkname']!r} (a target over 100 bytes needs a PAX 'linkpath')"
        if kind == tarfile.CHRTYPE:
            assert (m.devmajor, m.devminor) == (1, 3), f"{name}: device {m.devmajor},{m.devminor}, expected 1,3"
        if kind == tarfile.REGTYPE:
            assert m.size == len(data) and body == data, f"{name}: size {m.size} or data differ from what was written"
        for key2, value in fields.get("xattrs", {}).items():
            got = m.pax_headers.get("SCHILY.xattr." + key2)
            assert got is not None, f"{name}: no PAX record SCHILY.xattr.{key2} (extended attributes go in PAX records)"
            assert got.encode("utf-8", "surrogateescape") == value, f"{name}: xattr {key2} is {got!r}, expected {value!r}"
    if shutil.which("tar"):
        r = subprocess.run(["tar", "--xattrs", "-tvf", "-"], input=stream, capture_output=True)
        assert r.returncode == 0 and not r.stderr, f"GNU tar does not read your stream cleanly: {r.stderr.decode(errors='replace').strip()[:200]}"
    assert ctx.tarformat.header(b"a", tarfile.REGTYPE, mtime=EPOCH) == ctx.tarformat.header(b"a", tarfile.REGTYPE, mtime=EPOCH), (
        "the same entry gave two different headers"
    )


# -- task 2: entries from lstat ---------------------------------------------------------------------


def _make_tree(root: Path) -> dict:
    """Every kind of entry a layer can hold; what the check expects of each (by tar name)."""
    root.mkdir()
    (root / "a").mkdir(mode=0o750)
    os.chmod(root / "a", 0o750)
    (root / "a/f").write_bytes(b"file body\n" * 1000)
    os.chmod(root / "a/f", 0o640)
    (root / "a/empty").write_bytes(b"")
    os.link(root / "a/f", root / "a/f2")
    os.symlink("/etc/passwd", root / "a/abs")
    os.symlink("f", root / "a/rel")
    os.mkfifo(root / "a/fifo", 0o600)
    (root / "b/c").mkdir(parents=True)
    (root / "b/c/late").write_text("new\n")
    os.utime(root / "b/c/late", (EPOCH + 1000, EPOCH + 1000))
    expect = {
        "a": (tarfile.DIRTYPE, 0o750), "a/f": (tarfile.REGTYPE, 0o640), "a/empty": (tarfile.REGTYPE, None),
        "a/f2": (tarfile.LNKTYPE, None), "a/abs": (tarfile.SYMTYPE, None), "a/rel": (tarfile.SYMTYPE, None),
        "a/fifo": (tarfile.FIFOTYPE, 0o600), "b": (tarfile.DIRTYPE, None), "b/c": (tarfile.DIRTYPE, None),
        "b/c/late": (tarfile.REGTYPE, None),
    }
    if os.geteuid() == 0:
        os.mknod(root / "a/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        expect["a/null"] = (tarfile.CHRTYPE, None)
        (root / "a/owned").write_text("alice's\n")
        os.chown(root / "a/owned", 1000, 1001)
        expect["a/owned"] = (tarfile.REGTYPE, None)
    try:
        os.setxattr(root / "a/f", "user.lab", b"yes")
    except OSError as e:
        if e.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "a/sock"))
    sock.close()
    return expect


def _pack(ctx: LabContext, root: Path, out: Path):
    with open(out, "wb") as f, ctx.writer.LayerWriter(f, "gzip", source_date_epoch=EPOCH) as w:
        w.add_tree(root)
    return w


def check_entries(ctx: LabContext) -> None:
    root = ctx.tmp / "tree"
    expect = _make_tree(root)
    layer = ctx.tmp / "layer.tar.gz"
    w = _pack(ctx, root, layer)
    info = w.close()
    tar_bytes = gzip.decompress(layer.read_bytes())
    assert info.diff_id == "sha256:" + hashlib.sha256(tar_bytes).hexdigest(), "the diff_id is not the sha256 of the tar stream"
    members = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        for m in tar:
            members[m.name.rstrip("/")] = (m, tar.extractfile(m).read() if m.isfile() else None)
    assert "a/sock" not in members and any(str(p).endswith("a/sock") for p in w.skipped), (
        "a socket cannot be stored in tar: leave it out and list it in self.skipped"
    )
    for name, (kind, mode) in expect.items():
        assert name in members, f"the layer has no entry {name!r} (entries: {', '.join(sorted(members))})"
        m, body = members[name]
        assert m.type == kind, f"{name}: type {m.type!r}, expected {kind!r}"
        if mode is not None:
            assert stat.S_IMODE(m.mode) == mode, f"{name}: mode {stat.S_IMODE(m.mode):o}, expected {mode:o}"
        st = os.lstat(root / name)
        assert (m.uid, m.gid) == (st.st_uid, st.st_gid), f"{name}: owner {m.uid}:{m.gid}, the file's is {st.st_uid}:{st.st_gid} (numeric ids from lstat)"
        assert m.mtime == min(int(st.st_mtime), EPOCH), f"{name}: mtime {m.mtime}: mtimes newer than source_date_epoch ({EPOCH}) are clamped to it, older ones kept"
        if kind == tarfile.SYMTYPE:
            assert m.linkname == os.readlink(root / name), f"{name}: a symlink is stored with its target ({os.readlink(root / name)!r}), never followed"
        if kind == tarfile.REGTYPE:
            assert body == (root / name).read_bytes(), f"{name}: the entry's data differ from the file"
    assert members["a/f2"][0].linkname == "a/f", "a/f2 is a hard link of a/f: the second name is stored as a link to the first (found by st_dev, st_ino)"
    if "a/null" in expect:
        m = members["a/null"][0]
        assert (m.devmajor, m.devminor) == (1, 3), f"a/null: device {m.devmajor},{m.devminor}, expected 1,3"
    try:
        has_xattr = os.getxattr(root / "a/f", "user.lab") == b"yes"
    except OSError:
        has_xattr = False
    if has_xattr:
        assert members["a/f"][0].pax_headers.get("SCHILY.xattr.user.lab") == "yes", "a/f: its extended attribute user.lab is not in the layer"
    again = _pack(ctx, root, ctx.tmp / "again.tar.gz").close()
    assert again.digest == info.digest, "packing the same tree twice gave two digests"
    rootfs = ctx.tmp / "rootfs"
    with open(layer, "rb") as f:
        ctx.reference["extract"].extract_layer(f, rootfs)
    assert (rootfs / "a/f").read_bytes() == (root / "a/f").read_bytes() and os.stat(rootfs / "a/f").st_ino == os.stat(rootfs / "a/f2").st_ino, (
        "extracting your layer does not give a/f and its hard link a/f2 back"
    )


# -- tasks 3 and 4: whiteouts, with hostile layers ------------------------------------------------


def _layer(entries) -> io.BytesIO:
    """A tar layer from (name, kind, text or link target) entries."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, content in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = EPOCH
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(ti)
            elif kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, content
                tar.addfile(ti)
            else:
                data = (content or "").encode()
                ti.size, ti.mode = len(data), 0o644
                tar.addfile(ti, io.BytesIO(data))
    buf.seek(0)
    return buf


def _canaries(tmp: Path) -> Path:
    outside = tmp / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "canary").write_text("must survive\n")
    (outside / "dir/canary").write_text("must survive\n")
    return outside


def _canaries_intact(outside: Path) -> None:
    for rel in ("canary", "dir/canary"):
        assert (outside / rel).is_file() and (outside / rel).read_text() == "must survive\n", (
            f"a file outside the root was deleted or changed ({outside / rel}): never follow a symlink out of the root"
        )


def _listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


BASE = (
    ("etc/motd", "file", "welcome\n"),
    ("etc/issue", "file", "lab 1.0\n"),
    ("var/cache/a", "file", "1\n"),
    ("var/cache/b/c", "file", "2\n"),
    ("usr/share/doc/a", "file", "a\n"),
    ("usr/share/doc/b", "file", "b\n"),
    ("usr/share/doc/sub/c", "file", "c\n"),
    ("keep/x", "file", "x\n"),
)


def _escape_links(outside: Path):
    """Symlinks a hostile lower layer plants: relative past the root, and absolute host paths."""
    return (
        ("up", "symlink", "../../outside"),
        ("host", "symlink", str(outside)),
        ("hostdir", "symlink", str(outside / "dir")),
    )


def check_whiteout(ctx: LabContext) -> None:
    extract = ctx.extract.extract_layer
    outside = _canaries(ctx.tmp)
    root = ctx.tmp / "work/root"
    extract(_layer(BASE + _escape_links(outside)), root)
    extract(_layer((
        ("etc/.wh.motd", "file", ""),
        (".wh.var", "file", ""),
        ("etc/new", "file", "made by this layer\n"),
        ("etc/.wh.new", "file", ""),
        ("ghost/.wh.nothing", "file", ""),
    )), root)
    files = _listing(root)
    assert "etc/motd" not in files, "etc/.wh.motd must delete etc/motd of the layer below"
    assert not any(f.startswith("var") for f in files), ".wh.var must delete the directory var and everything in it"
    assert "etc/issue" in files and "usr/share/doc/a" in files, "a whiteout must delete only the name it names"
    assert "etc/new" in files, "etc/new comes from the same layer as etc/.wh.new: whiteouts apply only to the layers below"
    assert not any(".wh." in f for f in files), f"a whiteout marker was written as a file: {sorted(f for f in files if '.wh.' in f)[0]}"
    assert "ghost" not in files, "a whiteout of a name that is not there deletes nothing and creates nothing (ghost/ appeared)"
    for target in ("up", "host", "hostdir"):
        extract(_layer(((f"{target}/.wh.canary", "file", ""), (f"{target}/.wh.dir", "file", ""))), root)
        _canaries_intact(outside)
    for name in ("etc/.wh...", ".wh...", "etc/.wh.."):
        before = _listing(root)
        try:
            extract(_layer(((name, "file", ""),)), root)
        except UnsafeArchiveError:
            pass
        except LayerError as e:
            raise AssertionError(f"{name!r}: raised LayerError ({e}); a whiteout of '.' or '..' is an attack: raise UnsafeArchiveError") from None
        else:
            raise AssertionError(f"{name!r} was accepted: a whiteout of '.' or '..' must raise UnsafeArchiveError")
        assert root.is_dir() and _listing(root) == before, f"{name!r} deleted files before it was refused"
        _canaries_intact(outside)


def check_opaque(ctx: LabContext) -> None:
    extract = ctx.extract.extract_layer
    outside = _canaries(ctx.tmp)
    root = ctx.tmp / "work/root"
    extract(_layer(BASE + _escape_links(outside)), root)
    extract(_layer((
        ("usr/share/doc/new", "file", "before the marker\n"),
        ("usr/share/doc/.wh..wh..opq", "file", ""),
        ("usr/share/doc/sub/late", "file", "after the marker\n"),
        ("fresh/.wh..wh..opq", "file", ""),
    )), root)
    files = _listing(root)
    doc = sorted(f[len("usr/share/doc/"):] for f in files if f.startswith("usr/share/doc/"))
    assert "a" not in doc and "b" not in doc and "sub/c" not in doc, (
        f"usr/share/doc/.wh..wh..opq must hide everything the layers below put in usr/share/doc (left: {doc})"
    )
    assert "new" in doc, "usr/share/doc/new comes from the same layer as the opaque marker (before it): it stays"
    assert "sub/late" in doc, "usr/share/doc/sub/late comes from the same layer as the opaque marker (after it): it stays"
    assert "keep/x" in files and "etc/motd" in files, "an opaque marker clears only its own directory"
    assert "fresh" in files and (root / "fresh").is_dir(), "an opaque marker in a new directory makes the (empty) directory"
    assert not any(".wh." in f for f in files), "the opaque marker was written as a file"
    for target in ("up", "host", "hostdir"):
        extract(_layer(((f"{target}/.wh..wh..opq", "file", ""),)), root)
        _canaries_intact(outside)
    extract(_layer(((".wh..wh..opq", "file", ""), ("etc/only", "file", "kept\n"))), root)
    assert _listing(root) == {"etc", "etc/only"}, (
        f"an opaque marker at the top clears the whole root but this layer's entries (left: {sorted(_listing(root))[:6]})"
    )
    _canaries_intact(outside)


LAB = Lab(
    package="part4_tar",
    title="Part 4, layers as tar streams: entries and whiteouts",
    intro="""
Two hours. You write the two ends of a layer: the bytes of a tar entry (a 512-byte ustar header,
and a PAX record where ustar falls short), the entries a directory tree becomes (every file type,
hard links, symlinks never followed, extended attributes), and, on the way back, the two
whiteouts that delete what lower layers put in the root filesystem. Start with
`python -m part4_tar demo --workdir /tmp/part4-demo` and read its tar listing: it is what your
code must produce. The whiteout checks use hostile layers: a lower layer plants symlinks that
point out of the root, and files outside the root must survive whatever the next layer says.
""",
    modules=("tarformat.py", "writer.py", "extract.py"),
    tasks=(
        Task(1, "the header blocks of one entry", ("tarformat.py:header",),
             """`header(name, typeflag, mode=..., uid=..., gid=..., size=..., mtime=..., linkname=...,
devmajor=..., devminor=..., xattrs=...)` returns the header block(s) of one entry: a 512-byte
ustar header (fixed-width octal fields, `ustar\\0` `00`, a checksum over the block with the checksum
field as 8 spaces, empty user and group names), preceded by a PAX extended header (type `x`)
when ustar falls short: a name or link target over 100 bytes or not ASCII (`path`, `linkpath`),
a size over 8 GiB, an id over 2097151 (`uid`, `gid`), a negative or huge mtime, extended
attributes (`SCHILY.xattr.NAME`).""",
             ("Concepts",),
             ("The module's helpers are yours to use: `_octal`, `_base256`, `_pax_record`, `_is_utf8`, `_ustar`, `padding`.",
              "`_ustar(...)` builds one ustar block; `header` decides which PAX records are needed and what goes in the ustar fields then.",
              "A PAX header is itself an entry: `_ustar(PAX_NAME, PAXTYPE, ...)` + the records + padding.",
              "Names that are not UTF-8 need a `hdrcharset=BINARY` record first."),
             "a stream of nine entries made with your header (directories, files, a symlink, a hard link, a device, a non-ASCII "
             "name, a 130-byte name with big ids, a long link target, xattrs) read back by Python's tarfile and by GNU tar.",
             check_header),
        Task(2, "a directory's entries, from lstat", ("writer.py:LayerWriter._add", "writer.py:LayerWriter._add_file"),
             """`LayerWriter._add(path, st, arcname)` writes the entry of one path from its `lstat`:
directory, regular file (through `_add_file`: header, data in chunks, padding), symlink (with
its target, never followed), fifo, character or block device; a second name of a hard link
(`st_nlink > 1`, the same `(st_dev, st_ino)`) as a link to the first; numeric owner, mode,
mtime clamped to `source_date_epoch`; extended attributes (not overlayfs's own). Sockets are
skipped and listed in `self.skipped`. `_add_file` must refuse a file that changes while it is read.""",
             ("Concepts", "The API"),
             ("`normalize_arcname(arcname, directory=...)`, `self._mtime(st.st_mtime)`, `_read_xattrs(path)` are there for you.",
              "Write bytes with `self._pipe.write(...)`: it hashes (diff_id), compresses and hashes again (digest) as they pass.",
              "`tarformat.header(...)`, `tarformat.padding(size)`; names are bytes: `name.encode('utf-8', 'surrogateescape')`.",
              "Open files with `os.O_NOFOLLOW` and compare `os.fstat` with the lstat you were given."),
             "a tree with a directory, files, an empty file, a hard link, two symlinks, a fifo, a device and a file of another owner "
             "(as root), an xattr and a socket: every entry's type, mode, owner, clamped mtime, target and data; the socket skipped; "
             "the same digest twice; the layer extracted back.",
             check_entries),
        Task(3, "whiteouts: .wh.NAME deletes from the layers below", ("extract.py:_Extractor.whiteout",),
             """`_Extractor.whiteout(dir_parts, name, entry)` applies `DIR/.wh.NAME`: it deletes `NAME` (a file,
a symlink, or a whole directory) in `DIR` of the root, as the layers below left it, and writes
nothing. Names this same layer wrote stay ("whiteouts apply only to lower layers"); a `DIR` that
does not exist is not created; `.`, `..` and names with a `/` are attacks (`UnsafeArchiveError`).
`DIR` is resolved inside the root: a symlink on the way is followed as if the root were `/`.""",
             ("Concepts",),
             ("`self.root` is part 4's `RootDir`: `self.root.directory(dir_parts)` resolves a directory inside the root and "
              "gives its `.real` parts; it raises FileNotFoundError or NotADirectoryError when there is none.",
              "`self.root.remove(parts)` removes a name inside the root (a whole directory too), never following a symlink.",
              "`self.written` holds the real paths (tuples of parts) this layer wrote."),
             "a whiteout of a file, of a directory tree, of a name the layer wrote itself, of a missing name; whiteouts through "
             "symlinks that point out of the root (canary files outside must survive); and '.wh..' and '.wh...' (refused, nothing deleted).",
             check_whiteout),
        Task(4, "opaque directories: .wh..wh..opq", ("extract.py:_Extractor.opaque", "extract.py:_Extractor._clear_lower"),
             """`_Extractor.opaque(dir_parts)` applies `DIR/.wh..wh..opq`: everything the lower layers put in
`DIR` disappears, but what this same layer writes there stays, whether it comes before or after
the marker in the stream. `DIR` is created if missing and resolved inside the root.
`_clear_lower(fd, real)` removes, below the directory open (for listing) as `fd`, every entry this
layer did not touch (`self.touched` holds this layer's paths and all their parents).""",
             ("Concepts",),
             ("`self.root.directory(dir_parts, create=True)` gives `.fd` (the root's own: open one for listing with "
              "`os.open(\".\", _LIST_FLAGS, dir_fd=...)`) and `.real`; `self.root.forget()` first, since you may remove directories "
              "the root keeps open; `self._touch(real)` marks the directory as this layer's.",
              "Entries after the marker are written later and never removed: only what is there now needs clearing.",
              "Keep a touched subdirectory and clear inside it; remove an untouched directory whole (`remove_tree(name, fd)`), "
              "an untouched file with `os.unlink(name, dir_fd=fd)`; `_lstat(name, fd)` is None for a missing name."),
             "an opaque marker with entries before and after it, one in a new directory, one at the top of the root; markers through "
             "symlinks that point out of the root (canary files outside must survive).",
             check_opaque),
    ),
    timeout=120,
)
