"""Instructions that change only the image config: ENV, LABEL, EXPOSE, USER, CMD, ENTRYPOINT,
VOLUME, STOPSIGNAL, HEALTHCHECK, SHELL, ONBUILD, MAINTAINER (and the config half of WORKDIR).

Each one is part 3's ``Image.with_config``: a new image value with the changed config and a
history entry marked ``empty_layer``; consecutive ones are recorded in :class:`ConfigState` and
made into one image when it is needed (each instruction then costs what its own words cost). ``created_by`` is written the way BuildKit writes it, so
``docker history`` / ``capstone history`` read the same as for an image docker built::

    ENV GREETING=hello PORT=3000
    LABEL org.example.purpose=bench
    EXPOSE map[3000/tcp:{}]
    CMD ["sh" "-c" "echo $GREETING"]

Docker's extension fields (``Healthcheck``, ``OnBuild``, ``Shell``) are kept in the config, as
BuildKit keeps them with OCI media types (buildah drops them for ``--format oci``): an image
built here behaves the same when docker or podman runs it.
"""

from __future__ import annotations

import json
import re

from part2_manual_oci import MAX_JSON_SIZE, History, canonical_json
from part3_go_style_builder import Image

from ..dockerfile import (
    Cmd,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Shell,
    Stopsignal,
    User,
    Volume,
)
from .errors import StepFailure
from .stepimage import StepImage

HISTORY_COMMENT = "capstone.dockerfile.v0"
DEFAULT_SHELL = ("/bin/sh", "-c")
#: the largest image config a build makes: part 2's limit for a JSON document of an image, what
#: podman, skopeo and buildah accept (containers/image's MaxConfigBodySize)
MAX_CONFIG_SIZE = MAX_JSON_SIZE
#: ports one EXPOSE may name: every port of tcp, udp and sctp
MAX_PORTS = 3 * 65536


class ConfigError(StepFailure):
    """A config instruction's value that cannot be recorded (the step names its line)."""


def go_list(items) -> str:
    """``["sh" "-c" "echo $X"]``: Go's ``%q`` of a string slice, as BuildKit's history has it."""
    return "[" + " ".join(json.dumps(s, ensure_ascii=False) for s in items) + "]"


def command_argv(command, shell: tuple[str, ...]) -> list[str]:
    """A CMD/ENTRYPOINT/RUN command line as argv: exec form as written, shell form wrapped in
    the stage's SHELL."""
    if command.shell_form:
        return list(shell) + [command.args[0]]
    return list(command.args)


def _normalize_port(word: str) -> str:
    port, _, proto = word.partition("/")
    return f"{port}/{(proto or 'tcp').lower()}"


def _expand_ports(words) -> list[str]:
    """``80``, ``8080/udp``, ``8000-8010``: each port of each word, normalized. A port number
    is 0-65535 (a range is expanded only within it, so one word is at most 65536 ports) and
    one instruction names at most :data:`MAX_PORTS` (every port of three protocols)."""
    out: list[str] = []
    for word in words:
        port, _, proto = word.partition("/")
        lo, dash, hi = port.partition("-")
        numbers = (lo, hi) if dash else (lo,)
        if all(n.isdigit() for n in numbers) and any(int(n) > 65535 for n in numbers):
            raise ConfigError(f"invalid containerPort: {word}")
        if dash and lo.isdigit() and hi.isdigit() and int(lo) <= int(hi):
            if len(out) + int(hi) - int(lo) + 1 > MAX_PORTS:
                raise ConfigError(f"EXPOSE names more than {MAX_PORTS} ports")
            out.extend(_normalize_port(f"{p}/{proto}" if proto else str(p)) for p in range(int(lo), int(hi) + 1))
            continue
        out.append(_normalize_port(word))
    return out


#: Linux's signal names without "SIG", as moby/sys/signal's SignalMap has them
SIGNAL_NAMES = frozenset((
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL", "PIPE",
    "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU",
    "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX",
)) | {f"RTMIN+{i}" for i in range(1, 16)} | {f"RTMAX-{i}" for i in range(1, 15)}


def signal_number(text: str) -> int:
    """The number, on this host, of the signal a StopSignal names (``SIGTERM``, ``term``,
    ``15``, ``SIGRTMIN+3``: what :func:`_check_signal` lets into an image); ValueError when it
    names none here (an image's config is input like any other)."""
    import signal  # capstone run's stop signal: a build checks names only

    text = text.strip()
    name = text.upper().removeprefix("SIG")
    if re.fullmatch(r"\+?[0-9]{1,3}", text):
        number = int(text)
    elif name not in SIGNAL_NAMES:
        raise ValueError(text)
    elif name.startswith(("RTMIN", "RTMAX")):  # as moby/sys/signal: glibc's SIGRTMIN, 34
        number = (signal.SIGRTMIN if name.startswith("RTMIN") else signal.SIGRTMAX) + int(name[5:] or 0)
    else:
        number = getattr(signal, f"SIG{name}", 0)
    if not 1 <= number <= signal.SIGRTMAX:
        raise ValueError(text)
    return number


