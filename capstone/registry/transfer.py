"""Pull an image from a registry into the store; push one from the store to a registry.

**Pull** (``docker pull``): GET the manifest by tag or digest; an index (OCI) or manifest list
(Docker) is resolved to the entry for this host's platform (``os``/``architecture``, the
``variant`` preferred when the host has one); then the config and every layer the store lacks
are streamed from the registry straight into the store's blob directory
(``OCILayout.put_blob(stream, expected_digest=...)``: hashed while written, renamed into place
only when the digest matches, so a corrupt or truncated download leaves nothing). The
manifest's own bytes are stored unchanged (its digest is the image's identity) and the name is
tagged in the store. Layers are extracted into snapshots later, on first use.

**Push** (``docker push``): for each blob the manifest names (config, layers), ``HEAD`` first
and upload only what the registry lacks (monolithic: POST an upload, PUT the bytes streamed
from the store with ``?digest=``); then PUT the manifest's stored bytes with its media type,
under the tag. An index is pushed child manifests first (by digest), then itself. A
destination may also be ``oci:DIR[:TAG]``, ``oci-archive:FILE[:TAG]`` or
``docker-archive:FILE[:NAME:TAG]``: that is the store's export.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from part2_manual_oci import MAX_JSON_SIZE, BlobCorrupt, Descriptor, Index, Manifest, Platform, host_platform
from part2_manual_oci import mediatypes as mt

from ..refs import DOCKER, NameRef, parse_name, parse_reference
from .client import RegistryClient
from .errors import DigestMismatch, ManifestUnknown, RegistryError

Progress = Callable[[str], None]


def pull(
    store,
    name: str,
    *,
    platform: Platform | None = None,
    client: RegistryClient | None = None,
    on_progress: Progress | None = None,
) -> Descriptor:
    """Pull ``name`` (``busybox``, ``127.0.0.1:5000/a/b:1``, ``x@sha256:...``, or
    ``docker://NAME``) into ``store`` and tag it there; returns the manifest descriptor."""
    if name.startswith("docker://"):
        name = name[len("docker://"):]
    ref = parse_name(name)
    say = on_progress or (lambda _msg: None)
    own = client is None
    client = client or RegistryClient(ref.registry)
    try:
        with store.session():  # prune waits: the blobs are not reachable until tagged
            return _pull(store, client, ref, platform, say)
    finally:
        if own:
            client.close()


def _pull(store, client: RegistryClient, ref: NameRef, platform: Platform | None, say: Progress) -> Descriptor:
    data, media_type, digest = client.get_manifest(ref.repository, ref.digest or ref.tag)
    if media_type in mt.INDEX_TYPES:
        index = Index.from_json(_json(data, f"{ref.name}: index"), f"{ref.name}: index")
        entry = select_platform(index.manifests, platform or host_platform(), ref.name)
        say(f"{ref.short}: index {digest[:19]}, picked {entry.platform or 'the only entry'}: {entry.digest[:19]}")
        data, media_type, digest = client.get_manifest(ref.repository, entry.digest, entry.size)
    if media_type not in mt.MANIFEST_TYPES:
        raise RegistryError(f"{ref.name}: unsupported manifest type {media_type!r}")
    manifest = Manifest.from_json(_json(data, f"{ref.name}: manifest"), f"{ref.name}: manifest {digest}")
    if manifest.config.size > MAX_JSON_SIZE:  # refused before a byte of it is fetched
        raise RegistryError(f"{ref.name}: image config {manifest.config.digest} is {manifest.config.size} bytes, more "
                            f"than the {MAX_JSON_SIZE} an image config may have (podman and skopeo refuse it too)")
    for desc in (manifest.config, *manifest.layers):
        _fetch_blob(store, client, ref, desc, say)
    stored = store.layout.put_blob(data, media_type, expected_digest=digest)
    store.tag(ref.name, stored)
    say(f"{ref.short}: {digest}")
    return stored


def _fetch_blob(store, client: RegistryClient, ref: NameRef, desc: Descriptor, say: Progress) -> None:
    layout = store.layout
    if layout.has_blob(desc.digest) and layout.blob_path(desc.digest).stat().st_size == desc.size:
        say(f"{desc.digest[:19]}: already in the store")
        return
    if desc.urls and not desc.media_type.startswith(("application/vnd.oci", "application/vnd.docker.container")):
        raise RegistryError(f"{ref.name}: layer {desc.digest} is a foreign layer (urls), not supported")
    with client.open_blob(ref.repository, desc.digest, desc.size) as stream:
        try:
            got = layout.put_blob(stream, desc.media_type, expected_digest=desc.digest)
        except BlobCorrupt as e:
            raise DigestMismatch(f"{ref.name}: blob {desc.digest}: {e}") from None
    if got.size != desc.size:
        raise DigestMismatch(f"{ref.name}: blob {desc.digest}: {got.size} bytes, the manifest says {desc.size}")
    say(f"{desc.digest[:19]}: {desc.size} bytes")


def select_platform(entries: tuple[Descriptor, ...], want: Platform, where: str) -> Descriptor:
    """The index entry for ``want``: same os and architecture, the same variant preferred
    (then one without a variant); a single unlabelled manifest is taken as is."""
    manifests = [e for e in entries if e.media_type in mt.MANIFEST_TYPES or e.media_type in mt.INDEX_TYPES]
    matching = [e for e in manifests if e.platform is not None
                and (e.platform.os, e.platform.architecture) == (want.os, want.architecture)]
    if matching:
        for wanted_variant in (want.variant, None):
            for e in matching:
                if e.platform.variant == wanted_variant:
                    return e
        return matching[0]
    unlabelled = [e for e in manifests if e.platform is None]
    if len(manifests) == 1 or len(unlabelled) == 1:
        return (unlabelled or manifests)[0]
    found = ", ".join(str(e.platform) for e in manifests if e.platform) or "none"
    raise ManifestUnknown(f"{where}: no image for {want} in the index (platforms: {found})")


def push(
    store,
    name: str,
    dest: str | None = None,
    *,
    client: RegistryClient | None = None,
    on_progress: Progress | None = None,
) -> str:
    """Push the stored image ``name`` to ``dest`` (default: its own name's registry).

    ``dest``: ``docker://HOST/REPO[:TAG]`` or a bare name (a registry), or ``oci:``,
    ``oci-archive:``, ``docker-archive:`` (the store's export). Returns the pushed manifest
    digest (for a registry) or the export destination.
    """
    say = on_progress or (lambda _msg: None)
    target = parse_reference(dest) if dest else parse_name(name)
    if not isinstance(target, NameRef):
        if target.transport != DOCKER:
            store.export(name, dest)
            say(f"exported to {dest}")
            return dest
        target = target.name
    image = store.load(name)  # raises the store's ImageNotFound with a clear message
    desc = store.resolve(name) or image.loaded_from
    if desc is None:
        raise RegistryError(f"{name}: not found in the store")
    own = client is None
    client = client or RegistryClient(target.registry)
    try:
        if target.tag is None and target.digest != desc.digest:
            raise DigestMismatch(f"{target.name}: the image's digest is {desc.digest}")
        digest = _push_manifest(store, client, target, desc, target.tag or desc.digest, say)
        say(f"{target.short}: digest: {digest} size: {desc.size}")
        return digest
    finally:
        if own:
            client.close()


def _push_manifest(store, client: RegistryClient, target: NameRef, desc: Descriptor, reference: str, say: Progress) -> str:
    """Push what ``desc`` names (blobs, or child manifests by digest), then the manifest
    itself under ``reference`` (a tag or its digest)."""
    layout = store.layout
    data = layout.read_blob(desc)
    if desc.media_type in mt.INDEX_TYPES:
        index = Index.from_json(_json(data, desc.digest), f"index {desc.digest}")
        for child in index.manifests:
            _push_manifest(store, client, target, child, child.digest, say)
    else:
        manifest = Manifest.from_json(_json(data, desc.digest), f"manifest {desc.digest}")
        for blob in (manifest.config, *manifest.layers):
            if client.has_blob(target.repository, blob.digest):
                say(f"{blob.digest[:19]}: layer already exists")
                continue
            path = layout.blob_path(blob.digest)
            client.upload_blob(target.repository, blob.digest, path.stat().st_size, lambda p=path: open(p, "rb"))
            say(f"{blob.digest[:19]}: pushed {blob.size} bytes")
    return client.put_manifest(target.repository, reference, data, desc.media_type)


def _json(data: bytes, where: str) -> dict:
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise RegistryError(f"{where}: not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"{where}: not a JSON object")
    return doc
