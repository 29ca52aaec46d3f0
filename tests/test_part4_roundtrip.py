"""Directory -> layer -> directory is exact, for every entry type; other tar readers agree."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import tarfile

import pytest

from part4_tar import LayerInfo, LayerWriter, extract_layer, layer_info, write_layer
from part4_tar.tarformat import REGTYPE, header

# security.capability v2 for cap_net_raw=ep (what `setcap cap_net_raw+ep FILE` writes)
CAP_NET_RAW = bytes.fromhex("0100000200200000000000000000000000000000")
LONG_DIR = "d" * 120
LONG_NAME = "n" * 150
LONG_TARGET = "/" + "t" * 200


def build_every_type(root: str) -> None:
    """A tree with each kind of entry a layer can hold, with owners, modes, xattrs, odd names."""
    os.makedirs(os.path.join(root, "etc/sub"))
    os.makedirs(os.path.join(root, LONG_DIR))

    def write(rel: str, data: bytes, mode: int) -> str:
        path = os.path.join(root, rel)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        return path

    write("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
    write("etc/empty", b"", 0o600)
    ping = write("ping", os.urandom(100_000), 0o4755)  # setuid, and a file capability
    os.setxattr(ping, "security.capability", CAP_NET_RAW)
    os.setxattr(ping, "user.comment", b"pings")
    write("etc/sub/shadow", b"secret\n", 0o640)
    os.chown(os.path.join(root, "etc/sub/shadow"), 0, 42)
    os.chown(os.path.join(root, "etc/sub"), 1000, 1000)
    os.chmod(os.path.join(root, "etc/sub"), 0o750)
    os.setxattr(os.path.join(root, "etc/sub"), "user.dir", b"\x00\xffbinary")
    write(os.path.join(LONG_DIR, LONG_NAME), b"a long path needs a PAX header\n", 0o644)
    write("caf\u00e9.txt", b"non-ASCII name\n", 0o644)
    write(os.fsdecode(b"raw-\xff-name"), b"a name that is not UTF-8\n", 0o644)
    big_ids = write("big-ids", b"owned by an id too large for ustar\n", 0o644)
    os.chown(big_ids, 3_000_000, 3_000_001)
    # hard links: three names, one inode
    os.link(os.path.join(root, "etc/passwd"), os.path.join(root, "etc/passwd.hard"))
    os.link(os.path.join(root, "etc/passwd"), os.path.join(root, "passwd-link"))
    os.symlink("/etc/passwd", os.path.join(root, "abs-link"))
    os.symlink("../passwd", os.path.join(root, "etc/sub/rel-link"))
    os.symlink("does/not/exist", os.path.join(root, "dangling"))
    os.symlink(LONG_TARGET, os.path.join(root, "long-link"))
    os.chown(os.path.join(root, "abs-link"), 7, 8, follow_symlinks=False)
    os.mkfifo(os.path.join(root, "fifo"), 0o620)
    os.mknod(os.path.join(root, "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(os.path.join(root, "loop9"), 0o660 | stat.S_IFBLK, os.makedev(7, 9))
    os.chmod(os.path.join(root, "null"), 0o666)
    os.chmod(os.path.join(root, "loop9"), 0o660)
    # fixed, varied mtimes (directories last: creating entries changes them)
    for i, (dirpath, dirnames, filenames) in enumerate(sorted(os.walk(root), reverse=True)):
        for j, name in enumerate(sorted(filenames + dirnames)):
            os.utime(os.path.join(dirpath, name), (1_600_000_000 + i * 100 + j,) * 2, follow_symlinks=False)
    os.utime(root, (1_600_000_000, 1_600_000_000))


def snapshot(root: str) -> dict:
    """Everything a layer must preserve, per path; plus the hard link groups."""
    out = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            entry = {
                "type": stat.S_IFMT(st.st_mode),
                "mode": stat.S_IMODE(st.st_mode),
                "owner": (st.st_uid, st.st_gid),
                "mtime": int(st.st_mtime),
                "xattrs": {k: os.getxattr(path, k, follow_symlinks=False) for k in sorted(os.listxattr(path, follow_symlinks=False))},
            }
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    entry["sha256"] = hashlib.sha256(f.read()).hexdigest()
                if st.st_nlink > 1:
                    inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                entry["target"] = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                entry["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
            out[rel] = entry
    out["<hard links>"] = sorted(sorted(group) for group in inodes.values())
    return out


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    build_every_type(str(src))
    return src


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_round_trip_of_every_entry_type_is_exact(tree, tmp_path, compression):
    blob = tmp_path / "layer"
    with open(blob, "wb") as f:
        info = write_layer(tree, f, compression)
    assert isinstance(info, LayerInfo) and info.compression == compression
    dst = tmp_path / "dst"
    with open(blob, "rb") as f:
        extract_layer(f, dst)
    before, after = snapshot(str(tree)), snapshot(str(dst))
    assert after == before
    # the things most easily lost, checked by name
    assert after["ping"]["xattrs"]["security.capability"] == CAP_NET_RAW
    assert after["ping"]["mode"] == 0o4755
    assert after["big-ids"]["owner"] == (3_000_000, 3_000_001)
    assert after["abs-link"]["owner"] == (7, 8)
    assert after["long-link"]["target"] == LONG_TARGET
    assert after["null"]["rdev"] == (1, 3)
    assert ["etc/passwd", "etc/passwd.hard", "passwd-link"] in after["<hard links>"]


def test_digest_size_and_diff_id_match_the_bytes(tree, tmp_path):
    blob = tmp_path / "layer.tar.gz"
    with open(blob, "wb") as f:
        info = write_layer(tree, f, "gzip")
    data = blob.read_bytes()
    assert info.size == len(data)
    assert info.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    tar = subprocess.run(["gzip", "-dc", str(blob)], capture_output=True, check=True).stdout
    assert info.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert layer_info(io.BytesIO(data)) == info


def test_gnu_tar_extracts_our_layer_to_the_same_tree(tree, tmp_path):
    blob = tmp_path / "layer.tar"
    with open(blob, "wb") as f:
        write_layer(tree, f, "none")
    dst = tmp_path / "gnu"
    dst.mkdir()
    subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", str(blob), "-C", str(dst)], check=True)
    ours, gnu = snapshot(str(tree)), snapshot(str(dst))
    assert gnu == ours


def test_entries_carry_no_user_names_and_use_pax_for_what_ustar_cannot_hold(tree, tmp_path):
    blob = tmp_path / "layer.tar"
    with open(blob, "wb") as f:
        write_layer(tree, f, "none")
    with tarfile.open(blob) as tar:
        members = {m.name: m for m in tar}
    assert all(m.uname == "" and m.gname == "" for m in members.values())
    assert members[f"{LONG_DIR}/{LONG_NAME}"].pax_headers["path"] == f"{LONG_DIR}/{LONG_NAME}"
    assert members["big-ids"].pax_headers["uid"] == "3000000"
    assert members["long-link"].linkname == LONG_TARGET
    assert "SCHILY.xattr.security.capability" in members["ping"].pax_headers
    assert members["etc/passwd.hard"].islnk() and members["etc/passwd.hard"].linkname == "etc/passwd"
    assert not any("atime" in m.pax_headers or "ctime" in m.pax_headers for m in members.values())
    # the raw bytes end with the two zero blocks of the end of the archive
    assert blob.read_bytes()[-1024:] == b"\0" * 1024


def test_large_file_size_goes_into_a_pax_record():
    size = (8 << 30) + 5  # one more than the 11 octal digits of ustar can hold
    block = header(b"huge.img", REGTYPE, size=size, mtime=-1)
    tar = tarfile.open(fileobj=io.BytesIO(block + b"\0" * 1024), mode="r:")
    m = tar.next()
    assert (m.name, m.size, m.mtime) == ("huge.img", size, -1)


def test_symlinks_are_stored_not_followed(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/secret").write_text("not for the layer")
    os.symlink(tmp_path / "outside", src / "link-to-dir")
    blob = io.BytesIO()
    write_layer(src, blob, "none")
    names = [m.name for m in tarfile.open(fileobj=io.BytesIO(blob.getvalue()))]
    assert names == ["link-to-dir"]


def test_layer_writer_prefix_and_single_paths(tree, tmp_path):
    blob = io.BytesIO()
    with LayerWriter(blob, "none") as w:
        w.add_path(tree / "etc", "app")
        w.add_tree(tree / "etc/sub", "app/sub")
        w.add_path(tree / "ping", "/app/bin/ping")
    info = w.close()
    assert w.close() is info  # closing twice gives the same answer
    names = [m.name for m in tarfile.open(fileobj=io.BytesIO(blob.getvalue()))]
    assert names == ["app", "app/sub", "app/sub/rel-link", "app/sub/shadow", "app/bin/ping"]


def test_descriptor_of_a_layer(tree):
    info = write_layer(tree, io.BytesIO(), "zstd")
    d = info.descriptor({"org.example": "x"})
    assert (d.media_type, d.digest, d.size) == ("application/vnd.oci.image.layer.v1.tar+zstd", info.digest, info.size)
    assert d.to_json()["annotations"] == {"org.example": "x"}


def test_sockets_are_skipped_and_reported(tmp_path):
    import socket

    src = tmp_path / "src"
    src.mkdir()
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(src / "sock"))
        with LayerWriter(io.BytesIO(), "none") as w:
            w.add_tree(src)
    finally:
        s.close()
    assert w.skipped == [str(src / "sock")]


def test_a_meter_hears_every_byte_of_file_content(tmp_path):
    """``LayerWriter(meter=...)`` is told the content as it goes in (what a progress bar shows):
    all of it, in pieces, and nothing for headers, directories or links."""
    root = tmp_path / "tree"
    (root / "d").mkdir(parents=True)
    from part4_tar.writer import CHUNK

    big = 2 * CHUNK + 1000
    (root / "d" / "big").write_bytes(os.urandom(big))
    (root / "small").write_bytes(b"x" * 10)
    os.symlink("small", root / "link")
    pieces: list[int] = []
    with open(tmp_path / "layer", "wb") as f, LayerWriter(f, "gzip", source_date_epoch=0, meter=pieces.append) as w:
        w.add_tree(root)
    assert sum(pieces) == big + 10
    assert len(pieces) == 4  # the big file in pieces (three), not a file at a time