def _check_signal(text: str) -> None:
    """BuildKit's check of STOPSIGNAL (moby/sys/signal's ParseSignal): a non-zero number that
    Go's ``strconv.Atoi`` takes (a 64-bit int), or a signal name with or without ``SIG``."""
    if re.fullmatch(r"[+-]?[0-9]+", text):
        if int(text) != 0 and -(1 << 63) <= int(text) < 1 << 63:
            return
    elif text.upper().removeprefix("SIG") in SIGNAL_NAMES:
        return
    raise ConfigError(f"invalid signal: {text}")


class ConfigTooLarge(ConfigError):
    """The image config would outgrow :data:`MAX_CONFIG_SIZE` (the step names its line)."""


def _json_size(value) -> int:
    """How many bytes ``value`` takes in the stored config (canonical JSON, UTF-8)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))


#: config fields that are JSON objects, changed an entry at a time
_MAPS = ("env", "labels", "exposed_ports", "volumes")


class ConfigState:
    """Per-stage facts the config instructions need besides the image: the SHELL in effect,
    whether this stage has set CMD (ENTRYPOINT clears an *inherited* CMD only), and the config
    changes recorded since the stage's image was last made.

    A config instruction costs what its own words cost: :func:`record_config` notes its change
    here (a dict entry, a history entry) instead of making a new image, which would copy the
    whole config (every label, every history entry) once per instruction and make a stage of
    N of them cost N². :meth:`apply` makes one image with all the changes when the image is
    needed: by a step that adds a layer, by a cache lookup, at the end of the stage.

    The config's size is followed as changes are recorded, so the instruction that would take
    it past :data:`MAX_CONFIG_SIZE` is the one refused.
    """

    def __init__(self, image: StepImage) -> None:
        shell = image.container.shell
        self.shell: tuple[str, ...] = tuple(shell) if shell else DEFAULT_SHELL
        self.cmd_set = False
        self._fields: dict[str, object] = {}
        self._maps: dict[str, dict] = {}
        self._author: object = _UNSET
        self._history: list[History] = []
        self._size = 0

    @property
    def pending(self) -> bool:
        """Are there changes that the stage's image does not have yet?"""
        return bool(self._history)

    def apply(self, image: Image) -> Image:
        """``image`` with the recorded changes (one history entry per instruction), made in
        one go; the record is then empty."""
        if not self._history:
            return image
        fields = dict(self._fields)
        for name, entries in self._maps.items():
            if name == "env":
                fields["env"] = [f"{k}={v}" for k, v in entries.items()]
            else:
                fields[name] = entries
        if self._author is not _UNSET:
            fields["author"] = self._author
        out = image.with_config(history=self._history, **fields)
        self.discard()
        return out

    def discard(self) -> None:
        """Forget the recorded changes (the stage's image was replaced by one that has them:
        a cache hit)."""
        self._fields, self._maps, self._author, self._history = {}, {}, _UNSET, []

    # -- recording ---------------------------------------------------------------------------
    def _start(self, image: StepImage) -> None:
        if not self._history:
            self._size = image.config_size

    def _grow(self, added: int, removed: int = 0) -> None:
        self._size += added - removed
        if self._size > MAX_CONFIG_SIZE:
            raise ConfigTooLarge(f"the image config would be larger than {MAX_CONFIG_SIZE} bytes "
                                 "(the limit registries and clients such as podman and skopeo apply)")

    def current(self, image: StepImage, name: str):
        """A config field as the recorded changes leave it."""
        if name in self._fields:
            return self._fields[name]
        return getattr(image.container, name)

    def map(self, image: StepImage, name: str) -> dict:
        """The mutable copy of a JSON-object field (env as a dict) that changes are made to."""
        found = self._maps.get(name)
        if found is None:
            cfg = image.container
            found = self._maps[name] = cfg.env_dict() if name == "env" else dict(getattr(cfg, name) or {})
        return found

    def set_entry(self, image: StepImage, name: str, key: str, value) -> None:
        entries = self.map(image, name)
        old = entries.get(key, _UNSET)
        if name == "env":
            self._grow(_json_size(f"{key}={value}") + 1,
                       0 if old is _UNSET else _json_size(f"{key}={old}") + 1)
        else:
            self._grow(_json_size(key) + _json_size(value) + 2,
                       0 if old is _UNSET else _json_size(key) + _json_size(old) + 2)
        entries[key] = value

    def set_field(self, image: StepImage, name: str, value) -> None:
        old = self.current(image, name)
        self._grow(_json_size(value) if value is not None else 0,
                   _json_size(list(old) if isinstance(old, tuple) else old) if old is not None else 0)
        self._fields[name] = value

    def set_author(self, image: StepImage, value: str) -> None:
        old = image.author if self._author is _UNSET else self._author
        self._grow(_json_size(value), _json_size(old) if old is not None else 0)
        self._author = value

    def add_history(self, entry: History) -> None:
        self._grow(len(canonical_json(entry)) + 1)
        self._history.append(entry)


