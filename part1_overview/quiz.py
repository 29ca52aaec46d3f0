"""The tour as a quiz: part 1's lab (``python -m part1_overview lab start DIR``).

Each question is a function; its docstring asks, its body answers. The course's bodies read
the answer from the same data the tour prints (``PARTS``, ``PIPELINE``, ``doctor()``), so
they are the answer key on any host. In the starter the bodies are holes: a student answers
by returning a value typed in after reading the tour's output, or by computing it from
``part1_overview``'s API, which the tour's page documents.
"""

from __future__ import annotations

from .course import PIPELINE, part_by_package
from .host import doctor, host_checks

#: the parts that make RUN possible: a container needs them, file work does not
CONTAINER_PARTS = {"part5", "part6", "part7"}


def short_name(package: str) -> str:
    """``part7_union`` -> ``part7`` (the names the pipeline table uses)."""
    return package.split("_")[0]


def parts_a_run_step_needs() -> set[str]:
    """Step 3 of the tour ("from Dockerfile to image"): which parts does a RUN step need?

    Answer with the short names the table uses, e.g. ``{"part2", "part3"}``.
    """
    return set(next(s for s in PIPELINE if s.what == "RUN").parts)


def parts_part7_builds_on() -> set[str]:
    """Step 2 of the tour (the map of the course): which parts may ``part7_union`` import?

    Answer with short names (``"part1"``) or package names (``"part1_overview"``).
    """
    return {short_name(p) for p in part_by_package("part7_union").uses}


def file_work_stages() -> set[str]:
    """Step 3 again: which stages of the pipeline need no container at all (none of parts 5,
    6 and 7), only file work? Answer with the stage names as the table writes them."""
    return {s.what for s in PIPELINE if not set(s.parts) & CONTAINER_PARTS}


def diff_id_is_the_digest_of() -> str:
    """Step 1: the image config names each layer by its diff_id. Is that the sha256 of the
    ``"compressed"`` or of the ``"uncompressed"`` tar?"""
    return "uncompressed"


def cgroup_version_here() -> str:
    """Step 4, on the machine you run the check on: which cgroup layout does this host have?
    Answer as the tour's JSON does (``python -m part1_overview --json``, key
    ``host.cgroup_version``): ``"v1"``, ``"v2"``, ``"hybrid"`` or ``"none"``."""
    return doctor().cgroup_version


def checks_failing_here() -> set[str]:
    """Step 4, on the machine you run the check on: which checks of the host table say NO?
    Answer with their names (an empty set when everything is there)."""
    return {c.name for c in host_checks(doctor()) if c.failed}
