"""The patterns of ``${v#p}``, ``${v%p}`` and ``${v/p/r}`` (``capstone.dockerfile.shellpattern``):
the same results as the leftmost-first regular expression search BuildKit does (compared with
Python's ``re`` on random patterns and values, newlines included), without its backtracking:
the hostile Dockerfile of ``tests/fixtures/hostile/`` (patterns of many stars over values that
almost match, which took years) builds, in a child process with a deadline."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from capstone.dockerfile import Lexer
from capstone.dockerfile.shellpattern import ONE, STAR, ShellPattern

REPO = Path(__file__).resolve().parent.parent


def tokens(pattern: str) -> list:
    return [STAR if c == "*" else ONE if c == "?" else c for c in pattern]


def regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern:
    star = ".*" if greedy else ".*?"
    return re.compile(("^" if anchored else "") + "".join(
        star if c == "*" else "." if c == "?" else re.escape(c) for c in pattern))


patterns = st.text(alphabet="ab*?\n", max_size=7)
values = st.text(alphabet="ab\n", max_size=14)


@settings(max_examples=1000, deadline=None)
@given(patterns, values)
def test_prefixes_are_what_the_regular_expression_finds(pattern, value):
    sp = ShellPattern(tokens(pattern))
    for greedy in (False, True):
        m = regex(pattern, greedy, True).search(value)
        assert sp.prefix(value, longest=greedy) == (m.end() if m else None)


@settings(max_examples=1000, deadline=None)
@given(patterns, values)
def test_searches_are_what_the_regular_expression_finds(pattern, value):
    sp = ShellPattern(tokens(pattern))
    rx = regex(pattern, True, False)
    for pos in range(len(value) + 1):
        m = rx.search(value, pos)
        assert sp.search(value, pos) == (m.span() if m else None)


def test_many_stars_over_a_long_value_that_almost_matches():
    lex = Lexer()
    env = {"A": "a" * 100_000, "L": "ab\n" * 30_000}
    assert lex.process_word("${A#*a*a*a*a*a*a*a*a*a*b}", env) == env["A"]
    assert lex.process_word("${A##a*a*a*a*a*a*a*a}", env) == ""
    assert lex.process_word("${A%a*a*a*a*a*a*b}", env) == env["A"]
    assert lex.process_word("${L/a*a*b*a/x}", env) == env["L"]
    assert lex.process_word("${L//a?/x}", env) == "x\n" * 30_000


def test_a_pattern_with_a_newline_spans_lines():
    """``*`` stops at a newline (Go's ``.``): ``${V##*\n}`` removes the first line only."""
    lex = Lexer()
    env = {"V": "one\ntwo\nthree"}
    assert lex.process_word("${V#*\n}", env) == "two\nthree"
    assert lex.process_word("${V##*\n}", env) == "two\nthree"
    assert lex.process_word("${V#*\n*\n}", env) == "three"
    assert lex.process_word("${V%\n*}", env) == "one\ntwo"
    assert lex.process_word("${V/o\nt/-}", env) == "one\ntw-hree"
    assert lex.process_word("${V#*}", env) == env["V"] and lex.process_word("${V##*}", env) == "\ntwo\nthree"


def test_the_hostile_dockerfile_builds(tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    shutil.copy(REPO / "tests/fixtures/hostile/Dockerfile.pattern-backtracking", ctx / "Dockerfile")
    r = subprocess.run([sys.executable, "-m", "capstone", "--store", str(tmp_path / "s"), "build", "-q",
                        "-t", "patterns:1", str(ctx)], cwd=REPO, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    from capstone.store import Store

    labels = Store.open(tmp_path / "s").load("patterns:1").config.config.labels
    a = "a" * 4000
    assert labels["prefix"] == a and labels["longest"] == "" and labels["suffix"] == a
    assert labels["replace"] == a and labels["all"] == "ab" * 2000 and labels["count"] == "-" * 2000
