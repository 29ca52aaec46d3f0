"""The command line of the builder's build command: ``COMMANDS``, merged by ``__main__``.

``capstone build [-t NAME[:TAG]]... [-f FILE] [--build-arg K[=V]]... [--target STAGE]
[--no-cache] [--network host|none|private] [--platform P[,P...]] [--pull[=always|missing|never]] [--label K=V]...
[--output type=oci|oci-archive|docker-archive|local|tar,dest=...] [--iidfile F]
[--progress auto|plain|quiet] [--secret id=ID[,src=PATH|,env=VAR]]... [--ssh default|ID[=SOCKET|KEY]]...
[--allow network.host|security.insecure]... [--explain]
[--cache-to type=registry,ref=REF[,mode=min|max]|type=local,dest=DIR]...
[--cache-from type=registry,ref=REF|type=local,src=DIR]... [--tls-verify=false] [--cert-dir DIR]
[--creds USER:PASSWORD] [--authfile FILE] CONTEXT``

``SOURCE_DATE_EPOCH`` in the environment is the build argument of that name unless
``--build-arg`` sets it (as docker buildx passes it).

Progress lines and the RUN steps' output go to stderr; stdout gets only the image id
(``sha256:...``) at the end, so ``id=$(capstone build -q .)`` works. With ``--progress quiet``
the RUN output is kept aside and shown only when the build fails.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from part1_overview import Narrator

from .errors import BuildArgError

HELP = "build an image from a Dockerfile (the result is stored and tagged)"


def configure_build(p: argparse.ArgumentParser) -> None:
    p.add_argument("context", metavar="CONTEXT", help="the build context directory")
    p.add_argument("-t", "--tag", action="append", default=[], metavar="NAME[:TAG]",
                   help="name the image (repeatable)")
    p.add_argument("-f", "--file", metavar="FILE", help="the Dockerfile (default CONTEXT/Dockerfile)")
    p.add_argument("--build-arg", action="append", default=[], metavar="K[=V]",
                   help="set a build argument (K alone takes it from the environment)")
    p.add_argument("--target", metavar="STAGE", help="build this stage (and what it needs) only")
    p.add_argument("--no-cache", action="store_true", help="do not use the build cache (still record)")
    p.add_argument("--network", choices=("private", "host", "none"), default="private",
                   help="network of RUN steps (default private: outbound access through slirp4netns)")
    p.add_argument("--platform", metavar="P[,P...]",
                   help="the target platform (os/arch[/variant]); several, comma-separated, build one image "
                        "per platform into one index under one name")
    p.add_argument("--pull", action="store_const", const="always", default="missing", dest="pull",
                   help="--pull[=always|missing|never]: pull the base images: always (resolve every tag again; "
                        "--pull alone), missing (the default: when the store lacks them for the platform) or never")
    # only the --pull=VALUE spelling takes a value (``--pull .`` is --pull and the context), as podman
    for value in ("always", "missing", "never", "true", "false"):
        p.add_argument(f"--pull={value}", action="store_const", const=value, dest="pull", help=argparse.SUPPRESS)
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="add a label to the image")
    p.add_argument("-o", "--output", action="append", default=[], metavar="type=T,dest=D",
                   help="also export: type=oci|oci-archive|docker-archive|local|tar,dest=PATH or "
                        "type=registry,name=REF [,compression=gzip|zstd|uncompressed][,oci-mediatypes=false]; "
                        "-o DIR is type=local (the root filesystem)")
    p.add_argument("--iidfile", metavar="F", help="write the image id to F")
    p.add_argument("--progress", choices=("auto", "plain", "quiet"), default="auto",
                   help="progress output on stderr (quiet: none)")
    p.add_argument("-q", "--quiet", action="store_true", help="same as --progress quiet")
    p.add_argument("--secret", action="append", default=[], metavar="id=ID[,src=PATH|,env=VAR]",
                   help="a secret for RUN --mount=type=secret (never stored in the image; repeatable)")
    p.add_argument("--ssh", action="append", default=[], metavar="default|ID[=SOCKET|KEY[,KEY]]",
                   help="an SSH agent (or keys) for RUN --mount=type=ssh (repeatable)")
    p.add_argument("--allow", action="append", default=[], metavar="ENTITLEMENT",
                   choices=("network.host", "security.insecure"),
                   help="let RUN --network=host (network.host) or RUN --security=insecure "
                        "(security.insecure) run; refused otherwise, as BuildKit does")
    p.add_argument("--explain", action="store_true",
                   help="say which part of the course does each step and what it produced")
    p.add_argument("--cache-to", action="append", default=[], metavar="type=registry,ref=REF[,mode=min|max]",
                   help="export the build cache: type=registry,ref=REGISTRY/REPO:TAG or type=local,dest=DIR "
                        "(mode=max: every stage's steps; min, the default: the result's stage)")
    p.add_argument("--cache-from", action="append", default=[], metavar="type=registry,ref=REF",
                   help="use a build cache exported before: type=registry,ref=REF (or REF), type=local,src=DIR "
                        "(repeatable; asked after the store's own cache)")
    from .cli_registry import add_registry_flags

    add_registry_flags(p)


def _labels(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key or not eq:
            raise BuildArgError(f"invalid --label {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def run_build(args: argparse.Namespace, n) -> int:
    from .dockerfile import parse_build_args
    from .engine import build
    from .store import Store

    progress = "quiet" if args.quiet else args.progress
    build_args = parse_build_args(args.build_arg)
    # as docker buildx does: SOURCE_DATE_EPOCH in the environment becomes the build argument,
    # unless --build-arg gives one (an empty value unsets it)
    if "SOURCE_DATE_EPOCH" in os.environ and "SOURCE_DATE_EPOCH" not in build_args:
        build_args["SOURCE_DATE_EPOCH"] = os.environ["SOURCE_DATE_EPOCH"]
    labels = _labels(args.label)
    store = Store.open(args.store, snapshotter=args.snapshotter)

    err = Narrator(sys.stderr, plain=True)

    def log(line: str) -> None:
        # on a terminal a long line wraps under its text: "    explain: " or the step's indent
        lead = re.match(r"\s*(?:explain: )?", line).end()
        err.line(line, hang=lead or 4)

    import tempfile  # a build's, not --help's (shutil, random, weakref)

    from .cli_registry import registry_options
    from .transferview import transfer_view

    with tempfile.TemporaryFile() as captured, transfer_view(progress) as transfers:
        run_output = captured if progress == "quiet" else sys.stderr
        try:
            result = build(
                store, Path(args.context), args.file, tags=args.tag, build_args=build_args,
                target=args.target, no_cache=args.no_cache, network=args.network, platform=args.platform, pull=args.pull,
                labels=labels, outputs=args.output, iidfile=args.iidfile, progress=progress,
                explain=args.explain, log=log, run_output=run_output,
                secrets=args.secret, ssh=args.ssh, allow=args.allow,
                cache_to=args.cache_to, cache_from=args.cache_from, registry=registry_options(args),
                transfers=transfers,
            )
        except BaseException:
            if progress == "quiet":
                captured.seek(0)
                sys.stderr.buffer.write(captured.read())
                sys.stderr.flush()
            raise
    n.out.write(result.image_id + "\n")
    n.out.flush()
    return 0


COMMANDS: dict = {
    "build": (HELP, configure_build, run_build),
}
