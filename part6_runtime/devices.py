"""Which devices a container may use: runc's default list, enforced by the device cgroup.

Capabilities decide whether a process may call mknod(2) at all (Docker keeps CAP_MKNOD); the
device cgroup decides which device numbers it may create (``m``), read (``r``) or write
(``w``). runc gives every container the same list (libcontainer/specconv ``AllowedDevices``),
after denying everything: ``mknod`` of any node (harmless on its own), and reading and
writing only ``null zero full random urandom tty``, the pty slaves (136:*) and ``ptmx``.
So a node made for the host's disk (``mknod /x b 8 0``) cannot be opened: EPERM. The root
filesystem and every mount but ``/dev`` are also ``nodev`` (setup.py), which refuses to open
any device node that lies on them (EACCES) before the cgroup is even asked.

Two kernels' ways to say it:

* **cgroup v1** (these machines): the ``devices`` controller, ``a`` written to
  ``devices.deny``, then one ``c 1:3 rwm`` line per rule to ``devices.allow``;
* **cgroup v2**: no controller file at all; an eBPF program of type
  ``BPF_PROG_TYPE_CGROUP_DEVICE`` attached to the container's cgroup (bpf(2), as runc's
  ``devicefilter``) returns 1 (allow) or 0 (deny) for each access. :func:`device_filter`
  assembles it from the rules, after :func:`effective_rules` has reduced them to a default
  and a list of exceptions exactly as the v1 controller would.
"""

from __future__ import annotations

import struct

from part1_overview import model

#: what the cgroup v2 program sees (struct bpf_cgroup_dev_ctx): access_type = access << 16 | type
BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE = 1, 2, 4
BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR = 1, 2

