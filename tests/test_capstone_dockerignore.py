""".dockerignore: reading, matching (moby/patternmatcher's tables, ported) and walking."""

from __future__ import annotations

import itertools
import os
import random

import pytest

from capstone.context import (
    IgnoreFileError,
    PatternMatcher,
    find_ignore_file,
    load_ignore,
    parse_ignore_lines,
    read_ignore_file,
    walk_context,
)
from capstone.context.dockerignore import go_clean
from capstone.context.walk import ContextError

# --------------------------------------------------------------------------------------------
# patternmatcher_test.go TestMatches: (pattern, path, kind); "exact" matches the path itself,
# "inexact" only through a parent directory, "fail" not at all.
MATCHES = [
    ("**", "file", "exact"),
    ("**", "file/", "exact"),
    ("**/", "file", "exact"),
    ("**/", "file/", "exact"),
    ("**", "/", "exact"),
    ("**/", "/", "exact"),
    ("**", "dir/file", "exact"),
    ("**/", "dir/file", "exact"),
    ("**", "dir/file/", "exact"),
    ("**/", "dir/file/", "exact"),
    ("**/**", "dir/file", "exact"),
    ("**/**", "dir/file/", "exact"),
    ("dir/**", "dir/file", "exact"),
    ("dir/**", "dir/file/", "exact"),
    ("dir/**", "dir/dir2/file", "exact"),
    ("dir/**", "dir/dir2/file/", "exact"),
    ("**/dir", "dir", "exact"),
    ("**/dir", "dir/file", "inexact"),
    ("**/dir2/*", "dir/dir2/file", "exact"),
    ("**/dir2/*", "dir/dir2/file/", "inexact"),
    ("**/dir2/**", "dir/dir2/dir3/file", "exact"),
    ("**/dir2/**", "dir/dir2/dir3/file/", "exact"),
    ("**file", "file", "exact"),
    ("**file", "dir/file", "exact"),
    ("**/file", "dir/file", "exact"),
    ("**file", "dir/dir/file", "exact"),
    ("**/file", "dir/dir/file", "exact"),
    ("**/file*", "dir/dir/file", "exact"),
    ("**/file*", "dir/dir/file.txt", "exact"),
    ("**/file*txt", "dir/dir/file.txt", "exact"),
    ("**/file*.txt", "dir/dir/file.txt", "exact"),
    ("**/file*.txt*", "dir/dir/file.txt", "exact"),
    ("**/**/*.txt", "dir/dir/file.txt", "exact"),
    ("**/**/*.txt2", "dir/dir/file.txt", "fail"),
    ("**/*.txt", "file.txt", "exact"),
    ("**/**/*.txt", "file.txt", "exact"),
    ("a**/*.txt", "a/file.txt", "exact"),
    ("a**/*.txt", "a/dir/file.txt", "exact"),
    ("a**/*.txt", "a/dir/dir/file.txt", "exact"),
    ("a/*.txt", "a/dir/file.txt", "fail"),
    ("a/*.txt", "a/file.txt", "exact"),
    ("a/*.txt**", "a/file.txt", "exact"),
    ("a[b-d]e", "ae", "fail"),
    ("a[b-d]e", "ace", "exact"),
    ("a[b-d]e", "aae", "fail"),
    ("a[^b-d]e", "aze", "exact"),
    (".*", ".foo", "exact"),
    (".*", "foo", "fail"),
    ("abc.def", "abcdef", "fail"),
    ("abc.def", "abc.def", "exact"),
    ("abc.def", "abcZdef", "fail"),
    ("abc?def", "abcZdef", "exact"),
    ("abc?def", "abcdef", "fail"),
    ("**/foo/bar", "foo/bar", "exact"),
    ("**/foo/bar", "dir/foo/bar", "exact"),
    ("**/foo/bar", "dir/dir2/foo/bar", "exact"),
    ("abc/**", "abc", "fail"),
    ("abc/**", "abc/def", "exact"),
    ("abc/**", "abc/def/ghi", "exact"),
    ("**/.foo", ".foo", "exact"),
    ("**/.foo", "bar.foo", "fail"),
    ("a(b)c/def", "a(b)c/def", "exact"),
    ("a(b)c/def", "a(b)c/xyz", "fail"),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", "exact"),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", "exact"),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", "exact"),
    ("a\\\\", "a\\", "exact"),
    ("a\\*b", "a*b", "exact"),
    # beyond the Go table: parent matching and plain names
    ("docs", "docs/README.md", "inexact"),
    ("docs", "docsx", "fail"),
    ("*.md", "README.md", "exact"),
    ("*.md", "docs/README.md", "fail"),
    ("*/*.md", "docs/README.md", "exact"),
    ("node_modules", "node_modules/a/b/c.js", "inexact"),
    ("**/node_modules", "web/node_modules/a.js", "inexact"),
    ("*", "a/b", "inexact"),
    ("?", "a", "exact"),
    ("?", "ab", "fail"),
    ("a?c", "a/c", "fail"),
    ("a*c", "a/c", "fail"),
    ("[ab]", "b", "exact"),
    ("[^ab]", "c", "exact"),
    ("[^ab]", "a", "fail"),
    ("x[\\]]y", "x]y", "exact"),
    ("x[\\-]y", "x-y", "exact"),
    ("x\\[y", "x[y", "exact"),
    ("x\\?y", "x?y", "exact"),
    ("x\\?y", "xzy", "fail"),
    ("a^b", "a^b", "exact"),
    ("a^b*", "a^bc", "exact"),
    ("./a", "a", "exact"),
    ("a/../b", "b", "exact"),
    ("a//b/", "a/b", "exact"),
    ("한국/*", "한국/어", "exact"),
    ("**/*.log", "logs/2024/app.log", "exact"),
    ("logs/**/*.log", "logs/app.log", "exact"),
    ("logs/**/*.log", "logs/2024/01/app.log", "exact"),
    ("logs/**/*.log", "other/app.log", "fail"),
]


