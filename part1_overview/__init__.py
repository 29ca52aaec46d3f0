"""Part 1: the tour of the course.

A container image is a tar archive plus JSON. This part maps the course (which part teaches
which concept, and which parts it builds on: ``PARTS``), draws the way from a Dockerfile to an
image (``PIPELINE``), checks what this host can do (``doctor()``, ``host_checks()``), and holds
the narration helper every chapter script prints through (``Narrator``).
"""

from .course import PARTS, PIPELINE, Part, Stage
from .doctor import HostCheck, HostReport, cgroup_version, doctor, host_checks
from .narrate import Narrator, run_cli

__all__ = [
    "PARTS",
    "PIPELINE",
    "HostCheck",
    "HostReport",
    "Narrator",
    "Part",
    "Stage",
    "cgroup_version",
    "doctor",
    "host_checks",
    "run_cli",
]
