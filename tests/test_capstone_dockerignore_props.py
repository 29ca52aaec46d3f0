"""Property tests of .dockerignore matching: only its own error, and plain names behave."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from capstone.context import IgnoreFileError, PatternMatcher, parse_ignore_lines

_PIECES = st.sampled_from(list("ab/*?[]^-!\\. ") + ["**", "**/", "[a-z]", "[^a]", "\\*"])
_PATTERNS = st.lists(st.lists(_PIECES, max_size=8).map("".join), max_size=5)
_SEGMENT = st.text(alphabet="abc.", min_size=1, max_size=3).filter(lambda s: s not in (".", ".."))
_PATHS = st.lists(_SEGMENT, min_size=1, max_size=4).map("/".join)


@settings(max_examples=300, deadline=None)
@given(patterns=_PATTERNS, path=_PATHS)
def test_matcher_raises_only_its_own_error(patterns, path):
    try:
        pm = PatternMatcher(patterns)
    except IgnoreFileError as e:
        assert str(e).startswith(".dockerignore: ")
        return
    assert isinstance(pm.matches(path), bool)
    assert isinstance(pm.may_include_below(path), bool)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=80))
@example(text="/ 0")
@example(text="0\t/")
def test_reading_any_text_gives_clean_patterns(text):
    for p in parse_ignore_lines(text):
        body = p[1:] if p.startswith("!") else p
        # trimmed, then cleaned: blanks before a trailing "/" that Clean drops stay at the end
        # ("0\t/" gives "0\t", as moby's ReadAll)
        assert body == body.rstrip(" \t") or "/" in text
        # moby trims a line, then cleans it and drops a leading "/": blanks that followed
        # that "/" stay at the front (test_a_rooted_pattern_keeps_the_blanks_after_its_slash)
        assert body == body.lstrip(" \t") or "/" in text
        assert p == "/" or not p.lstrip("!").startswith("/") or p.lstrip("!") == "/"


def test_a_rooted_pattern_keeps_the_blanks_after_its_slash():
    """As moby's ignorefile.ReadAll: TrimSpace, then filepath.Clean, then the "/" dropped."""
    assert parse_ignore_lines("/ 0\n! / x\n /a \n") == [" 0", "! x", "a"]


@settings(max_examples=200, deadline=None)
@given(name=_PATHS, path=_PATHS)
def test_a_plain_name_excludes_itself_and_what_is_below(name, path):
    # patterns as the ignore file gives them (cleaned, "!" split off before cleaning)
    pm = PatternMatcher(parse_ignore_lines(name))
    cleaned = pm.patterns[0].text
    expected = path == cleaned or path.startswith(cleaned + "/")
    assert pm.matches(path) is expected
    # and an exception for the same name undoes it
    assert not PatternMatcher(parse_ignore_lines(f"{name}\n!{name}")).matches(path)
