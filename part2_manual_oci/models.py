"""The image spec's documents as frozen models (part 1's ``@model``): descriptor, image config, manifest, index.

snake_case attributes in Python, the spec's camelCase (and Docker's PascalCase) only inside
``to_json()`` / ``from_json()``. Every model keeps the keys it does not know in ``extra`` and
writes them back, so reading and re-writing a document loses nothing. ``null`` and an absent
key both read as ``None``, and ``None`` is not written.

Docker's schema2 documents have the same shape (their media types differ), so the same classes
read them: a Docker config's ``container_config`` or ``docker_version`` land in ``extra``.

The bytes we store are ``canonical_json(doc.to_json())``: compact, keys sorted, UTF-8. A
digest names exact bytes, so the same document re-indented would be a different blob.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from part1_overview import field, model

from . import mediatypes as mt
from .errors import ModelError

# "digest ::= algorithm ":" encoded" (image-spec descriptor.md); the layout itself stores sha256.
_DIGEST_GRAMMAR = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


def canonical_json(obj_json: Mapping[str, Any] | Any) -> bytes:
    """The exact bytes we store for a JSON document: compact, sorted keys, UTF-8.

    Accepts a dict or a model (anything with ``to_json()``). A string may hold bytes that are
    not UTF-8, kept as surrogateescape code points (a file name from ``os.listdir`` in a
    history entry's ``created_by``): JSON is UTF-8, so each such byte becomes U+FFFD, as Go's
    encoding/json writes it in the configs other tools make.
    """
    if hasattr(obj_json, "to_json"):
        obj_json = obj_json.to_json()
    text = json.dumps(obj_json, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace").encode("utf-8")


def env_to_dict(env: Iterable[str]) -> dict[str, str]:
    """An ``Env`` list as a dict: ``["K=V", "FLAG"]`` -> ``{"K": "V", "FLAG": ""}``; a later
    entry replaces an earlier one (as in a shell)."""
    out: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


# -- field tables: (python name, JSON key, kind) ------------------------------------------------
# kinds: "str", "int", "bool", "strs" (list of str <-> tuple), "map" (JSON object, copied),
# "strmap" (object of str -> str)


def _check(value: Any, kind: str, where: str, key: str) -> Any:
    def bad(expected: str) -> ModelError:
        return ModelError(f"{where}: {key!r} must be {expected}, got {type(value).__name__} {value!r:.60}")

    if kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad("an integer")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("a boolean")
        return value
    if kind == "strs":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("a list of strings")
        return tuple(value)
    if kind == "map":
        if not isinstance(value, dict):
            raise bad("an object")
        return dict(value)
    if kind == "strmap":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise bad("an object of strings")
        return dict(value)
    raise AssertionError(kind)


def _read(d: Any, table: tuple[tuple[str, str, str], ...], where: str, *, skip: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """Split a JSON object into constructor kwargs (known keys) and ``extra`` (the rest)."""
    if not isinstance(d, dict):
        raise ModelError(f"{where}: expected a JSON object, got {type(d).__name__}")
    known = {key for _, key, _ in table} | set(skip)
    kwargs = {}
    for name, key, kind in table:
        value = d.get(key)
        kwargs[name] = None if value is None else _check(value, kind, where, key)
    extra = {k: v for k, v in d.items() if k not in known}
    return kwargs, extra


def _write(obj: Any, table: tuple[tuple[str, str, str], ...]) -> dict:
    out = {}
    for name, key, kind in table:
        value = getattr(obj, name)
        if value is None:
            continue
        out[key] = list(value) if kind == "strs" else (dict(value) if kind in ("map", "strmap") else value)
    return out


def _require(d: dict, key: str, where: str) -> Any:
    if d.get(key) is None:
        raise ModelError(f"{where}: missing {key!r}")
    return d[key]


def _schema_version(d: dict, where: str) -> None:
    if d.get("schemaVersion") != 2:
        raise ModelError(f"{where}: schemaVersion must be 2, got {d.get('schemaVersion')!r}")


def _dict_field():
    # dicts make a frozen model unhashable: leave them out of the hash (equality still compares them)
    return field(default=None, hash=False)


# -- descriptor ------------------------------------------------------------------------------

_PLATFORM = (
    ("architecture", "architecture", "str"),
    ("os", "os", "str"),
    ("os_version", "os.version", "str"),
    ("os_features", "os.features", "strs"),
    ("variant", "variant", "str"),
    ("features", "features", "strs"),
)


@model(frozen=True)
class Platform:
    """The platform an index entry's image runs on (``architecture``/``os`` as in GOARCH/GOOS)."""

    architecture: str
    os: str
    os_version: str | None = None
    os_features: tuple[str, ...] | None = None
    variant: str | None = None
    features: tuple[str, ...] | None = None
    extra: dict = field(default_factory=dict, hash=False)

    def to_json(self) -> dict:
        return {**_write(self, _PLATFORM), **self.extra}

    @classmethod
    def from_json(cls, d: Any, where: str = "platform") -> "Platform":
        kwargs, extra = _read(d, _PLATFORM, where)
        _require(d, "architecture", where)
        _require(d, "os", where)
        return cls(**kwargs, extra=extra)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


_DESCRIPTOR = (
    ("media_type", "mediaType", "str"),
    ("digest", "digest", "str"),
    ("size", "size", "int"),
    ("urls", "urls", "strs"),
    ("annotations", "annotations", "strmap"),
    ("artifact_type", "artifactType", "str"),
)


@model(frozen=True)
class Descriptor:
    """A typed pointer to a blob: "the media type, the digest and the size of the target"."""

    media_type: str
    digest: str
    size: int
    annotations: dict | None = _dict_field()
    platform: Platform | None = None
    urls: tuple[str, ...] | None = None
    artifact_type: str | None = None
    extra: dict = field(default_factory=dict, hash=False)

    def to_json(self) -> dict:
        out = _write(self, _DESCRIPTOR)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, d: Any, where: str = "descriptor") -> "Descriptor":
        kwargs, extra = _read(d, _DESCRIPTOR, where, skip=("platform",))
        for key in ("mediaType", "digest", "size"):
            _require(d, key, where)
        if not _DIGEST_GRAMMAR.match(kwargs["digest"]):
            raise ModelError(f"{where}: invalid digest {kwargs['digest']!r}")
        if kwargs["size"] < 0:
            raise ModelError(f"{where}: negative size {kwargs['size']}")
        platform = d.get("platform")
        if platform is not None:
            platform = Platform.from_json(platform, f"{where}.platform")
        return cls(**kwargs, platform=platform, extra=extra)

    @property
    def ref_name(self) -> str | None:
        """The ``org.opencontainers.image.ref.name`` annotation, if any."""
        return (self.annotations or {}).get(mt.ANNOTATION_REF_NAME)

    def short(self) -> str:
        """``sha256:0123456789ab`` (12 hex digits), for messages."""
        return self.digest[:19]


