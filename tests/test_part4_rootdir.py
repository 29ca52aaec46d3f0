"""part4_tar.RootDir: every path resolved inside the root, every write confined to it.

Each test has a world outside the root (a sibling directory with a canary file, a directory
next to it) that is snapshotted before and compared after: nothing outside may change.
"""

from __future__ import annotations

import errno
import os
import stat
import threading

import pytest
from support import outside_state

from part4_tar import RootDir, UnsafePathError, fd_path, split_name
from part4_tar.rootdir import CACHED_DIRS


@pytest.fixture
def world(tmp_path):
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "canary").write_text("precious\n")
    root = tmp_path / "root"
    root.mkdir()
    before = outside_state(tmp_path, root)
    yield root, outside
    assert outside_state(tmp_path, root) == before, "something outside the root changed"


def read(path) -> str:
    with open(path) as f:
        return f.read()


# -- names -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["..", "../x", "a/../../x", "a/..", "/../canary", "a/b/../../.."])
def test_names_with_dotdot_are_refused_before_anything_is_written(world, name):
    root, _ = world
    with RootDir(root) as rd:
        for write in (lambda: rd.create_file(name), lambda: rd.make_dir(name), lambda: rd.symlink("t", name),
                      lambda: rd.mknod(name, stat.S_IFIFO | 0o600), lambda: rd.link("a", name)):
            with pytest.raises(UnsafePathError, match="'..' would escape the root"):
                write()
    assert os.listdir(root) == []


def test_nul_bytes_are_refused():
    with pytest.raises(UnsafePathError, match="NUL byte"):
        split_name("a\0/../../x")


def test_a_leading_slash_means_the_root_and_dots_vanish():
    assert split_name("/a/./b//c/") == ("a", "b", "c")
    assert split_name("/") == ()


# -- resolution ------------------------------------------------------------------------------
def test_absolute_and_relative_symlinks_resolve_inside_the_root(world):
    root, outside = world
    (root / "etc").mkdir()
    (root / "etc/resolv.conf").symlink_to("/run/resolv.conf")
    (root / "up").symlink_to("../../..")
    (root / "host").symlink_to(str(outside))
    with RootDir(root) as rd:
        assert rd.resolve("/etc/resolv.conf") == "run/resolv.conf"
        assert rd.resolve("/etc/resolv.conf", follow=False) == "etc/resolv.conf"
        assert rd.resolve("/up/etc") == "etc"
        assert rd.resolve("../../../etc") == "etc"
        assert rd.resolve("host/canary") == str(outside).lstrip("/") + "/canary"
        assert rd.resolve("missing/../etc") == "etc"
        assert rd.resolve("/") == ""
        with pytest.raises(FileNotFoundError):
            rd.open("host/canary")


