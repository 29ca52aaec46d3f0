"""The build's own errors.

::

    CapstoneError
    ├── BuildError               the build cannot go on (bad --output, missing base image, ...)
    ├── StepFailure              what a step asks cannot be done; raised without a line
    │   ├── CopyError            a COPY/ADD source, destination or download (copystep)
    │   ├── SourcePatternError   a malformed COPY/ADD source pattern (sources)
    │   ├── GitSourceError       an ADD of a git repository (gitsource)
    │   ├── OwnerError           a --chown or --chmod that cannot be used (owners)
    │   ├── ConfigError          a config instruction's value (metadata)
    │   │   └── ConfigTooLarge   the image config would outgrow its limit
    │   └── RunSetupError        a RUN that cannot be set up (runstep)
    └── DockerfileError
        └── StepError            a step failed at a line: ``Dockerfile:7: RUN ... returned 1``

The executor turns a ``StepFailure`` into a ``StepError`` with the instruction's line, and
every other error of the course (``part1_overview.CourseError``) into one naming the
instruction's keyword too; anything else is a bug and keeps its traceback. ``StepError`` is a
:class:`~capstone.errors.DockerfileError`, so the command line prints it as ``FILE:LINE:
message`` like a parse error.
"""

from __future__ import annotations

from ..errors import CapstoneError, DockerfileError


class BuildError(CapstoneError):
    """The build cannot go on for a reason that belongs to no line of the Dockerfile."""


class StepFailure(CapstoneError):
    """What a step asks cannot be done; the message is the whole reason and the executor adds
    the instruction's file and line (each concern raises a leaf of its own)."""


class StepError(DockerfileError):
    """A build step failed: a RUN exited non-zero, a COPY source is missing, ..."""


__all__ = ["BuildError", "StepError", "StepFailure"]
