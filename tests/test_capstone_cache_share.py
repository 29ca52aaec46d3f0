"""A build cache that leaves the machine: ``--cache-to`` and ``--cache-from``.

Store A builds and exports its cache (to the real ``docker-registry`` on 127.0.0.1, or to a
directory); store B, empty, builds the same Dockerfile from a copy of the context at another
path (another machine, as far as the build can tell) with ``--cache-from``: no step runs and
the image id is A's. skopeo reads the exported index; a cache of another version is ignored in
one line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from registry_server import Registry
from support import capstone, make_context, skopeo

import capstone.engine.sharedcache as sharedcache
from capstone.engine import build
from capstone.engine.sharedcache import CacheSpecError, parse_cache_spec
from capstone.errors import CapstoneError
from capstone.store import Store
from part2_manual_oci import OCILayout, validate_layout
from part2_manual_oci import mediatypes as mt

DOCKERFILE = """\
FROM capstone/busybox AS tools
RUN echo made-in-tools > /tool
FROM capstone/busybox
COPY app.txt /app/app.txt
COPY --from=tools /tool /app/tool
RUN cat /app/app.txt /app/tool > /app/both
ENV MODE=cached
CMD ["cat", "/app/both"]
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    r = Registry(tmp_path_factory.mktemp("cache-registry"))
    yield r
    r.stop()


def context(root: Path) -> Path:
    return make_context(root / "ctx", DOCKERFILE, {"app.txt": "the app\n"})


def elsewhere(ctx: Path, root: Path) -> Path:
    """The same context at another path (as on another machine)."""
    other = root / "elsewhere" / "checkout"
    shutil.copytree(ctx, other, symlinks=True)
    return other


# -- through a registry ---------------------------------------------------------------------------


def test_a_cache_exported_to_a_registry_runs_no_step_on_an_empty_store(registry, tmp_path):
    ctx = context(tmp_path)
    ref = f"{registry.host}/cache/app:buildcache"
    a = build(Store.open(tmp_path / "A"), ctx, tags=["app:1"], network="none",
              cache_to=[f"type=registry,ref={ref},mode=max"])
    assert len(a.ran) == 5  # RUN, COPY, COPY --from, RUN and the last config step: a cold build

    store_b = Store.open(tmp_path / "B")
    lines: list[str] = []
    b = build(store_b, elsewhere(ctx, tmp_path), tags=["app:1"], network="none", cache_from=[f"type=registry,ref={ref}"],
              log=lines.append)
    assert b.ran == ()  # not one step ran
    assert b.image_id == a.image_id and b.digest == a.digest
    assert f"--cache-from {ref}: 5 steps from this cache" in lines
    assert validate_layout(store_b.layout.path) == []
    # what B got is complete: it runs
    from support import in_child

    from capstone.runner import run_image

    out = tmp_path / "out"

    def run():
        with open(out, "wb") as f:
            return run_image(store_b, "app:1", network="none", stdout=f, stderr=f)

    assert in_child(run) == 0 and out.read_text() == "the app\nmade-in-tools\n"


def _blob_gets(registry: Registry, since: int) -> set[str]:
    """The digests of the blobs the registry served since its ``since``-th request."""
    return {path.rsplit("/", 1)[1] for method, path in registry.requests()[since:]
            if method == "GET" and "/blobs/" in path}


def test_a_fully_cached_build_fetches_the_layers_of_its_result_only(registry, tmp_path):
    """A hit brings its manifest and config; the layers come once something reads them: here
    only the result, stored whole. The tools stage's RUN layer, which the cached COPY --from
    never reads, is never fetched; the hits whose layers came are in B's local cache."""
    ctx = context(tmp_path)
    ref = f"{registry.host}/cache/lazy:1"
    store_a = Store.open(tmp_path / "A")
    a = build(store_a, ctx, tags=["app:1"], network="none", cache_to=[f"type=registry,ref={ref},mode=max"])
    result = {d.digest for d in store_a.manifest("app:1").layers}
    index = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}"))
    exported = {d.digest for e in index["manifests"] for d in store_a.read_manifest(e["digest"]).layers}
    (tools_layer,) = exported - result  # the tools stage's RUN
    start = len(registry.requests())
    store_b = Store.open(tmp_path / "B")
    other = elsewhere(ctx, tmp_path)
    b = build(store_b, other, tags=["app:1"], network="none", cache_from=[ref])
    assert b.ran == () and b.digest == a.digest
    fetched = _blob_gets(registry, start)
    assert tools_layer not in fetched and not store_b.has_blob(tools_layer)
    assert all(store_b.has_blob(d) for d in result) and validate_layout(store_b.layout.path) == []
    # a second build in B fetches nothing again: what it has stays, what it never read is not needed
    again = build(store_b, other, tags=["app:2"], network="none", cache_from=[ref])
    assert again.ran == () and again.digest == a.digest
    assert not _blob_gets(registry, start) - fetched  # nothing fetched twice


