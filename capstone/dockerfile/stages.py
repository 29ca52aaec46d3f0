"""The stage graph: which stage needs which, what ``--target`` builds, in what order.

A stage depends on another stage when

* its FROM names it (``FROM build``; stage names are case-insensitive and may be defined
  before or after; the base name is expanded with the global ARGs first, so
  ``ARG BASE=build`` / ``FROM $BASE`` works),
* a ``COPY --from=`` names it or gives its index (an index must be of an *earlier* stage),
* a ``RUN --mount=...,from=NAME`` names it.

A name that is no stage is an image (or a named build context): no edge. ``--target NAME``
picks the last stage to build (default: the last stage of the file); only the stages it needs
are built (BuildKit skips the others), dependencies first. Cycles, bad indexes and unknown
targets are :class:`~capstone.errors.StageError` with the line that causes them.

Expansion is a hook: pass ``expand(word, stage, instruction) -> str`` (``stage`` None for a FROM
line, which sees only the global ARGs); the default leaves words as written.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Protocol

from part1_overview import model

from ..errors import StageError
from .instructions import Copy, Dockerfile, Instruction, Run, Stage
from .mounts import MountSyntaxError, mount_from

SCRATCH = "scratch"
#: depth-first search colours: not seen, on the current path, finished
_WHITE, _GREY, _BLACK = 0, 1, 2


class Expander(Protocol):
    def __call__(self, word: str, stage: Stage | None, instruction: Instruction) -> str: ...


def no_expansion(word: str, stage: Stage | None, instruction: Instruction) -> str:
    return word


@model(frozen=True)
class StageRef:
    """One reference from a stage: ``kind`` is ``"from"``, ``"copy"`` or ``"mount"``;
    ``text`` the (expanded) reference; ``stage`` the index it resolves to, or None for an
    image / named context; ``line`` where it is written."""

    kind: str
    text: str
    stage: int | None
    line: int


@model(frozen=True)
class StageNode:
    """A stage and its references. ``base`` is the expanded FROM name; ``base_stage`` the
    stage index it names (None: an image, or ``scratch``)."""

    stage: Stage
    base: str
    base_stage: int | None
    refs: tuple[StageRef, ...]

    @property
    def index(self) -> int:
        return self.stage.index

    @property
    def display_name(self) -> str:
        """The stage's name, or BuildKit's ``stage-N`` for an unnamed stage."""
        return self.stage.name or f"stage-{self.stage.index}"

    @property
    def dependencies(self) -> frozenset[int]:
        return frozenset(r.stage for r in self.refs if r.stage is not None)


@model(frozen=True)
class StagePlan:
    """What to build for a target: ``order`` (stage indexes, dependencies first, ending with
    the target) and ``skipped`` (stages the target does not need)."""

    target: int
    order: tuple[int, ...]
    skipped: tuple[int, ...]


@model(frozen=True)
class StageGraph:
    file: str
    nodes: tuple[StageNode, ...]

    def find(self, name: str) -> int | None:
        """The index of the stage called ``name`` (any case), or None."""
        low = name.lower()
        for node in self.nodes:
            if node.stage.name == low:
                return node.index
        return None

    def plan(self, target: str | None = None) -> StagePlan:
        """The stages needed for ``target`` (a stage name; default the last stage), in order."""
        if target:
            t = self.find(target)
            if t is None:
                raise StageError(f'target stage "{target}" could not be found', file=self.file)
        else:
            t = len(self.nodes) - 1
        needed = self._reachable(t)
        order = self._toposort(needed)
        skipped = tuple(i for i in range(len(self.nodes)) if i not in needed)
        return StagePlan(t, order, skipped)

    def _reachable(self, target: int) -> set[int]:
        # iterative DFS with colours: a grey node met again is a cycle
        colour = [_WHITE] * len(self.nodes)
        stack: list[tuple[int, list[StageRef]]] = [(target, list(self.nodes[target].refs))]
        colour[target] = _GREY
        while stack:
            idx, pending = stack[-1]
            while pending:
                ref = pending.pop(0)
                if ref.stage is None:
                    continue
                if colour[ref.stage] == _GREY:
                    raise StageError(
                        f"circular dependency detected on stage: {self.nodes[ref.stage].display_name}",
                        file=self.file, line=ref.line)
                if colour[ref.stage] == _WHITE:
                    colour[ref.stage] = _GREY
                    stack.append((ref.stage, list(self.nodes[ref.stage].refs)))
                    break
            else:
                colour[idx] = _BLACK
                stack.pop()
        return {i for i, c in enumerate(colour) if c == _BLACK}

    def _toposort(self, needed: set[int]) -> tuple[int, ...]:
        # Kahn's algorithm, lowest index first among the ready stages: file order when possible
        deps = {i: set(self.nodes[i].dependencies) & needed for i in needed}
        users: dict[int, set[int]] = {i: set() for i in needed}
        for i, ds in deps.items():
            for d in ds:
                users[d].add(i)
        ready = [i for i, ds in deps.items() if not ds]
        heapq.heapify(ready)
        order = []
        while ready:
            i = heapq.heappop(ready)
            order.append(i)
            for u in users[i]:
                deps[u].discard(i)
                if not deps[u]:
                    heapq.heappush(ready, u)
        return tuple(order)


def build_stage_graph(dockerfile: Dockerfile, expand: Expander | Callable = no_expansion) -> StageGraph:
    """The stage graph of a parsed Dockerfile (names, FROM/COPY --from/--mount from= edges)."""
    stages = dockerfile.stages
    file = dockerfile.file
    by_name: dict[str, Stage] = {}
    for st in stages:
        if st.name is not None:
            first = by_name.get(st.name)
            if first is not None:
                raise StageError(f'duplicate stage name "{st.name}" (first defined on line '
                                 f"{first.from_.line})", file=file, line=st.from_.line)
            by_name[st.name] = st

    def lookup(name: str) -> int | None:
        st = by_name.get(name.lower())
        return st.index if st is not None else None

    nodes = []
    for st in stages:
        refs: list[StageRef] = []
        base = expand(st.from_.image, None, st.from_)
        if not base:
            raise StageError(f"base name ({st.from_.image}) should not be blank", file=file,
                             line=st.from_.line)
        base_stage = None if base.lower() == SCRATCH else lookup(base)
        refs.append(StageRef("from", base, base_stage, st.from_.line))
        for ins in st.instructions:
            refs.extend(_refs_of(ins, st, expand, lookup, file))
        nodes.append(StageNode(st, base, base_stage, tuple(refs)))
    return StageGraph(file, tuple(nodes))


def _refs_of(ins: Instruction, st: Stage, expand, lookup, file: str) -> list[StageRef]:
    out = []
    if isinstance(ins, Copy) and ins.from_stage is not None:
        text = expand(ins.from_stage, st, ins)
        if text.isdigit() or (text[:1] == "-" and text[1:].isdigit()):
            index = int(text)
            if index < 0 or index >= st.index:
                if index >= st.index and index >= 0:
                    msg = (f"invalid from flag value {text}: refers to current or future "
                           "build stage")
                else:
                    msg = f"invalid stage index {text}"
                raise StageError(msg, file=file, line=ins.line)
            out.append(StageRef("copy", text, index, ins.line))
        else:
            out.append(StageRef("copy", text, lookup(text), ins.line))
    elif isinstance(ins, Run):
        for value in ins.mounts:
            try:
                source = mount_from(value)
            except MountSyntaxError as exc:
                raise StageError(str(exc), file=file, line=ins.line) from None
            if source:
                text = expand(source, st, ins)
                out.append(StageRef("mount", text, lookup(text), ins.line))
    return out


__all__ = ["Expander", "StageGraph", "StageNode", "StagePlan", "StageRef", "build_stage_graph",
           "no_expansion"]
