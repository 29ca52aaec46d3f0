"""Part 1: the tour of the course.

A container image is a tar archive plus JSON. This part maps the course (which part teaches
which concept, and which parts it builds on), checks what this host can do (``doctor()``), and
holds the narration helper every chapter script prints through (``Narrator``).
"""

from .doctor import HostReport, cgroup_version, doctor
from .narrate import Narrator

__all__ = ["HostReport", "Narrator", "cgroup_version", "doctor"]
