"""Part 1: the tour of the course.

A container image is a tar archive plus JSON. This part maps the course (which part teaches
which concept, and which parts it builds on: ``PARTS``), draws the way from a Dockerfile to an
image (``PIPELINE``), checks what this host can do (``doctor()``, ``host_checks()``), and holds
the narration helper every chapter script prints through (``Narrator``), the machinery of
every chapter's lab (``Lab``, ``Task``, ``lab_main``: starter code with holes and a checker),
and the root of every part's errors (``CourseError``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import CourseError
from .lazy import lazy_exports
from .narrate import Narrator, run_cli

if TYPE_CHECKING:
    from .course import PARTS, PIPELINE, Part, Stage
    from .host import HostCheck, HostReport, cgroup_version, doctor, host_checks
    from .labkit import Lab, LabContext, LabError, Task, lab_main

#: the lab machinery (ast, tempfile, traceback, argparse...), the course map and the host checks
#: (platform, dataclasses) are imported when one of their names is first used (PEP 562): every
#: command prints through ``Narrator``, few run a lab, show the map or ask what the host can do.
#: (The checks live in ``host``, not in a module named ``doctor``: once imported, a submodule
#: becomes the package's attribute of its name, and would hide the function ``doctor``.)
_LAZY = {
    **{name: "host" for name in ("HostCheck", "HostReport", "cgroup_version", "doctor", "host_checks")},
    **{name: "labkit" for name in ("Lab", "LabContext", "LabError", "Task", "lab_main")},
    **{name: "course" for name in ("PARTS", "PIPELINE", "Part", "Stage")},
}

__getattr__ = lazy_exports(__name__, globals(), _LAZY)

__all__ = [
    "PARTS",
    "PIPELINE",
    "CourseError",
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
    "lazy_exports",
    "run_cli",
]
