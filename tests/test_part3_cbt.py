"""Part 3: the cbt commands end to end, run as a user runs them (python -m part3_go_style_builder)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from part2_manual_oci.busybox import build_busybox_image
from part2_manual_oci.layout import OCILayout
from part2_manual_oci.validate import validate_layout
from part3_go_style_builder import Image
from part3_go_style_builder.__main__ import main as cbt_main
from part4_tar import apply_layers


def cbt(home: Path, *args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, "CBT_HOME": str(home), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "part3_go_style_builder", *args], capture_output=True, text=True, env=environ, cwd=cwd
    )


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """Part 2's busybox image: the base of every build here (read-only for the tests)."""
    path = tmp_path_factory.mktemp("base") / "busybox"
    build_busybox_image(path)
    return path


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "cbt-home"


def manifest_and_config(layout: Path, ref_name: str):
    oci = OCILayout.open(layout)
    manifest = oci.read_manifest(oci.resolve(ref_name))
    return manifest, oci.read_config(manifest)


def runc_output(layout: Path, ref_name: str, work: Path) -> subprocess.CompletedProcess:
    bundle = work / f"bundle-{uuid.uuid4().hex[:8]}"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{ref_name}", str(bundle)], check=True, capture_output=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(config))
    return subprocess.run(["runc", "run", f"cbt-test-{uuid.uuid4().hex[:12]}"], cwd=bundle, capture_output=True, text=True)


def test_the_blogs_round_trip_builds_a_valid_runnable_image(base, home, tmp_path):
    base_manifest, base_config = manifest_and_config(base, "latest")

    made = ok(cbt(home, "from", f"oci-layout:{base}"))
    assert str(home / "busybox") in made.stdout
    deps = home / "busybox" / "layers" / "deps"
    deps.mkdir()
    (deps / "hello.txt").write_text("hello from the deps layer\n")
    ok(cbt(home, "config", "busybox", "--cmd", "cat /hello.txt"))
    out = tmp_path / "out"
    ok(cbt(home, "build", "busybox", f"oci-layout:{out}:app:v1", "--layers", "deps"))

    assert validate_layout(out) == []
    tool = subprocess.run(
        ["oci-image-tool", "validate", "--type", "image", "--ref", "name=app:v1", str(out)], capture_output=True, text=True
    )
    assert tool.returncode == 0, tool.stdout + tool.stderr

    manifest, config = manifest_and_config(out, "app:v1")
    assert [d.digest for d in manifest.layers[:-1]] == [d.digest for d in base_manifest.layers]
    assert len(manifest.layers) == len(base_manifest.layers) + 1
    assert config.rootfs_diff_ids[:-1] == base_config.rootfs_diff_ids
    assert config.config.cmd == ("/bin/sh", "-c", "cat /hello.txt")
    assert config.config.env == base_config.config.env
    non_empty = [h for h in config.history if not h.empty_layer]
    assert len(non_empty) == len(config.rootfs_diff_ids)
    # the base's history, then one entry for the new layer, then one empty_layer entry for config
    assert config.history[:-2] == base_config.history
    assert [(h.created_by, h.empty_layer) for h in config.history[-2:]] == [
        ("cbt build --layers deps: COPY layers/deps/ /", None),
        ("cbt config busybox --cmd 'cat /hello.txt'", True),
    ]
    assert config.created == config.history[-1].created

    ran = runc_output(out, "app:v1", tmp_path)
    assert (ran.returncode, ran.stdout) == (0, "hello from the deps layer\n"), ran.stderr

    # the result is a base image in its turn: named after the image, and by folder name
    again = ok(cbt(home, "from", f"oci-layout:{out}:app:v1"))
    assert str(home / "app") in again.stdout
    state = json.loads((home / "app" / "builder.json").read_text())
    assert state["ociImage"]["config"]["Cmd"] == ["/bin/sh", "-c", "cat /hello.txt"]
    ok(cbt(home, "from", f"oci-layout:{out}"))
    assert (home / "out" / "builder.json").is_file()


def test_from_writes_builder_json_like_cbt(base, home):
    ok(cbt(home, "from", f"oci-layout:{base}:latest"))
    folder = home / "busybox"
    assert (folder / "layers").is_dir()
    assert stat.S_IMODE((folder / "builder.json").stat().st_mode) == 0o600
    state = json.loads((folder / "builder.json").read_text())
    _, base_config = manifest_and_config(base, "latest")
    assert state["fromImage"] == f"oci-layout:{base}:latest"
    assert state["workDirId"] == "busybox"
    assert state["ociImage"]["rootfs"] == {"type": "layers", "diff_ids": []}
    assert state["ociImage"]["config"] == base_config.config.to_json()
    assert (state["ociImage"]["os"], state["ociImage"]["architecture"]) == (base_config.os, base_config.architecture)
    assert state["ociImage"]["created"]
    assert state["ociManifest"] == {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}


