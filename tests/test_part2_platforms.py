"""Part 2 platforms: specifiers, normalisation and choosing an index's image, by containerd's rules.

The expected values are containerd's (platforms.Parse / Normalize / Only, whose tables the
code follows) and the image spec's (image-index.md: os.version, os.features).
"""

from __future__ import annotations

import pytest

from part2_manual_oci import (
    Descriptor,
    Platform,
    PlatformError,
    PlatformNotFound,
    compatible_platforms,
    elf_header,
    elf_platform,
    format_platform,
    host_platform,
    normalize_platform,
    parse_platform,
    parse_platforms,
    platform_compatible,
    platform_matches,
    select_platform,
)
from part2_manual_oci import mediatypes as mt

HOST = format_platform(host_platform())

PLATFORMS = [
    ("linux/amd64", "linux/amd64"),
    ("linux/arm64", "linux/arm64"),
    ("linux/arm64/v8", "linux/arm64"),  # v8 is arm64's default: no variant
    ("linux/arm64/8", "linux/arm64"),
    ("linux/arm64/v9.0", "linux/arm64/v9"),
    ("linux/aarch64", "linux/arm64"),
    ("linux/x86_64", "linux/amd64"),
    ("linux/amd64/v1", "linux/amd64"),
    ("linux/amd64/v3", "linux/amd64/v3"),
    ("linux/arm", "linux/arm/v7"),
    ("linux/arm/7", "linux/arm/v7"),
    ("linux/arm/v6", "linux/arm/v6"),
    ("linux/armhf", "linux/arm/v7"),
    ("linux/armel", "linux/arm/v6"),
    ("linux/i386", "linux/386"),
    ("Linux/AMD64", "linux/amd64"),
    ("macos/arm64", "darwin/arm64"),
    ("linux/386", "linux/386"),
    ("linux/ppc64le", "linux/ppc64le"),
    ("linux/s390x", "linux/s390x"),
    ("linux/riscv64", "linux/riscv64"),
    ("arm64", "linux/arm64"),
    ("armhf", "linux/arm/v7"),
    ("windows/amd64", "windows/amd64"),
    ("windows(10.0.17763)/amd64", "windows(10.0.17763)/amd64"),
    ("linux", HOST),
]


@pytest.mark.parametrize(("text", "normal"), PLATFORMS)
def test_parse_platform_normalises_as_containerd(text, normal):
    assert format_platform(parse_platform(text)) == normal


@pytest.mark.parametrize("text", ["", "linux/", "a/b/c/d", "plan10/amd64", "linux/z80", "nonsense", "linux amd64",
                                  "linux/*", "linux/arm64/v8/x"])
def test_bad_platforms_raise_one_line(text):
    with pytest.raises(PlatformError) as info:
        parse_platform(text)
    assert "\n" not in str(info.value)


def test_a_list_of_platforms_keeps_its_order_and_drops_duplicates():
    got = parse_platforms("linux/amd64, linux/arm64,linux/arm64/v8,linux/amd64")
    assert [format_platform(p) for p in got] == ["linux/amd64", "linux/arm64"]


def test_host_platform_is_normalised():
    here = host_platform()
    assert here == normalize_platform(here)
    assert here.os == "linux" and here.architecture in ("amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64")