_UNSET = object()


def record_config(image: StepImage, ins: Instruction, state: ConfigState, *, created: str) -> None:
    """Record in ``state`` the config change of ``ins`` (already expanded) and its history
    entry, on top of ``image`` (the stage's image without the recorded changes, as a step reads it).

    Raises :class:`ConfigTooLarge` when the config would outgrow :data:`MAX_CONFIG_SIZE`.
    """
    state._start(image)

    def history(created_by: str) -> None:
        state.add_history(History(created=created, created_by=created_by, comment=HISTORY_COMMENT,
                                  empty_layer=True))

    if isinstance(ins, Env):
        for p in ins.pairs:
            state.set_entry(image, "env", p.key, p.value)
        return history("ENV " + " ".join(f"{p.key}={p.value}" for p in ins.pairs))
    if isinstance(ins, Label):
        for p in ins.pairs:
            state.set_entry(image, "labels", p.key, p.value)
        return history("LABEL " + " ".join(f"{p.key}={p.value}" for p in ins.pairs))
    if isinstance(ins, Expose):
        new = _expand_ports(ins.ports)
        for p in new:
            state.set_entry(image, "exposed_ports", p, {})
        shown = " ".join(f"{p}:{{}}" for p in sorted(set(new)))
        return history(f"EXPOSE map[{shown}]")
    if isinstance(ins, User):
        state.set_field(image, "user", ins.user)
        return history(f"USER {ins.user}")
    if isinstance(ins, Cmd):
        argv = command_argv(ins.command, state.shell)
        state.cmd_set = True
        state.set_field(image, "cmd", argv)
        return history(f"CMD {go_list(argv)}")
    if isinstance(ins, Entrypoint):
        argv = command_argv(ins.command, state.shell) if ins.command.args else []
        state.set_field(image, "entrypoint", argv or None)
        if not state.cmd_set:
            state.set_field(image, "cmd", None)
        return history(f"ENTRYPOINT {go_list(argv)}")
    if isinstance(ins, Volume):
        for v in ins.volumes:
            state.set_entry(image, "volumes", v, {})
        return history(f"VOLUME {go_list(ins.volumes)}")
    if isinstance(ins, Stopsignal):
        _check_signal(ins.signal)
        state.set_field(image, "stop_signal", ins.signal)
        return history(f"STOPSIGNAL {ins.signal}")
    if isinstance(ins, Healthcheck):
        check: dict = {"Test": list(ins.test)}
        for key, value in (("Interval", ins.interval), ("Timeout", ins.timeout),
                           ("StartPeriod", ins.start_period), ("StartInterval", ins.start_interval),
                           ("Retries", ins.retries)):
            if value is not None:
                check[key] = value
        state.set_field(image, "healthcheck", check)
        return history(f"HEALTHCHECK {json.dumps(check, separators=(',', ':'))}")
    if isinstance(ins, Shell):
        state.shell = tuple(ins.shell)
        state.set_field(image, "shell", list(ins.shell))
        return history(f"SHELL {go_list(ins.shell)}")
    if isinstance(ins, Onbuild):
        triggers = list(state.current(image, "on_build") or ()) + [ins.expression]
        state.set_field(image, "on_build", triggers)
        return history(f"ONBUILD {ins.expression}")
    if isinstance(ins, Maintainer):
        state.set_author(image, ins.maintainer)
        return history(f"MAINTAINER {ins.maintainer}")
    raise TypeError(f"{ins.keyword} is not a config instruction")


CONFIG_INSTRUCTIONS = (Env, Label, Expose, User, Cmd, Entrypoint, Volume, Stopsignal, Healthcheck,
                       Shell, Onbuild, Maintainer)

__all__ = ["CONFIG_INSTRUCTIONS", "MAX_CONFIG_SIZE", "ConfigError", "ConfigState", "ConfigTooLarge", "DEFAULT_SHELL",
           "HISTORY_COMMENT", "command_argv", "go_list", "record_config"]
