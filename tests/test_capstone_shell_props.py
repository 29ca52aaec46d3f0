"""Property tests of the shell-word lexer: it never fails with anything but its own error."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from capstone.dockerfile.shell import Lexer
from capstone.errors import ExpansionError

# text rich in the characters the lexer cares about, plus anything else
_SPECIAL = st.sampled_from(list("${}:-+?#%/*\\'\"` \t\n") + ["${", "${a", ":-", "##", "%%", "//", "\\*"])
_WORDS = st.lists(st.one_of(_SPECIAL, st.text(max_size=4)), max_size=30).map("".join)
_ENV = st.dictionaries(st.sampled_from(["a", "b", "PWD", "1", "@", "x_y"]), st.text(max_size=6), max_size=4)
_PLAIN = st.text(alphabet=st.characters(blacklist_characters="$'\"\\`\ufeff"), max_size=40)


@settings(max_examples=400, deadline=None)
@given(word=_WORDS, env=_ENV, escape=st.sampled_from(["\\", "`"]))
def test_lexer_raises_only_its_own_error(word, env, escape):
    lex = Lexer(escape)
    try:
        result = lex.process_word_with_matches(word, env)
    except ExpansionError as e:
        assert e.message.startswith("failed to process ")
        return
    assert isinstance(result.result, str)
    assert result.matched <= set(env)
    assert not (result.matched & result.unmatched)
    assert all(w for w in result.words)


@settings(max_examples=200, deadline=None)
@given(word=st.text(max_size=60), env=_ENV)
def test_lexer_on_any_text(word, env):
    for lex in (Lexer(), Lexer("`"), Lexer(raw_quotes=True, raw_escapes=True), Lexer(skip_unset_env=True)):
        try:
            lex.process_word(word, env)
            lex.process_words(word, env)
        except ExpansionError:
            pass


@settings(max_examples=200, deadline=None)
@given(word=_PLAIN)
def test_plain_text_is_unchanged(word):
    assert Lexer().process_word(word, {}) == word


@settings(max_examples=200, deadline=None)
@given(word=_PLAIN)
def test_plain_text_splits_like_fields(word):
    # without quotes, escapes and $ the words are Go's strings.Fields of the text
    spaces = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
    expected = "".join(" " if c in spaces else c for c in word).split(" ")
    assert Lexer().process_words(word, {}) == [w for w in expected if w]


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=20))
def test_a_quoted_variable_is_its_value(value):
    assert Lexer().process_word('"$v"', {"v": value}) == value
    assert Lexer().process_word("${v}", {"v": value}) == value
    assert Lexer().process_word("${v:-x}", {"v": value}) == (value or "x")


@settings(max_examples=200, deadline=None)
@given(word=_PLAIN)
def test_fast_path_agrees_with_the_lexer(word):
    # an empty quoted string changes nothing but forces the full lexer
    lex = Lexer()
    assert lex.process_word("''" + word, {}) == lex.process_word(word, {})
    assert lex.process_words("''" + word, {}) == lex.process_words(word, {})
