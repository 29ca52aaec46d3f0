"""The local store: an OCI image layout, layer snapshots, the build cache, locks.

::

    STORE/oci/                 an OCI image layout; each tagged image is an index.json entry
                               whose org.opencontainers.image.ref.name is its normalized name
    STORE/ids/<config hex>     image id -> manifest descriptor (tagged or not)
    STORE/snapshots/<hex>/     a layer extracted once as an overlay lower (diff_id hex)
    STORE/snapshot-blobs/<hex> the blobs that snapshot was checked against (``check_snapshot``)
    STORE/cache/<key hex>      build cache: one small JSON file per key
    STORE/sources/<blob hex>   where a blob is known to be: REGISTRY/REPOSITORY lines (a push
                               to another repository of that registry mounts it from there)
    STORE/tmp/                 scratch space on the store's file system (builds, exports)
    STORE/containers/<id>/     a ``run`` container's upper dir (kept without ``--rm``)
    STORE/build-cache-mounts/  the directories of ``RUN --mount=type=cache``
    STORE/lock                 flock: writers hold it exclusively
    STORE/gc.lock              flock: builds and runs hold it shared, prune exclusively

The store is private: every directory above is 0700 (existing stores are fixed when opened), so
the setuid programs and device nodes of an image, which its snapshots hold as they are, are out
of reach of every other local user.

Every write is a temp file or directory in the same directory, renamed into place; index.json
is written last, so an operation that fails or is interrupted leaves the store as it was
(apart from unreferenced blobs, which ``prune`` removes).

**Leftovers of killed processes.** A build's scratch directory, a running container's
directory and a layer's snapshot while it is extracted are *leased* (:meth:`Store.lease`): a
``.lease`` file inside is locked (flock) for as long as the process (or a child it forked)
lives, and the kernel drops the lock when it dies, however it dies. :meth:`Store.sweep`, run at the start of every build and by ``prune``, removes
each leased directory whose lock it can take, after detaching any mount still below it (a
``RUN --mount`` overlay of a build killed with SIGKILL); ``prune``, which waits until no build or
run is using the store, removes everything in ``tmp/``. The RUN step's own overlay is mounted
in a private mount namespace of the step (``capstone.runner``), so it cannot outlive it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, NamedTuple

from part2_manual_oci import (
    BlobCorrupt,
    BlobNotFound,
    Descriptor,
    DigestError,
    ImageConfig,
    Index,
    LayoutError,
    Manifest,
    OCILayout,
    Platform,
    PlatformNotFound,
    build_busybox_image,
    canonical_json,
    digest_hex,
    select_platform,
    write_file_atomic,
)
from part2_manual_oci import mediatypes as mt
from part3_go_style_builder import FileBlob, Image, Layer

from ..refs import InvalidName, is_image_id, parse_name
from .errors import AmbiguousImage, ImageInUse, ImageNotFound, StoreError

#: the default base image made from the host's busybox-static on first use
EMBEDDED_BUSYBOX = "docker.io/capstone/busybox:latest"
MIN_ID_PREFIX = 4
TEMP_PREFIX = ".tmp-"
#: the file whose lock marks a leased directory as in use (see the module page)
LEASE = ".lease"
#: a temp entry of snapshots/ older than this is a dead extraction's (part 2's rule for layouts)
STALE_TEMP_SECONDS = 3600
_HEX64 = re.compile(r"^[a-f0-9]{64}$")
_DIGEST_IN_TEXT = re.compile(r"sha256:[a-f0-9]{64}")
CHUNK = 1 << 20


class ImageEntry(NamedTuple):
    """One image of ``store.images()``: its names, manifest descriptor, created time, size."""

    names: list[str]
    descriptor: Descriptor
    created: str | None
    size: int


class _HashingReader:
    """Passes reads through and hashes them (to check a diff_id while a layer is extracted)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hash.update(data)
        return data

    def readinto(self, b) -> int:
        n = self.raw.readinto(b)
        if n:
            self.hash.update(memoryview(b)[:n])
        return n

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(CHUNK):
            pass