_ACCESS_BITS = {"m": BPF_DEVCG_ACC_MKNOD, "r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE}
_TYPE_BITS = {"b": BPF_DEVCG_DEV_BLOCK, "c": BPF_DEVCG_DEV_CHAR}


@model(frozen=True)
class DeviceRule:
    """One device cgroup rule, as in the runtime spec's ``linux.resources.devices``: ``type``
    ``a`` (all), ``b`` or ``c``; ``major``/``minor`` None for any; ``access`` from ``rwm``."""

    allow: bool
    type: str = "a"
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"

    def __post_init__(self) -> None:
        if self.type not in ("a", "b", "c"):
            raise ValueError(f"device rule type {self.type!r}: expected a, b or c")
        if not self.access or set(self.access) - set("rwm"):
            raise ValueError(f"device rule access {self.access!r}: expected letters of rwm")
        object.__setattr__(self, "access", "".join(c for c in "rwm" if c in self.access))

    @property
    def v1_line(self) -> str:
        """The line for ``devices.allow`` / ``devices.deny``: ``c 1:3 rwm``, ``a *:* rwm``."""
        number = lambda n: "*" if n is None else str(n)  # noqa: E731
        return f"{self.type} {number(self.major)}:{number(self.minor)} {self.access}"


#: runc's list (libcontainer/specconv AllowedDevices), which it appends to a spec's own rules
RUNC_ALLOWED_DEVICES = (
    DeviceRule(True, "c", None, None, "m"),  # mknod of any node; using it is another matter
    DeviceRule(True, "b", None, None, "m"),
    DeviceRule(True, "c", 1, 3),  # /dev/null
    DeviceRule(True, "c", 1, 8),  # /dev/random
    DeviceRule(True, "c", 1, 7),  # /dev/full
    DeviceRule(True, "c", 5, 0),  # /dev/tty
    DeviceRule(True, "c", 1, 5),  # /dev/zero
    DeviceRule(True, "c", 1, 9),  # /dev/urandom
    DeviceRule(True, "c", 136, None),  # /dev/pts/*
    DeviceRule(True, "c", 5, 2),  # /dev/ptmx
)

#: what a container of Docker (or BuildKit) gets: its spec denies everything, runc appends its list
DOCKER_DEVICE_RULES = (DeviceRule(False, "a", None, None, "rwm"),) + RUNC_ALLOWED_DEVICES

#: what a container of this course gets: Docker's rules less one, ``b *:* m``. runc lets a
#: container make a node of any block device, the host's disks included, and relies on the
#: rules above (and nodev) to refuse opening it; no build step needs a block device node, so
#: making one is refused too (EPERM), a node of the host's disk never exists in an image. A
#: bundle (``run_bundle``) gets runc's list unchanged.
DEFAULT_DEVICE_RULES = tuple(r for r in DOCKER_DEVICE_RULES if not (r.allow and r.type == "b"))


def effective_rules(rules: tuple[DeviceRule, ...] | list[DeviceRule]) -> tuple[bool, tuple[DeviceRule, ...]]:
    """Apply ``rules`` in order the way the v1 controller does: ``(default allow?, exceptions)``.

    ``a *:* ...`` with all of ``rwm`` resets the default and drops every exception; a rule
    that agrees with the default removes access from the exception with the same type and
    numbers; one that disagrees adds an exception (or adds access to it).
    """
    default_allow = True  # a new cgroup v1 allows everything
    exceptions: dict[tuple, set[str]] = {}
    for rule in rules:
        if rule.type == "a" and rule.major is None and rule.minor is None and rule.access == "rwm":
            default_allow = rule.allow
            exceptions.clear()
            continue
        key = (rule.type, rule.major, rule.minor)
        if rule.allow == default_allow:
            left = exceptions.get(key, set()) - set(rule.access)
            if left:
                exceptions[key] = left
            else:
                exceptions.pop(key, None)
        else:
            exceptions.setdefault(key, set()).update(rule.access)
    listed = tuple(
        DeviceRule(not default_allow, t, major, minor, "".join(sorted(access, key="rwm".index)))
        for (t, major, minor), access in exceptions.items()
    )
    return default_allow, listed


# -- the cgroup v2 program ----------------------------------------------------------------------
# struct bpf_insn { __u8 code; __u8 dst_reg:4, src_reg:4; __s16 off; __s32 imm; }
_LDX_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W
_AND32_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
_RSH32_K = 0x74  # BPF_ALU | BPF_RSH | BPF_K
_MOV32_X = 0xBC  # BPF_ALU | BPF_MOV | BPF_X
_MOV64_K = 0xB7  # BPF_ALU64 | BPF_MOV | BPF_K
_JNE_K = 0x55  # BPF_JMP | BPF_JNE | BPF_K
_JNE_X = 0x5D  # BPF_JMP | BPF_JNE | BPF_X
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_EXIT = 0x95  # BPF_JMP | BPF_EXIT


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


def device_filter(rules: tuple[DeviceRule, ...] | list[DeviceRule]) -> bytes:
    """The eBPF program (struct bpf_insn array) that enforces ``rules`` on cgroup v2.

    Registers: r2 = device type, r3 = requested access, r4 = major, r5 = minor (loaded from
    the context in r1). Each exception is one block of tests whose jumps, on a mismatch, skip
    to the next block; a block that matches returns its verdict, the end returns the default.
    An allow exception covers a request only when every requested access bit is in it; a deny
    exception hits as soon as one is (the v1 controller's match_exception / _partial).
    """
    default_allow, exceptions = effective_rules(rules)
    code = [
        _insn(_LDX_W, 2, 1, 0), _insn(_AND32_K, 2, imm=0xFFFF),
        _insn(_LDX_W, 3, 1, 0), _insn(_RSH32_K, 3, imm=16),
        _insn(_LDX_W, 4, 1, 4), _insn(_LDX_W, 5, 1, 8),
    ]
    for rule in exceptions:
        block: list = []  # instructions, or (op, dst, src, imm) jumps to the end of the block
        if rule.type != "a":
            block.append((_JNE_K, 2, 0, _TYPE_BITS[rule.type]))
        block += [_insn(_MOV32_X, 1, 3), _insn(_AND32_K, 1, imm=sum(_ACCESS_BITS[c] for c in rule.access))]
        block.append((_JNE_X, 1, 3, 0) if rule.allow else (_JEQ_K, 1, 0, 0))
        if rule.major is not None:
            block.append((_JNE_K, 4, 0, rule.major))
        if rule.minor is not None:
            block.append((_JNE_K, 5, 0, rule.minor))
        block += [_insn(_MOV64_K, 0, imm=1 if rule.allow else 0), _insn(_EXIT)]
        for i, item in enumerate(block):
            if isinstance(item, tuple):
                op, dst, src, imm = item
                item = _insn(op, dst, src, off=len(block) - i - 1, imm=imm)
            code.append(item)
    code += [_insn(_MOV64_K, 0, imm=1 if default_allow else 0), _insn(_EXIT)]
    return b"".join(code)


def parse_device_rule(entry: dict) -> DeviceRule:
    """A ``linux.resources.devices[]`` object of config.json as a rule."""
    return DeviceRule(
        bool(entry.get("allow", False)),
        entry.get("type") or "a",
        entry.get("major") if entry.get("major", -1) not in (-1, None) else None,
        entry.get("minor") if entry.get("minor", -1) not in (-1, None) else None,
        entry.get("access") or "rwm",
    )
