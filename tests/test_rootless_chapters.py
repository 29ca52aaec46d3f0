"""The chapter scripts of parts 2-7, run by an ordinary user with a subordinate id range (the
CI's user, tests/ci_user.py), as a student on a shared lab server runs them; and by a user
without a range (the single mapping, with its one-line warning).

Every run is the real one: new namespaces, id maps written by newuidmap, overlay mounts with
userxattr, containers. Each test checks what the user's run printed and that it left nothing in
its TMPDIR.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from ci_user import REPO, subid_start

from part2_manual_oci import validate_layout


def ok(proc) -> str:
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def test_part2_makes_an_image_layout_owned_by_the_user(user):
    out = user.home / "p2"
    ok(user.python("-m", "part2_manual_oci", "--out", str(out)))
    validate_layout(out)
    assert {p.stat().st_uid for p in [out, *out.rglob("*")]} == {user.uid}
    assert user.leftovers() == []


def test_part3_cbt_demonstration(user):
    stdout = ok(user.python("-m", "part3_go_style_builder", env={"CBT_HOME": str(user.home / "cbt")}))
    assert "=> done" in stdout
    assert user.leftovers() == []


def test_part4_layers_demonstration(user):
    stdout = ok(user.python("-m", "part4_tar"))
    assert "=> packed, digested, and applied two layers" in stdout
    assert user.leftovers() == []


def test_part5_every_namespace_inside_a_user_namespace_of_the_users_range(user):
    stdout = ok(user.python("-m", "part5_namespaces", "all"))
    start = subid_start(user.entry)
    assert f"uid_map inside: 0 {user.uid} 1; 1 {start} 65536" in stdout
    # all seven demonstrations ran, each in namespaces of its own
    assert stdout.count("isolated: yes: the namespace inode differs") == 7, stdout
    assert f"unshare --map-root-user --map-users={start},1,65536 --map-groups=" in stdout
    # the user demonstration: the single mapping and the range, side by side
    user_rows = stdout.split("user namespace: isolates")[1]
    assert re.search(rf"/proc/self/uid_map\s+0 0 4294967295\s+0 {user.uid} 1\s+0 {user.uid} 1; 1 {start} 65536", user_rows)
    assert re.search(rf"file made inside: owner on the host\s+-\s+{user.uid}\s+{start + 999}", user_rows)
    assert user.leftovers() == []


def test_part6_containers_get_the_users_range(user):
    stdout = ok(user.python("-m", "part6_runtime"))
    start = subid_start(user.entry)
    assert f"uid_map inside: 0 {user.uid} 1; 1 {start} 65536" in stdout
    assert "PID 1\n" in stdout and "Seccomp:\t2" in stdout
    # alice (uid 1000 of the image) is mapped: her step runs
    assert "uid=1000(alice) gid=1000(alice)" in stdout
    # this host delegates no cgroup to ordinary users: one line, and the limits are skipped
    assert re.search(r"skipped: cgroup limits need a cgroup delegated to this user, and /sys/fs/cgroup/\S+ is not", stdout)
    assert "sh -c 'exit 7': 7" in stdout
    assert user.leftovers() == []


def test_part6_run_as_a_user_maps_the_range_and_notes_the_limits(user):
    ok(user.python("-c", f"from part6_runtime import make_busybox_rootfs; make_busybox_rootfs({str(user.home / 'rootfs')!r})"))
    proc = user.python("-m", "part6_runtime", "run", "--memory", "64m", str(user.home / "rootfs"), "--",
                       "sh", "-c", "id -u; cat /proc/self/uid_map; stat -c %u /home/alice")
    start = subid_start(user.entry)
    lines = [" ".join(line.split()) for line in ok(proc).splitlines()]
    # the rootfs was made outside any namespace: alice's home stayed the user's (0 inside)
    assert lines == ["0", f"0 {user.uid} 1", f"1 {start} 65536", "0"]
    assert proc.stderr.count("\n") == 1 and "note: cgroup limits need a cgroup delegated" in proc.stderr
    private = user.python("-m", "part6_runtime", "run", "--network", "private", str(user.home / "rootfs"), "--", "true")
    assert private.returncode == 125
    assert private.stderr.strip().endswith("network 'private' needs /dev/net/tun for slirp4netns, which uid "
                                           f"{user.uid} may not open (crw------- here): use --network none or --network host")
    assert user.leftovers() == []


def test_part7_overlay_with_userxattr_in_a_user_namespace(user):
    stdout = ok(user.python("-m", "part7_union"))
    assert f"uid_map 0 {user.uid} 1; 1 {subid_start(user.entry)} 65536): overlays mount with userxattr" in stdout
    assert "userxattr /" in stdout  # the mount command line
    assert "user.overlay.opaque on upper/var/cache: y" in stdout
    assert "merged view == base + layer: True" in stdout and "base + copy layer == merged view: True" in stdout
    assert user.leftovers() == []


# -- a user without a range: the single mapping ------------------------------------------------------


def test_single_mapping_says_what_cannot_work_and_the_fix(nobody):
    stdout = ok(nobody.python("-m", "part5_namespaces", "all"))
    warning = [line for line in stdout.splitlines() if "usermod" in line]
    assert len(warning) == 1
    assert f"only uid {nobody.uid} is mapped (as root), so files of other owners, chown to them and a non-root USER cannot work" in warning[0]
    assert re.search(r"add a range with `sudo usermod --add-subuids \d+-\d+ --add-subgids \d+-\d+ nobody`", warning[0])
    assert f"uid_map inside: 0 {nobody.uid} 1" in stdout
    assert stdout.count("isolated: yes") == 7


def test_single_mapping_runs_a_container_with_one_warning(nobody):
    ok(nobody.python("-c", f"from part6_runtime import make_busybox_rootfs; make_busybox_rootfs({str(nobody.home / 'rootfs')!r})"))
    proc = nobody.python("-m", "part6_runtime", "run", str(nobody.home / "rootfs"), "--", "sh", "-c", "id -u; cat /proc/self/setgroups")
    assert ok(proc).split() == ["0", "deny"]
    assert proc.stderr.count("\n") == 1 and "usermod --add-subuids" in proc.stderr
    demo = ok(nobody.python("-m", "part6_runtime"))
    assert "skipped: alice (uid 1000) is not mapped by 0 65534 1" in demo
    assert nobody.leftovers() == []


def test_the_users_json_doctor_sees_its_range(user):
    """part 1 tells a user what rootless needs; with the CI user's range it finds one."""
    host = json.loads(ok(user.python("-m", "part1_overview", "--json")))["host"]
    assert (host["root"], host["subuid_ranges"], host["overlay_in_userns"]) == (False, 1, True), host