@pytest.mark.parametrize(("pattern", "path", "kind"), MATCHES)
def test_matches_table(pattern, path, kind):
    pm = PatternMatcher([pattern])
    assert pm.matches_exact(path) is (kind == "exact")
    assert pm.matches(path) is (kind != "fail")


# (patterns, path, excluded?)
MULTI = [
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["*"], "fileutils.go", True),
    (["*.go"], "fileutils.go", True),
    (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs/", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    ([], "/any/path/there", False),
    (["docs", "!docs/README.md"], "docs/other.md", True),
    (["*.md", "!README.md", "README.md"], "README.md", True),
    (["*", "!keep", "!keep/**"], "keep/a/b", False),
    (["*", "!keep"], "keep/a/b", False),
    (["a", "!a/b", "a/b/c"], "a/b/c/d", True),
    (["a", "!a/b", "a/b/c"], "a/b/d", False),
    (["**/*.pyc", "!important.pyc"], "important.pyc", False),
    (["**/*.pyc", "!important.pyc"], "lib/important.pyc", True),
    (["  docs  ", "  !docs/README.md"], "docs/README.md", False),
]


@pytest.mark.parametrize(("patterns", "path", "excluded"), MULTI)
def test_multi_pattern_table(patterns, path, excluded):
    assert PatternMatcher(patterns).matches(path) is excluded


# Go's filepath.Match table as patternmatcher runs it (a parent directory match counts)
GO_MATCH = [
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", True),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "α", True),
    ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False),
    ("a*b", "a/b", False),
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "x", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("[\\-x]", "x", True),
    ("[\\-x]", "-", True),
    ("[\\-x]", "a", False),
    ("*x", "xxx", True),
]


@pytest.mark.parametrize(("pattern", "path", "match"), GO_MATCH)
def test_go_filepath_match_table(pattern, path, match):
    assert PatternMatcher([pattern]).matches(path) is match


BAD_PATTERNS = ["[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[", "[z-a]", "[Local-Only]/"]


@pytest.mark.parametrize("pattern", BAD_PATTERNS)
def test_malformed_patterns_are_errors(pattern):
    with pytest.raises(IgnoreFileError) as info:
        PatternMatcher([pattern])
    assert str(info.value) == f".dockerignore: syntax error in pattern {pattern!r}"


def test_bare_exclamation_mark_is_an_error():
    with pytest.raises(IgnoreFileError) as info:
        PatternMatcher(["!"])
    assert str(info.value) == '.dockerignore: illegal exclusion pattern: "!"'


def test_error_names_the_ignore_file():
    with pytest.raises(IgnoreFileError, match=r"^ctx/app\.Dockerfile\.dockerignore: "):
        PatternMatcher(["["], source="ctx/app.Dockerfile.dockerignore")


def test_empty_patterns_are_dropped_and_exclusions_reported():
    pm = PatternMatcher(["docs", "config", ""])
    assert len(pm.patterns) == 2
    assert not pm.exclusions()
    assert PatternMatcher(["docs", "  !docs/README.md"]).exclusions()
    assert PatternMatcher(["docs", "!docs/README.md  "]).exclusions()
    assert not PatternMatcher([])


