"""A build cache shared through a registry or a directory: ``--cache-to`` and ``--cache-from``.

``--cache-to type=registry,ref=REG/REPO:TAG[,mode=min|max]`` (or ``type=local,dest=DIR
[,tag=T]``) exports, after a build, the cache entries of its steps: for each step, its key
(:mod:`.cachekeys`) and the image the step produced (manifest, config and layers, as the store
keeps them). ``mode=min`` (the default, as BuildKit's) exports the steps of the stage that
makes the result; ``mode=max`` those of every stage that was built. ``--cache-from
type=registry,ref=...`` (or a bare ``REF``, or ``type=local,src=DIR[,tag=T]``) imports one: a
step whose key is not in the local cache is looked up there, and on a hit the step does not
run. Several ``--cache-from`` are asked in order. A hit brings only its image's manifest and
config into the store; its layers (what the store lacks of them) come when a step reads the
image's files or when the result is stored, all at once (:meth:`SharedCache.complete`), and
the hit is recorded in the local cache once they are all there.

**The format** (docs/cache.md), in the spirit of BuildKit's cache manifests but made only of
what every registry stores: an OCI image index whose ``manifests`` are the step images'
manifests, each entry annotated with the step's key::

    {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
     "annotations": {"dev.capstone.cache.version": "capstone-build-1",
                     "dev.capstone.cache.format": "1", "dev.capstone.cache.mode": "max"},
     "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": "sha256:...", "size": 1234, "platform": {...},
                    "annotations": {"dev.capstone.cache.key": "<64 hex>",
                                    "dev.capstone.cache.step": "RUN make"}}, ...]}

The version is :data:`~.cachekeys.CACHE_VERSION`: the meaning of the keys. A cache of another
version (or no capstone cache at all) is ignored with one line; so is a cache that cannot be
reached or is not there yet (the first build of a CI pipeline). A failed export fails the
build, unless ``ignore-error=true``.

In a registry the index is pushed under the ref's tag (blobs first, mounted when the registry
has them in another repository, then each step manifest by digest). In a directory it is an
OCI image layout whose ``index.json`` names the cache index with the tag (default
``latest``), as BuildKit's local cache does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from part1_overview import model, replace
from part2_manual_oci import Descriptor, Index, LayoutError, Manifest, ModelError, OCILayout, Platform, canonical_json
from part2_manual_oci import mediatypes as mt
from part3_go_style_builder import Image

from ..errors import CapstoneError
from .cachekeys import CACHE_VERSION, cache_record
from .optionfields import option_fields

ANNOTATION_VERSION = "dev.capstone.cache.version"
ANNOTATION_FORMAT = "dev.capstone.cache.format"
ANNOTATION_MODE = "dev.capstone.cache.mode"
ANNOTATION_KEY = "dev.capstone.cache.key"
ANNOTATION_STEP = "dev.capstone.cache.step"
#: the shape of the index itself (the keys' meaning is CACHE_VERSION)
CACHE_FORMAT = "1"
MODES = ("min", "max")
#: a cache index with more entries than this is refused (each is a small descriptor)
MAX_ENTRIES = 100_000


class CacheSpecError(CapstoneError):
    """A ``--cache-to``/``--cache-from`` value that cannot be used."""


@model(frozen=True)
class CacheSpec:
    """One ``--cache-to`` or ``--cache-from``: ``type`` ``registry`` (``ref``) or ``local``
    (``path``, ``tag``); ``mode`` (export); ``ignore_error`` (export)."""

    type: str
    ref: str | None = None
    path: str | None = None
    tag: str = "latest"
    mode: str = "min"
    ignore_error: bool = False

    def __str__(self) -> str:
        return self.ref if self.type == "registry" else f"{self.path} (tag {self.tag})"


def parse_cache_spec(text: str, *, export: bool) -> CacheSpec:
    """``type=registry,ref=R[,mode=max]``, ``type=local,dest=DIR`` / ``src=DIR``, or a bare
    registry reference (as ``docker buildx`` reads them)."""
    flag = "--cache-to" if export else "--cache-from"
    if "=" not in text:
        return _registry_spec(text, flag)
    fields = {key: value.strip() for key, value in option_fields(flag, text, CacheSpecError).items()}
    kind = fields.pop("type", "registry" if "ref" in fields else "")
    allowed = {"registry": {"ref", "mode", "ignore-error"} if export else {"ref"},
               "local": {"dest", "tag", "mode", "ignore-error"} if export else {"src", "tag"}}
    if kind not in allowed:
        raise CacheSpecError(f"{flag} {text!r}: type must be registry or local")
    unknown = sorted(set(fields) - allowed[kind])
    if unknown:
        raise CacheSpecError(f"{flag} {text!r}: unknown {'key' if len(unknown) == 1 else 'keys'} "
                             f"{', '.join(unknown)} for type={kind} (known: {', '.join(sorted(allowed[kind]))})")
    mode = fields.get("mode", "min")
    if mode not in MODES:
        raise CacheSpecError(f"{flag} {text!r}: mode must be min or max")
    ignore = fields.get("ignore-error", "false").lower()
    if ignore not in ("true", "false"):
        raise CacheSpecError(f"{flag} {text!r}: ignore-error must be true or false")
    if kind == "registry":
        if not fields.get("ref"):
            raise CacheSpecError(f"{flag} {text!r}: type=registry needs ref=REGISTRY/REPOSITORY[:TAG]")
        spec = _registry_spec(fields["ref"], flag)
        return replace(spec, mode=mode, ignore_error=ignore == "true")
    where = fields.get("dest" if export else "src")
    if not where:
        raise CacheSpecError(f"{flag} {text!r}: type=local needs {'dest' if export else 'src'}=DIR")
    tag = fields.get("tag", "latest")
    from ..refs import InvalidName, parse_name

    try:
        parse_name(f"x:{tag}")
    except InvalidName:
        raise CacheSpecError(f"{flag} {text!r}: invalid tag {tag!r}") from None
    return CacheSpec("local", path=where, tag=tag, mode=mode, ignore_error=ignore == "true")


def _registry_spec(ref: str, flag: str) -> CacheSpec:
    from ..refs import InvalidName, parse_name

    try:
        name = parse_name(ref.removeprefix("docker://"))
    except InvalidName as e:
        raise CacheSpecError(f"{flag} ref={ref}: {e}") from None
    if name.digest is not None and flag == "--cache-to":
        raise CacheSpecError(f"{flag} ref={ref}: a cache is pushed under a tag, not a digest")
    return CacheSpec("registry", ref=name.name)


@model(frozen=True)
class CacheEntry:
    """A step of a build for the exported cache: its ``key``, the ``manifest`` of the image it
    produced, the instruction (``step``, for people reading the index) and whether it belongs
    to the stage that made the result (``target``: what ``mode=min`` exports)."""

    key: str
    manifest: Descriptor
    step: str
    target: bool


# -- import ------------------------------------------------------------------------------------


class CacheSource:
    """A ``--cache-from``: its index is read on first use; :meth:`lookup` brings a hit's image
    into the store. ``warn`` hears the one line about a cache that is ignored."""

    def __init__(self, store, spec: CacheSpec, *, options=None, progress=None,
                 warn: Callable[[str], None] = lambda _line: None) -> None:
        self.store = store
        self.spec = spec
        self.options = options
        self.progress = progress
        self.warn = warn
        self._entries: dict[str, Descriptor] | None = None
        self._client = None
        self._layout: OCILayout | None = None
        #: keys answered from this cache
        self.hits = 0

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def forked(self) -> None:
        """In a child process: the client's connections are the parent's too (two processes
        on one HTTP connection would mix their requests), so this process opens its own."""
        self._client = None

    def _registry_client(self):
        from ..refs import parse_name
        from ..registry import RegistryClient

        if self._client is None:
            ref = parse_name(self.spec.ref)
            self._client = RegistryClient(ref.registry, options=self.options, repository=ref.repository,
                                          on_note=(self.progress.note if self.progress is not None else None))
        return self._client

    # reading the index
    def entries(self) -> dict[str, Descriptor]:
        """The cache's keys and their manifests ({} for a cache that is ignored)."""
        if self._entries is not None:
            return self._entries
        self._entries = {}
        try:
            data, where = self._read_index()
        except CapstoneError as e:
            self.warn(f"--cache-from {self.spec}: {e}: ignored")
            return self._entries
        except (LayoutError, OSError) as e:
            self.warn(f"--cache-from {self.spec}: {e}: ignored")
            return self._entries
        if data is None:
            return self._entries
        try:
            index = Index.from_json(json.loads(data), where)
        except (ValueError, ModelError) as e:  # bad JSON, or not an index: not a cache
            self.warn(f"--cache-from {self.spec}: not a build cache ({str(e).splitlines()[0]}): ignored")
            return self._entries
        annotations = index.annotations or {}
        version = annotations.get(ANNOTATION_VERSION)
        if version is None:
            self.warn(f"--cache-from {self.spec}: not a capstone build cache (no {ANNOTATION_VERSION}): ignored")
            return self._entries
        if version != CACHE_VERSION or annotations.get(ANNOTATION_FORMAT) != CACHE_FORMAT:
            self.warn(f"--cache-from {self.spec}: a cache of version {version} (format "
                      f"{annotations.get(ANNOTATION_FORMAT)}), this build reads {CACHE_VERSION} (format "
                      f"{CACHE_FORMAT}): ignored")
            return self._entries
        if len(index.manifests) > MAX_ENTRIES:
            self.warn(f"--cache-from {self.spec}: {len(index.manifests)} entries, more than {MAX_ENTRIES}: ignored")
            return self._entries
        for desc in index.manifests:
            key = (desc.annotations or {}).get(ANNOTATION_KEY)
            if key and desc.media_type in mt.MANIFEST_TYPES:
                self._entries.setdefault(key, replace(desc, annotations=None, platform=None))
        return self._entries

    def _read_index(self) -> tuple[bytes | None, str]:
        if self.spec.type == "local":
            self._layout = OCILayout.open(Path(self.spec.path))
            found = [d for d in self._layout.index().manifests if d.ref_name == self.spec.tag]
            if not found:
                self.warn(f"--cache-from {self.spec}: no cache tagged {self.spec.tag!r} in the layout: nothing imported")
                return None, ""
            return self._layout.read_blob(found[-1]), f"{self.spec.path}: {found[-1].digest}"
        from ..refs import parse_name
        from ..registry import ManifestUnknown

        ref = parse_name(self.spec.ref)
        try:
            data, media_type, _digest = self._registry_client().get_manifest(ref.repository, ref.digest or ref.tag)
        except ManifestUnknown:
            self.warn(f"--cache-from {self.spec}: not found: nothing imported")
            return None, ""
        if media_type not in mt.INDEX_TYPES:
            raise CacheSpecError(f"not a build cache (a {media_type})")
        return data, self.spec.ref

    # answering a key
    def lookup(self, key: str) -> Image | None:
        """The image recorded for ``key`` in this cache, or None. Only its manifest and config
        are brought into the store (what the keys after it and the image id need): its layers
        come when something needs them (:meth:`SharedCache.complete`)."""
        desc = self.entries().get(key)
        if desc is None:
            return None
        if not self.store.has_blob(desc.digest):
            self._fetch_manifest(desc)
        image = self.store.load_manifest(desc.digest, whole=False)
        self.hits += 1
        return image

    def _fetch_manifest(self, desc: Descriptor) -> None:
        """The manifest ``desc`` and its config (the manifest last: it names the config)."""
        store = self.store
        if self.spec.type == "local":
            manifest = self._layout.read_manifest(desc)
            self.fetch([manifest.config])
            with self._layout.open_blob(desc) as f:
                store.put_blob(f, desc.media_type, expected_digest=desc.digest)
            return
        from ..refs import parse_name

        ref = parse_name(self.spec.ref)
        data, media_type, digest = self._registry_client().get_manifest(ref.repository, desc.digest, desc.size)
        manifest = Manifest.from_json(json.loads(data), f"{self.spec}: {digest}")
        self.fetch([manifest.config])
        store.put_blob(data, media_type, expected_digest=digest)

    def fetch(self, blobs: Sequence[Descriptor]) -> None:
        """The ``blobs`` the store lacks, from this cache (from a registry several at a time,
        each checked against its digest and size)."""
        missing = [b for b in {b.digest: b for b in blobs}.values() if not self.store.has_blob(b.digest, b.size)]
        if not missing:
            return
        if self.spec.type == "local":
            for blob in missing:
                with self._layout.open_blob(blob) as f:
                    self.store.put_blob(f, blob.media_type, expected_digest=blob.digest)
            return
        from ..refs import parse_name
        from ..registry import fetch_blobs
        from ..registry.transfer import as_progress

        fetch_blobs(self.store, self._registry_client(), parse_name(self.spec.ref).repository, missing,
                    as_progress(self.progress), where=f"cache {self.spec}")


