"""Pull an image from a registry into the store; push one from the store to a registry.

**Pull** (``docker pull``): GET the manifest by tag or digest; an index (OCI) or manifest list
(Docker) is resolved to the entry for the platform asked for (default: this host) by part 2's
``select_platform`` (containerd's rules: an exact os/architecture/variant first, then what the
CPU also runs, such as arm/v6 for arm/v7); a single-platform image pulled for a platform must be
that platform's (or one it runs), as with ``docker pull --platform``; then the config and every layer the store lacks
are streamed from the registry straight into the store's blob directory, a few layers at a
time (:attr:`~capstone.download.Limits.parallel`), each through
``OCILayout.put_blob(stream, expected_digest=...)``: hashed while written, renamed into place
only when the digest matches, so a corrupt, truncated or interrupted download leaves nothing.
A layer whose connection breaks goes on where it stopped (``Range``). The manifest's own bytes
are stored unchanged (its digest is the image's identity) and the name is tagged in the store
last. An interrupted pull (^C, a failed layer, a killed process) leaves no name and no
half-written blob: the other layers stop at their next chunk and remove their temporary files;
the next pull finds the layers that were complete in the store and fetches only the rest.
Layers are extracted into snapshots later, on first use.

**Push** (``docker push``): for each blob the manifest names (config, layers), a few at a time:
``HEAD`` first; a blob the registry lacks is mounted from another repository of the same
registry when the store knows one that has it (``STORE/sources``: where blobs were pulled
from and pushed to), else uploaded (in chunks when it is large, see the client); then PUT the
manifest's stored bytes with its media type, under the tag. An index is pushed child
manifests first (by digest), then itself. A destination may also be ``oci:DIR[:TAG]``,
``oci-archive:FILE[:TAG]`` or ``docker-archive:FILE[:NAME:TAG]``: that is the store's export.

**Progress**: ``on_progress`` is a :class:`~capstone.download.TransferProgress` (the command
line's bars or lines), or a callable that gets one line per blob and note.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from part2_manual_oci import (
    MAX_JSON_SIZE,
    BlobCorrupt,
    Descriptor,
    Index,
    Manifest,
    Platform,
    PlatformNotFound,
    format_platform,
    platform_compatible,
    select_platform,
)
from part2_manual_oci import mediatypes as mt

from ..download import TransferProgress, run_parallel
from ..refs import NameRef, parse_name, parse_reference
from .client import RegistryClient, RegistryOptions
from .errors import DigestMismatch, ManifestUnknown, RegistryError

if TYPE_CHECKING:  # the store's interface, for types only: the client never reaches into a store
    from ..store import RegistryStore

Say = Callable[[str], None]


class LineProgress(TransferProgress):
    """A :class:`TransferProgress` that says one line per finished blob and per note."""

    def __init__(self, say: Say) -> None:
        self.say = say
        self._sizes: dict[str, int | None] = {}

    def begin(self, key: str, label: str, total: int | None) -> None:
        self._sizes[key] = total

    def end(self, key: str, outcome: str = "done") -> None:
        size = self._sizes.pop(key, None)
        words = {"done": f"{size} bytes" if size is not None else "done", "exists": "already exists",
                 "mounted": "mounted from another repository", "failed": "failed"}.get(outcome, outcome)
        self.say(f"{key[:19]}: {words}")

    def note(self, text: str) -> None:
        self.say(text)


def as_progress(on_progress: TransferProgress | Say | None) -> TransferProgress:
    if on_progress is None:
        return TransferProgress()
    if isinstance(on_progress, TransferProgress):
        return on_progress
    return LineProgress(on_progress)


def pull(
    store: RegistryStore,
    name: str,
    *,
    platform: Platform | None = None,
    client: RegistryClient | None = None,
    on_progress: TransferProgress | Say | None = None,
    options: RegistryOptions | None = None,
) -> Descriptor:
    """Pull ``name`` (``busybox``, ``127.0.0.1:5000/a/b:1``, ``x@sha256:...``, or
    ``docker://NAME``) into ``store`` and tag it there; returns the manifest descriptor.
    ``options``: the command line's ``--tls-verify``, ``--creds``, ``--authfile``,
    ``--cert-dir`` (for a client made here)."""
    if name.startswith("docker://"):
        name = name[len("docker://"):]
    ref = parse_name(name)
    progress = as_progress(on_progress)
    own = client is None
    client = client or RegistryClient(ref.registry, options=options, repository=ref.repository, on_note=progress.note)
    try:
        with store.session():  # prune waits: the blobs are not reachable until tagged
            return _pull(store, client, ref, platform, progress)
    finally:
        if own:
            client.close()


def _pull(store: RegistryStore, client: RegistryClient, ref: NameRef, platform: Platform | None, progress: TransferProgress) -> Descriptor:
    data, media_type, digest = client.get_manifest(ref.repository, ref.digest or ref.tag)
    while media_type in mt.INDEX_TYPES:  # an index may name an index: go down to the manifest
        index = Index.from_json(_json(data, f"{ref.name}: index"), f"{ref.name}: index")
        try:
            entry = select_platform(index.manifests, platform, ref.name)
        except PlatformNotFound as e:
            raise ManifestUnknown(str(e)) from None
        progress.note(f"{ref.short}: index {digest[:19]}, picked {entry.platform or 'the only entry'}: {entry.digest[:19]}")
        data, media_type, digest = client.get_manifest(ref.repository, entry.digest, entry.size)
    if media_type not in mt.MANIFEST_TYPES:
        raise RegistryError(f"{ref.name}: unsupported manifest type {media_type!r}")
    manifest = Manifest.from_json(_json(data, f"{ref.name}: manifest"), f"{ref.name}: manifest {digest}")
    if manifest.config.size > MAX_JSON_SIZE:  # refused before a byte of it is fetched
        raise RegistryError(f"{ref.name}: image config {manifest.config.digest} is {manifest.config.size} bytes, more "
                            f"than the {MAX_JSON_SIZE} an image config may have (podman and skopeo refuse it too)")
    # the config first (what the platform check reads), then the layers a few at a time
    fetch_blobs(store, client, ref.repository, (manifest.config,), progress, where=ref.name)
    if platform is not None:  # a single-platform image must be the one asked for (as docker pull)
        have = store.read_config(manifest).platform
        if not platform_compatible(platform, have):
            raise ManifestUnknown(f"{ref.name}: the image is for {format_platform(have)}, not the requested "
                                  f"{format_platform(platform)}")
    fetch_blobs(store, client, ref.repository, manifest.layers, progress, where=ref.name)
    stored = store.put_blob(data, media_type, expected_digest=digest)
    store.tag(ref.name, stored)
    progress.note(f"{ref.short}: {digest}")
    return stored


def fetch_blobs(store: RegistryStore, client: RegistryClient, repository: str, descriptors, progress: TransferProgress, *,
                where: str) -> None:
    """Every blob of ``descriptors`` the store lacks, into the store, a few at a time (see the
    module page); each one checked against its digest and size."""
    unique = list({d.digest: d for d in descriptors}.values())
    run_parallel([lambda cancel, d=d: _fetch_blob(store, client, repository, d, progress, where, cancel)
                  for d in unique], workers=client.limits.parallel)


def _fetch_blob(store: RegistryStore, client: RegistryClient, repository: str, desc: Descriptor, progress: TransferProgress,
                where: str, cancel: threading.Event) -> None:
    source = f"{client.registry}/{repository}"
    progress.begin(desc.digest, _label(desc), desc.size)
    if store.has_blob(desc.digest, desc.size):
        store.add_source(desc.digest, source)
        progress.end(desc.digest, "exists")
        return
    if desc.urls and not desc.media_type.startswith(("application/vnd.oci", "application/vnd.docker.container")):
        raise RegistryError(f"{where}: layer {desc.digest} is a foreign layer (urls), not supported")
    try:
        with client.open_blob(repository, desc.digest, desc.size, cancel=cancel,
                              meter=lambda n: progress.advance(desc.digest, n)) as stream:
            try:
                got = store.put_blob(stream, desc.media_type, expected_digest=desc.digest)
            except BlobCorrupt as e:
                raise DigestMismatch(f"{where}: blob {desc.digest}: {e}") from None
        if got.size != desc.size:
            raise DigestMismatch(f"{where}: blob {desc.digest}: {got.size} bytes, the manifest says {desc.size}")
    except BaseException:
        progress.end(desc.digest, "failed")
        raise
    store.add_source(desc.digest, source)
    progress.end(desc.digest, "done")


def _label(desc: Descriptor) -> str:
    kind = "config" if desc.media_type in (mt.OCI_CONFIG, mt.DOCKER_CONFIG) else \
        "manifest" if desc.media_type in mt.MANIFEST_TYPES or desc.media_type in mt.INDEX_TYPES else "blob"
    return f"{kind} {desc.digest.removeprefix('sha256:')[:12]}"


def push(
    store: RegistryStore,
    name: str,
    dest: str | None = None,
    *,
    client: RegistryClient | None = None,
    on_progress: TransferProgress | Say | None = None,
    options: RegistryOptions | None = None,
) -> str:
    """Push the stored image ``name`` to ``dest`` (default: its own name's registry).

    ``dest``: ``docker://HOST/REPO[:TAG]`` or a bare name (a registry), or ``oci:``,
    ``oci-archive:``, ``docker-archive:`` (the store's export). Returns the pushed manifest
    digest (for a registry) or the export destination.
    """
    progress = as_progress(on_progress)
    target = parse_reference(dest) if dest else parse_name(name)
    if not isinstance(target, NameRef):
        store.export(name, dest)
        progress.note(f"exported to {dest}")
        return dest
    image = store.load(name)  # raises the store's ImageNotFound with a clear message
    desc = store.resolve(name) or image.loaded_from
    if desc is None:
        raise RegistryError(f"{name}: not found in the store")
    own = client is None
    client = client or RegistryClient(target.registry, options=options, repository=target.repository,
                                      on_note=progress.note)
    try:
        if target.tag is None and target.digest != desc.digest:
            raise DigestMismatch(f"{target.name}: the image's digest is {desc.digest}")
        digest = push_manifest(store, client, target.repository, desc, target.tag or desc.digest, progress)
        progress.note(f"{target.short}: digest: {digest} size: {desc.size}")
        return digest
    finally:
        if own:
            client.close()


def push_manifest(store: RegistryStore, client: RegistryClient, repository: str, desc: Descriptor, reference: str,
                  progress: TransferProgress) -> str:
    """Push what ``desc`` names (blobs, or child manifests by digest), then the manifest
    itself under ``reference`` (a tag or its digest); its digest."""
    data = store.read_blob(desc)
    if desc.media_type in mt.INDEX_TYPES:
        index = Index.from_json(_json(data, desc.digest), f"index {desc.digest}")
        for child in index.manifests:
            push_manifest(store, client, repository, child, child.digest, progress)
    else:
        manifest = Manifest.from_json(_json(data, desc.digest), f"manifest {desc.digest}")
        push_blobs(store, client, repository, (manifest.config, *manifest.layers), progress)
    return client.put_manifest(repository, reference, data, desc.media_type)


def push_blobs(store: RegistryStore, client: RegistryClient, repository: str, descriptors, progress: TransferProgress) -> None:
    """Every blob of ``descriptors`` the repository lacks: mounted or uploaded, a few at a time."""
    unique = list({d.digest: d for d in descriptors}.values())
    run_parallel([lambda cancel, d=d: _push_blob(store, client, repository, d, progress, cancel) for d in unique],
                 workers=client.limits.parallel)


def _push_blob(store: RegistryStore, client: RegistryClient, repository: str, blob: Descriptor, progress: TransferProgress,
               cancel: threading.Event) -> None:
    here = f"{client.registry}/{repository}"
    progress.begin(blob.digest, _label(blob), blob.size)
    try:
        if client.has_blob(repository, blob.digest):
            outcome = "exists"
        else:
            prefix = client.registry + "/"
            # the repository that got it last first: an older one may have been deleted since
            others = [s[len(prefix):] for s in reversed(store.sources(blob.digest)) if s.startswith(prefix) and s != here]
            path = store.blob_path(blob.digest)
            outcome = client.upload_blob(repository, blob.digest, path.stat().st_size, lambda p=path: open(p, "rb"),
                                         mount_from=others, cancel=cancel,
                                         meter=lambda n: progress.advance(blob.digest, n))
            outcome = "mounted" if outcome == "mounted" else "done"
    except BaseException:
        progress.end(blob.digest, "failed")
        raise
    store.add_source(blob.digest, here)
    progress.end(blob.digest, outcome)


def _json(data: bytes, where: str) -> dict:
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise RegistryError(f"{where}: not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"{where}: not a JSON object")
    return doc
