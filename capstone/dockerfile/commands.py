"""From syntax-tree nodes to typed instructions: argument counts, flags, forms, per instruction.

This is BuildKit's ``instructions/parse.go`` layer: each instruction checks its own arguments
and declares the flags it accepts, in the same order as BuildKit so the first error reported
is the same one. Messages are BuildKit's. A few checks BuildKit makes later or never are made
here, with the message BuildKit uses for the same mistake elsewhere: an empty ``RUN`` ("RUN
requires at least one argument"), an unknown ONBUILD trigger, and flags on STOPSIGNAL, ARG and
``HEALTHCHECK NONE`` ("unknown flag: --x"; BuildKit never parses flags there and ignores them).
``RUN --mount`` values are checked as far as they can be before expansion
(:func:`.mounts.check_mount`); the unknown-flag and unknown-instruction suggestions are
BuildKit's (edit distance below 3, :func:`.flags.suggest`).
"""

from __future__ import annotations

import re

from ..errors import CapstoneError
from . import flags as fl
from .flags import BOOL, STRING, STRINGS, FlagError, FlagSet
from .heredoc import parse_heredoc_word
from .instructions import (
    INSTRUCTION_TYPES,
    Add,
    Arg,
    ArgDecl,
    Cmd,
    CommandLine,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Heredoc,
    Instruction,
    KeyValue,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    SourceRange,
    Stopsignal,
    User,
    Volume,
    Workdir,
)
from .mounts import MountSyntaxError, check_mount
from .nodes import Node, go_trim_space

_STAGE_NAME_RE = re.compile(r"[a-z][a-z0-9\-_.]*")
_ONBUILD_PREFIX_RE = re.compile(r"^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*", re.IGNORECASE)
_MIN_INTERVAL_NS = 1_000_000  # Docker's container.MinimumDuration (1ms)

NETWORK_MODES = ("default", "none", "host")
SECURITY_MODES = ("sandbox", "insecure")


class InstructionError(CapstoneError):
    """An instruction's arguments or flags are wrong; the parser adds file and line."""


def instruction_from_node(node: Node) -> Instruction:
    """The typed instruction for a node (raises InstructionError / FlagError)."""
    kw = node.keyword.lower()
    build = _BUILDERS.get(kw)
    if build is None:
        raise InstructionError(fl.with_suggestion(
            f"unknown instruction: {node.keyword}", node.keyword,
            (k.lower() for k in INSTRUCTION_TYPES), case_sensitive=False))
    common = dict(location=SourceRange(node.start, node.end), original=node.original,
                  flags=node.flags)
    return build(node, _str_args(node), common)


def _str_args(node: Node) -> list[str]:
    # BuildKit's nodeArgs: a sub-command contributes its keyword and its arguments
    out: list[str] = []
    for a in node.args:
        if isinstance(a, Node):
            out.append(a.keyword)
            out.extend(_str_args(a))
        else:
            out.append(a)
    return out


def _flags(node: Node, spec: dict[str, str] | None = None) -> FlagSet:
    return FlagSet(spec or {}).parse(node.flags)


def _at_least_one(name: str) -> InstructionError:
    return InstructionError(f"{name} requires at least one argument")


def _exactly_one(name: str) -> InstructionError:
    return InstructionError(f"{name} requires exactly one argument")


def _json_args(args: list[str], node: Node) -> tuple[str, ...]:
    """BuildKit's handleJSONArgs: exec form as is, shell form joined into one string."""
    if not args:
        return ()
    if node.json:
        return tuple(args)
    return (" ".join(args),)


# -- one builder per instruction ---------------------------------------------------------------


def _from(node: Node, args: list[str], common: dict) -> From:
    name = None
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME_RE.fullmatch(name):
            from .dump import go_quote

            raise InstructionError(f"invalid name for build stage: {go_quote(args[2])}, "
                                   "name can't start with a number or contain symbols")
    elif len(args) != 1:
        raise InstructionError("FROM requires either one or three arguments")
    f = _flags(node, {"platform": STRING})
    return From(image=args[0], stage_name=name, platform=f.string("platform"), **common)


def _kvps(args: list[str], name: str) -> tuple[KeyValue, ...]:
    if not args:
        raise _at_least_one(name)
    if len(args) % 3:
        raise InstructionError(f"Bad input to {name}, too many arguments")
    out = []
    for i in range(0, len(args), 3):
        if not args[i]:
            raise InstructionError(f"{name} names can not be blank")
        out.append(KeyValue(args[i], args[i + 1], legacy=args[i + 2] == ""))
    return tuple(out)


