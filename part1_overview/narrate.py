"""The narration helper every chapter script prints through.

On a terminal it uses rich (colour, rules, tables); otherwise it prints plain lines that are
stable enough to quote in a chapter README and to assert on in tests. Library code never
prints: only a chapter's ``__main__`` creates a :class:`Narrator`.

On a terminal, sentences are wrapped to its width (``COLUMNS`` when set): the lines of a
paragraph are joined and filled again, with the indentation kept on every line, so a chapter
reads cleanly at 80 columns as at 200. Off a terminal the text keeps the line breaks it was
written with, so the output quoted in a chapter page is the same on every machine.
"""

from __future__ import annotations

import os
import re
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
        #: the width sentences are filled to; None: off a terminal, lines are kept as written
        self.width: int | None = None
        if not plain:
            from rich.console import Console  # imported lazily: no work at import time

            self._console = Console(file=self.out, highlight=False)
            self.width = self._console.width
        elif _is_terminal(self.out):
            self.width = _terminal_width(self.out)

    # -- building blocks -------------------------------------------------------------------
    def _line(self, text: str = "", style: str | None = None) -> None:
        if self._console is not None:
            # soft_wrap: rich must not wrap again what _fill made to measure, nor break a
            # command or a program's output line (the terminal folds those, copy and paste
            # still gives one line)
            self._console.print(text, style=style, markup=False, soft_wrap=True)
        else:
            print(text, file=self.out, flush=True)

    def _filled(self, text: str, indent: str, style: str | None = None, hang: int = 0) -> None:
        """``text`` as paragraphs filled to the width, every line starting with ``indent``
        (and ``hang`` more spaces after a paragraph's first line)."""
        for lead, item_hang, paragraph in _paragraphs(text):
            if paragraph is None:
                self._line("", style)
                continue
            import textwrap  # only a narration fills lines: a command's start-up does not pay for it

            lines = textwrap.wrap(
                paragraph, width=max(self.width - 1, 40), initial_indent=indent + lead,
                subsequent_indent=indent + " " * (item_hang or hang), break_long_words=False, break_on_hyphens=False,
            )
            for line in lines:
                self._line(line, style)

    def title(self, text: str) -> None:
        """The chapter's heading."""
        if self._console is not None:
            self._console.rule(f"[bold]{_escape(text)}")
        else:
            self._line(f"== {text} ==")

    def step(self, text: str) -> None:
        """A numbered step of the demonstration (``=> 3. compress the layer``)."""
        self._step += 1
        self._headline(f"=> {self._step}. ", text, "bold cyan")

    def _headline(self, head: str, text: str, style: str) -> None:
        if self.width is None:
            self._line(f"{head}{text}", style=style)
            return
        import textwrap

        for line in textwrap.wrap(f"{head}{text}", width=max(self.width - 1, 40), subsequent_indent=" " * len(head),
                                  break_long_words=False, break_on_hyphens=False):
            self._line(line, style=style)

    def say(self, text: str) -> None:
        """Sentences of explanation: paragraphs, filled to the terminal's width.

        Lines of ``text`` join into one paragraph; a blank line ends a paragraph, and a line
        starting with a list marker (``- ``, ``* ``, ``1. ``) starts an item whose wrapped lines
        are indented under its text.
        """
        if self.width is None:
            for line in text.splitlines() or [""]:
                self._line(f"   {line}")
        else:
            self._filled(text, "   ")

    def fact(self, label: str, value: object) -> None:
        """A computed value the reader should notice: a digest, a size, a namespace inode."""
        if self.width is None:
            self._line(f"   {label}: {value}", style="green")
        else:
            self._filled(f"{label}: {value}", "   ", style="green", hang=2)

    def command(self, argv: str | Sequence[str]) -> None:
        """A command the reader can type to check the step."""
        text = argv if isinstance(argv, str) else " ".join(argv)
        self._line(f"   $ {text}", style="yellow")

    def output(self, text: str) -> None:
        """Output of a program, indented."""
        for line in text.rstrip("\n").splitlines():
            self._line(f"     {line}", style="dim")

    def line(self, text: str, hang: int = 0) -> None:
        """A line of a command's own output (a build's progress): printed as it is off a
        terminal; on one, filled to its width with ``hang`` spaces before each later line."""
        width = max(self.width - 1, 40) if self.width is not None else 0
        if len(text) <= width or not width:
            self._line(text)
            return
        # a word too long to sit under the text (a digest) moves left as far as it must
        hang = max(0, min(hang, width - max(map(len, text.split()))))
        import textwrap

        for line in textwrap.wrap(text, width=width, subsequent_indent=" " * hang,
                                  break_long_words=False, break_on_hyphens=False):
            self._line(line)

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
        if self.width is None:
            self._line(f"   ! {text}", style="bold yellow")
        else:
            self._filled(f"! {text}", "   ", style="bold yellow", hang=2)

    def done(self, text: str = "done") -> None:
        self._headline("=> ", text, "bold green")


_LIST_ITEM = re.compile(r"(\s*)((?:[-*]|\d+[.)])\s+)?")


def _paragraphs(text: str) -> list[tuple[str, int, str | None]]:
    """``(lead, hang, paragraph)`` per paragraph of ``text`` (``paragraph`` None: a blank line).

    ``lead`` is the first line's own indentation and list marker, ``hang`` the indentation of
    the lines after it (under the item's text).
    """
    blocks: list[tuple[str, int, str | None]] = []
    for line in text.splitlines() or [""]:
        if not line.strip():
            blocks.append(("", 0, None))
            continue
        m = _LIST_ITEM.match(line)
        indent, marker = m.group(1), m.group(2)
        if marker is None and blocks and blocks[-1][2] is not None:
            lead, hang, paragraph = blocks[-1]
            blocks[-1] = (lead, hang, f"{paragraph} {line.strip()}")
        else:
            lead = indent + (marker or "")
            blocks.append((lead, len(lead), line[len(lead):].strip()))
    return blocks


def _is_terminal(out) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def _terminal_width(out) -> int:
    """``COLUMNS`` when set (as rich and shutil honour it), else the width of ``out``'s terminal."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(out.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 80


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
        import signal  # only when the reader went away

        return 128 + signal.SIGPIPE
