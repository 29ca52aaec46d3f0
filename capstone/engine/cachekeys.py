"""The build cache: one key per step, the image it produced as the value.

A step's key is the SHA-256 of a small JSON document:

* the key of the step before it (so a miss invalidates every step after it); the first key of
  a stage is made from the base image's manifest digest (or the key of the stage it is built
  on);
* the instruction as it will run, after expansion (the text, its flags);
* what else decides its result: for RUN the argv after SHELL wrapping, the environment (ENV and
  *declared* ARGs; proxy args left out, as BuildKit leaves them out), user, working directory,
  network mode, mounts (a bind source by its content); for COPY/ADD the content digest of the
  selected sources (:mod:`.contenthash`: names, modes, owners, link targets, file contents,
  not mtimes) and, for ``--from``, the manifest digest of the source image.

The value is ``{"manifest": "sha256:...", "config": "sha256:..."}``: the image after the step,
stored untagged with ``store.commit(image, [])``. A hit reads it (as a :class:`~.stepimage.StoredImage`:
its manifest and config, not a model of every layer and history entry) and skips the step; the
store's ``prune`` keeps what a cache value names. ``--no-cache`` looks nothing up but still
records, so the next build hits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import MutableSet

from part2_manual_oci import DigestError, LayoutError
from part3_go_style_builder import Image

from ..store import BuildStore, StoreError
from .stepimage import StoredImage

#: bump when the meaning of a key changes, so old entries stop matching
CACHE_VERSION = "capstone-build-1"


def make_key(parent: str, kind: str, **facts) -> str:
    """The key of a step after ``parent`` (hex)."""
    doc = {"v": CACHE_VERSION, "parent": parent, "kind": kind, **facts}
    data = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(data.encode("utf-8", "surrogateescape")).hexdigest()


def base_key(image_digest: str, platform: str) -> str:
    """The key a stage starts from: its base image (manifest digest) on a platform."""
    return make_key("", "FROM", image=image_digest, platform=platform)


def cache_lookup(store: BuildStore, key: str, seen: MutableSet[str] | None = None) -> StoredImage | None:
    """The image recorded for ``key``, or None (missing entry, or its image was pruned or
    damaged); ``seen``: layer blobs already found there (see ``StoredImage.open``)."""
    value = store.cache_get(key)
    if not value or not isinstance(value.get("manifest"), str):
        return None
    try:
        return StoredImage.open(store, value["manifest"], seen)  # the blob itself: no name lookups
    except (StoreError, LayoutError, DigestError, OSError):  # a dangling or damaged entry is a miss
        return None


def cache_record(store: BuildStore, key: str, image: Image):
    """Store ``image`` untagged and record it under ``key``; its manifest descriptor."""
    desc = store.commit(image, [])
    store.cache_put(key, {"manifest": desc.digest, "config": image.config_descriptor.digest})
    return desc


__all__ = ["CACHE_VERSION", "base_key", "cache_lookup", "cache_record", "make_key"]
