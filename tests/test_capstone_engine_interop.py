"""Images built by capstone.engine, read by the real tools: oci-image-tool validates the
``--output type=oci`` layout, umoci unpacks it and runc runs it, skopeo reads the store's own
layout, and the archive outputs are what skopeo expects."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from support import runc_run

from capstone.engine import build
from capstone.store import Store
from part2_manual_oci import validate_layout

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds need root (namespaces, overlay mounts)")

DOCKERFILE = """\
FROM capstone/busybox
WORKDIR /app
COPY greet.sh .
RUN chmod +x /app/greet.sh && rm /etc/group
ENV WHO=interop
CMD ["/app/greet.sh"]
"""


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("interop")
    store = Store.open(root / "store")
    ctx = root / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "greet.sh").write_text('#!/bin/sh\necho "hello $WHO from $(pwd)"\ntest -e /etc/group || echo "no group"\n')
    outputs = [f"type=oci,dest={root / 'oci'}", f"type=oci-archive,dest={root / 'image.tar'}",
               f"type=docker-archive,dest={root / 'docker.tar'}"]
    with open(os.devnull, "wb") as devnull:
        result = build(store, ctx, tags=["interop:1.0"], network="none", outputs=outputs, run_output=devnull)
    return store, root, result


def test_oci_output_passes_validation(built):
    store, root, _ = built
    validate_layout(root / "oci")
    r = run(["oci-image-tool", "validate", "--type", "image", "--ref", "name=1.0", str(root / "oci")])
    assert r.returncode == 0, r.stdout + r.stderr


def test_umoci_unpack_and_runc_run_the_built_image(built, tmp_path):
    _, root, _ = built
    bundle = tmp_path / "bundle"
    r = run(["umoci", "unpack", "--image", f"{root / 'oci'}:1.0", str(bundle)])
    assert r.returncode == 0, r.stderr
    assert not (bundle / "rootfs/etc/group").exists()  # the whiteout applied by umoci
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["args"] == ["/app/greet.sh"]
    assert config["process"]["cwd"] == "/app"
    r = runc_run(bundle, "capstone-build")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["hello interop from /app", "no group"]


def test_skopeo_reads_the_store_layout_and_the_archives(built):
    store, root, result = built
    r = run(["skopeo", "inspect", f"oci:{store.layout.path}:docker.io/library/interop:1.0"])
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["Digest"] == result.digest
    assert "WHO=interop" in info["Env"]
    for ref in (f"oci-archive:{root / 'image.tar'}:docker.io/library/interop:1.0", f"docker-archive:{root / 'docker.tar'}"):
        r = run(["skopeo", "inspect", "--config", ref])
        assert r.returncode == 0, (ref, r.stderr)
        assert json.loads(r.stdout)["config"]["Cmd"] == ["/app/greet.sh"]


def test_same_build_twice_with_source_date_epoch_gives_the_same_digest(tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY a /a\nENV X=1\n")
    (ctx / "a").write_text("a")
    digests = []
    for n in range(2):
        store = Store.open(tmp_path / f"store{n}")
        digests.append(build(store, ctx, build_args={"SOURCE_DATE_EPOCH": "1700000000"}, no_cache=True).digest)
    assert digests[0] == digests[1]
