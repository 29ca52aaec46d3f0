"""Platforms: which image of an index runs where, by containerd's rules.

An image index lists one manifest per platform (``os``, ``architecture``, ``variant``, for
Windows ``os.version``; ``os.features`` and ``features`` name what the image requires). Everything
in the project that picks a manifest out of an index, or asks what this host is, comes here:

* ``host_platform()``: this machine in the spec's words (``x86_64`` -> ``linux/amd64``,
  ``aarch64`` -> ``linux/arm64``, ``armv7l`` -> ``linux/arm/v7``);
* ``parse_platform("linux/arm64")``: a user's specifier (``os``, ``arch``, ``os/arch[/variant]``),
  normalised;
* ``normalize_platform(p)``: containerd's canonical form: ``aarch64`` is ``arm64``, arm64's
  ``v8`` is no variant (the default), plain ``arm`` is ``arm/v7``, ``armhf`` is ``arm/v7``,
  ``armel`` is ``arm/v6``, ``i386`` is ``386``, amd64's ``v1`` is no variant;
* ``compatible_platforms(want)``: what can run where ``want`` runs, best first (containerd's
  ``platforms.Only``): arm/v7 also runs arm/v6 and arm/v5, arm64 also runs arm/v8..v5, an
  amd64/v3 machine also runs amd64/v2, amd64 and 386;
* ``select_platform(entries, want)``: the index entry to use, or ``PlatformNotFound``
  naming the platforms the index has.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence

from part1_overview import replace

from . import mediatypes as mt
from .errors import ModelError
from .models import Descriptor, Platform

#: Go's GOOS and GOARCH values (go/build/syslist.go), as containerd checks a specifier
KNOWN_OS = frozenset({
    "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux",
    "nacl", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows", "zos",
})
KNOWN_ARCH = frozenset({
    "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "loong64", "mips", "mipsle",
    "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "ppc64", "ppc64le", "riscv",
    "riscv64", "s390", "s390x", "sparc", "sparc64", "wasm",
})
_COMPONENT = re.compile(r"^[A-Za-z0-9_.-]+$")
_OS_AND_VERSION = re.compile(r"^([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.-]*)\))?$")

# Linux's uname -m -> the (architecture, variant) the image spec uses
_MACHINES = {
    "x86_64": ("amd64", None), "amd64": ("amd64", None), "i386": ("386", None), "i686": ("386", None),
    "aarch64": ("arm64", None), "arm64": ("arm64", None), "armv8l": ("arm", "v8"), "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"), "armv5tel": ("arm", "v5"), "ppc64le": ("ppc64le", None), "s390x": ("s390x", None),
    "riscv64": ("riscv64", None), "mips64": ("mips64", None), "loongarch64": ("loong64", None),
}


class PlatformError(ModelError):
    """A platform specifier that cannot be parsed (``linux/z80``, ``a/b/c/d``)."""


class PlatformNotFound(ModelError):
    """An index has no image for the platform asked for (the message lists what it has)."""


def _normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    """containerd's normalizeArch: canonical (architecture, variant), ``""`` for no variant."""
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        if variant in ("8", "v8", "v8.0"):
            variant = ""
        elif variant in ("9", "9.0", "v9.0"):
            variant = "v9"
        return "arm64", variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        if variant in ("5", "6", "8"):
            return "arm", "v" + variant
    return arch, variant


def normalize_platform(p: Platform) -> Platform:
    """``p`` in containerd's canonical form (lower case, ``macos`` is ``darwin``, see the
    module docstring for the architectures); ``os.version`` and the features are kept."""
    os_name = p.os.lower()
    if os_name == "macos":
        os_name = "darwin"
    arch, variant = _normalize_arch(p.architecture, p.variant or "")
    return replace(p, os=os_name, architecture=arch, variant=variant or None)


def host_platform() -> Platform:
    """This machine's platform, normalised (``linux/amd64`` here; ``linux/arm64`` on aarch64)."""
    # the kernel's machine name, what platform.machine() returns on Linux (without importing
    # platform, whose module-level regexes a cached build's start-up would pay for)
    machine = os.uname().machine.lower()
    try:
        arch, variant = _MACHINES[machine]
    except KeyError:
        raise PlatformError(f"unknown machine architecture {machine!r} (known: {', '.join(sorted(_MACHINES))})") from None
    return Platform(architecture=arch, os="linux", variant=variant)


