"""Part 7: the snapshotters (overlay and copy) and the diff of two plain directories."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_part7_changes import SCENARIOS, everything
from test_part7_support import applied, hash_tree, in_mount_namespace, make_base_layers, make_lowers, write

from part7_union import (
    ChangeKind,
    CopySnapshot,
    CopySnapshotter,
    OverlaySnapshot,
    OverlaySnapshotter,
    SnapshotError,
    copy_tree,
    describe_tree,
    diff_dirs,
    snapshotter,
    write_dir_diff,
)


def _described(root: Path) -> dict:
    d = describe_tree(root)
    d.pop(".")
    return d


@pytest.mark.parametrize("ops", SCENARIOS, ids=lambda f: f.__name__)
def test_copy_snapshotter_layer_reproduces_its_rootfs(tmp_path, ops):
    blobs = make_base_layers(tmp_path)
    lowers = make_lowers(tmp_path, blobs)
    before = [hash_tree(d) for d in lowers]
    with CopySnapshotter().prepare(lowers, tmp_path / "scratch") as snap:
        assert snap.kind == "copy" and snap.root == tmp_path / "scratch/rootfs"
        assert _described(snap.root) == applied(tmp_path, blobs, "base")  # the copy is the image
        ops(snap.root)
        view = _described(snap.root)
        with open(tmp_path / "layer.tar.gz", "wb") as f:
            snap.write_changes(f)
    assert not (tmp_path / "scratch/rootfs").exists()  # removed on exit
    assert [hash_tree(d) for d in lowers] == before
    assert applied(tmp_path, [*blobs, tmp_path / "layer.tar.gz"], "applied") == view


def test_copy_and_overlay_snapshotters_give_equivalent_layers(tmp_path):
    blobs = make_base_layers(tmp_path)
    lowers = make_lowers(tmp_path, blobs)

    def overlay_run():
        snap = OverlaySnapshotter().prepare(lowers, tmp_path / "ov")
        try:
            assert os.path.ismount(snap.root)
            everything(snap.root)
            view = _described(snap.root)
            with open(tmp_path / "overlay.tar.gz", "wb") as f:
                snap.write_changes(f, source_date_epoch=0)
            kinds = sorted({c.kind.value for c in snap.changes()})
        finally:
            snap.remove()
        return view, kinds, (tmp_path / "ov").exists() and sorted(os.listdir(tmp_path / "ov"))

    overlay_view, kinds, left = in_mount_namespace(overlay_run)
    assert kinds == ["A", "C", "D"] and left == []  # doc: recreated (opaque) then moved: D + A
    with CopySnapshotter().prepare(lowers, tmp_path / "cp") as snap:
        everything(snap.root)
        copy_view = _described(snap.root)
        with open(tmp_path / "copy.tar.gz", "wb") as f:
            snap.write_changes(f, source_date_epoch=0)
    assert copy_view == overlay_view
    from_overlay = applied(tmp_path, [*blobs, tmp_path / "overlay.tar.gz"], "a1")
    from_copy = applied(tmp_path, [*blobs, tmp_path / "copy.tar.gz"], "a2")
    assert from_overlay == from_copy == overlay_view


def test_overlay_snapshot_prepared_unmounted_and_from_scratch(tmp_path):
    snap = OverlaySnapshotter().prepare([], tmp_path / "s", mount=False)
    assert not snap.mounted and snap.overlay.lowers == (tmp_path / "s/empty",)

    def body():
        snap.mount()
        write(snap.root / "hello", "hi")
        snap.unmount()
        return [str(c) for c in snap.changes()]

    assert in_mount_namespace(body) == ["A hello"]
    snap.remove()
    assert os.listdir(tmp_path / "s") == []


def _init_layer(path: Path) -> Path:
    """What a runtime needs in a root filesystem and the image may lack (Docker's init layer)."""
    for d in ("proc", "dev", "etc"):
        (path / d).mkdir(parents=True)
    write(path / "etc/hosts", "")
    return path


def test_an_init_layer_is_in_the_view_and_never_among_the_changes(tmp_path):
    """The capstone's containers: the init layer above the image's layers, an upper dir of the
    caller's that outlives the overlay snapshot, a copy made in an empty directory it names."""
    blobs = make_base_layers(tmp_path)
    lowers = make_lowers(tmp_path, blobs)
    init = _init_layer(tmp_path / "init")
    before = [hash_tree(d) for d in (*lowers, init)]
    upper = tmp_path / "scratch/upper"
    snap = OverlaySnapshot(lowers, tmp_path / "scratch", init=init, upper=upper)
    assert snap.overlay.lowers == (init, *lowers) and snap.changes_dir == upper

    def body():
        snap.mount()
        try:
            assert (snap.root / "proc").is_dir() and (snap.root / "etc/hosts").is_file()
            write(snap.root / "made", "m")
        finally:
            snap.unmount()
        return [str(c) for c in snap.changes()]

    assert in_mount_namespace(body) == ["A made"]
    snap.remove()
    assert sorted(os.listdir(tmp_path / "scratch")) == ["upper"] and (upper / "made").is_file()

    root = tmp_path / "scratch/merged"
    root.mkdir()  # an empty directory is used as it is
    copy = CopySnapshot(lowers, tmp_path / "scratch", init=init, root=root).mount()
    assert copy.changes_dir == root and (root / "proc").is_dir() and (root / "etc/hosts").is_file()
    assert copy.changes() == []
    write(root / "made", "m")
    assert [str(c) for c in copy.changes()] == ["A made"]
    copy.remove(keep_root=True)
    assert (root / "made").is_file()
    with pytest.raises(SnapshotError, match="already exists"):
        CopySnapshot(lowers, tmp_path / "scratch", root=root).mount()  # not empty: never copied over
    copy.remove()
    assert not root.exists() and [hash_tree(d) for d in (*lowers, init)] == before  # read, never written


def test_snapshotter_kinds():
    assert snapshotter("copy").kind == "copy"
    assert snapshotter("overlay", userxattr=True).userxattr is True
    assert snapshotter("auto").kind == "overlay"  # root on this machine: overlay mounts
    with pytest.raises(SnapshotError, match="unknown snapshotter kind 'zfs'"):
        snapshotter("zfs")


# -- diff_dirs on two plain directories ----------------------------------------------------

@pytest.fixture
def pair(tmp_path):
    old = tmp_path / "old"
    write(old / "same", "same")
    write(old / "content", "aaaa")
    write(old / "mode", "m")
    write(old / "xattr", "x")
    os.symlink("a", old / "link")
    write(old / "gone", "g")
    write(old / "dir/keep", "k")
    write(old / "dir/drop", "d")
    write(old / "wiped/1", "1")
    write(old / "wiped/2", "2")
    write(old / "was-file", "f")
    write(old / "was-dir/x", "x")
    new = tmp_path / "new"
    copy_tree(old, new)
    return old, new


def test_identical_copies_have_no_changes(pair):
    old, new = pair
    assert diff_dirs(old, new) == []


def test_diff_detects_every_kind_of_change(pair, tmp_path):
    old, new = pair
    st = os.stat(new / "content")
    (new / "content").write_text("bbbb")  # same size ...
    os.utime(new / "content", ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and same mtime
    os.utime(new / "same", (0, 0))  # a new mtime alone is no change
    os.chmod(new / "mode", 0o600)
    os.setxattr(new / "xattr", "user.k", b"v")
    os.unlink(new / "link")
    os.symlink("b", new / "link")
    os.unlink(new / "gone")
    os.unlink(new / "dir/drop")
    shutil.rmtree(new / "wiped")
    (new / "wiped").mkdir()
    write(new / "wiped/3", "3")
    os.unlink(new / "was-file")
    write(new / "was-file/inner", "i")
    shutil.rmtree(new / "was-dir")
    write(new / "was-dir", "now a file")
    write(new / "added/deep/file", "new")
    changes = [str(c) for c in diff_dirs(old, new)]
    assert changes == [
        "A added", "A added/deep", "A added/deep/file",
        "C content",
        "D dir/drop",
        "D gone",
        "C link",
        "C mode",
        "C was-dir",
        "C was-file", "A was-file/inner",
        "O wiped", "A wiped/3",
        "C xattr",
    ]
    with open(tmp_path / "diff.tar.gz", "wb") as f:
        write_dir_diff(old, new, f)
    assert applied(tmp_path, [_layer_of(old, tmp_path), tmp_path / "diff.tar.gz"], "applied") == _described(new)


def test_single_deleted_child_is_a_whiteout_not_opaque(pair):
    old, new = pair
    os.unlink(new / "wiped/1")
    os.unlink(new / "wiped/2")
    write(new / "wiped/1", "1")  # one old name survives (recreated): per-entry whiteouts
    assert [(c.kind, c.path) for c in diff_dirs(old, new)] == [(ChangeKind.DELETE, "wiped/2")]


def _layer_of(src: Path, tmp_path: Path) -> Path:
    from part4_tar import write_layer

    out = tmp_path / "base-of-pair.tar.gz"
    with open(out, "wb") as f:
        write_layer(src, f)
    return out


def test_chapter_script_runs_and_narrates(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "part7_union", "--workdir", str(tmp_path / "ch")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for needle in ("copy-up", "c--------- 0,0", "bin/.wh.old-tool", "var/cache/.wh..wh..opq", "merged view == base + layer: True", "base + copy layer == merged view: True"):
        assert needle in out, needle
    assert not Path("/proc/self/mountinfo").read_text().count(str(tmp_path))


# -- property: for any two small trees, old + diff layer == new ------------------------------


_leaf = st.one_of(
    st.tuples(st.just("file"), st.sampled_from(["x", "y", "xx", ""]), st.sampled_from([0o644, 0o600, 0o755])),
    st.tuples(st.just("link"), st.sampled_from(["a", "b", "../c"])),
)
_tree = st.recursive(_leaf, lambda kids: st.dictionaries(st.sampled_from("abc"), kids, max_size=3), max_leaves=8)
_root = st.dictionaries(st.sampled_from("abcd"), _tree, max_size=4)


def _materialize(spec: dict, root: Path) -> None:
    root.mkdir(parents=True)
    for name, entry in spec.items():
        p = root / name
        if isinstance(entry, dict):
            _materialize(entry, p)
        elif entry[0] == "file":
            write(p, entry[1], entry[2])
        else:
            os.symlink(entry[1], p)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(old=_root, new=_root)
def test_any_two_trees_old_plus_diff_layer_is_new(tmp_path_factory, old, new):
    tmp = tmp_path_factory.mktemp("prop")
    _materialize(old, tmp / "old")
    _materialize(new, tmp / "new")
    changes = diff_dirs(tmp / "old", tmp / "new")
    with open(tmp / "diff.tar", "wb") as f:
        write_dir_diff(tmp / "old", tmp / "new", f, "none")
    assert applied(tmp, [_layer_of(tmp / "old", tmp), tmp / "diff.tar"], "applied") == _described(tmp / "new"), changes
    assert (changes == []) == (_described(tmp / "old") == _described(tmp / "new"))
