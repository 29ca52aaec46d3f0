"""capstone.engine.sources: the build context's paths resolve exactly as part 6's resolve_in_root
resolves them (symlinks followed inside the context), and a context without symlinks on the
way resolves without loading the runtime at all (what a cached build relies on)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from capstone.engine.sources import ContextSource, clean_source
from part6_runtime import SpecError, resolve_in_root


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
    """What the context resolved to before the fast path: resolve_in_root for every path."""
    try:
        path = resolve_in_root(root, "/".join(parts))
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError, SpecError):
        return None
    rel = os.path.relpath(path, root)
    return ("" if rel == "." else rel), st


@pytest.mark.parametrize("word", [w for w in WORDS if "*" not in w])
def test_context_paths_resolve_as_resolve_in_root_does(ctx, word):
    parts = clean_source(word)
    got = ContextSource(ctx)._resolve(parts)
    want = _oracle(ctx, parts)
    assert (got is None) == (want is None)
    if got is not None:
        assert got[0] == want[0]
        assert (got[1].st_ino, got[1].st_dev, got[1].st_mode) == (want[1].st_ino, want[1].st_dev, want[1].st_mode)


@pytest.mark.parametrize("word", WORDS)
def test_matches_are_the_files_resolve_in_root_names(ctx, word):
    items = ContextSource(ctx).match(word)
    for item in items:
        want = _oracle(ctx, item.rel.split("/") if item.rel else [])
        assert want is not None and want[0] == item.rel
        assert os.path.samefile(item.path, resolve_in_root(ctx, item.rel)) or os.path.islink(item.path)


def test_symlinks_resolve_inside_the_context(ctx):
    source = ContextSource(ctx)
    assert [i.rel for i in source.match("rel-dir/sub/f.txt")] == ["dir/sub/f.txt"]
    assert [i.rel for i in source.match("abs-dir/f.txt")] == ["dir/sub/f.txt"]
    assert [i.rel for i in source.match("escape/file.txt")] == ["file.txt"]
    assert source.match("host-file") == []
    assert source.match("loop-a") == []
    assert source.match("file.txt/below") == []


def test_a_context_without_symlinks_on_the_way_does_not_load_the_runtime(ctx):
    code = (
        "import sys\n"
        "from capstone.engine.sources import ContextSource\n"
        f"s = ContextSource({str(ctx)!r})\n"
        "found = [i.rel for w in ('.', 'dir/sub/f.txt', 'di*/*', 'missing/x') for i in s.match(w)]\n"
        "assert found == ['', 'dir/sub/f.txt', 'dir/sub'], found\n"
        "assert 'part6_runtime' not in sys.modules\n"
        "s.match('rel-dir/sub/f.txt')\n"
        "assert 'part6_runtime' in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
