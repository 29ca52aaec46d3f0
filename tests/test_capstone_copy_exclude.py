"""COPY/ADD --exclude matched as BuildKit's copy matches it (capstone.engine.excludes): paths
below each source directory, with .dockerignore's rules (a directory excluded excludes its
contents, the last pattern that matches decides, ``!`` re-includes even below an excluded
directory, which is then copied just before what it keeps, ``**``), each path matched with its
parent's results (patternmatcher's MatchesUsingParentResults); symlinks are entries matched by
their own path, never followed. And a source's path through symlinks in the context is one
the context has: every link on it, not only the first, must not be excluded by .dockerignore.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from capstone.context import PatternMatcher
from capstone.dockerfile import parse
from capstone.engine.copystep import CopyError, plan_copy
from capstone.engine.rootfs import RootfsView
from capstone.engine.sources import ContextSource


def make_ctx(root: Path) -> Path:
    """data/{a.txt, b.txt, b/c.txt, b/d/e, b/link -> ../a.txt, lnk -> b, n/m/x.txt}, and links
    to data: alias -> data, hop -> alias."""
    for name in ("data/a.txt", "data/b.txt", "data/b/c.txt", "data/b/d/e", "data/n/m/x.txt"):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(name)
    os.symlink("../a.txt", root / "data/b/link")
    os.symlink("b", root / "data/lnk")
    os.symlink("data", root / "alias")
    os.symlink("alias", root / "hop")
    return root


def dests(tmp: Path, line: str, ignore: list[str] | None = None) -> list[str]:
    ins = next(i for i in parse(f"FROM scratch\n{line}\n".encode()).instructions if i.keyword in ("COPY", "ADD"))
    staging = tmp / f"staging-{len(list(tmp.glob('staging-*')))}"
    staging.mkdir()
    plan = plan_copy(ins, ContextSource(tmp / "ctx", PatternMatcher(ignore) if ignore else None), RootfsView([]),
                     "/", digests=None, staging=staging / "h", made_mtime=1_700_000_000.0, spill=staging / "plan")
    return [e.dest for e in plan]


ALL = ["x", "x/a.txt", "x/b", "x/b/c.txt", "x/b/d", "x/b/d/e", "x/b/link", "x/b.txt", "x/lnk", "x/n", "x/n/m",
       "x/n/m/x.txt"]


@pytest.fixture
def tmp(tmp_path) -> Path:
    make_ctx(tmp_path / "ctx")
    return tmp_path


@pytest.mark.parametrize(("excludes", "gone"), [
    # a directory excluded excludes its contents
    (["b"], ["x/b", "x/b/c.txt", "x/b/d", "x/b/d/e", "x/b/link"]),
    # patterns are paths below the source: *.txt at its top only, **/ at any depth
    (["*.txt"], ["x/a.txt", "x/b.txt"]),
    (["**/*.txt"], ["x/a.txt", "x/b.txt", "x/b/c.txt", "x/n/m/x.txt"]),
    (["n/**"], ["x/n/m", "x/n/m/x.txt"]),
    # the last pattern that matches decides
    (["*.txt", "!a.txt"], ["x/b.txt"]),
    # a symlink is matched by its own path, never by where it points, nothing through it
    (["b/link"], ["x/b/link"]),
    (["lnk/c.txt", "a.txt"], ["x/a.txt"]),
    (["lnk"], ["x/lnk"]),
])
def test_exclude_patterns(tmp, excludes, gone):
    flags = " ".join(f"--exclude={p}" for p in excludes)
    assert dests(tmp, f"COPY {flags} data /x/") == [d for d in ALL if d not in gone]


def test_a_path_re_included_below_an_excluded_directory_brings_that_directory(tmp):
    assert dests(tmp, "COPY --exclude=b --exclude=!b/d/e data /x/") == [
        "x", "x/a.txt", "x/b", "x/b/d", "x/b/d/e", "x/b.txt", "x/lnk", "x/n", "x/n/m", "x/n/m/x.txt"]
    # nothing re-included below it: the directory is not copied at all
    assert "x/b" not in dests(tmp, "COPY --exclude=b --exclude=!n/m data /x/")


def test_each_path_is_matched_with_its_parent_s_results(tmp):
    # b, !b/d, b: patternmatcher skips the last pattern for b (it cannot change b's answer),
    # so b/d and what is below it do not inherit it: kept (each path matched alone, as the
    # .dockerignore of a whole context would be, excludes b/d/e by its parent b)
    assert dests(tmp, "COPY --exclude=b --exclude=!b/d --exclude=b data /x/") == [
        "x", "x/a.txt", "x/b", "x/b/d", "x/b/d/e", "x/b.txt", "x/lnk", "x/n", "x/n/m", "x/n/m/x.txt"]


def test_a_source_through_a_symlink_is_matched_as_the_word_names_it(tmp):
    # the source's contents are matched below it, wherever its path leads
    assert dests(tmp, "COPY --exclude=b alias/ /x/") == [d for d in ALL if not d.startswith("x/b/") and d != "x/b"]
    # the source itself: by the path the word names (alias), not the one it leads to (data)
    assert dests(tmp, "COPY --exclude=alias alias data/a.txt /x/") == ["x", "x/a.txt"]
    assert dests(tmp, "COPY --exclude=data alias /x/") == ALL
    assert dests(tmp, "COPY --exclude=h* a* h* /x/")[:2] == ["x", "x/a.txt"]  # alias's contents; hop left out
    assert dests(tmp, "COPY --exclude=h* h* /x/") == []


def test_parents_with_excludes_below_the_pivot(tmp):
    assert dests(tmp, "COPY --parents --exclude=data/b --exclude=!data/b/d ./data/**/*.txt data/b /p/") == [
        "p", "p/data", "p/data/a.txt", "p/data/b.txt", "p/data/n", "p/data/n/m", "p/data/n/m/x.txt", "p/data/b",
        "p/data/b/d", "p/data/b/d/e"]


def test_every_link_on_a_source_s_path_must_be_in_the_context(tmp):
    """.dockerignore excludes a link the path goes through after another one: BuildKit never
    sent it, so the path leads nowhere (before, only the first link was checked)."""
    ctx = tmp / "ctx"
    os.mkdir(ctx / "hidden")
    os.symlink("../data", ctx / "hidden/l2")
    os.symlink("hidden/l2", ctx / "l1")
    os.symlink("l3", ctx / "l0")
    os.symlink("data", ctx / "l3")
    assert dests(tmp, "COPY l1/a.txt /x/") == ["x", "x/a.txt"]  # nothing excluded: it is there
    assert dests(tmp, "COPY l0/a.txt hop/b.txt /x/", ["hidden"]) == ["x", "x/a.txt", "x/b.txt"]
    with pytest.raises(CopyError, match="excluded by .dockerignore"):
        dests(tmp, "COPY l1/a.txt /x/", ["hidden"])
    with pytest.raises(CopyError, match="excluded by .dockerignore"):
        dests(tmp, "COPY hop/a.txt /x/", ["alias"])  # the second link of hop -> alias -> data
