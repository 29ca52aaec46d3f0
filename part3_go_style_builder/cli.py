"""cbt's command line: ``python -m part3_go_style_builder`` (and, with RUN, the ``cbt`` command).

With no arguments (or ``demo``) it runs the chapter's workflow for real in a scratch folder:
a busybox base image from part 2, ``from``, a layer folder, ``config``, ``build``, validation,
and a run under umoci + runc. With a command it is cbt::

    python -m part3_go_style_builder from REF [--name NAME]
    python -m part3_go_style_builder config ID [--cmd C] [--entrypoint E] [--env K=V]... [--workingdir D]
                                              [--user U] [--ports P[,P]] [--label K=V]... [--os OS] [--arch ARCH]
    python -m part3_go_style_builder build ID TARGET --layers a,b [--compression gzip|zstd|none]
    python -m part3_go_style_builder run ID [-l root[,NAME...]] -u NAME [--network none|host|private] -- CMD...
    python -m part3_go_style_builder rm ID
    python -m part3_go_style_builder version

``run`` is parsed and checked here, as cbt's ``run`` stub is in the blog's part 3, but part 3 has
no container to run it in (parts 5-7 do): :func:`main` takes a ``runner`` for it, and a ``packer``
for ``build`` to pack the folders ``run`` wrote into. The ``cbt`` command (``capstone/cbt.py``)
passes both; ``python -m part3_go_style_builder run`` says where RUN lives.

Exit codes: 0 done, 1 the command failed, 2 usage error, 141 the reader of stdout went away
(``| head``). Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from part1_overview import Narrator, lab_main
from part2_manual_oci import LayoutError, build_busybox_image, validate_layout
from part4_tar import LayerError

from .builder import ROOT_LAYER, cbt_build, cbt_config, cbt_from, cbt_run_plan, remove_workdir, shell_join
from .errors import CbtError
from .image import Image

PROG = "cbt"
VERSION = "0.1.0"


class UsageError(CbtError):
    """A command line that does not say what to do (exit code 2, where other CbtErrors are 1)."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(f"{prog}: error: {message}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print the usage and exit: we raise instead
        raise UsageError(self.prog, f"{message} (see {self.prog} --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="cbt in Python: from / config / build, and run with the cbt command; no command runs the chapter demo")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    demo = sub.add_parser("demo", help="run the chapter's workflow in a scratch folder")
    demo.add_argument("--workspace", help="keep everything in this folder (default: a temporary one)")

    p = sub.add_parser("from", help="make a working folder from a base image")
    p.add_argument("refs", nargs="*", metavar="REF", help="oci-layout:DIR[[:IMAGE]:TAG] or oci-archive:FILE[[:IMAGE]:TAG]")
    p.add_argument("--name", help="name the working folder (default: after the image)")

    p = sub.add_parser("config", help="change the image config of a working folder")
    p.add_argument("ids", nargs="*", metavar="ID")
    p.add_argument("--cmd", help='the command: a JSON array (exec form), or a string run by /bin/sh -c')
    p.add_argument("--entrypoint", help="the entrypoint: a JSON array (exec form), or a string run by /bin/sh -c")
    p.add_argument("--env", action="append", default=[], metavar="K=V", help="set an environment variable (repeatable)")
    p.add_argument("--workingdir", help="the working directory")
    p.add_argument("--user", help="the user (NAME, UID, or UID:GID)")
    p.add_argument("--ports", action="append", default=[], metavar="P[,P]", help="exposed ports, replacing the base's (80, 53/udp)")
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="add a label (repeatable)")
    p.add_argument("--os", help="the image's os")
    p.add_argument("--arch", help="the image's architecture")

    p = sub.add_parser("build", help="write the image: base layers, then the layer folders, then the config")
    p.add_argument("args", nargs="*", metavar="ID TARGET")
    p.add_argument("--layers", help="layer folders under layers/, in order: a,b")
    p.add_argument("--compression", choices=("gzip", "zstd", "none"), default="gzip")

    p = sub.add_parser("run", help="run a command over the layer folders (needs the cbt command: parts 5-7)")
    p.add_argument("ids", nargs="*", metavar="ID")
    p.add_argument("-l", "--lower-layers", default=ROOT_LAYER, metavar="NAME[,NAME]",
                   help=f"the layers under the command, bottom first (default: {ROOT_LAYER}, the base image)")
    p.add_argument("-u", "--upper-layer", metavar="NAME", help="the layer folder that receives the command's changes")
    p.add_argument("--network", choices=("none", "host", "private"), default="private",
                   help="the container's network (default: private, through slirp4netns)")

    p = sub.add_parser("rm", help="delete a working folder")
    p.add_argument("ids", nargs="*", metavar="ID")

    sub.add_parser("version", help="print the version")
    return parser


