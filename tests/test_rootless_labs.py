"""The classroom labs as a student on a shared lab server runs them: as an ordinary user with a
subordinate id range (the CI's user, tests/ci_user.py), no root anywhere.

docs/teaching.md tells the instructor to run every answer key as a student before the course:
this is that run, for every part. Parts 5-7 check real namespaces, containers and overlays,
which the student's checks make inside user namespaces of their own; part 6's also needs its
rootless runtime (the busybox rootfs without chown, a user namespace for every container).
Each run must leave nothing in the student's TMPDIR, however its overlays left their work dirs.
"""

from __future__ import annotations

import json

import pytest
from test_labs import PACKAGES, lab_of

from part1_overview.labkit import starter_sources


def lab_check(user, package: str, *args: str) -> tuple[int, dict[int, str], str]:
    r = user.python("-m", package, "lab", "check", *args, "--json", timeout=900)
    assert r.stdout.strip().startswith("["), r.stdout[-1000:] + r.stderr[-3000:]
    return r.returncode, {row["task"]: row["status"] for row in json.loads(r.stdout)}, r.stdout + r.stderr


@pytest.mark.parametrize("package", PACKAGES)
def test_the_answer_key_passes_every_task_as_an_ordinary_user(user, package):
    code, statuses, output = lab_check(user, package, "--solution")
    assert statuses == {t.number: "passed" for t in lab_of(package).tasks}, output
    assert code == 0
    assert user.leftovers() == []


def test_a_student_does_part6s_lab_as_an_ordinary_user(user):
    """``lab start`` in the student's home, the untouched starter (every task not started),
    then the student's setup.py with every hole filled: every task passes, run as the user."""
    lab = lab_of("part6_runtime")
    directory = user.home / "lab6"
    start = user.python("-m", "part6_runtime", "lab", "start", str(directory))
    assert start.returncode == 0, start.stderr
    code, statuses, output = lab_check(user, "part6_runtime", str(directory))
    assert statuses == {t.number: "not started" for t in lab.tasks}, output
    assert code == 1
    for name, text in starter_sources(lab, {t.number for t in lab.tasks}).items():
        (directory / name).write_text(text)
    user.give(directory)
    code, statuses, output = lab_check(user, "part6_runtime", str(directory))
    assert statuses == {t.number: "passed" for t in lab.tasks}, output
    assert code == 0
    assert user.leftovers() == []
