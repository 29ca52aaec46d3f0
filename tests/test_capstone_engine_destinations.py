"""The directories a build makes: the destination of COPY/ADD and its parents, and WORKDIR.

BuildKit (fsutil's copy, ``MkdirAll(dest, 0755, chown)``) makes a missing destination of a
directory's contents, and every missing parent, with mode 0755, owned by the ``--chown`` owner
or root, whatever the source directory's mode or owner; the directories *inside* the source
keep theirs (its ``testCopyChownExistingDir`` and ``testCopyChownCreateDest``). WORKDIR makes
its directory 0755, owned by the USER of the stage. Each case is a real ``python -m capstone
build`` into a store of its own, checked on the image's files and by running it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from support import capstone, image_rootfs, make_context

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds need root (namespaces, overlay mounts)")


def build(store: Path, ctx: Path, tag: str, *args: str) -> None:
    r = capstone(store, "build", "-q", "--network", "none", "-t", tag, *args, str(ctx))
    assert r.returncode == 0, r.stderr


def meta(path: Path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def group_writable_tree(ctx: Path) -> None:
    """What a checkout with umask 002 looks like: every directory 0775."""
    for dirpath, dirnames, _ in os.walk(ctx):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o775)
    os.chmod(ctx, 0o775)


def test_contents_of_a_directory_into_a_new_destination_make_it_0755_root(tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM scratch
COPY dir/ /newdir
WORKDIR /w
COPY . subdir/
ADD folder /f1
COPY /a/b /var
""", {"dir/sub/f": "f", "folder/x.txt": "x", "a/b/c.txt": "c"})
    group_writable_tree(ctx)
    os.chmod(ctx / "dir/sub/f", 0o664)
    store = tmp_path / "store"
    build(store, ctx, "dest:1")
    root = image_rootfs(store, "dest:1", tmp_path / "rootfs")
    for made in ("newdir", "w/subdir", "f1", "var"):
        assert meta(root / made) == (0o755, 0, 0), made
    # what is inside the source keeps its own metadata (only owners become root from a context)
    assert meta(root / "newdir/sub") == (0o775, 0, 0)
    assert meta(root / "newdir/sub/f") == (0o664, 0, 0)
    assert meta(root / "w/subdir/dir") == (0o775, 0, 0)
    assert (root / "var/c.txt").read_text() == "c" and (root / "f1/x.txt").read_text() == "x"


def test_copy_from_a_stage_makes_its_destination_root_owned_unless_chown(tmp_path):
    # BuildKit's testCopyChownExistingDir, checked from inside the image it builds
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox AS source
RUN touch /file && chown 100:200 /file && mkdir -p /dir/subdir && touch /dir/subdir/nestedfile \\
 && chown 100:200 /dir && chmod 700 /dir && chown 101:201 /dir/subdir && chown 102:202 /dir/subdir/nestedfile

FROM capstone/busybox AS base
RUN mkdir -p /existingdir/existingsubdir && touch /existingdir/existingfile \\
 && chown 500:600 /existingdir && chmod 750 /existingdir && chown 501:601 /existingdir/existingsubdir

FROM base AS copy_from
COPY --from=source /file .
COPY --from=source /dir /dir
COPY --from=source /dir/. /existingdir

FROM base AS copy_from_chowned
COPY --from=source --chown=300:400 /file .
COPY --from=source --chown=300:400 /dir /dir
COPY --from=source --chown=300:400 /dir/. /existingdir
""")
    store = tmp_path / "store"
    build(store, ctx, "own:plain", "--target", "copy_from")
    build(store, ctx, "own:chowned", "--target", "copy_from_chowned")
    probe = ["stat", "-c", "%n %a %u:%g", "/file", "/dir", "/dir/subdir", "/dir/subdir/nestedfile",
             "/existingdir", "/existingdir/existingsubdir", "/existingdir/subdir",
             "/existingdir/subdir/nestedfile"]
    r = capstone(store, "run", "--rm", "--network", "none", "own:plain", *probe)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "/file 644 100:200",
        "/dir 755 0:0",  # made by the copy: 0755 root, not the source's 700 100:200
        "/dir/subdir 755 101:201",
        "/dir/subdir/nestedfile 644 102:202",
        "/existingdir 750 500:600",  # there before: untouched
        "/existingdir/existingsubdir 755 501:601",
        "/existingdir/subdir 755 101:201",
        "/existingdir/subdir/nestedfile 644 102:202",
    ]
    r = capstone(store, "run", "--rm", "--network", "none", "own:chowned", *probe)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "/file 644 300:400",
        "/dir 755 300:400",
        "/dir/subdir 755 300:400",
        "/dir/subdir/nestedfile 644 300:400",
        "/existingdir 750 500:600",
        "/existingdir/existingsubdir 755 501:601",
        "/existingdir/subdir 755 300:400",
        "/existingdir/subdir/nestedfile 644 300:400",
    ]


def test_parents_of_the_destination_are_0755_owned_by_chown(tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM scratch
COPY --chown=1000:1001 f /a/b/c/f
COPY --chown=7:8 d /x/y/
COPY f /plain/deep/f
""", {"f": "f", "d/g": "g"})
    group_writable_tree(ctx)
    store = tmp_path / "store"
    build(store, ctx, "parents:1")
    root = image_rootfs(store, "parents:1", tmp_path / "rootfs")
    for made in ("a", "a/b", "a/b/c"):
        assert meta(root / made) == (0o755, 1000, 1001), made
    assert meta(root / "x") == meta(root / "x/y") == (0o755, 7, 8)
    assert meta(root / "plain") == meta(root / "plain/deep") == (0o755, 0, 0)


def test_workdir_makes_its_directories_0755_owned_by_user(tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox
RUN mkdir -m 700 /exists
USER 1234:5678
WORKDIR /w/x
WORKDIR /exists/inner
USER root
WORKDIR /rootdir
""")
    store = tmp_path / "store"
    build(store, ctx, "wd:1")
    root = image_rootfs(store, "wd:1", tmp_path / "rootfs")
    assert meta(root / "w") == meta(root / "w/x") == (0o755, 1234, 5678)
    assert meta(root / "exists") == (0o700, 0, 0)  # there before: untouched
    assert meta(root / "exists/inner") == (0o755, 1234, 5678)
    assert meta(root / "rootdir") == (0o755, 0, 0)


def test_existing_destination_keeps_its_mode_and_owner(tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox
RUN mkdir -m 700 /exist && chown 5:6 /exist
COPY dir/ /exist/
COPY dir /exist
""", {"dir/f": "f"})
    group_writable_tree(ctx)
    store = tmp_path / "store"
    build(store, ctx, "exist:1")
    root = image_rootfs(store, "exist:1", tmp_path / "rootfs")
    assert meta(root / "exist") == (0o700, 5, 6)
    assert (root / "exist/f").read_text() == "f"


def test_workdir_for_a_user_the_image_lacks_fails_as_buildkit(tmp_path):
    """BuildKit's mkdir resolves USER in the image's /etc/passwd and fails when it cannot;
    making the directory root's instead would hide the mistake until the container runs."""
    ctx = make_context(tmp_path / "ctx", "FROM capstone/busybox\nUSER nosuchuser\nWORKDIR /app\n")
    store = tmp_path / "store"
    r = capstone(store, "build", "-q", "--network", "none", "-t", "wd:2", str(ctx))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].endswith(
        "Dockerfile:3: unable to find user nosuchuser: no matching entries in passwd file"), r.stderr
