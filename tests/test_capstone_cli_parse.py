"""``python -m capstone parse``: listing with line numbers, --dump, --target, exit codes."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from capstone.__main__ import main

DOCKERFILE = """\
# syntax=docker/dockerfile:1
FROM alpine AS build
RUN <<EOF
echo hi
EOF
ENV a=1 \\
    b=2
FROM scratch AS unused
FROM busybox
COPY --from=build /x /y
"""


def write(tmp_path, text=DOCKERFILE, name="Dockerfile"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parse_lists_instructions_with_line_numbers_and_stages(tmp_path, capsys):
    assert main(["parse", str(write(tmp_path))]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:10] == [
        "      1  # syntax=docker/dockerfile:1",
        "      2  FROM alpine AS build",
        "    3-5  RUN <<EOF",
        "         | echo hi",
        "         | EOF",
        "    6-7  ENV a=1     b=2",
        "      8  FROM scratch AS unused",
        "      9  FROM busybox",
        "     10  COPY --from=build /x /y",
        "",
    ]
    assert "stage 1 unused: from scratch, lines 8  (skipped)" in out
    assert out[-1] == "build order for stage-2: build -> stage-2"


def test_parse_target_shows_the_plan(tmp_path, capsys):
    assert main(["parse", "--target", "BUILD", str(write(tmp_path))]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "build order for build: build"


def test_dump_prints_buildkit_format(tmp_path, capsys):
    assert main(["parse", "--dump", str(write(tmp_path))]) == 0
    assert capsys.readouterr().out == (
        '(from "alpine" "AS" "build")\n(run "<<EOF")\n(env "a" "1" "=" "b" "2" "=")\n'
        '(from "scratch" "AS" "unused")\n(from "busybox")\n(copy ["--from=build"] "/x" "/y")\n')


def test_parse_error_is_one_line_with_file_and_line_and_exit_1(tmp_path, capsys):
    path = write(tmp_path, "FROM alpine\nFORM x\n", name="Dockerfile.dev")
    assert main(["parse", str(path)]) == 1
    err = capsys.readouterr().err
    assert err == f"{path}:2: unknown instruction: FORM (did you mean FROM?)\n"


def test_stage_error_is_exit_1(tmp_path, capsys):
    path = write(tmp_path, "FROM alpine AS a\nCOPY --from=a /x /y\n")
    assert main(["parse", str(path)]) == 1
    assert capsys.readouterr().err == f"{path}:2: circular dependency detected on stage: a\n"


def test_missing_file_is_exit_1_and_usage_errors_are_exit_2(tmp_path, capsys):
    assert main(["parse", str(tmp_path / "nope")]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main(["parse"]) == 2
    assert main(["bogus-command"]) == 2
    assert main([]) == 2
    assert main(["--store", str(tmp_path), "parse", "--dump", str(write(tmp_path))]) == 0


def test_module_runs_as_a_program_and_debug_shows_a_traceback(tmp_path):
    bad = write(tmp_path, "FROM a\nCOPY x\n")
    proc = subprocess.run([sys.executable, "-m", "capstone", "parse", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().endswith(":2: COPY requires at least two arguments, but only one "
                                        "was provided. Destination could not be determined.")
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "capstone", "--debug", "parse", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" in proc.stderr


def test_stdin_and_warnings():
    proc = subprocess.run([sys.executable, "-m", "capstone", "parse", "-"],
                          input="FROM a\nRUN a \\\n\n b\n", capture_output=True, text=True)
    assert proc.returncode == 0
    assert "Dockerfile:4: warning: Empty continuation line found in: RUN a  b" in proc.stderr


def test_invalid_utf8_goes_through_the_cli_as_go_hex_escapes(tmp_path):
    path = tmp_path / "Dockerfile"
    path.write_bytes(b"FROM busybox\nRUN echo \xff\xfe ok\nLABEL k=\xc3\n")
    proc = subprocess.run([sys.executable, "-m", "capstone", "parse", "--dump", str(path)],
                          capture_output=True)
    assert proc.returncode == 0
    assert proc.stdout == (b'(from "busybox")\n(run "echo \\xff\\xfe ok")\n'
                           b'(label "k" "\\xc3" "=")\n')
    proc = subprocess.run([sys.executable, "-m", "capstone", "parse", str(path)],
                          capture_output=True)
    assert proc.returncode == 0
    assert b"      2  RUN echo \xff\xfe ok\n" in proc.stdout  # the file's own bytes


def test_invalid_utf8_in_a_bad_instruction_is_a_one_line_error(tmp_path):
    path = tmp_path / "Dockerfile"
    path.write_bytes(b"FROM busybox\n\xff\xfeRUN x\n")
    proc = subprocess.run([sys.executable, "-m", "capstone", "parse", str(path)],
                          capture_output=True)
    assert proc.returncode == 1
    assert proc.stderr == (str(path).encode()
                           + b":2: unknown instruction: \xff\xfeRUN (did you mean RUN?)\n")


def test_dump_does_not_check_instructions_but_parse_does(tmp_path, capsys):
    path = tmp_path / "Dockerfile"
    path.write_text("FORM busybox\nCOPY x\n")
    assert main(["parse", "--dump", str(path)]) == 0
    assert capsys.readouterr().out == '(form "")\n(copy "x")\n'
    assert main(["parse", str(path)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"{path}:1: unknown instruction: FORM (did you mean FROM?)")


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=120))
def test_cli_exit_code_is_0_or_1_for_any_bytes(data):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "Dockerfile"
        path.write_bytes(data)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
            for argv in (["parse", str(path)], ["parse", "--dump", str(path)]):
                code = main(argv)
                assert code in (0, 1)
                if code == 1:  # one line for the error (after any warnings)
                    last = err.getvalue().rstrip("\n").split("\n")[-1]
                    assert last.startswith(str(path)) and "Traceback" not in err.getvalue()
                err.seek(0)
                err.truncate()
