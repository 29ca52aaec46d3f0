"""The chapter script: the narrated demo, ``pack`` and ``unpack``, run for real."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys


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


def test_errors_are_one_line_and_exit_1(tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar archive at all" * 40)
    proc = run("unpack", str(bad), str(tmp_path / "dest"))
    assert proc.returncode == 1
    assert proc.stdout.strip().startswith(f"! error: {bad}: not a valid tar stream")
    assert len(proc.stdout.strip().splitlines()) == 1 and proc.stderr == ""
    proc = run("pack", str(tmp_path / "missing"), str(tmp_path / "x"))
    assert proc.returncode == 1 and "not a directory" in proc.stdout
