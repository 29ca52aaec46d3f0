"""The shell-word lexer, table by table.

The first tables are BuildKit's own (``frontend/dockerfile/shell``: ``envVarTest``,
``wordsTest`` and ``TestProcessWithMatches``), ported case by case; the later ones cover the
pattern forms (``#``, ``%``, ``/``), the escape directive, the raw modes and every error message.
"""

from __future__ import annotations

import pytest

from capstone.dockerfile.dump import go_quote
from capstone.dockerfile.shell import Expansion, Lexer, env_from_list
from capstone.errors import ExpansionError

# --------------------------------------------------------------------------------------------
# envVarTest: "source | expected" with PWD=/home SHELL=bash KOREAN=한국어 NULL= (empty).
# "error" means the word must be rejected. Rows are BuildKit's (the Unix ones).
ENV_VAR_TEST = r"""
hello                    |     hello
he'll'o                  |     hello
he'llo                   |     error
he\'llo                  |     he'llo
he\\'llo                 |     error
abc\tdef                 |     abctdef
"abc\tdef"               |     abc\tdef
"abc\\tdef"              |     abc\tdef
'abc\tdef'               |     abc\tdef
hello\                   |     hello
hello\\                  |     hello\
"hello                   |     error
"hello\"                 |     error
"hel'lo"                 |     hel'lo
'hello                   |     error
'hello\'                 |     hello\
'hello\there'            |     hello\there
'hello\\there'           |     hello\\there
"''"                     |     ''
$.                       |     $.
he$1x                    |     hex
he$.x                    |     he$.x
he$pwd.                  |     he.
he$PWD                   |     he/home
he\$PWD                  |     he$PWD
he\\$PWD                 |     he\/home
"he\$PWD"                |     he$PWD
"he\\$PWD"               |     he\/home
\${}                     |     ${}
\${}aaa                  |     ${}aaa
he\${}                   |     he${}
he\${}xx                 |     he${}xx
${}                      |     error
${}aaa                   |     error
he${}                    |     error
he${}xx                  |     error
he${hi}                  |     he
he${hi}xx                |     hexx
he${PWD}                 |     he/home
he${.}                   |     error
he${XXX:-000}xx          |     he000xx
he${PWD:-000}xx          |     he/homexx
he${XXX:-$PWD}xx         |     he/homexx
he${XXX:-${PWD:-yyy}}xx  |     he/homexx
he${XXX:-${YYY:-yyy}}xx  |     heyyyxx
he${XXX:YYY}             |     error
he${XXX:+${PWD}}xx       |     hexx
he${PWD:+${XXX}}xx       |     hexx
he${PWD:+${SHELL}}xx     |     hebashxx
he${XXX:+000}xx          |     hexx
he${PWD:+000}xx          |     he000xx
'he${XX}'                |     he${XX}
"he${PWD}"               |     he/home
"he'$PWD'"               |     he'/home'
"$PWD"                   |     /home
'$PWD'                   |     $PWD
'\$PWD'                  |     \$PWD
'"hello"'                |     "hello"
he\$PWD                  |     he$PWD
"he\$PWD"                |     he$PWD
'he\$PWD'                |     he\$PWD
he${PWD                  |     error
he${PWD:=000}xx          |     error
he${PWD:+${PWD}:}xx      |     he/home:xx
he${XXX:-\$PWD:}xx       |     he$PWD:xx
he${XXX:-\${PWD}z}xx     |     he${PWDz}xx
안녕하세요                 |     안녕하세요
안'녕'하세요               |     안녕하세요
안'녕하세요                |     error
안녕\'하세요               |     안녕'하세요
안\\'녕하세요              |     error
안녕\t하세요               |     안녕t하세요
"안녕\t하세요"             |     안녕\t하세요
'안녕\t하세요              |     error
안녕하세요\                |     안녕하세요
안녕하세요\\               |     안녕하세요\
"안녕하세요                |     error
"안녕하세요\"              |     error
"안녕'하세요"              |     안녕'하세요
'안녕하세요                |     error
'안녕하세요\'              |     안녕하세요\
안녕$1x                    |     안녕x
안녕$.x                    |     안녕$.x
안녕$pwd.                  |     안녕.
안녕$PWD                   |     안녕/home
안녕\$PWD                  |     안녕$PWD
안녕\\$PWD                 |     안녕\/home
안녕\${}                   |     안녕${}
안녕\${}xx                 |     안녕${}xx
안녕${}                    |     error
안녕${}xx                  |     error
안녕${hi}                  |     안녕
안녕${hi}xx                |     안녕xx
안녕${PWD}                 |     안녕/home
안녕${.}                   |     error
안녕${XXX:-000}xx          |     안녕000xx
안녕${PWD:-000}xx          |     안녕/homexx
안녕${XXX:-$PWD}xx         |     안녕/homexx
안녕${XXX:-${PWD:-yyy}}xx  |     안녕/homexx
안녕${XXX:-${YYY:-yyy}}xx  |     안녕yyyxx
안녕${XXX:YYY}             |     error
안녕${XXX:+${PWD}}xx       |     안녕xx
안녕${PWD:+${XXX}}xx       |     안녕xx
안녕${PWD:+${SHELL}}xx     |     안녕bashxx
안녕${XXX:+000}xx          |     안녕xx
안녕${PWD:+000}xx          |     안녕000xx
'안녕${XX}'                |     안녕${XX}
"안녕${PWD}"               |     안녕/home
"안녕'$PWD'"               |     안녕'/home'
'"안녕"'                   |     "안녕"
안녕\$PWD                  |     안녕$PWD
"안녕\$PWD"                |     안녕$PWD
'안녕\$PWD'                |     안녕\$PWD
안녕${PWD                  |     error
안녕${PWD:=000}xx          |     error
안녕${PWD:+${PWD}:}xx      |     안녕/home:xx
안녕${XXX:-\$PWD:}xx       |     안녕$PWD:xx
안녕${XXX:-\${PWD}z}xx     |     안녕${PWDz}xx
$KOREAN                    |     한국어
안녕$KOREAN                |     안녕한국어
${{aaa}                   |     error
${aaa}}                   |     }
${aaa                     |     error
${{aaa:-bbb}              |     error
${aaa:-bbb}}              |     bbb}
${aaa:-bbb                |     error
${aaa:-bbb}               |     bbb
${aaa:-${bbb:-ccc}}       |     ccc
${aaa:-bbb ${foo}         |     error
${aaa:-bbb {foo}          |     bbb {foo
${:}                      |     error
${:-bbb}                  |     error
${:+bbb}                  |     error
$1                        |
${1}                      |
${1:+bbb}                 |
${1:-bbb}                 |     bbb
$2                        |
${2}                      |
${2:+bbb}                 |
${2:-bbb}                 |     bbb
$3                        |
${3}                      |
${3:+bbb}                 |
${3:-bbb}                 |     bbb
$4                        |
${4}                      |
${4:+bbb}                 |
${4:-bbb}                 |     bbb
$5                        |
${5}                      |
${5:+bbb}                 |
${5:-bbb}                 |     bbb
$6                        |
${6}                      |
${6:+bbb}                 |
${6:-bbb}                 |     bbb
$7                        |
${7}                      |
${7:+bbb}                 |
${7:-bbb}                 |     bbb
$8                        |
${8}                      |
${8:+bbb}                 |
${8:-bbb}                 |     bbb
$9                        |
${9}                      |
${9:+bbb}                 |
${9:-bbb}                 |     bbb
$999                      |
${999}                    |
${999:+bbb}               |
${999:-bbb}               |     bbb
$999aaa                   |     aaa
${999}aaa                 |     aaa
${999:+bbb}aaa            |     aaa
${999:-bbb}aaa            |     bbbaaa
$001                      |
${001}                    |
${001:+bbb}               |
${001:-bbb}               |     bbb
$001aaa                   |     aaa
${001}aaa                 |     aaa
${001:+bbb}aaa            |     aaa
${001:-bbb}aaa            |     bbbaaa
$@                        |
${@}                      |
${@:+bbb}                 |
${@:-bbb}                 |     bbb
$@@@                      |     @@
$@aaa                     |     aaa
${@}aaa                   |     aaa
${@:+bbb}aaa              |     aaa
${@:-bbb}aaa              |     bbbaaa
$*                        |
${*}                      |
${*:+bbb}                 |
${*:-bbb}                 |     bbb
$#                        |
${#}                      |
${#:+bbb}                 |
${#:-bbb}                 |     bbb
$?                        |
${?}                      |
${?:+bbb}                 |
${?:-bbb}                 |     bbb
$-                        |
${-}                      |
${-:+bbb}                 |
${-:-bbb}                 |     bbb
$$                        |
${$}                      |
${$:+bbb}                 |
${$:-bbb}                 |     bbb
$!                        |
${!}                      |
${!:+bbb}                 |
${!:-bbb}                 |     bbb
$0                        |
${0}                      |
${0:+bbb}                 |
${0:-bbb}                 |     bbb
${NULL:-default}          |     default
${NULL-default}           |
${NULL:+alt}              |
${NULL+alt}               |     alt
${NULL?}                  |
${NULL:?}                 |     error
${UNSET?}                 |     error
${PWD:?}                  |     /home
${PWD?}                   |     /home
"${PWD:-x y}"             |     /home
"${XXX:-x y}"             |     x y
${XXX:-'x}'}              |     x}
${XXX:-"a b"}             |     a b
${XXX-"${PWD}"}           |     /home
${XXX+"${PWD}"}           |
\                         |
\\                        |     \
\a\b\c                    |     abc
"\a\b\c"                  |     \a\b\c
"\""                      |     "
"\\"                      |     \
"a\"b"                    |     a"b
''                        |
""                        |
$                         |     $
a$                        |     a$
"$"                       |     $
$ PWD                     |     $ PWD
${PWD}${SHELL}            |     /homebash
$PWD$SHELL                |     /homebash
$PWD_x                    |
${PWD}_x                  |     /home_x
$PWD-x                    |     /home-x
$KOREAN한                  |
${KOREAN}한                |     한국어한
"${KOREAN}"                |     한국어
"unterminated ${PWD       |     error
${PWD:                    |     error
${PWD:-                   |     error
${PWD-x                   |     error
${PWD/                    |     error
${PWD//a                  |     error
${PWD/a/b                 |     error
${PWD#                    |     error
${PWD%%                   |     error
"${PWD"                   |     error
"${PWD:-"                 |     error
"""


