"""Applying layers in order: whiteouts, opaque directories, replacements, metadata."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tarfile
import warnings

import pytest
from support import hard, sym

from part4_tar import LayerError, LayerWriter, apply_layers, extract_layer, write_layer


def reg(name, data=b"", mode=0o644, mtime=1_600_000_000):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), mode, mtime
    return ti, data


def dir_(name, mode=0o755, mtime=1_600_000_000):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, mode, mtime
    return ti, None


def layer(*entries) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for ti, data in entries:
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


def listing(root) -> dict[str, str]:
    """path -> 'dir' | 'link:TARGET' | file content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                out[rel] = "link:" + os.readlink(path)
            elif os.path.isdir(path):
                out[rel] = "dir"
            else:
                with open(path) as f:
                    out[rel] = f.read()
    return out


def base():
    return layer(
        dir_("etc"), reg("etc/motd", b"hello"), reg("etc/hosts", b"127.0.0.1"),
        dir_("var"), dir_("var/cache"), reg("var/cache/a", b"a"), dir_("var/cache/sub"), reg("var/cache/sub/b", b"b"),
        dir_("opt"), reg("opt/tool", b"v1"), reg("data", b"file"), dir_("lib"), reg("lib/x", b"x"),
        sym("bin", "usr/bin"), dir_("usr"), dir_("usr/bin"), reg("usr/bin/sh", b"sh"),
    )


def test_layers_applied_in_order_give_the_image_root_filesystem(tmp_path):
    upper = layer(
        dir_("etc"), reg("etc/.wh.motd"),             # delete a file
        reg(".wh.opt"),                                # delete a directory
        dir_("var"), dir_("var/cache"), reg("var/cache/.wh..wh..opq"), reg("var/cache/new", b"new"),
        dir_("data"), reg("data/inside", b"now a dir"),  # file replaced by a directory
        reg("lib", b"now a file"),                     # directory replaced by a file
        reg("bin/ls", b"ls"),                          # written through bin -> usr/bin, inside the root
    )
    apply_layers([base(), upper], tmp_path / "root")
    assert listing(tmp_path / "root") == {
        "etc": "dir", "etc/hosts": "127.0.0.1",
        "var": "dir", "var/cache": "dir", "var/cache/new": "new",
        "data": "dir", "data/inside": "now a dir", "lib": "now a file",
        "bin": "link:usr/bin", "usr": "dir", "usr/bin": "dir", "usr/bin/sh": "sh", "usr/bin/ls": "ls",
    }


def test_opaque_marker_keeps_this_layers_entries_whatever_their_order(tmp_path):
    root = tmp_path / "root"
    extract_layer(base(), root)
    # entries sorting before ".wh..wh..opq" come first in the stream, and must survive it
    upper = layer(
        dir_("var/cache"), reg("var/cache/+early", b"early"), dir_("var/cache/sub"), reg("var/cache/sub/c", b"c"),
        reg("var/cache/.wh..wh..opq"), reg("var/cache/late", b"late"),
    )
    extract_layer(upper, root)
    cache = {k: v for k, v in listing(root).items() if k.startswith("var/cache/")}
    # sub/b came from the lower layer: hidden, although sub itself is in this layer
    assert cache == {"var/cache/+early": "early", "var/cache/sub": "dir", "var/cache/sub/c": "c", "var/cache/late": "late"}


def test_whiteout_never_deletes_an_entry_of_its_own_layer(tmp_path):
    root = tmp_path / "root"
    extract_layer(layer(reg("keep", b"mine"), reg(".wh.keep"), reg(".wh.missing")), root)
    assert listing(root) == {"keep": "mine"}


def test_whiteouts_can_be_kept_as_plain_files(tmp_path):
    root = tmp_path / "root"
    extract_layer(layer(reg("a", b"a"), reg(".wh.a"), dir_("d"), reg("d/.wh..wh..opq")), root, whiteouts=False)
    assert listing(root) == {"a": "a", ".wh.a": "", "d": "dir", "d/.wh..wh..opq": ""}


def test_layer_writer_whiteouts_round_trip_through_apply_layers(tmp_path):
    src = tmp_path / "src"
    (src / "etc").mkdir(parents=True)
    (src / "etc/keep").write_text("keep")
    (src / "etc/gone").write_text("gone")
    (src / "cache").mkdir()
    (src / "cache/old").write_text("old")
    lower = io.BytesIO()
    write_layer(src, lower, "gzip")
    upper = io.BytesIO()
    with LayerWriter(upper, "zstd") as w:
        w.add_whiteout("etc/gone")
        w.add_opaque("cache")
    lower.seek(0)
    upper.seek(0)
    apply_layers([lower, upper], tmp_path / "root")
    assert listing(tmp_path / "root") == {"etc": "dir", "etc/keep": "keep", "cache": "dir"}


def test_layers_given_as_paths(tmp_path):
    blob = tmp_path / "l.tar"
    blob.write_bytes(layer(reg("x", b"1")).getvalue())
    apply_layers([blob, str(blob)], tmp_path / "root")
    assert listing(tmp_path / "root") == {"x": "1"}


