"""--platform, FROM --platform, pull --platform and --pull, with a real foreign-architecture base.

The arm64 base is Debian's busybox-static:arm64 (``.ci/run`` downloads it), assembled into an
image by part 2 exactly as the native busybox image is; RUN steps of it run through Debian's
qemu-user-static (binfmt_misc). Expected values are what Docker and BuildKit document: the
platform args (``TARGETPLATFORM`` ... ``BUILDVARIANT``), containerd's choice of an index's image,
``buildah build --platform a,b --manifest`` (one index under one name), ``docker pull
--platform``, ``--pull`` (``always`` resolves the tag again, ``never`` only the store).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from registry_server import Registry
from support import capstone, capstone_inspect, capstone_run, make_context, skopeo

from capstone.store import Store
from part1_overview import replace
from part2_manual_oci import Index, OCILayout, Platform, build_busybox_image, elf_platform, host_platform, validate_layout
from part2_manual_oci import mediatypes as mt

ARM64_BUSYBOX = Path("/var/lib/capstone-ci/busybox-arm64")  # put there by .ci/run
HOST = f"{host_platform().os}/{host_platform().architecture}"
UNAME = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}

PROBE = """\
FROM {base}
ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDARCH
RUN uname -m > /arch && echo "$TARGETPLATFORM $TARGETOS $TARGETARCH [$TARGETVARIANT] $BUILDPLATFORM $BUILDARCH" > /args
CMD ["cat", "/arch", "/args"]
"""


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> Path:
    """An OCI layout with part 2's busybox for this host (``native``), for arm64 (``arm64``),
    and an index of both (``multi``), as a registry would serve a multi-platform image."""
    assert ARM64_BUSYBOX.is_file(), f"{ARM64_BUSYBOX} is missing: .ci/run downloads busybox-static:arm64"
    root = tmp_path_factory.mktemp("bases") / "layout"
    arm = build_busybox_image(root, tag="arm64", busybox=ARM64_BUSYBOX)
    native = build_busybox_image(root, tag="native")
    assert (arm.platform.architecture, native.platform.architecture) == ("arm64", host_platform().architecture)
    layout = OCILayout.open(root)
    index = layout.put_json(Index(manifests=(replace(native, annotations=None), replace(arm, annotations=None))),
                            mt.OCI_INDEX)
    layout.add_manifest(index, "multi")
    assert validate_layout(root) == []
    return root


def build(store: Path, ctx: Path, *args: str) -> subprocess.CompletedProcess:
    return capstone(store, "build", *args, str(ctx), timeout=300)


def test_platform_picks_the_arm64_image_of_an_index_and_runs_it_under_qemu(bases, tmp_path):
    ctx = make_context(tmp_path / "ctx", PROBE.format(base=f"oci-layout:{bases}:multi"))
    r = build(tmp_path / "s", ctx, "--platform", "linux/arm64", "-t", "probe:arm")
    assert r.returncode == 0, r.stderr
    info = capstone_inspect(tmp_path / "s", "probe:arm")
    assert (info["Os"], info["Architecture"]) == ("linux", "arm64")
    assert capstone_run(tmp_path / "s", "probe:arm") == f"aarch64\nlinux/arm64 linux arm64 [] {HOST} {host_platform().architecture}\n"


def test_no_platform_is_this_hosts_image_of_the_index(bases, tmp_path):
    ctx = make_context(tmp_path / "ctx", PROBE.format(base=f"oci-layout:{bases}:multi"))
    r = build(tmp_path / "s", ctx, "-t", "probe:host")
    assert r.returncode == 0, r.stderr
    assert capstone_inspect(tmp_path / "s", "probe:host")["Architecture"] == host_platform().architecture
    assert capstone_run(tmp_path / "s", "probe:host").startswith(f"{UNAME.get(HOST, '')}\n{HOST} linux")


def test_from_platform_in_the_dockerfile_and_arm_variant_args(bases, tmp_path):
    """FROM --platform chooses the base; TARGET* stay the build's (linux/arm/v7 here, with its
    variant), as BuildKit sets them; the arm/v7 build uses the arm64 base only where asked."""
    text = PROBE.format(base=f"--platform=linux/arm64 oci-layout:{bases}:multi")
    ctx = make_context(tmp_path / "ctx", text)
    r = build(tmp_path / "s", ctx, "--platform", "linux/arm/v7", "-t", "probe:v7")
    assert r.returncode == 0, r.stderr
    assert capstone_run(tmp_path / "s", "probe:v7") == f"aarch64\nlinux/arm/v7 linux arm [v7] {HOST} {host_platform().architecture}\n"


def test_a_single_platform_base_of_another_platform_warns_as_buildkit(bases, tmp_path):
    ctx = make_context(tmp_path / "ctx", f"FROM oci-layout:{bases}:arm64\nRUN uname -m > /m\n")
    r = build(tmp_path / "s", ctx, "-t", "warned")
    assert r.returncode == 0, r.stderr
    assert f'was pulled with platform "linux/arm64", expected "{HOST}" for current build' in r.stderr
    assert "Dockerfile:1" in r.stderr


def test_several_platforms_make_one_index_under_one_name(bases, tmp_path):
    ctx = make_context(tmp_path / "ctx", PROBE.format(base=f"oci-layout:{bases}:multi"))
    out = tmp_path / "out"
    r = build(tmp_path / "s", ctx, "--platform", f"{HOST},linux/arm64", "-t", "probe:multi",
              "--output", f"type=oci,dest={out}")
    assert r.returncode == 0, r.stderr
    assert "[linux/arm64] STEP 4/4" in r.stderr and f"[{HOST}] STEP 4/4" in r.stderr
    store = Store.open(tmp_path / "s")
    desc = store.resolve("probe:multi")
    assert desc.media_type == mt.OCI_INDEX
    assert r.stdout.strip() == desc.digest  # the image id of a multi-platform image is its index's digest
    entries = store.layout.read_index(desc).manifests
    assert [(e.platform.os, e.platform.architecture) for e in entries] == [("linux", host_platform().architecture),
                                                                           ("linux", "arm64")]
    assert capstone_run(tmp_path / "s", "probe:multi").startswith(f"{UNAME.get(HOST, '')}\n{HOST}")
    # a later build FROM the index picks its platform's image
    ctx2 = make_context(tmp_path / "ctx2", "FROM probe:multi\nCMD [\"cat\", \"/args\"]\n")
    r = build(tmp_path / "s", ctx2, "--platform", "linux/arm64", "-t", "from-multi")
    assert r.returncode == 0, r.stderr
    assert capstone_run(tmp_path / "s", "from-multi").startswith("linux/arm64 linux arm64")
    # the export is the whole index, which skopeo and oci-image-tool read
    assert validate_layout(out) == []
    raw = json.loads(skopeo("inspect", "--raw", f"oci:{out}:multi"))
    assert raw["mediaType"] == mt.OCI_INDEX and len(raw["manifests"]) == 2
    arm = json.loads(skopeo("inspect", "--override-arch", "arm64", f"oci:{out}:multi"))
    assert arm["Architecture"] == "arm64"
    tool = subprocess.run(["oci-image-tool", "validate", "--type", "image", "--ref", "name=multi", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert tool.returncode == 0, tool.stderr + tool.stdout


def test_run_of_a_foreign_platform_without_emulator_fails_with_one_line(bases, tmp_path):
    """A host without qemu-user: the RUN fails naming the emulator, and the store keeps no new
    name. The host's binfmt_misc is hidden by an empty tmpfs in a private mount namespace."""
    ctx = make_context(tmp_path / "ctx", PROBE.format(base=f"oci-layout:{bases}:multi"))
    store = tmp_path / "s"
    Store.open(store)
    before = (store / "oci" / "index.json").read_bytes()
    script = ("mount --make-rprivate / && mount -t tmpfs none /proc/sys/fs/binfmt_misc && "
              "exec \"$@\"")
    import sys

    from support import REPO

    r = subprocess.run(["unshare", "--mount", "sh", "-c", script, "sh", sys.executable, "-m", "capstone",
                        "--store", str(store), "build", "--platform", "linux/arm64", "-t", "never:1", str(ctx)],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if "Dockerfile" in line]
    assert len(errors) == 1 and "Dockerfile:3" in errors[0] and "qemu-aarch64" in errors[0], r.stderr
    assert "binfmt_misc" in errors[0]
    assert "Traceback" not in r.stderr
    assert (store / "oci" / "index.json").read_bytes() == before


