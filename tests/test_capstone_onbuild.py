"""ONBUILD as Docker runs it: the base image's triggers run at the start of the child stage, as
if written right after its FROM (with the child's build context, variables and build args),
and are cleared from the child's image so that grandchildren do not run them again. A stage of
the same Dockerfile as the base counts as its image would. Built for real (RUN steps in part 6
containers)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support import image_rootfs, make_context, quiet_build

from capstone.errors import DockerfileError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="RUN steps need root (namespaces, overlay mounts)")

BASE = """\
FROM capstone/busybox
ONBUILD ARG GREETING=hello
ONBUILD RUN echo "$GREETING from the trigger" > /trigger.txt
ONBUILD COPY app.txt /app/
ONBUILD ENV BUILT_BY=trigger
LABEL role=base
"""


@pytest.fixture(scope="module")
def base(store, tmp_path_factory) -> str:
    ctx = make_context(tmp_path_factory.mktemp("base") / "ctx", BASE, {"app.txt": "not the base's\n"})
    quiet_build(store, ctx, tags=["onbuild/base:1"])
    return "onbuild/base:1"


def test_the_base_keeps_its_triggers_and_does_not_run_them(store, base, tmp_path):
    cfg = store.load(base).config.config
    assert cfg.on_build == ('ARG GREETING=hello', 'RUN echo "$GREETING from the trigger" > /trigger.txt',
                            "COPY app.txt /app/", "ENV BUILT_BY=trigger")
    root = image_rootfs(store, base, tmp_path / "root")
    assert not (root / "trigger.txt").exists() and not (root / "app").exists()


def test_triggers_run_in_the_child_with_its_context_and_build_args(store, base, tmp_path):
    ctx = make_context(tmp_path / "child", f"FROM {base}\nRUN cat /trigger.txt /app/app.txt > /seen.txt\n",
                       {"app.txt": "the child's app\n"})
    result = quiet_build(store, ctx, tags=["onbuild/child:1"], build_args={"GREETING": "hi"})
    root = image_rootfs(store, "onbuild/child:1", tmp_path / "root")
    assert (root / "trigger.txt").read_text() == "hi from the trigger\n"
    assert (root / "app/app.txt").read_text() == "the child's app\n"
    assert (root / "seen.txt").read_text() == "hi from the trigger\nthe child's app\n"
    image = store.load("onbuild/child:1")
    assert image.config.config.on_build is None
    assert image.config.config.env_dict()["BUILT_BY"] == "trigger"
    assert image.config.config.labels == {"role": "base"}
    kinds = [s.kind for s in result.steps]
    assert kinds == ["FROM", "ARG", "RUN", "COPY", "ENV", "RUN"]
    assert all(s.line == 1 for s in result.steps[:5])
    again = quiet_build(store, ctx, tags=["onbuild/child:1"], build_args={"GREETING": "hi"})
    assert again.image_id == result.image_id and all(s.cached for s in again.steps if s.kind in ("RUN", "COPY"))


def test_grandchildren_do_not_run_the_triggers_again(store, base, tmp_path):
    ctx = make_context(tmp_path / "child", f"FROM {base}\n", {"app.txt": "one\n"})
    quiet_build(store, ctx, tags=["onbuild/child:2"])
    grand = make_context(tmp_path / "grand", "FROM onbuild/child:2\nRUN test ! -e /app/other.txt\n",
                         {"app.txt": "two\n"})
    result = quiet_build(store, grand, tags=["onbuild/grand:1"])
    assert [s.kind for s in result.steps] == ["FROM", "RUN"]
    root = image_rootfs(store, "onbuild/grand:1", tmp_path / "root")
    assert (root / "app/app.txt").read_text() == "one\n"


def test_a_stage_as_base_runs_its_triggers_in_each_child_stage(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox AS base
ONBUILD RUN echo from-base >> /marks

FROM base AS one
RUN echo one >> /marks

FROM base AS two
RUN echo two >> /marks

FROM one
COPY --from=two /marks /two-marks
""")
    quiet_build(store, ctx, tags=["onbuild/stages:1"])
    root = image_rootfs(store, "onbuild/stages:1", tmp_path / "root")
    assert (root / "marks").read_text() == "from-base\none\n"
    assert (root / "two-marks").read_text() == "from-base\ntwo\n"


def test_a_failing_trigger_names_the_from_line(store, tmp_path):
    ctx = make_context(tmp_path / "base", "FROM capstone/busybox\nONBUILD RUN exit 3\n")
    quiet_build(store, ctx, tags=["onbuild/failing:1"])
    child = make_context(tmp_path / "child", "# a child\nFROM onbuild/failing:1\nRUN true\n")
    with pytest.raises(DockerfileError, match=r'^Dockerfile:2: RUN exit 3: process "/bin/sh -c exit 3" returned 3'):
        quiet_build(store, child)


HOSTILE = json.loads((Path(__file__).parent / "fixtures" / "hostile" / "onbuild-triggers.json").read_text())


@pytest.mark.parametrize(("trigger", "why"), HOSTILE["triggers"])
def test_a_hostile_trigger_in_an_image_config_is_one_line(store, tmp_path, trigger, why):
    """The triggers come from the base image's config, which anyone may write: each is parsed
    as one instruction of the child stage and refused in one line naming the FROM."""
    image = store.load("capstone/busybox").with_config(on_build=[trigger])
    store.commit(image, ["onbuild/hostile:1"])
    child = make_context(tmp_path / "child", "FROM onbuild/hostile:1\n")
    with pytest.raises(DockerfileError) as info:
        quiet_build(store, child)
    assert info.value.line == 1
    assert "ONBUILD trigger" in str(info.value) and why in str(info.value), str(info.value)
    assert "\n" not in str(info.value)