def _one(values: list[str], command: str, missing: str) -> str:
    if not values:
        raise UsageError(f"{PROG} {command}", missing)
    if len(values) > 1:
        raise UsageError(f"{PROG} {command}", "too many arguments specified")
    return values[0]


def _source_date_epoch() -> int | None:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise UsageError(PROG, f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds")
    return int(value)


# -- the commands --------------------------------------------------------------------------------


def cmd_from(args, n: Narrator) -> None:
    ref = _one(args.refs, "from", "an image name must be specified")
    workdir = cbt_from(ref, name=args.name)
    state = workdir.state()
    n.fact("working folder", workdir.path)
    n.fact("base", state.from_image)
    n.say(f"put each layer's files in {workdir.layers_dir}/<name>/, then run `config {workdir.id} ...` and `build`")


def cmd_config(args, argv: list[str], n: Narrator) -> None:
    workdir_id = _one(args.ids, "config", "a working folder id must be specified")
    options = dict(
        cmd=args.cmd, entrypoint=args.entrypoint, env=args.env, workingdir=args.workingdir, user=args.user,
        ports=args.ports, label=args.label, os_name=args.os, arch=args.arch,
    )
    state = cbt_config(workdir_id, command=f"{PROG} {shell_join(argv)}", **options)
    config = state.image_config
    shown = {
        "cmd": ("Cmd", config.config.cmd), "entrypoint": ("Entrypoint", config.config.entrypoint),
        "env": ("Env", config.config.env), "workingdir": ("WorkingDir", config.config.working_dir),
        "user": ("User", config.config.user), "ports": ("ExposedPorts", config.config.exposed_ports),
        "label": ("Labels", config.config.labels), "os_name": ("os", config.os), "arch": ("architecture", config.architecture),
    }
    changed = [key for key, value in options.items() if value not in (None, [])]
    if not changed:
        n.say("no options given: nothing changed")
    for key in changed:
        label, value = shown[key]
        n.fact(label, json.dumps(list(value) if isinstance(value, tuple) else value))


def cmd_build(args, n: Narrator, packer=None) -> None:
    if len(args.args) != 2:
        raise UsageError(f"{PROG} build", f"expected ID TARGET, got {len(args.args)} argument(s)")
    if not args.layers:
        raise UsageError(f"{PROG} build", "layers must be specified (--layers NAME[,NAME...])")
    layers = [name.strip() for name in args.layers.split(",")]
    if any(not name for name in layers):
        raise UsageError(f"{PROG} build", f"--layers {args.layers!r} has an empty name")
    result = cbt_build(args.args[0], args.args[1], layers, compression=args.compression, source_date_epoch=_source_date_epoch(),
                       pack=packer)
    n.fact("image", result.target)
    n.fact("manifest", result.descriptor.digest)
    rows = []
    for i, layer in enumerate(result.image.layers):
        origin = "base" if i < result.base_layers else f"layers/{result.new_layers[i - result.base_layers]}"
        rows.append((origin, layer.descriptor.digest[:19], layer.diff_id[:19], layer.descriptor.size))
    n.table(rows, ("layer", "digest", "diff_id", "size"))


def cmd_run(args, command: list[str], runner, n: Narrator) -> int:
    workdir_id = _one(args.ids, "run", "a working folder id must be specified")
    if not command:
        raise UsageError(f"{PROG} run", "a command must be specified after -- (cbt run ID -l root -u NAME -- CMD...)")
    if not args.upper_layer:
        raise UsageError(f"{PROG} run", "an upper layer must be specified (-u NAME): the command's changes go there")
    lowers = [name.strip() for name in args.lower_layers.split(",")]
    if runner is None:
        raise CbtError(
            "run needs a container (namespaces, a runtime, a union mount: parts 5-7), which part 3 may not use; "
            f"the cbt command has them: python -m capstone.cbt run {workdir_id} -l {','.join(lowers)} -u {args.upper_layer} -- "
            + shell_join(command)
        )
    plan = cbt_run_plan(workdir_id, lowers, args.upper_layer, command)
    return runner(plan, network=args.network)


def cmd_rm(args, n: Narrator) -> None:
    n.fact("removed", remove_workdir(_one(args.ids, "rm", "a working folder id must be specified")))


# -- the chapter demonstration -------------------------------------------------------------------


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True)


