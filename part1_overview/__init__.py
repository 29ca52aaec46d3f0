"""Part 1: the tour of the course.

A container image is a tar archive plus JSON. This part maps the course (which part teaches
which concept, and which parts it builds on: ``PARTS``), draws the way from a Dockerfile to an
image (``PIPELINE``), checks what this host can do (``doctor()``, ``host_checks()``), and holds
the narration helper every chapter script prints through (``Narrator``), the machinery of
every chapter's lab (``Lab``, ``Task``, ``lab_main``: starter code with holes and a checker),
the root of every part's errors (``CourseError``), and the one kind of model every part's
values are made with (``@model``, ``field``, ``replace``, ``fields``, ``asdict``: record classes
as ``dataclasses`` makes them, without compiling code for each class at every start).
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
    from .models import asdict, field, fields, is_model, model, replace

#: the lab machinery (ast, tempfile, traceback, argparse...), the course map and the host checks
#: (platform) are imported when one of their names is first used (PEP 562): every
#: command prints through ``Narrator``, few run a lab, show the map or ask what the host can do
#: (and ``--help`` makes no model).
#: (The checks live in ``host``, not in a module named ``doctor``: once imported, a submodule
#: becomes the package's attribute of its name, and would hide the function ``doctor``.)
_LAZY = {
    **{name: "host" for name in ("HostCheck", "HostReport", "cgroup_version", "doctor", "host_checks")},
    **{name: "labkit" for name in ("Lab", "LabContext", "LabError", "Task", "lab_main")},
    **{name: "course" for name in ("PARTS", "PIPELINE", "Part", "Stage")},
    **{name: "models" for name in ("asdict", "field", "fields", "is_model", "model", "replace")},
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
    "asdict",
    "cgroup_version",
    "doctor",
    "field",
    "fields",
    "host_checks",
    "is_model",
    "lab_main",
    "lazy_exports",
    "model",
    "replace",
    "run_cli",
]