def test_from_keeps_a_relative_reference_usable_from_anywhere(base, home, tmp_path):
    ok(cbt(home, "from", "oci-layout:busybox", "--name", "rel", cwd=base.parent))
    state = json.loads((home / "rel" / "builder.json").read_text())
    assert state["fromImage"] == f"oci-layout:{base}"
    (home / "rel" / "layers" / "x").mkdir()
    ok(cbt(home, "build", "rel", f"oci-layout:{tmp_path / 'o'}", "--layers", "x", cwd=tmp_path))


def test_from_refuses_to_overwrite_a_working_folder(base, home):
    ok(cbt(home, "from", f"oci-layout:{base}"))
    (home / "busybox" / "layers" / "keep").mkdir()
    again = cbt(home, "from", f"oci-layout:{base}")
    assert again.returncode == 1
    assert again.stderr == f"cbt: error: working folder {home / 'busybox'} already exists (remove it, or choose another name with --name)\n"
    assert (home / "busybox" / "layers" / "keep").is_dir()


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["from"], 2, "cbt from: error: an image name must be specified"),
        (["from", "oci-layout:/a", "oci-layout:/b"], 2, "cbt from: error: too many arguments specified"),
        (["config"], 2, "cbt config: error: a working folder id must be specified"),
        (["config", "a", "b"], 2, "cbt config: error: too many arguments specified"),
        (["config", "x", "--bogus"], 2, "cbt: error: unrecognized arguments: --bogus"),
        (["build", "x"], 2, "cbt build: error: expected ID TARGET, got 1 argument(s)"),
        (["build", "x", "oci-layout:/t"], 2, "cbt build: error: layers must be specified"),
        (["build", "x", "oci-layout:/t", "--layers", "a,,b"], 2, "cbt build: error: --layers 'a,,b' has an empty name"),
        (["build", "x", "oci-layout:/t", "--layers", "a", "--compression", "lz4"], 2, "cbt build: error: argument --compression: invalid choice"),
        (["frob"], 2, "cbt: error: argument command: invalid choice: 'frob'"),
        (["from", "docker://busybox"], 1, "cbt: error: unknown transport 'docker'"),
        (["from", "oci-layout:/nonexistent/x"], 1, "cbt: error: /nonexistent/x: no such OCI layout"),
        (["from", "oci-archive:/nonexistent/x.tar"], 1, "cbt: error: /nonexistent/x.tar: no such archive"),
        (["config", "nope", "--cmd", "x"], 1, "cbt: error: no working folder 'nope' in"),
        (["config", "../etc", "--cmd", "x"], 1, "cbt: error: invalid working folder id '../etc'"),
        (["build", "nope", "oci-layout:/t", "--layers", "a"], 1, "cbt: error: no working folder 'nope' in"),
        (["rm", "nope"], 1, "cbt: error: no working folder 'nope' in"),
    ],
)
def test_errors_are_one_line_with_exit_code_2_for_usage(home, args, code, message, monkeypatch, capsys):
    # the command's own main() in this process (the subprocess runs elsewhere cover the rest)
    monkeypatch.setenv("CBT_HOME", str(home))
    assert cbt_main(list(args)) == code
    out, err = capsys.readouterr()
    assert err.startswith(message), err
    assert err.count("\n") == 1
    assert out == ""


def test_config_options_change_only_what_is_given(base, home):
    ok(cbt(home, "from", f"oci-layout:{base}"))
    state_file = home / "busybox" / "builder.json"
    before = json.loads(state_file.read_text())["ociImage"]
    ok(cbt(home, "config", "busybox"))
    assert json.loads(state_file.read_text())["ociImage"] == before

    ok(cbt(home, "config", "busybox", "--cmd", '["cat", "/etc/hostname"]', "--entrypoint", "exec env",
           "--env", "A=1", "--env", "B=x=y", "--workingdir", "/srv", "--user", "1000:1000",
           "--ports", "80,53/udp", "--label", "a=1", "--label", "b=2"))
    ok(cbt(home, "config", "busybox", "--env", "A=2", "--label", "b=3", "--ports", "8080", "--os", "linux", "--arch", "arm64"))
    image = json.loads(state_file.read_text())["ociImage"]
    c = image["config"]
    assert c["Cmd"] == ["cat", "/etc/hostname"]
    assert c["Entrypoint"] == ["/bin/sh", "-c", "exec env"]
    assert c["Env"] == before["config"]["Env"] + ["B=x=y", "A=2"]
    assert (c["WorkingDir"], c["User"]) == ("/srv", "1000:1000")
    assert c["ExposedPorts"] == {"8080/tcp": {}}
    assert c["Labels"] == {"a": "1", "b": "3"}
    assert (image["os"], image["architecture"]) == ("linux", "arm64")
    history = json.loads(state_file.read_text())["configHistory"]
    assert len(history) == 3 and history[1].startswith("cbt config busybox --cmd")


