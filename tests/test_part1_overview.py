"""Part 1: the course map, the pipeline and the host check, against this real host."""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import pty
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from part1_overview import PARTS, PIPELINE, HostReport, Narrator, cgroup_version, doctor, host_checks, replace
from part1_overview.__main__ import tour
from part1_overview.host import IF_MISSING, OPTIONAL_TOOLS, TOOL_PACKAGES, TOOLS, _kernel_at_least, _subuid_ranges

ROOT = Path(__file__).resolve().parent.parent


def test_doctor_finds_everything_the_course_needs_on_this_host():
    report = doctor()
    assert isinstance(report, HostReport)
    assert report.root == (os.geteuid() == 0)
    assert report.user_namespaces and report.max_user_namespaces > 0
    assert report.overlayfs
    assert report.pivot_root
    assert report.seccomp and report.seccomp_mode in ("disabled", "strict", "filter")
    assert {"allow", "errno", "kill_process"} <= set(report.seccomp_actions)
    assert report.cgroup_version == cgroup_version() != "none"
    missing = [name for name, path in report.tools.items() if path is None and name not in OPTIONAL_TOOLS]
    assert missing == []


def test_cgroup_version_agrees_with_the_mount_table():
    mounts = Path("/proc/self/mounts").read_text().split("\n")
    fstypes = {line.split()[2] for line in mounts if len(line.split()) > 2}
    version = cgroup_version()
    if version == "hybrid":
        assert {"cgroup", "cgroup2"} <= fstypes
    elif version == "v1":
        assert "cgroup" in fstypes and "cgroup2" not in fstypes
    else:
        assert version == "v2" and "cgroup2" in fstypes


