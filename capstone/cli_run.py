"""The command line of ``run``, ``pull`` and ``push``: ``COMMANDS``, merged by ``__main__``.

``run`` follows ``docker run``: flags before the image, everything after the image is the
command (it replaces the image's Cmd; ``--entrypoint`` replaces its Entrypoint). Without
``-i`` the container's stdin is /dev/null, as with docker. Without ``--rm`` the container's
upper dir (what it changed) stays in the store's ``containers/`` dir and its id is printed on
stderr when it ends. The exit code of ``capstone run`` is docker's and podman's: the
container's (128+N when its PID 1 died of signal N), 127 when its command does not exist, 126
when it cannot be invoked, 125 when ``run`` itself failed (a usage error, an unknown image or
``-u`` user, a bad ``-v``, ``-e`` or ``-w``; ``__main__``'s ``FAILURE_CODES``). ^C or SIGTERM
stops the container as ``docker stop`` does: the image's StopSignal to PID 1, SIGKILL after
``--stop-timeout`` seconds.
"""

from __future__ import annotations

import argparse
import os
import sys

from part1_overview import Narrator

from .errors import CapstoneError

NETWORKS = ("private", "host", "none")


def _store(args: argparse.Namespace):
    from .store import Store

    return Store.open(args.store, snapshotter=args.snapshotter)


# -- run ---------------------------------------------------------------------------------------


def configure_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rm", action="store_true", help="delete the container's changes when it exits")
    p.add_argument("-e", "--env", action="append", default=[], metavar="K=V",
                   help="set an environment variable (a bare K passes the caller's value)")
    p.add_argument("--network", "--net", choices=NETWORKS, default="private",
                   help="private (own namespace, outbound through slirp4netns; the default), host, none")
    p.add_argument("-w", "--workdir", metavar="DIR", help="working directory (default: the image's)")
    p.add_argument("-u", "--user", metavar="USER", help="user[:group] or uid[:gid] (default: the image's)")
    p.add_argument("--entrypoint", metavar="CMD", help="replace the image's Entrypoint ('' clears it)")
    p.add_argument("--hostname", metavar="NAME", help="the container's hostname (default: its short id)")
    p.add_argument("-v", "--volume", action="append", default=[], metavar="SRC:DST[:ro]",
                   help="bind-mount a host path into the container")
    p.add_argument("-t", "--tty", action="store_true", help="give the command a terminal")
    p.add_argument("--init", action="store_true",
                   help="run a reaper as PID 1 that forwards signals and reaps zombies (docker run --init)")
    p.add_argument("-i", "--interactive", action="store_true", help="pass standard input to the command")
    p.add_argument("--stop-timeout", type=int, default=10, metavar="SECONDS",
                   help="on ^C or SIGTERM the image's StopSignal goes to PID 1, then SIGKILL after this many "
                        "seconds (default 10, as docker; -1: no limit)")
    p.add_argument("image", metavar="IMAGE", help="an image in the store (a name, digest or id prefix)")
    # not "command": __main__ keeps the subcommand's name there
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="CMD...",
                   help="the command to run instead of the image's Cmd")


def run_run(args: argparse.Namespace, n: Narrator) -> int:
    from .runner import ContainerRunError, run_image

    store = _store(args)
    mounts = tuple(_volume(v) for v in args.volume)
    kept: list[tuple[str, object]] = []
    devnull = None
    stdin = None
    if not args.interactive:
        devnull = os.open(os.devnull, os.O_RDONLY)
        stdin = devnull
    try:
        code = run_image(
            store, args.image,
            command=args.argv or None,
            entrypoint=None if args.entrypoint is None else ([args.entrypoint] if args.entrypoint else [""]),
            env=args.env, workdir=args.workdir, user=args.user, network=args.network,
            rm=args.rm, tty=args.tty, init=args.init, hostname=args.hostname, mounts=mounts, stdin=stdin,
            on_container=lambda cid, path: kept.append((cid, path)),
            stop_timeout=None if args.stop_timeout < 0 else args.stop_timeout,
        )
    except ContainerRunError as e:
        if e.exit_code not in (126, 127):
            raise
        # as docker and podman: 127 for a command that does not exist, 126 for one that cannot run
        print(f"capstone: run: {e}", file=sys.stderr)
        return e.exit_code
    finally:
        if devnull is not None:
            os.close(devnull)
    if not args.rm and kept:
        cid, path = kept[0]
        print(f"container {cid[:12]} kept: {path}", file=sys.stderr)
    return code


def _volume(text: str):
    from part6_runtime import Mount

    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
        raise CapstoneError(f"invalid volume {text!r}: expected /host/path:/container/path[:ro]")
    options = ("rbind", "ro") if len(parts) == 3 and parts[2] == "ro" else ("rbind",)
    if len(parts) == 3 and parts[2] not in ("ro", "rw"):
        raise CapstoneError(f"invalid volume {text!r}: the mode is ro or rw")
    source = os.path.abspath(parts[0])
    if not os.path.exists(source):
        raise CapstoneError(f"volume source {source} does not exist")
    return Mount(destination=parts[1], type="bind", source=source, options=options)


# -- pull / push -----------------------------------------------------------------------------


def configure_pull(p: argparse.ArgumentParser) -> None:
    from .cli_registry import add_registry_flags

    p.add_argument("ref", metavar="REF", help="NAME[:TAG|@DIGEST] (docker.io/library/ for a bare name)")
    p.add_argument("--platform", metavar="P", help="the platform's image of a multi-platform index "
                   "(os/arch[/variant]; default: this host's)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the digest, show no progress")
    add_registry_flags(p)


def run_pull(args: argparse.Namespace, n: Narrator) -> int:
    from .cli_registry import registry_options, terminate_as_interrupt
    from .cli_store import platform_flag
    from .refs import parse_name
    from .registry import pull
    from .transferview import transfer_view

    store = _store(args)
    ref = args.ref[len("docker://"):] if args.ref.startswith("docker://") else args.ref
    platform = platform_flag(args.platform)
    with terminate_as_interrupt(), transfer_view("quiet" if args.quiet else "auto") as view:
        desc = pull(store, ref, platform=platform, on_progress=view, options=registry_options(args))
    n.out.write(f"{desc.digest}\n" if args.quiet else f"{parse_name(ref).name}@{desc.digest}\n")
    n.out.flush()
    return 0


def configure_push(p: argparse.ArgumentParser) -> None:
    from .cli_registry import add_registry_flags

    p.add_argument("image", metavar="IMAGE", help="an image in the store")
    p.add_argument("dest", metavar="DEST", nargs="?",
                   help="docker://HOST/REPO:TAG, oci:DIR[:TAG], oci-archive:FILE[:TAG] or "
                        "docker-archive:FILE (default: the image's own name)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the digest, show no progress")
    add_registry_flags(p)


def run_push(args: argparse.Namespace, n: Narrator) -> int:
    from .cli_registry import registry_options, terminate_as_interrupt
    from .registry import push
    from .transferview import transfer_view

    store = _store(args)
    with terminate_as_interrupt(), transfer_view("quiet" if args.quiet else "auto") as view:
        result = push(store, args.image, args.dest, on_progress=view, options=registry_options(args))
    n.out.write(f"{result}\n")
    n.out.flush()
    return 0


COMMANDS: dict = {
    "run": ("run a command in a new container from an image (part 6 runtime over a part 7 overlay)",
            configure_run, run_run),
    "pull": ("pull an image from a registry into the store", configure_pull, run_pull),
    "push": ("push an image from the store to a registry or an archive", configure_push, run_push),
}
