"""capstone.context.pathmatch: the one path matcher of a build, checked against Go's
``filepath.Match`` table, against the regular expressions moby/patternmatcher builds (on inputs
small enough for a backtracking engine), and on patterns that make a backtracking engine take
exponential time (they must finish at once: the bound is asserted on behaviour, with a
generous timeout; the timings are in ``tests/bench_pathmatch.py``)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from capstone.context import PathPattern, PatternSyntaxError, has_wildcards

# Go's path/filepath matchTests (match_test.go), Match itself: no parent matching
GO_MATCH = [
    ("abc", "abc", True), ("*", "abc", True), ("*c", "abc", True), ("a*", "a", True), ("a*", "abc", True),
    ("a*", "ab/c", False), ("a*/b", "abc/b", True), ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True), ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False), ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True), ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True), ("ab[b-d]", "abc", True), ("ab[e-g]", "abc", False), ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False), ("ab[^e-g]", "abc", True), ("a\\*b", "a*b", True), ("a\\*b", "ab", False),
    ("a?b", "a☺b", True), ("a[^a]b", "a☺b", True), ("a???b", "a☺b", False), ("a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "α", True), ("*[a-ζ]", "A", False), ("a?b", "a/b", False), ("a*b", "a/b", False),
    ("[\\]a]", "]", True), ("[\\-]", "-", True), ("[x\\-]", "x", True), ("[x\\-]", "-", True),
    ("[x\\-]", "z", False), ("[\\-x]", "x", True), ("[\\-x]", "-", True), ("[\\-x]", "a", False),
    ("*x", "xxx", True),
]
GO_BAD = ["[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[", "a/b["]


@pytest.mark.parametrize(("pattern", "path", "match"), GO_MATCH)
def test_go_filepath_match_table(pattern, path, match):
    assert PathPattern(pattern).match(path) is match


@pytest.mark.parametrize("pattern", GO_BAD + ["[z-a]"])
def test_malformed_patterns_are_errors(pattern):
    with pytest.raises(PatternSyntaxError):
        PathPattern(pattern)


DOUBLE_STAR = [
    ("**/*.go", "a.go", True), ("**/*.go", "x/y/a.go", True), ("src/**/*.go", "src/a.go", True),
    ("src/**/*.go", "src/p/q/a.go", True), ("src/**/*.go", "srcx/a.go", False), ("src/**", "src/a/b", True),
    ("src/**", "src", False), ("a**b", "ab", True), ("a**b", "ax/yb", False), ("a**b", "ax/y/b", True),
    ("**", "anything/at/all", True), ("a/**/b/**/c", "a/b/c", True), ("a/**/b/**/c", "a/x/b/y/z/c", True),
    ("a/**/b", "a/x\n/b", False),  # the "." of patternmatcher's (.*/)? stops at a newline
    ("a/*/b", "a/x\ny/b", True),  # a star does not
]


@pytest.mark.parametrize(("pattern", "path", "match"), DOUBLE_STAR)
def test_double_star_is_any_number_of_directories(pattern, path, match):
    assert PathPattern(pattern).match(path) is match


def test_wildcards_are_unescaped_star_question_mark_or_bracket():
    assert has_wildcards("a*") and has_wildcards("x/[ab]") and has_wildcards("?")
    assert not has_wildcards("plain/path") and not has_wildcards("a\\*b") and not has_wildcards("a\\[")
    assert has_wildcards("a\\\\*")  # an escaped backslash, then a star


# -- the regular expression patternmatcher compiles, as the oracle ---------------------------


def _patternmatcher_regex(text: str) -> str:
    """moby/patternmatcher's ``compile`` (with classes kept literal, as this project documents),
    on the patterns the strategies below make."""
    out, i = "^", 0
    while i < len(text):
        ch = text[i]
        i += 1
        if ch == "*":
            if text[i:i + 1] == "*":
                i += 1
                if text[i:i + 1] == "/":
                    i += 1
                out += ".*" if i >= len(text) else "(.*/)?"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "\\":
            out += re.escape(text[i])
            i += 1
        elif ch == "[":
            j = text.index("]", i + 1)
            out += "[" + ("^" if text[i] == "^" else "") + re.escape(text[i + (text[i] == "^"):j]) + "]"
            i = j + 1
        else:
            out += re.escape(ch)
    return out + r"\Z"


_PIECES = st.sampled_from(["a", "b", "/", "*", "?", "**", "**/", "[ab]", "[^a]", "\\*", "."])
_NAMES = st.text(alphabet="ab/*.\n", max_size=10)


@settings(max_examples=600, deadline=None)
@given(pattern=st.lists(_PIECES, min_size=1, max_size=6).map("".join), path=_NAMES)
def test_agrees_with_patternmatchers_regular_expression(pattern, path):
    p = PathPattern(pattern)
    if p.kind != "regex":
        return  # exact, prefix and suffix are compared as strings, as patternmatcher does
    assert p.match(path) is bool(re.match(_patternmatcher_regex(pattern), path))


@settings(max_examples=400, deadline=None)
@given(pattern=st.lists(_PIECES, min_size=1, max_size=6).map("".join),
       top=st.text(alphabet="ab.", min_size=1, max_size=3), rest=_NAMES)
@example(pattern="a/", top="a", rest="")  # an exact pattern with a trailing slash (found by hypothesis)
def test_may_match_below_never_hides_a_match(pattern, top, rest):
    p = PathPattern(pattern)
    if p.match(f"{top}/{rest}"):
        assert p.may_match_below(top)


# -- no backtracking ------------------------------------------------------------------------


def test_twenty_star_patterns_finish_at_once():
    # each of these takes a backtracking engine exponential time in the number of stars; the
    # child gets a minute (the measured cost is milliseconds: tests/bench_pathmatch.py)
    code = textwrap.dedent("""
        from capstone.context import PathPattern, PatternMatcher
        # the names pass the plain-text checks at both ends, so the automaton does the work
        for pattern, path, expected in [
            ("*a" * 20 + "b", "a" * 60 + "/ab", False),  # a star cannot cross the "/"
            ("a*" * 20 + "b", "a" * 19 + "c" * 40 + "b", False),
            ("*a*" * 20 + "*", "a" * 80, True),
            ("**a" * 20 + "/b", "a" * 20 + "/b", True),
            ("**a" * 20 + "/b", "a/" * 19 + "a" * 60 + "/b", False),
            ("[ab]*" * 20 + "c", "ab" * 9 + "a" + "d" * 40 + "c", False),
        ]:
            assert PathPattern(pattern).match(path) is expected, pattern
            assert PatternMatcher([pattern]).matches(path + "/deeper") is expected, pattern
        print("done")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, "done\n"), r.stderr
