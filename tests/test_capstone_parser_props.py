"""Property tests: the parser never fails with anything but its own error."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from capstone.dockerfile import BuildVariables, build_stage_graph, dump, parse, parse_syntax_tree
from capstone.dockerfile.instructions import Run
from capstone.dockerfile.mounts import MountSyntaxError, parse_mount
from capstone.errors import DockerfileError

TOKENS = ["FROM", "RUN", "CMD", "COPY", "ADD", "ENV", "ARG", "LABEL", "ONBUILD", "HEALTHCHECK",
          "SHELL", "EXPOSE", "VOLUME", "USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER",
          "ENTRYPOINT", "from", "AS", "NONE", "CMD", "--from=", "--mount=from=", "--chown=",
          "--link", "--interval=", "--retries=", "<<EOF", "<<-'E'", "EOF", "E", "\\", "`", "#",
          "# escape=`", "# syntax=x", "# check=", "[", "]", '"', "'", "=", "$x", "${x:-y}",
          "0", "1", "3<<A", "A", "a", "scratch", "--mount=type=", "secret", "cache", "tmpfs",
          ",size=", ",mode=", ",ro", ",required", ",sharing=", "--network=", "--start-interval=",
          "${x:?m}", "${x#", "${x/a/b}", "\ufeff", "#!/bin/sh\n"]

pieces = st.one_of(st.sampled_from(TOKENS), st.text(max_size=6),
                   st.sampled_from([" ", "\t", "\n", "\r\n", "\\\n", "\n\n", "\n\t"]))
dockerfile_like = st.lists(pieces, max_size=40).map("".join)


def expand_everything(df) -> None:
    """Expand every stage as a build would: only DockerfileError may come out."""
    bv = BuildVariables(df, {"x": "1"})
    for stage in df.stages:
        try:
            bv.expand_from(stage)
            scope = bv.stage()
            for ins in stage.instructions:
                ins = scope.apply(ins)
                if isinstance(ins, Run):
                    for m in ins.mounts:
                        try:
                            parse_mount(m)
                        except MountSyntaxError as exc:  # a ParseError in a build
                            assert "\n" not in str(exc)
        except DockerfileError as exc:
            assert "\n" not in str(exc)


def parse_everything(data) -> None:
    """Parse, dump and plan every target; only DockerfileError (one line) may come out."""
    try:
        tree = parse_syntax_tree(data)
        assert dump(tree.nodes).count("\n") == len(tree.nodes)
        df = parse(data)
        expand_everything(df)
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
