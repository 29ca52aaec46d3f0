"""The classroom labs of every part (part1_overview.labkit): the answer key passes, the starter
fails every task, and filling one hole with the course's code makes exactly that task pass.

Each check runs the real command a student runs, ``python -m PART lab check DIR --json``, in a
subprocess. The starters are generated from the course's current source, so these tests also
catch a lab that no longer fits the code (a renamed function, a changed heading).
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from part1_overview.labkit import LabError, find_function, start, starter_source, starter_sources, tasks_markdown

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ["part1_overview", "part2_manual_oci", "part3_go_style_builder", "part4_tar", "part5_namespaces", "part6_runtime", "part7_union"]


def lab_of(package: str):
    return importlib.import_module(f"{package}.lab").LAB


def lab_check(package: str, *args: str) -> tuple[int, list[dict], str]:
    r = subprocess.run([sys.executable, "-m", package, "lab", "check", *args, "--json"],
                       cwd=REPO, capture_output=True, text=True, timeout=900)
    results = json.loads(r.stdout) if r.stdout.strip().startswith("[") else []
    return r.returncode, results, r.stderr


def statuses(results: list[dict]) -> dict[int, str]:
    return {r["task"]: r["status"] for r in results}


def write_starter(lab, directory: Path, filled=()) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in starter_sources(lab, filled).items():
        (directory / name).write_text(text)
    return directory


@pytest.mark.parametrize("package", PACKAGES)
def test_the_answer_key_passes_every_task(package):
    code, results, err = lab_check(package, "--solution")
    assert [r for r in results if r["status"] != "passed"] == [], err
    assert code == 0
    assert len(results) == len(lab_of(package).tasks)


@pytest.mark.parametrize("package", PACKAGES)
def test_the_untouched_starter_fails_every_task(package, tmp_path):
    lab = lab_of(package)
    r = subprocess.run([sys.executable, "-m", package, "lab", "start", str(tmp_path / "lab")], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "lab").iterdir()) == sorted([*lab.modules, "TASKS.md"])
    code, results, err = lab_check(package, str(tmp_path / "lab"))
    assert statuses(results) == {t.number: "not started" for t in lab.tasks}, err
    assert code == 1


@pytest.mark.parametrize("package", PACKAGES)
def test_filling_one_hole_passes_exactly_that_task(package, tmp_path):
    lab = lab_of(package)
    for task in lab.tasks:
        directory = write_starter(lab, tmp_path / f"task{task.number}", filled={task.number})
        code, results, err = lab_check(package, str(directory))
        expected = {t.number: "passed" if t is task else "not started" for t in lab.tasks}
        assert statuses(results) == expected, (task.number, results, err)
        assert code == (0 if len(lab.tasks) == 1 else 1)


def _absolute_imports(tree: ast.Module, package: str) -> ast.Module:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            node.module = ".".join(base + ([node.module] if node.module else []))
            node.level = 0
    return tree


@pytest.mark.parametrize("package", PACKAGES)
def test_starters_are_generated_from_the_current_source(package):
    """Filled completely, a starter is the course's module (only its imports made absolute);
    each hole keeps the function's signature, decorators and docstring (when it has one: TASKS.md
    states every task's contract), and raises."""
    lab = lab_of(package)
    every = {t.number for t in lab.tasks}
    for name in lab.modules:
        source = (lab.package_dir / name).read_text()
        reference = ast.dump(_absolute_imports(ast.parse(source), package))
        assert ast.dump(ast.parse(starter_source(lab, name, every))) == reference
        holed = ast.parse(starter_source(lab, name))
        original = ast.parse(source)
        for task in lab.tasks:
            for hole in task.holes:
                filename, qualname = hole.split(":")
                if filename != name:
                    continue
                got, want = find_function(holed, qualname), find_function(original, qualname)
                assert got is not None and want is not None, hole
                assert ast.dump(got.args) == ast.dump(want.args) and ast.dump(got.returns or ast.Pass()) == ast.dump(want.returns or ast.Pass())
                assert [ast.dump(d) for d in got.decorator_list] == [ast.dump(d) for d in want.decorator_list]
                assert ast.get_docstring(got) == ast.get_docstring(want)
                raised = got.body[-1]
                assert len(got.body) == (2 if ast.get_docstring(want) else 1) and isinstance(raised, ast.Raise)
                assert ast.literal_eval(raised.exc.args[0]) == task.hole_message()