def parse_platform(text: str) -> Platform:
    """A platform specifier, as containerd's ``platforms.Parse`` reads it, normalised:
    ``linux/arm64``, ``linux/arm/v7``, ``arm64`` (this host's OS), ``linux`` (this host's
    architecture), ``windows(10.0.17763)/amd64`` (with an ``os.version``).

    Raises :class:`PlatformError` saying what is wrong.
    """
    if not isinstance(text, str) or not text:
        raise PlatformError("empty platform specifier (expected os/arch[/variant], e.g. linux/arm64)")
    if "*" in text:
        raise PlatformError(f"{text!r}: wildcards are not supported")
    parts = text.split("/")
    if len(parts) > 3:
        raise PlatformError(f"{text!r}: cannot parse platform specifier (expected os/arch[/variant])")
    head = _OS_AND_VERSION.match(parts[0])
    if head is None or any(not _COMPONENT.match(p) for p in parts[1:]):
        raise PlatformError(f"{text!r}: invalid platform specifier (letters, digits, _ . - between the slashes)")
    os_name = head.group(1).lower()
    os_name = "darwin" if os_name == "macos" else os_name
    os_version = head.group(2) or None
    host = host_platform()
    if len(parts) == 1:
        if os_name in KNOWN_OS:
            same = os_name == host.os
            return Platform(host.architecture, os_name, os_version=os_version, variant=host.variant if same else None)
        arch, variant = _normalize_arch(parts[0], "")
        if arch in KNOWN_ARCH:
            return normalize_platform(Platform(arch, host.os, variant=variant or None))
        raise PlatformError(f"{text!r}: unknown operating system or architecture")
    arch, variant = _normalize_arch(parts[1], parts[2] if len(parts) == 3 else "")
    if os_name not in KNOWN_OS:
        raise PlatformError(f"{text!r}: unknown operating system")
    if arch not in KNOWN_ARCH:
        raise PlatformError(f"{text!r}: unknown architecture")
    return Platform(arch, os_name, os_version=os_version, variant=variant or None)


def parse_platforms(text: str) -> tuple[Platform, ...]:
    """A comma-separated list (``linux/amd64,linux/arm64``), each normalised, duplicates
    dropped, in the order given."""
    out: list[Platform] = []
    for item in text.split(","):
        p = parse_platform(item.strip())
        if not any(same_platform(p, q) for q in out):
            out.append(p)
    return tuple(out)


def same_platform(a: Platform, b: Platform) -> bool:
    """Whether ``a`` and ``b`` name the same os/architecture/variant once normalised."""
    a, b = normalize_platform(a), normalize_platform(b)
    return (a.os, a.architecture, a.variant) == (b.os, b.architecture, b.variant)


def _windows_build(version: str | None) -> tuple[int, int, int] | None:
    parts = (version or "").split(".")
    if len(parts) < 3 or not all(p.isdigit() for p in parts[:3]):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


def _os_version_matches(want: Platform, have: Platform) -> bool:
    """``os.version`` where both sides give one: Windows by its build rules (same major.minor;
    before Server 2022 the same build, from then on any build from 20348 up to the host's),
    other systems by equality."""
    if not want.os_version or not have.os_version:
        return True
    if want.os != "windows":
        return want.os_version == have.os_version
    host, image = _windows_build(want.os_version), _windows_build(have.os_version)
    if host is None or image is None:
        return True
    if host[:2] != image[:2]:
        return False
    if host[2] < 20348:
        return host[2] == image[2]
    return 20348 <= image[2] <= host[2]


def _features_met(want: Platform, have: Platform) -> bool:
    """``os.features`` and ``features`` list what an image *requires*: when the platform asked
    for says what it offers, an image needing more is no match."""
    for offered, required in ((want.os_features, have.os_features), (want.features, have.features)):
        if offered is not None and not set(required or ()) <= set(offered):
            return False
    return True


def platform_matches(want: Platform, have: Platform) -> bool:
    """Whether an image of platform ``have`` is exactly what ``want`` asks for (normalised
    os, architecture and variant equal; ``os.version`` and features as above)."""
    return same_platform(want, have) and _os_version_matches(want, have) and _features_met(want, have)


def compatible_platforms(want: Platform) -> tuple[Platform, ...]:
    """The platforms an image may have to run where ``want`` runs, best first (containerd's
    ``platforms.Only``): ``want`` itself, then older variants of its architecture, then the
    32-bit architecture the CPU also runs."""
    p = normalize_platform(want)
    vector = [p]

    def also(arch: str, variant: str | None) -> None:
        vector.append(replace(p, architecture=arch, variant=variant))

    version = (p.variant or "").removeprefix("v")
    if p.architecture == "amd64":
        if version.isdigit():
            for v in range(int(version) - 1, 0, -1):
                also("amd64", None if v == 1 else f"v{v}")
        also("386", None)
    elif p.architecture == "arm" and version.isdigit():
        for v in range(int(version) - 1, 4, -1):
            also("arm", f"v{v}")
    elif p.architecture == "arm64":
        level = re.fullmatch(r"v([89])(?:\.(\d))?", p.variant or "v8")
        if level is not None:
            major, minor = int(level.group(1)), int(level.group(2) or 0)
            # an armv9.x CPU runs armv9.0..x and armv8.0..(x+5)
            steps = [(8, minor)] if major == 8 else [(9, minor), (8, min(minor + 5, 9))]
            vector = [replace(p, variant=f"v{a}.{b}" if b else f"v{a}") for a, top in steps for b in range(top, -1, -1)]
            for v in (8, 7, 6, 5):  # and 32-bit arm code
                also("arm", f"v{v}")
    seen: list[Platform] = []
    for q in map(normalize_platform, vector):
        if not any(same_platform(q, s) for s in seen):
            seen.append(q)
    return tuple(seen)