def test_open_follows_the_last_symlink_only_when_asked(world):
    root, outside = world
    (root / "f").write_text("inside\n")
    (root / "link").symlink_to("/f")
    (root / "out").symlink_to(str(outside / "canary"))
    with RootDir(root) as rd:
        fd = rd.open("link", os.O_RDONLY)
        with os.fdopen(fd) as f:
            assert f.read() == "inside\n"
        fd = rd.open("link", follow=False)  # O_PATH: the symlink itself
        try:
            assert stat.S_ISLNK(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
        with pytest.raises(OSError) as exc:
            rd.open("link", os.O_RDONLY, follow=False)
        assert exc.value.errno == errno.ELOOP
        with pytest.raises(FileNotFoundError):
            rd.open("out", os.O_RDONLY)


@pytest.mark.parametrize("links, ok", [(40, True), (41, False)])
def test_forty_symlinks_are_followed_and_forty_one_are_a_loop(world, links, ok):
    root, _ = world
    (root / "target").mkdir()
    for i in range(links - 1):
        os.symlink(f"l{i + 1}", root / f"l{i}")
    os.symlink("target", root / f"l{links - 1}")
    with RootDir(root) as rd:
        if ok:
            assert rd.resolve("l0/x") == "target/x"
            os.close(rd.create_file("l0/x"))
            assert (root / "target/x").exists()
        else:
            with pytest.raises(UnsafePathError, match="symlink loop"):
                rd.create_file("l0/x")


@pytest.mark.parametrize("links", [{"a": "b", "b": "a"}, {"l": "l/l"}, {"s": "/s"}])
def test_symlink_loops_are_refused(world, links):
    root, _ = world
    for name, target in links.items():
        os.symlink(target, root / name)
    first = next(iter(links))
    with RootDir(root) as rd:
        with pytest.raises(UnsafePathError, match="symlink loop"):
            rd.make_dir(f"{first}/x")
        with pytest.raises(UnsafePathError, match="symlink loop"):
            rd.open(f"{first}/x")


# -- writing ---------------------------------------------------------------------------------
def test_writes_through_symlinks_to_outside_stay_inside(world):
    root, outside = world
    (root / "abs").symlink_to(str(outside))
    (root / "rel").symlink_to("../outside")
    (root / "deep").mkdir()
    (root / "deep/up").symlink_to("../" * 12 + "outside")
    with RootDir(root) as rd:
        for name in ("abs/canary", "rel/canary", "deep/up/canary", "abs/dir/new"):
            fd = rd.create_file(name)
            os.write(fd, b"pwned\n")
            os.close(fd)
        os.close(rd.make_dir("rel/dir/sub"))
        rd.symlink("/etc/shadow", "abs/dir/link")
        rd.mknod("rel/fifo", stat.S_IFIFO | 0o640)
    assert read(root / str(outside).lstrip("/") / "canary") == "pwned\n"
    assert read(root / "outside/canary") == "pwned\n"
    assert (root / "outside/dir/sub").is_dir()
    assert stat.S_IMODE(os.lstat(root / "outside/fifo").st_mode) == 0o640


def test_the_last_component_is_replaced_never_followed(world):
    root, outside = world
    (root / "f").symlink_to(str(outside / "canary"))
    (root / "d").symlink_to(str(outside / "dir"))
    os.link(outside / "canary", root / "hard")
    with RootDir(root) as rd:
        fd = rd.create_file("f")
        os.write(fd, b"mine\n")
        os.close(fd)
        fd = rd.create_file("hard")
        os.close(fd)
        os.close(rd.make_dir("d", 0o750))
        assert rd.remove("missing") is False
    assert read(root / "f") == "mine\n" and not (root / "f").is_symlink()
    assert (root / "hard").stat().st_size == 0
    assert (root / "d").is_dir() and not (root / "d").is_symlink()
    assert stat.S_IMODE((root / "d").stat().st_mode) == 0o750


def test_remove_takes_a_symlink_away_not_its_target(world):
    root, outside = world
    (root / "s").symlink_to(str(outside))
    (root / "sub").mkdir()
    (root / "sub/t").symlink_to("../s")
    with RootDir(root) as rd:
        assert rd.remove("s") is True
        assert rd.remove("sub") is True
    assert os.listdir(root) == []


def test_hard_links_stay_inside_and_link_a_symlink_itself(world):
    root, outside = world
    (root / "s").symlink_to(str(outside / "canary"))
    (root / "out").symlink_to(str(outside))
    (root / "d").mkdir()
    with RootDir(root) as rd:
        rd.link("s", "h")
        with pytest.raises(FileNotFoundError):
            rd.link("out/canary", "h2")  # the root's own /tmp/.../outside: not there
        with pytest.raises(IsADirectoryError):
            rd.link("d", "h3")
    assert os.readlink(root / "h") == str(outside / "canary")
    assert os.lstat(root / "h").st_ino == os.lstat(root / "s").st_ino


def test_missing_parents_are_made_0755_whatever_the_umask(world):
    root, _ = world
    old = os.umask(0o077)
    try:
        with RootDir(root) as rd:
            os.close(rd.create_file("a/b/c/f"))
    finally:
        os.umask(old)
    for d in ("a", "a/b", "a/b/c"):
        assert stat.S_IMODE((root / d).stat().st_mode) == 0o755


def test_make_dir_returns_a_handle_for_metadata(world):
    root, _ = world
    with RootDir(root) as rd:
        fd = rd.make_dir("x/y", 0o700)
        try:
            os.chmod(fd_path(fd), 0o1750)
            os.utime(fd_path(fd), ns=(10**9, 10**9))
        finally:
            os.close(fd)
    st = (root / "x/y").stat()
    assert stat.S_IMODE(st.st_mode) == 0o1750 and st.st_mtime_ns == 10**9


def test_a_big_tree_keeps_few_descriptors_open(world):
    root, _ = world
    before = len(os.listdir("/proc/self/fd"))
    with RootDir(root) as rd:
        for d in range(300):
            for f in range(5):
                os.close(rd.create_file(f"top/d{d:03d}/sub/f{f}"))
        assert len(os.listdir("/proc/self/fd")) <= before + CACHED_DIRS + 2
    assert len(os.listdir("/proc/self/fd")) == before
    assert sum(len(files) for _, _, files in os.walk(root)) == 1500


def test_a_cached_directory_replaced_by_a_symlink_is_dropped(world):
    root, outside = world
    with RootDir(root) as rd:
        os.close(rd.create_file("d/f1"))
        rd.symlink(str(outside), "d")  # removes the directory d (and the cached descriptor)
        os.close(rd.create_file("d/canary"))
    assert (root / str(outside).lstrip("/") / "canary").exists()


# -- races -------------------------------------------------------------------------------------
def test_a_directory_swapped_for_a_symlink_after_it_was_opened_is_harmless(world):
    root, outside = world
    with RootDir(root) as rd:
        os.close(rd.create_file("d/first"))  # d is resolved and its descriptor kept
        os.rename(root / "d", root / "moved")  # behind the RootDir's back
        os.symlink(str(outside), root / "d")
        fd = rd.create_file("d/second")
        os.close(fd)
    # the directory that was checked got the file, wherever its name points now
    assert sorted(os.listdir(root / "moved")) == ["first", "second"]


def test_components_swapped_for_symlinks_while_writing_never_lead_outside(world):
    root, outside = world
    (root / "d").mkdir()
    stop = threading.Event()

    def swap():
        while not stop.is_set():
            try:
                os.rename(root / "d", root / "d.real")
                os.symlink(str(outside), root / "d")
                os.unlink(root / "d")
                os.rename(root / "d.real", root / "d")
            except OSError:
                pass  # the writer made a new d meanwhile: swap again

    t = threading.Thread(target=swap)
    t.start()
    written = 0
    try:
        with RootDir(root) as rd:
            for i in range(3000):
                rd.forget()  # resolve from the root every time: the race is on every component
                try:
                    fd = rd.create_file(f"d/sub/f{i}")
                except OSError:
                    continue
                os.close(fd)
                written += 1
    finally:
        stop.set()
        t.join()
    assert written > 0


def test_set_times_never_follows_the_last_component(world):
    root, outside = world
    (root / "out").symlink_to(str(outside / "canary"))
    with RootDir(root) as rd:
        rd.set_times("out", (10**9, 2 * 10**9))
        rd.set_times("", (3 * 10**9, 3 * 10**9))
    assert os.lstat(root / "out").st_mtime_ns == 2 * 10**9
    assert os.stat(root).st_mtime_ns == 3 * 10**9
