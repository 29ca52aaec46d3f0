"""The store's commands through ``python -m capstone``: images, inspect, history, tag, rmi,
prune, import, save."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from capstone.__main__ import main
from capstone.cli_store import human_since, human_size
from capstone.store import Store
from part2_manual_oci import host_platform, validate_layout


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


def _rootfs_tar(path: Path) -> Path:
    """A root filesystem as a tar that names no directory (their mtimes are the extraction's,
    "now", unless clamped), one file older and one newer than EPOCH."""
    with tarfile.open(path, "w") as tf:
        for name, mtime in (("etc/hello", 1_000_000_000), ("usr/bin/tool", 2_000_000_000)):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = 6, mtime
            tf.addfile(info, io.BytesIO(b"hello\n"))
    return path


EPOCH = 1_700_000_000


def test_import_under_source_date_epoch_gives_the_same_image_every_time(capsys, tmp_path, monkeypatch):
    """As build: SOURCE_DATE_EPOCH dates the config and its history entry, and clamps the
    layer's mtimes (the directories a tar does not name are made now): two imports a second
    apart, into two stores, give the same image id and the same manifest, byte for byte."""
    tar = _rootfs_tar(tmp_path / "rootfs.tar")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    ids, manifests = [], []
    for i in (1, 2):
        store = tmp_path / f"store{i}"
        code, out, err = cli(capsys, store, "import", str(tar), "repro:1")
        assert code == 0, err
        ids.append(out.strip())
        s = Store.open(store)
        manifests.append(s.resolve("repro:1").digest)
        assert validate_layout(s.path / "oci") == []
        time.sleep(1.1)  # "now" is another second
    assert ids[0] == ids[1] and manifests[0] == manifests[1]
    image = Store.open(tmp_path / "store1").load("repro:1")
    assert image.config.created == "2023-11-14T22:13:20Z"
    assert [h.created for h in image.config.history] == ["2023-11-14T22:13:20Z"]
    with tarfile.open(fileobj=image.layers[0].open()) as tf:
        times = {m.name: m.mtime for m in tf.getmembers()}
    assert times == {"etc": EPOCH, "etc/hello": 1_000_000_000, "usr": EPOCH, "usr/bin": EPOCH, "usr/bin/tool": EPOCH}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    code, _, err = cli(capsys, tmp_path / "store1", "import", str(tar), "repro:2")
    assert (code, err) == (1, "capstone: invalid SOURCE_DATE_EPOCH: yesterday\n")


def test_import_takes_a_platform_checked_as_builds_is(capsys, tmp_path):
    """``--platform`` (docker import's, podman's --arch/--variant in one) names the image's
    platform, normalised; a specifier that is none, or a list, is one line and imports nothing."""
    store = tmp_path / "store"
    tar = _rootfs_tar(tmp_path / "rootfs.tar")
    assert cli(capsys, store, "import", "--platform", "linux/armhf", str(tar), "arm:1")[0] == 0
    r = subprocess.run(["skopeo", "inspect", "--config", f"oci:{store / 'oci'}:docker.io/library/arm:1"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    config = json.loads(r.stdout)
    assert (config["os"], config["architecture"], config["variant"]) == ("linux", "arm", "v7")
    assert validate_layout(store / "oci") == []
    for spec, said in (("linux/z80", "'linux/z80': unknown architecture"),
                       ("linux/arm64,linux/amd64", "'linux/arm64,linux/amd64': import makes one image: name one platform"),
                       ("", None)):
        code, _, err = cli(capsys, store, "import", "--platform", spec, str(tar), "other:1")
        if said is None:  # empty: this host's, as when not given
            assert code == 0, err
            continue
        assert (code, err) == (1, f"capstone: --platform: {said}\n")
    assert Store.open(store).load("other:1").config.architecture == host_platform().architecture


def test_human_units_follow_docker():
    assert human_size(405) == "405B"
    assert human_size(1_032_187) == "1.03MB"
    assert human_size(215_000_000) == "215MB"
    assert human_since("2020-01-01T00:00:00Z").endswith("years ago")
    assert human_since(None) == "N/A"
