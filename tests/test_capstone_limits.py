"""Bounded builds: every per-instruction cost is constant or linear in the instruction itself.

Config instructions record their changes and the image is made once per run of them (a stage
of N LABEL lines is no longer N copies of an ever larger config), variable expansion has a size
cap, the variables of a scope and the image config have limits, EXPOSE ranges stay within the
ports there are. The hostile Dockerfiles are files in ``tests/fixtures/hostile/``; each must end
in one ``Dockerfile:LINE: ...`` error. How the time grows is measured by
``tests/bench_capstone_config.py`` (timing decides no test).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from capstone.dockerfile import Lexer
from capstone.dockerfile.args import MAX_VARIABLES
from capstone.dockerfile.shell import MAX_EXPANSION
from capstone.engine import build
from capstone.engine.metadata import MAX_CONFIG_SIZE
from capstone.errors import DockerfileError, ExpansionError
from capstone.store import Store

REPO = Path(__file__).resolve().parent.parent
HOSTILE = REPO / "tests" / "fixtures" / "hostile"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    return Store.open(tmp_path_factory.mktemp("store"))


def context(tmp_path: Path, dockerfile: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def hostile(tmp_path: Path, name: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    shutil.copy(HOSTILE / f"Dockerfile.{name}", ctx / "Dockerfile")
    return ctx


# -- config instructions: recorded, the image made once ----------------------------------------------


def test_a_run_of_config_instructions_gives_one_history_entry_each(store, tmp_path):
    lines = [f"LABEL k{i}=v{i}" if i % 3 else f"ENV E{i}=x{i} F{i}=$E{i - 3}" for i in range(1, 301)]
    ctx = context(tmp_path, "FROM scratch\n" + "\n".join(lines) + "\nUSER 7\nCMD [\"x\"]\nMAINTAINER me\n")
    result = build(store, ctx, tags=["cfg:many"])
    image = store.load("cfg:many")
    cfg = image.config.config
    assert cfg.labels == {f"k{i}": f"v{i}" for i in range(1, 301) if i % 3}
    env = cfg.env_dict()
    assert env["E3"] == "x3" and env["F3"] == "" and env["F6"] == "x3" and env["F300"] == "x297"
    assert (cfg.user, cfg.cmd, image.config.author) == ("7", ("x",), "me")
    history = image.config.history
    assert len(history) == 303 and all(h.empty_layer for h in history)
    assert history[0].created_by == "LABEL k1=v1" and history[2].created_by == "ENV E3=x3 F3="
    assert history[-1].created_by == "MAINTAINER me"
    assert image.config_descriptor.digest == result.image_id
    # the cache answers the same instructions with the same image
    again = build(store, ctx, tags=["cfg:many"])
    assert again.image_id == result.image_id and again.steps[-1].cached


def test_config_steps_between_layer_steps_reach_the_layer_steps(store, tmp_path):
    ctx = context(tmp_path, "FROM scratch\nWORKDIR /a\nENV A=1\nUSER 5\nWORKDIR b\nLABEL x=y\nENV B=$A\n")
    (ctx / "f").write_text("f")
    build(store, ctx, tags=["cfg:mixed"])
    image = store.load("cfg:mixed")
    assert image.config.config.working_dir == "/a/b"
    assert image.config.config.env_dict()["B"] == "1"
    assert [h.created_by for h in image.config.history] == ["WORKDIR /a", "ENV A=1", "USER 5", "WORKDIR /a/b",
                                                             "LABEL x=y", "ENV B=1"]
    assert len(image.layers) == 2  # the two directories


# -- the hostile Dockerfiles ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "line", "message"), [
    ("arg-doubling", 23, f'failed to process "$A$A": the expansion is longer than {MAX_EXPANSION} characters'),
    ("replace-blowup", 14, f'failed to process "${{A//?/$A}}": the expansion is longer than {MAX_EXPANSION}'),
    ("config-too-large", 7, f"the image config would be larger than {MAX_CONFIG_SIZE} bytes"),
    ("variables-too-large", 5, f"setting d would make the variables take more than {MAX_VARIABLES} bytes"),
    ("expose-range", 3, "invalid containerPort: 1-4294967295"),
])
def test_hostile_dockerfile_ends_in_one_line_naming_its_line(store, tmp_path, name, line, message):
    ctx = hostile(tmp_path, name)
    with pytest.raises(DockerfileError) as info:
        build(store, ctx)
    assert info.value.line == line
    assert message in str(info.value)
    assert str(info.value).startswith(f"Dockerfile:{line}: ")


def test_cli_reports_the_doubling_in_one_line(tmp_path):
    ctx = hostile(tmp_path, "arg-doubling")
    r = subprocess.run([sys.executable, "-m", "capstone", "--store", str(tmp_path / "s"), "build", "-q", str(ctx)],
                       cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f'Dockerfile:23: failed to process "$A$A": the expansion is longer than {MAX_EXPANSION} characters']


def test_meta_args_have_the_same_limits(store, tmp_path):
    ctx = context(tmp_path, "ARG A=xx\n" + "ARG A=$A$A\n" * 21 + "FROM scratch\n")
    with pytest.raises(ExpansionError, match="the expansion is longer than") as info:
        build(store, ctx)
    assert info.value.line == 21


def test_expansion_cap_is_counted_while_the_result_is_made():
    lex = Lexer(max_length=100)
    env = {"A": "a" * 60}
    assert lex.process_word("$A", env) == "a" * 60
    for word in ("$A$A", '"$A$A"', "${X:-$A$A}", "${A//a/aa}", "x${A}y$A"):
        with pytest.raises(ExpansionError, match="longer than 100 characters"):
            lex.process_word(word, env)


def test_a_range_of_every_port_is_allowed(store, tmp_path):
    ctx = context(tmp_path, "FROM scratch\nEXPOSE 1-65535/udp 80\n")
    build(store, ctx, tags=["cfg:ports"])
    ports = store.load("cfg:ports").config.config.exposed_ports
    assert len(ports) == 65536 and "65535/udp" in ports and "80/tcp" in ports