@pytest.mark.parametrize("package", PACKAGES)
def test_every_task_names_sections_of_its_chapter_page(package):
    lab = lab_of(package)
    headings = {line.lstrip("#").strip() for line in (lab.package_dir / "README.md").read_text().splitlines() if line.startswith("#")}
    for task in lab.tasks:
        assert task.read and set(task.read) <= headings, (task.number, set(task.read) - headings)
    assert [t.number for t in lab.tasks] == list(range(1, len(lab.tasks) + 1))
    text = tasks_markdown(lab)
    for task in lab.tasks:
        assert f"## Task {task.number}: {task.title}" in text
        for hole in task.holes:
            assert f"`{hole.split(':')[1]}`" in text


#: modules a hint may name a function of without it being the course's own
_STDLIB = ("os", "tarfile", "gzip", "shutil", "stat", "tempfile", "dataclasses", "json", "socket", "io", "hashlib", "sys")


def _names_of_the_course() -> set[str]:
    """Every function, class and parameter name the course defines."""
    names = set()
    for path in REPO.glob("part*/*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            if isinstance(node, ast.arg):
                names.add(node.arg)
    return names


def _callable(call: str, course: set[str]) -> bool:
    """Whether ``call`` (``os.open``, ``self.root.remove``, ``set``) names something that exists:
    a standard module's function, a builtin, a str or bytes method, or a name of the course."""
    import builtins

    first, *_, last = call.split(".") if "." in call else (call, call)
    if first in _STDLIB:
        return hasattr(importlib.import_module(first), last)
    if "." not in call:
        return hasattr(builtins, call) or call in course
    return last in course or hasattr(str, last) or hasattr(bytes, last)


@pytest.mark.parametrize("package", PACKAGES)
def test_the_functions_a_task_names_exist(package):
    """TASKS.md is prose written against the code: every function it names (`x.y(` in a goal
    or a hint) must still be defined in the course, or the task sends students to a name the
    code no longer has."""
    course = _names_of_the_course()
    for task in lab_of(package).tasks:
        for text in (task.goal, *task.hints):
            for call in re.findall(r"`([A-Za-z_][\w.]*)\(", text):
                assert _callable(call, course), f"task {task.number} of {package} names {call}(), which the course no longer defines"


def test_a_hole_that_no_longer_exists_is_reported_by_name(monkeypatch):
    lab = lab_of("part1_overview")
    from part1_overview import replace

    broken = replace(lab, tasks=(replace(lab.tasks[0], holes=("quiz.py:renamed_meanwhile",)),))
    with pytest.raises(LabError, match=r"quiz.py has no function renamed_meanwhile \(the code changed: update part1_overview/lab.py\)"):
        starter_sources(broken)


def test_lab_start_never_overwrites_work(tmp_path):
    lab = lab_of("part1_overview")
    (tmp_path / "mine.py").write_text("my work\n")
    with pytest.raises(LabError, match="not empty"):
        start(lab, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.py"]
    r = subprocess.run([sys.executable, "-m", "part1_overview", "lab", "start", str(tmp_path)], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.startswith("python -m part1_overview lab: error: ") and "not empty" in r.stderr
    assert r.stderr.count("\n") == 1


def test_check_usage_errors(tmp_path):
    r = subprocess.run([sys.executable, "-m", "part1_overview", "lab", "check"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "DIR (your code) or --solution" in r.stderr
    r = subprocess.run([sys.executable, "-m", "part1_overview", "lab", "check", str(tmp_path / "nope")], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "no such directory" in r.stderr and "lab start" in r.stderr
    r = subprocess.run([sys.executable, "-m", "part1_overview", "lab", "check", "--solution", "--task", "9"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "has no lab task 9" in r.stderr


def _quiz(tmp_path: Path, **answers: str) -> Path:
    """The quiz starter with some holes replaced by ``answers`` (function name -> body line)."""
    lab = lab_of("part1_overview")
    directory = write_starter(lab, tmp_path / "quiz")
    text = (directory / "quiz.py").read_text()
    for task in lab.tasks:
        function = task.holes[0].split(":")[1]
        if function in answers:
            text = text.replace(f"    raise NotImplementedError({task.hole_message()!r})", f"    {answers[function]}")
    (directory / "quiz.py").write_text(text)
    return directory


def test_the_table_says_what_is_wrong_in_words_and_where(tmp_path):
    directory = _quiz(
        tmp_path,
        parts_a_run_step_needs="return {'part7', 'part6'}",
        parts_part7_builds_on="return {'part1', 'part2', 'part3', 'part4', 'part5'}",
        file_work_stages="return {'FROM', 'image'} | {1 / 0}",
        diff_id_is_the_digest_of="return 'uncompressed'",
    )
    r = subprocess.run([sys.executable, "-m", "part1_overview", "lab", "check", str(directory)], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines() if line.strip()[:1].isdigit()}
    assert "failed" in rows["1"] and "your answer misses 2 name(s) (read the RUN row of step 3 of the tour)" in rows["1"]
    assert "failed" in rows["2"] and "part3 should not be in your answer" in rows["2"]
    assert "failed" in rows["3"] and "ZeroDivisionError: division by zero (quiz.py:" in rows["3"]
    assert "passed" in rows["4"]
    assert "not started" in rows["5"] and "the hole is still there" in rows["5"]
    assert r.stdout.rstrip().endswith("=> 1 of 6 task(s) pass")


def test_a_hang_a_crash_and_a_runaway_fork_fail_only_their_task(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    directory = _quiz(
        tmp_path,
        parts_a_run_step_needs="while True: pass",
        parts_part7_builds_on="import os; os._exit(3)",
        # a forked child that runs on into the checker's own code must not pass for the check
        file_work_stages="import os; return {'FROM'} if os.fork() else {'Dockerfile', 'FROM', 'COPY / ADD', 'ENV / CMD / ...', 'image'}",
        diff_id_is_the_digest_of="print('debugging output'); return 'compressed'",
    )
    r = subprocess.run([sys.executable, "-m", "part1_overview", "lab", "check", str(directory), "--timeout", "3", "-v"],
                       cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "TMPDIR": str(scratch)})
    rows = {line.split()[0]: line for line in r.stdout.splitlines() if line.strip()[:1].isdigit()}
    assert list(scratch.iterdir()) == []  # the killed and the crashed checks left no scratch directory
    assert "did not finish within 3 s" in rows["1"]
    assert "exited with code 3 before it could report" in rows["2"]
    assert "failed" in rows["3"] and "misses 4 stage(s)" in rows["3"]
    assert "failed" in rows["4"] and "debugging output" in r.stdout  # -v shows what the code printed
    assert r.returncode == 1


def test_a_student_module_that_does_not_load_fails_every_task_with_its_line(tmp_path):
    directory = _quiz(tmp_path)
    (directory / "quiz.py").write_text((directory / "quiz.py").read_text() + "\ndef broken(:\n")
    code, results, _ = lab_check("part1_overview", str(directory))
    assert code == 1
    assert {r["status"] for r in results} == {"failed"}
    assert all(r["detail"].startswith("your code does not load: SyntaxError") and "quiz.py" in r["detail"] for r in results)


def test_the_chapter_scripts_take_lab_before_their_own_arguments():
    # part 2's chapter requires --out; `lab` is dispatched before its parser runs
    r = subprocess.run([sys.executable, "-m", "part2_manual_oci", "lab", "--help"], cwd=REPO,
                       capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0 and "start" in r.stdout and "check" in r.stdout
