"""Part 1: the course map, the pipeline and the host check, against this real host."""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from part1_overview import PARTS, PIPELINE, HostReport, Narrator, cgroup_version, doctor, host_checks
from part1_overview.__main__ import tour
from part1_overview.doctor import TOOLS, _kernel_at_least, _subuid_ranges

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
    missing = [name for name, path in report.tools.items() if path is None]
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
    for tool in ("skopeo", "umoci", "runc", "buildah", "newuidmap", "slirp4netns"):
        assert checks[tool].ok
        assert TOOLS[tool] in checks[tool].detail
        assert checks[tool].needed_by
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
    assert all(c["ok"] for c in data["checks"])


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
