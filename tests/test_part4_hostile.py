"""Hostile archives: each is refused with a clear error or contained in the root.

Every archive here is built by hand with tarfile. After each extraction the test checks that
nothing outside the root changed: the root's parent (with a sibling directory holding a file,
a subdirectory and a symlink) is snapshotted before and compared after, and nothing appeared
under the host's /etc.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile

import pytest

from part4_tar import LayerError, UnsafeArchiveError, apply_layers, extract_layer


# -- building archives -----------------------------------------------------------------------
def reg(name, data=b"pwned\n", mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode = len(data), mode
    return ti, data


def sym(name, target):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = tarfile.SYMTYPE, target
    return ti, None


def hard(name, target):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = tarfile.LNKTYPE, target
    return ti, None


def dir_(name, mode=0o777):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode = tarfile.DIRTYPE, mode
    return ti, None


def special(name, kind, major=1, minor=3):
    ti = tarfile.TarInfo(name)
    ti.type, ti.devmajor, ti.devminor, ti.mode = kind, major, minor, 0o666
    return ti, None


def archive(entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for ti, data in entries:
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


# -- the world outside the root --------------------------------------------------------------
def snapshot(top, skip):
    """Every path under ``top`` (but not under ``skip``) with type, mode, owner, mtime, content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        if os.path.abspath(dirpath) == os.path.abspath(skip):
            dirnames[:] = []
            continue
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) != str(skip)]
        for name in [dirpath] + [os.path.join(dirpath, f) for f in filenames + dirnames]:
            st = os.lstat(name)
            item = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_nlink)
            if stat.S_ISREG(st.st_mode):
                with open(name, "rb") as f:
                    item += (hashlib.sha256(f.read()).hexdigest(),)
            elif stat.S_ISLNK(st.st_mode):
                item += (os.readlink(name),)
            out[name] = item
    return out


@pytest.fixture
def world(tmp_path):
    sibling = tmp_path / "sibling"
    (sibling / "dir").mkdir(parents=True)
    (sibling / "file.txt").write_text("precious\n")
    os.chmod(sibling / "file.txt", 0o600)
    os.symlink("file.txt", sibling / "link")
    (tmp_path / "next-to-root.txt").write_text("also precious\n")
    root = tmp_path / "root"
    root.mkdir()
    return tmp_path, root, sibling


def check_untouched(tmp_path, root, before):
    assert snapshot(tmp_path, root) == before
    assert not os.path.exists("/etc/part4-hostile")
    assert not os.path.exists("/tmp/part4-hostile")


# -- the cases -------------------------------------------------------------------------------
# Each: (id, entries built from (tmp_path, sibling), expected) where expected is an exception
# type plus a message fragment, or a function that checks what ended up inside the root.
def inside(rel, content=b"pwned\n"):
    def check(root, tmp_path):
        path = os.path.join(root, rel.format(tmp=str(tmp_path).lstrip("/")))
        with open(path, "rb") as f:
            assert f.read() == content
    return check


def is_plain(rel, kind):
    def check(root, tmp_path):
        st = os.lstat(os.path.join(root, rel))
        assert stat.S_IFMT(st.st_mode) == kind
    return check


