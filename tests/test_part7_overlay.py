"""Part 7: overlay mounts for real (each test mounts in a child with its own mount namespace)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from support import use_own_tempdir
from test_part7_support import hash_tree, in_mount_namespace, write

from part7_union import OverlayError, OverlayMount, mount_overlay, unmount
from part7_union.overlay import OPTIONS_LIMIT, overlay_options


def _mountinfo(target: Path) -> str:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if line.split()[4] == str(target):
            return line
    return ""


def _two_lowers(tmp_path: Path) -> tuple[Path, Path]:
    base, app = tmp_path / "base", tmp_path / "app"
    write(base / "etc/os-release", "NAME=base\n")
    write(base / "etc/motd", "welcome\n")
    write(base / "bin/tool", "#!/bin/sh\n", 0o755)
    write(app / "etc/os-release", "NAME=app\n")
    write(app / "srv/app.txt", "app\n", 0o600, 1000, 1000)
    return base, app


def test_lowers_merge_top_first(tmp_path):
    base, app = _two_lowers(tmp_path)

    def body():
        with OverlayMount([app, base], tmp_path / "upper", tmp_path / "work", tmp_path / "merged") as m:
            merged = m.target
            return (
                (merged / "etc/os-release").read_text(),
                sorted(os.listdir(merged / "etc")),
                sorted(os.listdir(merged)),
                os.stat(merged / "srv/app.txt").st_uid,
                _mountinfo(merged),
            )

    release, etc, top, uid, info = in_mount_namespace(body)
    assert release == "NAME=app\n"  # the top layer wins
    assert etc == ["motd", "os-release"]  # directories merge
    assert top == ["bin", "etc", "srv"]
    assert uid == 1000
    assert " - overlay overlay " in info
    assert f"lowerdir={app}:{base}" in info and "redirect_dir=nofollow" in info


def test_write_to_a_lower_file_copies_it_up(tmp_path):
    base, app = _two_lowers(tmp_path)
    upper = tmp_path / "upper"

    def body():
        with OverlayMount([app, base], upper, tmp_path / "work", tmp_path / "merged") as m:
            assert not (upper / "etc/motd").exists()
            with open(m.target / "etc/motd", "a") as f:
                f.write("changed\n")
            st = os.lstat(upper / "etc/motd")
            return (upper / "etc/motd").read_text(), stat.S_IMODE(st.st_mode), sorted(os.listdir(upper))

    text, mode, listing = in_mount_namespace(body)
    assert text == "welcome\nchanged\n"  # the whole file was copied up, then written
    assert mode == 0o644
    assert listing == ["etc"]  # only the changed file and its parent
    assert (base / "etc/motd").read_text() == "welcome\n"


def test_deleting_a_lower_file_leaves_a_whiteout_device(tmp_path):
    base, app = _two_lowers(tmp_path)
    upper = tmp_path / "upper"

    def body():
        with OverlayMount([app, base], upper, tmp_path / "work", tmp_path / "merged") as m:
            os.unlink(m.target / "bin/tool")
            visible = (m.target / "bin/tool").exists()
        st = os.lstat(upper / "bin/tool")
        return visible, stat.S_ISCHR(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev)

    assert in_mount_namespace(body) == (False, True, 0, 0)
    assert (base / "bin/tool").exists()


def test_context_manager_unmounts_when_the_body_raises(tmp_path):
    base, app = _two_lowers(tmp_path)
    target = tmp_path / "merged"

    def body():
        m = OverlayMount([app, base], tmp_path / "upper", tmp_path / "work", target)
        try:
            with m:
                assert os.path.ismount(target)
                raise KeyError("boom")
        except KeyError:
            pass
        return os.path.ismount(target), m.mounted, _mountinfo(target)

    assert in_mount_namespace(body) == (False, False, "")


def test_mount_overlay_and_unmount_functions(tmp_path):
    base, app = _two_lowers(tmp_path)
    target = tmp_path / "merged"

    def body():
        m = mount_overlay([app, base], tmp_path / "upper", tmp_path / "work", target)
        mounted = os.path.ismount(target) and m.mounted
        unmount(target)
        return mounted, os.path.ismount(target)

    assert in_mount_namespace(body) == (True, False)


def test_read_only_overlay_without_upper(tmp_path):
    base, app = _two_lowers(tmp_path)

    def body():
        with OverlayMount([app, base], None, None, tmp_path / "merged") as m:
            try:
                (m.target / "new").write_text("x")
            except OSError as e:
                return e.errno, (m.target / "etc/motd").read_text()
        return None

    import errno

    assert in_mount_namespace(body) == (errno.EROFS, "welcome\n")


def test_mount_errors_name_the_target(tmp_path):
    base, _ = _two_lowers(tmp_path)
    with pytest.raises(OverlayError, match="lower directory is missing"):
        OverlayMount([tmp_path / "nope"], tmp_path / "u", tmp_path / "w", tmp_path / "m").mount()
    with pytest.raises(OverlayError, match="at least one lower"):
        OverlayMount([], tmp_path / "u", tmp_path / "w", tmp_path / "m")

    def body():
        # upper and work on the same path: overlayfs refuses, we say where
        try:
            mount_overlay([base], tmp_path / "same", tmp_path / "same", tmp_path / "m")
        except OverlayError as e:
            return e.errno, str(e)
        return None

    err, message = in_mount_namespace(body)
    assert err != 0 and str(tmp_path / "m") in message and "mount overlay" in message


def test_options_escape_separators():
    opts = overlay_options(["/a:b", "/c,d"], "/u\\x", "/w", userxattr=True)
    assert opts.startswith("lowerdir=/a\\:b:/c\\,d,upperdir=/u\\\\x,workdir=/w,")
    assert opts.endswith(",redirect_dir=nofollow,metacopy=off,index=off,userxattr")


def test_sixty_lowers_with_long_paths_mount(tmp_path, monkeypatch):
    tmp = use_own_tempdir(monkeypatch, tmp_path / "tmp")  # where the directory of short names goes
    # 60 layers whose paths are ~190 bytes: the options would be ~11 KiB, far over one page
    lowers = []
    for i in range(60):
        d = tmp_path / ("sha256-" + f"{i:02d}" * 32) / "fs"
        write(d / f"only-in-{i}", str(i))
        write(d / "shared", f"layer {i}\n")
        lowers.append(d)
    lowers.reverse()  # top first: layer 59 is on top
    m = OverlayMount(lowers, tmp_path / "upper", tmp_path / "work", tmp_path / "merged")
    assert len(m.options().encode()) > 2 * OPTIONS_LIMIT
    before = {str(d): hash_tree(d) for d in lowers}

    def body():
        with m:
            merged = m.target
            (merged / "new").write_text("n")
            return (
                (merged / "shared").read_text(),
                len(os.listdir(merged)),
                (merged / "only-in-0").read_text(),
                _mountinfo(merged),
            )

    shared, count, bottom, info = in_mount_namespace(body)
    assert shared == "layer 59\n"
    assert count == 60 + 2
    assert bottom == "0"
    assert "lowerdir=0:1:2:" in info and ":59," in info  # short names, resolved at mount time
    assert (tmp_path / "upper/new").read_text() == "n"
    assert {str(d): hash_tree(d) for d in lowers} == before
    assert list(tmp.iterdir()) == []  # the directory of short names is gone


def test_userxattr_overlay_inside_a_user_namespace(tmp_path):
    base, app = _two_lowers(tmp_path)
    write(base / "var/cache/a", "a")
    write(base / "var/cache/b", "b")
    upper = tmp_path / "upper"

    def body():
        with OverlayMount([app, base], upper, tmp_path / "work", tmp_path / "merged", userxattr=True) as m:
            import shutil

            shutil.rmtree(m.target / "var/cache")
            (m.target / "var/cache").mkdir()
            (m.target / "var/cache/c").write_text("c")
            os.unlink(m.target / "etc/motd")
            return sorted(os.listdir(m.target / "var/cache")), _mountinfo(m.target)

    listing, info = in_mount_namespace(body, user=True)
    assert listing == ["c"]
    assert "userxattr" in info
    # the opaque mark went into the user.overlay namespace: trusted.* is not writable there
    assert os.getxattr(upper / "var/cache", "user.overlay.opaque") == b"y"
    assert not any(n.startswith("trusted.overlay.") for n in os.listxattr(upper / "var/cache"))
    st = os.lstat(upper / "etc/motd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