@pytest.mark.parametrize(
    "option,value,message",
    [
        ("--env", "NOVALUE", "cbt: error: --env 'NOVALUE': expected KEY=VALUE"),
        ("--label", "=v", "cbt: error: --label '=v': expected KEY=VALUE"),
        ("--ports", "http", "cbt: error: --ports 'http': expected PORT[/tcp|udp|sctp]"),
        ("--ports", "70000", "cbt: error: --ports '70000'"),
        ("--ports", "80/icmp", "cbt: error: --ports '80/icmp'"),
    ],
)
def test_config_rejects_malformed_values(base, home, option, value, message, monkeypatch, capsys):
    monkeypatch.setenv("CBT_HOME", str(home))
    assert cbt_main(["from", f"oci-layout:{base}"]) == 0
    before = (home / "busybox" / "builder.json").read_bytes()
    capsys.readouterr()
    assert cbt_main(["config", "busybox", option, value]) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err
    assert (home / "busybox" / "builder.json").read_bytes() == before


def test_build_stacks_layers_in_the_order_given(base, home, tmp_path):
    ok(cbt(home, "from", f"oci-layout:{base}"))
    layers = home / "busybox" / "layers"
    for name, text in (("a", "from a\n"), ("b", "from b\n")):
        (layers / name / "etc").mkdir(parents=True)
        (layers / name / "etc" / "motd").write_text(text)
    (layers / "a" / "only-a").write_text("a\n")
    out = tmp_path / "out"
    ok(cbt(home, "build", "busybox", f"oci-layout:{out}", "--layers", "b,a"))
    ok(cbt(home, "build", "busybox", f"oci-layout:{out}:ab:1", "--layers", "a,b"))
    assert validate_layout(out) == []
    oci = OCILayout.open(out)
    assert sorted(oci.refs()) == ["ab:1", "latest"]
    rootfs = {}
    for ref_name in ("latest", "ab:1"):
        manifest = oci.read_manifest(oci.resolve(ref_name))
        assert len(manifest.layers) == 3
        root = tmp_path / ref_name.replace(":", "_")
        apply_layers([oci.blob_path(d.digest) for d in manifest.layers], root)
        rootfs[ref_name] = (root / "etc" / "motd").read_text()
        assert (root / "only-a").read_text() == "a\n" and (root / "bin" / "busybox").exists()
    assert rootfs == {"latest": "from a\n", "ab:1": "from b\n"}


def test_building_twice_into_a_name_replaces_the_entry_and_stays_usable(base, home, tmp_path):
    ok(cbt(home, "from", f"oci-layout:{base}"))
    layer = home / "busybox" / "layers" / "l"
    layer.mkdir()
    out = tmp_path / "out"
    (layer / "v").write_text("1\n")
    ok(cbt(home, "build", "busybox", f"oci-layout:{out}:app:v1", "--layers", "l"))
    (layer / "v").write_text("2\n")
    ok(cbt(home, "build", "busybox", f"oci-layout:{out}:app:v1", "--layers", "l"))
    index = json.loads((out / "index.json").read_text())
    assert len(index["manifests"]) == 1
    assert index["manifests"][0]["annotations"] == {"org.opencontainers.image.ref.name": "app:v1"}
    ok(cbt(home, "from", f"oci-layout:{out}"))  # one image: cbt's rule finds it without a name


def test_build_refuses_a_missing_layer_folder_or_a_changed_base(base, home, tmp_path):
    own_base = tmp_path / "base"
    build_busybox_image(own_base)
    ok(cbt(home, "from", f"oci-layout:{own_base}"))
    (home / "base" / "layers" / "l").mkdir()
    missing = cbt(home, "build", "base", f"oci-layout:{tmp_path / 'o'}", "--layers", "l,nope")
    assert missing.returncode == 1
    assert missing.stderr == f"cbt: error: layer folder {home / 'base' / 'layers' / 'nope'} not found (make it and put the layer's files in it)\n"
    twice = cbt(home, "build", "base", f"oci-layout:{tmp_path / 'o'}", "--layers", "l,l")
    assert twice.returncode == 1 and "named twice" in twice.stderr
    # the base is rebuilt with another date: its manifest changes under the working folder
    build_busybox_image(own_base, epoch=86400)
    changed = cbt(home, "build", "base", f"oci-layout:{tmp_path / 'o'}", "--layers", "l")
    assert changed.returncode == 1 and "changed since `from`" in changed.stderr
    assert not (tmp_path / "o").exists()


