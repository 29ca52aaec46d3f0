"""Part 2's hand-built busybox image, checked with the real tools: oci-image-tool, skopeo,
umoci and runc; and the oci-archive both ways."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
from support import runc_run

from part2_manual_oci import (
    ArchiveError,
    OCILayout,
    build_busybox_image,
    extract_oci_archive,
    host_platform,
    open_oci_archive,
    validate_layout,
    write_oci_archive,
)

TAG = "1.35-hand"


def run(argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("part2") / "busybox"
    build_busybox_image(out, TAG)
    return out


def test_oci_image_tool_validates_the_layout_by_ref(image):
    ok = run(["oci-image-tool", "validate", "--type", "image", "--ref", f"name={TAG}", str(image)])
    assert ok.returncode == 0, ok.stderr
    assert f"reference [name={TAG}]: OK" in ok.stdout + ok.stderr
    wrong = run(["oci-image-tool", "validate", "--type", "image", "--ref", "name=absent", str(image)])
    assert wrong.returncode != 0
    assert validate_layout(image) == []


def test_skopeo_inspect_reads_the_layout(image):
    layout = OCILayout.open(image)
    desc = layout.resolve(TAG)
    manifest = layout.read_manifest(desc)
    result = run(["skopeo", "inspect", f"oci:{image}:{TAG}"])
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["Digest"] == desc.digest
    assert info["Architecture"] == host_platform().architecture and info["Os"] == "linux"
    assert info["Layers"] == [manifest.layers[0].digest]
    assert info["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    raw = run(["skopeo", "inspect", "--config", f"oci:{image}:{TAG}"])
    assert json.loads(raw.stdout)["config"]["Cmd"] == ["sh"]


def test_umoci_unpack_and_runc_run_print_what_we_echo(image, tmp_path):
    bundle = tmp_path / "bundle"
    unpack = run(["umoci", "unpack", "--image", f"{image}:{TAG}", str(bundle)])
    assert unpack.returncode == 0, unpack.stderr
    rootfs = bundle / "rootfs"
    assert os.readlink(rootfs / "bin/sh") == "/bin/busybox"
    assert oct((rootfs / "tmp").stat().st_mode & 0o7777) == "0o1777"
    assert oct((rootfs / "root").stat().st_mode & 0o7777) == "0o700"

    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["args"] == ["sh"]  # from the image config's Cmd
    result = runc_run(bundle, "part2-test", args=["sh", "-c", "echo hello from a hand-made image $((6*7)); id -un; stat -c %a /tmp; grep -c : /etc/passwd; wc -w < /proc/self/cmdline"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["hello from a hand-made image 42", "root", "1777", "2", "1"]


def test_oci_archive_is_readable_by_skopeo_and_by_us(image, tmp_path):
    archive = tmp_path / "busybox.tar"
    write_oci_archive(image, archive)
    result = run(["skopeo", "inspect", f"oci-archive:{archive}:{TAG}"])
    assert result.returncode == 0, result.stderr
    desc = OCILayout.open(image).resolve(TAG)
    assert json.loads(result.stdout)["Digest"] == desc.digest
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert names == sorted(names) and "oci-layout" in names and "index.json" in names
        assert all(m.uid == 0 and m.gid == 0 and m.mtime == 0 and (m.isfile() or m.isdir()) for m in tar.getmembers())
    with open_oci_archive(archive) as layout:
        assert layout.resolve(TAG).digest == desc.digest
        assert validate_layout(layout.path) == []
        temp = layout.path
    assert not temp.exists()
    again = tmp_path / "again.tar"
    write_oci_archive(image, again)
    assert again.read_bytes() == archive.read_bytes()


def test_skopeo_made_archive_extracts_into_a_valid_layout(image, tmp_path):
    archive = tmp_path / "by-skopeo.tar"
    copy = run(["skopeo", "copy", f"oci:{image}:{TAG}", f"oci-archive:{archive}:copied"])
    assert copy.returncode == 0, copy.stderr
    layout = extract_oci_archive(archive, tmp_path / "extracted")
    assert layout.refs() == ["copied"]
    assert validate_layout(layout.path) == []
    manifest = layout.read_manifest(layout.resolve("copied"))
    assert layout.read_config(manifest).config.cmd == ("sh",)


def _hostile(tmp_path: Path, name: str, make) -> Path:
    path = tmp_path / f"{name}.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("oci-layout")
        data = b'{"imageLayoutVersion":"1.0.0"}'
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        make(tar)
    return path


def _file(name: str, data: bytes = b"x"):
    def add(tar):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    return add


def _pax_path(name: str):
    """A member whose name is only in a PAX ``path`` record (which may hold any byte)."""
    def add(tar):
        info = tarfile.TarInfo("placeholder")
        info.pax_headers = {"path": name}
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))

    return add


def _special(name: str, kind: bytes, linkname: str = ""):
    def add(tar):
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        tar.addfile(info)

    return add


#: where an absolute member name points: unique to this run, so no other suite on the host makes it
ESCAPE_ABSOLUTE = f"/tmp/part2-escape-{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize(
    "name, make, message",
    [
        ("absolute", _file(ESCAPE_ABSOLUTE), "absolute name"),
        ("dotdot", _file("blobs/../../part2-escape"), "'..' in name"),
        ("symlink", _special("blobs", tarfile.SYMTYPE, "/tmp"), "symlink not allowed"),
        ("hardlink", _special("index.json", tarfile.LNKTYPE, "/etc/passwd"), "hard link not allowed"),
        ("device", _special("dev", tarfile.CHRTYPE), "character device not allowed"),
        ("fifo", _special("fifo", tarfile.FIFOTYPE), "fifo not allowed"),
        ("nul", _pax_path("blobs/sha256/a\0b"), "NUL byte in name"),
        ("long-name", _file("blobs/" + "n" * 300), "File name too long"),
        ("file-then-dir", lambda tar: (_file("blobs")(tar), _file("blobs/sha256/x")(tar)), "conflicting members"),
    ],
)
def test_extract_oci_archive_refuses_unsafe_members(tmp_path, name, make, message):
    archive = _hostile(tmp_path, name, make)
    dest = tmp_path / "dest"
    with pytest.raises(ArchiveError, match=message):
        extract_oci_archive(archive, dest)
    assert not Path(ESCAPE_ABSOLUTE).exists()
    assert not (tmp_path / "part2-escape").exists()
    assert not dest.exists()  # made by the call, removed with what it held when it failed


def test_failed_extraction_into_an_empty_directory_leaves_it_empty(image, tmp_path):
    archive = tmp_path / "a.tar"
    write_oci_archive(image, archive)
    cut = tmp_path / "cut.tar"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])  # ends inside the layer blob
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArchiveError, match=f"^{cut}: broken tar \\(unexpected end of data\\)$"):
        extract_oci_archive(cut, tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []
    with pytest.raises(ArchiveError, match="No such file or directory"):
        extract_oci_archive(tmp_path / "missing.tar", tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_extract_oci_archive_wants_an_empty_destination(image, tmp_path):
    archive = tmp_path / "a.tar"
    write_oci_archive(image, archive)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ArchiveError, match="not empty"):
        extract_oci_archive(archive, tmp_path / "full")
    with open(archive, "rb") as f:  # a stream works as well as a path
        assert extract_oci_archive(f, tmp_path / "fresh").refs() == [TAG]


def test_busybox_build_is_deterministic_and_follows_source_date_epoch(image, tmp_path):
    first = OCILayout.open(image).resolve(TAG)
    old_umask = os.umask(0o077)
    try:
        second = build_busybox_image(tmp_path / "b", TAG)
    finally:
        os.umask(old_umask)
    assert second.digest == first.digest
    dated = build_busybox_image(tmp_path / "c", TAG, epoch=1700000000)
    assert dated.digest != first.digest
    layout = OCILayout.open(tmp_path / "c")
    config = layout.read_config(layout.read_manifest(dated))
    assert config.created == "2023-11-14T22:13:20Z"
    assert validate_layout(tmp_path / "c") == []


def test_build_keeps_its_work_files_when_asked(tmp_path):
    import hashlib

    desc = build_busybox_image(tmp_path / "img", "w", workdir=tmp_path / "work")
    layout = OCILayout.open(tmp_path / "img")
    manifest = layout.read_manifest(desc)
    config = layout.read_config(manifest)
    tar_bytes = (tmp_path / "work/layer.tar").read_bytes()
    assert "sha256:" + hashlib.sha256(tar_bytes).hexdigest() == config.rootfs_diff_ids[0]
    gz = (tmp_path / "work/layer.tar.gz").read_bytes()
    assert "sha256:" + hashlib.sha256(gz).hexdigest() == manifest.layers[0].digest
    assert gz[4:8] == b"\0\0\0\0"  # gzip header mtime 0
    with tarfile.open(tmp_path / "work/layer.tar") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert all(m.uid == 0 and m.gid == 0 and m.mtime == 0 for m in members)
    by_name = {m.name: m for m in members}
    assert by_name["bin/busybox"].isfile() and by_name["usr/bin/wc"].linkname == "/bin/busybox"
    assert {"dev", "proc", "sys", "tmp", "root", "home", "etc/passwd", "etc/group"} <= set(by_name)
    assert (tmp_path / "work/rootfs/etc/passwd").read_text().startswith("root:x:0:0:")


def test_chapter_script_narrates_every_step_with_its_digests(tmp_path):
    out, archive = tmp_path / "img", tmp_path / "img.tar"
    result = run([sys.executable, "-m", "part2_manual_oci", "--out", str(out), "--tag", "demo", "--archive", str(archive)], env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 0, result.stderr
    text = result.stdout
    layout = OCILayout.open(out)
    desc = layout.resolve("demo")
    manifest = layout.read_manifest(desc)
    config = layout.read_config(manifest)
    for step in ("make a root filesystem", "tar the root filesystem", "gzip the tar", "create the image layout", "store the layer blob", "write the image config", "write the manifest", "name the manifest in index.json", "validate the layout", "write an oci-archive", "check it with real tools"):
        assert step in text, step
    assert f"diff_id: {config.rootfs_diff_ids[0]}" in text
    assert f"digest: {manifest.layers[0].digest}" in text
    assert f"config digest: {manifest.config.digest}" in text
    assert f"manifest digest: {desc.digest}" in text
    assert "violations: none" in text
    assert f"skopeo inspect oci:{out}:demo" in text
    assert archive.is_file()
    bad = run([sys.executable, "-m", "part2_manual_oci", "--out", str(tmp_path / "x"), "--busybox", str(tmp_path / "nope")])
    assert bad.returncode == 1 and "nope: not found; install busybox-static" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "x").exists()


def _chapter_error(*args: str) -> str:
    result = run([sys.executable, "-m", "part2_manual_oci", *args], env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout == "" and "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("python -m part2_manual_oci: error: ")
    return line.removeprefix("python -m part2_manual_oci: error: ")


def test_chapter_script_refuses_unwritable_outputs_before_any_work(tmp_path):
    """One line on stderr naming the path, exit 1, and nothing made: no layout, no archive."""
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full/notes.txt").write_text("not a layout")
    out = str(tmp_path / "img")
    assert _chapter_error("--out", str(tmp_path / "a-file")) == f"{tmp_path / 'a-file'}: not a directory"
    assert _chapter_error("--out", str(tmp_path / "a-file/img")) == f"{tmp_path / 'a-file/img'}: {tmp_path / 'a-file'} is not a directory"
    assert _chapter_error("--out", str(tmp_path / "full")).startswith(f"{tmp_path / 'full'}: not empty and not an OCI image layout")
    assert _chapter_error("--out", "/proc/part2-img").startswith("/proc/part2-img: cannot write in /proc (")
    assert _chapter_error("--out", out, "--archive", str(tmp_path / "no/dir/img.tar")) == f"{tmp_path / 'no/dir/img.tar'}: no such directory {tmp_path / 'no/dir'}"
    assert _chapter_error("--out", out, "--archive", str(tmp_path / "full")) == f"{tmp_path / 'full'}: is a directory; an oci-archive is a file"
    assert _chapter_error("--out", out, "--archive", "/proc/img.tar").startswith("/proc/img.tar: cannot write in /proc (")
    result = run([sys.executable, "-m", "part2_manual_oci", "--out", out], env={**os.environ, "SOURCE_DATE_EPOCH": "soon"})
    assert result.returncode == 1 and result.stderr.strip() == "python -m part2_manual_oci: error: SOURCE_DATE_EPOCH='soon' is not an integer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "full"]
    assert os.listdir(tmp_path / "full") == ["notes.txt"]


def test_write_oci_archive_errors_name_the_archive_and_leave_nothing(image, tmp_path):
    target = tmp_path / "missing-dir/img.tar"
    with pytest.raises(ArchiveError, match=f"^{target}: cannot write the oci-archive \\(No such file or directory\\)$"):
        write_oci_archive(image, target)
    with pytest.raises(ArchiveError, match="is a directory; an oci-archive is a file"):
        write_oci_archive(image, tmp_path)
    assert os.listdir(tmp_path) == []
