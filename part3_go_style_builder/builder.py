"""cbt's working folder and its three commands: ``from``, ``config``, ``build``.

::

    $CBT_HOME/<id>/             (CBT_HOME defaults to ~/.cbt)
    ├── builder.json            the builder state: base reference and the image config
    └── layers/                 one folder per layer you make; `build --layers a,b` packs them

``from REF`` makes the folder, named after the base image (see
``ImageReference.workdir_name``), and refuses one that exists. ``config ID ...`` changes the
image config kept in builder.json; only the options given change anything. ``build ID TARGET
--layers a,b`` reopens the base image, packs each ``layers/<name>`` as a layer (part 4), in
the order given, applies the config, and writes the result to TARGET. ``run ID -l root -u deps
-- CMD`` is planned here (``cbt_run_plan``: ``layers/root`` is the base image's root
filesystem), and run by the cbt command, which adds the container parts 5-7 give.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from part1_overview import field, model, replace
from part2_manual_oci import Descriptor, ImageConfig, rfc3339, write_file_atomic
from part2_manual_oci import mediatypes as mt
from part4_tar import extract_layer

from .errors import AmbiguousImage, BuildError, CbtError, ImageNotFound, InvalidReference, WorkdirError
from .image import Image, Layer, layer_from_directory, utc_now
from .reference import ImageReference, parse_reference

BUILDER_FILE = "builder.json"
LAYERS_DIR = "layers"
#: the layer folder that holds the base image's root filesystem (made by ``run``, as in the blog)
ROOT_LAYER = "root"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def cbt_home() -> Path:
    """Where working folders live: ``$CBT_HOME``, else ``~/.cbt``."""
    return Path(os.environ.get("CBT_HOME") or Path.home() / ".cbt")


def _check_id(workdir_id: str, what: str = "working folder id") -> str:
    if not _ID.match(workdir_id or ""):
        raise WorkdirError(f"invalid {what} {workdir_id!r} (letters, digits, _ . -; no /)")
    return workdir_id


@model(frozen=True)
class BuilderState:
    """What builder.json holds (cbt's field names in JSON).

    ``image_config`` is cbt's ``ociImage``: created at ``from``, the base's platform, the
    base's ``config`` copied; its diff_ids stay empty until ``build``. ``base_manifest``,
    ``config_history`` and ``run_layers`` are ours: the base manifest's digest at ``from``
    (``build`` refuses a base that changed since), the config commands run, for the image
    history, and the layer folders ``run`` used as an overlay's upper directory (their
    deletions are overlayfs whiteouts, which only a packer that translates them may pack).
    """

    from_image: str
    workdir_id: str
    image_config: ImageConfig
    base_manifest: str | None = None
    config_history: tuple[str, ...] = ()
    run_layers: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {
            "fromImage": self.from_image,
            "workDirId": self.workdir_id,
            "ociImage": self.image_config.to_json(),
            "ociManifest": {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST},
            "baseManifest": self.base_manifest,
            "configHistory": list(self.config_history),
            "runLayers": list(self.run_layers),
        }

    @classmethod
    def from_json(cls, d: Mapping, where: str) -> "BuilderState":
        try:
            return cls(
                from_image=d["fromImage"],
                workdir_id=d["workDirId"],
                image_config=ImageConfig.from_json(d["ociImage"], f"{where}: ociImage"),
                base_manifest=d.get("baseManifest"),
                config_history=tuple(d.get("configHistory") or ()),
                run_layers=tuple(d.get("runLayers") or ()),
            )
        except (KeyError, TypeError) as e:
            raise WorkdirError(f"{where}: not a cbt builder state (missing {e})") from None


@model(frozen=True)
class Workdir:
    """A working folder: ``path`` = ``$CBT_HOME/<id>``."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def builder_file(self) -> Path:
        return self.path / BUILDER_FILE

    @property
    def layers_dir(self) -> Path:
        return self.path / LAYERS_DIR

    @classmethod
    def open(cls, workdir_id: str, home: str | os.PathLike | None = None) -> "Workdir":
        home = Path(home).absolute() if home is not None else cbt_home().absolute()
        path = home / _check_id(workdir_id)
        if not (path / BUILDER_FILE).is_file():
            raise WorkdirError(f"no working folder {workdir_id!r} in {home} (make one with `from REF`)")
        return cls(path)

    def state(self) -> BuilderState:
        try:
            data = json.loads(self.builder_file.read_bytes())
        except FileNotFoundError:
            raise WorkdirError(f"{self.builder_file}: missing") from None
        except ValueError as e:
            raise WorkdirError(f"{self.builder_file}: not JSON ({e})") from None
        return BuilderState.from_json(data, str(self.builder_file))

    def save(self, state: BuilderState) -> None:
        write_file_atomic(self.builder_file, json.dumps(state.to_json(), indent=2).encode() + b"\n", mode=0o600)

    def layer_names(self) -> list[str]:
        """The layer folders made so far, sorted."""
        return sorted(p.name for p in self.layers_dir.iterdir() if p.is_dir()) if self.layers_dir.is_dir() else []