CASES = [
    ("absolute-name", lambda t, s: [reg(f"{s}/file.txt")], inside("{tmp}/sibling/file.txt")),
    ("absolute-etc", lambda t, s: [reg("/etc/part4-hostile")], inside("etc/part4-hostile")),
    ("dotdot-name", lambda t, s: [reg("../sibling/file.txt")], (UnsafeArchiveError, "'..' would escape the root")),
    ("dotdot-nested", lambda t, s: [dir_("a"), reg("a/b/../../../sibling/file.txt")], (UnsafeArchiveError, "'..'")),
    ("dotdot-long-pax-name", lambda t, s: [reg("../" + "x" * 150)], (UnsafeArchiveError, "'..'")),
    ("symlink-absolute-then-write-through",
     lambda t, s: [sym("link", str(s)), reg("link/file.txt")], inside("{tmp}/sibling/file.txt")),
    ("symlink-relative-escape-then-write-through",
     lambda t, s: [sym("link", "../sibling"), reg("link/file.txt")], inside("sibling/file.txt")),
    ("symlink-deep-dotdot-then-write-through",
     lambda t, s: [dir_("a"), sym("a/link", "../" * 12 + "sibling"), reg("a/link/new")], inside("sibling/new")),
    ("symlink-chain-absolute-then-relative",
     lambda t, s: [sym("a", "/b"), sym("b", "../../../../sibling"), reg("a/x")], inside("sibling/x")),
    # inside the root, /etc is the root's etc: the symlink itself, so this is a loop
    ("symlink-to-host-etc-then-write",
     lambda t, s: [sym("etc", "/etc"), reg("etc/part4-hostile")], (UnsafeArchiveError, "symlink loop")),
    ("symlink-to-host-etc-via-usr",
     lambda t, s: [sym("etc", "/usr/etc"), reg("etc/part4-hostile")], inside("usr/etc/part4-hostile")),
    ("existing-symlink-replaced-not-written-through",
     lambda t, s: [sym("link", "../sibling/file.txt"), reg("link", b"replaced\n")], inside("link", b"replaced\n")),
    ("symlink-replaced-by-directory",
     lambda t, s: [sym("d", str(s)), dir_("d", 0o777)], is_plain("d", stat.S_IFDIR)),
    ("symlink-replaced-by-fifo", lambda t, s: [sym("p", f"{s}/file.txt"), special("p", tarfile.FIFOTYPE)], is_plain("p", stat.S_IFIFO)),
    ("symlink-replaced-by-device", lambda t, s: [sym("null", f"{s}/file.txt"), special("null", tarfile.CHRTYPE)], is_plain("null", stat.S_IFCHR)),
    ("hardlink-dotdot", lambda t, s: [hard("h", "../sibling/file.txt")], (UnsafeArchiveError, "'..'")),
    ("hardlink-absolute-outside", lambda t, s: [hard("h", f"{s}/file.txt")], (LayerError, "does not exist")),
    ("hardlink-through-symlink-outside",
     lambda t, s: [sym("link", str(s)), hard("h", "link/file.txt")], (LayerError, "does not exist")),
    ("hardlink-to-symlink-then-write",
     lambda t, s: [sym("s", f"{s}/file.txt"), hard("h", "s"), reg("h", b"mine\n")], inside("h", b"mine\n")),
    ("hardlink-to-directory", lambda t, s: [dir_("d"), hard("h", "d")], (UnsafeArchiveError, "hard link to a directory")),
    ("symlink-loop", lambda t, s: [sym("a", "b"), sym("b", "a"), reg("a/x")], (UnsafeArchiveError, "symlink loop")),
    ("symlink-self-loop", lambda t, s: [sym("l", "l/l"), reg("l/x")], (UnsafeArchiveError, "symlink loop")),
    ("whiteout-dotdot", lambda t, s: [reg("../.wh.sibling", b"")], (UnsafeArchiveError, "'..'")),
    ("whiteout-of-dotdot-name", lambda t, s: [reg("a/.wh..", b"")], (UnsafeArchiveError, "whiteout of '.'")),
    ("whiteout-through-symlink",
     lambda t, s: [sym("link", str(s)), reg("link/.wh.file.txt", b"")], is_plain("link", stat.S_IFLNK)),
    ("opaque-through-symlink",
     lambda t, s: [sym("link", "../sibling"), reg("link/.wh..wh..opq", b"")], is_plain("link", stat.S_IFLNK)),
    ("file-replacing-the-root", lambda t, s: [reg("./")], (UnsafeArchiveError, "cannot replace the root")),
    ("truncated-data", lambda t, s: [], (LayerError, "not a valid tar stream")),
]


@pytest.mark.parametrize("case_id, build, expected", CASES, ids=[c[0] for c in CASES])
def test_hostile_archive_is_refused_or_contained(world, case_id, build, expected):
    tmp_path, root, sibling = world
    if case_id == "truncated-data":
        blob = archive([reg("big", b"x" * 5000)])[:512 + 1000]  # the header promises 5000 bytes
    else:
        blob = archive(build(tmp_path, sibling))
    before = snapshot(tmp_path, root)
    if isinstance(expected, tuple):
        error, fragment = expected
        with pytest.raises(error) as info:
            extract_layer(io.BytesIO(blob), root)
        message = str(info.value)
        assert fragment in message and "\n" not in message
    else:
        extract_layer(io.BytesIO(blob), root)
        expected(root, tmp_path)
    check_untouched(tmp_path, root, before)


def test_symlink_planted_by_a_lower_layer_is_followed_inside_the_root(world):
    tmp_path, root, sibling = world
    lower = archive([sym("etc", str(sibling)), sym("bin", "../sibling")])
    upper = archive([reg("etc/file.txt"), reg("bin/file.txt")])
    before = snapshot(tmp_path, root)
    apply_layers([io.BytesIO(lower), io.BytesIO(upper)], root)
    inside("{tmp}/sibling/file.txt")(root, tmp_path)
    inside("sibling/file.txt")(root, tmp_path)
    check_untouched(tmp_path, root, before)


def test_chmod_and_chown_of_an_entry_never_reach_a_symlink_target(world):
    tmp_path, root, sibling = world
    os.symlink(sibling / "file.txt", root / "victim")  # already in the root, pointing out
    ti, data = reg("victim", b"new\n", mode=0o4777)
    ti.uid = ti.gid = 4242
    before = snapshot(tmp_path, root)
    extract_layer(io.BytesIO(archive([(ti, data)])), root)
    st = os.lstat(root / "victim")
    assert stat.S_ISREG(st.st_mode) and (st.st_uid, stat.S_IMODE(st.st_mode)) == (4242, 0o4777)
    check_untouched(tmp_path, root, before)


def test_existing_hard_link_is_not_written_through(world):
    tmp_path, root, sibling = world
    os.link(sibling / "file.txt", root / "shared")  # a hard link to a file outside the root
    before = snapshot(tmp_path, root)
    extract_layer(io.BytesIO(archive([reg("shared", b"layer content\n")])), root)
    assert (root / "shared").read_bytes() == b"layer content\n"
    # the outside file kept its content; only its link count dropped back
    assert (sibling / "file.txt").read_text() == "precious\n"
    after = snapshot(tmp_path, root)
    key = str(sibling / "file.txt")
    assert after[key][:4] + after[key][5:] == before[key][:4] + before[key][5:]
    assert after[key][4] == before[key][4] - 1
