"""Names and image ids: which manifest a name, an image id or a digest stands for.

Each tagged image is an index.json entry of the store's layout named
(``org.opencontainers.image.ref.name``) by its normalized name; ``STORE/ids/<config hex>``
records the manifest descriptor of each image id, tagged or not (a cached build step's image).
For a multi-platform index, a name stands for the host's image unless a platform is asked for,
chosen by part 2's ``select_platform``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Container
from contextlib import AbstractContextManager
from pathlib import Path
from typing import NamedTuple

from part1_overview import replace
from part2_manual_oci import (
    Descriptor,
    DigestError,
    Index,
    LayoutError,
    Manifest,
    OCILayout,
    Platform,
    PlatformNotFound,
    canonical_json,
    digest_hex,
    make_durable,
    select_platform,
    write_file_atomic,
)
from part2_manual_oci import mediatypes as mt

from ..refs import InvalidName, is_image_id, parse_name
from .cache import HEX64
from .errors import AmbiguousImage, ImageInUse, ImageNotFound, StoreError

MIN_ID_PREFIX = 4


class ImageEntry(NamedTuple):
    """One image of ``store.images()``: its names, manifest descriptor, created time, size."""

    names: list[str]
    descriptor: Descriptor
    created: str | None
    size: int


class Names:
    """The names and ids of the images of ``layout``; ``ids``: the directory of id records;
    ``lock``: the store's writer lock; ``on_lookup(name)`` runs before a name is looked up (the
    store makes its embedded base there); ``where``: the store, as messages name it."""

    def __init__(self, layout: OCILayout, ids: Path, *, lock: Callable[[], AbstractContextManager],
                 on_lookup: Callable[[str], object], where: Path) -> None:
        self.layout = layout
        self.ids = ids
        self._lock = lock
        self._on_lookup = on_lookup
        self.where = where

    def entries(self) -> tuple[Descriptor, ...]:
        return self.layout.index().manifests

    def has_name(self, name: str) -> bool:
        return any(d.ref_name == name for d in self.entries())

    # -- lookups -----------------------------------------------------------------------------------
    def resolve(self, name_or_id: str) -> Descriptor | None:
        """The manifest descriptor of an image: by name (normalized), by a manifest or image
        digest ``sha256:...``, or by a unique prefix (>= 4 hex digits) of an image id."""
        text = name_or_id.strip()
        if is_image_id(text):
            digest = text if text.startswith("sha256:") else "sha256:" + text
            return self._by_digest(digest)
        try:
            ref = parse_name(text)
        except InvalidName:
            ref = None
        if ref is not None:
            self._on_lookup(ref.name)
            if ref.digest is not None:
                found = self._by_digest(ref.digest)
                if found is not None:
                    return found
            for entry in reversed(self.entries()):
                if entry.ref_name == ref.name:
                    return plain(entry)
        prefix = text[len("sha256:"):] if text.startswith("sha256:") else text
        if len(prefix) >= MIN_ID_PREFIX and re.fullmatch(r"[a-f0-9]+", prefix):
            return self._by_id_prefix(prefix)
        if ref is None:
            parse_name(text)  # raise the name's own error
        return None

    def descriptor(self, name_or_descriptor: str | Descriptor) -> Descriptor:
        """A descriptor as it is, or the one a name or id resolves to (ImageNotFound if none)."""
        if isinstance(name_or_descriptor, Descriptor):
            return name_or_descriptor
        desc = self.resolve(name_or_descriptor)
        if desc is None:
            raise ImageNotFound(f"no image {name_or_descriptor!r} in the store {self.where}")
        return desc

    def _by_digest(self, digest: str) -> Descriptor | None:
        for entry in self.entries():
            if entry.digest == digest:
                return plain(entry)
        recorded = self.recorded_id(digest_hex(digest))
        if recorded is not None:
            return recorded
        for entry in self.entries():  # an image id of an image tagged by another tool
            if self.config_digest(entry) == digest:
                return plain(entry)
        if self.layout.has_blob(digest):  # an untagged manifest (a cached build step)
            found = self.layout.describe(digest)
            if found.media_type in mt.MANIFEST_TYPES or found.media_type in mt.INDEX_TYPES:
                return found
        return None

    def _by_id_prefix(self, prefix: str) -> Descriptor | None:
        found: dict[str, Descriptor] = {}
        for entry in self.ids.iterdir():
            if entry.name.startswith(prefix) and HEX64.match(entry.name):
                desc = self.recorded_id(entry.name)
                if desc is not None:
                    found[entry.name] = desc
        for entry in self.entries():
            config = self.config_digest(entry)
            if config is not None and digest_hex(config).startswith(prefix):
                found.setdefault(digest_hex(config), plain(entry))
        if len(found) > 1:
            ids = ", ".join(sorted(k[:12] for k in found))
            raise AmbiguousImage(f"image id prefix {prefix!r} matches {len(found)} images ({ids}): give more digits")
        return next(iter(found.values()), None)

    # -- image ids ---------------------------------------------------------------------------------
    def recorded_id(self, config_hex: str) -> Descriptor | None:
        try:
            data = json.loads((self.ids / config_hex).read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        desc = Descriptor.from_json(data, f"{self.ids}/{config_hex}")
        return desc if self.layout.has_blob(desc.digest) else None

    def record_id(self, config_digest: str, manifest: Descriptor) -> None:
        # not fsynced: a lost or torn record reads as none (recorded_id), and lookups by id
        # fall back to the names
        write_file_atomic(self.ids / digest_hex(config_digest), canonical_json(plain(manifest)), durable=False)

    def recorded(self) -> list[Descriptor]:
        """The manifest of every recorded image id, in the order of the ids."""
        out = []
        for entry in sorted(self.ids.iterdir()):
            desc = self.recorded_id(entry.name) if HEX64.match(entry.name) else None
            if desc is not None:
                out.append(desc)
        return out

    def prune_ids(self, keep: Container[str]) -> None:
        """Forget the image ids whose manifest is not in ``keep`` (digests)."""
        for entry in self.ids.iterdir():
            desc = self.recorded_id(entry.name) if HEX64.match(entry.name) else None
            if desc is None or desc.digest not in keep:
                entry.unlink()

    # -- platforms ---------------------------------------------------------------------------------
    def platform_manifest(self, desc: Descriptor, platform: Platform | None = None) -> Descriptor:
        """A manifest descriptor; for an index, its entry for ``platform`` (default: this
        host), chosen by part 2's ``select_platform``."""
        if desc.media_type not in mt.INDEX_TYPES:
            return desc
        try:
            entry = select_platform(self.layout.read_index(desc).manifests, platform, f"index {desc.digest}",
                                    platform_of=self._manifest_platform)
        except PlatformNotFound as e:
            raise ImageNotFound(str(e)) from None
        return self.platform_manifest(entry, platform)

    def _manifest_platform(self, desc: Descriptor) -> Platform | None:
        """The platform of a stored manifest, read from its config (None for anything else)."""
        if desc.media_type not in mt.MANIFEST_TYPES or not self.layout.has_blob(desc.digest):
            return None
        return self.layout.read_config(self.layout.read_manifest(desc)).platform

    def _shown_manifest(self, desc: Descriptor) -> Descriptor:
        """The manifest that stands for an image in listings: this host's, else (an index with
        no image for this host) its first."""
        try:
            return self.platform_manifest(desc)
        except ImageNotFound:
            return self.platform_manifest(self.layout.read_index(desc).manifests[0])

    def manifest(self, name_or_descriptor: str | Descriptor) -> Manifest:
        """The image's manifest (the host platform's one for a multi-platform index)."""
        return self.layout.read_manifest(self.platform_manifest(self.descriptor(name_or_descriptor)))

    def config_digest(self, desc: Descriptor) -> str | None:
        try:
            return self.layout.read_manifest(self.platform_manifest(desc)).config.digest
        except (LayoutError, StoreError, DigestError):
            return None

    # -- naming ------------------------------------------------------------------------------------
    def names_of(self, descriptor: Descriptor) -> list[str]:
        """The normalized names that tag this manifest, in index.json order."""
        return [d.ref_name for d in self.entries() if d.digest == descriptor.digest and d.ref_name]

    def set_names(self, names: list[str], descriptor: Descriptor) -> None:
        """Tag ``descriptor`` with each of ``names`` (normalized): index.json last."""
        if not self.layout.has_blob(descriptor.digest):
            raise StoreError(f"cannot tag {descriptor.digest}: not in the store {self.where}")
        bare = plain(descriptor)
        wanted = {n: replace(bare, annotations={mt.ANNOTATION_REF_NAME: n}) for n in names}

        def renamed(index: Index) -> Index:
            # a name that already names this image keeps its place in the list: a rebuild of one
            # of several tagged images leaves index.json as it is (update_index writes only a change)
            kept = tuple(d for d in index.manifests if d.ref_name not in wanted or d == wanted[d.ref_name])
            present = {d.ref_name for d in kept}
            return replace(index, manifests=kept + tuple(d for n, d in wanted.items() if n not in present))

        index = self.layout.index()
        if renamed(index) == index:
            return  # every name names it already: what they reach was made durable when they were set
        # a build writes its step images without fsync (Store.commit): what a name reaches is
        # made durable before index.json names it, so that a crash never leaves a name to a
        # manifest, config or index the disk did not keep
        make_durable(self.layout.blob_path(d) for d in self._metadata_blobs(descriptor))
        self.layout.update_index(renamed)

    def _metadata_blobs(self, descriptor: Descriptor) -> list[str]:
        """The digests of ``descriptor`` and, below it, of every index, manifest and config the
        store has (an index pulled for one platform lists manifests it lacks; not the layers: a
        layer blob is never fsynced, see part 3's write_layer_blob)."""
        out, todo = [], [descriptor]
        while todo:
            desc = todo.pop()
            if not self.layout.has_blob(desc.digest):
                continue
            out.append(desc.digest)
            if desc.media_type in mt.INDEX_TYPES:
                todo.extend(self.layout.read_index(desc).manifests)
            elif desc.media_type in mt.MANIFEST_TYPES:  # its config only: no model of every layer
                doc = self.layout.read_json(desc)
                todo.append(Descriptor.from_json(doc.get("config") if isinstance(doc, dict) else None,
                                                 f"manifest {desc.digest}: config"))
        return out

    def tag(self, name: str, descriptor: Descriptor | str) -> Descriptor:
        """Name an image (a descriptor, or a name/id to resolve) ``name``; returns the entry."""
        normalized = parse_name(name).name
        with self._lock():
            desc = self.descriptor(descriptor)
            if desc.media_type in mt.MANIFEST_TYPES:
                config = self.layout.read_manifest(desc).config.digest
                if self.recorded_id(digest_hex(config)) is None:
                    self.record_id(config, desc)
            self.set_names([normalized], desc)
        return replace(plain(desc), annotations={mt.ANNOTATION_REF_NAME: normalized})

    def untag(self, name: str) -> None:
        """Drop the name (the image's blobs stay until ``prune``)."""
        normalized = parse_name(name).name
        with self._lock():
            if normalized not in self.layout.refs():
                raise ImageNotFound(f"no image named {normalized} in the store {self.where}")
            self.layout.remove_ref(normalized)

    def images(self, *, all: bool = False) -> list[ImageEntry]:
        """Tagged images, newest first (``all``: also the untagged ones, such as build steps)."""
        by_digest: dict[str, tuple[list[str], Descriptor]] = {}
        for entry in self.entries():
            names, _ = by_digest.setdefault(entry.digest, ([], plain(entry)))
            if entry.ref_name:
                names.append(entry.ref_name)
        if all:
            for desc in self.recorded():
                by_digest.setdefault(desc.digest, ([], desc))
        out = []
        for names, desc in by_digest.values():
            try:
                manifest = self.layout.read_manifest(self._shown_manifest(desc))
                config = self.layout.read_config(manifest)
            except (LayoutError, StoreError, DigestError):
                continue
            size = manifest.config.size + sum(layer.size for layer in manifest.layers)
            out.append(ImageEntry(names, desc, config.created, size))
        out.sort(key=lambda e: e.created or "", reverse=True)
        return out

    def remove(self, name_or_id: str, *, force: bool, cached: Callable[[str], bool]) -> list[tuple[str, str]]:
        """``rmi`` (see ``Store.remove``); ``cached(digest)``: whether the build cache refers
        to a manifest (its id then keeps resolving)."""
        with self._lock():
            desc = self.descriptor(name_or_id)
            names = self.names_of(desc)
            try:
                asked = parse_name(name_or_id).name
            except InvalidName:
                asked = None
            if asked in names:
                to_untag = [asked]
            else:
                if len(names) > 1 and not force:
                    shown = ", ".join(names)
                    raise ImageInUse(f"image {name_or_id} is tagged {len(names)} times ({shown}): remove the names "
                                     "one by one, or force")
                to_untag = names
            image_id = self.config_digest(desc)
            self.layout.update_index(lambda index: replace(index, manifests=tuple(
                d for d in index.manifests if not (d.digest == desc.digest and d.ref_name in to_untag))))
            lines = [("Untagged", parse_name(n).short) for n in to_untag]
            if not self.names_of(desc):
                if image_id is not None and not cached(desc.digest):
                    (self.ids / digest_hex(image_id)).unlink(missing_ok=True)
                lines.append(("Deleted", image_id or desc.digest))
        return lines


def plain(desc: Descriptor) -> Descriptor:
    """A descriptor without its ref name annotation (the same image under any name)."""
    annotations = {k: v for k, v in (desc.annotations or {}).items() if k != mt.ANNOTATION_REF_NAME}
    return replace(desc, annotations=annotations or None)