def _env(node: Node, args: list[str], common: dict) -> Env:
    _flags(node)
    return Env(pairs=_kvps(args, "ENV"), **common)


def _label(node: Node, args: list[str], common: dict) -> Label:
    _flags(node)
    return Label(pairs=_kvps(args, "LABEL"), **common)


def _maintainer(node: Node, args: list[str], common: dict) -> Maintainer:
    if len(args) != 1:
        raise _exactly_one("MAINTAINER")
    _flags(node)
    return Maintainer(maintainer=args[0], **common)


def _sources_and_dest(node: Node, args: list[str], name: str):
    sources, dest = args[:-1], args[-1]
    if parse_heredoc_word(dest) is not None:
        raise InstructionError(f"{name} cannot accept a heredoc as a destination")
    bodies = {h.name: h for h in node.heredocs}
    paths: list[str] = []
    docs: list[Heredoc] = []
    for src in sources:
        word = parse_heredoc_word(src)
        if word is None:
            paths.append(src)
            continue
        found = bodies.get(word.name)
        docs.append(Heredoc(name=word.name, content=found.content if found else "",
                            expand=word.expand, chomp=word.chomp, fd=word.fd))
    return tuple(paths), dest, tuple(docs)


def _no_destination(name: str) -> InstructionError:
    return InstructionError(f"{name} requires at least two arguments, but only one was provided. "
                            "Destination could not be determined.")


def _add(node: Node, args: list[str], common: dict) -> Add:
    if len(args) < 2:
        raise _no_destination("ADD")
    f = _flags(node, {"chown": STRING, "chmod": STRING, "link": BOOL, "keep-git-dir": BOOL,
                      "checksum": STRING, "unpack": BOOL, "exclude": STRINGS})
    sources, dest, docs = _sources_and_dest(node, args, "ADD")
    return Add(sources=sources, dest=dest, heredocs=docs, chown=f.string("chown"),
               chmod=f.string("chmod"), link=bool(f.boolean("link")),
               keep_git_dir=bool(f.boolean("keep-git-dir")), checksum=f.string("checksum"),
               unpack=f.boolean("unpack"), exclude=f.strings("exclude"), **common)


def _copy(node: Node, args: list[str], common: dict) -> Copy:
    if len(args) < 2:
        raise _no_destination("COPY")
    f = _flags(node, {"chown": STRING, "from": STRING, "chmod": STRING, "link": BOOL,
                      "parents": BOOL, "exclude": STRINGS})
    sources, dest, docs = _sources_and_dest(node, args, "COPY")
    return Copy(sources=sources, dest=dest, heredocs=docs, from_stage=f.string("from"),
                chown=f.string("chown"), chmod=f.string("chmod"), link=bool(f.boolean("link")),
                parents=bool(f.boolean("parents")), exclude=f.strings("exclude"), **common)


def _onbuild(node: Node, args: list[str], common: dict) -> Onbuild:
    if not args:
        raise _at_least_one("ONBUILD")
    _flags(node)
    trigger_kw = go_trim_space(args[0]).upper()
    if trigger_kw == "ONBUILD":
        raise InstructionError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger_kw in ("MAINTAINER", "FROM"):
        raise InstructionError(f"{trigger_kw} isn't allowed as an ONBUILD trigger")
    expression = _ONBUILD_PREFIX_RE.sub("", node.original, count=1)
    for h in node.heredocs:
        expression += "\n" + h.content + h.name
    child: Node = node.args[0]  # type: ignore[assignment]
    child = Node(child.keyword, child.args, child.flags, child.json, child.original,
                 node.start, node.end, node.heredocs)
    trigger = instruction_from_node(child)
    return Onbuild(expression=expression, trigger=trigger, **common)


def _workdir(node: Node, args: list[str], common: dict) -> Workdir:
    if len(args) != 1:
        raise _exactly_one("WORKDIR")
    _flags(node)
    return Workdir(path=args[0], **common)


def _run(node: Node, args: list[str], common: dict) -> Run:
    f = _flags(node, {"mount": STRINGS, "network": STRING, "security": STRING})
    network, security = f.string("network"), f.string("security")
    if network is not None and network not in NETWORK_MODES:
        raise InstructionError(f'invalid network mode "{network}"')
    if security is not None and security not in SECURITY_MODES:
        raise InstructionError(f'security "{security}" is not valid')
    for value in f.strings("mount"):
        try:
            check_mount(value)
        except MountSyntaxError as exc:
            raise InstructionError(str(exc)) from None
    if not args:
        raise _at_least_one("RUN")
    return Run(command=CommandLine(_json_args(args, node), not node.json), heredocs=node.heredocs,
               mounts=f.strings("mount"), network=network, security=security, **common)