# how patternmatcher classifies patterns (its TestCompile)
KINDS = [
    ("*", "regex"), ("file*", "regex"), ("*file", "regex"), ("a*/b", "regex"), ("**", "suffix"),
    ("**/**", "regex"), ("dir/**", "prefix"), ("**/dir", "suffix"), ("**/dir2/*", "regex"),
    ("**/dir2/**", "regex"), ("**file", "suffix"), ("**/file*txt", "regex"),
    ("**/**/*.txt", "regex"), ("a[b-d]e", "regex"), (".*", "regex"), ("abc.def", "exact"),
    ("abc?def", "regex"), ("**/foo/bar", "suffix"), ("a(b)c/def", "exact"), ("a.|)$(}+{bc", "exact"),
]


@pytest.mark.parametrize(("pattern", "kind"), KINDS)
def test_pattern_kinds(pattern, kind):
    assert PatternMatcher([pattern]).patterns[0].kind == kind


# --------------------------------------------------------------------------------------------
# reading the file (ignorefile_test.go and the rules around it)
def test_read_all_normalises_like_moby():
    content = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! "
    assert parse_ignore_lines(content) == [
        "test1", "test2", "a/file/here", "lastfile", "!inverted/abs/path", "!", "!",
    ]


READ_CASES = [
    ("\ufeffa\nb", ["a", "b"]),
    ("a\n\ufeffb", ["a", "\ufeffb"]),
    ("\ufeff# comment\nx", ["x"]),
    ("  # not a comment", ["# not a comment"]),
    ("#comment\n#\n", []),
    ("a\r\nb\r\n", ["a", "b"]),
    ("  spaced  \n\t\ttabs\t", ["spaced", "tabs"]),
    ("a/./b/../c/", ["a/c"]),
    ("//x//", ["x"]),
    ("/", ["/"]),
    ("!/x", ["!x"]),
    ("!  y ", ["!y"]),
    ("..", [".."]),
    ("../x", ["../x"]),
    ("./", ["."]),
    ("", []),
    ("\n\n\n", []),
    ("a # b", ["a # b"]),
]


@pytest.mark.parametrize(("text", "patterns"), READ_CASES)
def test_reading_rules(text, patterns):
    assert parse_ignore_lines(text) == patterns


def test_read_ignore_file(tmp_path):
    f = tmp_path / ".dockerignore"
    f.write_bytes(b"\xef\xbb\xbf*.log\n!keep.log\n")
    assert read_ignore_file(f) == ["*.log", "!keep.log"]


def test_read_missing_ignore_file_is_an_error(tmp_path):
    with pytest.raises(IgnoreFileError, match="cannot read"):
        read_ignore_file(tmp_path / "nope")


GO_CLEAN = [
    ("", "."), (".", "."), ("a/b", "a/b"), ("a//b", "a/b"), ("a/./b", "a/b"), ("a/../b", "b"),
    ("a/..", "."), ("../a", "../a"), ("/../a", "/a"), ("//a", "/a"), ("a/b/", "a/b"), ("/", "/"),
    ("../../x/..", "../.."),
]


@pytest.mark.parametrize(("path", "cleaned"), GO_CLEAN)
def test_go_clean(path, cleaned):
    assert go_clean(path) == cleaned


# --------------------------------------------------------------------------------------------
# which ignore file applies
def test_dockerfile_specific_ignore_file_wins(tmp_path):
    (tmp_path / ".dockerignore").write_text("*.txt\n")
    sub = tmp_path / "build"
    sub.mkdir()
    dockerfile = sub / "app.Dockerfile"
    dockerfile.write_text("FROM scratch\n")
    assert find_ignore_file(tmp_path, dockerfile) == tmp_path / ".dockerignore"
    (sub / "app.Dockerfile.dockerignore").write_text("*.md\n")
    assert find_ignore_file(tmp_path, dockerfile) == sub / "app.Dockerfile.dockerignore"
    matcher = load_ignore(tmp_path, dockerfile)
    assert matcher.matches("a.md") and not matcher.matches("a.txt")
    assert matcher.source == str(sub / "app.Dockerfile.dockerignore")


def test_no_ignore_file_excludes_nothing(tmp_path):
    assert find_ignore_file(tmp_path) is None
    assert not load_ignore(tmp_path).matches("anything")


# --------------------------------------------------------------------------------------------
# walking the context
def _tree(root, paths):
    for p in paths:
        full = root / p
        if p.endswith("/"):
            full.mkdir(parents=True, exist_ok=True)
        else:
            full.parent.mkdir(parents=True, exist_ok=True)
            full.write_text(p)


def test_walk_yields_sorted_paths_dirs_first(tmp_path):
    _tree(tmp_path, ["b.txt", "a/z", "a/b/c", "a.txt", "A", "empty/"])
    assert list(walk_context(tmp_path)) == ["A", "a", "a/b", "a/b/c", "a/z", "a.txt", "b.txt", "empty"]


