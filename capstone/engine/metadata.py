"""Instructions that change only the image config: ENV, LABEL, EXPOSE, USER, CMD, ENTRYPOINT,
VOLUME, STOPSIGNAL, HEALTHCHECK, SHELL, ONBUILD, MAINTAINER (and the config half of WORKDIR).

Each one is part 3's ``Image.with_config``: a new image value with the changed config and a
history entry marked ``empty_layer``. ``created_by`` is written the way BuildKit writes it, so
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

HISTORY_COMMENT = "capstone.dockerfile.v0"
DEFAULT_SHELL = ("/bin/sh", "-c")


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
    out = []
    for word in words:
        port, _, proto = word.partition("/")
        if "-" in port:
            lo, _, hi = port.partition("-")
            if lo.isdigit() and hi.isdigit() and int(lo) <= int(hi):
                out.extend(_normalize_port(f"{p}/{proto}" if proto else str(p)) for p in range(int(lo), int(hi) + 1))
                continue
        out.append(_normalize_port(word))
    return out


class ConfigState:
    """Per-stage facts the config instructions need besides the image: the SHELL in effect and
    whether this stage has set CMD (ENTRYPOINT clears an *inherited* CMD only)."""

    def __init__(self, image: Image) -> None:
        shell = image.config.config.shell
        self.shell: tuple[str, ...] = tuple(shell) if shell else DEFAULT_SHELL
        self.cmd_set = False


def apply_config(image: Image, ins: Instruction, state: ConfigState, *, created: str) -> Image:
    """``image`` with the config change of ``ins`` (already expanded) and its history entry."""
    cfg = image.config.config

    def change(created_by: str, **fields) -> Image:
        return image.with_config(created_by=created_by, comment=HISTORY_COMMENT, created=created, **fields)

    if isinstance(ins, Env):
        env = cfg.env_dict()
        for p in ins.pairs:
            env[p.key] = p.value
        shown = " ".join(f"{p.key}={p.value}" for p in ins.pairs)
        return change(f"ENV {shown}", env=[f"{k}={v}" for k, v in env.items()])
    if isinstance(ins, Label):
        labels = dict(cfg.labels or {})
        for p in ins.pairs:
            labels[p.key] = p.value
        shown = " ".join(f"{p.key}={p.value}" for p in ins.pairs)
        return change(f"LABEL {shown}", labels=labels)
    if isinstance(ins, Expose):
        ports = dict(cfg.exposed_ports or {})
        new = _expand_ports(ins.ports)
        for p in new:
            ports[p] = {}
        shown = " ".join(f"{p}:{{}}" for p in sorted(set(new)))
        return change(f"EXPOSE map[{shown}]", exposed_ports=ports)
    if isinstance(ins, User):
        return change(f"USER {ins.user}", user=ins.user)
    if isinstance(ins, Cmd):
        argv = command_argv(ins.command, state.shell)
        state.cmd_set = True
        return change(f"CMD {go_list(argv)}", cmd=argv)
    if isinstance(ins, Entrypoint):
        argv = command_argv(ins.command, state.shell) if ins.command.args else []
        fields = {"entrypoint": argv or None}
        if not state.cmd_set:
            fields["cmd"] = None
        return change(f"ENTRYPOINT {go_list(argv)}", **fields)
    if isinstance(ins, Volume):
        volumes = dict(cfg.volumes or {})
        for v in ins.volumes:
            volumes[v] = {}
        return change(f"VOLUME {go_list(ins.volumes)}", volumes=volumes)
    if isinstance(ins, Stopsignal):
        return change(f"STOPSIGNAL {ins.signal}", stop_signal=ins.signal)
    if isinstance(ins, Healthcheck):
        check: dict = {"Test": list(ins.test)}
        for key, value in (("Interval", ins.interval), ("Timeout", ins.timeout),
                           ("StartPeriod", ins.start_period), ("StartInterval", ins.start_interval),
                           ("Retries", ins.retries)):
            if value is not None:
                check[key] = value
        return change(f"HEALTHCHECK {json.dumps(check, separators=(',', ':'))}", healthcheck=check)
    if isinstance(ins, Shell):
        state.shell = tuple(ins.shell)
        return change(f"SHELL {go_list(ins.shell)}", shell=list(ins.shell))
    if isinstance(ins, Onbuild):
        triggers = list(cfg.on_build or ()) + [ins.expression]
        return change(f"ONBUILD {ins.expression}", on_build=triggers)
    if isinstance(ins, Maintainer):
        return change(f"MAINTAINER {ins.maintainer}", author=ins.maintainer)
    raise TypeError(f"{ins.keyword} is not a config instruction")


CONFIG_INSTRUCTIONS = (Env, Label, Expose, User, Cmd, Entrypoint, Volume, Stopsignal, Healthcheck,
                       Shell, Onbuild, Maintainer)

__all__ = ["CONFIG_INSTRUCTIONS", "ConfigState", "DEFAULT_SHELL", "HISTORY_COMMENT", "apply_config",
           "command_argv", "go_list"]
