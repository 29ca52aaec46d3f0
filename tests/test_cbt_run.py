"""The cbt command (capstone/cbt.py): part 3's cbt with RUN over part 7's overlay and part 6's runtime.

Run as a user runs it, ``python -m capstone.cbt``, each command in a private mount namespace of
its own (``unshare --mount``) so that no overlay can outlive a test. The base is part 2's
busybox image; every built image is checked with validate_layout and by applying its layers.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from part2_manual_oci import OCILayout, build_busybox_image, validate_layout
from part4_tar import apply_layers

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cbt-base") / "busybox"
    build_busybox_image(path)
    return path


def cbt(home: Path, *args: str, module: str = "capstone.cbt") -> subprocess.CompletedProcess:
    argv = ["unshare", "--mount", "--propagation", "private", sys.executable, "-m", module, *args]
    return subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "CBT_HOME": str(home)})


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, r.stderr
    return r


def _mounted_under(path: Path) -> list[str]:
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines() if line.split()[4].startswith(str(path))]


def test_the_blogs_example_runs_and_its_changes_land_in_the_upper_layer(base, tmp_path):
    home = tmp_path / "home"
    ok(cbt(home, "from", f"oci-layout:{base}"))
    r = ok(cbt(home, "run", "busybox", "-l", "root", "-u", "deps", "--network", "none", "--",
               "/bin/sh", "-c", "echo hello world; echo dep > /dep.txt; rm /etc/group; rm -r /home; mkdir /home; touch /home/new"))
    assert r.stdout == "hello world\n"
    layers = home / "busybox" / "layers"
    assert sorted(p.name for p in layers.iterdir()) == ["deps", "root"]
    # root: the base image's files; deps: exactly the changes, in overlayfs's spelling
    assert (layers / "root" / "bin" / "busybox").is_file() and (layers / "root" / "etc" / "group").is_file()
    deps = layers / "deps"
    assert (deps / "dep.txt").read_text() == "dep\n"
    st = os.lstat(deps / "etc" / "group")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(deps / "home", "trusted.overlay.opaque") == b"y"
    assert json.loads((home / "busybox" / "builder.json").read_text())["runLayers"] == ["deps"]
    assert sorted(p.name for p in (home / "busybox").iterdir()) == ["builder.json", "layers"]  # no .run-* left


def test_runs_stack_and_build_translates_the_whiteouts(base, tmp_path):
    home = tmp_path / "home"
    ok(cbt(home, "from", f"oci-layout:{base}"))
    ok(cbt(home, "run", "busybox", "-u", "deps", "--network", "none", "--", "/bin/sh", "-c",
           "mkdir -p /opt/app && echo one > /opt/app/file && rm /etc/group"))
    second = ok(cbt(home, "run", "busybox", "-l", "root,deps", "-u", "app", "--network", "none", "--",
                    "/bin/sh", "-c", "cat /opt/app/file; test -e /etc/group || echo no group; echo two > /opt/app/two"))
    assert second.stdout == "one\nno group\n"
    # part 3's own build cannot translate overlayfs's whiteouts, and says where that is done
    refused = cbt(home, "build", "busybox", f"oci-layout:{tmp_path / 'x'}", "--layers", "deps", module="part3_go_style_builder")
    assert refused.returncode == 1 and "cbt: error: layers/deps was the upper layer of `cbt run`" in refused.stderr
    assert "python -m capstone.cbt" in refused.stderr
    ok(cbt(home, "config", "busybox", "--cmd", "cat /opt/app/two"))
    out = tmp_path / "out"
    ok(cbt(home, "build", "busybox", f"oci-layout:{out}:app:v1", "--layers", "deps,app"))
    assert validate_layout(out) == []
    layout = OCILayout.open(out)
    manifest = layout.read_manifest(layout.resolve("app:v1"))
    assert len(manifest.layers) == 3
    rootfs = tmp_path / "rootfs"
    apply_layers([layout.blob_path(layer.digest) for layer in manifest.layers], rootfs)
    assert (rootfs / "opt/app/file").read_text() == "one\n" and (rootfs / "opt/app/two").read_text() == "two\n"
    assert not (rootfs / "etc/group").exists() and (rootfs / "etc/passwd").exists()
    assert not any(stat.S_ISCHR(os.lstat(p).st_mode) for p in rootfs.rglob("*"))
    assert layout.read_config(manifest).config.cmd == ("/bin/sh", "-c", "cat /opt/app/two")


def test_a_plain_folder_packs_to_the_same_layer_either_way(base, tmp_path):
    home = tmp_path / "home"
    ok(cbt(home, "from", f"oci-layout:{base}"))
    app = home / "busybox" / "layers" / "app"
    (app / "srv").mkdir(parents=True)
    (app / "srv" / "hello.txt").write_text("hello\n")
    os.symlink("hello.txt", app / "srv" / "link")
    env_epoch = {"SOURCE_DATE_EPOCH": "1700000000"}
    for module, target in (("capstone.cbt", "a"), ("part3_go_style_builder", "b")):
        r = subprocess.run([sys.executable, "-m", module, "build", "busybox", f"oci-layout:{tmp_path / target}", "--layers", "app"],
                           capture_output=True, text=True, cwd=REPO, env={**os.environ, "CBT_HOME": str(home), **env_epoch})
        assert r.returncode == 0, r.stderr
    digests = [OCILayout.open(tmp_path / t).resolve().digest for t in ("a", "b")]
    assert digests[0] == digests[1]


def test_the_exit_code_is_the_commands_and_nothing_stays_mounted(base, tmp_path):
    home = tmp_path / "home"
    ok(cbt(home, "from", f"oci-layout:{base}"))
    r = cbt(home, "run", "busybox", "-u", "deps", "--network", "none", "--", "/bin/sh", "-c", "echo partial > /p; exit 3")
    assert r.returncode == 3
    assert (home / "busybox/layers/deps/p").read_text() == "partial\n"
    r = cbt(home, "run", "busybox", "-u", "deps", "--network", "none", "--", "no-such-command")
    assert r.returncode == 1 and r.stderr.startswith("cbt: error: run: ") and "no-such-command" in r.stderr
    assert _mounted_under(tmp_path) == []
    assert sorted(p.name for p in (home / "busybox").iterdir()) == ["builder.json", "layers"]


@pytest.mark.parametrize("args,message,code", [
    (["run", "busybox", "-l", "root", "--", "true"], "an upper layer must be specified (-u NAME)", 2),
    (["run", "busybox", "-u", "deps"], "a command must be specified after --", 2),
    (["run", "busybox", "-l", "root,deps", "-u", "deps", "--", "true"], "the upper layer 'deps' cannot be a lower layer too", 1),
    (["run", "busybox", "-l", "root", "-u", "root", "--", "true"], "layers/root is the base image: it cannot be the upper layer", 1),
    (["run", "busybox", "-l", "root,nope", "-u", "deps", "--", "true"], "layer folder", 1),
    (["run", "busybox", "-l", "root", "-u", "../x", "--", "true"], "invalid layer name '../x'", 1),
    (["run", "nobody-here", "-u", "deps", "--", "true"], "no working folder 'nobody-here'", 1),
    (["build", "busybox", "oci-layout:/tmp/never", "--layers", "root"], "layers/root is the base image's root filesystem", 1),
])
def test_bad_runs_are_one_line_errors(base, tmp_path, args, message, code):
    home = tmp_path / "home"
    ok(cbt(home, "from", f"oci-layout:{base}"))
    r = cbt(home, *args)
    assert r.returncode == code, r.stderr
    assert message in r.stderr and r.stderr.count("\n") == 1 and r.stderr.startswith("cbt")
    assert not (home / "busybox/layers/deps").exists()


def test_part_3_parses_run_and_says_where_it_runs(base, tmp_path):
    home = tmp_path / "home"
    ok(cbt(home, "from", f"oci-layout:{base}"))
    r = cbt(home, "run", "busybox", "-l", "root", "-u", "deps", "--", "/bin/sh", "-c", "echo hello world",
            module="part3_go_style_builder")
    assert r.returncode == 1
    assert "run needs a container" in r.stderr and "python -m capstone.cbt run busybox -l root -u deps -- /bin/sh -c 'echo hello world'" in r.stderr
    assert sorted(p.name for p in (home / "busybox/layers").iterdir()) == []  # nothing made


def test_cbt_is_a_console_script():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["cbt"] == "capstone.cbt:cli"
    r = subprocess.run([sys.executable, "-c", "from capstone.cbt import cli; import sys; sys.argv = ['cbt', 'version']; cli()"],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("   cbt: 0.1.0 (Python ")


def test_the_chapter_tells_the_cbt_story(tmp_path):
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-m", "part7_union", "cbt",
                        "--workdir", str(tmp_path / "story")], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "hello world" in r.stdout and "c--------- etc/group  (a 0/0 device: overlayfs's whiteout)" in r.stdout
    assert "ls: /etc/group: No such file or directory" in r.stdout
    assert "/etc/group exists: False" in r.stdout and r.stdout.rstrip().endswith("=> cbt: from, config, run, build")
