"""One error root: every part's errors derive from part 1's ``CourseError``; what the course
refuses on purpose is one line naming the place, and a bug keeps its traceback instead of
passing for a user's mistake."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest
from support import REPO, make_context

from capstone.__main__ import main
from capstone.engine import build
from capstone.engine.errors import StepError
from capstone.store import Store
from part1_overview import CourseError

PACKAGES = ("part1_overview", "part2_manual_oci", "part3_go_style_builder", "part4_tar", "part5_namespaces",
            "part6_runtime", "part7_union", "capstone")


def _modules():
    for package in PACKAGES:
        yield importlib.import_module(package)
        for info in pkgutil.walk_packages([str(REPO / package.replace(".", "/"))], prefix=package + "."):
            if info.name.rsplit(".", 1)[-1] in ("__main__", "lab") or ".cbt." in info.name + ".":
                continue  # chapter scripts and labs run on import; their errors are their own
            yield importlib.import_module(info.name)


def test_every_public_error_of_the_course_derives_from_course_error():
    strays = []
    for module in _modules():
        for name, cls in vars(module).items():
            if (inspect.isclass(cls) and issubclass(cls, Exception) and cls.__module__ == module.__name__
                    and not name.startswith("_") and not issubclass(cls, Warning)
                    and not issubclass(cls, CourseError)):
                strays.append(f"{module.__name__}.{name}")
    assert strays == [], f"errors outside part1_overview.CourseError: {strays}"


def test_a_step_refusal_is_a_line_of_the_dockerfile(tmp_path):
    store = Store.open(tmp_path / "store")
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nENV A=1\nEXPOSE 99999\n")
    with pytest.raises(StepError) as info:
        build(store, ctx, network="none")
    assert str(info.value) == "Dockerfile:3: invalid containerPort: 99999"


def test_a_bug_in_a_step_keeps_its_traceback(tmp_path, monkeypatch):
    """A TypeError inside a step is not turned into ``Dockerfile:LINE: ...``: it leaves the
    build as itself, and the command line does not print it as a user's error."""
    import capstone.engine.executor as executor

    def broken(*args, **kwargs):
        raise TypeError("a bug in record_config")

    monkeypatch.setattr(executor, "record_config", broken)
    store = Store.open(tmp_path / "store")
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nENV A=1\n")
    with pytest.raises(TypeError, match="a bug in record_config"):
        build(store, ctx, network="none")
    with pytest.raises(TypeError, match="a bug in record_config"):
        main(["--store", str(store.path), "build", "-q", "--network", "none", str(ctx)])


def test_the_command_line_prints_a_bug_as_a_traceback(tmp_path):
    """Run as a program, a bug ends with Python's traceback (exit 1), never one tidy line."""
    code = ("import sys, capstone.engine.executor as x\n"
            "def broken(*a, **k): raise TypeError('a bug in record_config')\n"
            "x.record_config = broken\n"
            "from capstone.__main__ import cli\n"
            "sys.exit(cli())\n")
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nENV A=1\n")
    proc = subprocess.run([sys.executable, "-c", code, "--store", str(tmp_path / "store"), "build", "-q",
                           "--network", "none", str(ctx)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and proc.stderr.rstrip().endswith("TypeError: a bug in record_config")
