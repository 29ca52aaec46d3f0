"""Part 2 models: JSON in and out, unknown keys kept, Docker schema2 documents read."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from part1_overview import replace
from part2_manual_oci import (
    ContainerConfig,
    Descriptor,
    History,
    ImageConfig,
    Index,
    Manifest,
    ModelError,
    Platform,
    canonical_json,
    sha256_digest,
)
from part2_manual_oci import (
    mediatypes as mt,
)

D1 = sha256_digest(b"one")
D2 = sha256_digest(b"two")
D3 = sha256_digest(b"three")


# Real documents in Docker's schema2 shape (as `docker save` / Docker Hub serve them)
DOCKER_MANIFEST = {
    "schemaVersion": 2,
    "mediaType": mt.DOCKER_MANIFEST,
    "config": {"mediaType": mt.DOCKER_CONFIG, "size": 1472, "digest": D1},
    "layers": [
        {"mediaType": mt.DOCKER_LAYER_GZIP, "size": 2814446, "digest": D2},
        {
            "mediaType": mt.DOCKER_LAYER_FOREIGN_GZIP,
            "size": 1000,
            "digest": D3,
            "urls": ["https://example.com/layer.tar.gz"],
        },
    ],
}

DOCKER_LIST = {
    "schemaVersion": 2,
    "mediaType": mt.DOCKER_MANIFEST_LIST,
    "manifests": [
        {"mediaType": mt.DOCKER_MANIFEST, "size": 528, "digest": D1, "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}},
        {"mediaType": mt.DOCKER_MANIFEST, "size": 528, "digest": D2, "platform": {"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.1879", "os.features": ["win32k"]}},
    ],
}

DOCKER_CONFIG = {
    "architecture": "amd64",
    "os": "linux",
    "created": "2023-07-18T23:19:33.655005962Z",
    "docker_version": "20.10.23",
    "container": "8a7f0c0e6d0b",
    "container_config": {"Hostname": "8a7f0c0e6d0b", "Cmd": ["/bin/sh", "-c", "#(nop) ", "CMD [\"sh\"]"]},
    "config": {
        "Hostname": "",
        "Domainname": "",
        "User": "app",
        "AttachStdin": False,
        "Tty": False,
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"],
        "Cmd": ["sh"],
        "Entrypoint": None,
        "Image": "sha256:0000",
        "Volumes": {"/data": {}},
        "WorkingDir": "/srv",
        "ExposedPorts": {"8080/tcp": {}},
        "Labels": {"maintainer": "someone"},
        "StopSignal": "SIGQUIT",
        "ArgsEscaped": True,
        "Healthcheck": {"Test": ["CMD-SHELL", "wget -q -O- localhost:8080"], "Interval": 30000000000, "Retries": 3},
        "OnBuild": ["RUN echo child"],
        "Shell": ["/bin/ash", "-eo", "pipefail", "-c"],
    },
    "rootfs": {"type": "layers", "diff_ids": [D2, D3]},
    "history": [
        {"created": "2023-07-18T23:19:33Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
        {"created": "2023-07-18T23:19:33Z", "created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]", "empty_layer": True},
    ],
}


def test_descriptor_to_json_uses_camel_case_and_skips_unset_fields():
    desc = Descriptor(mt.OCI_MANIFEST, D1, 42, annotations={mt.ANNOTATION_REF_NAME: "v1"}, platform=Platform("arm64", "linux", variant="v8"), artifact_type="application/x.test")
    assert desc.to_json() == {
        "mediaType": mt.OCI_MANIFEST,
        "digest": D1,
        "size": 42,
        "annotations": {mt.ANNOTATION_REF_NAME: "v1"},
        "artifactType": "application/x.test",
        "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
    }
    assert Descriptor.from_json(desc.to_json()) == desc
    assert desc.ref_name == "v1"
    assert Descriptor(mt.OCI_CONFIG, D2, 1).to_json() == {"mediaType": mt.OCI_CONFIG, "digest": D2, "size": 1}


def test_descriptor_unknown_fields_survive_a_round_trip():
    d = {"mediaType": mt.OCI_EMPTY, "digest": sha256_digest(b"{}"), "size": 2, "data": "e30=", "x-vendor": {"k": [1, 2]}}
    desc = Descriptor.from_json(d)
    assert desc.extra == {"data": "e30=", "x-vendor": {"k": [1, 2]}}
    assert desc.to_json() == d


def test_descriptors_are_hashable_and_replaceable():
    desc = Descriptor(mt.OCI_LAYER_GZIP, D1, 7, annotations={"a": "b"})
    assert len({desc, replace(desc)}) == 1
    assert replace(desc, size=8).size == 8
    with pytest.raises(AttributeError, match="cannot assign to field"):
        desc.size = 9  # type: ignore[misc]


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"digest": D1, "size": 1}, "missing 'mediaType'"),
        ({"mediaType": mt.OCI_CONFIG, "size": 1}, "missing 'digest'"),
        ({"mediaType": mt.OCI_CONFIG, "digest": D1}, "missing 'size'"),
        ({"mediaType": mt.OCI_CONFIG, "digest": D1, "size": "12"}, "'size' must be an integer"),
        ({"mediaType": mt.OCI_CONFIG, "digest": D1, "size": True}, "'size' must be an integer"),
        ({"mediaType": mt.OCI_CONFIG, "digest": D1, "size": -1}, "negative size"),
        ({"mediaType": mt.OCI_CONFIG, "digest": "sha256:../../etc", "size": 1}, "invalid digest"),
        ({"mediaType": mt.OCI_CONFIG, "digest": D1, "size": 1, "annotations": {"a": 1}}, "'annotations' must be an object of strings"),
        ([], "expected a JSON object"),
    ],
)
def test_invalid_descriptor_is_rejected_with_the_field_named(bad, message):
    with pytest.raises(ModelError, match=message):
        Descriptor.from_json(bad, "layers[3]")
    with pytest.raises(ModelError, match=r"^layers\[3\]"):
        Descriptor.from_json(bad, "layers[3]")


def test_docker_schema2_manifest_reads_and_writes_back_unchanged():
    manifest = Manifest.from_json(DOCKER_MANIFEST)
    assert manifest.media_type == mt.DOCKER_MANIFEST
    assert manifest.config.media_type == mt.DOCKER_CONFIG
    assert [layer.media_type for layer in manifest.layers] == [mt.DOCKER_LAYER_GZIP, mt.DOCKER_LAYER_FOREIGN_GZIP]
    assert manifest.layers[1].urls == ("https://example.com/layer.tar.gz",)
    assert all(mt.LAYER_COMPRESSION[layer.media_type] == "gzip" for layer in manifest.layers)
    assert manifest.to_json() == DOCKER_MANIFEST


def test_docker_manifest_list_reads_as_an_index_with_platforms():
    index = Index.from_json(DOCKER_LIST)
    assert index.media_type == mt.DOCKER_MANIFEST_LIST
    assert str(index.manifests[0].platform) == "linux/arm/v7"
    assert index.manifests[1].platform.os_version == "10.0.17763.1879"
    assert index.manifests[1].platform.os_features == ("win32k",)
    assert index.to_json() == DOCKER_LIST


def test_docker_config_keeps_healthcheck_onbuild_shell_and_unknown_keys():
    config = ImageConfig.from_json(DOCKER_CONFIG)
    c = config.config
    assert c.user == "app"
    assert c.env == ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8")
    assert c.env_dict()["LANG"] == "C.UTF-8"
    assert c.cmd == ("sh",) and c.entrypoint is None
    assert c.exposed_ports == {"8080/tcp": {}} and c.volumes == {"/data": {}}
    assert c.working_dir == "/srv" and c.labels == {"maintainer": "someone"}
    assert c.stop_signal == "SIGQUIT" and c.args_escaped is True
    assert c.healthcheck["Test"] == ["CMD-SHELL", "wget -q -O- localhost:8080"]
    assert c.on_build == ("RUN echo child",)
    assert c.shell == ("/bin/ash", "-eo", "pipefail", "-c")
    assert c.extra == {"Hostname": "", "Domainname": "", "AttachStdin": False, "Tty": False, "Image": "sha256:0000"}
    assert config.rootfs_diff_ids == (D2, D3)
    assert config.history[1].empty_layer is True
    assert set(config.extra) == {"docker_version", "container", "container_config"}
    out = config.to_json()
    # "Entrypoint": null reads as None, which is not written; everything else comes back
    expected = json.loads(json.dumps(DOCKER_CONFIG))
    del expected["config"]["Entrypoint"]
    assert out == expected
    assert ImageConfig.from_json(out) == config


def test_oci_image_config_round_trip_and_platform():
    config = ImageConfig(
        architecture="arm64",
        os="linux",
        variant="v8",
        created="2024-01-01T00:00:00Z",
        author="me",
        config=ContainerConfig(entrypoint=("/app",), cmd=("--help",), env=("A=1",)),
        rootfs_diff_ids=(D1,),
        history=(History(created_by="COPY app /app"), History(created_by="CMD", empty_layer=True)),
    )
    j = config.to_json()
    assert j["rootfs"] == {"type": "layers", "diff_ids": [D1]}
    assert j["config"] == {"Entrypoint": ["/app"], "Cmd": ["--help"], "Env": ["A=1"]}
    assert ImageConfig.from_json(j) == config
    assert str(config.platform) == "linux/arm64/v8"
    changed = replace(config, config=replace(config.config, user="1000"))
    assert changed.to_json()["config"]["User"] == "1000"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.pop("architecture"), "missing 'architecture'"),
        (lambda d: d.pop("rootfs"), "missing 'rootfs'"),
        (lambda d: d["rootfs"].update(type="tarball"), "rootfs.type must be 'layers'"),
        (lambda d: d["rootfs"].update(diff_ids=["nope"]), r"rootfs.diff_ids\[0\] is not a digest"),
        (lambda d: d["config"].update(Env="A=1"), "'Env' must be a list of strings"),
        (lambda d: d["history"][0].update(empty_layer="yes"), r"history\[0\]: 'empty_layer' must be a boolean"),
    ],
)
def test_invalid_image_config_names_the_problem(change, message):
    d = json.loads(json.dumps(DOCKER_CONFIG))
    change(d)
    with pytest.raises(ModelError, match=message):
        ImageConfig.from_json(d, "config sha256:abc")


def test_manifest_and_index_are_not_confused():
    with pytest.raises(ModelError, match="is an index"):
        Manifest.from_json(DOCKER_LIST)
    with pytest.raises(ModelError, match="is a manifest"):
        Index.from_json(DOCKER_MANIFEST)
    with pytest.raises(ModelError, match="schemaVersion must be 2"):
        Manifest.from_json({**DOCKER_MANIFEST, "schemaVersion": 1})


def test_oci_manifest_with_subject_artifact_type_and_annotations_round_trips():
    m = Manifest(
        config=Descriptor(mt.OCI_EMPTY, sha256_digest(b"{}"), 2),
        layers=(Descriptor("application/vnd.example.sbom+json", D1, 10),),
        annotations={"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        subject=Descriptor(mt.OCI_MANIFEST, D2, 400),
        artifact_type="application/vnd.example.sbom",
    )
    assert Manifest.from_json(m.to_json()) == m
    assert Manifest.from_json(json.loads(canonical_json(m))) == m


def test_manifest_without_media_type_reads_as_oci():
    d = {k: v for k, v in DOCKER_MANIFEST.items() if k != "mediaType"}
    assert Manifest.from_json(d).media_type == mt.OCI_MANIFEST


def test_index_round_trip_with_nested_index_and_extra_keys():
    index = Index(
        manifests=(Descriptor(mt.OCI_INDEX, D1, 300, annotations={mt.ANNOTATION_REF_NAME: "multi"}),),
        annotations={"k": "v"},
        extra={"x-future": True},
    )
    j = index.to_json()
    assert j["schemaVersion"] == 2 and j["mediaType"] == mt.OCI_INDEX and j["x-future"] is True
    assert Index.from_json(j) == index


def test_canonical_json_is_compact_sorted_utf8_and_stable():
    data = {"b": 1, "a": {"d": [1, 2], "c": "é"}}
    out = canonical_json(data)
    assert out == '{"a":{"c":"é","d":[1,2]},"b":1}'.encode()
    reordered = {"a": {"c": "é", "d": [1, 2]}, "b": 1}
    assert sha256_digest(canonical_json(reordered)) == sha256_digest(out)
    config = ImageConfig(architecture="amd64", os="linux")
    assert canonical_json(config) == canonical_json(config.to_json())


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_strs = st.none() | st.lists(_text, max_size=4).map(tuple)


@settings(max_examples=60, deadline=None)
@given(
    user=st.none() | _text,
    env=_strs,
    entrypoint=_strs,
    cmd=_strs,
    labels=st.none() | st.dictionaries(_text, _text, max_size=3),
    ports=st.none() | st.dictionaries(st.from_regex(r"[0-9]{1,5}/(tcp|udp)", fullmatch=True), st.just({}), max_size=3),
    args_escaped=st.none() | st.booleans(),
    shell=_strs,
    extra=st.dictionaries(st.sampled_from(["Hostname", "Tty", "Image", "X"]), st.none() | st.booleans() | _text, max_size=3),
)
def test_container_config_json_round_trip(user, env, entrypoint, cmd, labels, ports, args_escaped, shell, extra):
    extra = {k: v for k, v in extra.items() if v is not None}
    c = ContainerConfig(user=user, env=env, entrypoint=entrypoint, cmd=cmd, labels=labels, exposed_ports=ports, args_escaped=args_escaped, shell=shell, extra=extra)
    config = ImageConfig(architecture="amd64", os="linux", config=c, rootfs_diff_ids=(D1,))
    assert ImageConfig.from_json(json.loads(canonical_json(config))) == config


def test_canonical_json_writes_bytes_that_are_not_utf8_as_replacement_characters():
    # a file name from os.listdir (b"caf\xe9" as surrogateescape) in a history entry: JSON is
    # UTF-8, and Go's encoding/json writes each such byte as U+FFFD
    assert canonical_json({"created_by": "COPY caf\udce9 /x"}) == '{"created_by":"COPY caf\ufffd /x"}'.encode()
    assert canonical_json({"a": "é"}) == '{"a":"é"}'.encode()
