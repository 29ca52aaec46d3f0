"""RUN steps of another architecture: can this host run them, and through which emulator?

An image for ``linux/arm64`` holds arm64 executables. On an amd64 host the kernel runs them
only when a binfmt_misc handler is registered for their ELF header: Debian's
``qemu-user-static`` (with ``binfmt-support``) registers ``qemu-aarch64`` and friends, with the
``F`` flag, so the kernel opens the emulator once at registration and finds it even inside a
container's root, where no ``/usr/libexec/qemu-binfmt`` exists. Nothing else is needed: the
RUN step's ``execve`` in the container goes through the emulator transparently.

``check_can_run(platform)`` says before a RUN step whether that will work, and when not, says
in one line which emulator is missing. It reads the kernel's registrations under
``/proc/sys/fs/binfmt_misc`` and matches them against the ELF header of the architecture
(part 2's ``elf_header``) with each handler's magic and mask, as the kernel does.
"""

from __future__ import annotations

from pathlib import Path

from part1_overview import model
from part2_manual_oci import ELF_MACHINES, Platform, elf_header, format_platform, host_platform, platform_compatible

from .errors import StepFailure

BINFMT_MISC = Path("/proc/sys/fs/binfmt_misc")

#: GOARCH -> the name of qemu-user's emulator for it (qemu-<name>, as Debian registers them)
QEMU_NAMES = {
    "amd64": "x86_64", "386": "i386", "arm64": "aarch64", "arm": "arm", "ppc64le": "ppc64le",
    "ppc64": "ppc64", "s390x": "s390x", "riscv64": "riscv64", "mips64le": "mips64el", "mips64": "mips64",
    "mipsle": "mipsel", "mips": "mips", "loong64": "loongarch64",
}


class EmulatorMissing(StepFailure):
    """This host cannot run executables of the platform (the message names the emulator)."""


@model(frozen=True)
class Handler:
    """One binfmt_misc registration (``/proc/sys/fs/binfmt_misc/<name>``)."""

    name: str
    enabled: bool
    interpreter: str
    flags: str
    offset: int
    magic: bytes
    mask: bytes

    def matches(self, header: bytes) -> bool:
        """Whether the kernel would hand a file starting with ``header`` to this handler."""
        end = self.offset + len(self.magic)
        if not self.magic or end > len(header):
            return False
        mask = self.mask or b"\xff" * len(self.magic)
        return all((h & m) == (g & m) for h, m, g in zip(header[self.offset:end], mask, self.magic))


def read_handlers(root: Path = BINFMT_MISC) -> list[Handler] | None:
    """The registered magic handlers, or None when binfmt_misc is not mounted at ``root``."""
    try:
        status = (root / "status").read_text().strip()
    except OSError:
        return None
    handlers = []
    for entry in sorted(root.iterdir()):
        if entry.name in ("status", "register"):
            continue
        try:
            lines = entry.read_text().splitlines()
        except OSError:
            continue
        fields = {}
        for line in lines[1:]:
            key, _, value = line.partition(" ")
            fields[key.rstrip(":")] = value.strip()
        if "magic" not in fields:
            continue  # an extension handler (".jar"), not for executables
        try:
            handlers.append(Handler(entry.name, lines[:1] == ["enabled"] and status == "enabled",
                                    fields.get("interpreter", ""), fields.get("flags", ""),
                                    int(fields.get("offset", "0")), bytes.fromhex(fields["magic"]),
                                    bytes.fromhex(fields.get("mask", ""))))
        except ValueError:
            continue
    return handlers


def check_can_run(platform: Platform, root: Path = BINFMT_MISC) -> str | None:
    """None when this host runs ``platform``'s executables itself; else the emulator's
    interpreter path. Raises :class:`EmulatorMissing` with one line naming what is missing."""
    host = host_platform()
    if platform_compatible(host, platform):
        return None
    shown, here = format_platform(platform), format_platform(host)
    qemu = f"qemu-{QEMU_NAMES.get(platform.architecture, platform.architecture)}"
    if platform.os != host.os or platform.architecture not in ELF_MACHINES:
        raise EmulatorMissing(f"cannot run {shown} executables on this {here} host (no emulator for them)")
    handlers = read_handlers(root)
    if handlers is None:
        raise EmulatorMissing(f"running {shown} executables on this {here} host needs the {qemu} emulator: "
                              f"binfmt_misc is not mounted at {root} (mount -t binfmt_misc binfmt_misc {root}; "
                              "install qemu-user-static and binfmt-support)")
    header = elf_header(platform.architecture)
    found = [h for h in handlers if h.matches(header)]
    usable = [h for h in found if h.enabled]
    if not usable:
        state = f" ({found[0].name} is disabled)" if found else ""
        raise EmulatorMissing(f"running {shown} executables on this {here} host needs the {qemu} emulator, "
                              f"which is not registered with binfmt_misc{state} (install qemu-user-static and "
                              "binfmt-support)")
    fixed = [h for h in usable if "F" in h.flags]
    if not fixed:
        raise EmulatorMissing(f"the {qemu} emulator ({usable[0].interpreter}) is registered without binfmt_misc's "
                              "F flag, so a container cannot find it (register it with F, as qemu-user-static does)")
    return fixed[0].interpreter
