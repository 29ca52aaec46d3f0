"""The plan of a build: which stages run, in which order, with how many steps.

``parse`` -> :class:`~capstone.dockerfile.BuildVariables` (global ARGs, ``--build-arg``,
platform args) -> the stage graph (``FROM`` / ``COPY --from`` / ``RUN --mount from=`` edges)
-> the stages ``--target`` needs, dependencies first. A stage nobody needs is never built,
as BuildKit does. Step numbers are counted over the planned stages only, so the progress
lines say ``STEP 3/7`` with 7 the steps that will run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from part1_overview import model
from part2_manual_oci import Platform, PlatformError, parse_platform

from ..dockerfile import (
    BuildVariables,
    Dockerfile,
    From,
    Instruction,
    StageGraph,
    build_stage_graph,
    parse,
)
from ..errors import BuildArgError
from .errors import BuildError


@model(frozen=True)
class PlannedStage:
    """A stage that will be built: its index in the file, display name, the FROM line with its
    image expanded, and its instructions (raw; each is expanded when its turn comes)."""

    index: int
    name: str
    from_: From
    instructions: tuple[Instruction, ...]
    base_stage: int | None
    #: the number (1-based, over the whole build) of this stage's FROM step
    first_step: int

    @property
    def steps(self) -> int:
        return 1 + len(self.instructions)


@model(frozen=True)
class BuildPlan:
    dockerfile: Dockerfile
    variables: BuildVariables
    graph: StageGraph
    stages: tuple[PlannedStage, ...]
    target: int
    skipped: tuple[int, ...]
    #: the target platform (``--platform``), None for this host's
    platform: Platform | None
    #: the build's one timestamp (seconds), or None: see :func:`source_date_epoch`
    source_date_epoch: int | None = None

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    def stage(self, index: int) -> PlannedStage:
        for s in self.stages:
            if s.index == index:
                return s
        raise KeyError(index)


def read_dockerfile(path: str | os.PathLike, context_dir: str | os.PathLike | None = None) -> Dockerfile:
    """Parse the Dockerfile at ``path``; messages name it by its base name (``Dockerfile:7``).
    One in ``context_dir`` (default: its own directory) is resolved inside it (its links stay
    there) and read only when it is a regular file: :func:`~capstone.context.read_build_file`."""
    from ..context import read_build_file
    from ..errors import ContextError

    path = Path(path)
    try:
        data = read_build_file(path, path.parent if context_dir is None else context_dir)
    except ContextError as e:
        raise BuildError(f"cannot read the Dockerfile {e}") from None
    if data is None:
        raise BuildError(f"cannot read the Dockerfile {path}: No such file or directory")
    return parse(data, file=path.name)


#: the last second RFC 3339 can write (9999-12-31T23:59:59Z): image ``created`` must be one
MAX_EPOCH = 253402300799


def source_date_epoch(variables: BuildVariables) -> int | None:
    """``SOURCE_DATE_EPOCH`` of a build, as BuildKit's Dockerfile frontend reads it: the build
    argument, else the default of a global ``ARG SOURCE_DATE_EPOCH=...``; empty means unset.

    When set, it dates the image config, every history entry and the files of every layer the
    build writes (mtimes clamped to it), so a build is reproducible. A value that is not a
    whole number of seconds since 1970 fails the build before any step, with BuildKit's words.
    """
    name = "SOURCE_DATE_EPOCH"
    return parse_source_date_epoch(variables.build_args.get(name, variables.global_env.get(name, "")))


def parse_source_date_epoch(value: str | None) -> int | None:
    """A ``SOURCE_DATE_EPOCH`` value read as BuildKit reads it: None when empty (or None), else
    whole seconds since 1970; anything else is a :class:`BuildError` in BuildKit's words."""
    if not value:
        return None
    digits = value[1:] if value[:1] == "+" else value  # Go's strconv.ParseInt takes a sign
    if not (digits.isascii() and digits.isdigit()) or int(digits) > MAX_EPOCH:
        raise BuildError(f"invalid SOURCE_DATE_EPOCH: {value}")
    return int(digits)


def make_plan(dockerfile: Dockerfile, build_args: Mapping[str, str] | None = None, *,
              target: str | None = None, platform: str | Platform | None = None) -> BuildPlan:
    """The stages to build for ``target`` (default: the last one), dependencies first, for
    ``platform`` (one; a specifier such as ``linux/arm64`` or a part 2 ``Platform``)."""
    if not dockerfile.stages:
        raise BuildError(f"{dockerfile.file}: no FROM instruction: nothing to build")
    spec = platform if isinstance(platform, Platform) else None
    if isinstance(platform, str) and platform:
        try:
            spec = parse_platform(platform)
        except PlatformError as e:
            raise BuildArgError(f"--platform: {e}") from None
    variables = BuildVariables(dockerfile, build_args or {}, target=spec)

    def expand(word: str, stage, instruction) -> str:
        # FROM lines see the global args; a COPY --from / --mount from= word is expanded with
        # them too for the graph (the stage's own ARGs expand it again when the step runs)
        return variables.lexer.process_word(word, variables.global_env)

    graph = build_stage_graph(dockerfile, expand)
    plan = graph.plan(target)
    stages = []
    step = 1
    for index in plan.order:
        node = graph.nodes[index]
        from_ = variables.expand_from(node.stage)
        stages.append(PlannedStage(index, node.display_name, from_, node.stage.instructions,
                                   node.base_stage, step))
        step += 1 + len(node.stage.instructions)
    return BuildPlan(dockerfile, variables, graph, tuple(stages), plan.target, plan.skipped, spec,
                     source_date_epoch(variables))


__all__ = ["BuildPlan", "PlannedStage", "make_plan", "parse_source_date_epoch", "read_dockerfile", "source_date_epoch"]
