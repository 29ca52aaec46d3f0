"""Part 1: the tour of the course.

A container image is a tar archive plus JSON. This part maps the course (which part teaches
which concept, and which parts it builds on: ``PARTS``), draws the way from a Dockerfile to an
image (``PIPELINE``), checks what this host can do (``doctor()``, ``host_checks()``), and holds
the narration helper every chapter script prints through (``Narrator``), and the machinery of
every chapter's lab (``Lab``, ``Task``, ``lab_main``: starter code with holes and a checker).
"""

from .course import PARTS, PIPELINE, Part, Stage
from .doctor import HostCheck, HostReport, cgroup_version, doctor, host_checks
from .labkit import Lab, LabContext, LabError, Task, lab_main
from .narrate import Narrator, run_cli

__all__ = [
    "PARTS",
    "PIPELINE",
    "HostCheck",
    "HostReport",
    "Lab",
    "LabContext",
    "LabError",
    "Narrator",
    "Part",
    "Stage",
    "Task",
    "cgroup_version",
    "doctor",
    "host_checks",
    "lab_main",
    "run_cli",
]