def test_seccomp_filter_on_a_child_process_is_reported():
    # A child installs a real seccomp filter (one BPF instruction: allow everything) and then
    # runs doctor(): the report must see mode "filter" and one filter more than its parent had.
    code = textwrap.dedent(
        """
        import ctypes, json
        from part1_overview import doctor
        before = doctor().seccomp_filters
        class SockFilter(ctypes.Structure):
            _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]
        class SockFprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]
        BPF_RET_K, SECCOMP_RET_ALLOW = 0x06, 0x7FFF0000
        PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
        insns = (SockFilter * 1)(SockFilter(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
        prog = SockFprog(1, insns)
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, ctypes.get_errno()
        assert libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) == 0, ctypes.get_errno()
        after = doctor()
        print(json.dumps({"before": before, "mode": after.seccomp_mode, "filters": after.seccomp_filters}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    seen = json.loads(out)
    assert seen["mode"] == "filter"
    assert seen["filters"] == seen["before"] + 1


def test_subuid_ranges_count_lines_of_the_user_by_name_or_uid(tmp_path):
    subuid = tmp_path / "subuid"
    subuid.write_text("alice:100000:65536\nbob:165536:65536\n1000:231072:65536\n\n")
    assert _subuid_ranges("alice", 1000, str(subuid)) == 2
    assert _subuid_ranges("bob", 1001, str(subuid)) == 1
    assert _subuid_ranges("carol", 1002, str(subuid)) == 0
    assert _subuid_ranges("carol", 1002, str(tmp_path / "absent")) == 0


def test_kernel_version_comparison_for_overlay_in_user_namespaces():
    assert _kernel_at_least("5.11.0-generic", 5, 11)
    assert _kernel_at_least("6.1.0", 5, 11)
    assert not _kernel_at_least("5.10.200", 5, 11)
    assert not _kernel_at_least("4.19.0", 5, 11)
    assert not _kernel_at_least("weird", 5, 11)


def test_host_checks_name_the_tools_of_the_issue_with_their_purpose():
    checks = {c.name: c for c in host_checks(doctor())}
    for name in ("root", "user namespaces", "overlayfs", "cgroups", "seccomp", "pivot_root"):
        assert checks[name].ok, checks[name]
    for tool in ("skopeo", "umoci", "runc", "newuidmap", "slirp4netns"):
        assert checks[tool].ok
        assert TOOLS[tool] in checks[tool].detail
        assert checks[tool].needed_by
        assert checks[tool].if_missing.startswith(IF_MISSING[tool])
    assert "max_user_namespaces=" in checks["user namespaces"].detail


def test_json_output_is_the_course_the_pipeline_and_this_host():
    proc = subprocess.run(
        [sys.executable, "-m", "part1_overview", "--json"], check=True, capture_output=True, text=True
    )
    data = json.loads(proc.stdout)
    assert [p["package"] for p in data["course"]] == [p.package for p in PARTS]
    assert [s["what"] for s in data["pipeline"]] == [s.what for s in PIPELINE]
    assert data["host"]["root"] == (os.geteuid() == 0)
    assert data["host"]["max_user_namespaces"] == doctor().max_user_namespaces
    assert {c["name"] for c in data["checks"]} >= {"overlayfs", "seccomp", "skopeo", "runc"}
    assert all(c["ok"] or c["optional"] for c in data["checks"])
    assert all(c["if_missing"] for c in data["checks"])
    capstone = data["course"][-1]
    assert capstone["package"] == "capstone" and "build" in capstone["command"]


def test_tour_prints_the_map_the_pipeline_and_the_host_table():
    out = io.StringIO()
    failed = tour(Narrator(out, plain=True))
    text = out.getvalue()
    assert failed == 0
    assert text.startswith("== Part 1: the tour ==")
    for part in PARTS:
        assert part.package in text and part.command in text
    for stage in PIPELINE:
        assert stage.how in text
    for check in host_checks(doctor()):
        assert check.name in text
    assert "tar archive plus JSON" in text
    assert "Everything the course uses is here" in text and "   ! " not in text
    assert text.rstrip().endswith("=> tour finished")


def test_every_part_of_the_map_is_a_package_with_a_chapter_script():
    for part in PARTS:
        assert importlib.util.find_spec(part.package) is not None, part.package
        assert (ROOT / part.package / "__main__.py").is_file(), f"{part.package} has no __main__.py"


def test_the_map_of_dependencies_is_acyclic_and_only_names_parts():
    packages = {p.package for p in PARTS}
    uses = {p.package: set(p.uses) - {"*"} for p in PARTS}
    for deps in uses.values():
        assert deps <= packages
    done: set[str] = set()
    while len(done) < len(uses):
        ready = {p for p, deps in uses.items() if p not in done and deps <= done}
        assert ready, f"cycle among {set(uses) - done}"
        done |= ready


def _imported_parts(package_dir: Path, packages: set[str]) -> dict[str, str]:
    found = {}
    for path in package_dir.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in packages:
                    found.setdefault(top, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_parts_import_only_what_the_map_allows():
    packages = {p.package for p in PARTS}
    violations = []
    for part in PARTS:
        if part.uses == ("*",):
            continue
        for imported, where in _imported_parts(ROOT / part.package, packages).items():
            if imported != part.package and imported not in part.uses:
                violations.append(f"{where}: {part.package} imports {imported}")
    assert violations == []


def _chapter_argv(command: str) -> list[str]:
    words = command.split()
    assert words[:2] == ["python", "-m"], command
    return [sys.executable, *words[1:]]


def test_every_command_of_the_map_is_accepted_by_its_chapter_today():
    # The map shows only commands that exist: each one, with --help appended, must get past
    # its chapter's argument parser (exit 0). What does not exist yet goes in ``later``.
    for part in PARTS:
        proc = subprocess.run(
            _chapter_argv(part.command) + ["--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, f"{part.command}: {proc.stderr}"
        assert "usage:" in proc.stdout, part.command
    capstone = next(p for p in PARTS if p.package == "capstone")
    assert capstone.command.startswith("python -m capstone build ")
    assert (ROOT / capstone.command.split()[-1] / "Dockerfile").is_file()


def test_tour_shows_what_comes_later_apart_from_what_runs_now():
    out = io.StringIO()
    tour(Narrator(out, plain=True))
    lines = out.getvalue().splitlines()
    for part in PARTS:
        assert f"   $ {part.command}" in lines
        if part.later:
            assert f"     later: {part.later}" in lines
            assert f"   $ {part.later}" not in lines


def _stdout_closed_run(args: list[str]) -> subprocess.CompletedProcess:
    # The reader of the pipe is gone before the program writes: every write fails with EPIPE,
    # as when `| head -1` has read its line and exited.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "part1_overview", *args], stdout=write_end, stderr=subprocess.PIPE, text=True
        )
    finally:
        os.close(write_end)


def test_a_closed_pipe_ends_the_tour_quietly():
    for args in (["--json"], ["--plain"], []):
        proc = _stdout_closed_run(args)
        assert proc.stderr == "", (args, proc.stderr)
        assert proc.returncode == 141, args  # 128 + SIGPIPE, as a shell reports `yes | head -1`


def test_json_piped_into_head_prints_the_first_line():
    proc = subprocess.run(
        f"{sys.executable} -m part1_overview --json | head -1", shell=True, capture_output=True, text=True
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "{\n", "")


def _report_without_anything() -> HostReport:
    return replace(
        doctor(),
        root=False,
        user_namespaces=False,
        overlayfs=False,
        cgroup_version="none",
        seccomp=False,
        pivot_root=False,
        tools={name: None for name in TOOLS},
    )


def test_every_failed_check_says_what_will_not_work():
    checks = host_checks(_report_without_anything())
    assert [c.name for c in checks if c.ok] == []
    for check in checks:
        assert check.if_missing == IF_MISSING[check.name] + (
            f" (Debian: apt-get install {TOOL_PACKAGES.get(check.name, check.name)})" if check.name in TOOLS else ""
        )
    by_name = {c.name: c for c in checks}
    assert "part 6" in by_name["pivot_root"].if_missing and "will not start" in by_name["pivot_root"].if_missing
    assert "copy snapshotter" in by_name["overlayfs"].if_missing
    assert by_name["busybox"].if_missing.endswith("(Debian: apt-get install busybox-static)")
    assert by_name["newuidmap"].if_missing.endswith("(Debian: apt-get install uidmap)")

    out = io.StringIO()
    failed = tour(Narrator(out, plain=True), _report_without_anything())
    text = out.getvalue()
    required = [c for c in checks if not c.optional]
    assert [c.name for c in checks if c.optional] == sorted(OPTIONAL_TOOLS) and len(required) < len(checks)
    assert failed == len(required)
    for check in required:
        assert f"   ! no {check.name} here: {check.if_missing}" in text
    for name in OPTIONAL_TOOLS:  # reported, never a failure
        assert f"   ! no {name} here" not in text
        assert f"   {name} not installed: benchmarks have no reference" in text
    assert text.rstrip().endswith(f"=> tour finished; {len(required)} check(s) failed")
    assert "Everything the course uses is here" not in text


def test_tools_missing_from_path_are_reported_by_the_real_command():
    env = {**os.environ, "PATH": "/nonexistent"}
    proc = subprocess.run([sys.executable, "-m", "part1_overview"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for tool in ("skopeo", "umoci", "runc", "newuidmap", "slirp4netns"):
        assert f"   ! no {tool} here: {IF_MISSING[tool]}" in proc.stdout
    assert "   buildah not installed: benchmarks have no reference" in proc.stdout
    data = json.loads(
        subprocess.run([sys.executable, "-m", "part1_overview", "--json"], env=env, capture_output=True, text=True).stdout
    )
    runc = next(c for c in data["checks"] if c["name"] == "runc")
    assert runc["ok"] is False and runc["if_missing"].startswith(IF_MISSING["runc"])
    assert data["host"]["tools"]["runc"] is None


def _readme_block(readme: Path, command: str) -> list[str]:
    lines = readme.read_text().splitlines()
    start = lines.index(f"$ {command}") + 1
    return lines[start : lines.index("```", start)]


def test_the_readme_shows_what_the_tour_prints_today():
    # Steps 1-3 and 5 do not depend on the host: the chapter page must quote them exactly.
    pasted = _readme_block(ROOT / "part1_overview" / "README.md", "python -m part1_overview")
    out = io.StringIO()
    tour(Narrator(out, plain=True))
    printed = out.getvalue().splitlines()

    def without_host(lines: list[str]) -> list[str]:
        return lines[: lines.index("=> 4. what this host can do")] + lines[lines.index("=> 5. where to start") :]

    assert without_host(pasted) == without_host(printed)


def test_an_ordinary_user_is_told_what_needs_root():
    # A child drops to uid/gid 65534 (nobody) after its imports, then runs the real tour.
    code = textwrap.dedent(
        """
        import os, tabulate
        from part1_overview import Narrator
        from part1_overview.__main__ import tour
        os.setgroups([])
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)
        tour(Narrator(plain=True))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    root = next(line for line in lines if line.startswith("   root "))
    assert root.split()[:2] == ["root", "NO"] and "euid=65534" in root
    assert f"   ! no root here: {IF_MISSING['root']}" in lines
    # user namespaces still work for nobody here, and they give pivot_root its CAP_SYS_ADMIN
    assert next(line for line in lines if line.startswith("   user namespaces ")).split()[2] == "yes"
    assert next(line for line in lines if line.startswith("   pivot_root ")).split()[1] == "yes"
    assert lines[-1] == "=> tour finished; 1 check(s) failed"