def platform_compatible(want: Platform, have: Platform) -> bool:
    """Whether an image of platform ``have`` runs where ``want`` runs (``have`` is one of
    ``compatible_platforms(want)``)."""
    return _rank(have, compatible_platforms(want)) is not None


def _rank(have: Platform | None, vector: Sequence[Platform]) -> int | None:
    if have is None:
        return None
    for i, candidate in enumerate(vector):
        if platform_matches(candidate, have):
            return i
    return None


def select_platform(
    entries: Sequence[Descriptor],
    want: Platform | None = None,
    where: str = "index",
    *,
    strict: bool = False,
    platform_of: Callable[[Descriptor], Platform | None] | None = None,
) -> Descriptor:
    """The entry of an image index to use for ``want`` (default: this host).

    Only image manifests and nested indexes are candidates (an artifact or an attestation
    is not). An entry whose ``platform`` matches ``want`` exactly wins, then one that matches
    a compatible platform (``compatible_platforms``; not with ``strict``), the best first and,
    for equals, the first in the index. An entry without a ``platform`` is judged by
    ``platform_of(entry)`` (its config's platform, if the caller can read it); if nothing
    matched, a lone entry without a platform is taken as it is (as cbt and skopeo do).
    Raises :class:`PlatformNotFound` listing the platforms the index has.
    """
    want = normalize_platform(want or host_platform())
    vector = (want,) if strict else compatible_platforms(want)
    candidates = [e for e in entries if e.media_type in mt.MANIFEST_TYPES or e.media_type in mt.INDEX_TYPES]
    best: tuple[int, int, Descriptor] | None = None
    unlabelled = []
    for pos, entry in enumerate(candidates):
        have = entry.platform
        if have is None:
            unlabelled.append(entry)
            have = platform_of(entry) if platform_of is not None else None
        rank = _rank(have, vector)
        if rank is not None and (best is None or (rank, pos) < best[:2]):
            best = (rank, pos, entry)
    if best is not None:
        return best[2]
    if len(unlabelled) == 1 and platform_of is None and len(candidates) == 1:
        return unlabelled[0]
    found = ", ".join(str(e.platform) for e in candidates if e.platform is not None) or "none"
    raise PlatformNotFound(f"{where}: no image for {format_platform(want)} in the index (platforms: {found})")


def format_platform(p: Platform) -> str:
    """``linux/arm/v7``; ``windows(10.0.17763)/amd64`` when an os.version is set."""
    head = f"{p.os}({p.os_version})" if p.os_version else p.os
    return "/".join(x for x in (head, p.architecture, p.variant) if x)


# -- executables ------------------------------------------------------------------------------

#: architecture -> (EI_CLASS, EI_DATA, e_machine) of its ELF executables (elf.h: ELFCLASS32 = 1,
#: ELFCLASS64 = 2, ELFDATA2LSB = 1, ELFDATA2MSB = 2; EM_386 = 3, EM_MIPS = 8, EM_PPC64 = 21,
#: EM_S390 = 22, EM_ARM = 40, EM_X86_64 = 62, EM_AARCH64 = 183, EM_RISCV = 243, EM_LOONGARCH = 258)
ELF_MACHINES = {
    "amd64": (2, 1, 62), "386": (1, 1, 3), "arm64": (2, 1, 183), "arm": (1, 1, 40),
    "ppc64le": (2, 1, 21), "ppc64": (2, 2, 21), "s390x": (2, 2, 22), "riscv64": (2, 1, 243),
    "mips64le": (2, 1, 8), "mips64": (2, 2, 8), "mipsle": (1, 1, 8), "mips": (1, 2, 8),
    "loong64": (2, 1, 258),
}


def elf_header(architecture: str) -> bytes:
    """The first 20 bytes of an ELF executable (``ET_EXEC``) for ``architecture``: what the
    kernel's binfmt_misc compares a registered emulator's magic with."""
    elf_class, data, machine = ELF_MACHINES[architecture]
    order = "little" if data == 1 else "big"
    ident = bytes([0x7F, ord("E"), ord("L"), ord("F"), elf_class, data, 1]) + bytes(9)
    return ident + (2).to_bytes(2, order) + machine.to_bytes(2, order)


def elf_platform(path) -> Platform | None:
    """The platform of the ELF executable at ``path`` (``linux/arm64`` for an aarch64 binary),
    or None when it is not an ELF file of a known architecture. 32-bit arm is taken as v7."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    order = "little" if head[5] == 1 else "big"
    key = (head[4], head[5], int.from_bytes(head[18:20], order))
    for arch, value in ELF_MACHINES.items():
        if value == key:
            return normalize_platform(Platform(arch, "linux"))
    return None