def test_a_step_after_hits_reads_their_layers_and_an_export_takes_every_one(registry, tmp_path):
    """A RUN that misses after cached steps runs over their files (fetched for it); a
    ``--cache-to`` of a build that imported hits exports the layers it never read too."""
    ctx = context(tmp_path)
    ref = f"{registry.host}/cache/after:1"
    build(Store.open(tmp_path / "A"), ctx, network="none", cache_to=[f"type=registry,ref={ref},mode=max"])
    changed = elsewhere(ctx, tmp_path)
    (changed / "Dockerfile").write_text(DOCKERFILE.replace("ENV MODE=cached", "RUN wc -c /app/both > /app/size"))
    out = f"{registry.host}/cache/after:2"
    lines: list[str] = []
    b = build(Store.open(tmp_path / "B"), changed, tags=["app:1"], network="none", cache_from=[ref],
              cache_to=[f"type=registry,ref={out},mode=max"], log=lines.append)
    assert [s.instruction for s in b.ran] == ["RUN wc -c /app/both > /app/size", 'CMD ["cat", "/app/both"]']
    assert f"--cache-to {out}: 6 steps exported (mode=max)" in lines
    c = build(Store.open(tmp_path / "C"), changed, tags=["app:1"], network="none", cache_from=[out])
    assert c.ran == () and c.digest == b.digest


PARALLEL = """\
FROM capstone/busybox AS left
RUN echo left > /left
FROM capstone/busybox AS right
RUN echo right > /right
FROM capstone/busybox
COPY --from=left /left /left
COPY --from=right /right /right
CMD ["cat", "/left", "/right"]
"""


