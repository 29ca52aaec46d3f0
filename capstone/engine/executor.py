"""The build: every planned stage, step by step, each step a new image value.

::

    plan (stages --target needs)
      for each stage:  FROM  -> part 3 Image (store / stage / oci-layout: / registry / scratch)
                       step  -> cache key -> hit: the recorded image | miss: run the step
      target image     -> store.commit(image, tags) -> --output exports, --iidfile

A step never changes the image it starts from (part 3 images are values): a failure at any
point leaves the store's names as they were. Scratch space (overlay upper/work dirs, staged
files, snapshots being made) lives in ``STORE/tmp/build-<id>/``, leased by the build's process
(``Store.lease``): removed when the build ends, and by the next build's ``Store.sweep`` or by
``prune`` when the process was killed. A RUN's overlay lives in a private mount namespace of
the step (``capstone.runner.Container``) and goes with it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from part1_overview import CourseError, asdict, fields, is_model, model, replace
from part2_manual_oci import (
    DigestError,
    Platform,
    PlatformError,
    format_platform,
    host_platform,
    parse_digest,
    parse_platform,
    parse_platforms,
    platform_compatible,
    rfc3339,
)
from part2_manual_oci import mediatypes as mt
from part3_go_style_builder import Image

from ..context import load_ignore
from ..dockerfile import (
    Add,
    Arg,
    Copy,
    Dockerfile,
    From,
    Instruction,
    Run,
    StageVariables,
    Workdir,
    parse_instructions,
)
from ..errors import BuildArgError, CapstoneError, DockerfileError
from ..refs import has_transport, parse_name
from ..transferview import TransferProgress
from .cachekeys import base_key, cache_lookup, cache_record, make_key
from .contenthash import FileDigests, entry_line, selection_digest
from .copystep import (
    CopyError,
    CopyPlan,
    check_entry_name,
    made_time,
    materialize,
    plan_copy,
    select_sources,
    sources_digest,
    write_copy,
)
from .errors import BuildError, StepError, StepFailure
from .layers import write_blob, write_entries_layer
from .metadata import CONFIG_INSTRUCTIONS, HISTORY_COMMENT, MAX_CONFIG_SIZE, ConfigState, ConfigTooLarge, record_config
from .owners import parse_chown
from .plan import BuildPlan, PlannedStage, make_plan, read_dockerfile
from .progress import Progress
from .rootfs import RootfsView, split_path
from .runstep import (
    NETWORKS,
    SCRIPT_PATH,
    RunSetupError,
    check_entitlements,
    insecure_fields,
    open_own,
    parse_entitlements,
    plan_mounts,
    run_argv,
)
from .schedule import build_stages, die_with_parent
from .sharedcache import CacheSource, CacheSpec, SharedCache, export_cache, parse_cache_spec
from .sources import ContextSource, ImageSource
from .stepimage import StepImage, StoredImage, step_image

if TYPE_CHECKING:
    from ..store import BuildStore
    from .gitsource import ResolvedGit
    from .outputs import OutputSpec

COMPRESSION = "gzip"
SCRATCH = "scratch"
#: a COPY/ADD or a download this big shows its progress (smaller ones would only be noise)
LARGE_TRANSFER = 64 << 20
#: a COPY/ADD this big (entries, or bytes) makes its snapshot in a child process meanwhile
#: instructions that change only the config: they never read the image's files
CONFIG_ONLY = frozenset({"ARG", "CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "MAINTAINER",
                         "ONBUILD", "SHELL", "STOPSIGNAL", "VOLUME"})
PARALLEL_SNAPSHOT_ENTRIES = 1000
PARALLEL_SNAPSHOT_BYTES = 64 << 20


@model(frozen=True)
class StepResult:
    """What one step did: its number, stage, instruction text, whether the cache answered,
    the layer it added (digest, diff_id, size) if any, and how long it took."""

    number: int
    stage: str
    line: int
    instruction: str
    kind: str
    cached: bool | None
    layer_digest: str | None = None
    diff_id: str | None = None
    layer_size: int | None = None
    seconds: float = 0.0


@model(frozen=True)
class BuildResult:
    """The built image: ``image_id`` (``sha256:`` + config digest, docker's image id),
    ``digest`` (the manifest's), the ``names`` it was tagged with (normalized), warnings, and
    the steps."""

    image_id: str
    digest: str
    names: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    steps: tuple[StepResult, ...] = ()

    @property
    def cache_hits(self) -> int:
        return sum(1 for s in self.steps if s.cached)

    @property
    def ran(self) -> tuple[StepResult, ...]:
        """The steps that were executed (not answered by the cache)."""
        return tuple(s for s in self.steps if s.cached is False)


class _Stage:
    """The state of a stage while it is built.

    ``image`` is the stage's image so far, as a part 3 value; ``current`` is the same image as
    a step reads it (a :class:`~.stepimage.StepImage`): a cache hit's stays a stored image, read
    as JSON, until a step needs the value. Config instructions only record their changes in
    ``config`` (a :class:`~.metadata.ConfigState`); reading ``image`` or ``current`` makes the
    image with them first, and setting it (a cache hit, which has them) forgets them.
    """

    def __init__(self, planned: PlannedStage, image: Image | StepImage, variables: StageVariables, key: str,
                 base_label: str) -> None:
        self.planned = planned
        self._step = step_image(image)
        self.variables = variables
        self.config = ConfigState(self._step)
        self.key = key
        self.base_label = base_label
        self.digest = ""

    @property
    def image(self) -> Image:
        return self.current.image

    @image.setter
    def image(self, value: Image | StepImage) -> None:
        self.config.discard()
        self._step = step_image(value)

    @property
    def current(self) -> StepImage:
        if self.config.pending:
            self._step = step_image(self.config.apply(self._step.image))
        return self._step

    def record(self, ins: Instruction, created: str) -> None:
        """Record the change of a config instruction (see :func:`~.metadata.record_config`)."""
        record_config(self._step, ins, self.config, created=created)


def _image_digest(image: Image) -> str:
    return image.loaded_from.digest if image.loaded_from is not None else image.digest


def _normalized(name: str) -> str | None:
    from ..refs import InvalidName, normalize

    try:
        return normalize(name)
    except InvalidName:
        return None


def _fingerprint(ins: Instruction) -> dict:
    """The expanded instruction, minus where it is written (moving a line keeps the cache)."""
    out = {"keyword": ins.keyword, "flags": list(ins.flags)}
    for f in fields(ins):
        if f.name in ("location", "original", "flags"):
            continue
        value = getattr(ins, f.name)
        if is_model(value):
            value = asdict(value)
        elif isinstance(value, tuple):
            value = [asdict(v) if is_model(v) else v for v in value]
        out[f.name] = value
    return out


def _bind_script(mounts, scratch: Path, script: str) -> None:
    """A RUN heredoc's script, as a read-only file at ``SCRIPT_PATH`` in the container; its
    digest goes into the step's key with the mounts."""
    script_file = scratch / "script"
    script_file.write_text(script)
    os.chmod(script_file, 0o755)
    mounts.bind(SCRIPT_PATH, mounts.hold(open_own(script_file)), ("rbind", "ro"))
    mounts.key.append({"script": hashlib.sha256(script.encode()).hexdigest()})


def _stop_snapshot(signum, frame):  # in a snapshot child: unwind, remove the directory, exit
    raise SystemExit(1)


def _short_text(ins: Instruction) -> str:
    text = " ".join(ins.original.split("\n")[0].split())
    return text if len(text) <= 200 else text[:197] + "..."


def _from_text(from_: From) -> str:
    """A FROM line as it is built: the image and ``--platform`` with the meta args expanded
    (``FROM ${BASE} AS base`` shows ``FROM busybox:1.36 AS base``, as BuildKit's step names do)."""
    platform = f"--platform={from_.platform} " if from_.platform else ""
    text = " ".join(f"FROM {platform}{from_.image}".split())
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{text} AS {from_.stage_name}" if from_.stage_name else text


class Builder:
    """One build (see :func:`build` for the arguments)."""

    def __init__(self, store: BuildStore, context_dir: Path, dockerfile: Dockerfile, plan: BuildPlan, *,
                 no_cache: bool, network: str, progress: Progress, run_output, labels: Mapping[str, str],
                 dockerfile_path: Path, secrets=None, allow: frozenset[str] = frozenset(),
                 pull: str = "missing", registry=None, transfers: TransferProgress | None = None,
                 shared: SharedCache | None = None) -> None:
        self.store = store
        #: ``--pull``: ``missing`` (the default), ``always`` or ``never``
        self.pull = pull
        #: the command line's registry flags (a RegistryOptions, or None: the defaults)
        self.registry = registry
        #: where pulls, downloads and large COPYs show their progress
        self.transfers = transfers or TransferProgress()
        #: --cache-from sources and the entries for --cache-to
        self.shared = shared or SharedCache()
        self._step_text = ""
        self.context_dir = context_dir
        self.dockerfile = dockerfile
        self.plan = plan
        self.no_cache = no_cache
        self.network = network
        self.progress = progress
        self.run_output = run_output
        self.labels = dict(labels)
        self.file = dockerfile.file
        self.context = ContextSource(context_dir, load_ignore(context_dir, dockerfile_path))
        self.stages: dict[int, _Stage] = {}
        self.steps: list[StepResult] = []
        self.scratch: Path | None = None
        self._views: dict[tuple, RootfsView] = {}
        self._counter = 0
        self.source_date_epoch = plan.source_date_epoch
        self._digest_key = "contenthash:" + hashlib.sha256(os.fsencode(context_dir)).hexdigest()
        self.digests = FileDigests(store.cache_open(self._digest_key))
        #: COPY/ADD layers made by this build: diff_id -> plan (to make their snapshots by copy)
        self._copy_plans: dict[str, CopyPlan] = {}
        #: COPY/ADD snapshots being made by a child process: diff_id -> (pid, directory)
        self._snapshot_jobs: dict[str, tuple[int, Path]] = {}
        self._stopped_snapshots: list[tuple[int, Path]] = []
        #: the blobs of those COPY/ADD layers: diff_id -> descriptor
        self._copy_layers: dict = {}
        #: ``--secret`` / ``--ssh`` (a :class:`~.secretmounts.BuildSecrets`, or None)
        self.secrets = secrets
        #: the entitlements granted on the command line (``--allow network.host``)
        self.allow = allow
        #: layer blobs found in the store by this build's cache hits and bases (not looked for again)
        self._layers_seen: set[str] = set()

    # -- helpers -----------------------------------------------------------------------------
    def now(self) -> str:
        if self.source_date_epoch is not None:
            return rfc3339(self.source_date_epoch)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}Z"

    def lowers(self, image: Image) -> list[Path]:
        """The image's layers as overlay lower dirs (top first), made now where missing: a
        COPY layer of this build from its files, a RUN layer is its kept upper dir, any other
        is extracted by the store."""
        for layer in image.layers:
            pending = self._snapshot_jobs.pop(layer.diff_id, None)
            if pending is not None and self._finish_snapshot(layer.diff_id, pending):
                self._copy_plans.pop(layer.diff_id, None)
                continue
            plan = self._copy_plans.pop(layer.diff_id, None)
            if plan is not None and not self.store.has_snapshot(layer.diff_id):
                tmp = self.scratch / f"snapshot-{os.urandom(6).hex()}"  # leased with the build
                try:
                    materialize(plan, tmp, source_date_epoch=self.source_date_epoch)
                    self._adopt_snapshot(layer.diff_id, tmp, layer.descriptor)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
        self.shared.complete(image)  # a --cache-from hit's layers come when its files are read
        return self.store.lowers(image) if image.layers else []

    def _write_copy_layer(self, plan: CopyPlan, staging: Path, view: RootfsView, *, read_later: bool = True):
        """The layer of a COPY/ADD; a big one gets its snapshot made at the same time by a
        child process (the files are copied on the second core while this one tars and
        compresses them), so a RUN after it finds its lower dir ready. ``read_later`` False:
        no step of this build reads the image's files after this one (see :meth:`_read_later`),
        so none is made (a later build that needs it extracts the layer)."""
        job = self._fork_snapshot(plan) if read_later else None
        shown = plan.bytes >= LARGE_TRANSFER  # a large one shows its progress
        key = f"copy {self._counter} {self._step_text}"
        if shown:
            self.transfers.begin(key, f"files of {self._step_text[:60]}", plan.bytes)
        try:
            layer = write_entries_layer(self.store, lambda w: write_copy(plan, w, staging / "stage", view),
                                        compression=COMPRESSION, source_date_epoch=self.source_date_epoch,
                                        tmp_dir=self.scratch,
                                        meter=(lambda n: self.transfers.advance(key, n)) if shown else None)
        except BaseException:
            if shown:
                self.transfers.end(key, "failed")
            if job is not None:
                self._finish_snapshot("", job, keep=False)
            raise
        if shown:
            self.transfers.end(key, "done")
        if job is not None:
            if layer.diff_id in self._snapshot_jobs or self.store.has_snapshot(layer.diff_id):
                self._finish_snapshot(layer.diff_id, job, keep=False)
            else:
                self._snapshot_jobs[layer.diff_id] = job
        self._copy_plans[layer.diff_id] = plan
        self._copy_layers[layer.diff_id] = layer.descriptor
        return layer

    def _read_later(self, stage: _Stage, raw: Instruction) -> bool:
        """Whether a step of this build may read the files of ``stage``'s image after ``raw``:
        a later instruction of the stage other than a config change, or another stage that
        needs this one (FROM, COPY --from, RUN --mount from=). A big COPY's snapshot made for
        nothing doubled what a COPY as the last step wrote to disk (512 MiB for bigfile)."""
        planned = stage.planned
        if any(planned.index in self.plan.graph.nodes[s.index].dependencies
               for s in self.plan.stages if s.index != planned.index):
            return True
        later = [i for i, ins in enumerate(planned.instructions) if ins is raw]
        if not later:
            return True  # an ONBUILD trigger: the stage's own instructions all come after it
        return any(ins.keyword not in CONFIG_ONLY for ins in planned.instructions[later[0] + 1:])

    def _fork_snapshot(self, plan: CopyPlan) -> tuple[int, Path] | None:
        """Start :func:`materialize` of ``plan`` in a child process: (pid, directory), or None
        when the copy is small (a fork costs more than it saves) or forking is unsafe here."""
        if len(plan) < PARALLEL_SNAPSHOT_ENTRIES and plan.bytes < PARALLEL_SNAPSHOT_BYTES:
            return None
        if self.secrets is not None or plan.archives or (os.cpu_count() or 1) < 2:
            return None  # a relay thread runs (no fork), an archive to unpack, or one core
        import signal  # a build that forks a snapshot child, not a cached one

        tmp = self.scratch / f"snapshot-{os.urandom(6).hex()}"  # leased with the build
        parent = os.getpid()
        try:
            pid = os.fork()
        except OSError:
            return None
        if pid == 0:  # the child: make the directory, report by exit status only
            code = 1
            try:
                signal.signal(signal.SIGTERM, _stop_snapshot)
                signal.signal(signal.SIGINT, _stop_snapshot)
                if not die_with_parent(parent):  # a killed builder's copy would keep its scratch dir leased
                    raise SystemExit(1)
                materialize(plan, tmp, source_date_epoch=self.source_date_epoch)
                code = 0
            except BaseException:  # noqa: BLE001 - stopped, or failed: the parent falls back
                shutil.rmtree(tmp, ignore_errors=True)
            finally:
                os._exit(code)
        return pid, tmp

    def _finish_snapshot(self, diff_id: str, job: tuple[int, Path], *, keep: bool = True) -> bool:
        """Collect a snapshot child. ``keep``: wait for it and adopt its directory as the
        snapshot of ``diff_id`` (when it succeeded; else the store extracts the layer when it
        is needed). Not ``keep``: stop it; it removes what it made, and is reaped (and its
        leftovers removed) when the build ends. Whether the snapshot is in place."""
        pid, tmp = job
        if not keep:
            import signal

            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self._stopped_snapshots.append(job)
            return False
        _, status = os.waitpid(pid, 0)
        try:
            if os.waitstatus_to_exitcode(status) == 0 and not self.store.has_snapshot(diff_id):
                self._adopt_snapshot(diff_id, tmp, self._copy_layers.get(diff_id))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self.store.has_snapshot(diff_id)

    def _reap_snapshots(self) -> None:
        """At the end of the build: wait for every snapshot child (adopting what finished)."""
        for diff_id, job in list(self._snapshot_jobs.items()):
            self._finish_snapshot(diff_id, job)
        self._snapshot_jobs.clear()
        for pid, tmp in self._stopped_snapshots:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            shutil.rmtree(tmp, ignore_errors=True)
        self._stopped_snapshots.clear()

    def view(self, image: Image) -> RootfsView:
        key = tuple(layer.diff_id for layer in image.layers)
        found = self._views.get(key)
        if found is None:
            found = self._views[key] = RootfsView(self.lowers(image))
        return found

    def fail(self, ins: Instruction, message: str) -> StepError:
        return StepError(message, file=self.file, line=ins.location.start, end_line=ins.location.end)

    def temp(self, name: str) -> Path:
        self._counter += 1
        path = self.scratch / f"{self._counter}-{name}"
        path.mkdir(parents=True)
        return path

    # -- the build -----------------------------------------------------------------------------
    def run(self) -> StepImage:
        # what builds killed before us left (their scratch dirs, mounts below them) goes first;
        # ours is leased for as long as this process lives, so the next build can tell
        self.store.sweep()
        with self.store.lease(self.store.tmp_dir, f"build-{os.urandom(8).hex()}") as scratch:
            self.scratch = scratch
            self.digests.spill_dir = scratch  # a big context's fresh rows wait on disk, not in memory
            try:
                build_stages(self, self.build_stage)  # independent stages at the same time
                final = self.stages[self.plan.target].current
                if self.shared.sources:
                    self.shared.complete(final.image)  # the result is stored whole
                return final
            finally:
                self._reap_snapshots()
                self._save_digests()

    def _save_digests(self) -> None:
        """The file digests for the next build: the old table merged with this build's rows
        (none of a file in the scratch directory, none a walk no longer sees), streamed into
        the store's cache."""
        try:
            if self.digests.changed or self.digests.prunable:
                with self.store.cache_write(self._digest_key) as f:
                    self.digests.write(f, leave_out=str(self.scratch))
        except (OSError, ValueError):
            pass  # only a speed-up: the next build hashes again (a failed write is no error)
        finally:
            self.digests.close()

    def total(self) -> int:
        return self.plan.total_steps

    def build_stage(self, pos: int, planned: PlannedStage) -> None:
        t0 = time.monotonic()
        number = planned.first_step
        self.progress.step(pos, number, self.total(), _from_text(planned.from_))
        base, key, label, base_vars = self.resolve_base(planned)
        variables = self.plan.variables.stage(image_env=base.container.env or (), base=base_vars)
        stage = _Stage(planned, base, variables, key, label)
        self.stages[planned.index] = stage
        self.steps.append(StepResult(number, planned.name, planned.from_.line, _from_text(planned.from_),
                                     "FROM", None, seconds=time.monotonic() - t0))
        self.progress.explain("FROM", hit=None, detail=f"base {label} ({base.layer_count} layers)")
        # the base's ONBUILD triggers run first, as if written right after FROM, and are then
        # cleared: grandchildren do not run them again (Docker's rule). A stage of this
        # Dockerfile as the base counts as its image would (BuildKit, moby/buildkit#5490).
        triggers = list(base.container.on_build or ())
        if triggers:
            image = base.image
            cfg = image.config
            stage.image = Image(replace(cfg, config=replace(cfg.config, on_build=None)), image.layers)
            for n, text in enumerate(triggers, 1):
                ins = self._trigger(text, planned, label)
                self.progress.step(pos, number, self.total(), f"ONBUILD {_short_text(ins)}")
                self.step(stage, pos, number, ins, last=n == len(triggers) and not planned.instructions)
        for i, ins in enumerate(planned.instructions):
            number += 1
            self.progress.step(pos, number, self.total(), _short_text(ins))
            self.step(stage, pos, number, ins, last=i == len(planned.instructions) - 1)
        if planned.index == self.plan.target and self.labels:
            cfg = stage.image.config
            labels = {**(cfg.config.labels or {}), **self.labels}
            stage.image = Image(replace(cfg, config=replace(cfg.config, labels=labels)), stage.image.layers)
        stage.digest = stage.current.digest

    def _trigger(self, text: str, planned: PlannedStage, label: str) -> Instruction:
        """One ONBUILD trigger of the base, parsed as an instruction of this stage: it runs with
        this stage's variables and build context, and its errors name the FROM line."""
        def fail(why: str) -> StepError:
            shown = " ".join(text.split("\n")[0].split())
            return self.fail(planned.from_, f"ONBUILD trigger \"{shown[:120]}\" of {label}: {why}")

        try:
            found = parse_instructions(text.encode(), file=self.file)
        except DockerfileError as e:
            raise fail(e.message) from None
        if len(found) != 1:  # BuildKit: "onbuild trigger should be a single expression"
            raise fail("a trigger is a single instruction")
        ins = found[0]
        if isinstance(ins, From):
            raise fail("FROM isn't allowed as an ONBUILD trigger")
        return replace(ins, location=planned.from_.location)

    @property
    def target_platform(self) -> Platform:
        """The platform this build makes its image for (``--platform``, else this host's)."""
        return self.plan.platform or host_platform()

    def resolve_base(self, planned: PlannedStage) -> tuple[StepImage, str, str, StageVariables | None]:
        """The base image of a stage, the key its steps start from, a label, and (for a stage
        built on a stage) that stage's variables."""
        name = planned.from_.image
        if planned.base_stage is not None:
            base = self.stages[planned.base_stage]
            return base.current, make_key(base.key, "FROM-stage"), f"stage {base.planned.name}", base.variables
        want = parse_platform(planned.from_.platform) if planned.from_.platform else self.target_platform
        shown = format_platform(want)
        if name.lower() == SCRATCH:
            return step_image(Image.scratch(platform=want)), base_key("scratch", shown), "scratch", None
        image = self.load_image(name, planned.from_, want)
        have = image.platform
        if not platform_compatible(want, have):
            # BuildKit's InvalidBaseImagePlatform check: a warning, the build goes on
            self.progress.warning(f"{self.file}:{planned.from_.line}: warning: base image {name} was pulled with "
                                  f"platform \"{format_platform(have)}\", expected \"{shown}\" for current build "
                                  "(InvalidBaseImagePlatform)")
        return image, base_key(image.digest, shown), name, None

    def _stored(self, name: str, platform: Platform) -> StepImage:
        """The store's image ``name`` for ``platform``; a manifest the name stands for is read
        as a :class:`~.stepimage.StoredImage` (ImageNotFound when there is none)."""
        from ..store import ImageNotFound

        desc = self.store.resolve(name)
        if desc is None:
            raise ImageNotFound(f"no image {name!r} in the store")
        if desc.media_type in mt.MANIFEST_TYPES:
            return StoredImage.open(self.store, desc.digest, self._layers_seen)
        return step_image(self.store.load(name, platform))  # an index: its image for the platform

    def load_image(self, name: str, where: Instruction, platform: Platform | None = None) -> StepImage:
        """An image by name for ``platform`` (default: the build's): ``oci-layout:`` /
        ``oci-archive:`` / ``docker-archive:`` references, else the store and a registry as
        ``--pull`` says (``missing``: the store's image when it is there for the platform,
        else a pull; ``always``: a pull, so a moved tag is seen; ``never``: the store only)."""
        store = self.store
        want = platform or self.target_platform
        try:
            if has_transport(name):
                image = store.load_archive(name, want)
                desc = store.commit(image, [])
                return step_image(store.load(desc.digest))
            from ..store import EMBEDDED_BUSYBOX, ImageNotFound

            embedded = _normalized(name) == EMBEDDED_BUSYBOX  # made here from busybox-static: in no registry
            local = None
            if self.pull != "always" or embedded:
                try:
                    local = self._stored(name, want)
                except ImageNotFound:
                    local = None
            if local is not None and platform_compatible(want, local.platform):
                return local
            if self.pull == "never" or embedded:
                found = "is not in the store" if local is None else \
                    f"in the store is {format_platform(local.platform)}, not {format_platform(want)}"
                why = " (--pull=never)" if self.pull == "never" else " (it is made from this host's busybox-static)"
                raise self.fail(where, f"{where.keyword} {name}: the image {found}{why}")
            try:
                from ..registry import pull
            except ImportError:
                raise self.fail(where, f"image {name} is not in the store and registry pulls are "
                                       "not available") from None
            desc = pull(store, name, platform=want, options=self.registry, on_progress=self.transfers)
            return step_image(store.load(desc.digest))
        except DockerfileError:
            raise
        except (CourseError, OSError) as e:  # the store's, a registry's, a bad layout or archive
            raise self.fail(where, f"{where.keyword} {name}: {e}") from e

    # -- one step ----------------------------------------------------------------------------
    def step(self, stage: _Stage, pos: int, number: int, ins: Instruction, *, last: bool) -> None:
        t0 = time.monotonic()
        self._step_text = _short_text(ins)
        expanded = stage.variables.apply(ins)  # DockerfileError with the line on a bad expression
        kind = ins.keyword
        cached: bool | None = None
        layer = None
        try:
            if isinstance(expanded, Arg):
                stage.key = make_key(stage.key, "ARG", ins=_fingerprint(expanded))
                self.progress.explain("ARG", hit=None, detail="declared: " + ", ".join(
                    f"{d.name}={d.default}" if d.default is not None else d.name for d in expanded.args))
            elif isinstance(expanded, CONFIG_INSTRUCTIONS):
                stage.key = make_key(stage.key, kind, ins=_fingerprint(expanded))
                stage.record(expanded, self.now())
                cached, _ = self._maybe_cache_end(stage, last)
                self.progress.explain("CONFIG", hit=cached)
            elif isinstance(expanded, Workdir):
                cached, layer = self.workdir(stage, expanded, last)
            elif isinstance(expanded, (Copy, Add)):
                cached, layer = self.copy(stage, ins, expanded, last)
            elif isinstance(expanded, Run):
                cached, layer = self.run_step(stage, ins, expanded, last)
            else:
                raise self.fail(ins, f"{kind} is not supported here")
        except StepFailure as e:  # the step's own reasons: the message says it all
            raise self.fail(ins, str(e)) from e
        except DockerfileError:
            raise
        except CourseError as e:  # the parts' and the store's: a layer or an archive part 4 cannot write, ...
            raise self.fail(ins, f"{kind}: {e}") from e
        except OSError as e:
            raise self.fail(ins, f"{kind}: {e.strerror or e}: {e.filename or ''}".rstrip(": ")) from e
        if cached:
            self.progress.cached(stage.current.image_id)
        elif kind in ("RUN", "COPY", "ADD", "WORKDIR") or last:
            self.progress.produced(stage.current.image_id)
        self.steps.append(StepResult(
            number, stage.planned.name, ins.location.start, _short_text(ins), kind, cached,
            layer.descriptor.digest if layer else None, layer.diff_id if layer else None,
            layer.descriptor.size if layer else None, time.monotonic() - t0))

    def _lookup(self, stage: _Stage, key: str) -> StepImage | None:
        """The image recorded for ``key``: in the store's cache, else in a ``--cache-from``
        (brought into the store); noted for ``--cache-to``."""
        if self.no_cache:
            return None
        hit = cache_lookup(self.store, key, self._layers_seen)
        if hit is None:
            shared = self.shared.lookup(key)
            hit = step_image(shared) if shared is not None else None
        if hit is not None and hit.stored is not None:
            self.shared.add(key, hit.stored, self._step_text, stage.planned.index == self.plan.target)
        return hit

    def _record(self, stage: _Stage, key: str) -> None:
        size = stage.image.config_descriptor.size
        if size > MAX_CONFIG_SIZE:  # config steps are refused before; this is a layer step's entry
            raise ConfigTooLarge(f"the image config would be {size} bytes, more than {MAX_CONFIG_SIZE} (the limit "
                                 "registries and clients such as podman and skopeo apply)")
        desc = cache_record(self.store, key, stage.image)
        stage.image = replace(stage.image, loaded_from=desc)
        self.shared.add(key, desc, self._step_text, stage.planned.index == self.plan.target)

    def _maybe_cache_end(self, stage: _Stage, last: bool):
        """Config-only steps are cached only at the end of a stage: the final image keeps its
        id on a rebuild, and intermediate config steps cost no store writes."""
        if not last:
            return None, None
        hit = self._lookup(stage, stage.key)
        if hit is not None:
            stage.image = hit
            return True, None
        self._record(stage, stage.key)
        return False, None

    def _layer_step(self, stage: _Stage, key: str, make: Callable[[], tuple], kind: str, detail: str = ""):
        """Look ``key`` up; on a miss ``make()`` -> (layer or None, created_by, detail[, config
        changes]) and the image gets the layer (or an empty_layer history entry when nothing
        changed) and the config changes, then is recorded under ``key``."""
        stage.key = key
        hit = self._lookup(stage, key)
        if hit is not None:
            stage.image = hit
            top = hit.top_layer
            self.progress.explain(kind, hit=True, layer=top, detail=detail)
            return True, top
        layer, created_by, extra, *rest = make()
        created = self.now()
        if layer is not None:
            image = stage.image.append_layer(layer, created_by=created_by, comment=HISTORY_COMMENT,
                                             created=created)
        else:
            image = stage.image.with_config(created_by=created_by, comment=HISTORY_COMMENT, created=created)
        if rest and rest[0]:
            image = Image(replace(image.config, config=replace(image.config.config, **rest[0])), image.layers)
        stage.image = image
        self._record(stage, key)
        self.progress.explain(kind, hit=False, layer=layer, detail=extra or detail)
        return False, layer

    # -- WORKDIR -------------------------------------------------------------------------------
    def workdir(self, stage: _Stage, ins: Workdir, last: bool):
        """WORKDIR sets the config's WorkingDir and, as BuildKit does, creates the directory
        (owned by USER when one is set): a layer when it is missing, none when it exists."""
        cfg = stage.current.container
        current = cfg.working_dir or "/"
        path = os.path.normpath(os.path.join(current, ins.path or "."))
        path = "/" + path.lstrip("/")
        user = cfg.user or ""
        key = make_key(stage.key, "WORKDIR", path=path, user=user)
        created_by = f"WORKDIR {path}"

        def make():
            view = self.view(stage.image)
            if path == "/" or view.is_dir(path):
                return None, created_by, "the directory exists: no layer", {"working_dir": path}
            # a USER the image cannot resolve fails the step, as BuildKit's mkdir does ("unable
            # to find user X: no matching entries in passwd file"), rather than making root's
            uid, gid = parse_chown(user, view.read_text) if user else (0, 0)
            resolved, _ = view.resolve(path)
            parts = split_path(resolved)
            staging = self.temp("workdir")
            made_ns = int(made_time(self.source_date_epoch) * 1e9)

            def fill(w):
                for i in range(1, len(parts) + 1):
                    sub = "/".join(parts[:i])
                    node = view.lookup(sub, follow_final=False)
                    if node is not None:
                        w.add_path(node.path, sub)
                        continue
                    d = staging / f"d{i}"
                    d.mkdir()
                    os.chown(d, uid, gid)
                    os.chmod(d, 0o755)
                    os.utime(d, ns=(made_ns, made_ns))
                    w.add_path(d, sub)

            layer = write_entries_layer(self.store, fill, compression=COMPRESSION,
                                        source_date_epoch=self.source_date_epoch, tmp_dir=self.scratch)
            return layer, created_by, None, {"working_dir": path}

        return self._layer_step(stage, key, make, "WORKDIR")

    # -- COPY / ADD --------------------------------------------------------------------------
    def copy_from(self, ins: Copy | Add, where: Instruction) -> tuple[StepImage, str, str] | None:
        """The image a ``COPY --from`` reads (a stage's, or one loaded by name), a label, and
        what stands for it in the key; None for the build context. A stage stands by its key,
        as a stage named in FROM does: the same inputs give the same key on any machine, so a
        stage rebuilt elsewhere (other timestamps, another image digest) leaves the steps after
        the COPY cached, which is what makes a shared ``mode=min`` cache work. An image by name
        stands by its digest."""
        if not (isinstance(ins, Copy) and ins.from_stage):
            return None
        ref = ins.from_stage
        index = int(ref) if ref.isdigit() else self.plan.graph.find(ref)
        if index is None:
            image = self.load_image(ref, where)
            return image, ref, image.digest
        if index not in self.stages:
            raise self.fail(where, f"COPY --from={ref}: stage is not built before this one")
        src = self.stages[index]
        return src.current, f"stage {src.planned.name}", f"stage:{src.key}"

    def copy(self, stage: _Stage, raw: Instruction, ins: Copy | Add, last: bool):
        """COPY/ADD. The key is made from what the step reads, never from the image it writes
        into (the parent key stands for that image): a context copy by the content digest of
        its sources, a ``--from`` copy by the key of the stage it reads or the digest of the
        image (see :meth:`copy_from`). A hit reads no layer of either image; only a miss
        resolves the destination in the image."""
        from_image = self.copy_from(ins, raw)
        workdir = stage.current.container.working_dir or "/"
        staging = self.temp("copy")
        created_by = f"{ins.keyword} {' '.join(_short_text(raw).split()[1:])}"

        def view_of() -> RootfsView:
            return self.view(stage.image) if not ins.link else RootfsView([])

        facts = {} if from_image is None else {"from": from_image[2]}
        downloads = None
        gits: dict[str, ResolvedGit] = {}
        if isinstance(ins, Add):
            gits = self.resolve_git(ins)
            if gits and len(gits) == len(ins.sources) and not ins.heredocs:
                return self.add_git(stage, ins, gits, view_of, workdir, staging, created_by, facts)
            downloads = self.download(ins, staging)
        trees = self.fetch_git(ins, gits) if gits else None
        selected = None
        if from_image is None:
            selected = select_sources(ins, self.context, staging=staging / "heredocs", downloads=downloads,
                                      trees=trees)
            content = sources_digest(ins, selected, self.digests)
            key = make_key(stage.key, ins.keyword, ins=_fingerprint(ins), workdir=workdir, content=content)
            detail = f"from build context; content {content[:19]}"
        else:
            key = make_key(stage.key, ins.keyword, ins=_fingerprint(ins), workdir=workdir, **facts)
            detail = f"from {from_image[1]} ({facts['from'][:19]})"

        def make():
            source = self.context if from_image is None else ImageSource(self.view(from_image[0].image), from_image[1])
            view = view_of()
            plan = plan_copy(ins, source, view, workdir, digests=None, staging=staging / "heredocs",
                             made_mtime=made_time(self.source_date_epoch), selected=selected, spill=staging / "plan")
            done = f"{plan.files} files, {plan.bytes} bytes {detail}"
            if not len(plan):  # only patterns that matched nothing: no change, no layer
                return None, created_by, done
            layer = self._write_copy_layer(plan, staging, view, read_later=self._read_later(stage, raw))
            return layer, created_by, done

        return self._layer_step(stage, key, make, ins.keyword, detail)

    # -- ADD from git ------------------------------------------------------------------------
    def resolve_git(self, ins: Add) -> dict[str, ResolvedGit]:
        """The git sources of an ADD, each at the commit its ref names now (``git ls-remote``;
        ``--checksum`` checked). BuildKit's rules for ``--checksum``: one source, http(s) or git."""
        from .gitsource import GitSourceError, parse_git_source, resolve  # ADD only

        found = {}
        for word in ins.sources:
            src = parse_git_source(word)
            if src is not None:
                found[word] = src
        if ins.checksum is not None:
            if len(ins.sources) != 1 or ins.heredocs:
                raise GitSourceError("ADD --checksum can't be specified for multiple sources")
            word = ins.sources[0]
            if not found and not word.startswith(("http://", "https://")):
                raise GitSourceError("ADD --checksum requires HTTP(S) or Git sources")
        return {word: resolve(src, ins.checksum) for word, src in found.items()}

    def fetch_git(self, ins: Add, gits: Mapping[str, ResolvedGit]) -> dict[str, str]:
        """Each git source checked out (depth 1, at its resolved commit) in the build's scratch
        space: source word -> the directory to copy (the root, or the subdir)."""
        from .gitsource import checkout

        return {word: checkout(r, self.temp("git") / "tree", keep_git_dir=ins.keep_git_dir).path
                for word, r in gits.items()}

    def add_git(self, stage: _Stage, ins: Add, gits: Mapping[str, ResolvedGit], view_of: Callable[[], RootfsView],
                workdir: str, staging: Path, created_by: str, facts: dict):
        """An ADD whose sources are all git repositories: the key is made from the commits (no
        fetch for a cache hit), the files fetched only when the step runs."""
        fp = _fingerprint(ins)
        fp["sources"] = [gits[w].key_facts(ins.keep_git_dir) for w in ins.sources]
        fp.pop("checksum", None)  # a check, not an input: the commit is in the key
        fp["flags"] = [f for f in fp["flags"] if not f.startswith("--checksum")]
        key = make_key(stage.key, ins.keyword, ins=fp, workdir=workdir, **facts)
        detail = "git " + ", ".join(f"{r.source.remote}@{r.commit[:12]}" +
                                    (f":{r.source.subdir}" if r.source.subdir else "") for r in gits.values())

        def make():
            trees = self.fetch_git(ins, gits)
            view = view_of()
            plan = plan_copy(ins, self.context, view, workdir, digests=None, staging=staging / "heredocs",
                             made_mtime=made_time(self.source_date_epoch), trees=trees, spill=staging / "plan")
            layer = self._write_copy_layer(plan, staging, view)
            return layer, created_by, f"{plan.files} files, {plan.bytes} bytes from {detail}"

        return self._layer_step(stage, key, make, ins.keyword, detail)

    def download(self, ins: Add, staging: Path) -> dict[str, str]:
        """ADD URL sources, fetched into ``staging`` (mode 0600, mtime from Last-Modified),
        bounded by ``capstone.download`` (declared size, timeouts, minimum rate)."""
        from .gitsource import is_git_source

        out = {}
        for word in ins.sources:
            if not word.startswith(("http://", "https://")) or is_git_source(word):
                continue
            import email.utils

            from ..download import LargeTransfers, download

            name = word.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "download"
            check_entry_name("ADD", word, name)  # the file's name in the image: no ".."
            target = staging / "downloads" / f"{len(out)}" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            algorithm = "sha256"
            if ins.checksum:
                try:
                    algorithm, _ = parse_digest(ins.checksum)
                except DigestError as e:
                    raise CopyError(f"ADD --checksum: {e}") from None
            got = download(word, target, algorithm=algorithm,
                           progress=LargeTransfers(self.transfers, LARGE_TRANSFER, unknown=True))
            if ins.checksum and ins.checksum != got.digest:
                raise CopyError(f"ADD {word}: checksum mismatch: expected {ins.checksum}, got {got.digest}")
            if got.last_modified:
                try:
                    when = email.utils.parsedate_to_datetime(got.last_modified).timestamp()
                    os.utime(target, (when, when))
                except (TypeError, ValueError, OverflowError):
                    pass
            out[word] = str(target)
        return out

    # -- RUN -----------------------------------------------------------------------------------
    def run_step(self, stage: _Stage, raw: Instruction, ins: Run, last: bool):
        cfg = stage.current.container
        argv, script = run_argv(ins, stage.config.shell)
        env = stage.variables.run_env_list(proxies=True)
        key_env = stage.variables.run_env_list(proxies=False)
        workdir = cfg.working_dir or "/"
        user = cfg.user or "0"
        net, privileged = self._run_sandbox(raw, ins)
        scratch = self.temp("run")
        mounts = self._run_mounts(raw, ins, workdir, scratch)
        if mounts.env:  # secrets given as variables, SSH_AUTH_SOCK: this step only, never in the key
            env = [e for e in env if e.partition("=")[0] not in mounts.env]
            env += [f"{k}={v}" for k, v in mounts.env.items()]
        try:
            if script is not None:
                _bind_script(mounts, scratch, script)
            key = make_key(stage.key, "RUN", argv=argv, env=key_env, user=user, workdir=workdir,
                           network=net, mounts=mounts.key, **({"security": "insecure"} if privileged else {}))
            declared = stage.variables.declared_args()
            prefix = f"|{len(declared)} " + " ".join(f"{k}={v}" for k, v in declared.items()) + " " if declared else ""
            make = functools.partial(self._run_command, raw, lambda: stage.image, argv, scratch / "container", mounts,
                                     f"RUN {prefix}{' '.join(argv)}", env=env, cwd=workdir, user=user, network=net,
                                     privileged=privileged)
            return self._layer_step(stage, key, make, "RUN")
        finally:
            mounts.cleanup()

    def _run_sandbox(self, raw: Instruction, ins: Run) -> tuple[str, bool]:
        """The step's network and whether it runs ``--security=insecure``, as the build's
        entitlements allow; a step that leaves the build's sandbox says so, never silently."""
        net = self.network
        if ins.network is not None:
            if ins.network not in NETWORKS:
                raise RunSetupError(f"--network={ins.network}: expected default, none or host")
            net = NETWORKS[ins.network] or self.network
        privileged = check_entitlements(ins, self.allow)
        if net == "host" and self.network != "host":
            self.progress.warning(f"{self.file}:{raw.location.start}: RUN --network=host: the host's network "
                                  f"(allowed by --allow network.host) instead of --network {self.network}")
        if privileged:
            self.progress.warning(f"{self.file}:{raw.location.start}: RUN --security=insecure: all capabilities, "
                                  f"no seccomp, every device (allowed by --allow security.insecure)")
        return net, privileged

    def _run_mounts(self, raw: Instruction, ins: Run, workdir: str, scratch: Path):
        """The step's ``--mount`` s, planned (a stage or image named by ``from=`` as its lowers)."""

        def stage_lowers(ref: str):
            index = int(ref) if ref.isdigit() else self.plan.graph.find(ref)
            img = self.stages[index].image if index is not None and index in self.stages else \
                self.load_image(ref, raw).image
            return self.lowers(img), _image_digest(img)

        return plan_mounts(ins.mounts, context=self.context, workdir=workdir,
                           scratch=scratch, cache_root=self.store.cache_mounts_dir,
                           stage_lowers=stage_lowers, content_digest=self._entries_digest, secrets=self.secrets)

    def _run_command(self, raw: Instruction, image_of: Callable[[], Image], argv: list[str], where: Path, mounts,
                     created_by: str, *, env: list[str], cwd: str, user: str, network: str, privileged: bool):
        """A cache miss of RUN: the command in a container over the stage's image
        (``image_of()``; its root in ``where``), and what it changed as the layer (None:
        nothing changed)."""
        from ..runner import Container  # only when the step runs: a cache hit runs nothing
        from .emulation import EmulatorMissing, check_can_run

        image = image_of()

        try:  # an image of another architecture runs through qemu-user, if the host has it
            check_can_run(image.config.platform)
        except EmulatorMissing as e:
            raise self.fail(raw, f"{_short_text(raw)}: {e}") from None
        with Container(self.lowers(image), where, mounts=mounts.mounts, keep_upper=True,
                       snapshotter=self.store.snapshotter) as c:
            # no init, as BuildKit: the command itself is PID 1, a freshly executed program
            self._check_exit(raw, argv, lambda: c.run(
                argv, env=env, cwd=cwd, user=user, network=network, hostname="buildsandbox",
                stdout=self.run_output, stderr=self.run_output, kill_on_interrupt=True,
                **(insecure_fields() if privileged else {})))
            changes = c.changes()
            if not changes:
                return None, created_by, "the command changed no file: no layer"
            from part7_union import write_change_list

            layer = write_blob(self.store, lambda f: write_change_list(
                changes, c.changes_dir, f, COMPRESSION, source_date_epoch=self.source_date_epoch),
                               tmp_dir=self.scratch)
        if c.kind == "overlay":  # a copy snapshot's tree is the whole root, not the layer
            self._adopt_snapshot(layer.diff_id, c.upper, layer.descriptor)
        return layer, created_by, f"{len(changes)} changes in the upper dir"

    def _check_exit(self, raw: Instruction, argv: list[str], run: Callable[[], int]) -> None:
        """``run()`` the step's command; a command that could not start (126, 127) or did not
        exit 0 fails the step as ``Dockerfile:LINE: ... returned N``."""
        from ..runner import ContainerRunError

        shown = " ".join(argv)
        shown = shown if len(shown) <= 120 else shown[:117] + "..."
        try:
            code = run()
        except ContainerRunError as e:
            if e.exit_code not in (126, 127):
                raise
            raise self.fail(raw, f"{_short_text(raw)}: process \"{shown}\" returned {e.exit_code}: "
                                 f"{e.__cause__ or e}") from None
        if code != 0:
            how = f"returned {code}" if code <= 128 else \
                f"returned {code} (killed by signal {code - 128})"
            raise self.fail(raw, f"{_short_text(raw)}: process \"{shown}\" {how}")

    def _adopt_snapshot(self, diff_id: str, upper: Path, layer=None) -> None:
        """The upper dir of a finished RUN *is* its layer in overlay format: keep it as the
        layer's snapshot instead of extracting the layer again later (``layer``: the blob just
        written from it, recorded as good for the snapshot)."""
        self.store.adopt_snapshot(diff_id, upper, layer)

    def _entries_digest(self, entries) -> str:
        """The digest of what a context bind shows: (relative path, path, lstat) per entry,
        file contents through the context's digest cache."""
        lines = [entry_line(rel, st, st.st_uid, st.st_gid, st.st_mode & 0o7777, self.digests, path)
                 for rel, path, st in entries]
        return selection_digest(lines)


PULL_POLICIES = ("missing", "always", "never")


def pull_policy(value: str | bool | None) -> str:
    """``--pull``'s value: ``always``, ``missing`` or ``never`` (``True``/``"true"``: always,
    as ``--pull`` alone; ``False``/``"false"``: missing, as podman reads them)."""
    if value is None or value is False:
        return "missing"
    if value is True:
        return "always"
    text = str(value).strip().lower()
    text = {"true": "always", "false": "missing"}.get(text, text)
    if text not in PULL_POLICIES:
        raise BuildError(f"--pull={value}: expected always, missing or never")
    return text


def build(
    store: BuildStore,
    context_dir: str | os.PathLike,
    dockerfile_path: str | os.PathLike | None = None,
    *,
    tags: Sequence[str] = (),
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    no_cache: bool = False,
    network: str = "private",
    platform: str | None = None,
    pull: str | bool | None = "missing",
    labels: Mapping[str, str] | None = None,
    outputs: Sequence[str | OutputSpec] = (),
    iidfile: str | os.PathLike | None = None,
    progress: str = "auto",
    explain: bool = False,
    log: Callable[[str], None] | None = None,
    run_output: int | IO | None = None,
    secrets: Sequence = (),
    ssh: Sequence = (),
    allow: Sequence[str] = (),
    cache_to: Sequence[str | CacheSpec] = (),
    cache_from: Sequence[str | CacheSpec] = (),
    registry=None,
    transfers: TransferProgress | None = None,
) -> BuildResult:
    """Build the Dockerfile at ``dockerfile_path`` (default ``CONTEXT/Dockerfile``) with the
    build context ``context_dir`` into ``store``; tag the result with ``tags``.

    ``platform``: the target platform (``linux/arm64``), or several separated by commas: then
    one image is built per platform and the result is an OCI image index of them, tagged as
    one name (as ``buildah build --platform a,b --manifest``). ``pull``: ``missing`` (a base
    is pulled when the store lacks it for the platform), ``always`` (every base is resolved in
    its registry again: a moved tag is seen, and the cache keys follow its new digest) or
    ``never``. ``network``: ``private`` (outbound access through slirp4netns), ``host`` or
    ``none``, for RUN steps without ``--network``. ``outputs``: ``type=oci|oci-archive|
    docker-archive|local|tar,dest=...`` or ``type=registry,name=...`` (see :mod:`.outputs`).
    ``secrets``: ``--secret`` values (``id=ID,src=FILE``, ``id=ID,env=VAR``) or
    :class:`~.secretmounts.SecretSource` s; ``ssh``: ``--ssh`` values (``default``,
    ``ID=SOCKET``, ``ID=KEY``) or :class:`~.secretmounts.SSHSource` s, for
    ``RUN --mount=type=secret|ssh``. ``allow``: the entitlements granted, as BuildKit's
    (``network.host`` for ``RUN --network=host``, ``security.insecure`` for ``RUN
    --security=insecure``; ``--network host`` grants the first). ``log`` receives the progress lines (None: silent);
    ``run_output`` is where RUN's stdout and stderr go (a file descriptor or file; None: this
    process's own). ``cache_to`` / ``cache_from``: ``--cache-to`` / ``--cache-from`` values
    (``type=registry,ref=...[,mode=max]``, ``type=local,dest=DIR`` / ``src=DIR``, or
    :class:`~.sharedcache.CacheSpec` s; see :mod:`.sharedcache`). ``registry``: the command
    line's registry flags (a :class:`~capstone.registry.RegistryOptions`) for pulls, pushes and
    caches; ``transfers``: where they (and large COPYs and downloads) show their progress.
    Raises :class:`~capstone.errors.DockerfileError` (``Dockerfile:LINE: ...``) or
    :class:`BuildError`; the store's names are unchanged unless the build succeeds.
    """
    request = _check_request(context_dir, dockerfile_path, tags=tags, network=network, allow=allow, pull=pull,
                             outputs=outputs, platform=platform, cache_to=cache_to, cache_from=cache_from)
    dockerfile = read_dockerfile(request.dockerfile_path, request.context_dir)
    plans = [make_plan(dockerfile, build_args or {}, target=target, platform=p) for p in request.platforms]
    build_secrets = _build_secrets(secrets, ssh)
    reporter = _reporter(dockerfile, plans, progress, log, explain)
    transfers = transfers or TransferProgress()
    shared = SharedCache([CacheSource(store, spec, options=registry, progress=transfers, warn=reporter.warning)
                          for spec in request.cache_from])
    make_builder = functools.partial(Builder, store, request.context_dir, dockerfile, no_cache=no_cache, network=network,
                                     run_output=run_output, labels=labels or {}, dockerfile_path=request.dockerfile_path,
                                     secrets=build_secrets, allow=request.allow, pull=request.pull, registry=registry,
                                     transfers=transfers, shared=shared)
    try:
        if not no_cache:
            shared.open()
        image_id, desc, steps = _build_and_commit(store, plans, make_builder, reporter, request.names,
                                                  _platform_progress(reporter, plans, progress, log, explain))
    finally:
        shared.close()
        if build_secrets is not None:
            build_secrets.close()
    _deliver(store, request, desc, image_id, reporter, shared, registry=registry, transfers=transfers, iidfile=iidfile)
    unused = plans[0].variables.warning()
    if unused:
        reporter.warning(unused)
    return BuildResult(image_id, desc.digest, tuple(request.names), (unused,) if unused else (), tuple(steps))


@model(frozen=True)
class _Request:
    """What :func:`build` was asked, checked before any work is done."""

    context_dir: Path
    dockerfile_path: Path
    #: the entitlements granted (``--allow``, and ``--network host``)
    allow: frozenset[str]
    pull: str
    #: the tags, normalised
    names: list[str]
    outputs: list[OutputSpec]
    platforms: tuple[Platform | None, ...]
    cache_to: list[CacheSpec]
    cache_from: list[CacheSpec]


def _check_request(context_dir, dockerfile_path, *, tags, network, allow, pull, outputs, platform, cache_to,
                   cache_from) -> _Request:
    """Every command-line value of a build, checked and parsed: a bad tag, ``--output``,
    ``--platform`` or ``--cache-to`` fails before the Dockerfile is read."""
    context_dir = Path(context_dir).absolute()
    if not context_dir.is_dir():
        raise BuildError(f"build context {context_dir} is not a directory")
    dockerfile_path = Path(dockerfile_path) if dockerfile_path is not None else context_dir / "Dockerfile"
    if network not in ("private", "host", "none"):
        raise BuildError(f"--network {network}: expected host, none or private")
    return _Request(
        context_dir, dockerfile_path, allow=parse_entitlements(allow, network), pull=pull_policy(pull),
        names=[parse_name(t).name for t in tags],
        outputs=_output_specs(outputs),
        platforms=_target_platforms(platform),
        cache_to=[c if isinstance(c, CacheSpec) else parse_cache_spec(c, export=True) for c in cache_to],
        cache_from=[c if isinstance(c, CacheSpec) else parse_cache_spec(c, export=False) for c in cache_from])


def _output_specs(outputs: Sequence[str | OutputSpec]) -> list[OutputSpec]:
    """``--output`` values parsed (``outputs`` imported only for a build that has some)."""
    if not outputs:
        return []
    from .outputs import OutputSpec, parse_output

    return [o if isinstance(o, OutputSpec) else parse_output(o) for o in outputs]


def _build_secrets(secrets: Sequence, ssh: Sequence):
    """``--secret`` and ``--ssh`` as a :class:`~.secretmounts.BuildSecrets` (None: neither)."""
    if not (secrets or ssh):
        return None
    from .secretmounts import BuildSecrets  # only when a build has secrets: its start-up stays lean

    return BuildSecrets(secrets, ssh)


def _reporter(dockerfile: Dockerfile, plans: list[BuildPlan], progress: str, log, explain: bool) -> Progress:
    """The build's progress, which starts with the Dockerfile's warnings."""
    reporter = Progress(progress, log, explain, stages=len(plans[0].stages))
    for w in dockerfile.warnings:
        reporter.warning(f"{dockerfile.file}:{w.line}: warning: {w.message} ({w.rule})")
    return reporter


def _platform_progress(reporter: Progress, plans: list[BuildPlan], progress: str, log, explain: bool):
    """Where the build for a plan reports: the build's reporter, or (several platforms, and
    a log) a reporter of its own whose lines say which platform's build they are from."""
    if len(plans) == 1 or log is None:
        return lambda plan: reporter

    def of(plan: BuildPlan) -> Progress:
        shown = format_platform(plan.platform)
        return Progress(progress, lambda line: log(f"[{shown}] {line}"), explain, stages=len(plan.stages))

    return of


def _build_and_commit(store: BuildStore, plans: list[BuildPlan], make_builder, reporter: Progress,
                      names: list[str], progress_of):
    """Each plan's image (one per platform), built in one store session, then committed under
    ``names`` (several: as an index of them): (the image id, the committed descriptor, the steps);
    the id of an index is its digest."""
    images: list[StepImage] = []
    steps: list[StepResult] = []
    with store.session():
        for plan in plans:
            builder = make_builder(plan, progress=progress_of(plan))
            images.append(builder.run())
            steps.extend(builder.steps)
        reporter.commit([parse_name(n).short for n in names])
        if len(images) > 1:
            desc = store.commit_index([image.image for image in images], names)
            return desc.digest, desc, steps
        final = images[0]
        if final.committed is not None:
            # the image as the store has it (a cache hit): named, never made into a value again
            return final.image_id, store.name_stored(replace(final.committed, platform=final.platform), names), steps
        image = final.image  # its id is the config as the commit writes it (a pulled one may be spaced otherwise)
        return image.config_descriptor.digest, store.commit(image, names), steps


def _deliver(store: BuildStore, request: _Request, desc, image_id: str, reporter: Progress, shared: SharedCache, *,
             registry, transfers: TransferProgress, iidfile) -> None:
    """What follows the commit: the tags said, the ``--output`` exports, what each
    ``--cache-from`` gave, the ``--cache-to`` exports and the ``--iidfile``."""
    reporter.produced(image_id)
    for n in request.names:
        reporter.message(f"Successfully tagged {n}")
    for spec in request.outputs:
        from .outputs import write_output

        write_output(store, spec, desc, request.names[0] if request.names else None, options=registry,
                     on_progress=transfers)
    for source in shared.sources:
        if source.hits:
            reporter.message(f"--cache-from {source.spec}: {source.hits} steps from this cache")
    for spec in request.cache_to:
        _export_cache(store, spec, shared, reporter, registry=registry, transfers=transfers)
    if iidfile is not None:
        from .outputs import write_iidfile

        write_iidfile(iidfile, image_id)


def _export_cache(store: BuildStore, spec: CacheSpec, shared: SharedCache, reporter: Progress, *, registry,
                  transfers: TransferProgress) -> None:
    """One ``--cache-to``: a failure ends the build unless the spec says ``ignore-error=true``."""
    try:
        with store.session():
            try:
                shared.complete_entries()  # the layers of --cache-from hits the build never read
            finally:
                shared.close()
            _, count = export_cache(store, spec, shared.entries, options=registry, progress=transfers)
    except CapstoneError as e:
        if not spec.ignore_error:
            raise BuildError(f"--cache-to {spec}: {e}") from None
        reporter.warning(f"--cache-to {spec}: {e} (ignore-error=true: the build goes on)")
    else:
        reporter.message(f"--cache-to {spec}: {count} steps exported (mode={spec.mode})")


def _target_platforms(text: str | None) -> tuple[Platform | None, ...]:
    """``--platform``'s list (``linux/amd64,linux/arm64``), normalised; (None,) for this host."""
    if not text:
        return (None,)
    try:
        return parse_platforms(text)
    except PlatformError as e:
        raise BuildArgError(f"--platform: {e}") from None


__all__ = ["PULL_POLICIES", "BuildResult", "Builder", "StepResult", "build", "pull_policy"]
