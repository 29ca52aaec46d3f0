"""A stage's image as a step reads it: a part 3 ``Image`` in memory, or an image of the store
read only as far as the build needs it.

A cache hit (and a base image from the store) names a whole image, but the step after it reads
little of it: its key is made from the key before it, and its facts from the container config
(working dir, user, environment, shell); the step's own top layer is shown and noted. Making
the part 3 ``Image`` of a stored image parses and freezes every layer descriptor and every
history entry: over a 60-layer base with its 180 history entries that cost more than the rest
of a cached build. :class:`StoredImage` reads the manifest and the config as JSON (both checked
against their digests, every layer's blob checked to be there, as a hit always was), and makes
the ``Image`` only when a step runs over it or the result must be written otherwise than by
naming its manifest: a fully cached build never makes one, whatever the size of its base.
"""

from __future__ import annotations

from collections.abc import MutableSet

from part2_manual_oci import ContainerConfig, Descriptor, ImageConfig, LayoutError, ModelError, Platform, canonical_json
from part2_manual_oci import mediatypes as mt
from part3_go_style_builder import FileBlob, Image, Layer


class StepImage:
    """What the build reads of an image without changing it (see the two kinds below)."""

    __slots__ = ()

    @property
    def image(self) -> Image:
        """The part 3 value (made on first use for a stored image)."""
        raise NotImplementedError

    @property
    def digest(self) -> str:
        """The manifest's digest (of the stored manifest, or of the one ``commit`` would write)."""
        raise NotImplementedError

    @property
    def image_id(self) -> str:
        """The config's digest (Docker's image id)."""
        raise NotImplementedError

    @property
    def container(self) -> ContainerConfig:
        raise NotImplementedError

    @property
    def platform(self) -> Platform:
        raise NotImplementedError

    @property
    def author(self) -> str | None:
        raise NotImplementedError

    @property
    def config_size(self) -> int:
        """Bytes of the config as it is stored (canonical JSON)."""
        raise NotImplementedError

    @property
    def layer_count(self) -> int:
        raise NotImplementedError

    @property
    def top_layer(self) -> Layer | None:
        """The top layer when the last history entry made it (None after a config-only step)."""
        raise NotImplementedError

    @property
    def stored(self) -> Descriptor | None:
        """The store's manifest descriptor when the image is one as it was stored."""
        raise NotImplementedError

    @property
    def committed(self) -> Descriptor | None:
        """The stored manifest that committing the image would write again, byte for byte
        (OCI media types throughout), so that naming it is the commit; None: ``commit`` it."""
        return None


class InMemory(StepImage):
    """A part 3 ``Image`` value (a step that ran, an image changed since it was loaded)."""

    __slots__ = ("_image",)

    def __init__(self, image: Image) -> None:
        self._image = image

    @property
    def image(self) -> Image:
        return self._image

    @property
    def digest(self) -> str:
        src = self._image.loaded_from
        return src.digest if src is not None else self._image.digest

    @property
    def image_id(self) -> str:
        return self._image.config_descriptor.digest

    @property
    def container(self) -> ContainerConfig:
        return self._image.config.config

    @property
    def platform(self) -> Platform:
        return self._image.config.platform

    @property
    def author(self) -> str | None:
        return self._image.config.author

    @property
    def config_size(self) -> int:
        return len(canonical_json(self._image.config))

    @property
    def layer_count(self) -> int:
        return len(self._image.layers)

    @property
    def top_layer(self) -> Layer | None:
        image = self._image
        history = image.config.history
        return image.layers[-1] if image.layers and history and not history[-1].empty_layer else None

    @property
    def stored(self) -> Descriptor | None:
        return self._image.loaded_from


