"""Part 6: pivot_root with a put_old directory, and pivot_root(".", "."), stage by stage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from part6_runtime import make_busybox_rootfs
from part6_runtime.pivots import PUT_OLD, compare_pivot_forms

REPO = Path(__file__).resolve().parent.parent


def test_both_forms_end_in_the_rootfs_with_the_host_gone(tmp_path):
    rootfs = make_busybox_rootfs(tmp_path / "rootfs")
    before = sorted(os.listdir(rootfs))
    marker = tmp_path / "host-marker"
    marker.write_text("only the host has me\n")
    seen = compare_pivot_forms(rootfs)
    blog, dot = seen["put_old"], seen['"." and "."']
    # the blog's way: the whole host is under /.pivot_root until the unmount
    assert blog["after pivot_root: /"] == sorted(before + [PUT_OLD])
    assert set(blog[f"after pivot_root: /{PUT_OLD}"]) <= set(os.listdir("/")) and "proc" in os.listdir("/")
    assert blog["after pivot_root: mounts"] > blog["after the unmount: mounts"] == 2
    assert blog["after the unmount: /"] == before
    # runc's way: the old root stacked on the new one at /, then detached
    assert dot["after pivot_root: mounts at /"] == 2 and dot["after the unmount: mounts at /"] == 1
    assert dot["after pivot_root: /"] == dot["after the unmount: /"] == before
    assert dot["after the unmount: mounts"] == 2
    assert sorted(os.listdir(rootfs)) == before  # no put_old left behind, no mount on the host
    assert not any(line.split()[4].startswith(str(tmp_path)) for line in Path("/proc/self/mountinfo").read_text().splitlines())


def test_the_chapter_shows_both():
    r = subprocess.run([sys.executable, "-m", "part6_runtime", "pivot"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"ls /{PUT_OLD}: " in r.stdout and "(the host's root)" in r.stdout
    assert "mounts at /: 2 (the old root is stacked on top of the new one)" in r.stdout