class SharedCache:
    """What a build shares: the ``--cache-from`` sources it asks after the local cache, and
    the entries of its steps for ``--cache-to``.

    A hit brings only its image's manifest and config into the store; the layers come when
    :meth:`complete` is asked for an image: before a step reads its files (a RUN on it, a
    ``COPY --from`` it), for the build's result, for a ``--cache-to`` export, several at a
    time, where one step after another used to wait for its own. So a fully cached build
    fetches the layers of its result only, never those of a stage it did not need to read.
    A hit goes into the local cache once its layers are all in the store: an entry there
    always names a whole image."""

    def __init__(self, sources: Sequence[CacheSource] = ()) -> None:
        self.sources = list(sources)
        self.entries: list[CacheEntry] = []
        #: the source each layer of a hit was named by (layer digest -> source)
        self._origin: dict[str, CacheSource] = {}
        #: hits not yet in the local cache: their layers are not all in the store yet
        self._unrecorded: list[tuple[str, Image]] = []

    def open(self) -> None:
        """Read every source's index now (a cache that is ignored says so before the first step)."""
        for source in self.sources:
            source.entries()

    def lookup(self, key: str) -> Image | None:
        for source in self.sources:
            image = source.lookup(key)
            if image is not None:
                for layer in image.layers:
                    self._origin.setdefault(layer.descriptor.digest, source)
                if self._whole(image):
                    cache_record(source.store, key, image)
                else:
                    self._unrecorded.append((key, image))
                return image
        return None

    def complete(self, image: Image) -> None:
        """Bring the layers of ``image`` the store lacks from the caches that named them, then
        record in the local cache the hits that are whole now."""
        if not self.sources:
            return
        store = self.sources[0].store
        missing = [layer.descriptor for layer in image.layers
                   if not store.has_blob(layer.descriptor.digest, layer.descriptor.size)]
        if not missing and not self._unrecorded:
            return
        by_source: dict[CacheSource, list[Descriptor]] = {}
        for desc in missing:
            # no origin: a layer of this build's own image, which the first cache may hold
            by_source.setdefault(self._origin.get(desc.digest, self.sources[0]), []).append(desc)
        for source, blobs in by_source.items():
            source.fetch(blobs)
        self._record_whole()

    def complete_entries(self) -> None:
        """Every image of :attr:`entries` whole in the store (what ``--cache-to`` exports)."""
        if not self.sources:
            return
        store = self.sources[0].store
        for digest in {e.manifest.digest for e in self.entries}:
            self.complete(store.load_manifest(digest, whole=False))

    def _whole(self, image: Image) -> bool:
        store = self.sources[0].store
        return all(store.has_blob(layer.descriptor.digest, layer.descriptor.size) for layer in image.layers)

    def _record_whole(self) -> None:
        left = []
        for key, image in self._unrecorded:
            if self._whole(image):
                cache_record(self.sources[0].store, key, image)
            else:
                left.append((key, image))
        self._unrecorded = left

    def add(self, key: str, manifest: Descriptor, step: str, target: bool) -> None:
        self.entries.append(CacheEntry(key, manifest, step, target))

    # a stage built in a child process (see .schedule): what it did comes back to the builder
    def forked(self) -> tuple[int, list[int]]:
        """In the child: its own connections; returns where it starts, for :meth:`since`."""
        for source in self.sources:
            source.forked()
        return len(self.entries), [source.hits for source in self.sources]

    def since(self, start: tuple[int, list[int]]) -> tuple[list[CacheEntry], list[int], dict[str, int]]:
        """The entries added and the hits of each source since ``start``, and which source
        named each layer of a hit (picklable)."""
        count, hits = start
        origins = {digest: self.sources.index(source) for digest, source in self._origin.items()}
        return self.entries[count:], [source.hits - h for source, h in zip(self.sources, hits)], origins

    def merge(self, done: tuple[list[CacheEntry], list[int], dict[str, int]]) -> None:
        """Take in what a child's :meth:`since` gave."""
        entries, hits, origins = done
        self.entries.extend(entries)
        for source, n in zip(self.sources, hits):
            source.hits += n
        for digest, i in origins.items():
            self._origin.setdefault(digest, self.sources[i])

    def close(self) -> None:
        for source in self.sources:
            source.close()


