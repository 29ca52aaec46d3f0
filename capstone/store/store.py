"""The local store: an OCI image layout, layer snapshots, the build cache, locks.

::

    STORE/oci/                 an OCI image layout; each tagged image is an index.json entry
                               whose org.opencontainers.image.ref.name is its normalized name
    STORE/ids/<config hex>     image id -> manifest descriptor (tagged or not)       names.py
    STORE/snapshots/<hex>/     a layer extracted once as an overlay lower (diff_id)  snapshots.py
    STORE/snapshot-blobs/<hex> the blobs that snapshot was checked against           snapshots.py
    STORE/cache/<key hex>      build cache: one small JSON file per key              cache.py
    STORE/sources/<blob hex>   where a blob is known to be: REGISTRY/REPOSITORY lines (a push
                               to another repository of that registry mounts it)     sources.py
    STORE/tmp/                 scratch space on the store's file system (builds, exports)
    STORE/containers/<id>/     a ``run`` container's upper dir (kept without ``--rm``)
    STORE/build-cache-mounts/  the directories of ``RUN --mount=type=cache``
    STORE/lock                 flock: writers hold it exclusively                    locks.py
    STORE/gc.lock              flock: builds and runs hold it shared, prune exclusively

:class:`Store` is a facade over those modules and part 2's ``OCILayout``: the build and the
registry client use it through the Protocols of ``interface.py`` and never its ``layout``.
Garbage collection (``prune``) is ``gc.py``.

The store is private: every directory above is 0700 (existing stores are fixed when opened), so
the setuid programs and device nodes of an image, which its snapshots hold as they are, are out
of reach of every other local user.

Every write is a temp file or directory in the same directory, renamed into place; index.json
is written last, so an operation that fails or is interrupted leaves the store as it was
(apart from unreferenced blobs, which ``prune`` removes).

**Leftovers of killed processes.** A build's scratch directory and a running container's
directory are *leased* (``leases.py``): a ``.lease`` file inside is locked (flock) for as
long as the process (or a child it forked) lives, and the kernel drops the lock when it dies,
however it dies. :meth:`Store.sweep`, run at the start of every build and by ``prune``, removes
each leased directory whose lock it can take, after detaching any mount still below it (a
``RUN --mount`` overlay of a build killed with SIGKILL); ``prune``, which waits until no build or
run is using the store, removes everything in ``tmp/``. The RUN step's own overlay is mounted
in a private mount namespace of the step (``capstone.runner``), so it cannot outlive it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from part1_overview import replace
from part2_manual_oci import (
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    OCILayout,
    Platform,
)
from part2_manual_oci import mediatypes as mt
from part3_go_style_builder import FileBlob, Image, Layer, write_layer_blob

from ..refs import InvalidName, parse_name
from . import gc, leases
from .cache import BuildCache
from .errors import ImageNotFound, StoreError
from .leases import TEMP_PREFIX, mounts_under
from .locks import StoreLocks
from .names import ImageEntry, Names, plain
from .snapshots import Snapshots
from .sources import BlobSources

#: the default base image made from the host's busybox-static on first use
EMBEDDED_BUSYBOX = "docker.io/capstone/busybox:latest"

__all__ = ["EMBEDDED_BUSYBOX", "ImageEntry", "Store", "TEMP_PREFIX", "image_from_layout", "mounts_under"]


class Store:
    """The local image store at ``path`` (see the module docstring for its layout)."""

    def __init__(self, path: Path, layout: OCILayout, *, snapshotter: str = "auto") -> None:
        self.path = path
        #: how containers over this store's snapshots get a writable root: "overlay", "copy"
        #: (part 7's copy snapshotter), or "auto" (overlay where the kernel allows it)
        self.snapshotter = snapshotter
        #: part 2's layout of the store's blobs and index.json: for the store's own modules
        #: (and tests); the build and the registry client use the blob methods below
        self.layout = layout
        self.locks = StoreLocks(path)
        self.names = Names(layout, path / "ids", lock=self.locks.writer, on_lookup=self.ensure_embedded, where=path)
        self.cache = BuildCache(path / "cache")
        self.snapshots = Snapshots(self.snapshots_dir, self.markers_dir, layout, self.locks.session)
        self.blob_sources = BlobSources(path / "sources")

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- opening, directories and locks --------------------------------------------------------
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
        return self.cache.directory

    @property
    def tmp_dir(self) -> Path:
        """Scratch space on the store's file system (renames into the store stay atomic)."""
        return self.path / "tmp"

    @property
    def containers_dir(self) -> Path:
        return self.path / "containers"

    @property
    def cache_mounts_dir(self) -> Path:
        """The directories of ``RUN --mount=type=cache``, one per id."""
        return self.path / "build-cache-mounts"

    def lease(self, parent: Path, name: str | None = None, *, keep: bool = False):
        """A leased directory ``parent/name`` for a ``with`` block (see ``leases.lease``)."""
        return leases.lease(parent, name, keep=keep)

    def sweep(self) -> list[Path]:
        """Remove what dead builds and runs left (see the module page): every leased directory
        of ``tmp/`` and ``containers/`` whose lock is free, mounts below it detached first, and
        temp entries of ``snapshots/``: an extraction's whose process died (it is leased), any
        other once it is an hour old. Returns what was removed."""
        return leases.sweep((self.tmp_dir, self.containers_dir), (self.snapshots_dir,))

    @contextlib.contextmanager
    def lock(self) -> Iterator["Store"]:
        """Exclusive writer lock (``STORE/lock``); re-entrant within one Store object."""
        with self.locks.writer():
            yield self

    @contextlib.contextmanager
    def session(self) -> Iterator["Store"]:
        """Shared lock held by a build or a run for its whole length: ``prune`` waits for it,
        so blobs and snapshots in use (not yet tagged, or mounted as lowers) are not removed."""
        with self.locks.session():
            yield self

    # -- blobs ---------------------------------------------------------------------------------
    def has_blob(self, digest: str, size: int | None = None) -> bool:
        """Whether the blob is stored (with ``size``: as a file of that size; a shorter one is
        a damaged copy, to be written again)."""
        if not self.layout.has_blob(digest):
            return False
        return size is None or self.layout.blob_path(digest).stat().st_size == size

    def blob_path(self, digest: str) -> Path:
        return self.layout.blob_path(digest)

    def open_blob(self, descriptor: Descriptor | str) -> BinaryIO:
        """A reader of a stored blob, checked against its digest at the end (part 2)."""
        return self.layout.open_blob(descriptor)

    def read_blob(self, descriptor: Descriptor | str) -> bytes:
        """The checked bytes of a small blob (a manifest, an index, a config)."""
        return self.layout.read_blob(descriptor)

    def put_blob(self, src: bytes | BinaryIO, media_type: str, *, expected_digest: str | None = None) -> Descriptor:
        """Store bytes or a stream as a blob (checked against ``expected_digest``)."""
        return self.layout.put_blob(src, media_type, expected_digest=expected_digest)

    def read_json(self, descriptor: Descriptor | str) -> object:
        """A small blob checked and parsed as JSON (ModelError when it is not JSON)."""
        return self.layout.read_json(descriptor)

    def read_manifest(self, descriptor: Descriptor | str) -> Manifest:
        return self.layout.read_manifest(descriptor)

    def read_config(self, manifest: Manifest | Descriptor) -> ImageConfig:
        return self.layout.read_config(manifest)

    def write_layer(self, produce: Callable[[BinaryIO], object], *, tmp_dir: Path | None = None) -> Layer:
        """Run ``produce(file)`` (it writes a layer and returns part 4's LayerInfo) into the
        blob directory: part 3's ``write_layer_blob``, the layer written once, under its digest."""
        return write_layer_blob(self.layout.blobs_dir, produce, tmp_dir=tmp_dir)

    def add_source(self, digest: str, repository: str) -> None:
        """Note that ``REGISTRY/REPOSITORY`` has the blob ``digest`` (it was pulled from or
        pushed there): a push to another repository of the same registry can mount it."""
        self.blob_sources.add(digest, repository)

    def sources(self, digest: str) -> list[str]:
        """The ``REGISTRY/REPOSITORY`` names known to have the blob, oldest first."""
        return self.blob_sources.of(digest)

    # -- names and lookups (names.py) ----------------------------------------------------------
    def ensure_embedded(self, name: str) -> bool:
        """Make the embedded base (``capstone/busybox``) if ``name`` is it and it is not stored
        yet; True when it was made now. Built by part 2 from the host's busybox-static."""
        try:
            normalized = parse_name(name).name
        except InvalidName:
            return False
        if normalized != EMBEDDED_BUSYBOX or self.names.has_name(normalized):
            return False
        with self.lock():
            if self.names.has_name(normalized):
                return False
            from part2_manual_oci import build_busybox_image  # subprocess, gzip: only the first time

            with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX + "busybox-", dir=self.tmp_dir) as tmp:
                built = build_busybox_image(Path(tmp) / "layout", tag="latest", workdir=Path(tmp) / "work")
                source = OCILayout.open(Path(tmp) / "layout")
                manifest = source.read_manifest(built)
                for desc in (*manifest.layers, manifest.config, built):
                    with source.open_blob(desc) as f:
                        stored = self.put_blob(f, desc.media_type, expected_digest=desc.digest)
            stored = replace(stored, platform=built.platform)
            self.names.record_id(manifest.config.digest, stored)
            self.names.set_names([normalized], stored)
        return True

    def resolve(self, name_or_id: str) -> Descriptor | None:
        """The manifest descriptor of an image: by name (normalized), by a manifest or image
        digest ``sha256:...``, or by a unique prefix (>= 4 hex digits) of an image id."""
        return self.names.resolve(name_or_id)

    def image_id(self, name_or_descriptor: str | Descriptor) -> str:
        """The image id (``sha256:`` + the config digest's hex, as Docker shows it)."""
        return self.manifest(name_or_descriptor).config.digest

    def manifest(self, name_or_descriptor: str | Descriptor) -> Manifest:
        """The image's manifest (the host platform's one for a multi-platform index)."""
        return self.names.manifest(name_or_descriptor)

    def config(self, name_or_descriptor: str | Descriptor) -> ImageConfig:
        return self.layout.read_config(self.manifest(name_or_descriptor))

    def names_of(self, descriptor: Descriptor) -> list[str]:
        """The normalized names that tag this manifest, in index.json order."""
        return self.names.names_of(descriptor)

    def tag(self, name: str, descriptor: Descriptor | str) -> Descriptor:
        """Name an image (a descriptor, or a name/id to resolve) ``name``; returns the entry."""
        return self.names.tag(name, descriptor)

    def untag(self, name: str) -> None:
        """Drop the name (the image's blobs stay until ``prune``)."""
        self.names.untag(name)

    def images(self, *, all: bool = False) -> list[ImageEntry]:
        """Tagged images, newest first (``all``: also the untagged ones, such as build steps)."""
        return self.names.images(all=all)

    def remove(self, name_or_id: str, *, force: bool = False) -> list[tuple[str, str]]:
        """``rmi``: untag a name, or every name of an id (with ``force`` when it has several).

        When no name is left the image is deleted: its id no longer resolves (unless the build
        cache refers to it) and ``prune`` frees its blobs and snapshots that nothing else uses.
        Returns docker's lines: ``("Untagged", name)`` and ``("Deleted", image id)``.
        """
        return self.names.remove(name_or_id, force=force, cached=self.cache.refers_to)

    # -- images in and out ---------------------------------------------------------------------
    def load(self, name_or_id: str, platform: Platform | None = None) -> Image:
        """The stored image as a part 3 ``Image`` (layers read in place from the store); for a
        multi-platform index, its image for ``platform`` (default: this host)."""
        desc = self.resolve(name_or_id)
        if desc is None:
            raise ImageNotFound(f"no image {name_or_id!r} in the store {self.path}")
        return image_from_layout(self.layout, self.names.platform_manifest(desc, platform))

    def load_manifest(self, digest: str, *, whole: bool = True) -> Image:
        """The image whose manifest is the blob ``digest`` (what a build cache entry names),
        read straight from that blob: none of the name and image id lookups of ``load``.
        Raises ImageNotFound when the blob is missing or is not a manifest; StoreError when a
        layer's blob is missing, unless ``whole`` is False (a ``--cache-from`` hit, whose
        layers come when something reads them)."""
        from part2_manual_oci import DigestError, LayoutError

        try:
            desc = self.layout.describe(digest)
        except (OSError, LayoutError, DigestError) as e:
            raise ImageNotFound(f"no manifest {digest} in the store {self.path}: {e}") from None
        if desc.media_type not in mt.MANIFEST_TYPES:
            return self.load(digest)  # an index, or not an image: the full lookup decides
        return image_from_layout(self.layout, desc, whole=whole)

    def commit(self, image: Image, names: list[str]) -> Descriptor:
        """Store ``image`` (layers not yet here are copied and verified; present ones reused),
        its config and manifest, and tag it with each of ``names`` (index.json last)."""
        normalized = [parse_name(n).name for n in names]  # every name is checked before any write
        with self.lock():
            mdesc = self._reuse_loaded(image)
            if mdesc is None:
                for layer in image.layers:
                    self._put_layer(layer)
                # not fsynced: a step image of a build only matters once a name reaches it, and
                # set_names makes what it names durable first (a lost one is a cache miss)
                config_desc = self.layout.put_json(image.config, mt.OCI_CONFIG, durable=False)
                manifest = Manifest(config_desc, tuple(layer.descriptor for layer in image.layers))
                mdesc = replace(self.layout.put_json(manifest, mt.OCI_MANIFEST, durable=False),
                                platform=image.config.platform)
                self.names.record_id(config_desc.digest, mdesc)
            if normalized:
                self.names.set_names(normalized, mdesc)
        return mdesc

    def name_stored(self, descriptor: Descriptor, names: list[str]) -> Descriptor:
        """Tag the stored manifest ``descriptor`` (its ``platform`` set from its config) with
        each of ``names``: what :meth:`commit` does for an image loaded from the store and not
        changed since (a build whose last step the cache answered), without the image value."""
        normalized = [parse_name(n).name for n in names]
        mdesc = plain(descriptor)
        with self.lock():
            if not self.has_blob(mdesc.digest):
                raise StoreError(f"cannot tag {mdesc.digest}: not in the store {self.path}")
            if normalized:
                self.names.set_names(normalized, mdesc)
        return mdesc

    def commit_index(self, images: list[Image], names: list[str]) -> Descriptor:
        """Store ``images`` (one per platform) and an OCI image index of them, and tag the
        index with each of ``names``: a multi-platform image under one name."""
        normalized = [parse_name(n).name for n in names]
        with self.lock():
            entries = tuple(self.commit(image, []) for image in images)
            index_desc = self.layout.put_json(Index(manifests=entries), mt.OCI_INDEX, durable=False)
            if normalized:
                self.names.set_names(normalized, index_desc)
        return index_desc

    def _reuse_loaded(self, image: Image) -> Descriptor | None:
        """The stored manifest when ``image`` is unchanged since it was loaded from the store."""
        src = image.loaded_from
        if src is None or src.media_type != mt.OCI_MANIFEST or not self.has_blob(src.digest):
            return None
        manifest = self.layout.read_manifest(src)
        if manifest.layers != tuple(layer.descriptor for layer in image.layers):
            return None
        if not self.has_blob(manifest.config.digest) or self.layout.read_config(manifest) != image.config:
            return None
        return replace(plain(src), platform=image.config.platform)

    def _put_layer(self, layer: Layer) -> None:
        desc = layer.descriptor
        if self.has_blob(desc.digest, desc.size):
            return
        with layer.open() as f:
            stored = self.put_blob(f, desc.media_type, expected_digest=desc.digest)
        if stored.size != desc.size:
            raise StoreError(f"layer {desc.digest} from {layer.source}: {stored.size} bytes, its descriptor says {desc.size}")

    # -- garbage collection (gc.py) ------------------------------------------------------------
    def prune(self, *, all: bool = False) -> tuple[int, int]:
        """Remove blobs, snapshots, ids and cache entries that nothing reachable refers to
        (reachable: index.json, and the images the build cache names). ``all`` empties the
        build cache first (like ``docker builder prune -a``). Waits for running builds.
        Returns (blobs removed, bytes freed)."""
        with self.locks.exclusive_session(), self.lock():
            return gc.prune(self, all=all)

    # -- snapshots (snapshots.py) --------------------------------------------------------------
    def snapshot(self, layer: Descriptor, diff_id: str, *, blob: BinaryIO | None = None) -> Path:
        """The layer extracted as an overlay lower dir, ``STORE/snapshots/<diff_id hex>``:
        once, checked against ``diff_id``; ``blob``: a stream of a layer not stored yet."""
        return self.snapshots.get(layer, diff_id, blob=blob)

    def check_snapshot(self, layer: Descriptor, diff_id: str) -> None:
        """Is the store's blob of ``layer`` still the one the snapshot was checked against?
        (StoreError when it is damaged; see ``Snapshots.check``)."""
        self.snapshots.check(layer, diff_id)

    def adopt_snapshot(self, diff_id: str, directory: str | os.PathLike, layer: Descriptor | None = None) -> Path:
        """Keep ``directory`` (on the store's file system, e.g. under ``tmp_dir``) as the
        snapshot of the layer ``diff_id`` instead of extracting the layer later (a RUN step's
        upper dir, a COPY's staged files); ``layer``: the blob written from the same files."""
        return self.snapshots.adopt(diff_id, directory, layer)

    def has_snapshot(self, diff_id: str) -> bool:
        return self.snapshots.has(diff_id)

    def lowers(self, image: Image) -> list[Path]:
        """The image's layers as overlay lower dirs, top layer first (overlay's order)."""
        return self.snapshots.lowers(image)

    # -- build cache (cache.py) ----------------------------------------------------------------
    def cache_get(self, key: str) -> dict | None:
        """The value stored under ``key``, or None (a missing or unreadable entry is a miss)."""
        return self.cache.get(key)

    def cache_put(self, key: str, value: dict) -> None:
        """Store ``value`` under ``key`` (atomically). Every ``sha256:...`` string in a value
        keeps that blob (an image manifest: the whole image) alive through ``prune``."""
        self.cache.put(key, value)

    def cache_open(self, key: str) -> BinaryIO | None:
        """A binary cache entry, open for reading (None: there is none)."""
        return self.cache.open_file(key)

    def cache_write(self, key: str) -> AbstractContextManager[BinaryIO]:
        """Write a binary cache entry as a stream (it replaces the old one when the block ends
        without an error)."""
        return self.cache.write_file(key)

    # -- import and transfer (transfer.py, convert.py) -----------------------------------------
    def import_rootfs(self, src: str | os.PathLike, name: str, *, platform: Platform | None = None,
                      source_date_epoch: int | None = None) -> Descriptor:
        """A single-layer image from a root filesystem directory or a tar file (``docker
        import``): PATH set, ``Cmd ["/bin/sh"]`` when /bin/sh exists; tagged ``name``; for
        ``platform`` (default: this host's); dated ``source_date_epoch`` (default: now), which
        also clamps the layer's mtimes."""
        from .transfer import import_rootfs

        return import_rootfs(self, Path(src), name, platform=platform, source_date_epoch=source_date_epoch)

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


def image_from_layout(layout: OCILayout, mdesc: Descriptor, *, whole: bool = True) -> Image:
    """The image a manifest descriptor of ``layout`` names, its layers read in place (every
    one there, unless not ``whole``: then the ones still missing are read once they come)."""
    manifest = layout.read_manifest(mdesc)
    config = layout.read_config(manifest)
    if len(manifest.layers) != len(config.rootfs_diff_ids):
        raise StoreError(f"{layout.path}: manifest {mdesc.digest} lists {len(manifest.layers)} layers but its "
                         f"config {len(config.rootfs_diff_ids)} diff_ids")
    layers = []
    for ld, diff_id in zip(manifest.layers, config.rootfs_diff_ids):
        if whole and not layout.has_blob(ld.digest):
            raise StoreError(f"{layout.path}: layer {ld.digest} of {mdesc.digest} is missing")
        layers.append(Layer(replace(ld, media_type=mt.oci_layer_type(ld.media_type)), diff_id,
                            FileBlob(layout.blob_path(ld.digest))))
    return Image(config, tuple(layers), loaded_from=mdesc)