def _table(text: str) -> list[tuple[str, str]]:
    rows = []
    for line in text.strip("\n").splitlines():
        source, _, expected = line.partition("|")
        rows.append((source.strip(), expected.strip()))
    return rows


ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


@pytest.mark.parametrize(("source", "expected"), _table(ENV_VAR_TEST))
def test_env_var_table(source, expected):
    lex = Lexer("\\")
    if expected == "error":
        with pytest.raises(ExpansionError):
            lex.process_word(source, ENV)
    else:
        assert lex.process_word(source, ENV) == expected
        # the same through a "K=V" list, as BuildKit's BuildEnvs reads it
        assert lex.process_word(source, [f"{k}={v}" for k, v in ENV.items()]) == expected


# --------------------------------------------------------------------------------------------
# wordsTest: ProcessWords splits after expansion; "ENV k=v" lines add to the environment.
WORDS_TEST = [
    ("hello", [], ["hello"]),
    ("hello${hi}bye", [], ["hellobye"]),
    ("hello${hi}bye", ["hi=hi"], ["hellohibye"]),
    ("hello${space}bye", ["space=abc  def"], ["helloabc", "defbye"]),
    ('hello"${space}"bye', ["space=abc  def"], ["helloabc  defbye"]),
    ('hello "${space}"bye', ["space=abc  def"], ["hello", "abc  defbye"]),
    ("hello${leading}def", ["leading=  ab c"], ["hello", "ab", "cdef"]),
    ('hello"${leading}" def', ["leading=  ab c"], ["hello  ab c", "def"]),
    ('hello"${leading}"', ["leading=  ab c"], ["hello  ab c"]),
    ("hello${leading}", ["leading=  ab c"], ["hello", "ab", "c"]),
    ("hello${trailing}", ["trailing=ab c   "], ["helloab", "c"]),
    ("hello${trailing}d", ["trailing=ab c   "], ["helloab", "c", "d"]),
    ('hello"${trailing}"d', ["trailing=ab c   "], ["helloab c   d"]),
    ('hel"lo${trailing}"', ["trailing=ab c   "], ["helloab c   "]),
    ('hello" there  "', [], ["hello there  "]),
    ("hello there     ", [], ["hello", "there"]),
    ("hello\\ there", [], ["hello there"]),
    ('hello\\" there', [], ['hello"', "there"]),
    ("  leading and   trailing  ", [], ["leading", "and", "trailing"]),
    ("a '' b", [], ["a", "b"]),
    ('a "" b', [], ["a", "b"]),
    ("'a b' c", [], ["a b", "c"]),
    ("$empty", ["empty="], []),
    ("x${empty}y", ["empty="], ["xy"]),
    ("a\tb\nc", [], ["a", "b", "c"]),
    ("${v:-one two}", [], ["one", "two"]),
    ("hello${v:-a b}", [], ["helloa", "b"]),
    ('"${v:-one two}"', [], ["one two"]),
    ("$list", ["list=/a /b /c"], ["/a", "/b", "/c"]),
    ("x\\ $list", ["list=1 2"], ["x 1", "2"]),
]