class Store:
    """The local image store at ``path`` (see the module docstring for its layout)."""

    def __init__(self, path: Path, layout: OCILayout, *, snapshotter: str = "auto") -> None:
        self.path = path
        self.layout = layout
        #: how containers over this store's snapshots get a writable root: "overlay", "copy"
        #: (part 7's copy snapshotter), or "auto" (overlay where the kernel allows it)
        self.snapshotter = snapshotter
        self._mutex = threading.RLock()
        self._lock_fd: int | None = None
        self._lock_depth = 0
        self._session_fd: int | None = None
        self._session_depth = 0

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- opening and locks ---------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, *, snapshotter: str = "auto") -> "Store":
        """Open the store at ``path``, creating it (and its parents) when missing;
        ``snapshotter``: see :attr:`snapshotter`.

        The store is private (see :func:`_make_private`): its directories are made 0700, and
        a store made before that rule has its modes fixed here."""
        path = Path(path).absolute()
        try:
            fresh = not path.exists()
            path.mkdir(parents=True, exist_ok=True)
            _make_private(path, own_root=fresh or _is_store(path) or not any(path.iterdir()))
            layout = OCILayout.create(path / "oci")
        except OSError as e:
            raise StoreError(f"cannot open the store {path}: {e.strerror or e}") from None
        return cls(path, layout, snapshotter=snapshotter)

    @property
    def snapshots_dir(self) -> Path:
        return self.path / "snapshots"

    @property
    def markers_dir(self) -> Path:
        """``<diff_id hex>``: which blobs of that layer its snapshot was checked against."""
        return self.path / "snapshot-blobs"

    @property
    def cache_dir(self) -> Path:
        return self.path / "cache"

    @property
    def tmp_dir(self) -> Path:
        """Scratch space on the store's file system (renames into the store stay atomic)."""
        return self.path / "tmp"

    @property
    def containers_dir(self) -> Path:
        return self.path / "containers"

    # -- leased directories and leftovers ------------------------------------------------------
    @contextlib.contextmanager
    def lease(self, parent: Path, name: str | None = None, *, keep: bool = False) -> Iterator[Path]:
        """A new directory ``parent/name`` (default ``parent/<random>``) leased by this process
        for the block: ``.lease`` inside is locked before the directory gets its name (a sweep
        never sees it unlocked), and the lock lasts while this process or a child it forked
        lives. On exit the directory is removed, or with ``keep`` only its lease file (a
        container kept by ``run`` without ``--rm``)."""
        parent.mkdir(parents=True, exist_ok=True)
        final = parent / (name or secrets.token_hex(8))
        pending = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX + "lease-", dir=parent))
        fd = os.open(pending / LEASE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(pending, final)
        except BaseException:
            os.close(fd)
            shutil.rmtree(pending, ignore_errors=True)
            raise
        try:
            yield final
        finally:
            try:
                if keep:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(final / LEASE)
                else:
                    _detach_mounts_under(final)
                    _remove_tree(final)
            finally:
                os.close(fd)

    def sweep(self) -> list[Path]:
        """Remove what dead builds and runs left (see the module page): every leased directory
        of ``tmp/`` and ``containers/`` whose lock is free, mounts below it detached first, and
        temp entries of ``snapshots/`` whose lease is free (or, without one, older than an hour).
        Returns what was removed."""
        removed = []
        for parent in (self.tmp_dir, self.containers_dir):
            try:
                entries = list(parent.iterdir())
            except FileNotFoundError:
                continue
            for entry in entries:
                if _take_dead_lease(entry):
                    removed.append(entry)
        now = time.time()
        with contextlib.suppress(FileNotFoundError):
            for entry in self.snapshots_dir.iterdir():
                if entry.name.startswith(TEMP_PREFIX):
                    if _take_dead_lease(entry):
                        removed.append(entry)
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        if not (entry / LEASE).exists() and now - entry.lstat().st_mtime > STALE_TEMP_SECONDS:
                            _remove_tree(entry)
                            removed.append(entry)
        return removed

    def _flock(self, name: str, operation: int) -> int:
        """An fd of ``STORE/name`` (created if missing) holding ``flock(operation)``."""
        fd = os.open(self.path / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, operation)
        except BaseException:
            os.close(fd)
            raise
        return fd

    @contextlib.contextmanager
    def lock(self) -> Iterator["Store"]:
        """Exclusive writer lock (``STORE/lock``); re-entrant within one Store object."""
        with self._mutex:
            if self._lock_depth == 0:
                self._lock_fd = self._flock("lock", fcntl.LOCK_EX)
            self._lock_depth += 1
            try:
                yield self
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0:
                    os.close(self._lock_fd)
                    self._lock_fd = None

    @contextlib.contextmanager
    def session(self) -> Iterator["Store"]:
        """Shared lock held by a build or a run for its whole length: ``prune`` waits for it,
        so blobs and snapshots in use (not yet tagged, or mounted as lowers) are not removed."""
        with self._mutex:
            if self._session_depth == 0:
                self._session_fd = self._flock("gc.lock", fcntl.LOCK_SH)
            self._session_depth += 1
        try:
            yield self
        finally:
            with self._mutex:
                self._session_depth -= 1
                if self._session_depth == 0:
                    os.close(self._session_fd)
                    self._session_fd = None

    @contextlib.contextmanager
    def _exclusive_session(self) -> Iterator[None]:
        with self._mutex:
            if self._session_depth:
                # upgrade our own shared lock (waits for other processes' sessions)
                fcntl.flock(self._session_fd, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(self._session_fd, fcntl.LOCK_SH)
                return
            fd = self._flock("gc.lock", fcntl.LOCK_EX)
            try:
                yield
            finally:
                os.close(fd)

    # -- names and lookups ---------------------------------------------------------------------
    def _entries(self) -> tuple[Descriptor, ...]:
        return self.layout.index().manifests

    def ensure_embedded(self, name: str) -> bool:
        """Make the embedded base (``capstone/busybox``) if ``name`` is it and it is not stored
        yet; True when it was made now. Built by part 2 from the host's busybox-static."""
        try:
            normalized = parse_name(name).name
        except InvalidName:
            return False
        if normalized != EMBEDDED_BUSYBOX:
            return False
        if any(d.ref_name == normalized for d in self._entries()):
            return False
        with self.lock():
            if any(d.ref_name == normalized for d in self._entries()):
                return False
            with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX + "busybox-", dir=self.tmp_dir) as tmp:
                built = build_busybox_image(Path(tmp) / "layout", tag="latest", workdir=Path(tmp) / "work")
                source = OCILayout.open(Path(tmp) / "layout")
                manifest = source.read_manifest(built)
                for desc in (*manifest.layers, manifest.config):
                    with source.open_blob(desc) as f:
                        self.layout.put_blob(f, desc.media_type, expected_digest=desc.digest)
                with source.open_blob(built) as f:
                    stored = self.layout.put_blob(f, built.media_type, expected_digest=built.digest)
            stored = replace(stored, platform=built.platform)
            self._record_id(manifest.config.digest, stored)
            self._set_names([normalized], stored)
        return True

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
            self.ensure_embedded(ref.name)
            if ref.digest is not None:
                found = self._by_digest(ref.digest)
                if found is not None:
                    return found
            for entry in reversed(self._entries()):
                if entry.ref_name == ref.name:
                    return _plain(entry)
        prefix = text[len("sha256:"):] if text.startswith("sha256:") else text
        if len(prefix) >= MIN_ID_PREFIX and re.fullmatch(r"[a-f0-9]+", prefix):
            return self._by_id_prefix(prefix)
        if ref is None:
            parse_name(text)  # raise the name's own error
        return None

    def _by_digest(self, digest: str) -> Descriptor | None:
        for entry in self._entries():
            if entry.digest == digest:
                return _plain(entry)
        recorded = self._recorded_id(digest_hex(digest))
        if recorded is not None:
            return recorded
        for entry in self._entries():  # an image id of an image tagged by another tool
            if self._config_digest(entry) == digest:
                return _plain(entry)
        if self.layout.has_blob(digest):  # an untagged manifest (a cached build step)
            found = self.layout.describe(digest)
            if found.media_type in mt.MANIFEST_TYPES or found.media_type in mt.INDEX_TYPES:
                return found
        return None

    def _by_id_prefix(self, prefix: str) -> Descriptor | None:
        found: dict[str, Descriptor] = {}
        for entry in (self.path / "ids").iterdir():
            if entry.name.startswith(prefix) and _HEX64.match(entry.name):
                desc = self._recorded_id(entry.name)
                if desc is not None:
                    found[entry.name] = desc
        for entry in self._entries():
            config = self._config_digest(entry)
            if config is not None and digest_hex(config).startswith(prefix):
                found.setdefault(digest_hex(config), _plain(entry))
        if len(found) > 1:
            ids = ", ".join(sorted(k[:12] for k in found))
            raise AmbiguousImage(f"image id prefix {prefix!r} matches {len(found)} images ({ids}): give more digits")
        return next(iter(found.values()), None)

    def _recorded_id(self, config_hex: str) -> Descriptor | None:
        try:
            data = json.loads((self.path / "ids" / config_hex).read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        desc = Descriptor.from_json(data, f"{self.path}/ids/{config_hex}")
        return desc if self.layout.has_blob(desc.digest) else None

    def _record_id(self, config_digest: str, manifest: Descriptor) -> None:
        write_file_atomic(self.path / "ids" / digest_hex(config_digest), canonical_json(_plain(manifest)))

    def _platform_manifest(self, desc: Descriptor, platform: Platform | None = None) -> Descriptor:
        """A manifest descriptor; for an index, its entry for ``platform`` (default: this
        host), chosen by part 2's ``select_platform``."""
        if desc.media_type not in mt.INDEX_TYPES:
            return desc
        try:
            entry = select_platform(self.layout.read_index(desc).manifests, platform, f"index {desc.digest}",
                                    platform_of=self._manifest_platform)
        except PlatformNotFound as e:
            raise ImageNotFound(str(e)) from None
        return self._platform_manifest(entry, platform)

    def _manifest_platform(self, desc: Descriptor) -> Platform | None:
        """The platform of a stored manifest, read from its config (None for anything else)."""
        if desc.media_type not in mt.MANIFEST_TYPES or not self.layout.has_blob(desc.digest):
            return None
        return self.layout.read_config(self.layout.read_manifest(desc)).platform

    def _shown_manifest(self, desc: Descriptor) -> Descriptor:
        """The manifest that stands for an image in listings: this host's, else (an index with
        no image for this host) its first."""
        try:
            return self._platform_manifest(desc)
        except ImageNotFound:
            return self._platform_manifest(self.layout.read_index(desc).manifests[0])

    def _config_digest(self, desc: Descriptor) -> str | None:
        try:
            return self.layout.read_manifest(self._platform_manifest(desc)).config.digest
        except (LayoutError, StoreError, DigestError):
            return None

    def image_id(self, name_or_descriptor: str | Descriptor) -> str:
        """The image id (``sha256:`` + the config digest's hex, as Docker shows it)."""
        desc = self._descriptor(name_or_descriptor)
        return self.manifest(desc).config.digest

    def _descriptor(self, name_or_descriptor: str | Descriptor) -> Descriptor:
        if isinstance(name_or_descriptor, Descriptor):
            return name_or_descriptor
        desc = self.resolve(name_or_descriptor)
        if desc is None:
            raise ImageNotFound(f"no image {name_or_descriptor!r} in the store {self.path}")
        return desc

    def manifest(self, name_or_descriptor: str | Descriptor) -> Manifest:
        """The image's manifest (the host platform's one for a multi-platform index)."""
        return self.layout.read_manifest(self._platform_manifest(self._descriptor(name_or_descriptor)))

    def config(self, name_or_descriptor: str | Descriptor) -> ImageConfig:
        return self.layout.read_config(self.manifest(name_or_descriptor))

    def names_of(self, descriptor: Descriptor) -> list[str]:
        """The normalized names that tag this manifest, in index.json order."""
        return [d.ref_name for d in self._entries() if d.digest == descriptor.digest and d.ref_name]

    def load(self, name_or_id: str, platform: Platform | None = None) -> Image:
        """The stored image as a part 3 ``Image`` (layers read in place from the store); for a
        multi-platform index, its image for ``platform`` (default: this host)."""
        desc = self.resolve(name_or_id)
        if desc is None:
            raise ImageNotFound(f"no image {name_or_id!r} in the store {self.path}")
        return self._load(desc, platform)

    def load_manifest(self, digest: str) -> Image:
        """The image whose manifest is the blob ``digest`` (what a build cache entry names),
        read straight from that blob: none of the name and image id lookups of ``load``.
        Raises ImageNotFound when the blob is missing or is not a manifest."""
        try:
            desc = self.layout.describe(digest)
        except (OSError, LayoutError, DigestError) as e:
            raise ImageNotFound(f"no manifest {digest} in the store {self.path}: {e}") from None
        if desc.media_type not in mt.MANIFEST_TYPES:
            return self.load(digest)  # an index, or not an image: the full lookup decides
        return image_from_layout(self.layout, desc)

    def _load(self, desc: Descriptor, platform: Platform | None = None) -> Image:
        return image_from_layout(self.layout, self._platform_manifest(desc, platform))

    # -- writing images ------------------------------------------------------------------------
    def commit(self, image: Image, names: list[str]) -> Descriptor:
        """Store ``image`` (layers not yet here are copied and verified; present ones reused),
        its config and manifest, and tag it with each of ``names`` (index.json last)."""
        normalized = [parse_name(n).name for n in names]  # every name is checked before any write
        with self.lock():
            mdesc = self._reuse_loaded(image)
            if mdesc is None:
                for layer in image.layers:
                    self._put_layer(layer)
                config_desc = self.layout.put_json(image.config, mt.OCI_CONFIG)
                manifest = Manifest(config_desc, tuple(layer.descriptor for layer in image.layers))
                mdesc = self.layout.put_json(manifest, mt.OCI_MANIFEST)
                mdesc = replace(mdesc, platform=_platform_of(image.config))
                self._record_id(config_desc.digest, mdesc)
            if normalized:
                self._set_names(normalized, mdesc)
        return mdesc

    def commit_index(self, images: list[Image], names: list[str]) -> Descriptor:
        """Store ``images`` (one per platform) and an OCI image index of them, and tag the
        index with each of ``names``: a multi-platform image under one name."""
        normalized = [parse_name(n).name for n in names]
        with self.lock():
            entries = tuple(self.commit(image, []) for image in images)
            index_desc = self.layout.put_json(Index(manifests=entries), mt.OCI_INDEX)
            if normalized:
                self._set_names(normalized, index_desc)
        return index_desc

    def _reuse_loaded(self, image: Image) -> Descriptor | None:
        """The stored manifest when ``image`` is unchanged since it was loaded from the store."""
        src = image.loaded_from
        if src is None or src.media_type != mt.OCI_MANIFEST or not self.layout.has_blob(src.digest):
            return None
        manifest = self.layout.read_manifest(src)
        if manifest.layers != tuple(layer.descriptor for layer in image.layers):
            return None
        if not self.layout.has_blob(manifest.config.digest) or self.layout.read_config(manifest) != image.config:
            return None
        return replace(_plain(src), platform=_platform_of(image.config))

    def _put_layer(self, layer: Layer) -> None:
        desc = layer.descriptor
        if self.layout.has_blob(desc.digest) and self.layout.blob_path(desc.digest).stat().st_size == desc.size:
            return
        with layer.open() as f:
            stored = self.layout.put_blob(f, desc.media_type, expected_digest=desc.digest)
        if stored.size != desc.size:
            raise StoreError(f"layer {desc.digest} from {layer.source}: {stored.size} bytes, its descriptor says {desc.size}")

    def _set_names(self, names: list[str], descriptor: Descriptor) -> None:
        if not self.layout.has_blob(descriptor.digest):
            raise StoreError(f"cannot tag {descriptor.digest}: not in the store {self.path}")
        bare = _plain(descriptor)
        wanted = {n: replace(bare, annotations={mt.ANNOTATION_REF_NAME: n}) for n in names}

        def renamed(index: Index) -> Index:
            # a name that already names this image keeps its place in the list: a rebuild of one
            # of several tagged images leaves index.json as it is (update_index writes only a change)
            kept = tuple(d for d in index.manifests if d.ref_name not in wanted or d == wanted[d.ref_name])
            present = {d.ref_name for d in kept}
            return replace(index, manifests=kept + tuple(d for n, d in wanted.items() if n not in present))

        self.layout.update_index(renamed)

    def tag(self, name: str, descriptor: Descriptor | str) -> Descriptor:
        """Name an image (a descriptor, or a name/id to resolve) ``name``; returns the entry."""
        normalized = parse_name(name).name
        with self.lock():
            desc = self._descriptor(descriptor)
            if desc.media_type in mt.MANIFEST_TYPES:
                config = self.layout.read_manifest(desc).config.digest
                if self._recorded_id(digest_hex(config)) is None:
                    self._record_id(config, desc)
            self._set_names([normalized], desc)
        return replace(_plain(desc), annotations={mt.ANNOTATION_REF_NAME: normalized})

    def untag(self, name: str) -> None:
        """Drop the name (the image's blobs stay until ``prune``)."""
        normalized = parse_name(name).name
        with self.lock():
            if normalized not in self.layout.refs():
                raise ImageNotFound(f"no image named {normalized} in the store {self.path}")
            self.layout.remove_ref(normalized)

    def images(self, *, all: bool = False) -> list[ImageEntry]:
        """Tagged images, newest first (``all``: also the untagged ones, such as build steps)."""
        by_digest: dict[str, tuple[list[str], Descriptor]] = {}
        for entry in self._entries():
            names, _ = by_digest.setdefault(entry.digest, ([], _plain(entry)))
            if entry.ref_name:
                names.append(entry.ref_name)
        if all:
            for entry in sorted((self.path / "ids").iterdir()):
                desc = self._recorded_id(entry.name) if _HEX64.match(entry.name) else None
                if desc is not None:
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

    def remove(self, name_or_id: str, *, force: bool = False) -> list[tuple[str, str]]:
        """``rmi``: untag a name, or every name of an id (with ``force`` when it has several).

        When no name is left the image is deleted: its id no longer resolves (unless the build
        cache refers to it) and ``prune`` frees its blobs and snapshots that nothing else uses.
        Returns docker's lines: ``("Untagged", name)`` and ``("Deleted", image id)``.
        """
        with self.lock():
            desc = self.resolve(name_or_id)
            if desc is None:
                raise ImageNotFound(f"no image {name_or_id!r} in the store {self.path}")
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
            image_id = self._config_digest(desc)
            self.layout.update_index(lambda index: replace(index, manifests=tuple(
                d for d in index.manifests if not (d.digest == desc.digest and d.ref_name in to_untag))))
            lines = [("Untagged", parse_name(n).short) for n in to_untag]
            if not self.names_of(desc):
                if image_id is not None and not self._cache_refers_to(desc.digest):
                    (self.path / "ids" / digest_hex(image_id)).unlink(missing_ok=True)
                lines.append(("Deleted", image_id or desc.digest))
        return lines

    # -- garbage collection --------------------------------------------------------------------
    def _cache_roots(self) -> set[str]:
        roots: set[str] = set()
        for entry in self.cache_dir.iterdir():
            if entry.name.startswith(TEMP_PREFIX):
                continue
            with contextlib.suppress(OSError):
                roots.update(_DIGEST_IN_TEXT.findall(entry.read_text(errors="replace")))
        return roots

    def _cache_refers_to(self, digest: str) -> bool:
        return digest in self._cache_roots()

    def _reachable(self, roots: set[str]) -> tuple[set[str], set[str]]:
        """(blob digests, diff_ids) reachable from index.json and ``roots`` (digests the build
        cache names: each described by its blob), walked by part 2 (subjects too)."""
        starts = list(self._entries())
        starts += [self.layout.describe(d) for d in sorted(roots) if self.layout.has_blob(d)]
        seen: set[str] = set()
        diff_ids: set[str] = set()
        for desc in self.layout.walk(starts):
            seen.add(desc.digest)
            # the layers of each manifest reached: a config is read through its manifest, as a
            # cache root may have reached the same blob first, described without its media type
            if desc.media_type in mt.MANIFEST_TYPES:
                with contextlib.suppress(LayoutError):
                    diff_ids.update(self.layout.read_config(self.layout.read_manifest(desc)).rootfs_diff_ids)
        return seen, diff_ids

    def prune(self, *, all: bool = False) -> tuple[int, int]:
        """Remove blobs, snapshots, ids and cache entries that nothing reachable refers to
        (reachable: index.json, and the images the build cache names). ``all`` empties the
        build cache first (like ``docker builder prune -a``). Waits for running builds.
        Returns (blobs removed, bytes freed)."""
        with self._exclusive_session(), self.lock():
            if all:
                for entry in self.cache_dir.iterdir():
                    entry.unlink()
            roots = self._cache_roots()
            keep, diff_ids = self._reachable(roots)
            # cache entries that name a manifest which is gone are stale
            for entry in self.cache_dir.iterdir():
                with contextlib.suppress(OSError):
                    named = set(_DIGEST_IN_TEXT.findall(entry.read_text(errors="replace")))
                    if entry.name.startswith(TEMP_PREFIX) or (named and not named & keep):
                        entry.unlink()
            removed, freed = 0, 0
            for blob in self.layout.blobs_dir.iterdir():
                if blob.name.startswith(TEMP_PREFIX) or "sha256:" + blob.name not in keep:
                    freed += blob.lstat().st_size
                    blob.unlink()
                    removed += 0 if blob.name.startswith(TEMP_PREFIX) else 1
            for entry in (self.path / "ids").iterdir():
                desc = self._recorded_id(entry.name) if _HEX64.match(entry.name) else None
                if desc is None or desc.digest not in keep:
                    entry.unlink()
            with contextlib.suppress(FileNotFoundError):
                for entry in (self.path / "sources").iterdir():
                    if "sha256:" + entry.name not in keep:
                        entry.unlink()
            keep_hex = {digest_hex(d) for d in diff_ids}
            for snap in self.snapshots_dir.iterdir():
                if snap.name not in keep_hex:
                    _remove_tree(snap)
            for marker in self.markers_dir.iterdir():
                if marker.name not in keep_hex:
                    _remove_tree(marker)
            # no build or run is using the store (we hold gc.lock exclusively): all of tmp/ is
            # left over, and so is every container directory that still has a lease
            for entry in self.tmp_dir.iterdir():
                _detach_mounts_under(entry)
                _remove_tree(entry)
            self.sweep()
        return removed, freed

    # -- snapshots -----------------------------------------------------------------------------
    def snapshot(self, layer: Descriptor, diff_id: str, *, blob: BinaryIO | None = None) -> Path:
        """The layer extracted as an overlay lower dir, ``STORE/snapshots/<diff_id hex>``.

        Extracted once (into a temp dir, checked against ``diff_id``, renamed into place) and
        reused ever after. The bytes come from the store's blob, or from ``blob`` (a stream of
        the layer) for a layer not stored yet.
        """
        final = self.snapshots_dir / digest_hex(diff_id)
        if final.is_dir():
            return final
        from part4_tar import LayerError  # parts 4 and 7 only when a layer is extracted
        from part7_union import UnionError

        with self.session():  # prune must not take the temp dir away mid-extraction
            try:
                return self._extract_snapshot(layer, diff_id, final, blob)
            except (LayerError, LayoutError, BlobCorrupt, BlobNotFound, UnionError) as e:
                raise StoreError(f"snapshot of layer {layer.digest}: {e}") from e

    def _extract_snapshot(self, layer: Descriptor, diff_id: str, final: Path, blob: BinaryIO | None) -> Path:
        from part4_tar import SkippedEntriesWarning, open_decompressed
        from part7_union import extract_lower

        tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{digest_hex(diff_id)[:12]}-", dir=self.snapshots_dir))
        # leased while it is filled, as a build's scratch dir: a process killed mid-extraction
        # leaves a temp dir the next sweep can tell from a live one (a sweep that comes before
        # the lock sees no lease and leaves the dir alone)
        lease = os.open(tmp / LEASE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lease, fcntl.LOCK_EX)
            with contextlib.ExitStack() as stack:
                raw = blob if blob is not None else stack.enter_context(self.layout.open_blob(layer))
                reader = _HashingReader(stack.enter_context(open_decompressed(raw)))
                with warnings.catch_warnings(record=True) as seen:
                    warnings.simplefilter("always", SkippedEntriesWarning)
                    extract_lower(reader, tmp / "fs")
                for w in seen:  # the same warning, saying which layer
                    if issubclass(w.category, SkippedEntriesWarning):
                        warnings.warn(SkippedEntriesWarning(f"layer {layer.digest}: {w.message}"), stacklevel=3)
                    else:
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
                reader.drain()  # to the end: the blob's digest and the diff_id are checked there
                if blob is None:
                    while raw.read(CHUNK):
                        pass
            got = "sha256:" + reader.hash.hexdigest()
            if got != diff_id:
                raise StoreError(f"layer {layer.digest}: uncompressed content hashes to {got}, its diff_id is {diff_id}")
            try:
                os.rename(tmp / "fs", final)
            except OSError as e:
                if not final.is_dir():
                    raise StoreError(f"cannot place snapshot {final}: {e.strerror}") from None
                # another process extracted it first: keep theirs
            # the store's blob was read to its end and matched its digest: record which one
            self._mark_snapshot(diff_id, layer.digest, checked=blob is None)
        finally:
            _remove_tree(tmp)
            os.close(lease)
        return final

    # -- the blob a snapshot was checked against ------------------------------------------------
    def _marker(self, diff_id: str) -> Path:
        return self.markers_dir / digest_hex(diff_id)

    def _blob_state(self, digest: str) -> list[int] | None:
        """What says the store's blob is still the file it was: (inode, size, mtime)."""
        try:
            st = os.stat(self.layout.blob_path(digest))
        except FileNotFoundError:
            return None
        return [st.st_ino, st.st_size, st.st_mtime_ns]

    def _mark_snapshot(self, diff_id: str, digest: str, *, checked: bool) -> None:
        """Record beside the snapshot of ``diff_id`` that the blob ``digest`` was found good
        (``checked``: its bytes were hashed, or it was written from the same content just now)
        as its file is now; unchecked, the blob is hashed when the snapshot is next used."""
        path = self._marker(diff_id)
        try:
            marker = json.loads(path.read_bytes())
            blobs = marker["blobs"] if marker.get("diff_id") == diff_id and isinstance(marker.get("blobs"), dict) else {}
        except (OSError, ValueError, KeyError):
            blobs = {}
        state = self._blob_state(digest) if checked else None
        if state is None:
            blobs.pop(digest, None)
        else:
            blobs[digest] = state
        write_file_atomic(path, canonical_json({"diff_id": diff_id, "blobs": blobs}))

    def check_snapshot(self, layer: Descriptor, diff_id: str) -> None:
        """Before a snapshot is used: is the store's blob of ``layer`` still the file it was when
        it was last found good (the marker beside the snapshot says)? If it changed, or was never
        compared, it is hashed now: a damaged blob is a :class:`StoreError` (the image must be
        pulled or built again), a good one (repaired) is recorded. A layer whose blob is not in
        the store has only its snapshot, made and checked against its diff_id when extracted."""
        state = self._blob_state(layer.digest)
        if state is None:
            return
        try:
            marker = json.loads(self._marker(diff_id).read_bytes())
            if marker.get("diff_id") == diff_id and marker.get("blobs", {}).get(layer.digest) == state:
                return
        except (OSError, ValueError, AttributeError):
            pass
        from part2_manual_oci import digest_stream

        with open(self.layout.blob_path(layer.digest), "rb") as f:
            digest, size = digest_stream(f)
        if (digest, size) != (layer.digest, layer.size):
            raise StoreError(f"layer blob {layer.digest} in the store is damaged ({size} bytes hashing to {digest}; "
                             f"the snapshot of {diff_id[:19]} is not used): pull or build the image again")
        self._mark_snapshot(diff_id, layer.digest, checked=True)

    def adopt_snapshot(self, diff_id: str, directory: str | os.PathLike, layer: Descriptor | None = None) -> Path:
        """Keep ``directory`` as the snapshot of the layer ``diff_id`` instead of extracting the
        layer later: a RUN step's upper dir, or the staged files of a COPY, are that layer in
        overlay's format already. It is renamed into place (so it must be on the store's file
        system, e.g. under ``tmp_dir``); if a snapshot is there already, ``directory`` is left
        alone. ``layer``: the blob just written from the same files (recorded as good for the
        snapshot). Returns the snapshot's path."""
        final = self.snapshots_dir / digest_hex(diff_id)
        directory = Path(directory)
        if final.is_dir():
            return final
        if not directory.is_dir():
            raise StoreError(f"adopt_snapshot: {directory} is not a directory")
        with self.session():
            try:
                os.rename(directory, final)
            except OSError as e:
                if not final.is_dir():
                    if e.errno == errno.EXDEV:
                        raise StoreError(f"adopt_snapshot: {directory} is on another file system than "
                                         f"{self.snapshots_dir}") from None
                    raise StoreError(f"adopt_snapshot: cannot place {final}: {e.strerror}") from None
            if layer is not None:
                self._mark_snapshot(diff_id, layer.digest, checked=True)
        return final

    def has_snapshot(self, diff_id: str) -> bool:
        return (self.snapshots_dir / digest_hex(diff_id)).is_dir()

    def lowers(self, image: Image) -> list[Path]:
        """The image's layers as overlay lower dirs, top layer first (overlay's order)."""
        out = []
        for layer in reversed(image.layers):
            if self.has_snapshot(layer.diff_id):
                self.check_snapshot(layer.descriptor, layer.diff_id)
                out.append(self.snapshots_dir / digest_hex(layer.diff_id))
            elif self.layout.has_blob(layer.descriptor.digest):
                out.append(self.snapshot(layer.descriptor, layer.diff_id))
            else:
                with layer.open() as f:
                    out.append(self.snapshot(layer.descriptor, layer.diff_id, blob=f))
        return out

    # -- where blobs came from -----------------------------------------------------------------
    def add_source(self, digest: str, repository: str) -> None:
        """Note that ``REGISTRY/REPOSITORY`` has the blob ``digest`` (it was pulled from or
        pushed there): a push to another repository of the same registry can mount it."""
        if repository in self.sources(digest):
            return
        directory = self.path / "sources"
        directory.mkdir(exist_ok=True)
        # one short line appended in one write: concurrent writers never interleave it
        fd = os.open(directory / digest_hex(digest), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, (repository + "\n").encode())
        finally:
            os.close(fd)

    def sources(self, digest: str) -> list[str]:
        """The ``REGISTRY/REPOSITORY`` names known to have the blob, oldest first."""
        try:
            text = (self.path / "sources" / digest_hex(digest)).read_text(errors="replace")
        except (FileNotFoundError, NotADirectoryError):
            return []
        return list(dict.fromkeys(line for line in text.splitlines() if line))

    # -- build cache ---------------------------------------------------------------------------
    def _cache_file(self, key: str) -> Path:
        name = key if _HEX64.match(key) else hashlib.sha256(key.encode()).hexdigest()
        return self.cache_dir / name

    def cache_get(self, key: str) -> dict | None:
        """The value stored under ``key``, or None (a missing or unreadable entry is a miss)."""
        try:
            value = json.loads(self._cache_file(key).read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def cache_put(self, key: str, value: dict) -> None:
        """Store ``value`` under ``key`` (atomically). Every ``sha256:...`` string in a value
        keeps that blob (an image manifest: the whole image) alive through ``prune``.

        Strings may carry file names that are not UTF-8 (the bytes kept as surrogateescape
        code points, as ``os.listdir`` gives them): the file is ASCII JSON, those code points
        written as ``\\udcXX`` escapes, which :meth:`cache_get` reads back as they were."""
        data = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        write_file_atomic(self._cache_file(key), data.encode("ascii"))

    # -- import and transfer -------------------------------------------------------------------
    def import_rootfs(self, src: str | os.PathLike, name: str) -> Descriptor:
        """A single-layer image from a root filesystem directory or a tar file (``docker
        import``): PATH set, ``Cmd ["/bin/sh"]`` when /bin/sh exists; tagged ``name``."""
        from .transfer import import_rootfs

        return import_rootfs(self, Path(src), name)

    def export(self, name_or_id: str, dest: str) -> Descriptor:
        """Write an image to ``oci:DIR[:TAG]``, ``oci-archive:FILE[:TAG]`` or
        ``docker-archive:FILE[:NAME:TAG]``; returns the manifest descriptor exported."""
        from .transfer import export

        return export(self, name_or_id, dest)

    def load_file(self, path: str | os.PathLike, platform: Platform | None = None) -> list[tuple[Descriptor, list[str]]]:
        """``capstone load``: every image of a docker-archive or oci-archive file, stored and
        named as the archive names it; (manifest descriptor, names) per image."""
        from .transfer import load_file

        return load_file(self, Path(path), platform)

    def convert(self, desc: Descriptor, *, compression: str | None = None, oci_mediatypes: bool = True) -> Descriptor:
        """``desc`` with its layers in ``compression`` and OCI's (or Docker's) media types,
        for an export (see ``convert.py``)."""
        from .convert import convert

        return convert(self, desc, compression=compression, oci_mediatypes=oci_mediatypes)

    def write_rootfs(self, desc: Descriptor, dest: str | os.PathLike, *, as_tar: bool = False,
                     owner: tuple[int, int] | None = None) -> None:
        """The image's root filesystem into the directory ``dest`` (every file ``owner``'s when
        given), or as the tar file ``dest``."""
        from .transfer import write_rootfs

        write_rootfs(self, desc, Path(dest), as_tar=as_tar, owner=owner)

    def load_archive(self, src: str, platform: Platform | None = None) -> Image:
        """An image from ``oci:DIR[:TAG]``, ``oci-archive:FILE[:TAG]`` or
        ``docker-archive:FILE[:NAME:TAG]`` (read in place; ``commit`` stores it); from a
        multi-platform index, its image for ``platform`` (default: this host)."""
        from .transfer import load_archive

        return load_archive(self, src, platform)


# -- helpers -------------------------------------------------------------------------------------

#: the store's own directories: 0700, so that nothing in them is reachable by another user
PRIVATE_DIRS = ("oci", "ids", "snapshots", "snapshot-blobs", "cache", "tmp", "containers", "build-cache-mounts")
PRIVATE_MODE = 0o700


def _is_store(path: Path) -> bool:
    return (path / "oci" / "oci-layout").is_file() and (path / "snapshots").is_dir()


def _make_private(path: Path, *, own_root: bool) -> None:
    """Make the store's directories private (0700), creating the missing ones.

    A snapshot is an image's root filesystem as files: a setuid-root program or a device node
    from an image sits there with its real owner and mode, and a RUN step's upper dir (in
    ``tmp/``) holds whatever the step made. Reachable by another local user, that is root for
    them (a store outside a private home: ``--store /var/lib/...``, ``$CAPSTONE_STORE``). So no
    directory of the store lets anyone but its owner through. The root itself is made 0700
    too when it is the store's own (new, empty, or a store already); a directory the user
    pointed ``--store`` at that holds other things keeps its mode: the subdirectories are what
    must be closed. A store made before this rule is fixed the first time it is opened.
    """
    if own_root and stat.S_IMODE(path.stat().st_mode) != PRIVATE_MODE:
        os.chmod(path, PRIVATE_MODE)
    for sub in PRIVATE_DIRS:
        d = path / sub
        try:
            os.mkdir(d, PRIVATE_MODE)
        except FileExistsError:
            pass
        st = os.lstat(d)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(d))
        if stat.S_IMODE(st.st_mode) != PRIVATE_MODE:
            os.chmod(d, PRIVATE_MODE)



def image_from_layout(layout: OCILayout, mdesc: Descriptor) -> Image:
    """The image a manifest descriptor of ``layout`` names, its layers read in place."""
    manifest = layout.read_manifest(mdesc)
    config = layout.read_config(manifest)
    if len(manifest.layers) != len(config.rootfs_diff_ids):
        raise StoreError(f"{layout.path}: manifest {mdesc.digest} lists {len(manifest.layers)} layers but its "
                         f"config {len(config.rootfs_diff_ids)} diff_ids")
    layers = []
    for ld, diff_id in zip(manifest.layers, config.rootfs_diff_ids):
        if not layout.has_blob(ld.digest):
            raise StoreError(f"{layout.path}: layer {ld.digest} of {mdesc.digest} is missing")
        media_type = mt.OCI_LAYER_GZIP if ld.media_type == mt.DOCKER_LAYER_GZIP else ld.media_type
        layers.append(Layer(replace(ld, media_type=media_type), diff_id, FileBlob(layout.blob_path(ld.digest))))
    return Image(config, tuple(layers), loaded_from=mdesc)


def _plain(desc: Descriptor) -> Descriptor:
    """A descriptor without its ref name annotation (the same image under any name)."""
    annotations = {k: v for k, v in (desc.annotations or {}).items() if k != mt.ANNOTATION_REF_NAME}
    return replace(desc, annotations=annotations or None)


def _platform_of(config: ImageConfig) -> Platform:
    return config.platform


def _remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


_MOUNTINFO_ESCAPE = re.compile(r"\\([0-7]{3})")


def mounts_under(root: Path) -> list[Path]:
    """Mount points at or below ``root`` in this process's mount namespace, deepest first."""
    out = []
    root_s = str(root)
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            # the kernel writes space, tab, newline and backslash in a path as \ooo
            point = _MOUNTINFO_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == root_s or point.startswith(root_s + "/"):
                out.append(Path(point))
    return sorted(out, key=lambda p: len(p.parts), reverse=True)


def _detach_mounts_under(root: Path) -> None:
    """Detach every mount at or below ``root`` (deepest first), so that removing ``root``
    never deletes through a mount into what it shows (a lower layer, the build context)."""
    points = mounts_under(root)
    if not points:
        return
    from part5_namespaces import UmountFlags, umount2  # only when something is mounted there

    for point in points:
        with contextlib.suppress(OSError):
            umount2(point, UmountFlags.DETACH)
    left = mounts_under(root)
    if left:
        raise StoreError(f"cannot detach the mount at {left[0]} (left by a killed build or run)")


def _take_dead_lease(entry: Path) -> bool:
    """If ``entry`` is a leased directory whose lock no process holds, remove it (holding the
    lock meanwhile); True when it was removed."""
    try:
        fd = os.open(entry / LEASE, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False  # not leased (a kept container, another tool's file): not ours to judge
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its process is alive
        _detach_mounts_under(entry)
        _remove_tree(entry)
        return True
    finally:
        os.close(fd)
