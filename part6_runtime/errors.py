"""Errors of part 6 (under ``part1_overview.CourseError``, the root of every part's errors).

::

    ContainerError                 base of everything this part raises
    ├── SpecError (ValueError)     a ContainerSpec that cannot run: bad user, missing rootfs...
    │   └── BundleError            an OCI bundle's config.json that cannot be read or is invalid
    └── RuntimeSetupError          a named setup step failed in the container's process

``RuntimeSetupError.step`` is the name of the step (one of ``SETUP_STEPS``, ``namespaces`` or
``exec``) and ``.cause`` the error the step raised (an ``OSError`` with its errno and path when
the kernel refused). The message is one line: ``setup step 'pivot_root' failed: ...``.
"""

from __future__ import annotations

from part1_overview import CourseError


class ContainerError(CourseError):
    """Base of the runtime's errors."""


class SpecError(ContainerError, ValueError):
    """The container spec is invalid or names something that does not exist."""


class BundleError(SpecError):
    """An OCI runtime bundle (config.json) cannot be read or is invalid."""


class RuntimeSetupError(ContainerError):
    """A setup step failed; ``step`` names it, ``cause`` is what it raised."""

    def __init__(self, step: str, cause: BaseException) -> None:
        self.step = step
        self.cause = cause
        super().__init__(f"setup step {step!r} failed: {cause}")

    @property
    def exit_code(self) -> int:
        """What ``docker run`` and ``podman run`` exit with for this failure: 127 when the
        command does not exist, 126 when it cannot be executed, 125 for any other step."""
        if self.step != "exec":
            return 125
        return 127 if getattr(self.cause, "errno", None) == 2 else 126
