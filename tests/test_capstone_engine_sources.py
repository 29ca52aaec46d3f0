"""capstone.engine.sources: the build context's paths resolve exactly as part 4's RootDir
resolves them (symlinks followed inside the context), and a context without symlinks on the
way resolves without loading part 4 or the runtime at all (what a cached build relies on)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from capstone.engine.sources import ContextSource, clean_source
from part4_tar import RootDir, UnsafePathError


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    (root / "dir/sub").mkdir(parents=True)
    (root / "dir/sub/f.txt").write_text("f\n")
    (root / "file.txt").write_text("x\n")
    os.symlink("dir", root / "rel-dir")               # a directory through a relative link
    os.symlink("/dir/sub", root / "abs-dir")          # absolute: / is the context
    os.symlink("../../../..", root / "escape")        # cannot climb out
    os.symlink("/etc/passwd", root / "host-file")     # the context's /etc/passwd: missing
    os.symlink("loop-b", root / "loop-a")
    os.symlink("loop-a", root / "loop-b")
    os.symlink("file.txt", root / "file-link")
    os.symlink("missing", root / "dangling")
    return root


WORDS = [
    ".", "/", "file.txt", "dir", "dir/sub/f.txt", "dir/sub/", "/dir/../dir/sub/f.txt",
    "rel-dir/sub/f.txt", "abs-dir/f.txt", "abs-dir", "escape", "escape/file.txt",
    "escape/dir/sub", "host-file", "loop-a", "loop-a/x", "file-link", "dangling",
    "missing", "missing/deeper", "file.txt/below", "dir/sub/f.txt/below", "d*", "*/sub",
    "rel-dir/*/f.txt", "escape/*.txt",
]


def _oracle(root: Path, parts: list[str]):
    """What the context resolves to without the fast path: part 4's RootDir for every path."""
    try:
        with RootDir(root) as rd:
            rel = rd.resolve("/".join(parts))
        st = os.lstat(root / rel if rel else root)
    except (FileNotFoundError, NotADirectoryError, UnsafePathError):
        return None
    return rel, st


@pytest.mark.parametrize("word", [w for w in WORDS if "*" not in w])
def test_context_paths_resolve_as_rootdir_does(ctx, word):
    parts = clean_source(word)
    got = ContextSource(ctx)._resolve(parts)
    want = _oracle(ctx, parts)
    assert (got is None) == (want is None)
    if got is not None:
        assert got[0] == want[0]
        assert (got[1].st_ino, got[1].st_dev, got[1].st_mode) == (want[1].st_ino, want[1].st_dev, want[1].st_mode)


@pytest.mark.parametrize("word", WORDS)
def test_matches_are_the_files_rootdir_names(ctx, word):
    items = ContextSource(ctx).match(word)
    for item in items:
        want = _oracle(ctx, item.rel.split("/") if item.rel else [])
        assert want is not None and want[0] == item.rel
        assert os.path.samefile(item.path, ctx / want[0] if want[0] else ctx) or os.path.islink(item.path)


def test_symlinks_resolve_inside_the_context(ctx):
    source = ContextSource(ctx)
    assert [i.rel for i in source.match("rel-dir/sub/f.txt")] == ["dir/sub/f.txt"]
    assert [i.rel for i in source.match("abs-dir/f.txt")] == ["dir/sub/f.txt"]
    assert [i.rel for i in source.match("escape/file.txt")] == ["file.txt"]
    assert source.match("host-file") == []
    assert source.match("loop-a") == []
    assert source.match("file.txt/below") == []


def test_a_context_without_symlinks_on_the_way_resolves_by_lstat_alone(ctx, monkeypatch):
    import part4_tar

    opened = []

    class Counting(part4_tar.RootDir):
        def __init__(self, *a, **kw):
            opened.append(a)
            super().__init__(*a, **kw)

    monkeypatch.setattr(part4_tar, "RootDir", Counting)
    s = ContextSource(ctx)
    found = [i.rel for w in (".", "dir/sub/f.txt", "di*/*", "missing/x") for i in s.match(w)]
    assert found == ["", "dir/sub/f.txt", "dir/sub"]
    assert opened == []
    assert [i.rel for i in s.match("rel-dir/sub/f.txt")] == ["dir/sub/f.txt"]
    assert len(opened) == 1