class StoredImage(StepImage):
    """An image of ``store`` by the descriptor of its manifest, read as JSON.

    Made by :meth:`open`, which checks what loading the image always checked: the manifest and
    the config hash to their digests and have the shape of an image, the config names a
    diff_id per layer, every layer's blob is in the store (``seen``: layers already found this
    build, not looked for again). What a step reads comes from the config without its history
    and diff_ids (so its cost does not grow with the image's layers); :attr:`image` makes the
    whole value, checked as part 2's models check it, when a step needs it.
    """

    __slots__ = ("_store", "_desc", "_manifest", "_config", "_config_desc", "_head", "_image")

    def __init__(self, store, desc: Descriptor, manifest: dict, config: dict, config_desc: Descriptor) -> None:
        self._store = store
        self._desc = desc
        self._manifest = manifest
        self._config = config
        self._config_desc = config_desc
        self._head: ImageConfig | None = None
        self._image: Image | None = None

    @classmethod
    def open(cls, store, digest: str, seen: MutableSet[str] | None = None) -> StoredImage:
        """The stored image whose manifest is the blob ``digest`` (LayoutError when it is
        missing, damaged, not an image manifest, or names a layer the store lacks)."""
        manifest = store.read_json(digest)
        if not isinstance(manifest, dict):
            raise ModelError(f"manifest {digest}: not a JSON object")
        media_type = manifest.get("mediaType") or mt.OCI_MANIFEST
        layers, config_ref = manifest.get("layers"), manifest.get("config")
        if media_type not in mt.MANIFEST_TYPES or not isinstance(layers, list) or not isinstance(config_ref, dict):
            raise ModelError(f"manifest {digest}: not an image manifest")
        config_desc = Descriptor.from_json(config_ref, f"manifest {digest}: config")
        if config_desc.media_type not in mt.CONFIG_TYPES:
            raise LayoutError(f"config {config_desc.digest}: media type {config_desc.media_type} is not an image config")
        config = store.read_json(config_desc)
        if not isinstance(config, dict):
            raise ModelError(f"config {config_desc.digest}: not a JSON object")
        rootfs = config.get("rootfs")
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if not isinstance(diff_ids, list) or len(diff_ids) != len(layers):
            raise ModelError(f"manifest {digest} lists {len(layers)} layers but its config "
                             f"{len(diff_ids) if isinstance(diff_ids, list) else 'no'} diff_ids")
        for layer in reversed(layers):  # a hit adds its layers on top: the new ones come first
            layer_digest = layer.get("digest") if isinstance(layer, dict) else None
            if not isinstance(layer_digest, str):
                raise ModelError(f"manifest {digest}: a layer without a digest")
            if seen is not None and layer_digest in seen:
                continue
            if not store.has_blob(layer_digest):
                raise LayoutError(f"layer {layer_digest} of {digest} is missing ({store.blob_path(layer_digest)})")
            if seen is not None:
                seen.add(layer_digest)
        found = cls(store, Descriptor(media_type, digest, store.blob_path(digest).stat().st_size), manifest, config,
                    config_desc)
        found._config_head()  # a config part 2 refuses is a miss now, not a failed step later
        return found

    def _config_head(self) -> ImageConfig:
        """The config without its history and diff_ids, checked by part 2's model: what a
        step reads of it."""
        if self._head is None:
            head = {**self._config, "rootfs": {"type": "layers", "diff_ids": []}}
            head.pop("history", None)
            self._head = ImageConfig.from_json(head, f"config {self._config_desc.digest}")
        return self._head

    @property
    def image(self) -> Image:
        if self._image is None:
            self._image = self._store.load_manifest(self._desc.digest)
        return self._image

    @property
    def digest(self) -> str:
        return self._desc.digest

    @property
    def image_id(self) -> str:
        return self._config_desc.digest

    @property
    def container(self) -> ContainerConfig:
        return self._config_head().config

    @property
    def platform(self) -> Platform:
        return self._config_head().platform

    @property
    def author(self) -> str | None:
        return self._config_head().author

    @property
    def config_size(self) -> int:
        # the stored bytes: canonical JSON for every config a build of this store wrote, which
        # is what a changed config is written as (a pulled base's may be spaced otherwise)
        return self._config_desc.size

    @property
    def layer_count(self) -> int:
        return len(self._manifest["layers"])

    @property
    def top_layer(self) -> Layer | None:
        history = self._config.get("history")
        layers = self._manifest["layers"]
        if not layers or not history or not isinstance(history[-1], dict) or history[-1].get("empty_layer"):
            return None
        doc = layers[-1]
        if isinstance(doc, dict) and doc.get("mediaType") in mt.OCI_LAYER_TYPE:
            doc = {**doc, "mediaType": mt.oci_layer_type(doc["mediaType"])}  # the same bytes: OCI's type, as loading names it
        desc = Descriptor.from_json(doc, f"manifest {self._desc.digest}: layers[{len(layers) - 1}]")
        return Layer(desc, self._config["rootfs"]["diff_ids"][-1], FileBlob(self._store.blob_path(desc.digest)))

    @property
    def stored(self) -> Descriptor:
        return self._desc

    @property
    def committed(self) -> Descriptor | None:
        # a Docker manifest, or Docker's layer type, is written as OCI's by a commit: a new manifest
        if self._desc.media_type != mt.OCI_MANIFEST or any(
                isinstance(layer, dict) and layer.get("mediaType") in mt.OCI_LAYER_TYPE
                for layer in self._manifest["layers"]):
            return None
        return self._desc


def step_image(image: Image | StepImage) -> StepImage:
    return image if isinstance(image, StepImage) else InMemory(image)


__all__ = ["InMemory", "StepImage", "StoredImage", "step_image"]
