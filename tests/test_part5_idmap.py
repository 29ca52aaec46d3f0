"""uid/gid maps: the model, /etc/subuid parsing, and both unprivileged paths run for real.

The machine runs the tests as root, so the unprivileged paths are exercised by a child that
drops to an ordinary user, ``alice-PID`` (PID: this test run's), which the session fixture
creates with a subordinate range and removes afterwards. The name is the run's own: another
suite on the same host creates and removes its own user, never this one.
"""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from part5_namespaces import (
    CloneFlags,
    IdMap,
    IdMapError,
    NamespaceError,
    call_as_user,
    call_in_namespaces,
    current_user_mapping,
    ensure_user,
    read_map,
    subid_mapping,
    write_id_maps,
)
from part5_namespaces.idmap import format_map, parse_map

F = CloneFlags
USER = f"alice-{os.getpid()}"


@pytest.fixture(scope="session")
def alice():
    created = ensure_user(USER)
    try:
        yield pwd.getpwnam(USER)
    finally:
        if created:
            subprocess.run(["userdel", USER], check=True, capture_output=True)


def _inside_view() -> dict:
    return {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "uid_map": read_map("self", "uid"),
        "gid_map": read_map("self", "gid"),
        "setgroups": Path("/proc/self/setgroups").read_text().strip(),
        "caps": Path("/proc/self/status").read_text().split("CapEff:")[1].split()[0],
    }


# -- the model ---------------------------------------------------------------------------------------


def test_idmap_line_and_parse_round_trip():
    maps = (IdMap(0, 1000, 1), IdMap(1, 100000, 65536))
    assert format_map(maps) == "0 1000 1\n1 100000 65536\n"
    assert parse_map("         0       1000          1\n         1     100000      65536\n") == maps
    assert maps[1].to_outside(1000) == 100999 and maps[0].to_outside(5) is None


def test_idmap_rejects_nonsense():
    with pytest.raises(ValueError, match="invalid id mapping"):
        IdMap(0, 1000, 0)
    with pytest.raises(ValueError):
        IdMap(-1, 0, 1)


def test_current_user_mapping_makes_the_caller_root():
    uid_maps, gid_maps = current_user_mapping()
    assert uid_maps == (IdMap(0, os.geteuid(), 1),) and gid_maps == (IdMap(0, os.getegid(), 1),)


def test_subid_mapping_reads_names_and_numeric_uids(tmp_path, alice):
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text(f"# delegated ranges\nbob:300000:10\n{USER}:200000:65536\n")
    subgid.write_text(f"{alice.pw_uid}:400000:1000\n")
    uid_maps, gid_maps = subid_mapping(USER, subuid_file=subuid, subgid_file=subgid)
    assert uid_maps == (IdMap(0, alice.pw_uid, 1), IdMap(1, 200000, 65536))
    assert gid_maps == (IdMap(0, alice.pw_gid, 1), IdMap(1, 400000, 1000))
    assert subid_mapping(alice.pw_uid, subuid_file=subuid, subgid_file=subgid) == (uid_maps, gid_maps)


def test_subid_mapping_is_none_without_a_range(tmp_path, alice):
    empty = tmp_path / "empty"
    empty.write_text("")
    assert subid_mapping(USER, subuid_file=empty, subgid_file=empty) is None
    assert subid_mapping(USER, subuid_file=tmp_path / "absent", subgid_file=empty) is None


def test_subid_mapping_names_a_bad_line_and_an_unknown_user(tmp_path, alice):
    bad = tmp_path / "subuid"
    bad.write_text(f"{USER}:200000\n")
    with pytest.raises(IdMapError, match=rf"{bad}:1: expected name:start:count"):
        subid_mapping(USER, subuid_file=bad, subgid_file=bad)
    with pytest.raises(IdMapError, match="no such user 'nobody-here'"):
        subid_mapping("nobody-here")


def test_the_fixture_user_has_a_delegated_range(alice):
    mapping = subid_mapping(USER)
    assert mapping is not None
    uid_maps, _ = mapping
    assert uid_maps[0] == IdMap(0, alice.pw_uid, 1) and uid_maps[1].count >= 65536


# -- root: any mapping, written directly --------------------------------------------------------------


def test_root_writes_a_range_directly_and_the_child_becomes_root_inside():
    maps = [IdMap(0, 100000, 65536)]
    view = call_in_namespaces(_inside_view, F.NEWUSER, uid_maps=maps, gid_maps=maps)
    assert view["uid_map"] == view["gid_map"] == (IdMap(0, 100000, 65536),)
    assert (view["uid"], view["gid"]) == (0, 0)  # switched to the mapped root
    assert view["setgroups"] == "allow"


def test_root_single_mapping_keeps_setgroups_allowed():
    uid_maps, gid_maps = current_user_mapping()
    view = call_in_namespaces(_inside_view, F.NEWUSER, uid_maps=uid_maps, gid_maps=gid_maps)
    assert view["uid_map"] == (IdMap(0, 0, 1),) and view["setgroups"] == "allow"


def test_without_maps_the_child_is_the_overflow_user():
    view = call_in_namespaces(_inside_view, F.NEWUSER)
    assert view["uid_map"] == () and view["uid"] == 65534


