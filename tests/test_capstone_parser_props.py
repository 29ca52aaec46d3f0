"""Property tests: the parser never fails with anything but its own error."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from capstone.dockerfile import build_stage_graph, dump, parse, parse_syntax_tree
from capstone.errors import DockerfileError

TOKENS = ["FROM", "RUN", "CMD", "COPY", "ADD", "ENV", "ARG", "LABEL", "ONBUILD", "HEALTHCHECK",
          "SHELL", "EXPOSE", "VOLUME", "USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER",
          "ENTRYPOINT", "from", "AS", "NONE", "CMD", "--from=", "--mount=from=", "--chown=",
          "--link", "--interval=", "--retries=", "<<EOF", "<<-'E'", "EOF", "E", "\\", "`", "#",
          "# escape=`", "# syntax=x", "# check=", "[", "]", '"', "'", "=", "$x", "${x:-y}",
          "0", "1", "3<<A", "A", "a", "scratch"]

pieces = st.one_of(st.sampled_from(TOKENS), st.text(max_size=6),
                   st.sampled_from([" ", "\t", "\n", "\r\n", "\\\n", "\n\n", "\n\t"]))
dockerfile_like = st.lists(pieces, max_size=40).map("".join)


def parse_everything(data) -> None:
    """Parse, dump and plan every target; only DockerfileError (one line) may come out."""
    try:
        tree = parse_syntax_tree(data)
        assert dump(tree.nodes).count("\n") == len(tree.nodes)
        df = parse(data)
        graph = build_stage_graph(df)
        for target in [None] + [s.name for s in df.stages if s.name]:
            try:
                graph.plan(target)
            except DockerfileError as exc:
                assert "\n" not in str(exc)
    except DockerfileError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=300, deadline=None)
@given(dockerfile_like)
def test_parser_only_raises_its_own_error_on_dockerfile_like_text(text):
    parse_everything(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parser_only_raises_its_own_error_on_arbitrary_text(text):
    parse_everything(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_parser_only_raises_its_own_error_on_arbitrary_bytes(data):
    parse_everything(data)
