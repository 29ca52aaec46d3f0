"""The stage graph: names, FROM/COPY --from/--mount from= edges, --target, skipping, errors."""

from __future__ import annotations

import pytest

from capstone.dockerfile import build_stage_graph, parse
from capstone.errors import StageError

MULTI = """\
ARG BASE=alpine
FROM $BASE AS Base
RUN echo base
FROM golang AS build
COPY --from=base /etc/os-release /
RUN --mount=type=cache,target=/root/.cache --mount=type=bind,from=tools,source=/t,target=/t make
FROM busybox AS tools
FROM scratch AS unused
COPY --from=nginx:latest /etc/nginx /nginx
FROM base AS final
COPY --from=1 /out /app
COPY --from=BUILD /out2 /app2
"""


def graph(text, expand=None):
    df = parse(text)
    return build_stage_graph(df, expand) if expand else build_stage_graph(df)


def test_stage_names_are_case_insensitive_and_unnamed_stages_get_stage_n():
    g = graph(MULTI + "FROM final\n")
    assert [n.display_name for n in g.nodes] == ["base", "build", "tools", "unused", "final",
                                                  "stage-5"]
    assert g.find("BASE") == 0 and g.find("Final") == 4 and g.find("nope") is None


def test_references_resolve_to_stages_or_images():
    g = graph(MULTI)
    build = g.nodes[1]
    assert [(r.kind, r.text, r.stage) for r in build.refs] == [
        ("from", "golang", None), ("copy", "base", 0), ("mount", "tools", 2)]
    final = g.nodes[4]
    assert final.base_stage == 0
    assert [(r.kind, r.stage, r.line) for r in final.refs] == [
        ("from", 0, 10), ("copy", 1, 11), ("copy", 1, 12)]
    assert g.nodes[3].refs[1].stage is None  # nginx:latest is an image


def test_target_builds_only_needed_stages_dependencies_first():
    g = graph(MULTI)
    plan = g.plan()
    assert plan.target == 4
    assert plan.order == (0, 2, 1, 4)
    assert plan.skipped == (3,)
    assert g.plan("build").order == (0, 2, 1)
    assert g.plan("TOOLS").order == (2,)
    assert g.plan("unused").order == (3,)


def test_forward_reference_by_name_is_allowed_and_ordered():
    g = graph("FROM alpine AS a\nCOPY --from=b /x /x\nFROM alpine AS b\n")
    assert g.plan("a").order == (1, 0)


def test_global_arg_expansion_hook_resolves_stage_names_in_from():
    seen = []

    def expand(word, stage, instruction):
        seen.append((word, stage.index if stage else None, instruction.keyword))
        return word.replace("$BASE", "builder").replace("${SRC}", "builder")

    text = ("ARG BASE=builder\nFROM alpine AS builder\nFROM $BASE\n"
            "COPY --from=${SRC} /a /b\nRUN --mount=from=builder true\n")
    g = graph(text, expand)
    assert g.nodes[1].base_stage == 0 and g.nodes[1].base == "builder"
    assert [r.stage for r in g.nodes[1].refs] == [0, 0, 0]
    assert ("$BASE", None, "FROM") in seen and ("${SRC}", 1, "COPY") in seen
    assert ("builder", 1, "RUN") in seen


def test_scratch_is_never_a_stage():
    g = graph("FROM alpine AS scratchy\nFROM scratch\n")
    assert g.nodes[1].base_stage is None


@pytest.mark.parametrize("text,line,message", [
    ("FROM alpine AS a\nFROM a AS b\nCOPY --from=c /x /x\nFROM b AS c\n", 3,
     "circular dependency detected on stage: c"),
    ("FROM a AS a\n", 1, "circular dependency detected on stage: a"),
    ("FROM alpine AS a\nCOPY --from=a /x /y\n", 2, "circular dependency detected on stage: a"),
    ("FROM alpine\nCOPY --from=0 /x /y\n", 2,
     "invalid from flag value 0: refers to current or future build stage"),
    ("FROM alpine\nFROM alpine\nCOPY --from=5 /x /y\n", 3,
     "invalid from flag value 5: refers to current or future build stage"),
    ("FROM alpine\nFROM alpine\nCOPY --from=-1 /x /y\n", 3, "invalid stage index -1"),
    ("FROM alpine AS x\nFROM busybox AS X\n", 2, 'duplicate stage name "x" (first defined on line 1)'),
])
def test_graph_errors_name_the_line(text, line, message):
    with pytest.raises(StageError) as e:
        graph(text).plan()
    assert message in e.value.message and e.value.line == line
    assert str(e.value).startswith(f"Dockerfile:{line}: ")


def test_unknown_target_is_an_error():
    with pytest.raises(StageError, match='target stage "nope" could not be found'):
        graph(MULTI).plan("nope")


def test_cycle_in_a_skipped_stage_does_not_stop_another_target():
    g = graph("FROM alpine AS ok\nFROM x AS x\n")
    assert g.plan("ok").order == (0,)
    with pytest.raises(StageError):
        g.plan()


def test_blank_base_after_expansion_is_an_error():
    with pytest.raises(StageError, match=r"base name \(\$EMPTY\) should not be blank"):
        graph("ARG EMPTY\nFROM $EMPTY\n", lambda w, s, i: w.replace("$EMPTY", ""))


def test_dockerfile_groups_meta_args_and_stages():
    df = parse(MULTI)
    assert [a.args[0].name for a in df.meta_args] == ["BASE"]
    assert [len(s.instructions) for s in df.stages] == [1, 2, 0, 1, 2]
    assert df.stages[1].location.start == 4 and df.stages[1].location.end == 6
