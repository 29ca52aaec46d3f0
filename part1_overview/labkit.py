"""Classroom labs: starter code with holes, and a checker a student runs on their own code.

Every part of the course has a lab (``partN_x/lab.py`` defines ``LAB``), and every lab works
the same way, through this one module:

``python -m partN_x lab start DIR``
    writes a starter copy of the part's core modules into DIR, with the bodies of the
    functions the lab is about replaced by ``raise NotImplementedError("lab task N: ...")``,
    and a ``TASKS.md``: the tasks in order, what each must do, which section of the chapter
    page teaches it, hints, and what the checker looks at.
``python -m partN_x lab check DIR``
    runs each task's check against the student's modules (not the course's), and prints one
    row per task: passed, failed (with the first thing found wrong, in words), or not started.
    The exit code is 0 only when every task passes. ``--solution`` runs the same checks
    against the course's own code: the answer key.

The starter is generated from the course's source every time, never kept as a copy (a copy
would drift as the code changes): the source is parsed with ``ast``, each hole's function
keeps its signature, decorators and docstring, and only its body is replaced. Relative imports
become absolute ones (``from .digest import X`` -> ``from part2_manual_oci.digest import X``),
so a student's module uses the course's code for everything around the holes.

Each task is checked on its own, in a forked child with its own process group and a time
limit (a deadlocked or crashed attempt fails that task only). While task N is checked, the
holes of the *other* tasks are filled with the course's code, so the tasks can be done in any
order and one unfinished task never hides the progress of another.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
import types
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType

from .errors import CourseError
from .models import field, model

#: the message every hole raises, and how the checker recognises an untouched hole
HOLE_MESSAGE = "lab task {number}: {title}"
_HOLE_RE = re.compile(r"lab task (\d+):")
TASKS_FILE = "TASKS.md"
#: seconds a task's check may take before it counts as hung (a deadlock, a wait for nothing)
DEFAULT_TIMEOUT = 120.0

PASSED = "passed"
FAILED = "failed"
NOT_STARTED = "not started"


class LabError(CourseError):
    """A lab that cannot be started or checked (a directory, a module, a task number)."""


@model(frozen=True)
class Task:
    """One task of a lab.

    ``holes``: the functions whose bodies the starter removes, as ``"FILE.py:NAME"`` or
    ``"FILE.py:CLASS.METHOD"``. ``goal``: what the code must do, in a few sentences.
    ``read``: headings of the chapter page (``README.md``) that teach it. ``hints``: one
    sentence each. ``checks``: what the checker verifies, in words. ``check(ctx)``: raises
    AssertionError with a plain sentence for the first thing found wrong.
    """

    number: int
    title: str
    holes: tuple[str, ...]
    goal: str
    read: tuple[str, ...]
    hints: tuple[str, ...]
    checks: str
    check: Callable[["LabContext"], None] = field(repr=False, compare=False)

    def hole_message(self) -> str:
        return HOLE_MESSAGE.format(number=self.number, title=self.title)


@model(frozen=True)
class Lab:
    """A part's lab: the package, the modules the student gets, the tasks in order."""

    package: str
    title: str
    intro: str
    modules: tuple[str, ...]
    tasks: tuple[Task, ...]
    timeout: float = DEFAULT_TIMEOUT

    @property
    def prog(self) -> str:
        return f"python -m {self.package}"

    @property
    def package_dir(self) -> Path:
        return Path(importlib.import_module(self.package).__file__).parent

    def task(self, number: int) -> Task:
        for t in self.tasks:
            if t.number == number:
                return t
        raise LabError(f"{self.package} has no lab task {number} (tasks: {', '.join(str(t.number) for t in self.tasks)})")


@model
class LabContext:
    """What a check gets: the modules under test (the student's, or the course's with
    ``--solution``) by name, the course's own modules, and a fresh scratch directory."""

    modules: dict[str, ModuleType]
    reference: dict[str, ModuleType]
    tmp: Path
    solution: bool

    def __getattr__(self, name: str) -> ModuleType:
        try:
            return self.__dict__["modules"][name]
        except KeyError:
            raise AttributeError(name) from None


@model(frozen=True)
class TaskResult:
    number: int
    title: str
    status: str
    detail: str = ""
    traceback: str = ""
    output: str = ""

    def to_json(self) -> dict:
        return {"task": self.number, "title": self.title, "status": self.status, "detail": self.detail}


# -- starter generation ---------------------------------------------------------------------------


