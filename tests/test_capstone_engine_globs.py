"""COPY/ADD sources with wildcards, built for real with ``python -m capstone build``.

BuildKit's Dockerfile frontend copies every source with ``AllowEmptyWildcard``: a pattern that
matches nothing adds nothing and the COPY goes on with the other sources (its
``testEmptyWildcard``: ``COPY foo nomatch* /``), even when no source matches at all (Docker's
maintainers point users to ``COPY requirements.* .`` for optional files, moby/moby#26332),
while a plain path that does not exist fails the step. A source is cut at its first segment
holding a wildcard and the rest matched against the paths below in ``filepath.Walk`` order;
``**`` matches any number of directories (as ``COPY --parents`` and ``.dockerignore`` read it:
one matcher for all of them); a symlink that a pattern matches is copied as what it points to,
under its own name (``testCopySymlinks``). No pattern, however many stars it has, takes more
than linear time.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import capstone, image_rootfs, make_context

from capstone.store import Store

HOSTILE = Path(__file__).resolve().parent / "fixtures" / "hostile"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds need root (namespaces, overlay mounts)")


def build(store: Path, ctx: Path, tag: str, timeout: float = 60):
    return capstone(store, "build", "-q", "--network", "none", "-t", tag, str(ctx), timeout=timeout)


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) + ("/" if p.is_dir() and not p.is_symlink() else "")
                  for p in root.rglob("*"))


def test_patterns_that_match_nothing_add_nothing_missing_paths_fail(tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM scratch
COPY foo nomatch* /
COPY nomatch* a*.txt sub/*.none /dst/
COPY [xyz]*.nope /nothing/
""", {"foo": "contents0", "a1.txt": "1", "a2.txt": "2", "sub/s": "s"})
    store = tmp_path / "store"
    r = build(store, ctx, "globs:1")
    assert r.returncode == 0, r.stderr
    root = image_rootfs(store, "globs:1", tmp_path / "rootfs")
    assert (root / "foo").read_text() == "contents0"
    assert files(root / "dst") == ["a1.txt", "a2.txt"]
    assert not (root / "nothing").exists()  # no source: no directory, no layer
    config = Store.open(store).load("globs:1").config
    assert [bool(h.empty_layer) for h in config.history] == [False, False, True]
    # a path that does not exist is an error, whatever matched beside it
    make_context(ctx, "FROM scratch\nCOPY a*.txt missing.txt /dst/\n")
    r = build(store, ctx, "globs:2")
    assert (r.returncode, r.stderr) == (1, "Dockerfile:2: COPY failed: file not found in build context or "
                                           "excluded by .dockerignore: stat missing.txt: file does not exist\n")


def test_double_star_matches_any_number_of_directories(tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox AS stage
RUN mkdir -p /opt/a/b/c && echo deep > /opt/a/b/c/deep.so && echo top > /opt/top.so && echo no > /opt/a/x.txt
FROM scratch
COPY src/**/*.go /go/
COPY **/README.md /readme/
COPY --from=stage /opt/**/*.so /libs/
""", {"src/main.go": "m", "src/p/q/deep.go": "d", "src/p/notes.txt": "n", "docs/README.md": "r"})
    store = tmp_path / "store"
    r = build(store, ctx, "globs:ds")
    assert r.returncode == 0, r.stderr
    root = image_rootfs(store, "globs:ds", tmp_path / "rootfs")
    assert files(root / "go") == ["deep.go", "main.go"]  # each match by its own name
    assert files(root / "readme") == ["README.md"]
    assert files(root / "libs") == ["deep.so", "top.so"]


def test_a_matched_directory_is_copied_whole_and_symlinks_as_their_targets(tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM scratch
COPY sub/* /subdest/
COPY links/l* /alllinks/
""", {"sub/dir1/dir2/foo": "foo", "sub/f": "f", "links/subfile": "subfile-contents", "links/lfile": "lfile"})
    os.symlink("subfile", ctx / "links/l0")
    store = tmp_path / "store"
    r = build(store, ctx, "globs:dirs")
    assert r.returncode == 0, r.stderr
    root = image_rootfs(store, "globs:dirs", tmp_path / "rootfs")
    assert files(root / "subdest") == ["dir2/", "dir2/foo", "f"]  # BuildKit's testCopyWildcards
    assert (root / "alllinks/l0").read_text() == "subfile-contents"
    assert not (root / "alllinks/l0").is_symlink()
    assert (root / "alllinks/lfile").read_text() == "lfile"


def test_twenty_star_sources_build_at_once(tmp_path):
    # a backtracking matcher takes exponential time in the stars (8: 30 s, 10: minutes); the
    # build gets a generous minute and is expected to take about a second
    name = "a" * 60
    # the hostile Dockerfile's sources: "*a" 20 times and "b" (a miss), "*a" 20 times and "*";
    # "aaa...d/ab" ends as the miss does, only the "/" makes it fail: the worst case
    ctx = make_context(tmp_path / "ctx", (HOSTILE / "Dockerfile.copy-twenty-stars").read_text(),
                       {name: "x", f"{name}x/a": "y", f"{name}d/ab": "z"})
    store = tmp_path / "store"
    r = build(store, ctx, "globs:stars", timeout=60)
    assert r.returncode == 0, r.stderr
    root = image_rootfs(store, "globs:stars", tmp_path / "rootfs")
    assert files(root / "d") == ["a", name, "ab"]  # the file, and the contents of the matched directories


def test_a_malformed_pattern_fails_in_one_line(tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY a[ /d/\n", {"a": "a"})
    r = build(tmp_path / "store", ctx, "globs:bad")
    assert (r.returncode, r.stderr) == (1, "Dockerfile:2: COPY failed: a[: syntax error in pattern\n")
