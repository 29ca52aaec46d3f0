"""``images`` with ``--filter`` and a REPOSITORY argument, ``inspect --format``: what docker and
podman users type, on a store with images of known labels and creation times."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capstone.__main__ import main
from capstone.gotemplate import Template, TemplateError, go_format
from capstone.store import Store


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("images-format") / "store"
    s = Store.open(path)
    base = s.load("capstone/busybox")

    def make(created: str, labels: dict, names: list[str], **config):
        image = base.with_config(created=created, labels=labels, **config)
        return s.commit(image, names)

    make("2020-01-01T00:00:00Z", {"tier": "web", "version": "1"}, ["app:1"], env=["PATH=/bin", "MODE=one"],
         cmd=["sh", "-c", "echo one"])
    make("2021-01-01T00:00:00Z", {"tier": "web", "version": "2"}, ["app:2"], env=["PATH=/bin", "MODE=two"])
    make("2022-01-01T00:00:00Z", {"tier": "build"}, ["tools:latest", "registry.example:5000/team/tools:1"])
    make("2023-01-01T00:00:00Z", {"tier": "scratch"}, [])  # untagged: dangling
    return path


def cli(capsys, store: Path, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--store", str(store), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def listed(capsys, store: Path, *argv: str) -> list[str]:
    code, out, err = cli(capsys, store, "images", "--format", "{{.Repository}}:{{.Tag}}", *argv)
    assert code == 0, err
    return sorted(out.splitlines())


# -- images --------------------------------------------------------------------------------------


def test_a_repository_argument_and_reference_filters(capsys, store_dir):
    assert listed(capsys, store_dir, "app") == ["app:1", "app:2"]
    assert listed(capsys, store_dir, "app:2") == ["app:2"]
    assert listed(capsys, store_dir, "--filter", "reference=app") == ["app:1", "app:2"]
    # filepath.Match: * never crosses a /
    assert listed(capsys, store_dir, "--filter", "reference=*:1") == ["app:1"]
    # as podman: the full name too (docker.io/library/app:1)
    assert listed(capsys, store_dir, "--filter", "reference=*/*/*:1") == ["app:1", "registry.example:5000/team/tools:1"]
    # a name of an image is listed only when it matches (the image has two)
    assert listed(capsys, store_dir, "--filter", "reference=registry.example:5000/*/*") == [
        "registry.example:5000/team/tools:1"]
    assert listed(capsys, store_dir, "--filter", "reference=docker.io/library/tools") == ["tools:latest"]
    # the same key twice: either
    assert listed(capsys, store_dir, "-f", "reference=tools", "-f", "reference=app:1") == ["app:1", "tools:latest"]
    assert listed(capsys, store_dir, "nothing-like-it") == []


def test_before_and_since_compare_creation_times(capsys, store_dir):
    assert listed(capsys, store_dir, "app", "--filter", "before=app:2") == ["app:1"]
    assert listed(capsys, store_dir, "--filter", "since=app:1") == [
        "app:2", "registry.example:5000/team/tools:1", "tools:latest"]
    assert listed(capsys, store_dir, "--filter", "since=app:1", "--filter", "before=tools") == ["app:2"]
    code, _, err = cli(capsys, store_dir, "images", "--filter", "before=nosuch:1")
    assert code == 1 and err == "capstone: images --filter before=nosuch:1: no such image\n"


def test_dangling_images_are_the_untagged_ones(capsys, store_dir):
    code, out, _ = cli(capsys, store_dir, "images", "--filter", "dangling=true", "--format", "json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [(r["Repository"], r["Tag"]) for r in rows] == [("<none>", "<none>")]
    store = Store.open(store_dir)
    assert store.config(rows[0]["Digest"]).config.labels == {"tier": "scratch"}
    assert "<none>:<none>" not in listed(capsys, store_dir, "--filter", "dangling=false")


def test_labels_are_all_required(capsys, store_dir):
    assert listed(capsys, store_dir, "--filter", "label=tier=web") == ["app:1", "app:2"]
    assert listed(capsys, store_dir, "--filter", "label=tier=web", "--filter", "label=version=2") == ["app:2"]
    assert listed(capsys, store_dir, "--filter", "label=version") == ["app:1", "app:2"]
    code, out, _ = cli(capsys, store_dir, "images", "-q", "--filter", "label=tier=build")
    assert code == 0 and len(out.split()) == 1  # one image, two names


@pytest.mark.parametrize(("value", "message"), [
    ("color=red", "expected KEY=VALUE with KEY one of reference, before, since, dangling, label"),
    ("dangling=maybe", "dangling is true or false"),
    ("reference", "expected KEY=VALUE"),
    ("reference=[", "images --filter reference=[: "),
])
def test_a_filter_that_is_not_one_is_one_line(capsys, store_dir, value, message):
    code, _, err = cli(capsys, store_dir, "images", "--filter", value)
    assert code == 1 and message in err and len(err.splitlines()) == 1


# -- inspect --format ------------------------------------------------------------------------------


def test_inspect_format_fields_as_docker_names_them(capsys, store_dir):
    code, out, err = cli(capsys, store_dir, "inspect", "--format",
                         "{{.Id}} {{.Digest}} {{.RepoTags}} {{.Created}} {{.Architecture}} {{.Os}}", "app:1")
    assert code == 0, err
    store = Store.open(store_dir)
    desc = store.resolve("app:1")
    arch = store.config("app:1").architecture
    assert out == f"{store.image_id(desc)} {desc.digest} [app:1] 2020-01-01T00:00:00Z {arch} linux\n"
    code, out, _ = cli(capsys, store_dir, "inspect", "-f", "{{.Config.Env}}|{{.Config.Cmd}}|{{.Config.Labels}}|"
                       "{{.Config.Entrypoint}}|{{.Config.WorkingDir}}|{{.Config.User}}", "app:1")
    assert out == "[PATH=/bin MODE=one]|[sh -c echo one]|map[tier:web version:1]|[]||\n"
    code, out, _ = cli(capsys, store_dir, "inspect", "-f", "{{json .Config.Labels}} {{index .Config.Labels \"tier\"}} "
                       "{{.Config.Labels.nothing}} {{len .RootFS.Layers}}", "app:2")
    assert out == '{"tier":"web","version":"2"} web <no value> 1\n'
    code, out, _ = cli(capsys, store_dir, "inspect", "-f", "{{range .RepoTags}}{{.}};{{end}}", "tools")
    assert out == "docker.io/library/tools:latest;registry.example:5000/team/tools:1;\n".replace(
        "docker.io/library/", "")


def test_inspect_format_json_of_the_config_is_the_document_s(capsys, store_dir):
    code, out, _ = cli(capsys, store_dir, "inspect", "app:1")
    whole = json.loads(out)[0]
    code, out, _ = cli(capsys, store_dir, "inspect", "--format", "{{json .Config}}", "app:1", "app:2")
    first, second = out.splitlines()
    assert json.loads(first) == whole["Config"]
    assert json.loads(second)["Env"] == ["PATH=/bin", "MODE=two"]
    assert whole["Labels"] == whole["Config"]["Labels"] and whole["Digest"].startswith("sha256:")


@pytest.mark.parametrize(("template", "message"), [
    ("{{.Nope}}", "inspect --format '{{.Nope}}': can't evaluate field Nope in .Nope"),
    ("{{.Config.Nope}}", "can't evaluate field Nope in .Config.Nope"),
    ("{{range .RepoTags}}", "missing {{end}}"),
    ("{{.Id", "unclosed action"),
    ("{{frobnicate .Id}}", 'function "frobnicate" not defined'),
])
def test_a_template_that_fails_is_one_line(capsys, store_dir, template, message):
    code, out, err = cli(capsys, store_dir, "inspect", "--format", template, "app:1")
    assert code == 1 and out == "" and message in err and len(err.splitlines()) == 1


def test_values_print_as_go_prints_them():
    assert go_format(["a", "b"]) == "[a b]"
    assert go_format({"b": 1, "a": [True, None]}) == "map[a:[true <nil>] b:1]"
    assert Template("{{- .A -}} x {{ .B }}").render({"A": 1, "B": "y"}) == "1x y"
    assert Template('{{join .L ","}}').render({"L": ["a", "b"]}) == "a,b"
    with pytest.raises(TemplateError, match="unexpected {{end}}"):
        Template("{{end}}")
