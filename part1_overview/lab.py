"""Part 1's lab: a short quiz on the tour (``python -m part1_overview lab start DIR``).

Each task is one question of ``quiz.py``. The checks compare the student's answer with the
course's answer computed on the same host, and on a wrong answer say where in the tour to look,
never what the answer is.
"""

from __future__ import annotations

from .course import PIPELINE
from .labkit import Lab, LabContext, Task


def _short(names) -> set[str]:
    assert isinstance(names, (set, frozenset, list, tuple)), f"answer with a set of names, not {type(names).__name__}"
    return {str(n).split("_")[0] for n in names}


def _same_set(got, want: set[str], where: str) -> None:
    got = _short(got)
    missing, extra = want - got, got - want
    assert not extra, f"{', '.join(sorted(extra))} should not be in your answer ({where})"
    assert not missing, f"your answer misses {len(missing)} name(s) ({where})"


def check_run_step(ctx: LabContext) -> None:
    _same_set(ctx.quiz.parts_a_run_step_needs(), ctx.reference["quiz"].parts_a_run_step_needs(),
              "read the RUN row of step 3 of the tour")


def check_part7(ctx: LabContext) -> None:
    _same_set(ctx.quiz.parts_part7_builds_on(), ctx.reference["quiz"].parts_part7_builds_on(),
              "read the `builds on` column of part 7 in step 2 of the tour")


def check_file_work(ctx: LabContext) -> None:
    got = ctx.quiz.file_work_stages()
    assert isinstance(got, (set, frozenset, list, tuple)), f"answer with a set of stage names, not {type(got).__name__}"
    got, want = {str(s).strip() for s in got}, ctx.reference["quiz"].file_work_stages()
    unknown = got - {s.what for s in PIPELINE}
    assert not unknown, f"{', '.join(sorted(unknown))}: not a stage name of step 3 of the tour (copy them as the table writes them)"
    assert not got - want, f"{', '.join(sorted(got - want))} needs a container: look at the parts column of step 3"
    assert not want - got, f"your answer misses {len(want - got)} stage(s) that need no part 5, 6 or 7 (step 3)"


def check_diff_id(ctx: LabContext) -> None:
    got = ctx.quiz.diff_id_is_the_digest_of()
    assert got in ("compressed", "uncompressed"), f"answer \"compressed\" or \"uncompressed\", not {got!r}"
    assert got == ctx.reference["quiz"].diff_id_is_the_digest_of(), (
        "not that one: read step 1 of the tour again (what does the config list, and what does the manifest point at?)"
    )


def check_cgroups(ctx: LabContext) -> None:
    got = ctx.quiz.cgroup_version_here()
    assert got in ("v1", "v2", "hybrid", "none"), f"answer one of \"v1\", \"v2\", \"hybrid\", \"none\", not {got!r}"
    assert got == ctx.reference["quiz"].cgroup_version_here(), (
        "not on this host: run `python -m part1_overview --json` here and read host.cgroup_version "
        "(the check runs on the machine you run it on)"
    )


def check_failing(ctx: LabContext) -> None:
    got = ctx.quiz.checks_failing_here()
    assert isinstance(got, (set, frozenset, list, tuple)), f"answer with a set of check names, not {type(got).__name__}"
    want = ctx.reference["quiz"].checks_failing_here()
    got = {str(n) for n in got}
    assert not got - want, f"{', '.join(sorted(got - want))} says yes (or is optional) on this host: look at the ok column of step 4"
    assert not want - got, f"your answer misses {len(want - got)} check(s) that say NO on this host (step 4)"


_TOUR = ("The tour",)

LAB = Lab(
    package="part1_overview",
    title="Part 1, the tour: a quiz",
    intro="""
About 20 minutes, before part 2. Run the tour (`python -m part1_overview`) and read its four
steps. Each task below is one question of `quiz.py`: replace the hole with `return` and your
answer. You may type the answer in, or compute it from `part1_overview`'s API (`PARTS`,
`PIPELINE`, `doctor()`, `host_checks()`); both count. The last two questions are about the
machine you run the check on, so they may have another answer on your laptop than on the lab
server.
""",
    modules=("quiz.py",),
    tasks=(
        Task(1, "the parts a RUN step needs", ("quiz.py:parts_a_run_step_needs",),
             "Return the set of parts (short names such as \"part4\") that the pipeline uses for a RUN step.",
             _TOUR, ("Step 3 of the tour is a table: stage, what happens, parts.",),
             "your set against the RUN row of `PIPELINE`.", check_run_step),
        Task(2, "what part 7 builds on", ("quiz.py:parts_part7_builds_on",),
             "Return the set of parts that `part7_union` may import (its `builds on` column).",
             _TOUR + ("The API",), ("`PARTS` holds the same map as step 2; a test enforces it on the code.",),
             "your set against part 7's `uses` in `PARTS` (short or package names).", check_part7),
        Task(3, "the stages that are file work", ("quiz.py:file_work_stages",),
             "Return the names of the pipeline stages that need none of parts 5, 6 and 7.",
             _TOUR, ("Parts 5-7 make a container; a stage that needs none of them only reads and writes files.",),
             "your stage names against `PIPELINE`.", check_file_work),
        Task(4, "diff_id: compressed or uncompressed", ("quiz.py:diff_id_is_the_digest_of",),
             "Return \"compressed\" or \"uncompressed\": which tar does a diff_id hash?",
             ("What a container image is",), ("The manifest and the config name the same layer in two ways.",),
             "your word against the course's answer.", check_diff_id),
        Task(5, "this host's cgroups", ("quiz.py:cgroup_version_here",),
             "Return this host's cgroup layout as the tour's JSON spells it.",
             _TOUR, ("`python -m part1_overview --json` prints host.cgroup_version.",),
             "your answer against `doctor()` on the machine that runs the check.", check_cgroups),
        Task(6, "what is missing here", ("quiz.py:checks_failing_here",),
             "Return the names of the host checks that say NO on this machine (optional tools do not count).",
             _TOUR, ("A missing optional tool shows `-`, not NO.", "On a complete host the answer is an empty set: `set()`."),
             "your set against `host_checks(doctor())` on the machine that runs the check.", check_failing),
    ),
    timeout=60,
)
