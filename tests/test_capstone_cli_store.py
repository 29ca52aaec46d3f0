"""The store's commands through ``python -m capstone``: images, inspect, history, tag, rmi,
prune, import, save."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from capstone.__main__ import main
from capstone.cli_store import human_since, human_size
from capstone.store import Store
from part2_manual_oci import validate_layout


def cli(capsys, store: Path, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--store", str(store), *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def bench_rootfs(tmp_path) -> Path:
    """The busybox root filesystem of the benchmark's setup_bases.sh."""
    root = tmp_path / "busybox-rootfs"
    for d in ("bin", "etc", "tmp", "root", "usr/bin", "sbin"):
        (root / d).mkdir(parents=True)
    shutil.copy("/usr/bin/busybox", root / "bin/busybox")
    for applet in ("sh", "echo", "ls"):
        os.symlink("busybox", root / "bin" / applet)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return root


def test_import_as_setup_bases_does_then_images_inspect_history(capsys, tmp_path, bench_rootfs):
    store = tmp_path / "store"
    # exactly the benchmark's command line, in a real interpreter
    r = subprocess.run([sys.executable, "-m", "capstone", "--store", str(store), "import", str(bench_rootfs),
                        "busybox:bench"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    image_id = r.stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71

    code, out, _ = cli(capsys, store, "images")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert row.split()[:3] == ["busybox", "bench", image_id[7:19]]
    assert header.index("TAG") == row.index("bench")  # columns line up

    code, out, _ = cli(capsys, store, "images", "--quiet")
    assert out == image_id[7:19] + "\n"
    code, out, _ = cli(capsys, store, "images", "--format", "json")
    doc = json.loads(out)
    assert (doc["Repository"], doc["Tag"], doc["ID"]) == ("busybox", "bench", image_id[7:19])

    code, out, _ = cli(capsys, store, "inspect", "busybox:bench")
    assert code == 0
    (doc,) = json.loads(out)
    assert doc["Id"] == image_id and doc["RepoTags"] == ["busybox:bench"]
    assert doc["Config"]["Cmd"] == ["/bin/sh"] and doc["Os"] == "linux"
    assert doc["RootFS"]["Type"] == "layers" and len(doc["RootFS"]["Layers"]) == 1
    assert doc["Size"] > 500_000 and doc["Architecture"] and doc["Created"]
    code, out, _ = cli(capsys, store, "inspect", image_id[7:15])
    assert json.loads(out)[0]["Id"] == image_id

    code, out, _ = cli(capsys, store, "history", "busybox:bench")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["IMAGE", "CREATED", "CREATED"]
    assert lines[1].startswith(image_id[7:19]) and "capstone import" in lines[1]


def test_tag_rmi_prune_and_errors(capsys, tmp_path, bench_rootfs):
    store = tmp_path / "store"
    assert cli(capsys, store, "import", str(bench_rootfs), "base")[0] == 0
    assert cli(capsys, store, "tag", "base", "localhost:5000/team/base:v1")[0] == 0
    code, out, _ = cli(capsys, store, "images")
    repos = [line.split()[0] for line in out.splitlines()[1:]]
    assert sorted(repos) == ["base", "localhost:5000/team/base"]

    code, out, err = cli(capsys, store, "rmi", "nosuch")
    assert code == 1 and err.count("\n") == 1 and "nosuch" in err
    code, out, err = cli(capsys, store, "tag", "base", "Bad:Name")
    assert code == 1 and "must be lowercase" in err

    code, out, _ = cli(capsys, store, "rmi", "base", "localhost:5000/team/base:v1")
    assert code == 0
    assert out.splitlines()[:2] == ["Untagged: base:latest", "Untagged: localhost:5000/team/base:v1"]
    assert out.splitlines()[2].startswith("Deleted: sha256:")
    code, out, _ = cli(capsys, store, "prune")
    assert code == 0 and out.startswith("Deleted blobs: 3\n") and "Total reclaimed space:" in out
    assert list(Store.open(store).layout.blobs_dir.iterdir()) == []
    assert cli(capsys, store, "images", "-q")[1] == ""


def test_import_of_a_tar_and_save_to_every_destination(capsys, tmp_path, bench_rootfs):
    store = tmp_path / "store"
    tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(bench_rootfs), "-cf", str(tar), "."], check=True)
    assert cli(capsys, store, "import", str(tar), "fromtar:1")[0] == 0
    assert cli(capsys, store, "save", "fromtar:1", f"oci:{tmp_path / 'out'}")[0] == 0
    assert validate_layout(tmp_path / "out") == []
    assert cli(capsys, store, "save", "fromtar:1", f"oci-archive:{tmp_path / 'o.tar'}:x")[0] == 0
    assert cli(capsys, store, "save", "fromtar:1", f"docker-archive:{tmp_path / 'd.tar'}")[0] == 0
    for ref in (f"oci:{tmp_path / 'out'}:1", f"oci-archive:{tmp_path / 'o.tar'}:x", f"docker-archive:{tmp_path / 'd.tar'}"):
        r = subprocess.run(["skopeo", "inspect", "--config", ref], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["config"]["Cmd"] == ["/bin/sh"]
    code, _, err = cli(capsys, store, "save", "fromtar:1", f"nowhere:{tmp_path}")
    assert code == 1 and "transport" in err
    code, _, err = cli(capsys, store, "import", str(tmp_path / "missing"), "x")
    assert code == 1 and "no such file" in err


def test_human_units_follow_docker():
    assert human_size(405) == "405B"
    assert human_size(1_032_187) == "1.03MB"
    assert human_size(215_000_000) == "215MB"
    assert human_since("2020-01-01T00:00:00Z").endswith("years ago")
    assert human_since(None) == "N/A"
