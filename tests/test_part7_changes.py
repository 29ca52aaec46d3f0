"""Part 7: an overlay upper directory becomes a layer that, applied on the lowers with part 4,
gives back the merged view byte for byte (modes, owners, xattrs, links, devices included)."""

from __future__ import annotations

import errno
import os
import random
import shutil
import stat
import tarfile
from pathlib import Path

import pytest
from test_part7_support import applied, hash_tree, in_mount_namespace, make_base_layers, make_lowers, tar_entries, write

from part7_union import ChangeKind, LayerStack, OverlayMount, describe_tree, upper_changes, write_changes

# -- the scenarios: what a RUN step does to the merged root ------------------------------------

def add(m: Path) -> None:
    write(m / "etc/new.conf", "x=1\n", 0o640, 1234, 5678)
    (m / "data").mkdir(mode=0o750)
    os.chown(m / "data", 33, 33)
    os.symlink("../etc/new.conf", m / "data/conf")
    write(m / "data/big", random.Random(7).randbytes(300_000))
    os.link(m / "data/big", m / "data/big-again")
    os.mkfifo(m / "data/pipe")
    os.mknod(m / "data/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    write(m / "data/tagged", "t")
    os.setxattr(m / "data/tagged", "user.mime", b"text/plain")
    write(m / "data/ünïcode name, with: separators.txt", "u")
    write(m / "data/setuid", "s", 0o4755)


def change(m: Path) -> None:
    with open(m / "etc/motd" if (m / "etc/motd").exists() else m / "etc/os-release", "a") as f:
        f.write("more\n")
    os.chmod(m / "bin/tool", 0o700)  # metadata only: still a full copy-up (metacopy=off)
    os.chown(m / "usr/share/doc/b.txt", 7, 8)
    os.setxattr(m / "usr/share/doc/sub/c.txt", "user.note", b"added")
    write(m / "home/user/notes", "rewritten, same owner\n", 0o600, 1000, 1000)
    (m / "usr/share/doc/a.txt").write_text("A\n")  # one name of a hard-linked pair
    os.link(m / "etc/os-release", m / "etc/os-release.hard")  # a link to a lower file: copy-up first


def delete(m: Path) -> None:
    os.unlink(m / "bin/tool-link")
    os.unlink(m / "etc/shadow")
    shutil.rmtree(m / "usr/share/doc")


def replace_dir_by_file(m: Path) -> None:
    shutil.rmtree(m / "var/cache")
    write(m / "var/cache", "now a file\n", 0o600)


def replace_file_by_dir(m: Path) -> None:
    os.unlink(m / "bin/tool")
    (m / "bin/tool").mkdir()
    write(m / "bin/tool/inside", "i")


def delete_then_recreate_dir(m: Path) -> None:
    shutil.rmtree(m / "usr/share/doc")
    (m / "usr/share/doc").mkdir(mode=0o700)
    write(m / "usr/share/doc/a.txt", "a new a\n")  # same name as a deleted one


def rename(m: Path) -> None:
    os.rename(m / "etc/os-release", m / "etc/os-release.old")  # a file: copy-up + whiteout
    # a directory: shutil.move, like mv, falls back to copy + delete when rename(2) fails with
    # EXDEV, as it does for a lower directory with redirect_dir=nofollow
    shutil.move(m / "usr/share/doc", m / "usr/share/manual")


def xattrs(m: Path) -> None:
    os.setxattr(m / "bin/tool", "user.kind", b"binary")  # a changed value
    os.removexattr(m / "var/cache/one", "user.keep")  # a removed one: the copy-up lacks it
    os.setxattr(m / "etc", "user.dir-note", b"on a directory")  # a directory copied up


def replace_by_symlinks(m: Path) -> None:
    os.unlink(m / "bin/tool")
    os.symlink("/usr/bin/other", m / "bin/tool")  # a file replaced by a symlink
    os.unlink(m / "bin/tool-link")
    write(m / "bin/tool-link", "no longer a link\n", 0o755)  # a symlink replaced by a file
    shutil.rmtree(m / "var/cache")
    os.symlink("/tmp", m / "var/cache")  # a directory replaced by a symlink


def sparse_and_large(m: Path) -> None:
    with open(m / "data.sparse", "wb") as f:  # 48 MiB, nearly all hole
        f.write(b"head")
        f.seek(48 << 20)
        f.write(b"tail")
    os.truncate(m / "etc/os-release", 8 << 20)  # a lower file grown into a hole on copy-up
    write(m / "data.random", random.Random(11).randbytes(3 << 20))


def recreate_over_lower_whiteouts(m: Path) -> None:
    # etc/motd is deleted by a whiteout in the app layer, opt/old hidden by its opaque opt
    write(m / "etc/motd", "welcome back\n", 0o600)
    write(m / "opt/old/config", "resurrected")


def nested_opaque(m: Path) -> None:
    # usr/share/doc recreated (opaque), then its lower child sub recreated inside it, and
    # usr itself emptied and rebuilt around a surviving name
    shutil.rmtree(m / "usr/share/doc")
    (m / "usr/share/doc/sub").mkdir(parents=True)
    write(m / "usr/share/doc/sub/c.txt", "new c\n")
    shutil.rmtree(m / "opt")
    (m / "opt/new").mkdir(parents=True)
    write(m / "opt/new/config", "newer")


def everything(m: Path) -> None:
    for op in (add, change, delete_then_recreate_dir, replace_dir_by_file, replace_file_by_dir, rename):
        op(m)


SCENARIOS = [
    add, change, delete, replace_dir_by_file, replace_file_by_dir, delete_then_recreate_dir, rename,
    xattrs, replace_by_symlinks, sparse_and_large, recreate_over_lower_whiteouts, nested_opaque, everything,
]


def run_in_overlay(tmp_path: Path, lowers: list[Path], ops) -> dict:
    """Mount, apply ``ops`` to the merged root, describe it; the mount ends with the child."""
    upper, work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "merged"

    def body():
        with OverlayMount(lowers, upper, work, merged):
            ops(merged)
            d = describe_tree(merged)
        d.pop(".")
        return d

    return in_mount_namespace(body)


@pytest.fixture
def base(tmp_path):
    blobs = make_base_layers(tmp_path)
    lowers = make_lowers(tmp_path, blobs)
    return blobs, lowers


@pytest.mark.parametrize("ops", SCENARIOS, ids=lambda f: f.__name__)
def test_layer_applied_on_lowers_equals_merged_view(tmp_path, base, ops):
    blobs, lowers = base
    before = [hash_tree(d) for d in lowers]
    merged = run_in_overlay(tmp_path, lowers, ops)
    assert [hash_tree(d) for d in lowers] == before  # the lowers are never modified
    layer = tmp_path / "changes.tar.gz"
    with open(layer, "wb") as f:
        info = write_changes(tmp_path / "upper", f)
    assert info.diff_id.startswith("sha256:") and info.size == layer.stat().st_size
    result = applied(tmp_path, [*blobs, layer], "applied")
    assert result == merged
    # no overlay bookkeeping in the layer
    for name, _, pax in tar_entries(layer):
        assert not any(k.startswith(("SCHILY.xattr.trusted.overlay.", "SCHILY.xattr.user.overlay.")) for k in pax), name


def test_lower_stack_resolves_whiteouts_and_opaque_like_the_kernel(tmp_path, base):
    blobs, lowers = base

    def body():
        with OverlayMount(lowers, None, None, tmp_path / "ro"):
            d = describe_tree(tmp_path / "ro")
        d.pop(".")
        return d

    kernel = in_mount_namespace(body)
    ours = describe_tree(LayerStack(lowers))
    ours.pop(".")
    assert ours == kernel == applied(tmp_path, blobs, "applied")
    assert "etc/motd" not in kernel and "opt/old" not in kernel and "opt/new/config" in kernel


def test_one_child_is_found_as_the_listing_finds_it(tmp_path, base):
    """LayerStack.child (one name looked up through the layers: the init layer's mount points)
    gives what children() lists, whiteouts and opaque directories resolved alike."""
    _, lowers = base
    stack = LayerStack(lowers)
    for node in [stack.root(), *(n for n in stack.walk() if n.is_dir)]:
        listed = stack.children(node)
        names = set(listed) | {"no-such-name"}
        for src in node.sources:
            names |= set(os.listdir(src))  # whiteouts and hidden names too
        for name in names:
            assert stack.child(node, name) == listed.get(name), (node.rel, name)


def test_deleted_lower_file_becomes_whiteout_entry(tmp_path, base):
    blobs, lowers = base
    run_in_overlay(tmp_path, lowers, delete)
    st = os.lstat(tmp_path / "upper/etc/shadow")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    layer = tmp_path / "l.tar"
    with open(layer, "wb") as f:
        write_changes(tmp_path / "upper", f, "none")
    names = [n for n, _, _ in tar_entries(layer)]
    assert names == ["bin", "bin/.wh.tool-link", "etc", "etc/.wh.shadow", "usr", "usr/share", "usr/share/.wh.doc"]
    changes = upper_changes(tmp_path / "upper", lowers)
    assert [str(c) for c in changes] == [
        "C bin", "D bin/tool-link", "C etc", "D etc/shadow", "C usr", "C usr/share", "D usr/share/doc",
    ]


def test_recreated_directory_becomes_opaque(tmp_path, base):
    blobs, lowers = base
    run_in_overlay(tmp_path, lowers, delete_then_recreate_dir)
    assert os.getxattr(tmp_path / "upper/usr/share/doc", "trusted.overlay.opaque") == b"y"
    layer = tmp_path / "l.tar"
    with open(layer, "wb") as f:
        write_changes(tmp_path / "upper", f, "none")
    names = [n for n, _, _ in tar_entries(layer)]
    assert names == ["usr", "usr/share", "usr/share/doc", "usr/share/doc/.wh..wh..opq", "usr/share/doc/a.txt"]
    kinds = [(c.kind, c.path) for c in upper_changes(tmp_path / "upper", lowers)]
    assert (ChangeKind.OPAQUE, "usr/share/doc") in kinds and (ChangeKind.ADD, "usr/share/doc/a.txt") in kinds


def test_renaming_a_lower_directory_fails_with_exdev(tmp_path, base):
    blobs, lowers = base

    def ops(m: Path) -> None:
        with pytest.raises(OSError) as e:
            os.rename(m / "usr/share/doc", m / "usr/share/manual")
        assert e.value.errno == errno.EXDEV
        os.rename(m / "etc/motd" if (m / "etc/motd").exists() else m / "bin/tool", m / "moved")  # files do move

    run_in_overlay(tmp_path, lowers, ops)
    assert not any("redirect" in n for p in (tmp_path / "upper").rglob("*") for n in os.listxattr(p, follow_symlinks=False))


def test_copied_up_file_is_a_change_with_the_new_content(tmp_path, base):
    blobs, lowers = base
    run_in_overlay(tmp_path, lowers, change)
    layer = tmp_path / "l.tar"
    with open(layer, "wb") as f:
        write_changes(tmp_path / "upper", f, "none")
    entries = {n: t for n, t, _ in tar_entries(layer)}
    assert "bin/tool" in entries and not any(".wh." in n for n in entries)
    # a.txt had a hard link in the lower; copy-up breaks it, so only the changed name is here
    assert "usr/share/doc/a.txt" in entries and "usr/share/doc/a-link.txt" not in entries
    # a new link to a lower file: overlayfs copied the file up, both names are in the upper
    assert entries["etc/os-release"] == tarfile.REGTYPE and entries["etc/os-release.hard"] == tarfile.LNKTYPE


def test_uppers_with_userxattr_translate_user_overlay_opaque(tmp_path):
    blobs = make_base_layers(tmp_path)
    lowers = make_lowers(tmp_path, blobs, userxattr=True)
    upper, work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "merged"

    def body():
        with OverlayMount(lowers, upper, work, merged, userxattr=True):
            delete_then_recreate_dir(merged)
            delete(merged)
            d = describe_tree(merged)
        d.pop(".")
        return d

    view = in_mount_namespace(body, user=True)
    assert os.getxattr(lowers[0] / "opt", "user.overlay.opaque") == b"y"
    layer = tmp_path / "l.tar.gz"
    with open(layer, "wb") as f:
        write_changes(upper, f)
    assert applied(tmp_path, [*blobs, layer], "applied") == view
    assert "opt/old" not in view


def test_write_changes_is_deterministic(tmp_path, base):
    blobs, lowers = base
    run_in_overlay(tmp_path, lowers, everything)
    infos = []
    for i in range(2):
        with open(tmp_path / f"l{i}.tar.gz", "wb") as f:
            infos.append(write_changes(tmp_path / "upper", f, source_date_epoch=0))
    assert infos[0] == infos[1]


def test_nested_opaque_dirs_and_whiteouts_in_lowers_resolve_like_the_kernel(tmp_path, base):
    """A third layer marks usr and usr/share opaque (nested), whites out a name the app layer
    added and re-adds one the app layer whited out; the kernel, LayerStack and part 4 agree,
    and a RUN step on top still gives back the merged view."""
    from part4_tar import LayerWriter
    from part7_union import extract_lower

    blobs, lowers = base
    src = tmp_path / "src-third"
    write(src / "usr/share/fresh/x.txt", "x\n")
    write(src / "usr/lib/only", "o")
    write(src / "etc/motd", "third motd\n")
    third = tmp_path / "third.tar.gz"
    with open(third, "wb") as f, LayerWriter(f) as w:
        w.add_tree(src)
        w.add_opaque("usr")
        w.add_opaque("usr/share")
        w.add_whiteout("srv/app.py")
    blobs = [*blobs, third]
    lowers = [extract_lower(third, tmp_path / "lowers" / "2"), *lowers]
    before = [hash_tree(d) for d in lowers]

    def kernel_view():
        with OverlayMount(lowers, None, None, tmp_path / "ro"):
            d = describe_tree(tmp_path / "ro")
        d.pop(".")
        return d

    kernel = in_mount_namespace(kernel_view)
    ours = describe_tree(LayerStack(lowers))
    ours.pop(".")
    assert ours == kernel == applied(tmp_path, blobs, "applied-lowers")
    assert sorted(p for p in kernel if p.startswith("usr/")) == ["usr/lib", "usr/lib/only", "usr/share", "usr/share/fresh", "usr/share/fresh/x.txt"]
    assert "srv/app.py" not in kernel and kernel["etc/motd"][4].startswith("11:")

    def ops(m: Path) -> None:
        shutil.rmtree(m / "usr/share")  # opaque in the lower, and inside an opaque usr
        write(m / "usr/share/fresh/x.txt", "x again\n")
        os.unlink(m / "usr/lib/only")
        write(m / "srv/app.py", "back\n")  # over the third layer's whiteout

    merged = run_in_overlay(tmp_path, lowers, ops)
    assert [hash_tree(d) for d in lowers] == before
    layer = tmp_path / "changes.tar.gz"
    with open(layer, "wb") as f:
        write_changes(tmp_path / "upper", f)
    assert applied(tmp_path, [*blobs, layer], "applied") == merged
