"""An image as an immutable value, in the style of go-containerregistry.

``Image.scratch()`` is FROM scratch, ``Image.load(ref)`` reads an image from an OCI layout or an
oci-archive. ``append_layer`` and ``with_config`` never change an image: they return a new one
with one more history entry, so a build is a chain of values and any step can be kept or thrown
away. ``write(ref)`` stores the value: every layer blob is copied and checked against its
digest (base blobs are reused byte for byte), then the config, the manifest, and the index.json
entry named after the reference.

A layer of an image is a descriptor, a diff_id and where its bytes are (a blob of a layout, a
member of an archive, a file): nothing is read until the image is written.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import io
import json
import os
import posixpath
import shutil
import tempfile
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from part1_overview import field, fields, is_model, model, replace
from part2_manual_oci import (
    MAX_JSON_SIZE,
    BlobCorrupt,
    BlobNotFound,
    ContainerConfig,
    Descriptor,
    History,
    ImageConfig,
    Index,
    LayoutError,
    Manifest,
    ModelError,
    OCILayout,
    Platform,
    PlatformNotFound,
    atomic_file,
    canonical_json,
    digest_hex,
    digest_stream,
    host_platform,
    select_platform,
    sha256_digest,
)
from part2_manual_oci import mediatypes as mt

if TYPE_CHECKING:
    import tarfile

    from part4_tar import LayerInfo

from .errors import CbtError, ImageNotFound
from .reference import OCI_ARCHIVE, OCI_LAYOUT, ImageReference, parse_reference, select_manifest


def utc_now() -> str:
    """The current time as the image spec writes it (RFC 3339, UTC)."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- immutable JSON containers ---------------------------------------------------------------------


def _refuse(self, *args, **kwargs):
    raise TypeError("an Image is immutable: make a changed image with with_config() or append_layer()")


class FrozenDict(dict):
    """A JSON object inside an :class:`Image` (labels, exposed ports, annotations, unknown
    keys): still a ``dict`` for ``json`` and comparisons, but it refuses every change, so
    images that share it cannot change each other."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self):
        return (FrozenDict, (dict(self),))


class FrozenList(list):
    """A JSON array inside an :class:`Image` (in unknown keys, a healthcheck): a ``list``
    that refuses every change."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = remove = pop = clear = sort = reverse = _refuse

    def __reduce__(self):
        return (FrozenList, (list(self),))


#: what freeze() returns as it is, by exact type (the common case, before the isinstance checks)
_FROZEN_TYPES = frozenset({FrozenDict, FrozenList, str, bytes, int, bool, float, types.NoneType})


@functools.cache
def _init_fields(cls: type) -> tuple[str, ...]:
    """The names of a model's ``__init__`` fields (what ``replace`` takes)."""
    return tuple(f.name for f in fields(cls) if f.init)


