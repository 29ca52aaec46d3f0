"""The capstone's errors: one base exception, leaves per concern.

::

    part1_overview.CourseError   the root of every part's errors (what is refused on purpose)
    └── CapstoneError
        ├── BuildArgError        a malformed --build-arg or --platform on the command line
        ├── IgnoreFileError      a .dockerignore that cannot be read or has a bad pattern
        ├── ContextError         the build context cannot be read
        └── DockerfileError      a problem at a place in a Dockerfile ("Dockerfile:7: ...")
            ├── ParseError       the text is not a valid Dockerfile (parser, instructions, flags)
            ├── ExpansionError   a variable expression cannot be expanded (shell-word lexer)
            └── StageError       the stage graph is wrong (unknown stage, cycle, bad index)

Each package adds leaves of its own (``capstone.engine.errors``, ``capstone.store.errors``,
``capstone.registry.errors``, the parser's internal ones that become ``ParseError``).

Every message is one line. ``str(err)`` is ``FILE:LINE: message`` when the line is known,
``FILE: message`` otherwise; ``err.message`` is the bare message.
"""

from __future__ import annotations

from part1_overview import CourseError


class CapstoneError(CourseError):
    """Base of every error the capstone raises on purpose."""


class DockerfileError(CapstoneError):
    """An error at a line of a Dockerfile.

    ``file`` is the file name exactly as the user gave it (``Dockerfile``, ``ci/Dockerfile.dev``);
    ``line`` is 1-based, or ``None`` when the error belongs to the whole file; ``end_line`` is the
    last line of a multi-line instruction.
    """

    def __init__(self, message: str, *, file: str = "Dockerfile", line: int | None = None,
                 end_line: int | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.end_line = end_line if end_line is not None else line
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}: {self.message}"

    def located(self, file: str | None = None, line: int | None = None,
                end_line: int | None = None) -> "DockerfileError":
        """The same error with a file and/or line filled in where they were unknown."""
        return type(self)(
            self.message,
            file=file if file is not None else self.file,
            line=self.line if self.line is not None else line,
            end_line=self.end_line if self.line is not None else end_line,
        )


class ParseError(DockerfileError):
    """The Dockerfile text breaks a rule of the language (syntax, arguments, flags)."""


class ExpansionError(DockerfileError):
    """A variable expression is malformed or a required variable is unset (``${v:?msg}``)."""


class StageError(DockerfileError):
    """The stages do not form a valid graph: an unknown stage, a cycle, an index out of range."""


class BuildArgError(CapstoneError):
    """A malformed ``--build-arg`` or ``--platform`` on the command line."""


class IgnoreFileError(CapstoneError):
    """A .dockerignore that cannot be read or has a malformed pattern (names file and line)."""


class ContextError(CapstoneError):
    """The build context cannot be read (missing, not a directory, unreadable entry)."""
