"""Part 6: both cgroup code paths, for real where this host allows it.

These machines have the hybrid layout: the controllers are on v1 (/sys/fs/cgroup/<name>), and
/sys/fs/cgroup/unified is a v2 tree with none of memory, pids or cpu (only hugetlb). So the v2
path is exercised against that tree: version detection, making a group, moving a process into
it, removing it, and the error naming a controller the tree lacks. Writing v2 limits needs a
v2-only host (the tests of test_part6_runtime cover the limits through v1).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from part6_runtime import Limits
from part6_runtime.cgroups import CGROUP_ROOT, Cgroup, CgroupError, cgroup_version

UNIFIED = CGROUP_ROOT / "unified"


def _cgroup_lines(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cgroup").read_text().splitlines()


def test_the_host_layout_is_detected():
    # hybrid: no cgroup.controllers at the top of /sys/fs/cgroup, one in the unified tree
    assert cgroup_version() == 1
    assert cgroup_version(UNIFIED) == 2


def test_v2_group_is_made_joined_and_removed():
    name = f"part6-v2-{os.getpid()}"
    group = Cgroup.create(name, Limits(), root=UNIFIED)
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        assert group.version == 2 and group.directories == (UNIFIED / "part6" / name,)
        group.add(sleeper.pid)
        assert f"0::/part6/{name}" in _cgroup_lines(sleeper.pid)
        assert (group.directories[0] / "cgroup.procs").read_text().split() == [str(sleeper.pid)]
        assert not group.oom_killed()
    finally:
        sleeper.kill()
        sleeper.wait()
        directory = group.directories[0]
        group.remove()
    assert not directory.exists()
    try:
        (UNIFIED / "part6").rmdir()
    except OSError:
        pass  # another run still has a group there


def test_v2_without_the_controller_names_it():
    with pytest.raises(CgroupError, match=r"cgroup v2 controller\(s\) memory, pids not available in /sys/fs/cgroup/unified"):
        Cgroup.create(f"part6-v2-{os.getpid()}", Limits(memory=64 << 20, pids=10), root=UNIFIED)
    assert not (UNIFIED / "part6" / f"part6-v2-{os.getpid()}").exists()


def test_v1_group_limits_and_membership():
    name = f"part6-v1-{os.getpid()}"
    group = Cgroup.create(name, Limits(memory=48 << 20, pids=9, cpus=1.5))
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        assert group.version == 1
        # one directory in every mounted hierarchy, as runc makes them
        assert {d.relative_to(CGROUP_ROOT).parts[0] for d in group.directories} >= {"memory", "pids", "cpu", "devices", "cpuset"}
        group.add(sleeper.pid)
        lines = _cgroup_lines(sleeper.pid)
        for controller in ("memory", "pids", "cpu"):
            assert any(controller in line.split(":")[1].split(",") and line.endswith("/" + name) for line in lines), lines
        assert group.read("memory.limit_in_bytes") == str(48 << 20)
        assert group.read("pids.max") == "9" and group.read("cpu.cfs_quota_us") == "150000"
    finally:
        sleeper.kill()
        sleeper.wait()
        directories = group.directories
        group.remove()
    assert directories and not any(d.exists() for d in directories)