def freeze(value):
    """``value`` with every dict and list inside it (through models and tuples) made
    read-only. Already frozen parts are kept as they are, so freezing a frozen value is cheap
    and returns the same object. (A cache hit loads an image whose config holds the base's
    whole history: this walk runs over every entry of it at every step.)"""
    if type(value) in _FROZEN_TYPES or isinstance(value, (FrozenDict, FrozenList, str, bytes, int, float, type(None))):
        return value
    if isinstance(value, dict):
        return FrozenDict({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list):
        return FrozenList(freeze(item) for item in value)
    if type(value) is tuple:
        items = tuple(freeze(item) for item in value)
        return value if all(a is b for a, b in zip(items, value)) else items
    if is_model(value) and not isinstance(value, type):
        changes = {}
        for name in _init_fields(type(value)):
            old = getattr(value, name)
            new = freeze(old)
            if new is not old:
                changes[name] = new
        return replace(value, **changes) if changes else value
    return value



# -- where a layer's bytes are -------------------------------------------------------------------


@model(frozen=True)
class FileBlob:
    """A blob in a file of its own (a layer just written, or a blob of a layout)."""

    path: Path

    def open(self) -> BinaryIO:
        return open(self.path, "rb")

    def __str__(self) -> str:
        return str(self.path)


def _member_name(name: str) -> str | None:
    """An archive member's name relative to the layout root, or None for an unsafe one."""
    norm = posixpath.normpath(name.lstrip("/"))
    return None if norm.startswith("..") else norm


class _TarMember(io.RawIOBase):
    """Reads one member of a tar file and closes the tar file with it."""

    def __init__(self, archive: tarfile.TarFile, member: BinaryIO) -> None:
        super().__init__()
        self._archive, self._member = archive, member

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._member.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._member.close()
            self._archive.close()
        super().close()


def _open_member(archive: Path, name: str) -> BinaryIO:
    import tarfile  # archives only: a layout's images never need it

    tf = tarfile.open(archive, "r:*")
    try:
        for info in tf:
            if _member_name(info.name) == name:
                if not info.isreg():
                    raise LayoutError(f"{archive}: member {name} is not a regular file")
                return io.BufferedReader(_TarMember(tf, tf.extractfile(info)), 1 << 20)
        raise BlobNotFound(f"{archive}: no member {name}")
    except BaseException:
        tf.close()
        raise


@model(frozen=True)
class ArchiveBlob:
    """A blob inside an oci-archive (a tar of a layout), read in place without extracting."""

    archive: Path
    member: str  # "blobs/sha256/<hex>"

    def open(self) -> BinaryIO:
        return _open_member(self.archive, self.member)

    def __str__(self) -> str:
        return f"{self.archive}:{self.member}"


BlobSource = FileBlob | ArchiveBlob


@model(frozen=True)
class Layer:
    """One layer of an image: its descriptor (digest of the stored bytes), its diff_id (digest
    of the uncompressed tar) and where the bytes are."""

    descriptor: Descriptor
    diff_id: str
    source: BlobSource = field(compare=False)

    def open(self) -> BinaryIO:
        return self.source.open()

    @classmethod
    def from_blob_file(cls, path: str | os.PathLike, media_type: str | None = None) -> "Layer":
        """A layer from a layer blob on disk (tar, tar+gzip or tar+zstd): one pass to find its
        digest, size and diff_id."""
        from part4_tar import layer_info

        path = Path(path)
        with open(path, "rb") as f:
            info = layer_info(f, media_type)
        return cls(info.descriptor(), info.diff_id, FileBlob(path))


def write_layer_blob(out_dir: str | os.PathLike, produce: Callable[[BinaryIO], "LayerInfo"], *,
                     tmp_dir: str | os.PathLike | None = None) -> Layer:
    """Run ``produce(file)`` (it writes a layer blob and returns part 4's ``LayerInfo``) into a
    temp file in ``out_dir`` (or ``tmp_dir``, on the same file system: a directory its writer
    owns), then rename it to ``out_dir/<hex>`` (part 2's ``atomic_file``): the blob appears
    complete or not at all. The :class:`Layer` it made.

    Not fsynced (``durable=False``: a build does not wait for the disk at every layer): unlike
    ``put_blob``'s, a blob written here survives a killed process, not a power loss."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_file(None, temp_dir=tmp_dir if tmp_dir is not None else out_dir, durable=False,
                     prefix=".tmp-layer-") as out:
        info = produce(out.file)
        out.target = out_dir / digest_hex(info.digest)
    return Layer(info.descriptor(), info.diff_id, FileBlob(out.target))


def layer_from_directory(
    src_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    compression: str = "gzip",
    source_date_epoch: int | None = None,
) -> Layer:
    """Pack a directory as a layer blob (part 4) into ``out_dir/<hex>`` and return the layer."""
    from part4_tar import write_layer

    return write_layer_blob(out_dir, lambda f: write_layer(src_dir, f, compression, source_date_epoch=source_date_epoch))


# -- reading images ------------------------------------------------------------------------------


class _LayoutReader:
    def __init__(self, path: str) -> None:
        self.layout = OCILayout.open(path)
        self.where = str(self.layout.path)

    def manifests(self) -> tuple[Descriptor, ...]:
        return self.layout.index().manifests

    def read_json(self, desc: Descriptor) -> dict:
        return self.layout.read_json(desc)

    def source(self, desc: Descriptor) -> BlobSource:
        if not self.layout.has_blob(desc.digest):
            raise BlobNotFound(f"{self.where}: layer blob {desc.digest} not found ({self.layout.blob_path(desc.digest)})")
        return FileBlob(self.layout.blob_path(desc.digest))

    def close(self) -> None:
        pass


class _ArchiveReader:
    """An oci-archive read in place: members are looked up by name, nothing is extracted."""

    def __init__(self, path: str) -> None:
        import tarfile

        self.path = Path(path)
        self.where = str(self.path)
        try:
            self._tf = tarfile.open(self.path, "r:*")
        except FileNotFoundError:
            raise ImageNotFound(f"{self.path}: no such archive") from None
        except (tarfile.TarError, OSError) as e:
            reason = str(e).splitlines()[0].rstrip(":") or type(e).__name__
            raise LayoutError(f"{self.path}: not a readable tar archive ({reason})") from None
        self._members = {}
        for info in self._tf.getmembers():
            name = _member_name(info.name)
            if name is not None and info.isreg():
                self._members[name] = info
        if "oci-layout" not in self._members or "index.json" not in self._members:
            raise LayoutError(f"{self.path}: not an oci-archive (no oci-layout and index.json at its root)")

    def _read(self, name: str, limit: int = MAX_JSON_SIZE) -> bytes:
        info = self._members.get(name)
        if info is None:
            raise BlobNotFound(f"{self.path}: no member {name}")
        if info.size > limit:
            raise LayoutError(f"{self.path}: {name} is {info.size} bytes, too big for a JSON document")
        return self._tf.extractfile(info).read()

    def manifests(self) -> tuple[Descriptor, ...]:
        try:
            index = json.loads(self._read("index.json"))
        except ValueError as e:
            raise ModelError(f"{self.path}: index.json is not JSON ({e})") from None
        return Index.from_json(index, f"{self.path}:index.json").manifests

    def read_json(self, desc: Descriptor) -> dict:
        data = self._read(f"blobs/sha256/{digest_hex(desc.digest)}")
        got = sha256_digest(data)
        if got != desc.digest or len(data) != desc.size:
            raise BlobCorrupt(f"{self.path}: blob {desc.digest} hashes to {got} ({len(data)} bytes, descriptor says {desc.size})")
        try:
            return json.loads(data)
        except ValueError as e:
            raise ModelError(f"{self.path}: blob {desc.digest} is not JSON ({e})") from None

    def source(self, desc: Descriptor) -> BlobSource:
        name = f"blobs/sha256/{digest_hex(desc.digest)}"
        if name not in self._members:
            raise BlobNotFound(f"{self.path}: layer blob {desc.digest} not found (no member {name})")
        return ArchiveBlob(self.path.resolve(), name)

    def close(self) -> None:
        self._tf.close()


def _open_reader(ref: ImageReference):
    if ref.transport == OCI_LAYOUT:
        if not os.path.exists(ref.path):
            raise ImageNotFound(f"{ref.path}: no such OCI layout ({ref})")
        return _LayoutReader(ref.path)
    if ref.transport == OCI_ARCHIVE:
        return _ArchiveReader(ref.path)
    raise CbtError(f"cannot read images from transport {ref.transport!r} (oci-layout: and oci-archive: only)")


def _config_platform(reader, desc: Descriptor) -> Platform | None:
    """The platform an index entry without one is for: its config's (containerd reads it too)."""
    if desc.media_type not in mt.MANIFEST_TYPES:
        return None
    manifest = Manifest.from_json(reader.read_json(desc), f"{reader.where}: manifest {desc.digest}")
    return ImageConfig.from_json(reader.read_json(manifest.config), f"{reader.where}: config {manifest.config.digest}").platform


def _platform_entry(reader, entries: tuple[Descriptor, ...], platform: Platform | None, where: str) -> Descriptor:
    """The entry of a multi-platform index for ``platform`` (default: this host)."""
    try:
        return select_platform(entries, platform, where, platform_of=lambda d: _config_platform(reader, d))
    except PlatformNotFound as e:
        raise ImageNotFound(str(e)) from None


def _entry_with_digest(reader, digest: str) -> Descriptor:
    entries = reader.manifests()
    for entry in entries:
        if entry.digest == digest:
            return entry
    for entry in entries:
        if entry.media_type in mt.INDEX_TYPES:
            nested = Index.from_json(reader.read_json(entry), f"{reader.where}: index {entry.digest}")
            for inner in nested.manifests:
                if inner.digest == digest:
                    return inner
    names = ", ".join(e.ref_name or f"<unnamed {e.digest[:19]}>" for e in entries) or "none"
    raise ImageNotFound(f"{reader.where}: no image with manifest {digest} (found: {names})")


# -- the value -----------------------------------------------------------------------------------

_TOP_LEVEL = ("os", "architecture", "variant", "os_version", "author")
_CONTAINER_FIELDS = tuple(f.name for f in fields(ContainerConfig) if f.name != "extra")
_SEQUENCE_FIELDS = ("env", "entrypoint", "cmd", "on_build", "shell")


@model(frozen=True)
class Image:
    """An image: its config and its layers, bottom first. Immutable; changes make new images.

    Every dict and list in the config and the layer descriptors is frozen when the image is
    made (see :func:`freeze`): the caller's dicts are copied, and the images of a chain share
    only read-only data. ``loaded_from`` is the manifest descriptor an image was loaded as
    (None for a new or changed image).
    """

    config: ImageConfig
    layers: tuple[Layer, ...] = ()
    loaded_from: Descriptor | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", freeze(self.config))
        object.__setattr__(self, "layers", freeze(tuple(self.layers)))
        diff_ids = tuple(layer.diff_id for layer in self.layers)
        if diff_ids != tuple(self.config.rootfs_diff_ids):
            raise ValueError(
                f"config lists {len(self.config.rootfs_diff_ids)} diff_ids, the image has {len(self.layers)} layers "
                "(or they differ)"
            )

    # -- making images --------------------------------------------------------------------------
    @classmethod
    def scratch(cls, os: str | None = None, architecture: str | None = None, *,
                platform: Platform | None = None) -> "Image":
        """The empty image (FROM scratch) for ``platform``, else this host's platform (``os``
        and ``architecture`` replace parts of it)."""
        here = platform or host_platform()
        variant = here.variant if architecture in (None, here.architecture) else None
        return cls(ImageConfig(architecture=architecture or here.architecture, os=os or here.os, variant=variant,
                               os_version=here.os_version if os in (None, here.os) else None))

    @classmethod
    def load(cls, ref: str | ImageReference, *, manifest_digest: str | None = None,
             platform: Platform | None = None) -> "Image":
        """The image a reference names, from an OCI layout or an oci-archive.

        When the name is a multi-platform index, its image for ``platform`` (default: this
        host) is taken, by part 2's ``select_platform``.

        With ``manifest_digest``, the image is the one whose manifest has that digest (an
        entry of index.json, or a platform entry of an image index in it), whatever the names:
        how ``build`` finds the base that ``from`` chose in a layout that has since grown.
        Layers are not read now, only checked to be there; ``write`` verifies their bytes.
        """
        if isinstance(ref, str):
            ref = parse_reference(ref)
        reader = _open_reader(ref)
        try:
            if manifest_digest is not None:
                desc = _entry_with_digest(reader, manifest_digest)
            else:
                desc = select_manifest(reader.manifests(), ref, reader.where)
            if desc.media_type in mt.INDEX_TYPES:
                nested = Index.from_json(reader.read_json(desc), f"{reader.where}: index {desc.digest}")
                desc = _platform_entry(reader, nested.manifests, platform, f"{reader.where}: {ref.ref_name}")
            if desc.media_type not in mt.MANIFEST_TYPES:
                raise LayoutError(f"{reader.where}: {desc.digest} has media type {desc.media_type}, not an image manifest")
            manifest = Manifest.from_json(reader.read_json(desc), f"{reader.where}: manifest {desc.digest}")
            if manifest.config.media_type not in mt.CONFIG_TYPES:
                raise LayoutError(
                    f"{reader.where}: config {manifest.config.digest} has media type {manifest.config.media_type}, "
                    "not an image config"
                )
            config = ImageConfig.from_json(reader.read_json(manifest.config), f"{reader.where}: config {manifest.config.digest}")
            if len(manifest.layers) != len(config.rootfs_diff_ids):
                raise LayoutError(
                    f"{reader.where}: manifest {desc.digest} lists {len(manifest.layers)} layers, its config "
                    f"{len(config.rootfs_diff_ids)} diff_ids"
                )
            layers = []
            for ld, diff_id in zip(manifest.layers, config.rootfs_diff_ids):
                layers.append(Layer(replace(ld, media_type=mt.oci_layer_type(ld.media_type)), diff_id, reader.source(ld)))
        finally:
            reader.close()
        return cls(config, tuple(layers), loaded_from=desc)

    @staticmethod
    def index_entries(ref: str | ImageReference) -> tuple[Descriptor, ...]:
        """The entries of the index.json of the layout or oci-archive ``ref`` names: every
        image in there (with its ref name annotation), for ``load(ref, manifest_digest=...)``."""
        if isinstance(ref, str):
            ref = parse_reference(ref)
        reader = _open_reader(ref)
        try:
            return reader.manifests()
        finally:
            reader.close()

    def append_layer(
        self,
        layer: Layer | str | os.PathLike,
        *,
        created_by: str | None = None,
        comment: str | None = None,
        created: str | None = None,
    ) -> "Image":
        """A new image with ``layer`` on top (a :class:`Layer`, or the path of a layer blob)."""
        if not isinstance(layer, Layer):
            layer = Layer.from_blob_file(layer)
        created = created or utc_now()
        entry = History(
            created=created,
            created_by=created_by or f"append layer {layer.descriptor.digest}",
            comment=comment,
        )
        config = replace(
            self.config,
            rootfs_diff_ids=tuple(self.config.rootfs_diff_ids) + (layer.diff_id,),
            history=tuple(self.config.history) + (entry,),
            created=created,
        )
        return Image(config, self.layers + (layer,))

    def with_config(
        self,
        *,
        created_by: str | None = None,
        comment: str | None = None,
        created: str | None = None,
        history: "Sequence[History] | None" = None,
        **changes,
    ) -> "Image":
        """A new image with config changes and an ``empty_layer`` history entry.

        Keywords are the fields of ``ContainerConfig`` (``cmd``, ``entrypoint``, ``env``,
        ``working_dir``, ``user``, ``exposed_ports``, ``labels``, ...), ``config`` (a whole
        ``ContainerConfig``), or top-level ``os``, ``architecture``, ``variant``,
        ``os_version``, ``author``. A value of None clears the field.

        ``history``: the entries to add instead of the one made from ``created_by`` and
        ``comment``, for the changes of several steps made in one go. Making an image copies
        its config (every label, every history entry): a builder that records a run of config
        steps and makes one image from them pays that once, not once per step.
        """
        given = set(changes)
        container = changes.pop("config", self.config.config)
        top = {}
        inner = {}
        for key, value in changes.items():
            if key in _TOP_LEVEL:
                top[key] = value
            elif key in _CONTAINER_FIELDS:
                if key in _SEQUENCE_FIELDS and value is not None:
                    if isinstance(value, str):
                        raise TypeError(f"with_config(): {key} must be a list of strings, not a string")
                    value = tuple(value)
                inner[key] = value
            else:
                raise TypeError(f"with_config() got an unknown field {key!r}")
        if history is not None:
            entries = tuple(history)
            created = created or (entries[-1].created if entries else None) or utc_now()
        else:
            created = created or utc_now()
            if created_by is None:
                described = {**top, **inner}
                if described:
                    created_by = "config " + ", ".join(f"{k}={_show(v)}" for k, v in described.items())
                else:
                    created_by = "config (replaced)" if "config" in given else "config (unchanged)"
            entries = (History(created=created, created_by=created_by, comment=comment, empty_layer=True),)
        config = replace(
            self.config,
            **top,
            config=replace(container, **inner),
            history=tuple(self.config.history) + entries,
            created=created,
        )
        return Image(config, self.layers)

    # -- what would be written ------------------------------------------------------------------
    @property
    def config_descriptor(self) -> Descriptor:
        data = canonical_json(self.config)
        return Descriptor(mt.OCI_CONFIG, sha256_digest(data), len(data))

    @property
    def manifest(self) -> Manifest:
        return Manifest(self.config_descriptor, tuple(layer.descriptor for layer in self.layers))

    @property
    def digest(self) -> str:
        """The digest of the manifest ``write`` stores for this image."""
        return sha256_digest(canonical_json(self.manifest))

    # -- writing --------------------------------------------------------------------------------
    def write(self, ref: str | ImageReference) -> Descriptor:
        """Store the image where ``ref`` says and name it; returns the manifest descriptor
        (with its ref name annotation).

        ``oci-layout:DIR[...]`` adds to (or creates) a layout: its other images stay, and an
        entry with the same ref name is replaced. ``oci-archive:FILE[...]`` writes a plain tar
        of a new layout and renames it over FILE only when complete: a failed write leaves
        FILE as it was (or absent) and no temporary files.
        """
        if isinstance(ref, str):
            ref = parse_reference(ref)
        if ref.transport == OCI_LAYOUT:
            with _removed_on_failure(Path(ref.path)):
                return self._write_layout(OCILayout.create(ref.path), ref.ref_name)
        if ref.transport == OCI_ARCHIVE:
            return self._write_archive(Path(ref.path), ref.ref_name)
        raise CbtError(f"cannot write images to transport {ref.transport!r}")

    def _write_archive(self, target: Path, ref_name: str) -> Descriptor:
        if target.is_dir():
            raise CbtError(f"{target}: is a directory, not an oci-archive file")
        from part2_manual_oci import write_oci_archive  # tarfile: only to write an archive

        prefix = f"cbt-oci-archive-{os.getpid()}-"
        with _removed_on_failure(target.parent), tempfile.TemporaryDirectory(prefix=prefix, dir=_tmp_root()) as tmp:
            desc = self._write_layout(OCILayout.create(Path(tmp) / "layout"), ref_name)
            target.parent.mkdir(parents=True, exist_ok=True)
            write_oci_archive(Path(tmp) / "layout", target)  # a temp file beside FILE, renamed
        return desc

    def _write_layout(self, layout: OCILayout, ref_name: str) -> Descriptor:
        for layer in self.layers:
            _store_layer(layer, layout)
        config_desc = _store_json(layout, self.config, mt.OCI_CONFIG)
        manifest = Manifest(config_desc, tuple(layer.descriptor for layer in self.layers))
        manifest_desc = _store_json(layout, manifest, mt.OCI_MANIFEST)
        return layout.add_manifest(manifest_desc, ref_name)


@contextlib.contextmanager
def _removed_on_failure(folder: Path):
    """Remove ``folder`` (and its missing parents) again if the block fails and it did not
    exist before: a failed write into a new layout leaves no half-made layout behind."""
    missing = []
    path = folder.absolute()
    while not path.exists():
        missing.append(path)
        path = path.parent
    try:
        yield
    except BaseException:
        if missing:
            shutil.rmtree(missing[0], ignore_errors=True)
            for parent in missing[1:]:
                with contextlib.suppress(OSError):
                    parent.rmdir()
        raise


def _hash_file(path: Path) -> tuple[str, int]:
    with open(path, "rb") as f:
        return digest_stream(f)


def _store_layer(layer: Layer, layout: OCILayout) -> None:
    """Put a layer blob into ``layout``, verified: a blob already there (the base's own, when
    writing into the base layout) is hashed in place and reused; otherwise the source is copied
    while hashed, and a copy that does not hash to the digest is refused. A damaged blob in the
    layout is replaced by the verified bytes of the source."""
    desc = layer.descriptor
    target = layout.blob_path(desc.digest)
    source = layer.source
    if target.is_file():
        digest, size = _hash_file(target)
        if (digest, size) == (desc.digest, desc.size):
            return
        if isinstance(source, FileBlob) and os.path.samefile(source.path, target):
            raise BlobCorrupt(
                f"layer {desc.digest} at {target}: {size} bytes hashing to {digest}, the descriptor says {desc.size} bytes"
            )
        target.unlink()  # damaged: content addressing says these bytes are wrong
    with layer.open() as f:
        try:
            stored = layout.put_blob(f, desc.media_type, expected_digest=desc.digest)
        except BlobCorrupt as e:
            reason = str(e).removeprefix("put_blob: ")
            raise BlobCorrupt(f"layer {desc.digest} from {source}: {reason} (the source blob is damaged)") from None
    if stored.size != desc.size:
        target.unlink()
        raise BlobCorrupt(f"layer {desc.digest} from {source}: {stored.size} bytes, the descriptor says {desc.size} bytes")


def _store_json(layout: OCILayout, obj, media_type: str) -> Descriptor:
    """Put a JSON blob (config, manifest) into ``layout``; one already there must hold the
    same bytes, else it is replaced."""
    data = canonical_json(obj)
    digest = sha256_digest(data)
    target = layout.blob_path(digest)
    if target.is_file():
        with open(target, "rb") as f:
            same = f.read(len(data) + 1) == data
        if same:
            return Descriptor(media_type, digest, len(data))
        target.unlink()
    return layout.put_blob(data, media_type, expected_digest=digest)


def _tmp_root() -> str | None:
    # cbt keeps its temporary layouts in /var/tmp: big, and not a RAM-backed /tmp
    return "/var/tmp" if os.path.isdir("/var/tmp") and os.access("/var/tmp", os.W_OK) else None


def _show(value) -> str:
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value) if not isinstance(value, str) else value
