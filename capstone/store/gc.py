"""Garbage collection: what nothing reachable refers to leaves the store.

Reachable is what part 2's ``OCILayout.walk`` reaches from index.json and from the digests the
build cache names (subjects too, so a named referrer keeps its image); the snapshots of the
layers whose configs it reaches stay, and so do their records, the image ids of manifests it
reaches and where those blobs came from. Everything else goes: blobs, snapshots, ids, cache
entries that name only what is gone, source records, and all of ``tmp/`` (``prune`` runs only
while no build or run uses the store).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from part2_manual_oci import Descriptor, LayoutError, OCILayout
from part2_manual_oci import mediatypes as mt

from .leases import TEMP_PREFIX, detach_mounts_under, remove_tree

if TYPE_CHECKING:
    from .store import Store


def prune(store: Store, *, all: bool = False) -> tuple[int, int]:
    """See ``Store.prune``: the caller holds the store's locks."""
    if all:
        store.cache.clear()
    keep, diff_ids = reachable(store.layout, store.names.entries(), store.cache.roots())
    store.cache.drop_stale(keep)
    removed, freed = remove_blobs(store.layout, keep)
    store.names.prune_ids(keep)
    store.blob_sources.prune(keep)
    store.snapshots.prune(diff_ids)
    # no build or run is using the store (the caller holds gc.lock exclusively): all of tmp/
    # is left over, and so is every container directory that still has a lease
    for entry in store.tmp_dir.iterdir():
        detach_mounts_under(entry)
        remove_tree(entry)
    store.sweep()
    return removed, freed


def reachable(layout: OCILayout, starts: Iterable[Descriptor], roots: set[str]) -> tuple[set[str], set[str]]:
    """(blob digests, diff_ids) reachable from ``starts`` (index.json's entries) and ``roots``
    (digests the build cache names: each described by its blob), walked by part 2."""
    walked = list(starts) + [layout.describe(d) for d in sorted(roots) if layout.has_blob(d)]
    seen: set[str] = set()
    diff_ids: set[str] = set()
    for desc in layout.walk(walked):
        seen.add(desc.digest)
        # the layers of each manifest reached: a config is read through its manifest, as a
        # cache root may have reached the same blob first, described without its media type
        if desc.media_type in mt.MANIFEST_TYPES:
            with contextlib.suppress(LayoutError):
                diff_ids.update(layout.read_config(layout.read_manifest(desc)).rootfs_diff_ids)
    return seen, diff_ids


def remove_blobs(layout: OCILayout, keep: set[str]) -> tuple[int, int]:
    """Remove the blobs not in ``keep`` and leftover temp files; (blobs removed, bytes freed)."""
    removed, freed = 0, 0
    for blob in layout.blobs_dir.iterdir():
        if blob.name.startswith(TEMP_PREFIX) or "sha256:" + blob.name not in keep:
            freed += blob.lstat().st_size
            blob.unlink()
            removed += 0 if blob.name.startswith(TEMP_PREFIX) else 1
    return removed, freed
