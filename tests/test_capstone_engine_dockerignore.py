"""``.dockerignore`` in real builds: the context a COPY sees is what BuildKit would send.

BuildKit sends the context through fsutil's walker (``filter.go``): each path is matched with
its parent directory's results (patternmatcher's ``MatchesUsingParentResults``); an excluded
directory is skipped whole unless an exception could re-include something below it; an
excluded directory that is entered is sent only when something below it is, just before it.
So a COPY of a path that exists on disk but is excluded, or of an excluded directory left with
nothing in it, fails as "file not found", and an exception re-includes a file with its parent
directories. Built with ``python -m capstone build`` and checked on the image's files.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from support import capstone, image_rootfs, make_context

from capstone.engine import build as engine_build
from capstone.store import Store

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds need root (namespaces, overlay mounts)")

NOT_FOUND = "COPY failed: file not found in build context or excluded by .dockerignore: stat {}: file does not exist"


def build(store: Path, ctx: Path, tag: str):
    return capstone(store, "build", "-q", "--network", "none", "-t", tag, str(ctx))


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) + ("/" if p.is_dir() and not p.is_symlink() else "")
                  for p in root.rglob("*"))


def test_an_exception_reincludes_a_file_with_its_parent_directories(tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY . /app/\nCOPY node_modules /nm/\n", {
        ".dockerignore": "node_modules\n!node_modules/keep/keep.js\n*.log\n",
        "node_modules/keep/keep.js": "k", "node_modules/keep/drop.js": "d", "node_modules/other/o.js": "o",
        "a.log": "l", "src/b.log": "kept: *.log is only the top", "main.c": "m",
    })
    os.chmod(ctx / "node_modules/keep", 0o750)
    store = tmp_path / "store"
    r = build(store, ctx, "ign:1")
    assert r.returncode == 0, r.stderr
    root = image_rootfs(store, "ign:1", tmp_path / "rootfs")
    assert files(root / "app") == [".dockerignore", "Dockerfile", "main.c", "node_modules/", "node_modules/keep/",
                                   "node_modules/keep/keep.js", "src/", "src/b.log"]
    assert stat.S_IMODE(os.stat(root / "app/node_modules/keep").st_mode) == 0o750  # sent as it is
    assert files(root / "nm") == ["keep/", "keep/keep.js"]


@pytest.mark.parametrize(("dockerignore", "source"), [
    ("secret.txt\n", "secret.txt"),  # exists on disk, excluded
    ("build\n", "build"),  # an excluded directory
    ("build\n", "build/a.keep"),  # below one
    ("build\n!build/*.keep\n!build/sub/x\n", "build"),  # entered for exceptions that keep nothing
    ("link\n", "link/f"),  # a symlink the context does not have
    ("secret.txt\n", "to-secret"),  # a symlink to what the context does not have
])
def test_an_excluded_source_fails_as_file_not_found(tmp_path, dockerignore, source):
    ctx = make_context(tmp_path / "ctx", f"FROM scratch\nCOPY {source} /x\n", {
        ".dockerignore": dockerignore, "secret.txt": "s", "build/a.txt": "a", "build/sub/y": "y", "dir/f": "f",
        "build/a.keep" if source == "build/a.keep" else "other": "k",
    })
    os.symlink("dir", ctx / "link")
    os.symlink("secret.txt", ctx / "to-secret")
    store = tmp_path / "store"
    r = build(store, ctx, "ign:2")
    assert (r.returncode, r.stderr) == (1, "Dockerfile:2: " + NOT_FOUND.format(source) + "\n")
    assert not (store / "oci" / "index.json").exists() or "ign:2" not in (store / "oci" / "index.json").read_text()


def test_an_excluded_directory_is_copied_with_what_its_exceptions_keep(tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY build /b/\nCOPY *.txt /t/\nCOPY build/*.keep /k/\n", {
        ".dockerignore": "build\n!build/*.keep\nhidden.txt\n",
        "build/a.keep": "a", "build/b.txt": "b", "build/sub/c.keep": "c", "shown.txt": "s", "hidden.txt": "h",
    })
    store = tmp_path / "store"
    r = build(store, ctx, "ign:3")
    assert r.returncode == 0, r.stderr
    root = image_rootfs(store, "ign:3", tmp_path / "rootfs")
    assert files(root / "b") == ["a.keep"]  # build/sub/c.keep: "build/*.keep" is one level
    assert files(root / "t") == ["shown.txt"]  # a pattern sees only what the context has
    assert files(root / "k") == ["a.keep"]


def test_patterns_are_asked_directory_by_directory_as_buildkit_does(tmp_path):
    # fsutil asks patternmatcher with the parent directory's results, where a pattern skipped
    # (it could not change the answer so far) counts as not matching for the children too. So
    # "a", "!a/b", "a": a/b/c is sent (the last "a" was skipped at a); and "a", "!a",
    # "**/*.txt", "!*": a/b/c.txt is not ("!*" was skipped at a), where matching each full path
    # against its parents answers the other way round.
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY . /app/\n", {
        ".dockerignore": "a\n!a/b\na\n", "a/b/c": "c", "a/d": "d",
    })
    store = tmp_path / "store"
    r = build(store, ctx, "ign:4")
    assert r.returncode == 0, r.stderr
    root = image_rootfs(store, "ign:4", tmp_path / "rootfs")
    assert files(root / "app") == [".dockerignore", "Dockerfile", "a/", "a/b/", "a/b/c"]
    (ctx / ".dockerignore").write_text("a\n!a\n**/*.txt\n!*\n")
    (ctx / "a/b/c.txt").write_text("t")
    (ctx / "top.txt").write_text("t")
    r = build(store, ctx, "ign:5")
    assert r.returncode == 0, r.stderr
    root = image_rootfs(store, "ign:5", tmp_path / "rootfs5")
    assert files(root / "app") == [".dockerignore", "Dockerfile", "a/", "a/b/", "a/b/c", "a/d", "top.txt"]


def test_an_excluded_directory_no_exception_can_reach_is_never_read(tmp_path, monkeypatch):
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY . /app/\nCOPY *.js src/ /js/\n", {
        ".dockerignore": "node_modules\nbuild\n!src/keep.txt\n!node_modules/keep.md\n",
        "node_modules/x/y.js": "y", "build/out/z": "z", "app.js": "a", "src/keep.txt": "k",
    })
    read: list[str] = []
    real = os.scandir

    def spy(path="."):
        if not isinstance(path, int):  # a descriptor: shutil's cleanup of the build's scratch space
            read.append(os.fspath(path))
        return real(path)

    store = Store.open(tmp_path / "store")
    monkeypatch.setattr(os, "scandir", spy)
    with open(os.devnull, "wb") as devnull:
        engine_build(store, ctx, tags=["ign:6"], network="none", run_output=devnull)
    monkeypatch.undo()
    # "!node_modules/keep.md" could re-include something in node_modules, so it is read (BuildKit
    # reads it too); nothing can re-include anything below build or node_modules/x
    assert not [p for p in read if p.startswith((str(ctx / "build"), str(ctx / "node_modules/x")))], read
    assert any(p == str(ctx / "node_modules") for p in read)
    root = image_rootfs(store.path, "ign:6", tmp_path / "rootfs")
    assert files(root / "app") == [".dockerignore", "Dockerfile", "app.js", "src/", "src/keep.txt"]