def _split_hole(hole: str) -> tuple[str, str]:
    filename, colon, qualname = hole.partition(":")
    if not colon or not filename.endswith(".py") or not qualname:
        raise LabError(f"hole {hole!r}: expected FILE.py:NAME or FILE.py:CLASS.METHOD")
    return filename, qualname


def find_function(tree: ast.Module, qualname: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The module-level function ``NAME`` or the method ``CLASS.METHOD`` of ``tree``."""
    body: list[ast.stmt] = tree.body
    *classes, name = qualname.split(".")
    for cls in classes:
        found = next((n for n in body if isinstance(n, ast.ClassDef) and n.name == cls), None)
        if found is None:
            return None
        body = found.body
    return next((n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name), None)


def _line_offsets(source: bytes) -> list[int]:
    offsets = [0]
    for i, b in enumerate(source):
        if b == 0x0A:
            offsets.append(i + 1)
    return offsets


def _hole_edit(node: ast.FunctionDef | ast.AsyncFunctionDef, task: Task, source: bytes, lines: list[int], hole: str) -> tuple[int, int, bytes]:
    """(start, end, replacement): the body of ``node`` after its docstring, as whole lines."""
    body = node.body
    has_doc = isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)
    rest = body[1:] if has_doc else body
    if not rest:
        raise LabError(f"hole {hole}: the function has nothing but a docstring")
    first = rest[0]
    line_start = lines[first.lineno - 1]
    if source[line_start:line_start + first.col_offset].strip():
        raise LabError(f"hole {hole}: line {first.lineno} holds more than the body's first statement")
    end = lines[node.end_lineno] if node.end_lineno < len(lines) else len(source)
    indent = " " * first.col_offset
    text = (
        f"{indent}# lab task {task.number}: {task.title} (see {TASKS_FILE})\n"
        f"{indent}raise NotImplementedError({task.hole_message()!r})\n"
    )
    return line_start, end, text.encode()


def _absolute_module(package: str, node: ast.ImportFrom) -> str:
    parts = package.split(".")
    if node.level - 1 >= len(parts):
        raise LabError(f"line {node.lineno}: relative import beyond the top of {package}")
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def starter_source(lab: Lab, filename: str, filled: Iterable[int] = ()) -> str:
    """The starter copy of one module of ``lab``: the holes of every task not in ``filled``
    replaced, relative imports made absolute, everything else as in the course's source."""
    path = lab.package_dir / filename
    source = path.read_bytes()
    tree = ast.parse(source, filename=str(path))
    lines = _line_offsets(source)
    filled = set(filled)
    edits: list[tuple[int, int, bytes]] = []
    for task in lab.tasks:
        if task.number in filled:
            continue
        for hole in task.holes:
            hole_file, qualname = _split_hole(hole)
            if hole_file != filename:
                continue
            node = find_function(tree, qualname)
            if node is None:
                raise LabError(f"lab task {task.number}: {lab.package}/{filename} has no function {qualname} (the code changed: update {lab.package}/lab.py)")
            edits.append(_hole_edit(node, task, source, lines, f"{filename}:{qualname}"))
    replaced = [(s, e) for s, e, _ in edits]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            start = lines[node.lineno - 1] + node.col_offset
            end = lines[node.end_lineno - 1] + node.end_col_offset
            if any(s <= start < e for s, e in replaced):
                continue  # inside a hole: gone with it
            absolute = ast.ImportFrom(module=_absolute_module(lab.package, node), names=node.names, level=0)
            edits.append((start, end, ast.unparse(absolute).encode()))
    out = source
    for start, end, text in sorted(edits, key=lambda e: e[0], reverse=True):
        out = out[:start] + text + out[end:]
    header = (
        f"# Lab starter for {lab.package}: generated by `{lab.prog} lab start`.\n"
        f"# The holes raise NotImplementedError(\"lab task N: ...\"): see {TASKS_FILE}.\n"
        f"# Check your work: {lab.prog} lab check DIR\n"
    )
    return header + out.decode()


def starter_sources(lab: Lab, filled: Iterable[int] = ()) -> dict[str, str]:
    """Every starter module of ``lab`` (file name -> source); see :func:`starter_source`."""
    filled = set(filled)
    return {name: starter_source(lab, name, filled) for name in lab.modules}


def tasks_markdown(lab: Lab) -> str:
    """The lab's ``TASKS.md``."""
    files = ", ".join(f"`{m}`" for m in lab.modules)
    holes = sum(len(t.holes) for t in lab.tasks)
    files_are = (f"Your file {files} is a copy of the course's module" if len(lab.modules) == 1
                 else f"Your files, {files}, are copies of the course's modules")
    out = [
        f"# Lab: {lab.title}",
        "",
        lab.intro.strip(),
        "",
        "## How this lab works",
        "",
        f"{files_are} in `{lab.package}/`: all of it is the real code, except the bodies of {holes}",
        f"function{'s' if holes > 1 else ''}, which now raise `NotImplementedError(\"lab task N: ...\")`. Each",
        "function still has its signature (and its docstring, when it has one): with the task below, they say",
        "what it takes and what it must do. Fill the holes, task by task. Your code imports the rest of the",
        f"course from the installed packages (the `from {lab.package}... import` lines at the top), so each task",
        "is checked on its own, in any order: while one task is checked, the others' holes are filled with the",
        "course's code.",
        "",
        "Check your work at any time:",
        "",
        "```",
        f"{lab.prog} lab check DIR",
        "```",
        "",
        "It prints one row per task: *passed*, *failed* (with the first thing that is wrong), or",
        "*not started* (the hole is still there), and exits with 0 only when every task passes.",
        "`--task N` checks one task, `-v` shows the traceback of a failure and what your code printed,",
        f"and `{lab.prog} lab check --solution` runs the same checks on the course's own code.",
        "",
    ]
    for t in lab.tasks:
        where = "; ".join(f"`{h.split(':')[0]}`, `{h.split(':')[1]}`" for h in t.holes)
        read = ", ".join(f'"{h}"' for h in t.read)
        out += [
            f"## Task {t.number}: {t.title}",
            "",
            f"**Where:** {where}.",
            "",
            f"**Read first:** `{lab.package}/README.md`, section{'s' if len(t.read) > 1 else ''} {read}.",
            "",
            t.goal.strip(),
            "",
            "**Hints:**",
            "",
            *[f"- {h}" for h in t.hints],
            "",
            f"**The check:** {t.checks.strip()}",
            "",
        ]
    return "\n".join(out)


def start(lab: Lab, directory: str | os.PathLike) -> list[Path]:
    """Write the starter modules and TASKS.md into ``directory`` (new, or empty)."""
    directory = Path(directory)
    if directory.exists():
        if not directory.is_dir():
            raise LabError(f"{directory}: not a directory")
        if any(directory.iterdir()):
            raise LabError(f"{directory}: not empty; lab start writes a fresh copy (give a new or empty directory, your work is never overwritten)")
    sources = starter_sources(lab)  # generated before anything is written: a failure leaves nothing
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in sources.items():
        (directory / name).write_text(text)
        written.append(directory / name)
    (directory / TASKS_FILE).write_text(tasks_markdown(lab))
    written.append(directory / TASKS_FILE)
    return written


# -- loading the code under test ------------------------------------------------------------------


def _stem(filename: str) -> str:
    return filename[: -len(".py")]


def reference_modules(lab: Lab) -> dict[str, ModuleType]:
    return {_stem(m): importlib.import_module(f"{lab.package}.{_stem(m)}") for m in lab.modules}


def student_modules(lab: Lab, directory: Path) -> dict[str, ModuleType]:
    """The student's copies of the lab's modules, each loaded as a module of its own."""
    import importlib.util

    out = {}
    for filename in lab.modules:
        path = directory / filename
        if not path.is_file():
            raise LabError(f"{path}: missing (start the lab with `{lab.prog} lab start {directory}`)")
        name = f"_lab_{lab.package}_{_stem(filename)}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # pickling (and a student's dataclasses) look modules up by name
        spec.loader.exec_module(module)
        out[_stem(filename)] = module
    return out


def _attribute(module: ModuleType, qualname: str) -> tuple[object, str]:
    *path, name = qualname.split(".")
    owner: object = module
    for part in path:
        owner = getattr(owner, part)
    return owner, name


def _rebound(function, module: ModuleType):
    """``function``'s code with ``module``'s globals: the course's body, running among the
    student's own classes and helpers, exactly as if its text had been left in the file."""
    if isinstance(function, (staticmethod, classmethod)):
        return type(function)(_rebound(function.__func__, module))
    if not isinstance(function, types.FunctionType):
        return function
    copy = types.FunctionType(function.__code__, vars(module), function.__name__, function.__defaults__, function.__closure__)
    copy.__kwdefaults__ = function.__kwdefaults__
    copy.__qualname__, copy.__doc__, copy.__annotations__ = function.__qualname__, function.__doc__, function.__annotations__
    return copy


def fill_other_holes(lab: Lab, number: int, modules: dict[str, ModuleType], reference: dict[str, ModuleType]) -> None:
    """Put the course's functions in place of the holes of every task but ``number``."""
    for task in lab.tasks:
        if task.number == number:
            continue
        for hole in task.holes:
            filename, qualname = _split_hole(hole)
            module = modules[_stem(filename)]
            owner, name = _attribute(module, qualname)
            ref_owner, _ = _attribute(reference[_stem(filename)], qualname)
            value = vars(ref_owner)[name] if isinstance(ref_owner, type) else getattr(ref_owner, name)
            setattr(owner, name, _rebound(value, module))


# -- running one task -----------------------------------------------------------------------------


def _hole_in(exc: BaseException) -> int | None:
    """The task number of an untouched hole that ``exc`` comes from: the exception itself, one
    it was raised from or during (a check that turned it into an AssertionError), or the text
    of an error that crossed a process boundary (a container's setup step, a namespace child)."""
    seen = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        match = _HOLE_RE.search(str(e))
        if match and (isinstance(e, NotImplementedError) or "NotImplementedError" in str(e)):
            return int(match.group(1))
        todo += [e.__cause__, e.__context__]
    return None


def _where(exc: BaseException, directory: Path | None) -> str:
    """``(FILE:LINE)`` of the innermost frame in the student's files, else in a lab check."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        path = Path(frame.filename)
        if directory is not None and path.parent == directory:
            return f" ({path.name}:{frame.lineno})"
    for frame in reversed(frames):
        if frame.filename.endswith("lab.py"):
            return f" (checked at {Path(frame.filename).parent.name}/lab.py:{frame.lineno})"
    return ""


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def run_task(lab: Lab, task: Task, directory: Path | None, tmp: Path | None = None) -> TaskResult:
    """Check one task in this process (``directory`` None: the course's own code), with the
    scratch directory ``tmp`` (default: a new one, removed afterwards)."""
    own_tmp = tmp is None
    tmp = Path(tempfile.mkdtemp(prefix=f"lab-{lab.package}-task{task.number}-")) if own_tmp else tmp
    try:
        reference = reference_modules(lab)
        try:
            modules = reference if directory is None else student_modules(lab, directory)
        except Exception as e:  # noqa: BLE001 - a student's module that does not load fails every task
            return TaskResult(task.number, task.title, FAILED, f"your code does not load: {type(e).__name__}: {e}{_where(e, directory)}",
                              traceback.format_exc())
        if directory is not None:
            fill_other_holes(lab, task.number, modules, reference)
        ctx = LabContext(modules, reference, tmp, directory is None)
        try:
            task.check(ctx)
        except BaseException as e:  # noqa: BLE001 - whatever the student's code raises is the result
            hole = _hole_in(e)
            if hole is not None:
                what = "the hole is still there" if hole == task.number else f"it needs lab task {hole}"
                return TaskResult(task.number, task.title, NOT_STARTED, what, traceback.format_exc())
            if isinstance(e, AssertionError):
                return TaskResult(task.number, task.title, FAILED, _first_line(str(e)) or f"an assertion failed{_where(e, directory)}",
                                  traceback.format_exc())
            return TaskResult(task.number, task.title, FAILED, f"{type(e).__name__}: {_first_line(str(e))}{_where(e, directory)}",
                              traceback.format_exc())
        return TaskResult(task.number, task.title, PASSED)
    finally:
        if own_tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def run_task_isolated(lab: Lab, task: Task, directory: Path | None, timeout: float) -> TaskResult:
    """:func:`run_task` in a forked child with its own session: a hang or a crash fails the
    task, and every process the attempt left behind is killed with its process group. The
    check's scratch directory is made here and removed here, whatever became of the child."""
    results = Path(tempfile.mkdtemp(prefix=f"lab-{lab.package}-task{task.number}-"))
    scratch = results / "scratch"
    scratch.mkdir()
    _flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.setsid()
            log = os.open(results / "output", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            result = run_task(lab, task, directory, scratch)
            data = dict(result.to_json(), traceback=result.traceback)
            # named by pid: a forked process of the attempt that runs on into this code cannot
            # pass its result off as the check's
            (results / f"{os.getpid()}.json").write_text(json.dumps(data))
        except BaseException:  # noqa: BLE001 - the parent reports a child without a result
            code = 70
        finally:
            _flush()
            os._exit(code)
    deadline = time.monotonic() + timeout
    status = None
    try:
        while status is None:
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                status = wait_status
            elif time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            else:
                time.sleep(0.02)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # what the attempt started and left running
    try:
        output = (results / "output").read_text(errors="replace")
        result_file = results / f"{pid}.json"
        if result_file.exists():
            data = json.loads(result_file.read_text())
            return TaskResult(task.number, task.title, data["status"], data["detail"], data["traceback"], output)
        if status is None:
            return TaskResult(task.number, task.title, FAILED, f"did not finish within {timeout:g} s (a deadlock, or a wait for something that never comes?)", "", output)
        code = os.waitstatus_to_exitcode(status)
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return TaskResult(task.number, task.title, FAILED, f"the check's process {how} before it could report (os._exit or a crash in your code?)", "", output)
    finally:
        shutil.rmtree(results, ignore_errors=True)


def check(lab: Lab, directory: str | os.PathLike | None, tasks: Sequence[int] | None = None,
          timeout: float | None = None) -> list[TaskResult]:
    """Check ``tasks`` (default: all) of the student's code in ``directory`` (None: the
    course's own code), each in its own child process; the results in task order."""
    if directory is not None:
        directory = Path(directory).absolute()
        if not directory.is_dir():
            raise LabError(f"{directory}: no such directory (start the lab with `{lab.prog} lab start {directory}`)")
        missing = [m for m in lab.modules if not (directory / m).is_file()]
        if missing:
            raise LabError(f"{directory}: {', '.join(missing)} missing (start the lab with `{lab.prog} lab start DIR`)")
    chosen = [lab.task(n) for n in tasks] if tasks else list(lab.tasks)
    return [run_task_isolated(lab, t, directory, timeout or lab.timeout) for t in chosen]


# -- the command line -----------------------------------------------------------------------------


def lab_main(lab: Lab, argv: Sequence[str], out=None) -> int:
    """``lab start DIR`` and ``lab check [DIR] [--solution] [--task N] [-v] [--json]``: the
    ``lab`` command of every chapter script. Exit codes: 0 done (every task passed), 1 a task
    failed or the lab could not be started, 2 usage."""
    from .narrate import Narrator

    out = out if out is not None else sys.stdout
    parser = argparse.ArgumentParser(prog=f"{lab.prog} lab", description=f"the lab of {lab.package}: starter code with holes, and a checker")
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("start", help="write the starter modules and TASKS.md into DIR (new or empty)")
    p.add_argument("dir", metavar="DIR")
    p = sub.add_parser("check", help="check your code in DIR (or the course's, with --solution)")
    p.add_argument("dir", metavar="DIR", nargs="?")
    p.add_argument("--solution", action="store_true", help="check the course's own code: the answer key")
    p.add_argument("--task", type=int, action="append", metavar="N", help="check task N only (repeatable)")
    p.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and what the code printed")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--timeout", type=float, help=f"seconds per task (default {lab.timeout:g})")
    args = parser.parse_args(list(argv))
    err = sys.stderr
    if args.action == "start":
        try:
            written = start(lab, args.dir)
        except (LabError, OSError) as e:
            print(f"{lab.prog} lab: error: {e}", file=err)
            return 1
        n = Narrator(out)
        n.title(f"Lab: {lab.title}")
        for path in written:
            n.fact("wrote", path)
        n.say(f"Read {Path(args.dir) / TASKS_FILE}, fill the holes, and check your work with:")
        n.command(f"{lab.prog} lab check {args.dir}")
        return 0
    if args.solution == (args.dir is not None):
        parser.error("check takes DIR (your code) or --solution (the course's code)")
    try:
        results = check(lab, None if args.solution else args.dir, args.task, args.timeout)
    except LabError as e:
        print(f"{lab.prog} lab: error: {e}", file=err)
        return 1
    if args.json:
        json.dump([r.to_json() for r in results], out, indent=2)
        out.write("\n")
    else:
        n = Narrator(out)
        n.title(f"Lab: {lab.title}" + (" (the course's own code)" if args.solution else ""))
        n.table([(r.number, r.title, r.status, r.detail) for r in results], ("task", "what", "result", "detail"))
        if args.verbose:
            for r in results:
                if r.status == FAILED and (r.traceback or r.output):
                    n.step(f"task {r.number}: {r.title}")
                    if r.traceback:
                        n.output(r.traceback)
                    if r.output.strip():
                        n.say("it printed:")
                        n.output(r.output)
        passed = sum(r.status == PASSED for r in results)
        if passed == len(results):
            n.done(f"all {len(results)} task(s) pass")
        else:
            n.done(f"{passed} of {len(results)} task(s) pass")
    return 0 if all(r.status == PASSED for r in results) else 1