def _cmd(node: Node, args: list[str], common: dict) -> Cmd:
    _flags(node)
    return Cmd(command=CommandLine(_json_args(args, node), not node.json), **common)


def _entrypoint(node: Node, args: list[str], common: dict) -> Entrypoint:
    _flags(node)
    return Entrypoint(command=CommandLine(_json_args(args, node), not node.json), **common)


def _interval(f: FlagSet, name: str) -> int | None:
    # BuildKit's parseOptInterval: 0 is the default and allowed (buildkit#3092); anything
    # else must be at least Docker's MinimumDuration
    value = f.string(name)
    if not value:
        return None
    ns = fl.parse_go_duration(value)
    if ns == 0:
        return 0
    if ns < _MIN_INTERVAL_NS:
        raise InstructionError(f'Interval "{name}" cannot be less than '
                               f"{fl.format_go_duration(_MIN_INTERVAL_NS)}")
    return ns


def _healthcheck(node: Node, args: list[str], common: dict) -> Healthcheck:
    if not args:
        raise _at_least_one("HEALTHCHECK")
    kind = args[0].upper()
    rest = args[1:]
    if kind == "NONE":
        if rest:
            raise InstructionError("HEALTHCHECK NONE takes no arguments")
        _flags(node)
        return Healthcheck(test=("NONE",), **common)
    f = _flags(node, {"interval": STRING, "timeout": STRING, "start-period": STRING,
                      "start-interval": STRING, "retries": STRING})
    if kind != "CMD":
        raise InstructionError(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    cmd = _json_args(rest, node)
    if not cmd:
        raise InstructionError("Missing command after HEALTHCHECK CMD")
    test = ("CMD" if node.json else "CMD-SHELL",) + cmd
    interval = _interval(f, "interval")
    timeout = _interval(f, "timeout")
    start_period = _interval(f, "start-period")
    start_interval = _interval(f, "start-interval")
    retries = None
    if f.string("retries"):
        retries = fl.parse_go_int(f.string("retries"), 32)
        if retries < 0:  # 0 means "the default" (buildkit#3092)
            raise InstructionError(f"--retries cannot be negative ({retries})")
    return Healthcheck(test=test, interval=interval, timeout=timeout, start_period=start_period,
                       start_interval=start_interval, retries=retries, **common)


def _expose(node: Node, args: list[str], common: dict) -> Expose:
    if not args:
        raise _at_least_one("EXPOSE")
    _flags(node)
    return Expose(ports=tuple(sorted(args)), **common)


def _user(node: Node, args: list[str], common: dict) -> User:
    if len(args) != 1:
        raise _exactly_one("USER")
    _flags(node)
    return User(user=args[0], **common)


def _volume(node: Node, args: list[str], common: dict) -> Volume:
    if not args:
        raise _at_least_one("VOLUME")
    _flags(node)
    volumes = []
    for v in args:
        v = go_trim_space(v)
        if not v:
            raise InstructionError("VOLUME specified can not be an empty string")
        volumes.append(v)
    return Volume(volumes=tuple(volumes), **common)


def _stopsignal(node: Node, args: list[str], common: dict) -> Stopsignal:
    if len(args) != 1:
        raise _exactly_one("STOPSIGNAL")
    _flags(node)
    return Stopsignal(signal=args[0], **common)


def _arg(node: Node, args: list[str], common: dict) -> Arg:
    if not args:
        raise _at_least_one("ARG")
    _flags(node)
    decls = []
    for a in args:
        if "=" in a:
            key, _, value = a.partition("=")
            if not key:
                raise InstructionError("ARG names can not be blank")
            decls.append(ArgDecl(key, value))
        else:
            decls.append(ArgDecl(a))
    return Arg(args=tuple(decls), **common)


def _shell(node: Node, args: list[str], common: dict) -> Shell:
    _flags(node)
    shell = _json_args(args, node)
    if not shell:
        raise _at_least_one("SHELL")
    if not node.json:
        raise InstructionError("SHELL requires the arguments to be in JSON form")
    return Shell(shell=shell, **common)


_BUILDERS = {
    "add": _add, "arg": _arg, "cmd": _cmd, "copy": _copy, "entrypoint": _entrypoint,
    "env": _env, "expose": _expose, "from": _from, "healthcheck": _healthcheck,
    "label": _label, "maintainer": _maintainer, "onbuild": _onbuild, "run": _run,
    "shell": _shell, "stopsignal": _stopsignal, "user": _user, "volume": _volume,
    "workdir": _workdir,
}

__all__ = ["instruction_from_node", "InstructionError", "FlagError"]