def run_with_runc(layout: Path, ref_name: str, work: Path, container_id: str) -> subprocess.CompletedProcess:
    """``umoci unpack`` the image into a bundle and ``runc run`` it (terminal off)."""
    bundle = work / "bundle"
    unpacked = _run(["umoci", "unpack", "--image", f"{layout}:{ref_name}", str(bundle)])
    if unpacked.returncode != 0:
        raise CbtError(f"umoci unpack failed: {unpacked.stderr.strip()}")
    config_path = bundle / "config.json"
    config = json.loads(config_path.read_text())
    config["process"]["terminal"] = False
    config_path.write_text(json.dumps(config))
    return _run(["runc", "run", container_id], cwd=bundle)


def demo(n: Narrator, workspace: Path) -> None:
    home = workspace / "cbt-home"
    n.title("Part 3: cbt in Python: from / config / build, no RUN yet")

    n.step("a base image: part 2's busybox image in an OCI layout")
    base_dir = workspace / "busybox"
    desc = build_busybox_image(base_dir)
    n.command(f"python -m part2_manual_oci --out {base_dir}")
    n.fact("manifest", f"{desc.digest} (ref name {desc.ref_name})")

    n.step("from: a working folder for the base image")
    n.command(f"CBT_HOME={home} python -m part3_go_style_builder from oci-layout:{base_dir}")
    workdir = cbt_from(f"oci-layout:{base_dir}", home=home)
    n.fact("working folder", workdir.path)
    n.output("\n".join(sorted(p.name + ("/" if p.is_dir() else "") for p in workdir.path.iterdir())))
    state = workdir.state()
    n.fact("builder.json fromImage", state.from_image)
    n.fact("builder.json ociImage.config.Cmd", json.dumps(list(state.image_config.config.cmd or ())))

    n.step("a layer is a folder under layers/")
    app = workdir.layers_dir / "app"
    app.mkdir()
    (app / "hello.txt").write_text("hello from a cbt layer\n")
    n.command(f"mkdir {app} && echo 'hello from a cbt layer' > {app}/hello.txt")
    n.say("(the blog makes its dependencies layer the same way: pip install -r requirements.txt -t layers/deps/)")

    n.step("config: what the image runs")
    argv = ["config", workdir.id, "--cmd", "cat /hello.txt", "--env", "GREETING=hello", "--label", "course.part=3"]
    n.command(["python -m part3_go_style_builder"] + [shell_join([a]) for a in argv])
    cbt_config(workdir.id, home=home, command=f"{PROG} {shell_join(argv)}", cmd="cat /hello.txt", env=["GREETING=hello"], label=["course.part=3"])
    cfg = workdir.state().image_config.config
    n.fact("Cmd", json.dumps(list(cfg.cmd)))
    n.say("a string is the shell form (/bin/sh -c); a JSON array such as '[\"cat\",\"/hello.txt\"]' is used as is")

    n.step("build: base layers + layers/app + the config, into a new layout")
    out = workspace / "out"
    target = f"oci-layout:{out}:hello:v1"
    n.command(f"python -m part3_go_style_builder build {workdir.id} {target} --layers app")
    result = cbt_build(workdir.id, target, ["app"], home=home)
    base = Image.load(f"oci-layout:{base_dir}")
    for i, layer in enumerate(result.image.layers):
        kind = "base, copied and verified" if i < len(base.layers) else "new"
        n.fact(f"layer {i} ({kind})", f"{layer.descriptor.digest} diff_id {layer.diff_id}")
    n.fact("manifest", f"{result.descriptor.digest} (ref name {result.descriptor.ref_name})")
    n.fact("history", " | ".join(h.created_by or "" for h in result.image.config.history))

    n.step("check the image")
    problems = validate_layout(out)
    n.fact("validate_layout", "OK" if not problems else "; ".join(problems))
    if shutil.which("oci-image-tool"):
        checked = _run(["oci-image-tool", "validate", "--type", "image", "--ref", "name=hello:v1", str(out)])
        n.command(f"oci-image-tool validate --type image --ref name=hello:v1 {out}")
        n.output(checked.stdout + checked.stderr)
    if shutil.which("umoci") and shutil.which("runc") and os.geteuid() == 0:
        n.command(f"umoci unpack --image {out}:hello:v1 bundle && runc run cbt-demo  # process.terminal=false")
        ran = run_with_runc(out, "hello:v1", workspace, f"cbt-demo-{os.getpid()}")
        n.output(ran.stdout + ran.stderr)
        n.fact("runc exit code", ran.returncode)
    else:
        n.warn("umoci and runc (as root) are needed to run the image here; skipped")

    n.step("the new image is a base image too")
    n.command(f"python -m part3_go_style_builder from oci-layout:{out}:hello:v1")
    again = cbt_from(f"oci-layout:{out}:hello:v1", home=home)
    n.fact("working folder", again.path)
    n.fact("its Cmd", json.dumps(list(again.state().image_config.config.cmd)))

    n.step("or write an oci-archive (a plain tar of a layout)")
    archive = workspace / "hello.tar"
    n.command(f"python -m part3_go_style_builder build {workdir.id} oci-archive:{archive}:hello:v1 --layers app")
    archived = cbt_build(workdir.id, f"oci-archive:{archive}:hello:v1", ["app"], home=home)
    n.fact("archive", f"{archive} ({archive.stat().st_size} bytes), manifest {archived.descriptor.digest}")
    n.done()