def test_walk_skips_excluded_and_reincludes_exceptions(tmp_path):
    _tree(tmp_path, ["docs/README.md", "docs/other.md", "docs/sub/x", "src/main.c", "build/out.o", ".git/HEAD"])
    pm = PatternMatcher(parse_ignore_lines(".git\nbuild\ndocs\n!docs/README.md\n"))
    assert list(walk_context(tmp_path, pm)) == ["docs", "docs/README.md", "src", "src/main.c"]


def test_walk_reincludes_through_wildcard_exceptions(tmp_path):
    _tree(tmp_path, ["a/b/keep.txt", "a/b/drop.bin", "a/c/keep.txt", "top.txt"])
    pm = PatternMatcher(["**", "!**/*.txt"])
    assert list(walk_context(tmp_path, pm)) == ["a", "a/b", "a/b/keep.txt", "a/c", "a/c/keep.txt", "top.txt"]


def test_walk_does_not_follow_symlinks(tmp_path):
    _tree(tmp_path, ["real/file"])
    os.symlink("real", tmp_path / "link")
    os.symlink("/etc", tmp_path / "etc")
    assert list(walk_context(tmp_path)) == ["etc", "link", "real", "real/file"]


def test_walk_prunes_excluded_dirs_without_exceptions(tmp_path):
    _tree(tmp_path, ["node_modules/x/y", "app.js"])
    # an unreadable excluded directory proves it is never opened
    (tmp_path / "node_modules" / "x").chmod(0)
    try:
        pm = PatternMatcher(["node_modules", "!app.js"])
        assert not pm.may_include_below("node_modules")
        assert list(walk_context(tmp_path, pm)) == ["app.js"]
    finally:
        (tmp_path / "node_modules" / "x").chmod(0o755)


def test_walk_of_a_missing_context_is_an_error(tmp_path):
    with pytest.raises(ContextError, match="is not a directory"):
        list(walk_context(tmp_path / "missing"))


MAY_INCLUDE = [
    (["a", "!a/b"], "a", True),
    (["a", "!a/b"], "x", False),
    (["a", "!a/b"], "a/b", False),
    (["a", "!a/*/c"], "a/q", True),
    (["a", "!b/*/c"], "a", False),
    (["a", "!**/c"], "a", True),
    (["a", "!a/**"], "a", True),
    (["a", "!a/[bc]"], "a", True),
    (["a"], "a", False),
]


@pytest.mark.parametrize(("patterns", "directory", "may"), MAY_INCLUDE)
def test_may_include_below(patterns, directory, may):
    assert PatternMatcher(patterns).may_include_below(directory) is may


def _verdict_without_pruning(pm: PatternMatcher, path: str) -> bool:
    """Each directory from the top asked in turn, none skipped: what the walker answers."""
    excluded, hits = False, None
    parts = path.split("/")
    for k in range(1, len(parts) + 1):
        excluded, hits = pm.matches_with_parent("/".join(parts[:k]), hits)
    return excluded


def test_walk_agrees_with_matching_every_path(tmp_path):
    # pruning must never change the answer: compare with asking for each path on its own,
    # down from the top (patternmatcher's MatchesUsingParentResults, as fsutil's walker asks)
    rng = random.Random(7)
    names = ["a", "b", "c.txt", "d.md"]
    paths = []
    for depth in range(1, 4):
        for combo in itertools.product(names[:2], repeat=depth - 1):
            for leaf in names[2:]:
                paths.append("/".join(combo + (leaf,)))
    _tree(tmp_path, paths)
    pool = ["a", "b", "*.md", "**/*.txt", "!a/b", "!**/c.txt", "!b/*/d.md", "a/a", "!a", "**/b", "!*"]
    for _ in range(60):
        patterns = rng.sample(pool, rng.randint(1, 5))
        pm = PatternMatcher(patterns)
        walked = list(walk_context(tmp_path, pm))
        everything = list(walk_context(tmp_path))
        kept_files = [p for p in everything if (tmp_path / p).is_file() and not _verdict_without_pruning(pm, p)]
        assert [p for p in walked if (tmp_path / p).is_file()] == kept_files, patterns
        # every yielded directory is either kept or holds a kept file, and every kept one is yielded
        kept_dirs = [p for p in everything if (tmp_path / p).is_dir()
                     and (not _verdict_without_pruning(pm, p) or any(f.startswith(p + "/") for f in kept_files))]
        assert [p for p in walked if (tmp_path / p).is_dir()] == kept_dirs, patterns


@pytest.mark.parametrize(("patterns", "path", "excluded"), MULTI)
def test_matching_with_parent_results_agrees(patterns, path, excluded):
    pm = PatternMatcher(patterns)
    hits = None
    parts = path.strip("/").split("/")
    for k in range(1, len(parts)):
        _, hits = pm.matches_with_parent("/".join(parts[:k]), hits)
    assert pm.matches_with_parent("/".join(parts), hits)[0] is excluded
