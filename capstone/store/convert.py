"""A stored image re-written for an export: another layer compression, Docker's media types.

``--output ...,compression=zstd`` or ``oci-mediatypes=false`` (BuildKit's options) ask for the
same image in another form. The config's bytes never change (so the image id stays), nor do
the diff_ids: a layer that is re-compressed is the same uncompressed tar, checked against its
diff_id while it is written (part 4's ``recompress_layer``). Layers already in the wanted
compression are reused as they are, under the wanted media type. The new blobs go into the
store (untagged; ``prune`` removes them when nothing names them), and the converted manifest
(or index, each platform's manifest converted) is returned for the export to write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from part1_overview import replace
from part2_manual_oci import Descriptor, LayoutError, atomic_file
from part2_manual_oci import mediatypes as mt

from .errors import ExportError

if TYPE_CHECKING:
    from .store import Store

#: --output's compression names -> part 4's
COMPRESSION = {"gzip": "gzip", "zstd": "zstd", "uncompressed": "none"}
#: compression -> Docker's schema2 layer media type (Docker has none for zstd)
DOCKER_LAYER_TYPES = {"gzip": mt.DOCKER_LAYER_GZIP, "none": mt.DOCKER_LAYER}


def convert(store: "Store", desc: Descriptor, *, compression: str | None = None, oci_mediatypes: bool = True) -> Descriptor:
    """``desc`` (a stored manifest or index) with its layers in ``compression`` (``gzip``,
    ``zstd``, ``uncompressed``; None: as they are) and OCI's media types, or Docker's schema2
    ones; the converted descriptor (``desc`` itself when nothing changes)."""
    wanted = None
    if compression is not None:
        if compression not in COMPRESSION:
            raise ExportError(f"compression={compression}: expected gzip, zstd or uncompressed")
        wanted = COMPRESSION[compression]
    if wanted == "zstd" and not oci_mediatypes:
        raise ExportError("compression=zstd needs oci-mediatypes=true (Docker's media types have no zstd layer)")
    with store.session(), store.lock():
        return _convert(store, desc, wanted, oci_mediatypes)


def _convert(store: "Store", desc: Descriptor, compression: str | None, oci: bool) -> Descriptor:
    layout = store.layout
    if desc.media_type in mt.INDEX_TYPES:
        index = layout.read_index(desc)
        children = tuple(replace(_convert(store, child, compression, oci), platform=child.platform,
                                 annotations=child.annotations) for child in index.manifests)
        media_type = mt.OCI_INDEX if oci else mt.DOCKER_MANIFEST_LIST
        converted = replace(index, manifests=children, media_type=media_type)
        return desc if converted == index else layout.put_json(converted, media_type)
    manifest = layout.read_manifest(desc)
    config = layout.read_config(manifest)
    layers = tuple(_layer(store, ld, diff_id, compression, oci) for ld, diff_id in zip(manifest.layers, config.rootfs_diff_ids))
    media_type = mt.OCI_MANIFEST if oci else mt.DOCKER_MANIFEST
    converted = replace(manifest, media_type=media_type, layers=layers,
                        config=replace(manifest.config, media_type=mt.OCI_CONFIG if oci else mt.DOCKER_CONFIG))
    if converted == manifest:
        return desc
    return replace(layout.put_json(converted, media_type), platform=desc.platform)


def _layer(store: "Store", ld: Descriptor, diff_id: str, compression: str | None, oci: bool) -> Descriptor:
    current = mt.LAYER_COMPRESSION.get(ld.media_type)
    if current is None:
        raise ExportError(f"layer {ld.digest}: media type {ld.media_type} cannot be converted")
    wanted = compression or current
    if not oci and wanted not in DOCKER_LAYER_TYPES:
        raise ExportError(f"layer {ld.digest} is {wanted}: Docker's media types have none for it "
                          "(add compression=gzip to oci-mediatypes=false)")
    media_type = mt.layer_media_type(wanted) if oci else DOCKER_LAYER_TYPES[wanted]
    if wanted == current:
        return Descriptor(media_type, ld.digest, ld.size)
    from part4_tar import LayerError, recompress_layer

    try:
        # written once, as the blob it becomes (part 2's atomic_file: a temp file in the store's
        # tmp/, renamed to its digest), never copied again
        with atomic_file(None, temp_dir=store.tmp_dir, prefix=".tmp-convert-") as out, \
                store.layout.open_blob(ld) as src:
            info = recompress_layer(src, out.file, wanted)
            if info.diff_id != diff_id:
                raise ExportError(f"layer {ld.digest}: its uncompressed content hashes to {info.diff_id}, "
                                  f"the config says {diff_id}")
            out.target = store.layout.blob_path(info.digest)
            if out.target.is_file() and out.target.stat().st_size == info.size:
                out.discard()
    except (LayerError, LayoutError) as e:
        raise ExportError(f"layer {ld.digest}: {e}") from None
    return Descriptor(media_type, info.digest, info.size)