def test_stages_built_side_by_side_export_and_import_every_step(registry, tmp_path):
    """left and right are built at the same time, each in a process of its own (.schedule):
    their steps still reach the exported cache, and their hits the import's count."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(PARALLEL)
    ref = f"{registry.host}/cache/parallel:1"
    lines: list[str] = []
    a = build(Store.open(tmp_path / "A"), ctx, network="none", cache_to=[f"type=registry,ref={ref},mode=max"],
              log=lines.append)
    assert f"--cache-to {ref}: 5 steps exported (mode=max)" in lines
    lines.clear()
    b = build(Store.open(tmp_path / "B"), elsewhere(ctx, tmp_path), network="none", cache_from=[ref], log=lines.append)
    assert b.ran == () and b.image_id == a.image_id
    assert f"--cache-from {ref}: 5 steps from this cache" in lines


def test_the_exported_cache_is_an_oci_index_skopeo_reads(registry, tmp_path):
    ctx = context(tmp_path)
    ref = f"{registry.host}/cache/index:1"
    build(Store.open(tmp_path / "A"), ctx, network="none", cache_to=[f"type=registry,ref={ref},mode=max"])
    index = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}"))
    assert index["mediaType"] == mt.OCI_INDEX
    assert index["annotations"] == {"dev.capstone.cache.version": "capstone-build-1",
                                    "dev.capstone.cache.format": "1", "dev.capstone.cache.mode": "max"}
    entries = index["manifests"]
    assert len(entries) == 5  # the tools' RUN, both COPYs, the RUN, and the end of the last stage
    assert all(len(e["annotations"]["dev.capstone.cache.key"]) == 64 for e in entries)
    assert [e["annotations"]["dev.capstone.cache.step"] for e in entries][-1] == 'CMD ["cat", "/app/both"]'
    repo = ref.rsplit(":", 1)[0]
    child = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{repo}@{entries[-1]['digest']}"))
    assert child["Env"][-1] == "MODE=cached"


def test_mode_min_exports_the_result_stage_only(registry, tmp_path):
    ctx = context(tmp_path)
    ref = f"{registry.host}/cache/min:1"
    build(Store.open(tmp_path / "A"), ctx, network="none", cache_to=[f"type=registry,ref={ref}"])
    index = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}"))
    assert index["annotations"]["dev.capstone.cache.mode"] == "min"
    assert len(index["manifests"]) == 4  # not the tools stage's RUN
    b = build(Store.open(tmp_path / "B"), elsewhere(ctx, tmp_path), network="none", cache_from=[ref])
    # the tools stage runs again (BuildKit's min mode); the result's steps come from the cache
    assert [s.instruction for s in b.ran] == ["RUN echo made-in-tools > /tool"]


def test_the_command_line_exports_and_imports(registry, tmp_path):
    ctx = context(tmp_path)
    ref = f"{registry.host}/cache/cli:1"
    r = capstone(tmp_path / "A", "build", "--network", "none", "--cache-to", f"type=registry,ref={ref},mode=max",
                 "-t", "app", str(ctx))
    assert r.returncode == 0, r.stderr
    assert f"--cache-to {ref}: 5 steps exported (mode=max)" in r.stderr.splitlines()
    image_id = r.stdout.strip()
    r = capstone(tmp_path / "B", "build", "--network", "none", "--cache-from", ref, "-t", "app",
                 str(elsewhere(ctx, tmp_path)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == image_id
    assert r.stderr.count("--> Using cache") == 5


def test_credentials_and_tls_flags_reach_the_cache(tmp_path):
    registry = Registry(tmp_path / "auth-registry", htpasswd={"ci": "ci-pass-93"})
    try:
        ctx = context(tmp_path)
        ref = f"{registry.host}/cache/auth:1"
        r = capstone(tmp_path / "A", "build", "-q", "--network", "none", "--cache-to", f"type=registry,ref={ref}",
                     str(ctx))
        assert r.returncode == 1 and "wants a user name and password" in r.stderr
        assert r.stderr.startswith(f"capstone: --cache-to {ref}: "), r.stderr
        r = capstone(tmp_path / "A", "build", "-q", "--network", "none", "--creds", "ci:ci-pass-93",
                     "--cache-to", f"type=registry,ref={ref}", str(ctx))
        assert r.returncode == 0, r.stderr
        r = capstone(tmp_path / "B", "build", "--network", "none", "--creds", "ci:ci-pass-93", "--cache-from", ref,
                     str(elsewhere(ctx, tmp_path)))
        assert r.returncode == 0 and r.stderr.count("--> Using cache") == 4, r.stderr
    finally:
        registry.stop()


# -- through a directory ---------------------------------------------------------------------------


def test_a_local_cache_is_an_oci_layout_and_imports_the_same(tmp_path):
    ctx = context(tmp_path)
    dest = tmp_path / "cache-dir"
    a = build(Store.open(tmp_path / "A"), ctx, network="none", cache_to=[f"type=local,dest={dest},mode=max"])
    assert validate_layout(dest) == []
    layout = OCILayout.open(dest)
    (entry,) = layout.index().manifests
    assert entry.ref_name == "latest" and entry.media_type == mt.OCI_INDEX
    b = build(Store.open(tmp_path / "B"), elsewhere(ctx, tmp_path), network="none",
              cache_from=[f"type=local,src={dest}"])
    assert b.ran == () and b.image_id == a.image_id
    # a second export to the same directory under another tag keeps the first
    build(Store.open(tmp_path / "A"), ctx, network="none", cache_to=[f"type=local,dest={dest},tag=v2"])
    assert sorted(d.ref_name for d in OCILayout.open(dest).index().manifests) == ["latest", "v2"]


def test_skopeo_copies_a_cache_between_a_directory_and_a_registry(registry, tmp_path):
    """The cache is plain OCI: skopeo copy --all carries it (the index, its annotations and
    every step image) from a local cache to a registry and back, and each copy imports."""
    ctx = context(tmp_path)
    local = tmp_path / "cache-dir"
    a = build(Store.open(tmp_path / "A"), ctx, network="none", cache_to=[f"type=local,dest={local},mode=max"])
    ref = f"{registry.host}/cache/copied:1"
    skopeo("copy", "-q", "--all", "--preserve-digests", "--dest-tls-verify=false", f"oci:{local}:latest",
           f"docker://{ref}")
    b = build(Store.open(tmp_path / "B"), elsewhere(ctx, tmp_path / "b"), network="none", cache_from=[ref])
    assert b.ran == () and b.image_id == a.image_id
    back = tmp_path / "back"
    skopeo("copy", "-q", "--all", "--preserve-digests", "--src-tls-verify=false", f"docker://{ref}", f"oci:{back}:ci")
    assert validate_layout(back) == []
    c = build(Store.open(tmp_path / "C"), elsewhere(ctx, tmp_path / "c"), network="none",
              cache_from=[f"type=local,src={back},tag=ci"])
    assert c.ran == () and c.image_id == a.image_id


# -- what is ignored, what fails --------------------------------------------------------------------


def test_a_cache_of_another_version_is_ignored_in_one_line(tmp_path, monkeypatch):
    ctx = context(tmp_path)
    dest = tmp_path / "old-cache"
    with monkeypatch.context() as m:  # a cache written by a capstone whose keys meant something else
        m.setattr(sharedcache, "CACHE_VERSION", "capstone-build-0")
        build(Store.open(tmp_path / "A"), ctx, network="none", cache_to=[f"type=local,dest={dest},mode=max"])
    lines: list[str] = []
    b = build(Store.open(tmp_path / "B"), elsewhere(ctx, tmp_path), network="none",
              cache_from=[f"type=local,src={dest}"], log=lines.append)
    ignored = [line for line in lines if "--cache-from" in line]
    assert ignored == [f"--cache-from {dest} (tag latest): a cache of version capstone-build-0 (format 1), this "
                       "build reads capstone-build-1 (format 1): ignored"]
    assert len(b.ran) == 5  # every step ran: nothing was taken from it


def test_a_cache_that_is_not_there_yet_is_one_line_and_the_build_goes_on(registry, tmp_path):
    lines: list[str] = []
    ref = f"{registry.host}/cache/first-run:1"
    b = build(Store.open(tmp_path / "B"), context(tmp_path), network="none", cache_from=[ref], log=lines.append)
    assert [line for line in lines if "--cache-from" in line] == [f"--cache-from {ref}: not found: nothing imported"]
    assert len(b.ran) == 5
    # an image is not a cache either
    Store.open(tmp_path / "B")
    r = capstone(tmp_path / "B", "push", "-q", "capstone/busybox", f"{registry.host}/cache/an-image:1")
    assert r.returncode == 0, r.stderr
    lines.clear()
    build(Store.open(tmp_path / "C"), context(tmp_path / "c"), network="none",
          cache_from=[f"{registry.host}/cache/an-image:1"], log=lines.append)
    assert [line for line in lines if "--cache-from" in line] == [
        f"--cache-from {registry.host}/cache/an-image:1: not a build cache (a {mt.OCI_MANIFEST}): ignored"]


def test_an_export_that_fails_fails_the_build_unless_ignore_error(tmp_path):
    from registry_server import free_port

    ref = f"127.0.0.1:{free_port()}/cache/nowhere:1"
    ctx = context(tmp_path)
    with pytest.raises(CapstoneError, match=rf"--cache-to {ref}: .*Connection refused"):
        build(Store.open(tmp_path / "A"), ctx, network="none", cache_to=[f"type=registry,ref={ref}"])
    lines: list[str] = []
    result = build(Store.open(tmp_path / "A"), ctx, network="none", cache_to=[f"type=registry,ref={ref},ignore-error=true"],
                   log=lines.append)
    assert result.image_id and any("ignore-error=true: the build goes on" in line for line in lines)


@pytest.mark.parametrize(("text", "export", "message"), [
    ("type=registry", True, "type=registry needs ref="),
    ("type=registry,ref=r.example/a:1,mode=all", True, "mode must be min or max"),
    ("type=local", True, "type=local needs dest=DIR"),
    ("type=local,src=x", True, "unknown key src for type=local"),
    ("type=local,dest=x", False, "unknown key dest for type=local"),
    ("type=s3,bucket=b", False, "type must be registry or local"),
    ("type=registry,ref=r.example/a@sha256:" + "0" * 64, True, "pushed under a tag, not a digest"),
    ("type=registry,ref=r.example/Upper", False, "must be lowercase"),
])
def test_cache_specs_that_cannot_be_used_are_one_line(text, export, message):
    with pytest.raises(CacheSpecError, match=message):
        parse_cache_spec(text, export=export)


def test_bare_refs_and_options_parse_as_buildx_reads_them():
    spec = parse_cache_spec("r.example/a/b:cache", export=False)
    assert (spec.type, spec.ref) == ("registry", "r.example/a/b:cache")
    spec = parse_cache_spec("type=registry,ref=r.example/a,mode=max,ignore-error=true", export=True)
    assert (spec.ref, spec.mode, spec.ignore_error) == ("r.example/a:latest", "max", True)
    spec = parse_cache_spec("type=local,src=/tmp/c,tag=v1", export=False)
    assert (spec.type, spec.path, spec.tag) == ("local", "/tmp/c", "v1")


def test_cache_and_output_values_share_buildx_field_rules():
    """--cache-to/--cache-from and --output read their KEY=VALUE fields the one way
    (capstone.engine.optionfields): a quoted field holds a comma, keys have no case, a key
    given twice or a field without '=' is one line naming the option."""
    from capstone.engine import BuildError, parse_output

    spec = parse_cache_spec('Type=local,"Dest=/tmp/a,b",MODE=max', export=True)
    assert (spec.type, spec.path, spec.mode) == ("local", "/tmp/a,b", "max")
    assert parse_output('TYPE=oci,"dest=/tmp/a,b"').dest == "/tmp/a,b"
    for text, message in (("type=local,dest=a,dest=b", "dest is given twice"), ("type=local,dest", "'dest' is not KEY=VALUE")):
        with pytest.raises(CacheSpecError, match=f"^--cache-to {text!r}: {message}$"):
            parse_cache_spec(text, export=True)
        with pytest.raises(BuildError, match=f"^--output {text!r}: {message}$"):
            parse_output(text)