def test_oci_archive_round_trip(base, home, tmp_path):
    ok(cbt(home, "from", f"oci-layout:{base}"))
    (home / "busybox" / "layers" / "x").mkdir()
    (home / "busybox" / "layers" / "x" / "hi").write_text("hi\n")
    archive = tmp_path / "img.tar"
    ok(cbt(home, "build", "busybox", f"oci-archive:{archive}:img:v2", "--layers", "x"))
    ok(cbt(home, "from", f"oci-archive:{archive}:img:v2", "--name", "fromarchive"))
    ok(cbt(home, "config", "fromarchive", "--cmd", "cat /hi"))
    (home / "fromarchive" / "layers" / "y").mkdir()
    (home / "fromarchive" / "layers" / "y" / "hi").write_text("hi again\n")
    out = tmp_path / "out"
    ok(cbt(home, "build", "fromarchive", f"oci-layout:{out}:img:v3", "--layers", "y"))
    assert validate_layout(out) == []
    image = Image.load(f"oci-archive:{archive}:img:v2")
    manifest, config = manifest_and_config(out, "img:v3")
    assert [d.digest for d in manifest.layers[:2]] == [layer.descriptor.digest for layer in image.layers]
    assert len(manifest.layers) == 3 and config.config.cmd == ("/bin/sh", "-c", "cat /hi")
    skopeo = subprocess.run(["skopeo", "inspect", f"oci-archive:{archive}:img:v2"], capture_output=True, text=True)
    assert skopeo.returncode == 0, skopeo.stderr
    assert json.loads(skopeo.stdout)["Layers"] == [layer.descriptor.digest for layer in image.layers]


def test_source_date_epoch_makes_builds_reproducible(base, home, tmp_path):
    ok(cbt(home, "from", f"oci-layout:{base}"))
    (home / "busybox" / "layers" / "x").mkdir()
    (home / "busybox" / "layers" / "x" / "f").write_text("same\n")
    ok(cbt(home, "config", "busybox", "--cmd", "true"))
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    ok(cbt(home, "build", "busybox", f"oci-layout:{tmp_path / 'one'}", "--layers", "x", env=env))
    ok(cbt(home, "build", "busybox", f"oci-layout:{tmp_path / 'two'}", "--layers", "x", env=env))
    one = json.loads((tmp_path / "one" / "index.json").read_text())
    two = json.loads((tmp_path / "two" / "index.json").read_text())
    assert one == two
    _, config = manifest_and_config(tmp_path / "one", "latest")
    assert config.created == "2023-11-14T22:13:20Z"


def test_rm_and_version(base, home):
    ok(cbt(home, "from", f"oci-layout:{base}"))
    ok(cbt(home, "rm", "busybox"))
    assert not (home / "busybox").exists()
    assert "cbt: 0.1.0 (Python" in ok(cbt(home, "version")).stdout