# -- entry point ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None, *, runner=None, packer=None) -> int:
    """cbt. ``runner(plan, network=...)`` runs a :class:`RunPlan` and returns the command's exit
    code; ``packer`` packs a layer folder for ``build`` (see ``cbt_build``'s ``pack``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["lab"]:
        from .lab import LAB

        return lab_main(LAB, argv[1:])
    out = Narrator()
    command: list[str] = []
    if argv[:1] == ["run"] and "--" in argv:
        at = argv.index("--")
        argv, command = argv[:at], argv[at + 1:]
    try:
        args = _parser().parse_args(argv)
        if args.command in (None, "demo"):
            workspace = getattr(args, "workspace", None)
            if workspace:
                Path(workspace).mkdir(parents=True, exist_ok=True)
                demo(out, Path(workspace).resolve())
            else:
                with tempfile.TemporaryDirectory(prefix="cbt-demo-") as tmp:
                    demo(out, Path(tmp))
        elif args.command == "from":
            cmd_from(args, out)
        elif args.command == "config":
            cmd_config(args, argv, out)
        elif args.command == "build":
            cmd_build(args, out, packer)
        elif args.command == "run":
            return cmd_run(args, command, runner, out)
        elif args.command == "rm":
            cmd_rm(args, out)
        elif args.command == "version":
            out.fact(PROG, f"{VERSION} (Python {platform.python_version()}, {sys.platform}/{platform.machine()})")
        return 0
    except UsageError as e:
        print(e, file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise  # the reader went away: run_cli ends quietly
    except (CbtError, LayoutError, LayerError, OSError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1