# -- image config ----------------------------------------------------------------------------

_CONTAINER = (
    ("user", "User", "str"),
    ("exposed_ports", "ExposedPorts", "map"),
    ("env", "Env", "strs"),
    ("entrypoint", "Entrypoint", "strs"),
    ("cmd", "Cmd", "strs"),
    ("volumes", "Volumes", "map"),
    ("working_dir", "WorkingDir", "str"),
    ("labels", "Labels", "strmap"),
    ("stop_signal", "StopSignal", "str"),
    ("args_escaped", "ArgsEscaped", "bool"),
    ("healthcheck", "Healthcheck", "map"),
    ("on_build", "OnBuild", "strs"),
    ("shell", "Shell", "strs"),
)


@model(frozen=True)
class ContainerConfig:
    """The ``config`` object of an image config: what a runtime uses to start the container.

    ``healthcheck``, ``on_build`` and ``shell`` are Docker's (written by Dockerfile
    HEALTHCHECK, ONBUILD and SHELL); OCI consumers ignore them, Docker and podman read them.
    """

    user: str | None = None
    exposed_ports: dict | None = _dict_field()
    env: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    volumes: dict | None = _dict_field()
    working_dir: str | None = None
    labels: dict | None = _dict_field()
    stop_signal: str | None = None
    args_escaped: bool | None = None
    healthcheck: dict | None = _dict_field()
    on_build: tuple[str, ...] | None = None
    shell: tuple[str, ...] | None = None
    extra: dict = field(default_factory=dict, hash=False)

    def to_json(self) -> dict:
        return {**_write(self, _CONTAINER), **self.extra}

    @classmethod
    def from_json(cls, d: Any, where: str = "config.config") -> "ContainerConfig":
        kwargs, extra = _read(d, _CONTAINER, where)
        return cls(**kwargs, extra=extra)

    def env_dict(self) -> dict[str, str]:
        """``Env`` as a dict (later entries win, as in a shell)."""
        return env_to_dict(self.env or ())


