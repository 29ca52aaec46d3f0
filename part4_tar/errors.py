"""The errors of part 4 (under ``part1_overview.CourseError``, the root of every part's errors).

::

    LayerError                  a layer could not be written, read or applied
    ├── UnsafeArchiveError      an entry would create, change or follow something outside the root
    └── UnsafePathError         a name to write inside a root would leave it (``..``, a NUL byte),
                                or a path inside it is a symlink loop
    SkippedEntriesWarning       (a warning) entries the kernel refused to this unprivileged
                                extraction, left out: device nodes in a user namespace

Messages are one line and name the entry or path: ``layer entry '../etc/passwd': '..' would
escape the root``.
"""

from part1_overview import CourseError


def show(name: str) -> str:
    """A name for a message: quoted, and shortened in the middle when it is very long."""
    if len(name) > 160:
        name = f"{name[:100]}...{name[-40:]}"
    return repr(name)


class LayerError(CourseError):
    """A layer could not be written, read or applied."""


class UnsafeArchiveError(LayerError):
    """An archive entry tried to reach outside the extraction root."""


class UnsafePathError(LayerError):
    """A name or path given to :class:`~part4_tar.RootDir` that cannot stay inside the root.

    ``name`` is what was given, ``reason`` why it was refused (``'..' would escape the root``,
    ``NUL byte in the name``, ``too many levels of symbolic links (a symlink loop)``).
    """

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{show(name)}: {reason}")
        self.name = name
        self.reason = reason


class SkippedEntriesWarning(UserWarning):
    """Entries of a layer that could not be created here and were left out (device nodes,
    which only the host's root may make: mknod(2) is refused in a user namespace)."""