def test_capstone_run_of_a_foreign_platform_without_emulator_fails_with_one_line(bases, tmp_path):
    """``capstone run`` of an arm64 image checks for the emulator as a RUN step does, before any
    container exists: one line naming the image and the missing emulator, nothing kept. With
    the host's binfmt_misc it runs through qemu-user; hidden (an empty tmpfs in a private mount
    namespace), it is refused."""
    import sys

    from support import REPO

    ctx = make_context(tmp_path / "ctx", f"FROM oci-layout:{bases}:arm64\nCMD [\"uname\", \"-m\"]\n")
    store = tmp_path / "s"
    assert build(store, ctx, "--platform", "linux/arm64", "-t", "arm:1").returncode == 0
    assert capstone_run(store, "arm:1") == "aarch64\n"
    script = "mount --make-rprivate / && mount -t tmpfs none /proc/sys/fs/binfmt_misc && exec \"$@\""
    r = subprocess.run(["unshare", "--mount", "sh", "-c", script, "sh", sys.executable, "-m", "capstone",
                        "--store", str(store), "run", "--rm", "--network", "none", "arm:1"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 125
    assert r.stderr.startswith("capstone: run arm:1: running linux/arm64 executables on this ") and \
        "needs the qemu-aarch64 emulator: binfmt_misc is not mounted" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert list((store / "containers").iterdir()) == []


def test_embedded_busybox_is_only_for_this_host(tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM capstone/busybox\nRUN true\n")
    r = build(tmp_path / "s", ctx, "--platform", "linux/arm64")
    assert r.returncode == 1
    assert "Dockerfile:1" in r.stderr and f"is {HOST}, not linux/arm64" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_platform_is_one_line(tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM scratch\n")
    r = build(tmp_path / "s", ctx, "--platform", "linux/z80")
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0 and "unknown architecture" in r.stderr


def test_scratch_takes_the_target_platform(tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY Dockerfile /\n")
    r = build(tmp_path / "s", ctx, "--platform", "linux/arm/v6", "-t", "s:1")
    assert r.returncode == 0, r.stderr
    info = capstone_inspect(tmp_path / "s", "s:1")
    assert (info["Architecture"], info.get("Variant")) == ("arm", "v6")


# -- registries: pull --platform, --pull ------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    r = Registry(tmp_path_factory.mktemp("registry"))
    yield r
    r.stop()


def test_pull_platform_takes_that_image_of_a_pushed_index(bases, registry, tmp_path):
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{bases}:multi", f"docker://{registry.host}/plat/multi:1")
    store = tmp_path / "s"
    r = capstone(store, "pull", "--platform", "linux/arm64", f"{registry.host}/plat/multi:1")
    assert r.returncode == 0, r.stderr
    assert capstone_inspect(store, f"{registry.host}/plat/multi:1")["Architecture"] == "arm64"
    r = capstone(store, "pull", f"{registry.host}/plat/multi:1")
    assert capstone_inspect(store, f"{registry.host}/plat/multi:1")["Architecture"] == host_platform().architecture
    # a single-platform image pulled for another platform is refused, as docker pull does
    skopeo("copy", "--dest-tls-verify=false", f"oci:{bases}:arm64", f"docker://{registry.host}/plat/arm:1")
    r = capstone(tmp_path / "t", "pull", "--platform", HOST, f"{registry.host}/plat/arm:1")
    assert r.returncode == 1 and f"the image is for linux/arm64, not the requested {HOST}" in r.stderr
    # a build for arm64 FROM the registry's index gets the arm64 image even though the store
    # holds the host's under that name (missing for this platform: pulled)
    ctx = make_context(tmp_path / "ctx", PROBE.format(base=f"{registry.host}/plat/multi:1"))
    r = build(store, ctx, "--platform", "linux/arm64", "-t", "from-registry")
    assert r.returncode == 0, r.stderr
    assert capstone_run(store, "from-registry").startswith("aarch64\nlinux/arm64")


def test_pull_always_follows_a_moved_tag_and_the_cache_follows_it(bases, registry, tmp_path):
    """--pull=missing (the default) builds on the stored base; after the registry's tag moves,
    --pull resolves it again: the FROM key changes, so every step runs again on the new base."""
    tag = f"{registry.host}/plat/moving:1"
    skopeo("copy", "--dest-tls-verify=false", f"oci:{bases}:native", f"docker://{tag}")
    store = tmp_path / "s"
    ctx = make_context(tmp_path / "ctx", f"FROM {tag}\nRUN ls /bin | wc -l > /count\nCMD [\"cat\", \"/count\"]\n")
    first = build(store, ctx, "-t", "app:1")
    assert first.returncode == 0, first.stderr
    # the tag moves: a new image (one more file) under the same name
    moved = tmp_path / "moved"
    s = Store.open(tmp_path / "mover")
    s.commit(s.load_archive(f"oci:{bases}:native").with_config(labels={"moved": "yes"}), ["moved:1"])
    s.export("moved:1", f"oci:{moved}:moved")
    skopeo("copy", "--dest-tls-verify=false", f"oci:{moved}:moved", f"docker://{tag}")
    new_digest = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{tag}"))["Digest"]

    again = build(store, ctx, "-t", "app:1")  # missing: the stored base, every step cached
    assert again.returncode == 0 and again.stderr.count("Using cache") == 2, again.stderr
    assert again.stdout == first.stdout
    never = build(store, ctx, "--pull=never", "-t", "app:1")
    assert never.returncode == 0 and never.stdout == first.stdout
    pulled = build(store, ctx, "--pull", "-t", "app:1")
    assert pulled.returncode == 0, pulled.stderr
    assert "Using cache" not in pulled.stderr and pulled.stdout != first.stdout
    assert Store.open(store).resolve(tag).digest == new_digest
    assert capstone_inspect(store, "app:1")["Config"]["Labels"] == {"moved": "yes"}
    # and now the moved base is the stored one: cached again
    cached = build(store, ctx, "--pull=always", "-t", "app:1")
    assert cached.stderr.count("Using cache") == 2 and cached.stdout == pulled.stdout


def test_pull_never_fails_when_the_base_is_not_stored(registry, tmp_path):
    ctx = make_context(tmp_path / "ctx", f"FROM {registry.host}/plat/absent:1\nRUN true\n")
    store = tmp_path / "s"
    Store.open(store)
    before = (store / "oci" / "index.json").read_bytes()
    r = build(store, ctx, "-q", "--pull=never", "-t", "x:1")
    assert r.returncode == 1 and "Dockerfile:1" in r.stderr and "--pull=never" in r.stderr
    assert r.stderr.strip().count("\n") == 0
    assert (store / "oci" / "index.json").read_bytes() == before
    bad = build(store, ctx, "--pull=sometimes")
    assert bad.returncode == 2


def test_local_output_of_several_platforms_has_a_directory_each(bases, tmp_path):
    """BuildKit's layout for -o type=local with several platforms: DIR/linux_amd64, DIR/linux_arm64."""
    ctx = make_context(tmp_path / "ctx", PROBE.format(base=f"oci-layout:{bases}:multi"))
    out = tmp_path / "fs"
    r = build(tmp_path / "s", ctx, "-q", "--platform", f"{HOST},linux/arm64", "-o", f"type=local,dest={out}")
    assert r.returncode == 0, r.stderr
    host_dir = out / HOST.replace("/", "_")
    assert (out / "linux_arm64" / "arch").read_text() == "aarch64\n"
    assert elf_platform(out / "linux_arm64" / "bin" / "busybox") == Platform("arm64", "linux")
    assert elf_platform(host_dir / "bin" / "busybox") == host_platform()
    assert (host_dir / "args").read_text().startswith(HOST)
