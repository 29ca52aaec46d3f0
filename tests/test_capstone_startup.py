"""What the builder imports: a command loads the registry client (httpx), the runtime (part 6,
part 5), the overlay code (part 7) and the RUN machinery only when a step needs them.

Start-up is most of a cached build's time, so a stray import is a regression nobody would see
in a test's pass/fail. These tests read the names of the modules ``python -X importtime``
reports for real command lines (never the times: timing belongs in ``bench/``).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support import REPO, make_context

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="RUN steps need root (namespaces, overlay mounts)")

#: what a build that runs no RUN step and pulls nothing never needs
REGISTRY = {"httpx", "capstone.registry", "capstone.download", "ssl"}
RUNTIME = {"part5_namespaces", "part6_runtime", "capstone.runner"}
UNION = {"part7_union"}
#: what no build needs: part 1's labs and course map, part 3's cbt working folders and command
#: line (a build uses part 3's Image value only), the stage processes' pickle
COURSE = {"part1_overview.labkit", "part1_overview.course", "part3_go_style_builder.builder",
          "part3_go_style_builder.cli", "pickle"}
#: what a step answered by the cache never needs: writing, reading or compressing a tar (part
#: 4 beyond RootDir, which reads the Dockerfile inside its context), archives, ADD's git and
#: --output, part 2's chapter image and validator, and what those pull in
TAR = {"tarfile", "part4_tar.writer", "part4_tar.extract", "part4_tar.blobinfo", "part4_tar.compression",
       "part4_tar.pipeline", "part4_tar.pgzip", "part4_tar.buffers"}
OPTIONAL = {"capstone.engine.gitsource", "capstone.engine.outputs", "capstone.engine.secretmounts",
            "part2_manual_oci.archive", "part2_manual_oci.busybox", "part2_manual_oci.validate",
            "part1_overview.host", "subprocess", "platform", "gzip"}
#: what making the models once cost at every start: dataclasses compiled six methods per class
#: from source (part 1's @model compiles nothing), and imported inspect (ast, dis, tokenize)
GENERATED = {"dataclasses", "inspect", "ast", "dis", "tokenize"}


#: all that ``--help`` may import beyond the interpreter's own start-up: the command table of
#: every command module and argparse, never what a command does (part 1's host checks and
#: their dataclasses and platform, the store's json, datetime, getpass)
HELP = {"capstone", "capstone.errors", "capstone.cli_build", "capstone.cli_registry", "capstone.cli_run",
        "capstone.cli_store", "part1_overview", "part1_overview.errors", "part1_overview.narrate",
        "part1_overview.lazy", "argparse", "gettext", "locale", "_locale", "runpy", "signal", "textwrap",
        # typing (TYPE_CHECKING); argparse's help formatter asks shutil for the terminal's width,
        # and shutil imports its archive codecs. A fresh venv's start-up imports none of these
        # (a developer's may, through .pth files): the set is the whole list, not a difference
        "typing", "_typing", "collections.abc", "shutil", "zlib", "_compression", "bz2", "_bz2",
        "lzma", "_lzma"}


def _imports(*argv: str) -> set[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True,
                       text=True, env=env, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    names = set()
    for line in r.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2 and "self [us]" not in line:
            names.add(line.rsplit("|", 1)[1].strip())
    assert "encodings" in names  # the report was read
    return names


def imported(*argv: str) -> set[str]:
    """The modules ``python -m capstone ARGV...`` imports (it must succeed)."""
    names = _imports("-m", "capstone", *argv)
    assert "capstone" in names
    return names


def interpreter_start_up() -> set[str]:
    """What ``python -c pass`` imports here (site and the environment's ``.pth`` files)."""
    return _imports("-c", "pass")


def packages(names: set[str], wanted: set[str]) -> set[str]:
    """Which of ``wanted`` (modules or packages) appear among ``names``."""
    return {w for w in wanted if any(n == w or n.startswith(w + ".") for n in names)}


def test_help_imports_neither_the_engine_nor_the_store():
    names = imported("--help")
    assert packages(names, REGISTRY | RUNTIME | UNION | {"capstone.engine", "capstone.store",
                                                          "capstone.dockerfile"}) == set()
    assert "part1_overview.labkit" not in names  # the lab machinery is for labs


def test_help_imports_only_the_command_table():
    """``part1_overview.doctor`` (a function) once came from a module of the same name, which had
    to be imported eagerly: ``--help`` loaded the host checks, dataclasses and platform."""
    extra = imported("--help") - interpreter_start_up()
    assert extra <= HELP, sorted(extra - HELP)


def test_a_build_without_run_needs_no_runtime_and_no_registry(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY a /a\nENV X=1\nCMD [\"/a\"]\n", {"a": "x"})
    cold = imported("--store", str(store.path), "build", "--no-cache", "-q", str(ctx))
    assert packages(cold, REGISTRY | RUNTIME | COURSE | GENERATED) == set()


def test_a_cached_build_imports_no_step_machinery(store, tmp_path):
    """The first build runs its RUN steps (part 6 over part 7); the second is answered by the
    cache at every step and loads neither, nor any layer's snapshot code."""
    ctx = make_context(tmp_path / "ctx", (
        "FROM capstone/busybox AS build\n"
        "WORKDIR /src\n"
        "COPY a .\n"
        "RUN cp a b\n"
        "FROM capstone/busybox\n"
        "COPY --from=build /src/b /b\n"
        "CMD [\"cat\", \"/b\"]\n"), {"a": "x"})
    first = imported("--store", str(store.path), "build", "--network", "none", "-q", "-t", "startup", str(ctx))
    assert packages(first, RUNTIME | UNION) == RUNTIME | UNION  # the test's own check: RUN did run
    assert packages(first, REGISTRY) == set()
    again = imported("--store", str(store.path), "build", "--network", "none", "-q", "-t", "startup", str(ctx))
    assert packages(again, REGISTRY | RUNTIME | UNION | COURSE | TAR | OPTIONAL | GENERATED) == set()


#: what a build answered by the cache never needs either: signal handling (snapshot and stage
#: children, pull, push, run), the secrets module (scratch names come from os.urandom), CSV
#: (RUN --mount, --output, --cache-to values), threads (a progress view's lock, stages at the
#: same time)
NOT_ON_A_HIT = {"signal", "secrets", "csv", "threading"}


def test_a_cached_build_imports_no_signal_secrets_csv_or_threads(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", (
        "FROM capstone/busybox\n"
        "WORKDIR /src\n"
        "COPY a .\n"
        "RUN cp a b\n"
        "ENV X=1\n"
        "CMD [\"cat\", \"b\"]\n"), {"a": "x"})
    imported("--store", str(store.path), "build", "--network", "none", "-q", "-t", "startup-hit", str(ctx))
    again = imported("--store", str(store.path), "build", "--network", "none", "-q", "-t", "startup-hit", str(ctx))
    # an environment's start-up may import some of these itself (.pth files): not the build's
    assert packages(again - interpreter_start_up(), NOT_ON_A_HIT) == set()