# -- export ------------------------------------------------------------------------------------


def cache_index(entries: Sequence[CacheEntry], mode: str, store) -> Index:
    """The cache index of ``entries`` (those of the target stage for ``mode=min``)."""
    chosen = [e for e in entries if mode == "max" or e.target]
    manifests = []
    seen: set[tuple[str, str]] = set()
    for e in chosen:
        if (e.key, e.manifest.digest) in seen:
            continue
        seen.add((e.key, e.manifest.digest))
        config = store.read_config(store.read_manifest(e.manifest))
        platform = Platform(config.architecture, config.os, variant=config.variant)
        manifests.append(Descriptor(e.manifest.media_type, e.manifest.digest, e.manifest.size,
                                    annotations={ANNOTATION_KEY: e.key, ANNOTATION_STEP: e.step[:200]},
                                    platform=platform))
    return Index(manifests=tuple(manifests), annotations={
        ANNOTATION_VERSION: CACHE_VERSION, ANNOTATION_FORMAT: CACHE_FORMAT, ANNOTATION_MODE: mode})


def export_cache(store, spec: CacheSpec, entries: Iterable[CacheEntry], *, options=None,
                 progress=None) -> tuple[Descriptor, int]:
    """Write the cache of ``entries`` where ``spec`` says; the cache index's descriptor and
    how many entries it has."""
    index = cache_index(list(entries), spec.mode, store)
    data = canonical_json(index)
    index_desc = store.put_blob(data, mt.OCI_INDEX)
    manifests = list({d.digest: d for d in index.manifests}.values())
    blobs: dict[str, Descriptor] = {}
    for m in manifests:
        manifest = store.read_manifest(m)
        for b in (manifest.config, *manifest.layers):
            blobs.setdefault(b.digest, b)
    if spec.type == "local":
        try:
            layout = OCILayout.create(Path(spec.path))
        except (OSError, LayoutError) as e:
            raise CacheSpecError(f"--cache-to {spec}: cannot use {spec.path} as an OCI layout: {e}") from None
        for b in [*blobs.values(), *manifests, index_desc]:
            if not layout.has_blob(b.digest):
                with store.open_blob(b) as f:
                    layout.put_blob(f, b.media_type, expected_digest=b.digest)
        layout.add_manifest(index_desc, spec.tag)  # index.json last
        return index_desc, len(index.manifests)
    from ..refs import parse_name
    from ..registry import RegistryClient, push_blobs
    from ..registry.transfer import as_progress

    ref = parse_name(spec.ref)
    shown = as_progress(progress)
    with RegistryClient(ref.registry, options=options, repository=ref.repository, on_note=shown.note) as client:
        push_blobs(store, client, ref.repository, blobs.values(), shown)
        for m in manifests:
            client.put_manifest(ref.repository, m.digest, store.read_blob(m), m.media_type)
        client.put_manifest(ref.repository, ref.tag, data, mt.OCI_INDEX)
    return index_desc, len(index.manifests)


__all__ = ["CacheEntry", "CacheSource", "CacheSpec", "CacheSpecError", "SharedCache", "cache_index", "export_cache",
           "parse_cache_spec"]