_HISTORY = (
    ("created", "created", "str"),
    ("created_by", "created_by", "str"),
    ("author", "author", "str"),
    ("comment", "comment", "str"),
    ("empty_layer", "empty_layer", "bool"),
)


@model(frozen=True)
class History:
    """One step of how the image was made; ``empty_layer`` steps added no layer (ENV, CMD...)."""

    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool | None = None
    extra: dict = field(default_factory=dict, hash=False)

    def to_json(self) -> dict:
        return {**_write(self, _HISTORY), **self.extra}

    @classmethod
    def from_json(cls, d: Any, where: str = "history") -> "History":
        kwargs, extra = _read(d, _HISTORY, where)
        return cls(**kwargs, extra=extra)


_IMAGE_CONFIG = (
    ("created", "created", "str"),
    ("author", "author", "str"),
    ("architecture", "architecture", "str"),
    ("os", "os", "str"),
    ("os_version", "os.version", "str"),
    ("variant", "variant", "str"),
)


@model(frozen=True)
class ImageConfig:
    """The image config (``application/vnd.oci.image.config.v1+json``).

    "The rootfs.diff_ids are the digests of the uncompressed layer tars, in order from the
    first (bottom) layer", one per layer of the manifest.
    """

    architecture: str
    os: str
    config: ContainerConfig = field(default_factory=ContainerConfig)
    rootfs_diff_ids: tuple[str, ...] = ()
    history: tuple[History, ...] = ()
    created: str | None = None
    author: str | None = None
    variant: str | None = None
    os_version: str | None = None
    extra: dict = field(default_factory=dict, hash=False)

    def to_json(self) -> dict:
        out = _write(self, _IMAGE_CONFIG)
        out["config"] = self.config.to_json()
        out["rootfs"] = {"type": "layers", "diff_ids": list(self.rootfs_diff_ids)}
        if self.history:
            out["history"] = [h.to_json() for h in self.history]
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, d: Any, where: str = "image config") -> "ImageConfig":
        kwargs, extra = _read(d, _IMAGE_CONFIG, where, skip=("config", "rootfs", "history"))
        _require(d, "architecture", where)
        _require(d, "os", where)
        rootfs = _require(d, "rootfs", where)
        if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
            raise ModelError(f"{where}: rootfs.type must be 'layers', got {rootfs!r:.80}")
        diff_ids = rootfs.get("diff_ids") or []
        diff_ids = _check(diff_ids, "strs", where, "rootfs.diff_ids")
        for i, diff_id in enumerate(diff_ids):
            if not _DIGEST_GRAMMAR.match(diff_id):
                raise ModelError(f"{where}: rootfs.diff_ids[{i}] is not a digest: {diff_id!r}")
        history = d.get("history") or []
        if not isinstance(history, list):
            raise ModelError(f"{where}: 'history' must be a list")
        config = d.get("config")
        return cls(
            **kwargs,
            config=ContainerConfig.from_json(config, f"{where}: config") if config is not None else ContainerConfig(),
            rootfs_diff_ids=diff_ids,
            history=tuple(History.from_json(h, f"{where}: history[{i}]") for i, h in enumerate(history)),
            extra=extra,
        )

    @property
    def platform(self) -> Platform:
        return Platform(self.architecture, self.os, os_version=self.os_version, variant=self.variant)


