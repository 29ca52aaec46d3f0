"""Hostile archives: each is refused with a clear error or contained in the root.

Every archive here is built by hand with tarfile. After each extraction the test checks that
nothing outside the root changed: the root's parent (with a sibling directory holding a file,
a subdirectory and a symlink) is snapshotted before and compared after, and nothing appeared
under the host's /etc.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tarfile
import uuid

import pytest
from support import hard, outside_state, sym

from part4_tar import LayerError, UnsafeArchiveError, apply_layers, extract_layer

#: the name of a file hostile archives try to write outside the root: unique to this run, so
#: another suite on the same host cannot make it appear (or vanish)
CANARY = f"part4-hostile-{uuid.uuid4().hex[:12]}"


# -- building archives -----------------------------------------------------------------------
def reg(name, data=b"pwned\n", mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode = len(data), mode
    return ti, data


def dir_(name, mode=0o777):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode = tarfile.DIRTYPE, mode
    return ti, None


def special(name, kind, major=1, minor=3):
    ti = tarfile.TarInfo(name)
    ti.type, ti.devmajor, ti.devminor, ti.mode = kind, major, minor, 0o666
    return ti, None


def pax(entry, **headers):
    """An entry with PAX records (``path``, ``linkpath``, ``SCHILY.xattr.*``) set by hand."""
    ti, data = entry
    ti.pax_headers = {k.replace("__", "."): v for k, v in headers.items()}
    return ti, data


def chain(n, last):
    """Symlinks l0 -> l1 -> ... -> l{n-1} -> last: n links to follow from l0."""
    return [sym(f"l{i}", f"l{i + 1}") for i in range(n - 1)] + [sym(f"l{n - 1}", last)]


def owned(entry, uid, gid):
    ti, data = entry
    ti.uid, ti.gid = uid, gid
    return ti, data


def archive(entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for ti, data in entries:
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


# -- the world outside the root --------------------------------------------------------------
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
    assert outside_state(tmp_path, root) == before
    assert not os.path.exists(f"/etc/{CANARY}")
    assert not os.path.exists(f"/tmp/{CANARY}")


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
    ("absolute-etc", lambda t, s: [reg(f"/etc/{CANARY}")], inside(f"etc/{CANARY}")),
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
     lambda t, s: [sym("etc", "/etc"), reg(f"etc/{CANARY}")], (UnsafeArchiveError, "symlink loop")),
    ("symlink-to-host-etc-via-usr",
     lambda t, s: [sym("etc", "/usr/etc"), reg(f"etc/{CANARY}")], inside(f"usr/etc/{CANARY}")),
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
    # a hard link to a symlink is a second name of the symlink; writing through it as a
    # directory resolves the symlink inside the root
    ("hardlink-to-symlink-outside-used-as-directory",
     lambda t, s: [sym("s", str(s)), hard("h", "s"), reg("h/file.txt")], inside("{tmp}/sibling/file.txt")),
    ("hardlink-to-relative-symlink-outside-used-as-directory",
     lambda t, s: [sym("s", "../sibling"), hard("h", "s"), reg("h/new")], inside("sibling/new")),
    ("directory-replacing-a-nested-symlink-to-outside",
     lambda t, s: [dir_("a"), sym("a/d", "../../sibling"), dir_("a/d"), reg("a/d/file.txt")], inside("a/d/file.txt")),
    # 40 symlinks on one path is the kernel's limit too: followed, and still inside the root
    ("symlink-chain-of-40-to-outside", lambda t, s: chain(40, "../sibling") + [reg("l0/x")], inside("sibling/x")),
    ("symlink-chain-of-41", lambda t, s: chain(41, "../sibling") + [reg("l0/x")], (UnsafeArchiveError, "symlink loop")),
    ("nul-in-pax-path", lambda t, s: [pax(reg("x"), path="ok\0/../../sibling/file.txt")], (UnsafeArchiveError, "NUL byte in the name")),
    ("nul-in-pax-path-without-dotdot", lambda t, s: [pax(reg("x"), path="ok\0evil")], (UnsafeArchiveError, "NUL byte in the name")),
    ("nul-in-symlink-target", lambda t, s: [pax(sym("s", "x"), linkpath=f"{s}\0/file.txt")], (UnsafeArchiveError, "NUL byte in the link target")),
    ("nul-in-hardlink-target", lambda t, s: [reg("a"), pax(hard("h", "a"), linkpath="a\0b")], (UnsafeArchiveError, "NUL byte")),
    ("name-component-too-long", lambda t, s: [reg("n" * 300)], (LayerError, "File name too long")),
    ("name-longer-than-path-max", lambda t, s: [reg("d/" * 3000 + "f")], (LayerError, "longer than PATH_MAX (4096 bytes)")),
    ("hardlink-target-longer-than-path-max", lambda t, s: [hard("h", "d/" * 3000 + "f")], (LayerError, "longer than PATH_MAX")),
    ("symlink-target-too-long", lambda t, s: [sym("s", "t" * 5000)], (LayerError, "File name too long")),
    ("whiteout-named-dot-wh-dotdotdot", lambda t, s: [reg(".wh...", b"")], (UnsafeArchiveError, "whiteout of '..' is not a file name")),
    ("whiteout-named-dot-wh-dotdotdot-nested", lambda t, s: [dir_("a"), reg("a/.wh...", b"")], (UnsafeArchiveError, "whiteout of '..'")),
    ("whiteout-with-empty-name", lambda t, s: [reg(".wh.", b"")], (UnsafeArchiveError, "whiteout of ''")),
    ("owner-out-of-range", lambda t, s: [owned(reg("f"), 2**40, 0)], (LayerError, "owner 1099511627776:0 is out of range")),
    ("owner-minus-one", lambda t, s: [owned(reg("f"), 2**32 - 1, 0)], (LayerError, "out of range")),
    ("xattr-name-with-nul", lambda t, s: [pax(reg("f"), **{"SCHILY.xattr.user.a\0b": "v"})], (LayerError, "invalid extended attribute name")),
]


@pytest.mark.parametrize("case_id, build, expected", CASES, ids=[c[0] for c in CASES])
def test_hostile_archive_is_refused_or_contained(world, case_id, build, expected):
    tmp_path, root, sibling = world
    if case_id == "truncated-data":
        blob = archive([reg("big", b"x" * 5000)])[:512 + 1000]  # the header promises 5000 bytes
    else:
        blob = archive(build(tmp_path, sibling))
    before = outside_state(tmp_path, root)
    if isinstance(expected, tuple):
        error, fragment = expected
        with pytest.raises(error) as info:
            extract_layer(io.BytesIO(blob), root)
        message = str(info.value)
        assert fragment in message and "\n" not in message and len(message) < 400
    else:
        extract_layer(io.BytesIO(blob), root)
        expected(root, tmp_path)
    check_untouched(tmp_path, root, before)


def test_root_entries_of_an_add_archive_are_skipped_whatever_their_type(world):
    # what ADD asks for (skip_root): Docker's unpacking skips an entry naming the root itself
    tmp_path, root, sibling = world
    os.chmod(root, 0o755)
    before = outside_state(tmp_path, root)
    extract_layer(io.BytesIO(archive([reg("./"), reg("."), dir_("./", 0o700), reg("a", b"a\n")])), root,
                  skip_root=True)
    assert sorted(os.listdir(root)) == ["a"]
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o755
    check_untouched(tmp_path, root, before)


def test_symlink_planted_by_a_lower_layer_is_followed_inside_the_root(world):
    tmp_path, root, sibling = world
    lower = archive([sym("etc", str(sibling)), sym("bin", "../sibling")])
    upper = archive([reg("etc/file.txt"), reg("bin/file.txt")])
    before = outside_state(tmp_path, root)
    apply_layers([io.BytesIO(lower), io.BytesIO(upper)], root)
    inside("{tmp}/sibling/file.txt")(root, tmp_path)
    inside("sibling/file.txt")(root, tmp_path)
    check_untouched(tmp_path, root, before)


def test_chmod_and_chown_of_an_entry_never_reach_a_symlink_target(world):
    tmp_path, root, sibling = world
    os.symlink(sibling / "file.txt", root / "victim")  # already in the root, pointing out
    ti, data = reg("victim", b"new\n", mode=0o4777)
    ti.uid = ti.gid = 4242
    before = outside_state(tmp_path, root)
    extract_layer(io.BytesIO(archive([(ti, data)])), root)
    st = os.lstat(root / "victim")
    assert stat.S_ISREG(st.st_mode) and (st.st_uid, stat.S_IMODE(st.st_mode)) == (4242, 0o4777)
    check_untouched(tmp_path, root, before)


def test_existing_hard_link_is_not_written_through(world):
    tmp_path, root, sibling = world
    os.link(sibling / "file.txt", root / "shared")  # a hard link to a file outside the root
    before = outside_state(tmp_path, root)
    extract_layer(io.BytesIO(archive([reg("shared", b"layer content\n")])), root)
    assert (root / "shared").read_bytes() == b"layer content\n"
    # the outside file kept its content; only its link count dropped back
    assert (sibling / "file.txt").read_text() == "precious\n"
    after = outside_state(tmp_path, root)
    key = str(sibling / "file.txt")
    assert after[key][:4] + after[key][5:] == before[key][:4] + before[key][5:]
    assert after[key][4] == before[key][4] - 1


def _deep_dirs(root, depth, name="d"):
    """``root/d/d/.../d`` ``depth`` levels deep, made with one directory fd at a time
    (``os.makedirs`` would recurse past Python's limit)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
    finally:
        os.close(fd)


@pytest.fixture
def removes_deep_trees(world):
    """Whatever happens, no deep tree is left for pytest's own (recursive) clean-up."""
    yield
    subprocess.run(["rm", "-rf", str(world[1])], check=True)


def test_a_tree_nested_thousands_deep_is_written_and_whited_out_without_recursion(world, removes_deep_trees):
    tmp_path, root, sibling = world
    deep = "/".join(["d"] * 2000)  # twice Python's recursion limit
    before = outside_state(tmp_path, root)
    extract_layer(io.BytesIO(archive([reg(deep + "/f", b"bottom")])), root)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(2000):
            nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nfd
        with open(os.open("f", os.O_RDONLY, dir_fd=fd), "rb") as f:
            assert f.read() == b"bottom"
    finally:
        os.close(fd)
    # the next layer deletes it all: an iterative removal, no RecursionError
    extract_layer(io.BytesIO(archive([reg(".wh.d", b"")])), root)
    assert os.listdir(root) == []
    check_untouched(tmp_path, root, before)


def test_opaque_marker_in_the_root_clears_only_the_roots_lower_content(world, removes_deep_trees):
    tmp_path, root, sibling = world
    (root / "lower.txt").write_text("from a lower layer")
    os.symlink(sibling, root / "out")  # a lower symlink pointing out: removed, never followed
    _deep_dirs(str(root), 1500)
    before = outside_state(tmp_path, root)
    extract_layer(io.BytesIO(archive([reg("new.txt", b"mine"), reg(".wh..wh..opq", b""), reg("z.txt", b"late")])), root)
    assert sorted(os.listdir(root)) == ["new.txt", "z.txt"]
    assert root.is_dir() and (sibling / "file.txt").read_text() == "precious\n"
    check_untouched(tmp_path, root, before)


def test_overlay_bookkeeping_xattrs_in_a_layer_are_not_applied(world):
    """trusted.overlay.* on a directory later used as an overlay lower would change what the
    overlay shows (opaque, redirect): never image content, so never set."""
    tmp_path, root, sibling = world
    entry = pax(dir_("d"), **{"SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.user.overlay.redirect": "/etc",
                             "SCHILY.xattr.user.kept": "yes"})
    extract_layer(io.BytesIO(archive([entry])), root)
    assert os.listxattr(root / "d") == ["user.kept"]


def test_owner_not_mapped_in_a_user_namespace_is_a_clear_error(tmp_path):
    """As root of a user namespace that maps only uid 0, chown to 4242 fails with EINVAL: the
    message says why instead of "Invalid argument"."""
    blob = tmp_path / "owned.tar"
    blob.write_bytes(archive([owned(reg("etc/shadow", b"x"), 4242, 42)]))
    code = (
        "import sys; from part4_tar import extract_layer, LayerError\n"
        "try:\n    extract_layer(open(sys.argv[1], 'rb'), sys.argv[2])\n"
        "except LayerError as e:\n    print(e); sys.exit(3)\n"
    )
    proc = subprocess.run(["unshare", "--user", "--map-root-user", sys.executable, "-c", code, str(blob), str(tmp_path / "root")],
                          capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.strip() == "layer entry 'etc/shadow': cannot give it owner 4242:42: not mapped in this user namespace"