@pytest.mark.parametrize(("source", "env", "expected"), WORDS_TEST)
def test_words_table(source, env, expected):
    lex = Lexer()
    assert lex.process_words(source, env) == expected
    assert lex.process_words(source, env_from_list(env)) == expected


def test_words_of_an_unterminated_quote_are_an_error():
    with pytest.raises(ExpansionError, match="matching double-quote"):
        Lexer().process_words('hello" there', [])


# --------------------------------------------------------------------------------------------
# TestProcessWithMatches: the result plus which variables were found / not found.
MATCHES = [
    ("x", {"DUMMY": "dummy"}, "x", set(), set()),
    ("x ${UNUSED}", {"DUMMY": "dummy"}, "x ", set(), {"UNUSED"}),
    ("x ${FOO}", {"FOO": "y"}, "x y", {"FOO"}, set()),
    ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx  ccc", {"FOO", "BAR"}, {"BAZ"}),
    ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx bbb ccc", {"FOO", "BAR"}, {"BAZ"}),
    ("${FOO:-}", {"FOO": "xxx", "BAR": ""}, "xxx", {"FOO"}, set()),
    ("${FOO:-}", {}, "", set(), {"FOO"}),
    ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa bbb ", {"FOO", "BAR"}, {"BAZ"}),
    ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa  ", {"FOO", "BAR"}, {"BAZ"}),
    ("${FOO?aaa}", {"FOO": "xxx", "BAR": ""}, "xxx", {"FOO"}, set()),
    ("${BAR?bbb}", {"FOO": "xxx", "BAR": ""}, "", {"BAR"}, set()),
    ("${FOO:?aaa}", {"FOO": "xxx", "BAR": ""}, "xxx", {"FOO"}, set()),
    ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", {"FOO": "()[]{}^$.*?|\\x"}, "x", {"FOO"}, set()),
    ("${FOO%%\\**}", {"FOO": "xx**"}, "xx", {"FOO"}, set()),
    ("${FOO#*x*y}", {"FOO": "xxyy"}, "y", {"FOO"}, set()),
    ("${FOO#*}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": "x"}, "xyy", {"FOO", "BAR"}, set()),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy", {"FOO", "BAR"}, set()),
    ("${FOO#}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO##*x}", {"FOO": "xxyy"}, "yy", {"FOO"}, set()),
    ("${FOO##}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO#?\\?}", {"FOO": "???y"}, "?y", {"FOO"}, set()),
    ("${ABC:-.}${FOO%x}${ABC:-.}", {"FOO": "xxyy"}, ".xxyy.", {"FOO"}, {"ABC"}),
    ("${FOO%%\\**\\*}", {"FOO": "a***yy*"}, "a", {"FOO"}, set()),
    ("${FOO%}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO%%$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy", {"FOO", "BAR"}, set()),
    ("${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}", {"FOO": "/foo*/*/*.txt", "NEEDLE": "\\*/"},
     "/foo.*/*.txt - /foo..*.txt", {"FOO", "NEEDLE"}, set()),
    ("${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}", {"FOO": "/tmp/tmp/bar.txt", "NEEDLE": "/tmp"},
     "/tmp/bar.txt - /bar.txt", {"FOO", "NEEDLE"}, set()),
    ("${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
     {"FOO": "/a/foo/b/c.txt", "NEEDLE": "/?/", "REPLACEMENT": "/"},
     "/foo/b/c.txt - /foo/c.txt", {"FOO", "NEEDLE", "REPLACEMENT"}, set()),
    ("${FOO/$NEEDLE/$REPLACEMENT}", {"FOO": "http://google.de", "NEEDLE": "http://", "REPLACEMENT": "https://"},
     "https://google.de", {"FOO", "NEEDLE", "REPLACEMENT"}, set()),
    ("${FOO//\\//\\/}", {"FOO": "/tmp/foo.txt"}, "\\/tmp\\/foo.txt", {"FOO"}, set()),
    ("${FOO/$BAR/ww}", {"FOO": "xxyy", "BAR": ""}, "wwxxyy", {"FOO", "BAR"}, set()),
    ("${FOO///}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO///}", {}, "", set(), {"FOO"}),
    # the release-file naming of BuildKit's own releases
    ("something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
     {"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "arm", "TARGETVARIANT": "v7"},
     "something-v1.2.3.linux-arm-v7.tar.gz", {"VERSION", "TARGETOS", "TARGETARCH", "TARGETVARIANT"}, set()),
    ("something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
     {"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "amd64", "TARGETVARIANT": ""},
     "something-v1.2.3.linux-amd64.tar.gz", {"VERSION", "TARGETOS", "TARGETARCH", "TARGETVARIANT"}, set()),
    ("'$QUOTED' \\$ESCAPED", {"QUOTED": "q"}, "$QUOTED $ESCAPED", set(), set()),
    ("${A:-$B}", {"A": "a"}, "a", {"A"}, {"B"}),
]


@pytest.mark.parametrize(("source", "env", "expected", "matched", "unmatched"), MATCHES)
def test_process_with_matches_table(source, env, expected, matched, unmatched):
    result = Lexer().process_word_with_matches(source, env)
    assert isinstance(result, Expansion)
    assert result.result == expected
    assert result.matched == matched
    assert result.unmatched == unmatched


MATCH_ERRORS = [
    ("${BAZ?ccc}", {"FOO": "xxx"}),
    ("${BAR:?bbb}", {"BAR": ""}),
    ("${BAZ:?ccc}", {}),
    ("${BAZ:?}", {}),
    ("${FOO=aaa}", {"FOO": "xxx"}),
    ("${FOO=:aaa}", {"FOO": "xxx"}),
    ("${FOO=}", {}),
    ("${FOO//ww}", {"FOO": "xxyy"}),
    ("${FOO//}", {"FOO": "xxyy"}),
]


@pytest.mark.parametrize(("source", "env"), MATCH_ERRORS)
def test_process_with_matches_errors(source, env):
    with pytest.raises(ExpansionError):
        Lexer().process_word_with_matches(source, env)


# --------------------------------------------------------------------------------------------
# the pattern forms, beyond BuildKit's table
PATTERNS = [
    # prefix removal: shortest (#) and longest (##)
    ("${P#*/}", {"P": "a/b/c"}, "b/c"),
    ("${P##*/}", {"P": "a/b/c"}, "c"),
    ("${P#a}", {"P": "aab"}, "ab"),
    ("${P##a*}", {"P": "aab"}, ""),
    ("${P#x}", {"P": "aab"}, "aab"),
    ("${P#?}", {"P": "abc"}, "bc"),
    ("${P##??}", {"P": "abc"}, "c"),
    ("${P#*}", {"P": ""}, ""),
    ("${U#*}", {}, ""),
    ("${P#.}", {"P": ".x"}, "x"),
    ("${P#[a]}", {"P": "[a]b"}, "b"),
    ("${P#$Q}", {"P": "v1.2.3", "Q": "v"}, "1.2.3"),
    # suffix removal: shortest (%) and longest (%%)
    ("${P%/*}", {"P": "a/b/c"}, "a/b"),
    ("${P%%/*}", {"P": "a/b/c"}, "a"),
    ("${P%.tar.gz}", {"P": "x.tar.gz"}, "x"),
    ("${P%.*}", {"P": "x.tar.gz"}, "x.tar"),
    ("${P%%.*}", {"P": "x.tar.gz"}, "x"),
    ("${P%?}", {"P": "abc"}, "ab"),
    ("${P%%?}", {"P": "abc"}, "ab"),
    ("${P%y}", {"P": "abc"}, "abc"),
    ("${P%\\*}", {"P": "a*"}, "a"),
    ("${P%\\?}", {"P": "a?"}, "a"),
    ("${P%\\\\}", {"P": "a\\"}, "a"),
    ("${P%%\\}}", {"P": "a}"}, "a"),
    ("${P%한}", {"P": "한국한"}, "한국"),
    # replacement: first (/) and all (//)
    ("${P/a/b}", {"P": "aaa"}, "baa"),
    ("${P//a/b}", {"P": "aaa"}, "bbb"),
    ("${P/a*/b}", {"P": "xaaa"}, "xb"),
    ("${P//?/-}", {"P": "abc"}, "---"),
    ("${P/x/y}", {"P": "abc"}, "abc"),
    ("${P//}", {"P": "abc"}, "error"),
    ("${P/b/}", {"P": "abc"}, "ac"),
    ("${P//b/}", {"P": "abcb"}, "ac"),
    ("${P/\\//:}", {"P": "a/b/c"}, "a:b/c"),
    ("${P//\\//:}", {"P": "a/b/c"}, "a:b:c"),
    ("${P//./_}", {"P": "1.2.3"}, "1_2_3"),
    ("${P/$Q/$R}", {"P": "hello world", "Q": "world", "R": "there"}, "hello there"),
    ("${U/a/b}", {}, ""),
    ("${P//x*/-}", {"P": "xxy"}, "-"),
    # Go's ReplaceAll: an empty match right after a match is not replaced again
    ("${P//$E/-}", {"P": "ab", "E": ""}, "-a-b-"),
    # ...and the replacement of // is a Go template: $$ is $, $0 the match
    ("${P//b/$R}", {"P": "abc", "R": "<$0>"}, "a<b>c"),
    ("${P//b/$R}", {"P": "abc", "R": "$$"}, "a$c"),
    ("${P//b/$R}", {"P": "abc", "R": "$1"}, "ac"),
    ("${P//b/$R}", {"P": "abc", "R": "${0}!"}, "ab!c"),
    ("${P//b/$R}", {"P": "abc", "R": "$"}, "a$c"),
    ("${P/b/$R}", {"P": "abc", "R": "$0"}, "a$0c"),
    # quotes inside a pattern are removed, so a quoted * is still a wildcard
    ('${P#"*"}', {"P": "abc"}, "abc"),
    ("${P#'a'}", {"P": "abc"}, "bc"),
]


@pytest.mark.parametrize(("source", "env", "expected"), PATTERNS)
def test_pattern_forms(source, env, expected):
    if expected == "error":
        with pytest.raises(ExpansionError):
            Lexer().process_word(source, env)
    else:
        assert Lexer().process_word(source, env) == expected


# --------------------------------------------------------------------------------------------
# the escape directive: with escape=` the backslash is an ordinary character
BACKTICK = [
    ("C:\\dir\\file", "C:\\dir\\file"),
    ("`$PWD", "$PWD"),
    ("\\$PWD", "\\/home"),
    ("a` b", "a b"),
    ('"a`"b"', 'a"b'),
    ('"a\\"', "a\\"),
    ('"``"', "`"),
    ('"`x"', "`x"),
    ("``", "`"),
    ("a`", "a"),
    ("'`$PWD'", "`$PWD"),
    ("${XXX:-`$PWD}", "$PWD"),
    # patterns only know the backslash: the backtick stays in the pattern as a character
    ("${PWD#`/}", "/home"),
    ("${P#`a}", "b"),
]


@pytest.mark.parametrize(("source", "expected"), BACKTICK)
def test_backtick_escape(source, expected):
    assert Lexer("`").process_word(source, {**ENV, "P": "`ab"}) == expected


def test_backtick_escape_words():
    assert Lexer("`").process_words("C:\\a b` c", {}) == ["C:\\a", "b c"]


def test_escape_must_be_one_character():
    with pytest.raises(ValueError):
        Lexer("")


# --------------------------------------------------------------------------------------------
# the raw modes BuildKit uses for heredocs and for RUN --mount-less expansion
def test_raw_quotes_keep_the_quotes():
    lex = Lexer(raw_quotes=True)
    assert lex.process_word("'a $b' \"c $PWD\"", ENV) == "'a $b' \"c /home\""


def test_raw_escapes_keep_the_escape_character():
    lex = Lexer(raw_escapes=True)
    assert lex.process_word("a\\ b \\$PWD", ENV) == "a\\ b \\$PWD"
    assert lex.process_word('"x\\"y"', ENV) == 'x\\"y'


def test_skip_process_quotes_treats_quotes_as_characters():
    lex = Lexer(skip_process_quotes=True)
    assert lex.process_word("'$PWD' \"$SHELL\"", ENV) == "'/home' \"bash\""


def test_skip_unset_env_leaves_unset_references_alone():
    lex = Lexer(skip_unset_env=True)
    assert lex.process_word("$PWD $NOPE ${NOPE} ${NOPE:-x} ${NOPE/a/b}", ENV) == "/home $NOPE ${NOPE} ${NOPE:-x} ${NOPE/a/b}"


def test_leading_byte_order_mark_is_skipped():
    assert Lexer().process_word("\ufeffhello", {}) == "hello"
    assert Lexer().process_word("a\ufeff", {}) == "a\ufeff"


def test_one_instruction_sees_one_snapshot():
    # the caller passes the same mapping for every word of an instruction; expansion never
    # writes to it, so ENV a=bye b=$a reads the old a
    env = {"a": "hi"}
    lex = Lexer()
    values = [lex.process_word(w, env) for w in ("bye", "$a")]
    assert values == ["bye", "hi"]
    assert env == {"a": "hi"}


# --------------------------------------------------------------------------------------------
# every error message, exactly
ERRORS = [
    ("he'llo", "unexpected end of statement while looking for matching single-quote"),
    ('"hello', "unexpected end of statement while looking for matching double-quote"),
    ("${", "syntax error: missing '}'"),
    ("${PWD", "syntax error: missing '}'"),
    ("${PWD:-x", "syntax error: missing '}'"),
    ("${PWD:-${X}", "syntax error: missing '}'"),
    ("${}", "syntax error: bad substitution"),
    ("${:}", "syntax error: bad substitution"),
    ("${{a}", "syntax error: bad substitution"),
    ("${a=b}", "unsupported modifier (=) in substitution"),
    ("${a.b}", "unsupported modifier (.) in substitution"),
    ("${a:=b}", "unsupported modifier (:=) in substitution"),
    ("${a:b}", "unsupported modifier (:b) in substitution"),
    ("${a:%}", "unsupported modifier (:%) in substitution"),
    ("${a:#x}", "unsupported modifier (:#) in substitution"),
    ("${a:%%x}", "unsupported modifier (:%) in substitution"),
    ("${#a}", "unsupported modifier (a) in substitution"),
    ("${a/x}", "syntax error: missing '/' in ${}"),
    ("${a/x/y", "syntax error: missing '}'"),
    ("${UNSET?}", "UNSET: is not allowed to be unset"),
    ("${UNSET:?}", "UNSET: is not allowed to be unset"),
    ("${NULL:?}", "NULL: is not allowed to be empty"),
    ("${UNSET?custom $PWD}", "UNSET: custom /home"),
    ("${NULL:?must be set}", "NULL: must be set"),
    ("${PWD#\\x}", "invalid pattern (\\x) in substitution: invalid escape '\\x'"),
    ("${PWD%a\\x}", "invalid pattern (\\xa) in substitution: invalid escape '\\x'"),
    ("${PWD/\\x/y}", "invalid pattern (\\x) in substitution: invalid escape '\\x'"),
    ("${PWD#\\\\\\}", "syntax error: missing '}'"),
    ("${PWD:-'x}", "syntax error: missing '}'"),
]


@pytest.mark.parametrize(("source", "message"), ERRORS)
def test_error_messages(source, message):
    with pytest.raises(ExpansionError) as info:
        Lexer().process_word(source, ENV)
    assert info.value.message == f"failed to process {go_quote(source)}: {message}"


def test_error_message_quotes_the_word_like_go():
    with pytest.raises(ExpansionError) as info:
        Lexer().process_word('a"\tb\n${', {})
    assert info.value.message.startswith('failed to process "a\\"\\tb\\n${": ')


def test_error_carries_no_line_until_located():
    with pytest.raises(ExpansionError) as info:
        Lexer().process_word("${", {})
    err = info.value
    assert err.line is None
    assert str(err.located("Dockerfile", 3)).startswith("Dockerfile:3: failed to process")


GO_QUOTES = [
    ("", '""'),
    ("plain", '"plain"'),
    ('a"b', '"a\\"b"'),
    ("a\\b", '"a\\\\b"'),
    ("\x00\x07\x1b", '"\\x00\\a\\x1b"'),
    ("tab\there", '"tab\\there"'),
    ("한국어", '"한국어"'),
    ("\u200b", '"\\u200b"'),
    ("\U000e0001", '"\\U000e0001"'),
    ("\x7f", '"\\x7f"'),
    ("\udcff", '"\\xff"'),
]


@pytest.mark.parametrize(("text", "quoted"), GO_QUOTES)
def test_go_quote(text, quoted):
    assert go_quote(text) == quoted
