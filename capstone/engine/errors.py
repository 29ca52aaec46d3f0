"""The build's own errors.

::

    CapstoneError
    ├── BuildError               the build cannot go on (bad --output, missing base image, ...)
    └── DockerfileError
        └── StepError            a step failed at a line: ``Dockerfile:7: RUN ... returned 1``

``StepError`` is a :class:`~capstone.errors.DockerfileError`, so the command line prints it as
``FILE:LINE: message`` like a parse error.
"""

from __future__ import annotations

from ..errors import CapstoneError, DockerfileError


class BuildError(CapstoneError):
    """The build cannot go on for a reason that belongs to no line of the Dockerfile."""


class StepError(DockerfileError):
    """A build step failed: a RUN exited non-zero, a COPY source is missing, ..."""


__all__ = ["BuildError", "StepError"]