def test_chapter_demo_runs_and_narrates(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "part3_go_style_builder", "demo", "--workspace", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert text.startswith("== Part 3: cbt in Python")
    assert "validate_layout: OK" in text and "Validation succeeded" in text
    assert "hello from a cbt layer" in text and "runc exit code: 0" in text
    assert validate_layout(tmp_path / "out") == []
    assert text.rstrip().endswith("=> done")

    # the chapter page quotes this run; only digests of what was made now (and dates) differ
    def normal(lines):
        return [re.sub(r"sha256:[0-9a-f]{64}", "sha256:<digest>", line) for line in lines]

    readme = (Path(__file__).resolve().parent.parent / "part3_go_style_builder" / "README.md").read_text().splitlines()
    start = readme.index("$ python -m part3_go_style_builder demo --workspace /tmp/cbt-demo") + 1
    pasted = readme[start : readme.index("```", start)]
    printed = text.replace(str(tmp_path), "/tmp/cbt-demo").splitlines()
    assert normal(pasted) == normal(printed)


def test_build_without_config_changes_adds_no_config_entry(base, home, tmp_path):
    ok(cbt(home, "from", f"oci-layout:{base}"))
    (home / "busybox" / "layers" / "x").mkdir()
    ok(cbt(home, "config", "busybox"))  # no options: nothing to record
    out = tmp_path / "out"
    ok(cbt(home, "build", "busybox", f"oci-layout:{out}", "--layers", "x"))
    _, base_config = manifest_and_config(base, "latest")
    _, config = manifest_and_config(out, "latest")
    assert config.history[:-1] == base_config.history
    assert config.history[-1].created_by == "cbt build --layers x: COPY layers/x/ /"
    assert config.config == base_config.config


def test_build_into_the_base_layout_adds_an_image_beside_the_base(home, tmp_path):
    layout = tmp_path / "busybox"
    build_busybox_image(layout)
    base_entry = json.loads((layout / "index.json").read_text())["manifests"]
    ok(cbt(home, "from", f"oci-layout:{layout}"))
    (home / "busybox" / "layers" / "app").mkdir()
    (home / "busybox" / "layers" / "app" / "hi").write_text("hi\n")
    ok(cbt(home, "config", "busybox", "--cmd", '["cat", "/hi"]'))
    ok(cbt(home, "build", "busybox", f"oci-layout:{layout}:app:v1", "--layers", "app"))
    index = json.loads((layout / "index.json").read_text())["manifests"]
    assert index[:1] == base_entry  # the base stays as it was, under its name
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index] == ["latest", "app:v1"]
    assert validate_layout(layout) == []
    for ref_name in ("latest", "app:v1"):
        tool = subprocess.run(
            ["oci-image-tool", "validate", "--type", "image", "--ref", f"name={ref_name}", str(layout)],
            capture_output=True, text=True,
        )
        assert tool.returncode == 0, tool.stdout + tool.stderr
    ran = runc_output(layout, "app:v1", tmp_path)
    assert (ran.returncode, ran.stdout) == (0, "hi\n"), ran.stderr
    # the base is unchanged, so the working folder can build again
    ok(cbt(home, "build", "busybox", f"oci-layout:{layout}:app:v2", "--layers", "app"))
    # now the layout holds three images: `from` without a name must ask for one
    ambiguous = cbt(home, "from", f"oci-layout:{layout}", "--name", "again")
    assert ambiguous.returncode == 1
    assert ambiguous.stderr.startswith(f"cbt: error: {layout}: multiple images found in index (latest, app:v1, app:v2), specify image name")
    assert not (home / "again").exists()
    # the base rebuilt under its name: the image `from` chose is gone, and build says so
    build_busybox_image(layout, epoch=86400)
    gone = cbt(home, "build", "busybox", f"oci-layout:{layout}:app:v3", "--layers", "app")
    assert gone.returncode == 1
    assert gone.stderr.startswith(f"cbt: error: base image oci-layout:{layout} changed since `from`: it now holds several images")


def test_a_broken_builder_json_is_named_in_the_error(base, home, tmp_path):
    ok(cbt(home, "from", f"oci-layout:{base}"))
    (home / "busybox" / "layers" / "x").mkdir()
    state_file = home / "busybox" / "builder.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "fromImage": "garbage"}))
    proc = cbt(home, "build", "busybox", f"oci-layout:{tmp_path / 'o'}", "--layers", "x")
    assert (proc.returncode, proc.stderr.count("\n")) == (1, 1)
    assert proc.stderr.startswith(f"cbt: error: {state_file}: fromImage: image reference 'garbage' has no transport")
    state_file.write_text("{")
    proc = cbt(home, "config", "busybox", "--cmd", "x")
    assert proc.returncode == 1 and proc.stderr.startswith(f"cbt: error: {state_file}: not JSON")
    (tmp_path / "junk.tar").write_bytes(b"junk" * 300)
    proc = cbt(home, "from", f"oci-archive:{tmp_path / 'junk.tar'}")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"cbt: error: {tmp_path / 'junk.tar'}: not a readable tar archive")


def test_a_closed_pipe_ends_a_command_quietly(home):
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "part3_go_style_builder", "version"], stdout=write_end, stderr=subprocess.PIPE,
            text=True, env={**os.environ, "CBT_HOME": str(home)},
        )
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (141, "")


def test_the_working_folder_defaults_to_dot_cbt_in_the_home_directory(base, tmp_path):
    environ = {k: v for k, v in os.environ.items() if k != "CBT_HOME"}
    environ["HOME"] = str(tmp_path / "user")
    proc = subprocess.run(
        [sys.executable, "-m", "part3_go_style_builder", "from", f"oci-layout:{base}"],
        capture_output=True, text=True, env=environ,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "user" / ".cbt" / "busybox" / "builder.json").is_file()
    assert f"working folder: {tmp_path / 'user' / '.cbt' / 'busybox'}" in proc.stdout