# -- manifest and index ----------------------------------------------------------------------


@model(frozen=True)
class Manifest:
    """An image manifest: one config descriptor and the layer descriptors, bottom layer first.

    ``media_type`` is OCI's, or Docker's schema2 (``...distribution.manifest.v2+json``).
    """

    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str = mt.OCI_MANIFEST
    annotations: dict | None = _dict_field()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    extra: dict = field(default_factory=dict, hash=False)

    def to_json(self) -> dict:
        out: dict[str, Any] = {"schemaVersion": 2}
        if self.media_type is not None:
            out["mediaType"] = self.media_type
        if self.artifact_type is not None:
            out["artifactType"] = self.artifact_type
        out["config"] = self.config.to_json()
        out["layers"] = [layer.to_json() for layer in self.layers]
        if self.subject is not None:
            out["subject"] = self.subject.to_json()
        if self.annotations is not None:
            out["annotations"] = dict(self.annotations)
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, d: Any, where: str = "manifest") -> "Manifest":
        table = (("media_type", "mediaType", "str"), ("artifact_type", "artifactType", "str"), ("annotations", "annotations", "strmap"))
        kwargs, extra = _read(d, table, where, skip=("schemaVersion", "config", "layers", "subject"))
        _schema_version(d, where)
        if kwargs["media_type"] in mt.INDEX_TYPES:
            raise ModelError(f"{where}: is an index ({kwargs['media_type']}), not a manifest")
        if kwargs["media_type"] is None:
            kwargs["media_type"] = mt.OCI_MANIFEST  # image-spec 1.0.0 manifests may leave it out
        layers = _require(d, "layers", where)
        if not isinstance(layers, list):
            raise ModelError(f"{where}: 'layers' must be a list")
        subject = d.get("subject")
        return cls(
            config=Descriptor.from_json(_require(d, "config", where), f"{where}: config"),
            layers=tuple(Descriptor.from_json(x, f"{where}: layers[{i}]") for i, x in enumerate(layers)),
            subject=None if subject is None else Descriptor.from_json(subject, f"{where}: subject"),
            **kwargs,
            extra=extra,
        )


@model(frozen=True)
class Index:
    """An image index: descriptors of manifests (or of nested indexes), e.g. one per platform.

    A layout's ``index.json`` is an index; its entries carry the ref name annotation.
    """

    manifests: tuple[Descriptor, ...] = ()
    annotations: dict | None = _dict_field()
    media_type: str | None = mt.OCI_INDEX
    subject: Descriptor | None = None
    artifact_type: str | None = None
    extra: dict = field(default_factory=dict, hash=False)

    def to_json(self) -> dict:
        out: dict[str, Any] = {"schemaVersion": 2}
        if self.media_type is not None:
            out["mediaType"] = self.media_type
        if self.artifact_type is not None:
            out["artifactType"] = self.artifact_type
        out["manifests"] = [m.to_json() for m in self.manifests]
        if self.subject is not None:
            out["subject"] = self.subject.to_json()
        if self.annotations is not None:
            out["annotations"] = dict(self.annotations)
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, d: Any, where: str = "index") -> "Index":
        table = (("media_type", "mediaType", "str"), ("artifact_type", "artifactType", "str"), ("annotations", "annotations", "strmap"))
        kwargs, extra = _read(d, table, where, skip=("schemaVersion", "manifests", "subject"))
        _schema_version(d, where)
        if kwargs["media_type"] in mt.MANIFEST_TYPES:
            raise ModelError(f"{where}: is a manifest ({kwargs['media_type']}), not an index")
        manifests = _require(d, "manifests", where)
        if not isinstance(manifests, list):
            raise ModelError(f"{where}: 'manifests' must be a list")
        subject = d.get("subject")
        return cls(
            manifests=tuple(Descriptor.from_json(x, f"{where}: manifests[{i}]") for i, x in enumerate(manifests)),
            subject=None if subject is None else Descriptor.from_json(subject, f"{where}: subject"),
            **kwargs,
            extra=extra,
        )
