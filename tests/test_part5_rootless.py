"""Part 5's rootless operation: which map an ordinary user gets, and a function run as root of
a user namespace of the user's own (``buildah unshare``), for real, as the CI's user."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from ci_user import CI_USER, NO_RANGE_USER, require_user, subid_start

from part5_namespaces import (
    CloneFlags,
    IdMap,
    add_subids_command,
    call_in_namespaces,
    in_user_namespace,
    rootless_mapping,
)


def test_a_user_with_a_range_gets_it_whole():
    entry = require_user(CI_USER)
    mapping = rootless_mapping(CI_USER)
    start = subid_start(entry)
    assert mapping.full and mapping.warning() is None
    assert mapping.uid_maps == (IdMap(0, entry.pw_uid, 1), IdMap(1, start, 65536))
    assert mapping.gid_maps[0] == IdMap(0, entry.pw_gid, 1)
    assert mapping.describe() == f"0 {entry.pw_uid} 1; 1 {start} 65536"
    assert mapping.ids == 65537
    assert rootless_mapping(entry.pw_uid) == mapping


def test_a_user_without_a_range_gets_the_single_mapping_and_the_fix():
    mapping = rootless_mapping(NO_RANGE_USER)
    assert not mapping.full and mapping.ids == 1
    assert mapping.uid_maps == (IdMap(0, 65534, 1),)
    assert mapping.limitation == "no subordinate ids for nobody in /etc/subuid and /etc/subgid"
    warning = mapping.warning()
    assert warning.startswith("no subordinate ids for nobody in /etc/subuid and /etc/subgid: only uid 65534 is mapped "
                              "(as root), so files of other owners, chown to them and a non-root USER cannot work; ")
    assert warning.endswith(f"add a range with `{add_subids_command('nobody')}`")


def test_the_usermod_command_proposes_a_range_no_one_has():
    command = add_subids_command("someone")
    m = re.fullmatch(r"sudo usermod --add-subuids (\d+)-(\d+) --add-subgids \1-\2 someone", command)
    assert m and int(m.group(2)) - int(m.group(1)) == 65535
    for path in ("/etc/subuid", "/etc/subgid"):
        for line in Path(path).read_text().split():
            _, start, count = line.split(":")
            assert int(start) + int(count) <= int(m.group(1))


def test_in_user_namespace_tells_the_initial_one_from_others():
    assert in_user_namespace() is False
    assert call_in_namespaces(in_user_namespace, CloneFlags.NEWUSER, uid_maps=(IdMap(0, 0, 1),), gid_maps=(IdMap(0, 0, 1),))


PROBE = textwrap.dedent("""\
    import os, sys
    from pathlib import Path
    from part5_namespaces import in_user_namespace, run_in_user_namespace

    def inside():
        print(os.getuid(), os.getgid(), in_user_namespace(), flush=True)
        print(Path("/proc/self/uid_map").read_text(), end="", flush=True)
        return 7

    print("outside", os.getuid(), in_user_namespace(), flush=True)
    sys.exit(run_in_user_namespace(inside))
""")


def test_run_in_user_namespace_makes_the_user_root_over_its_range(user):
    proc = user.python("-c", PROBE)
    assert proc.returncode == 7, proc.stderr
    lines = [" ".join(line.split()) for line in proc.stdout.splitlines()]
    assert lines == [f"outside {user.uid} False", "0 0 True", f"0 {user.uid} 1", f"1 {subid_start(user.entry)} 65536"]


def test_a_signal_to_the_caller_reaches_the_function(user):
    script = textwrap.dedent("""\
        import time
        from part5_namespaces import run_in_user_namespace

        def inside():
            print("ready", flush=True)
            time.sleep(60)

        print("exit", run_in_user_namespace(inside), flush=True)
    """)
    proc = subprocess.Popen(user.argv([sys.executable, "-c", script]),
                            env=user.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=user.base)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)  # setpriv exec'd the interpreter: this is the caller
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == f"exit {128 + signal.SIGTERM}\n"
