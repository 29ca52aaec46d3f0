"""BuildKit's parser test files: Dockerfile text in, ``Node.Dump()`` text out.

The cases live as files under ``tests/fixtures/buildkit-parser/`` in BuildKit's own layout
(``testfiles/NAME/{Dockerfile,result}``, ``testfiles-negative/NAME/Dockerfile``); its README
says where each comes from and what later BuildKit changed in the published results.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from capstone.dockerfile import dump, parse_syntax_tree
from capstone.errors import ParseError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "buildkit-parser"
CASES = sorted(p.name for p in (FIXTURES / "testfiles").iterdir())
NEGATIVE = sorted(p.name for p in (FIXTURES / "testfiles-negative").iterdir())


def dockerfile(name: str, kind: str = "testfiles") -> bytes:
    return (FIXTURES / kind / name / "Dockerfile").read_bytes()


def result(name: str) -> str:
    return (FIXTURES / "testfiles" / name / "result").read_text()


def test_every_case_has_a_dockerfile_and_a_result():
    assert len(CASES) == 33 and len(NEGATIVE) == 3
    for name in CASES:
        assert (FIXTURES / "testfiles" / name / "result").is_file(), name


@pytest.mark.parametrize("name", CASES)
def test_buildkit_testfile_dump_matches_result(name):
    assert dump(parse_syntax_tree(dockerfile(name)).nodes) == result(name)


def test_escape_nonewline_is_an_invalid_escape_token_for_the_current_regexp():
    with pytest.raises(ParseError) as e:
        parse_syntax_tree(dockerfile("escape-nonewline", "testfiles-negative"))
    assert e.value.message == "invalid escape token '``' does not match ` or \\"
    assert e.value.line == 1


@pytest.mark.parametrize("name", NEGATIVE)
def test_negative_testfiles_are_errors(name):
    with pytest.raises(ParseError):
        parse_syntax_tree(dockerfile(name, "testfiles-negative"))


def test_dump_is_the_same_from_bytes_and_crlf_line_endings():
    text = dockerfile("docker").replace(b"\n", b"\r\n")
    assert dump(parse_syntax_tree(text).nodes) == result("docker")


def test_empty_continuation_line_gives_a_warning_with_the_joined_line():
    tree = parse_syntax_tree(dockerfile("empty-line-after-escape"))
    assert [w.rule for w in tree.warnings] == ["NoEmptyContinuation"]
    assert "RUN foo bar" in tree.warnings[0].message