COMPATIBLE = [
    ("linux/amd64", ["linux/amd64", "linux/386"]),
    ("linux/amd64/v3", ["linux/amd64/v3", "linux/amd64/v2", "linux/amd64", "linux/386"]),
    ("linux/arm/v7", ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]),
    ("linux/arm/v6", ["linux/arm/v6", "linux/arm/v5"]),
    ("linux/arm64", ["linux/arm64", "linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]),
    ("linux/arm64/v8.2", ["linux/arm64/v8.2", "linux/arm64/v8.1", "linux/arm64", "linux/arm/v8", "linux/arm/v7",
                          "linux/arm/v6", "linux/arm/v5"]),
    ("linux/s390x", ["linux/s390x"]),
]


@pytest.mark.parametrize(("want", "expected"), COMPATIBLE)
def test_compatible_platforms_follow_containerd_only(want, expected):
    assert [format_platform(p) for p in compatible_platforms(parse_platform(want))] == expected


def entry(n: int, platform: Platform | None, media_type: str = mt.OCI_MANIFEST) -> Descriptor:
    return Descriptor(media_type, "sha256:" + f"{n:x}" * 64, 100 + n, platform=platform)


def plat(text: str) -> Platform:
    return parse_platform(text)


def test_arm64_variant_v8_is_the_default():
    entries = [entry(1, Platform("amd64", "linux")), entry(2, Platform("arm64", "linux", variant="v8"))]
    assert select_platform(entries, plat("linux/arm64")) is entries[1]
    assert select_platform([entry(3, Platform("arm64", "linux"))], plat("linux/arm64/v8")).digest == entry(3, None).digest


def test_exact_variant_before_a_compatible_one():
    v6, v7 = entry(1, Platform("arm", "linux", variant="v6")), entry(2, Platform("arm", "linux", variant="v7"))
    assert select_platform([v6, v7], plat("linux/arm/v7")) is v7
    assert select_platform([v6], plat("linux/arm/v7")) is v6  # an armv7 CPU runs v6 code
    with pytest.raises(PlatformNotFound, match=r"no image for linux/arm/v6 in the index \(platforms: linux/arm/v7\)"):
        select_platform([v7], plat("linux/arm/v6"))  # but an armv6 one cannot run v7 code
    with pytest.raises(PlatformNotFound):
        select_platform([v6], plat("linux/arm/v7"), strict=True)


def test_plain_arm_is_v7():
    plain = entry(1, Platform("arm", "linux"))
    assert select_platform([entry(2, Platform("arm", "linux", variant="v6")), plain], plat("linux/arm")) is plain


def test_amd64_falls_back_to_386_and_first_entry_wins_ties():
    i386 = entry(1, Platform("386", "linux"))
    assert select_platform([i386], plat("linux/amd64")) is i386
    a, b = entry(2, Platform("amd64", "linux")), entry(3, Platform("amd64", "linux"))
    assert select_platform([i386, a, b], plat("linux/amd64")) is a


def test_os_and_architecture_must_match():
    entries = [entry(1, Platform("amd64", "windows")), entry(2, Platform("s390x", "linux"))]
    with pytest.raises(PlatformNotFound, match="platforms: windows/amd64, linux/s390x"):
        select_platform(entries, plat("linux/amd64"))


def test_artifacts_and_attestations_are_never_chosen():
    attestation = entry(1, Platform("unknown", "unknown"))
    artifact = entry(2, Platform("amd64", "linux"), media_type="application/vnd.example+json")
    image = entry(3, Platform("amd64", "linux"))
    assert select_platform([attestation, artifact, image], plat("linux/amd64")) is image
    nested = entry(4, Platform("arm64", "linux"), media_type=mt.OCI_INDEX)
    assert select_platform([image, nested], plat("linux/arm64")) is nested


def test_an_entry_without_platform_is_judged_by_its_config():
    a, b = entry(1, None), entry(2, None)
    configs = {a.digest: Platform("amd64", "linux"), b.digest: Platform("arm64", "linux")}
    assert select_platform([a, b], plat("linux/arm64"), platform_of=lambda d: configs[d.digest]) is b
    # a lone unlabelled image is taken as it is when nothing can be read about it (cbt, skopeo)
    assert select_platform([a], plat("linux/arm64")) is a
    with pytest.raises(PlatformNotFound):
        select_platform([a, b], plat("linux/arm64"))


def test_windows_os_version_by_build_rules():
    ltsc2019 = entry(1, Platform("amd64", "windows", os_version="10.0.17763.5329"))
    ltsc2022 = entry(2, Platform("amd64", "windows", os_version="10.0.20348.2227"))
    assert select_platform([ltsc2019, ltsc2022], plat("windows(10.0.17763)/amd64")) is ltsc2019
    assert select_platform([ltsc2019, ltsc2022], plat("windows(10.0.20348)/amd64")) is ltsc2022
    # a newer host (Server 2025, 26100) runs the 2022 image, not the 2019 one
    assert select_platform([ltsc2019, ltsc2022], plat("windows(10.0.26100)/amd64")) is ltsc2022
    # no os.version asked: any
    assert select_platform([ltsc2019, ltsc2022], plat("windows/amd64")) is ltsc2019


def test_os_features_are_requirements():
    plain = Platform("amd64", "windows")
    needs = Platform("amd64", "windows", os_features=("win32k",))
    assert platform_matches(plain, needs)  # nothing said about what the host offers
    assert not platform_matches(Platform("amd64", "windows", os_features=()), needs)
    assert platform_matches(Platform("amd64", "windows", os_features=("win32k",)), needs)
    entries = [entry(1, needs), entry(2, plain)]
    assert select_platform(entries, Platform("amd64", "windows", os_features=())) is entries[1]


def test_platform_compatible():
    assert platform_compatible(plat("linux/arm64"), plat("linux/arm/v7"))
    assert not platform_compatible(plat("linux/amd64"), plat("linux/arm64"))
    assert platform_compatible(host_platform(), host_platform())


def test_elf_platform_reads_the_executable(tmp_path):
    for arch in ("amd64", "arm64", "s390x", "ppc64le", "riscv64"):
        f = tmp_path / arch
        f.write_bytes(elf_header(arch) + bytes(100))
        assert elf_platform(f) == Platform(arch, "linux")
    arm = tmp_path / "arm"
    arm.write_bytes(elf_header("arm") + bytes(100))
    assert format_platform(elf_platform(arm)) == "linux/arm/v7"
    (tmp_path / "text").write_text("#!/bin/sh\n")
    assert elf_platform(tmp_path / "text") is None
    assert elf_platform(tmp_path / "missing") is None
    assert elf_platform("/bin/busybox" if __import__("os").path.exists("/bin/busybox") else "/bin/sh") == host_platform()
