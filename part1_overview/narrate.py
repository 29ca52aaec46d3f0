"""The narration helper every chapter script prints through.

On a terminal it uses rich (colour, rules, tables); otherwise it prints plain lines that are
stable enough to quote in a chapter README and to assert on in tests. Library code never
prints: only a chapter's ``__main__`` creates a :class:`Narrator`.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import IO


class Narrator:
    """Prints a chapter's story: numbered steps, facts with values, commands, tables.

    ``plain`` forces plain output (True) or rich output (False); by default rich is used only
    when ``out`` is a terminal and ``NO_COLOR`` is unset.
    """

    def __init__(self, out: IO[str] | None = None, *, plain: bool | None = None) -> None:
        self.out = out if out is not None else sys.stdout
        if plain is None:
            plain = not (hasattr(self.out, "isatty") and self.out.isatty()) or "NO_COLOR" in os.environ
        self.plain = plain
        self._step = 0
        self._console = None
        if not plain:
            from rich.console import Console  # imported lazily: no work at import time

            self._console = Console(file=self.out, highlight=False)

    # -- building blocks -------------------------------------------------------------------
    def _line(self, text: str = "", style: str | None = None) -> None:
        if self._console is not None:
            self._console.print(text, style=style, markup=False)
        else:
            print(text, file=self.out, flush=True)

    def title(self, text: str) -> None:
        """The chapter's heading."""
        if self._console is not None:
            self._console.rule(f"[bold]{_escape(text)}")
        else:
            self._line(f"== {text} ==")

    def step(self, text: str) -> None:
        """A numbered step of the demonstration (``=> 3. compress the layer``)."""
        self._step += 1
        self._line(f"=> {self._step}. {text}", style="bold cyan")

    def say(self, text: str) -> None:
        """A sentence of explanation."""
        for line in text.splitlines() or [""]:
            self._line(f"   {line}")

    def fact(self, label: str, value: object) -> None:
        """A computed value the reader should notice: a digest, a size, a namespace inode."""
        self._line(f"   {label}: {value}", style="green")

    def command(self, argv: str | Sequence[str]) -> None:
        """A command the reader can type to check the step."""
        text = argv if isinstance(argv, str) else " ".join(argv)
        self._line(f"   $ {text}", style="yellow")

    def output(self, text: str) -> None:
        """Output of a program, indented."""
        for line in text.rstrip("\n").splitlines():
            self._line(f"     {line}", style="dim")

    def table(self, rows: Iterable[Sequence[object]], headers: Sequence[str]) -> None:
        """A table (tabulate in plain mode, rich otherwise)."""
        rows = [list(map(str, r)) for r in rows]
        if self._console is not None:
            from rich.table import Table

            t = Table(*headers)
            for r in rows:
                t.add_row(*r)
            self._console.print(t)
        else:
            from tabulate import tabulate

            for line in tabulate(rows, headers=list(headers), tablefmt="simple").splitlines():
                self._line(f"   {line}")

    def warn(self, text: str) -> None:
        self._line(f"   ! {text}", style="bold yellow")

    def done(self, text: str = "done") -> None:
        self._line(f"=> {text}", style="bold green")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a chapter script's ``main`` for a real process and return its exit code.

    A reader that stops early (``| head -1``) is not an error: stdout goes to /dev/null so the
    last flush cannot fail again, and the exit code is 141 (128 + SIGPIPE), what a shell shows
    for a program killed by that signal.
    """
    try:
        code = main(argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 128 + signal.SIGPIPE
