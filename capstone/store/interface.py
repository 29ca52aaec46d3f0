"""What the build and the registry client need of a store, as typed Protocols.

The build (``capstone.engine``, ``capstone.runner``) is written against :class:`BuildStore`
and the registry client (``capstone.registry``) against :class:`RegistryStore`; :class:`Store`
is both. Neither reaches into the store's files or its OCI layout: a blob is read and written
through :class:`BlobStore`'s methods, so the layout of the store's directories stays the
store's own. ``tests/test_architecture.py`` checks that every attribute those packages use on
a store is declared here.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from part2_manual_oci import Descriptor, ImageConfig, Manifest, Platform
from part3_go_style_builder import Image, Layer


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed blobs, each checked against its digest when read or written."""

    def has_blob(self, digest: str, size: int | None = None) -> bool: ...

    def blob_path(self, digest: str) -> Path: ...

    def open_blob(self, descriptor: Descriptor | str) -> BinaryIO: ...

    def read_blob(self, descriptor: Descriptor | str) -> bytes: ...

    def put_blob(self, src: bytes | BinaryIO, media_type: str, *,
                 expected_digest: str | None = None) -> Descriptor: ...

    def read_json(self, descriptor: Descriptor | str) -> object: ...

    def read_manifest(self, descriptor: Descriptor | str) -> Manifest: ...

    def read_config(self, manifest: Manifest | Descriptor) -> ImageConfig: ...


@runtime_checkable
class ImageStore(BlobStore, Protocol):
    """Named images as part 3 ``Image`` values, and the shared lock that keeps them from
    ``prune`` while they are in use."""

    def resolve(self, name_or_id: str) -> Descriptor | None: ...

    def load(self, name_or_id: str, platform: Platform | None = None) -> Image: ...

    def load_manifest(self, digest: str, *, whole: bool = True) -> Image: ...

    def commit(self, image: Image, names: list[str]) -> Descriptor: ...

    def tag(self, name: str, descriptor: Descriptor | str) -> Descriptor: ...

    def export(self, name_or_id: str, dest: str) -> Descriptor: ...

    def session(self) -> AbstractContextManager: ...


@runtime_checkable
class RegistryStore(ImageStore, Protocol):
    """What pull and push need besides images: where a blob is known to be (a push mounts it
    from another repository of the same registry instead of uploading it)."""

    def add_source(self, digest: str, repository: str) -> None: ...

    def sources(self, digest: str) -> list[str]: ...


@runtime_checkable
class BuildStore(ImageStore, Protocol):
    """What a build and ``capstone run`` need: layers written straight into the store,
    snapshots as overlay lowers, the build cache, leased scratch directories."""

    #: how a container gets its writable root: "overlay", "copy" or "auto" (part 7's snapshotters)
    snapshotter: str

    @property
    def tmp_dir(self) -> Path: ...

    @property
    def containers_dir(self) -> Path: ...

    @property
    def cache_mounts_dir(self) -> Path: ...

    def write_layer(self, produce: Callable[[BinaryIO], object], *, tmp_dir: Path | None = None) -> Layer: ...

    def name_stored(self, descriptor: Descriptor, names: list[str]) -> Descriptor: ...

    def commit_index(self, images: list[Image], names: list[str]) -> Descriptor: ...

    def load_archive(self, src: str, platform: Platform | None = None) -> Image: ...

    def convert(self, desc: Descriptor, *, compression: str | None = None,
                oci_mediatypes: bool = True) -> Descriptor: ...

    def write_rootfs(self, desc: Descriptor, dest: str, *, as_tar: bool = False) -> None: ...

    def has_snapshot(self, diff_id: str) -> bool: ...

    def adopt_snapshot(self, diff_id: str, directory: str, layer: Descriptor | None = None) -> Path: ...

    def lowers(self, image: Image) -> list[Path]: ...

    def cache_get(self, key: str) -> dict | None: ...

    def cache_put(self, key: str, value: dict) -> None: ...

    def cache_open(self, key: str) -> BinaryIO | None: ...

    def cache_write(self, key: str) -> AbstractContextManager[BinaryIO]: ...

    def lease(self, parent: Path, name: str | None = None, *, keep: bool = False) -> AbstractContextManager: ...

    def sweep(self) -> list[Path]: ...