def test_write_id_maps_can_only_write_once():
    def write_twice_from_inside_parent():
        # a child of this process unshares; we write its maps, then try again
        from part5_namespaces import spawn

        r, w = os.pipe()
        child = spawn(lambda: os.read(r, 1) and 0, F.NEWUSER)
        try:
            write_id_maps(child.pid, [IdMap(0, 100000, 10)], [IdMap(0, 100000, 10)])
            try:
                write_id_maps(child.pid, [IdMap(0, 100000, 10)], None)
            except IdMapError as e:
                return e.errno, str(e)
            return None
        finally:
            os.write(w, b"x")
            child.wait()

    code, message = call_in_namespaces(write_twice_from_inside_parent, CloneFlags(0))
    assert code == errno.EPERM and "uid_map" in message


# -- alice: the unprivileged paths --------------------------------------------------------------------


def test_unprivileged_single_mapping_writes_setgroups_deny(alice):
    def as_alice():
        uid_maps, gid_maps = current_user_mapping()
        return os.getuid(), call_in_namespaces(_inside_view, F.NEWUSER, uid_maps=uid_maps, gid_maps=gid_maps)

    outside_uid, view = call_as_user(USER, as_alice)
    assert outside_uid == alice.pw_uid
    assert view["uid_map"] == (IdMap(0, alice.pw_uid, 1),)
    assert view["gid_map"] == (IdMap(0, alice.pw_gid, 1),)
    assert view["setgroups"] == "deny"
    assert (view["uid"], view["gid"]) == (0, 0)
    assert int(view["caps"], 16) != 0  # all capabilities, inside the user namespace


def test_unprivileged_range_goes_through_newuidmap(alice):
    def as_alice():
        uid_maps, gid_maps = subid_mapping(USER)
        return call_in_namespaces(_inside_view, F.NEWUSER | F.NEWPID, uid_maps=uid_maps, gid_maps=gid_maps)

    view = call_as_user(USER, as_alice)
    start, count = subid_mapping(USER)[0][1].outside, subid_mapping(USER)[0][1].count
    assert view["uid_map"] == (IdMap(0, alice.pw_uid, 1), IdMap(1, start, count))
    assert view["setgroups"] == "allow"  # newgidmap with a delegated range needs no deny
    assert view["uid"] == 0


def test_files_made_inside_are_owned_by_the_mapped_ids_outside(alice):
    shared = tempfile.mkdtemp(prefix="part5-test-")
    os.chown(shared, alice.pw_uid, alice.pw_gid)
    try:

        def make_files():
            Path(shared, "root").write_text("x")
            Path(shared, "www").write_text("x")
            os.chown(Path(shared, "www"), 33, 33)  # www-data inside
            return 0

        def as_alice():
            uid_maps, gid_maps = subid_mapping(USER)
            return call_in_namespaces(make_files, F.NEWUSER, uid_maps=uid_maps, gid_maps=gid_maps)

        call_as_user(USER, as_alice)
        start = subid_mapping(USER)[0][1].outside
        assert os.stat(Path(shared, "root")).st_uid == alice.pw_uid
        assert os.stat(Path(shared, "www")).st_uid == start + 32
    finally:
        shutil.rmtree(shared)


def test_all_namespaces_at_once_work_unprivileged_because_the_user_namespace_comes_first(alice):
    everything = F.NEWUSER | F.NEWPID | F.NEWNS | F.NEWUTS | F.NEWIPC | F.NEWNET | F.NEWCGROUP

    def as_alice():
        uid_maps, gid_maps = current_user_mapping()
        return call_in_namespaces(lambda: (os.getpid(), os.getuid()), everything, uid_maps=uid_maps, gid_maps=gid_maps)

    assert call_as_user(USER, as_alice) == (1, 0)


def test_unprivileged_unshare_without_a_user_namespace_is_named(alice):
    def as_alice():
        return call_in_namespaces(lambda: 0, F.NEWPID | F.NEWUTS)

    with pytest.raises(NamespaceError) as info:
        call_as_user(USER, as_alice)
    assert info.value.errno == errno.EPERM
    assert "spawn: unshare(NEWUTS|NEWPID): Operation not permitted" in str(info.value)


def test_unprivileged_mapping_of_someone_elses_id_is_refused_by_newuidmap(alice):
    def as_alice():
        return call_in_namespaces(lambda: 0, F.NEWUSER, uid_maps=[IdMap(0, 0, 1)], gid_maps=[IdMap(0, 0, 1)])

    with pytest.raises(NamespaceError) as info:
        call_as_user(USER, as_alice)
    assert "newuidmap" in str(info.value) and "not allowed" in str(info.value)


def test_chapter_user_demo_shows_alice_as_root_inside(alice):
    from part5_namespaces.demos import demo_user

    result = demo_user(USER)
    assert result.isolated
    assert result.row("uid gid (getuid)") == (f"{alice.pw_uid} {alice.pw_gid}", "0 0", "0 0")
    assert result.row("/proc/self/uid_map")[1] == f"0 {alice.pw_uid} 1"
    assert result.row("/proc/self/setgroups") == ("allow", "deny", "allow")
    start = subid_mapping(USER)[0][1].outside
    assert result.row("file made inside: owner on the host")[1:] == (str(alice.pw_uid), str(start + 999))
