"""``python -m capstone`` (also the ``capstone`` command): the Dockerfile builder's command line.

Global flags come before the command: ``--store DIR`` (the local image store; default
``$CAPSTONE_STORE``, else ``$XDG_DATA_HOME/capstone``, else ``~/.local/share/capstone``) and
``--debug`` (tracebacks instead of one-line errors). Exit codes: 0 success, 1 a failed command
(one line, ``Dockerfile:LINE: message`` where it applies), 2 a usage error. ``run`` exits as
``docker run`` does, with the container's code: its own failures (a usage error included) are
125, a command that cannot be invoked 126, one that does not exist 127.

**Rootless.** Run by an ordinary user, the commands that give files owners or mount
(``build``, ``run``, ``import``, ``prune``) run as root of a user namespace of the user's own,
as ``buildah unshare`` does: part 5 maps the user's subordinate range from /etc/subuid (uid
1000 inside is a subordinate uid outside, and the store keeps it exactly), or only the user's
own uid, with a one-line warning, when there is no range.

Every command is a pair of functions: ``configure(subparser)`` adds its arguments and
``run(args, narrator) -> int`` does the work. Commands register in ``COMMANDS``; later ones
(build, images, run, ...) live in their own modules and are added to that table.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from part1_overview import CourseError, Narrator, run_cli

from .errors import CapstoneError

Configure = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace, Narrator], int]


#: commands that give files owners, mount overlays or run containers: rootless, they run as
#: root of a user namespace of the caller's own
USER_NAMESPACE_COMMANDS = frozenset({"build", "run", "import", "prune"})

#: what a command exits with when it fails (usage errors included), where that is not 1 and 2:
#: ``run`` as ``docker run``, whose own failures are 125, apart from any code of the container's
FAILURE_CODES = {"run": 125}


def failure_code(command: str | None, usage: bool = False) -> int:
    """The exit code of a failed ``command`` (``usage``: its command line was wrong)."""
    return FAILURE_CODES.get(command, 2 if usage else 1)


def default_store() -> Path:
    """``$CAPSTONE_STORE``, else ``capstone`` in the user's XDG data directory."""
    env = os.environ.get("CAPSTONE_STORE")
    if env:
        return Path(env)
    data = os.environ.get("XDG_DATA_HOME")
    # the XDG Base Directory spec: a relative value is invalid and is ignored
    base = Path(data) if data and os.path.isabs(data) else Path.home() / ".local" / "share"
    return base / "capstone"


# -- parse -----------------------------------------------------------------------------------


def configure_parse(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="the Dockerfile ('-' reads standard input)")
    p.add_argument("--dump", action="store_true",
                   help="print BuildKit's parser dump (one S-expression per instruction)")
    p.add_argument("--target", metavar="STAGE",
                   help="also show which stages building STAGE needs, in build order")


def run_parse(args: argparse.Namespace, n: Narrator) -> int:
    from .dockerfile import build_stage_graph, dump, parse, parse_syntax_tree

    name = "Dockerfile" if args.file == "-" else args.file
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        raise CapstoneError(f"cannot read {args.file}: {exc.strerror}") from None
    out = n.out
    if args.dump:
        # exactly BuildKit's dumper: the syntax tree, no instruction checks
        out.write(dump(parse_syntax_tree(data, name).nodes))
        out.flush()
        return 0
    dockerfile = parse(data, name)
    for w in dockerfile.warnings:
        print(f"{name}:{w.line}: warning: {w.message} ({w.rule})", file=sys.stderr)
    for d in dockerfile.directives:
        out.write(f"{d.line:>7}  # {d.name}={d.value}\n")
    width = 7
    for ins in dockerfile.instructions:
        out.write(f"{str(ins.location):>{width}}  {ins.original.strip()}\n")
        for h in getattr(ins, "heredocs", ()):
            for body_line in h.content.splitlines():
                out.write(f"{'':>{width}}  | {body_line}\n")
            out.write(f"{'':>{width}}  | {h.name}\n")
    graph = build_stage_graph(dockerfile)
    plan = graph.plan(args.target)
    out.write("\n")
    for node in graph.nodes:
        base = f"stage {node.base_stage}" if node.base_stage is not None else node.base
        status = "" if node.index in plan.order else "  (skipped)"
        out.write(f"stage {node.index} {node.display_name}: from {base}, lines "
                  f"{node.stage.location}{status}\n")
    order = " -> ".join(graph.nodes[i].display_name for i in plan.order)
    out.write(f"build order for {graph.nodes[plan.target].display_name}: {order}\n")
    out.flush()
    return 0


#: name -> (help, configure, run); later issues add build, images, run, ...
COMMANDS: dict[str, tuple[str, Configure, Run]] = {
    "parse": ("print a parsed Dockerfile with line numbers (or BuildKit's dump)",
              configure_parse, run_parse),
}