def test_cgroup_limits_apply_where_the_cgroup_is_delegated(user):
    """root delegates a memory cgroup to the user (owns it, the user's process inside): the
    container's group is made below it and the limit holds (the OOM killer, 137)."""
    from part6_runtime.cgroups import CGROUP_ROOT, cgroup_version

    assert cgroup_version() == 1, "this machine kind has the v1 controllers (MACHINE.md): the test delegates a v1 memory group"
    own = next(line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()
               if "memory" in line.split(":")[1].split(","))
    delegated = CGROUP_ROOT / "memory" / own.lstrip("/") / f"capstone-delegated-{os.getpid()}"
    delegated.mkdir()
    try:
        for p in [delegated, *delegated.iterdir()]:
            os.chown(p, user.uid, user.entry.pw_gid)
        ok(user.python("-c", f"from part6_runtime import make_busybox_rootfs; make_busybox_rootfs({str(user.home / 'limits-rootfs')!r})"))
        hog = 'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived'
        # the user's process starts in the delegated group, as a login session would
        argv = ["sh", "-c", f'echo $$ > {delegated}/cgroup.procs && exec "$@"', "sh",
                *user.argv([sys.executable, "-m", "part6_runtime", "run", "--memory", "32m", str(user.home / "limits-rootfs"), "--", "sh", "-c", hog])]
        proc = subprocess.run(argv, env=user.env(), cwd=REPO, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert proc.returncode == 137, proc.stdout + proc.stderr
        assert "survived" not in proc.stdout and "note:" not in proc.stderr
        assert [p.name for p in delegated.iterdir() if p.is_dir()] == []  # the container's group is gone
    finally:
        delegated.rmdir()
    assert user.leftovers() == []