def test_part1_passes_on_a_host_without_the_benchmark_tools(tmp_path):
    # buildah and podman are optional: the part 1 tests run again in a mount namespace of their
    # own where each one on PATH is hidden under a bind mount of /dev/null (not executable, so
    # not found), as on a fresh machine that never installed them.
    hidden = [path for path in (shutil.which(tool) for tool in sorted(OPTIONAL_TOOLS)) if path]
    script = (
        'for p in "$@"; do mount --bind /dev/null "$p" || exit 99; done; '
        f'{shlex.quote(sys.executable)} -c "import shutil, sys; sys.exit(any(map(shutil.which, {sorted(OPTIONAL_TOOLS)!r})))" || exit 98; '
        f"exec {shlex.quote(sys.executable)} -m pytest -q -p no:cacheprovider -o addopts= tests/test_part1_overview.py "
        "-k 'not without_the_benchmark_tools'"
    )
    unshare = ["unshare", "--mount", "--propagation", "private"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    proc = subprocess.run([*unshare, "sh", "-c", script, "sh", *hidden], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = proc.stdout.strip().splitlines()[-1]
    assert " passed" in summary and not any(word in summary for word in ("failed", "error", "skipped")), summary


# -- narration at the terminal's width -------------------------------------------------------------

PROSE = (  # written at about 95 columns, as chapter scripts write
    "An image is a tar archive plus JSON: layers are tar streams of files, the config says what to\n"
    "run (Cmd, Env, WorkingDir) and lists the layers' diff_ids, the manifest points at the config and\n"
    "the layer blobs, and index.json names the manifests, so that every piece is named by its digest:\n"
    "- a first item that is long enough to need more than one line at eighty columns, surely, it is;\n"
    "  its second line\n"
    "- a second item\n"
    "\n"
    "A new paragraph."
)


def test_narration_fills_paragraphs_to_the_terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out = io.StringIO()
    n = Narrator(out, plain=False)  # rich, as on a terminal; COLUMNS sets its width
    n.say(PROSE)
    n.fact("digest", "sha256:" + "a" * 64)
    n.warn("a warning that is long enough to wrap onto a second line at eighty columns, as this one does")
    lines = out.getvalue().splitlines()
    assert max(map(len, lines)) <= 80, lines
    # the paragraph's words in order, filled: no line is left short before a word that fits
    first = lines[: next(i for i, line in enumerate(lines) if line.startswith("   - "))]
    assert " ".join(w for line in first for w in line.split()) == " ".join(PROSE.split("\n- ")[0].split())
    assert all(line.startswith("   ") and not line.startswith("    ") for line in first)
    assert all(len(a) + 1 + len(b.split()[0]) > 79 for a, b in zip(first, first[1:]))
    item = next(i for i, line in enumerate(lines) if line.startswith("   - a first item"))
    assert lines[item + 1].startswith("     ") and "its second line" in " ".join(lines[item: item + 3])
    assert lines[lines.index("   - a second item") + 1] == "" and "   A new paragraph." in lines
    # a value too long for the line moves to the next one whole, under its label
    digest = lines.index("   digest:")
    assert lines[digest + 1] == "     sha256:" + "a" * 64
    warning = next(i for i, line in enumerate(lines) if line.startswith("   ! a warning"))
    assert lines[warning + 1].startswith("     ")


def test_narration_off_a_terminal_keeps_the_lines_as_written():
    out = io.StringIO()
    n = Narrator(out, plain=True)
    n.say(PROSE)
    assert out.getvalue().splitlines() == [f"   {line}" for line in PROSE.splitlines()]


def test_every_chapter_line_fits_80_columns_on_a_terminal():
    # the tour on a real terminal (a pty) at COLUMNS=80: narration, tables and rules all fit
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.chdir(ROOT)
            os.environ.update(COLUMNS="80", LINES="24")
            os.environ.pop("NO_COLOR", None)
            os.execv(sys.executable, [sys.executable, "-m", "part1_overview"])
        finally:
            os._exit(127)
    seen = b""
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child is gone
            break
        if not data:
            break
        seen += data
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, seen.decode(errors="replace")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode()).replace("\r", "")
    lines = text.splitlines()
    assert any(line.startswith("   An image is a tar archive plus JSON") for line in lines)
    assert max(map(len, lines)) <= 80, [line for line in lines if len(line) > 80]


def test_a_command_output_line_wraps_under_its_text_on_a_terminal_only(monkeypatch):
    line = "    explain: layer sha256:" + "b" * 64 + " (98 B gzip), diff_id sha256:" + "c" * 64
    out = io.StringIO()
    Narrator(out, plain=True).line(line, hang=13)  # off a terminal: as it is
    assert out.getvalue() == line + "\n"
    monkeypatch.setenv("COLUMNS", "80")
    out = io.StringIO()
    Narrator(out, plain=False).line(line, hang=13)
    lines = out.getvalue().splitlines()
    assert max(map(len, lines)) <= 80 and len(lines) > 1
    assert " ".join(" ".join(lines).split()) == " ".join(line.split())
    assert all(later.startswith("        sha256:") or later.startswith("        (") for later in lines[1:]), lines