# -- from --------------------------------------------------------------------------------------


def cbt_from(ref: str | ImageReference, *, home: str | os.PathLike | None = None, name: str | None = None) -> Workdir:
    """``cbt from REF``: a new working folder for the base image ``ref``.

    The folder is named ``name`` or after the image (``ImageReference.workdir_name``); an
    existing one is never overwritten.
    """
    if isinstance(ref, str):
        ref = parse_reference(ref)
    ref = ref.absolute()  # build may run from another directory
    base = Image.load(ref)
    home = Path(home).absolute() if home is not None else cbt_home().absolute()
    workdir_id = _check_id(name, "working folder name") if name is not None else _check_id(ref.workdir_name, "working folder name")
    path = home / workdir_id
    home.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        raise WorkdirError(f"working folder {path} already exists (remove it, or choose another name with --name)") from None
    (path / LAYERS_DIR).mkdir(0o755)
    # cbt's ociImage: created now, rootfs type layers, the base's config copied. We keep the
    # base's platform rather than the host's (cbt's macOS pitfall).
    image_config = ImageConfig(
        architecture=base.config.architecture,
        os=base.config.os,
        variant=base.config.variant,
        os_version=base.config.os_version,
        config=base.config.config,
        created=utc_now(),
    )
    workdir = Workdir(path)
    workdir.save(
        BuilderState(
            from_image=str(ref),
            workdir_id=workdir_id,
            image_config=image_config,
            base_manifest=base.loaded_from.digest if base.loaded_from else None,
        )
    )
    return workdir


# -- config ------------------------------------------------------------------------------------


def command_form(text: str) -> tuple[str, ...]:
    """A ``--cmd``/``--entrypoint`` value: a JSON array of strings is the exec form, used as
    is; anything else is the shell form, ``["/bin/sh", "-c", text]`` (as Docker does)."""
    if text.lstrip().startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
    return ("/bin/sh", "-c", text)