def test_existing_file_is_replaced_not_written_through_its_hard_link(tmp_path):
    root = tmp_path / "root"
    extract_layer(layer(reg("a", b"long original content"), hard("b", "a")), root)
    assert os.stat(root / "a").st_ino == os.stat(root / "b").st_ino
    extract_layer(layer(reg("a", b"short")), root)
    assert (root / "a").read_bytes() == b"short"
    assert (root / "b").read_bytes() == b"long original content"


def test_modes_owners_and_directory_mtimes_are_restored_after_children(tmp_path):
    root = tmp_path / "root"
    ti, _ = dir_("ro", mode=0o555, mtime=1_000_000_000)
    ti.uid, ti.gid = 123, 456
    f, data = reg("ro/file", b"x", mode=0o2711, mtime=1_100_000_000)
    f.uid, f.gid = 7, 8
    extract_layer(layer((ti, None), (f, data)), root)
    st_dir, st_file = os.lstat(root / "ro"), os.lstat(root / "ro/file")
    assert (stat.S_IMODE(st_dir.st_mode), st_dir.st_uid, st_dir.st_gid, st_dir.st_mtime) == (0o555, 123, 456, 1_000_000_000)
    assert (stat.S_IMODE(st_file.st_mode), st_file.st_uid, st_file.st_gid, st_file.st_mtime) == (0o2711, 7, 8, 1_100_000_000)


def test_root_directory_entry_sets_the_roots_metadata(tmp_path):
    root = tmp_path / "root"
    extract_layer(layer(dir_("./", mode=0o750, mtime=1_234_567_890), reg("./a", b"a")), root)
    st = os.stat(root)
    assert (stat.S_IMODE(st.st_mode), st.st_mtime) == (0o750, 1_234_567_890)


@pytest.mark.parametrize("unshare", [["unshare", "--user", "--map-root-user"], ["unshare", "--user"]],
                         ids=["root-of-a-user-namespace", "unmapped-user-in-a-user-namespace"])
def test_device_nodes_where_not_permitted_are_left_out_with_one_warning(tmp_path, unshare):
    """In a user namespace (as its root, or as an unmapped user) mknod of a device is EPERM:
    the real thing. The layer's other entries are extracted; the devices make one warning."""
    blob = tmp_path / "dev.tar"
    with tarfile.open(blob, "w") as tar:
        for name, minor in (("dev/null", 3), ("dev/zero", 5)):
            ti = tarfile.TarInfo(name)
            ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, minor
            tar.addfile(ti)
        ti = tarfile.TarInfo("etc/hostname")
        ti.size = 3
        tar.addfile(ti, io.BytesIO(b"box"))
    code = (
        "import os, sys, warnings; from part4_tar import extract_layer, SkippedEntriesWarning\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    with open(sys.argv[1], 'rb') as blob:\n"
        "        extract_layer(blob, sys.argv[2])\n"
        "assert [w.category for w in seen] == [SkippedEntriesWarning], seen\n"
        "print(seen[0].message)\n"
        "print(sorted(os.listdir(sys.argv[2] + '/dev')), open(sys.argv[2] + '/etc/hostname').read())\n"
    )
    proc = subprocess.run([*unshare, sys.executable, "-c", code, str(blob), str(tmp_path / "root")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "2 device node(s) not created (dev/null, dev/zero): mknod(2) of a device is refused to this process "
        "(only the host's root may make one; a container gets its /dev from the runtime)",
        "[] box",
    ]
    # as real root the same layer extracts, devices included, and warns of nothing
    with warnings.catch_warnings(), open(blob, "rb") as f:
        warnings.simplefilter("error")
        extract_layer(f, tmp_path / "real")
    assert stat.S_ISCHR(os.lstat(tmp_path / "real/dev/null").st_mode)


def test_entry_under_a_regular_file_is_a_clear_error(tmp_path):
    root = tmp_path / "root"
    try:
        extract_layer(layer(reg("f", b"file"), reg("f/child", b"x")), root)
    except LayerError as exc:
        assert str(exc) == "layer entry 'f/child': 'f' is not a directory"
    else:
        raise AssertionError("extracting under a regular file should fail")


def test_an_empty_stream_is_an_empty_layer(tmp_path):
    extract_layer(io.BytesIO(b""), tmp_path / "root")
    assert listing(tmp_path / "root") == {}


def test_unprivileged_extraction_keeps_its_own_ids_and_skips_privileged_xattrs(tmp_path):
    """In a user namespace without a root mapping the extractor is not root: no chown, no
    security.* attributes, everything else as in the layer."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "tool").write_bytes(b"#!/bin/sh\n")
    os.chmod(src / "tool", 0o750)
    os.chown(src / "tool", 1234, 1234)
    os.setxattr(src / "tool", "security.capability", bytes.fromhex("0100000200200000000000000000000000000000"))
    os.setxattr(src / "tool", "user.origin", b"layer")
    blob = tmp_path / "layer.tar.gz"
    with open(blob, "wb") as f:
        write_layer(src, f)
    code = "import os, sys; from part4_tar import extract_layer; print(os.geteuid()); extract_layer(open(sys.argv[1], 'rb'), sys.argv[2])"
    proc = subprocess.run(["unshare", "--user", sys.executable, "-c", code, str(blob), str(tmp_path / "root")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "65534"  # not root inside
    st = os.stat(tmp_path / "root/tool")
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o750, 0)  # mode kept; owner is whoever extracted
    assert os.listxattr(tmp_path / "root/tool") == ["user.origin"]
