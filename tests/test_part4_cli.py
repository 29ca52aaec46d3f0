"""The chapter script: the narrated demo, ``pack`` and ``unpack``, run for real."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "part4_tar", *args], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", **(env or {})})


def facts(stdout: str) -> dict[str, str]:
    return dict(line.strip().split(": ", 1) for line in stdout.splitlines() if ": " in line)


def test_demo_narrates_tar_gzip_digest_diff_id_and_whiteouts(tmp_path):
    proc = run("demo", "--workdir", str(tmp_path / "w"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for step in ("tar: the tree as one stream", "gzip: the blob", "digest and diff_id", "same tree, same digest",
                 "whiteouts: a second layer", "apply both layers"):
        assert step in out
    f = facts(out)
    blob = (tmp_path / "w/layer.tar.gz").read_bytes()
    assert f["digest"] == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert f["diff_id"] == f["sha256 of the tar"]
    assert "identical: yes" in out
    assert "etc/.wh.motd" in out and "usr/share/doc/demo/.wh..wh..opq" in out
    # the applied root: motd deleted, the opaque directory holds only the upper README
    rootfs = tmp_path / "w/rootfs"
    assert not (rootfs / "etc/motd").exists()
    assert sorted(os.listdir(rootfs / "usr/share/doc/demo")) == ["README"]


def test_demo_digests_are_reproducible(tmp_path):
    a = facts(run("demo", "--workdir", str(tmp_path / "a")).stdout)
    b = facts(run("demo", "--workdir", str(tmp_path / "b")).stdout)
    assert (a["digest"], a["diff_id"], a["layer 2 digest"]) == (b["digest"], b["diff_id"], b["layer 2 digest"])


def test_pack_prints_digest_diff_id_and_size_and_unpack_restores(tmp_path):
    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True)
    (src / "bin/tool").write_text("#!/bin/sh\n")
    os.symlink("tool", src / "bin/alias")
    out = tmp_path / "layer.tar.zst"
    proc = run("pack", str(src), str(out), "--compression", "zstd", env={"SOURCE_DATE_EPOCH": "100"})
    assert proc.returncode == 0, proc.stderr
    f = facts(proc.stdout)
    assert f["digest"] == "sha256:" + hashlib.sha256(out.read_bytes()).hexdigest()
    assert f["size"] == str(out.stat().st_size)
    assert f["media_type"] == "application/vnd.oci.image.layer.v1.tar+zstd"
    tar = subprocess.run(["zstd", "-dc", str(out)], capture_output=True, check=True).stdout
    assert f["diff_id"] == "sha256:" + hashlib.sha256(tar).hexdigest()

    proc = run("unpack", str(out), str(tmp_path / "dest"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "dest/bin/tool").read_text() == "#!/bin/sh\n"
    assert os.readlink(tmp_path / "dest/bin/alias") == "tool"
    assert os.stat(tmp_path / "dest/bin/tool").st_mtime == 100


def error_line(proc) -> str:
    """The one line a failed command prints: on stderr, nothing on stdout, no traceback."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("python -m part4_tar: error: ")
    return lines[0].removeprefix("python -m part4_tar: error: ")


def test_unpack_errors_are_one_line_naming_the_file_and_exit_1(tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar archive at all" * 40)
    assert error_line(run("unpack", str(bad), str(tmp_path / "dest"))).startswith(f"{bad}: not a valid tar stream")
    assert error_line(run("unpack", str(tmp_path / "missing.tgz"), str(tmp_path / "dest"))) == f"{tmp_path / 'missing.tgz'}: no such file"
    assert error_line(run("unpack", str(tmp_path), str(tmp_path / "dest"))) == f"{tmp_path}: not a file"
    good = tmp_path / "good.tar"
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("f")
    assert run("pack", str(src), str(good), "--compression", "none").returncode == 0
    (tmp_path / "a-file").write_text("x")
    assert error_line(run("unpack", str(good), str(tmp_path / "a-file"))) == f"{tmp_path / 'a-file'}: not a directory"
    assert error_line(run("unpack", str(good), "/proc/part4-dest")).startswith("cannot create /proc/part4-dest: ")
    assert not (tmp_path / "dest").exists()


def test_failed_unpack_into_a_new_dest_leaves_no_dest(tmp_path):
    """Layers go into a temporary directory next to DEST, renamed only when all applied."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "first").write_text("from layer 1")
    good = tmp_path / "l1.tar.gz"
    assert run("pack", str(src), str(good)).returncode == 0
    evil = tmp_path / "l2.tar"
    with tarfile.open(evil, "w") as tar:
        ti = tarfile.TarInfo("../escape")
        tar.addfile(ti, io.BytesIO(b""))
    msg = error_line(run("unpack", str(good), str(evil), str(tmp_path / "dest")))
    assert msg == f"{evil}: layer entry '../escape': '..' would escape the root"
    assert sorted(os.listdir(tmp_path)) == ["l1.tar.gz", "l2.tar", "src"]  # no dest, no temp dir
    # onto an existing DEST the layers apply in place
    (tmp_path / "dest").mkdir()
    assert run("unpack", str(good), str(tmp_path / "dest")).returncode == 0
    assert (tmp_path / "dest/first").read_text() == "from layer 1"
    assert oct(os.stat(tmp_path / "dest").st_mode & 0o777) == "0o755"


def test_pack_errors_leave_no_output_file(tmp_path):
    assert error_line(run("pack", str(tmp_path / "missing"), str(tmp_path / "x.tgz"))) == f"{tmp_path / 'missing'}: no such directory"
    (tmp_path / "plain").write_text("x")
    assert error_line(run("pack", str(tmp_path / "plain"), str(tmp_path / "x.tgz"))) == f"{tmp_path / 'plain'}: not a directory"
    src = tmp_path / "src"
    src.mkdir()
    assert error_line(run("pack", str(src), str(tmp_path / "no/such/dir/x.tgz"))) == f"cannot write {tmp_path / 'no/such/dir/x.tgz'}: No such file or directory"
    assert error_line(run("pack", str(src), "/proc/x.tgz")).startswith("cannot write /proc/x.tgz: ")
    # a pack that fails midway (after some entries were written: a path longer than PATH_MAX,
    # which lstat refuses) keeps the old OUT as it was and leaves no temporary file
    out = tmp_path / "out.tgz"
    out.write_bytes(b"previous blob")
    (src / "a-first").write_text("packed before the failure")
    fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(20):  # 20 x 250 characters: deeper than the 4096 bytes of PATH_MAX
            os.mkdir("d" * 250, dir_fd=fd)
            nfd = os.open("d" * 250, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
    finally:
        os.close(fd)
    assert error_line(run("pack", str(src), str(out))).endswith(": File name too long")
    assert out.read_bytes() == b"previous blob"
    assert sorted(os.listdir(tmp_path)) == ["out.tgz", "plain", "src"]


def test_usage_errors_exit_2(tmp_path):
    proc = run("pack", str(tmp_path), str(tmp_path / "x"), "--compression", "lz4")
    assert proc.returncode == 2 and "invalid choice: 'lz4'" in proc.stderr
    proc = run("pack", str(tmp_path), str(tmp_path / "x"), env={"SOURCE_DATE_EPOCH": "yesterday"})
    assert proc.returncode == 2 and "SOURCE_DATE_EPOCH='yesterday' is not an integer" in proc.stderr
    assert not (tmp_path / "x").exists()