def _key_values(items: Iterable[str], option: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise CbtError(f"{option} {item!r}: expected KEY=VALUE")
        pairs.append((key, value))
    return pairs


def _ports(values: Iterable[str]) -> dict:
    ports = {}
    for value in values:
        for port in value.split(","):
            port = port.strip()
            number, _, proto = port.partition("/")
            proto = proto or "tcp"
            if not number.isdigit() or not 0 < int(number) < 65536 or proto not in ("tcp", "udp", "sctp"):
                raise CbtError(f"--ports {port!r}: expected PORT[/tcp|udp|sctp] with PORT in 1..65535")
            ports[f"{int(number)}/{proto}"] = {}
    return ports


def config_changes(
    *,
    cmd: str | None = None,
    entrypoint: str | None = None,
    env: Sequence[str] = (),
    workingdir: str | None = None,
    user: str | None = None,
    ports: Sequence[str] = (),
    label: Sequence[str] = (),
    os_name: str | None = None,
    arch: str | None = None,
    base: ImageConfig,
) -> ImageConfig:
    """``base`` with the options of ``cbt config`` applied; options left as None/empty change
    nothing. ``--env`` replaces a variable of the same name, ``--label`` merges, ``--ports``
    replaces the exposed ports (as cbt does)."""
    inner = {}
    container = base.config
    if cmd is not None:
        inner["cmd"] = command_form(cmd) if cmd != "" else None
    if entrypoint is not None:
        inner["entrypoint"] = command_form(entrypoint) if entrypoint != "" else None
    if env:
        current = [e for e in container.env or ()]
        for key, value in _key_values(env, "--env"):
            current = [e for e in current if e.partition("=")[0] != key] + [f"{key}={value}"]
        inner["env"] = tuple(current)
    if workingdir is not None:
        inner["working_dir"] = workingdir
    if user is not None:
        inner["user"] = user
    if ports:
        inner["exposed_ports"] = _ports(ports)
    if label:
        labels = dict(container.labels or {})
        labels.update(_key_values(label, "--label"))
        inner["labels"] = labels
    top = {}
    if os_name is not None:
        top["os"] = os_name
    if arch is not None:
        top["architecture"] = arch
    return replace(base, config=replace(container, **inner), **top)


def cbt_config(workdir_id: str, *, home: str | os.PathLike | None = None, command: str | None = None, **options) -> BuilderState:
    """``cbt config ID [options]``: change the image config in builder.json.

    ``options`` are those of :func:`config_changes`; ``command`` is the command line, kept
    for the history entry ``build`` writes.
    """
    workdir = Workdir.open(workdir_id, home)
    state = workdir.state()
    new_config = config_changes(base=state.image_config, **options)
    history = state.config_history + ((command,) if command else ())
    state = replace(state, image_config=new_config, config_history=history)
    workdir.save(state)
    return state


# -- build -------------------------------------------------------------------------------------


@model(frozen=True)
class BuildResult:
    """What ``build`` wrote: the image value and its manifest descriptor in the target."""

    image: Image
    descriptor: Descriptor
    target: ImageReference
    base_layers: int
    new_layers: tuple[str, ...] = field(default=())


def _layer_dir(workdir: Workdir, name: str) -> Path:
    if not _ID.match(name):
        raise BuildError(f"invalid layer name {name!r} (a folder name under {workdir.layers_dir}: no /, not . or ..)")
    path = workdir.layers_dir / name
    if not path.is_dir() or path.is_symlink():
        raise BuildError(f"layer folder {path} not found (make it and put the layer's files in it)")
    return path


def cbt_build(
    workdir_id: str,
    target: str | ImageReference,
    layers: Sequence[str],
    *,
    home: str | os.PathLike | None = None,
    compression: str = "gzip",
    source_date_epoch: int | None = None,
    pack: Callable[..., Layer] | None = None,
) -> BuildResult:
    """``cbt build ID TARGET --layers a,b``: base layers, then ``layers/a``, ``layers/b``,
    then the config of builder.json, written to TARGET (an OCI layout or an oci-archive).

    ``pack(folder, out_dir, compression=..., source_date_epoch=...)`` makes each layer (default:
    ``layer_from_directory``, part 4); folders ``run`` wrote into need one that translates
    overlayfs's whiteouts (the cbt command passes part 7's)."""
    if isinstance(target, str):
        target = parse_reference(target)
    if not layers:
        raise BuildError("layers must be specified (--layers NAME[,NAME...])")
    if len(set(layers)) != len(layers):
        raise BuildError(f"a layer is named twice in --layers {','.join(layers)}")
    if ROOT_LAYER in layers:
        raise BuildError(f"layers/{ROOT_LAYER} is the base image's root filesystem (run made it): its files are in the base layers already")
    workdir = Workdir.open(workdir_id, home)
    state = workdir.state()
    dirs = [_layer_dir(workdir, name) for name in layers]
    if pack is None:
        ran = [name for name in layers if name in state.run_layers]
        if ran:
            raise BuildError(
                f"layers/{ran[0]} was the upper layer of `cbt run`: overlayfs wrote its deletions there as devices, "
                "which only the cbt command (python -m capstone.cbt) translates into a layer (part 7)"
            )
    pack = pack or layer_from_directory
    try:
        base_ref = parse_reference(state.from_image)
    except InvalidReference as e:
        raise WorkdirError(f"{workdir.builder_file}: fromImage: {e}") from None
    try:
        base = Image.load(base_ref)
    except AmbiguousImage:
        if state.base_manifest is None:
            raise
        # the layout holds more images than at `from` (built into it since): take the one
        # `from` chose; a base that was replaced is not found, and the error says so
        try:
            base = Image.load(base_ref, manifest_digest=state.base_manifest)
        except ImageNotFound:
            raise BuildError(
                f"base image {state.from_image} changed since `from`: it now holds several images and none is "
                f"manifest {state.base_manifest}; make a new working folder with `from`"
            ) from None
    if state.base_manifest and base.loaded_from is not None and base.loaded_from.digest != state.base_manifest:
        raise BuildError(
            f"base image {state.from_image} changed since `from` (manifest {state.base_manifest} is now "
            f"{base.loaded_from.digest}); make a new working folder with `from`"
        )
    created = rfc3339(source_date_epoch) if source_date_epoch is not None else None
    image = base
    with tempfile.TemporaryDirectory(prefix=".build-", dir=workdir.path) as tmp:
        for name, layer_dir in zip(layers, dirs):
            layer = pack(layer_dir, tmp, compression=compression, source_date_epoch=source_date_epoch)
            image = image.append_layer(layer, created_by=f"cbt build --layers {name}: COPY layers/{name}/ /", created=created)
        wanted = state.image_config
        changes = {}
        if wanted.config != image.config.config:
            changes["config"] = wanted.config
        for key in ("os", "architecture", "variant", "os_version"):
            if getattr(wanted, key) != getattr(image.config, key):
                changes[key] = getattr(wanted, key)
        if changes:
            created_by = "; ".join(state.config_history) or "cbt config"
            image = image.with_config(created_by=created_by, created=created, **changes)
        descriptor = image.write(target)
    return BuildResult(image, descriptor, target, len(base.layers), tuple(layers))


# -- run -----------------------------------------------------------------------------------------


@model(frozen=True)
class RunPlan:
    """What ``cbt run`` runs, with every path checked: the layer folders as overlay lower
    directories (top first, as overlayfs lists them), the upper folder that receives the
    changes, the command, and the image's Env, WorkingDir and User from builder.json."""

    workdir: Workdir
    lowers: tuple[Path, ...]
    upper: Path
    argv: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    user: str


def materialize_root(workdir: Workdir, state: BuilderState | None = None) -> Path:
    """``layers/root``: the base image's root filesystem, its layers applied in order (whiteouts
    too, part 4). Made once, into a temporary folder renamed when complete."""
    root = workdir.layers_dir / ROOT_LAYER
    if root.is_dir():
        return root
    state = state or workdir.state()
    try:
        ref = parse_reference(state.from_image)
    except InvalidReference as e:
        raise WorkdirError(f"{workdir.builder_file}: fromImage: {e}") from None
    try:
        base = Image.load(ref, manifest_digest=state.base_manifest) if state.base_manifest else Image.load(ref)
    except ImageNotFound as e:
        raise BuildError(f"base image {state.from_image} changed since `from` ({e}); make a new working folder with `from`") from None
    with tempfile.TemporaryDirectory(prefix=".root-", dir=workdir.path) as tmp:
        target = Path(tmp) / ROOT_LAYER
        target.mkdir(0o755)
        for layer in base.layers:
            with layer.open() as blob:
                extract_layer(blob, target)
        os.rename(target, root)
    return root


def cbt_run_plan(
    workdir_id: str,
    lowers: Sequence[str],
    upper: str,
    argv: Sequence[str],
    *,
    home: str | os.PathLike | None = None,
) -> RunPlan:
    """``cbt run ID -l root,deps -u app -- CMD``: the lower layer folders (bottom first, as
    given; ``root`` is the base image, made by :func:`materialize_root` the first time), the
    upper folder (made if missing, and noted in builder.json: ``build`` must translate its
    whiteouts), and the command with the image's config. Part 3 plans; running needs a
    container (parts 5-7), which the cbt command adds."""
    if not argv:
        raise CbtError("a command must be specified after --")
    if not lowers:
        raise CbtError("lower layers must be specified (-l root[,NAME...])")
    for name in (*lowers, upper):
        _check_id(name, "layer name")
    if len(set(lowers)) != len(lowers):
        raise CbtError(f"a layer is named twice in -l {','.join(lowers)}")
    if upper == ROOT_LAYER:
        raise CbtError(f"layers/{ROOT_LAYER} is the base image: it cannot be the upper layer")
    if upper in lowers:
        raise CbtError(f"the upper layer {upper!r} cannot be a lower layer too")
    workdir = Workdir.open(workdir_id, home)
    state = workdir.state()
    dirs = [materialize_root(workdir, state) if name == ROOT_LAYER else _layer_dir(workdir, name) for name in lowers]
    upper_dir = workdir.layers_dir / upper
    if upper_dir.is_symlink() or (upper_dir.exists() and not upper_dir.is_dir()):
        raise CbtError(f"{upper_dir}: not a layer folder")
    upper_dir.mkdir(0o755, exist_ok=True)
    if upper not in state.run_layers:
        state = replace(state, run_layers=state.run_layers + (upper,))
        workdir.save(state)
    config = state.image_config.config
    return RunPlan(
        workdir=workdir,
        lowers=tuple(reversed(dirs)),
        upper=upper_dir,
        argv=tuple(argv),
        env=tuple(config.env or ()),
        cwd=config.working_dir or "/",
        user=config.user or "0",
    )


def remove_workdir(workdir_id: str, *, home: str | os.PathLike | None = None) -> Path:
    """``cbt rm ID`` (ours: cbt has none): delete a working folder."""
    workdir = Workdir.open(workdir_id, home)
    shutil.rmtree(workdir.path)
    return workdir.path


def shell_join(argv: Sequence[str]) -> str:
    """A command line as one string, quoted for a shell (for history entries)."""
    return " ".join(shlex.quote(a) for a in argv)