def all_commands() -> dict[str, tuple[str, Configure, Run]]:
    """``parse`` and the commands of the builder's own modules, in the order ``--help`` lists them."""
    from . import cli_build, cli_registry, cli_run, cli_store

    return {**cli_build.COMMANDS, **cli_run.COMMANDS, **cli_registry.COMMANDS, **cli_store.COMMANDS, **COMMANDS}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line; ``only``: configure that command alone (the others' arguments are
    not needed to parse its command line, and argparse's parsers cost time to build)."""
    parser = argparse.ArgumentParser(
        prog="capstone", description="A daemonless Dockerfile builder, chapter by chapter.")
    parser.add_argument("--store", metavar="DIR", type=Path, default=None,
                        help="the local image store (default $CAPSTONE_STORE or "
                             "~/.local/share/capstone)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--snapshotter", choices=("auto", "overlay", "copy"), default="auto",
                        help="how RUN steps and containers get a writable root: overlayfs, a copy of the "
                             "layers, or auto (overlay where the kernel allows it; the default)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, configure, _run) in all_commands().items():
        if only is None or name == only:
            configure(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The command named in ``argv`` when its global flags are spelled out in full (else None:
    the whole parser decides, with its help, abbreviations and errors)."""
    commands = all_commands()
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--debug" or word.startswith(("--store=", "--snapshotter=")):
            i += 1
        elif word in ("--store", "--snapshotter"):
            i += 2
        else:
            return word if word in commands else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    command = _command_of(sys.argv[1:] if argv is None else argv)
    parser = build_parser(command)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return failure_code(command, usage=True) if exc.code else 0
    if args.store is None:
        args.store = default_store()
    # a Dockerfile's undecodable bytes travel as surrogate escapes: print them back as the
    # same bytes (as Go would) instead of failing with UnicodeEncodeError
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    n = Narrator()
    warnings.showwarning = _show_warning
    if args.command in USER_NAMESPACE_COMMANDS and os.geteuid() != 0:
        return _in_user_namespace(args, n)
    return _run_command(args, n)


def _in_user_namespace(args: argparse.Namespace, n: Narrator) -> int:
    """The command run as root of a user namespace of the caller's own (unless it is in one
    already: a second `capstone` inside `capstone run`, or `buildah unshare capstone ...`)."""
    from part5_namespaces import IdMapError, NamespaceError, in_user_namespace, rootless_mapping, run_in_user_namespace

    if in_user_namespace():
        return _run_command(args, n)
    mapping = rootless_mapping()
    hint = None
    if not mapping.full:
        print(f"capstone: warning: {mapping.warning()}", file=sys.stderr)
        hint = f"only uid {mapping.uid_maps[0].outside} is mapped, as root ({mapping.limitation}): {mapping.fix()}"

    def inside() -> int:
        try:
            return run_cli(lambda _argv: _run_command(args, n, hint))
        except BaseException:  # noqa: BLE001 - a bug: its traceback is the useful report
            import traceback

            traceback.print_exc()
            return 1  # of a command other than run, whose bugs _run_command reports with its code

    try:
        return run_in_user_namespace(inside, mapping)
    except (IdMapError, NamespaceError) as exc:
        if args.debug:
            import traceback

            traceback.print_exc()
        how = mapping.fix() if isinstance(exc, IdMapError) else "user namespaces may be disabled here (sysctl user.max_user_namespaces)"
        print(f"capstone: {args.command}: cannot enter a user namespace of your own: {exc.strerror or exc}; {how}", file=sys.stderr)
        return failure_code(args.command)


_default_showwarning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """The parts' warnings (a layer's device nodes left out rootless, a bundle field not
    implemented) as one line each; Python's own keep their usual form."""
    if issubclass(category, UserWarning):
        print(f"capstone: note: {message}", file=sys.stderr, flush=True)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


def _run_command(args: argparse.Namespace, n: Narrator, hint: str | None = None) -> int:
    """Run the parsed command; part errors become one line (a traceback with --debug).

    ``hint``: what a failure may be owed to and how to fix it (rootless with the single
    mapping), added to the line of every error but the Dockerfile's own mistakes."""
    run = all_commands()[args.command][2]
    try:
        return run(args, n)
    except CapstoneError as exc:
        if args.debug:
            import traceback

            traceback.print_exc()
        text = f"capstone: {exc}" if not _has_location(exc) else str(exc)
        print(text + (f"; {hint}" if hint and not _is_dockerfile_mistake(exc) else ""), file=sys.stderr)
        return failure_code(args.command)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise  # the reader went away: run_cli ends quietly
    except Exception as exc:
        if not isinstance(exc, _part_errors()):
            if args.command not in FAILURE_CODES:
                raise  # a bug: the traceback is the useful report
            import traceback

            traceback.print_exc()  # the report, and still the command's own failure code
            return failure_code(args.command)
        if args.debug:
            import traceback

            traceback.print_exc()
        text = f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) and exc.filename else str(exc)
        print(f"capstone: {args.command}: {text}" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return failure_code(args.command)


def _is_dockerfile_mistake(exc: Exception) -> bool:
    """A parse, expansion or stage error: the Dockerfile's text is wrong, wherever it runs."""
    from .engine.errors import StepError  # a step that failed while it ran
    from .errors import DockerfileError

    return isinstance(exc, DockerfileError) and not isinstance(exc, StepError)


def _part_errors() -> tuple[type[BaseException], ...]:
    """Errors of the parts below, for every command one line each (they name blob and path):
    each part's base error derives from part 1's ``CourseError``; an ``OSError`` names its file.
    Anything else is a bug, whose traceback is the useful report."""
    return (CourseError, OSError)


def _has_location(exc: Exception) -> bool:
    from .errors import DockerfileError

    return isinstance(exc, DockerfileError)


def cli() -> int:
    """The ``capstone`` console script: ``main`` with a quiet end when stdout's reader leaves."""
    return run_cli(main)


def _exit(code: int) -> None:
    """End the process without Python's teardown: a finished build leaves every module and
    object it made to be freed one by one (75 to 125 ms after a cold multistage build here),
    which the kernel does at once. What must reach a reader is flushed first; nothing of the
    commands is left to an exit handler (their temporary files and mounts are gone already)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # run_cli has already ended a stdout whose reader left (141)
    os._exit(code)


if __name__ == "__main__":
    _exit(cli())
