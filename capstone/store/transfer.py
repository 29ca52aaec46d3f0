"""Images in and out of the store: ``import`` a root filesystem, ``save`` to a layout or an
archive, and read one back.

Destinations (skopeo's spellings):

* ``oci:DIR[:REF]`` (``oci-layout:``): an OCI image layout; the index.json entry is named REF
  (default: the image's tag), blobs first, index.json last.
* ``oci-archive:FILE[:REF]``: the same layout as a plain tar (part 2 ``write_oci_archive``);
  REF defaults to the image's full name (``docker.io/library/app:1``), so ``podman load``
  names the image as it was named here.
* ``docker-archive:FILE[:NAME:TAG]``: what ``docker save`` writes and ``docker load`` reads:
  ``manifest.json`` (``Config``, ``RepoTags``, ``Layers``), the config as ``<id>.json``, each
  layer uncompressed as ``<diff_id hex>/layer.tar``, and ``repositories``.

Every file is written to a temporary name beside its destination and renamed when complete.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import posixpath
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from part1_overview import replace
from part2_manual_oci import (
    MAX_JSON_SIZE,
    BlobCorrupt,
    ContainerConfig,
    Descriptor,
    History,
    ImageConfig,
    LayoutError,
    OCILayout,
    Platform,
    atomic_file,
    digest_hex,
    host_platform,
    rfc3339,
    write_oci_archive,
)
from part2_manual_oci import mediatypes as mt
from part3_go_style_builder import ArchiveBlob, CbtError, FileBlob, Image, Layer, utc_now
from part4_tar import extract_layer, layer_info, open_decompressed, write_layer

from ..refs import DOCKER_ARCHIVE, OCI_ARCHIVE, OCI_LAYOUT, InvalidName, parse_name, parse_transport
from .errors import ExportError, ImageNotFound, StoreError
from .leases import TEMP_PREFIX

if TYPE_CHECKING:
    from .store import Store

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CHUNK = 1 << 20


# -- import --------------------------------------------------------------------------------------


def import_rootfs(store: "Store", src: Path, name: str, *, platform: Platform | None = None,
                  source_date_epoch: int | None = None) -> Descriptor:
    """A single-layer image of ``src`` (a directory, or a tar file of any compression), for
    ``platform`` (default: this host's). ``source_date_epoch`` dates the config and its history
    entry, and clamps the layer's mtimes, as a build does: the same input gives the same image."""
    normalized = parse_name(name).name
    if not src.exists():
        raise StoreError(f"import: {src}: no such file or directory")
    with store.session(), contextlib.ExitStack() as stack:
        if src.is_dir():
            root = src
        else:
            kind = archive_kind(src)
            if kind is not None:  # an image, whose layers would become files of the "root filesystem"
                raise StoreError(f"import: {src} is {'an' if kind == OCI_ARCHIVE else 'a'} {kind} (an image, not a root filesystem): "
                                 f"use capstone load {src}")
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=TEMP_PREFIX + "import-", dir=store.tmp_dir))) / "rootfs"
            try:
                with open(src, "rb") as f:
                    extract_layer(f, root)
            except (OSError, tarfile.TarError) as e:
                raise StoreError(f"import: {src}: not a readable tar archive ({e})") from None
        # the layer straight into the store's blobs (part 2's atomic_file: written in tmp/, on
        # the same file system, and renamed to its digest when complete)
        with atomic_file(None, temp_dir=store.tmp_dir, prefix=TEMP_PREFIX + "layer-") as out:
            # clamped: a tar that does not name a file's directories leaves them dated now
            info = write_layer(root, out.file, "gzip", source_date_epoch=source_date_epoch)
            out.target = store.layout.blob_path(info.digest)
            if out.target.exists():
                out.discard()
        has_shell = os.path.lexists(root / "bin" / "sh")
        created = rfc3339(source_date_epoch) if source_date_epoch is not None else utc_now()
        target = platform or host_platform()
        config = ImageConfig(
            architecture=target.architecture,
            os=target.os,
            variant=target.variant,
            os_version=target.os_version,
            created=created,
            config=ContainerConfig(env=(DEFAULT_PATH,), cmd=("/bin/sh",) if has_shell else None),
            rootfs_diff_ids=(info.diff_id,),
            history=(History(created=created, created_by=f"capstone import {src.name}",
                             comment=f"Imported from {src}"),),
        )
        image = Image(config, (Layer(info.descriptor(), info.diff_id, FileBlob(out.target)),))
        desc = store.commit(image, [normalized])
        # a build on this base needs its layer as an overlay lower dir: extract it now, once
        # (from the stored blob, checked against the diff_id), so the first build does not;
        # if that fails here, the build extracts it (and reports the error) itself
        with contextlib.suppress(StoreError, OSError):
            store.snapshot(image.layers[0].descriptor, info.diff_id)
        return desc


# -- export --------------------------------------------------------------------------------------


def _resolve(store: "Store", name_or_id: str) -> tuple[Descriptor, str | None]:
    """(the image's descriptor: its manifest, or its index when it has several platforms;
    the NameRef the image was asked by, or None)."""
    desc = store.resolve(name_or_id)
    if desc is None:
        raise ImageNotFound(f"no image {name_or_id!r} in the store {store.path}")
    try:
        ref = parse_name(name_or_id)
    except InvalidName:
        ref = None
    if ref is None or ref.tag is None:
        names = store.names_of(desc)
        ref = parse_name(names[0]) if names else None
    if desc.media_type in mt.INDEX_TYPES:
        return replace(desc, annotations=None, platform=None), ref
    return _with_platform(store, desc), ref


def _with_platform(store: "Store", mdesc: Descriptor) -> Descriptor:
    config = store.layout.read_config(store.layout.read_manifest(mdesc))
    return replace(mdesc, annotations=None, platform=config.platform)


def export(store: "Store", name_or_id: str, dest: str) -> Descriptor:
    try:
        target = parse_transport(dest)
    except InvalidName as e:
        raise ExportError(f"save: {e}") from None
    desc, ref = _resolve(store, name_or_id)
    with store.session():
        if target.transport == OCI_LAYOUT:
            return _export_layout(store, desc, Path(target.path), target.given_name or (ref.tag if ref else "latest"))
        if target.transport == OCI_ARCHIVE:  # the full name, by which podman load names the image
            return _export_oci_archive(store, desc, Path(target.path), target.given_name or (ref.name if ref else "latest"))
        if target.transport == DOCKER_ARCHIVE:  # one image per archive: this host's of an index
            mdesc = _with_platform(store, store.names.platform_manifest(desc))
            tag = parse_name(target.given_name) if target.given_name else ref
            _export_docker_archive(store, mdesc, Path(target.path), tag)
            return mdesc
    raise ExportError(f"save: cannot write to {dest!r} (expected oci:DIR[:TAG], oci-archive:FILE[:TAG] or "
                      "docker-archive:FILE[:NAME:TAG])")


def _blobs_of(store: "Store", desc: Descriptor) -> list[Descriptor]:
    """Every blob ``desc`` needs, children before the documents that name them."""
    if desc.media_type in mt.INDEX_TYPES:
        out = []
        for child in store.layout.read_index(desc).manifests:
            out.extend(_blobs_of(store, child))
        return [*out, desc]
    manifest = store.layout.read_manifest(desc)
    return [*manifest.layers, manifest.config, desc]


def _export_layout(store: "Store", mdesc: Descriptor, path: Path, ref_name: str) -> Descriptor:
    try:
        layout = OCILayout.create(path)
    except (OSError, LayoutError) as e:
        raise ExportError(f"save: cannot use {path} as an OCI layout: {e}") from None
    for desc in _blobs_of(store, mdesc):
        if layout.has_blob(desc.digest):
            continue
        with store.layout.open_blob(desc) as f:
            layout.put_blob(f, desc.media_type, expected_digest=desc.digest)
    return layout.add_manifest(mdesc, ref_name)  # index.json last


def _export_oci_archive(store: "Store", mdesc: Descriptor, path: Path, ref_name: str) -> Descriptor:
    _check_parent(path)
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX + "save-", dir=store.tmp_dir) as tmp:
        layout = OCILayout.create(Path(tmp) / "layout")
        for desc in _blobs_of(store, mdesc):
            # a hard link costs nothing; the archive writer only reads
            if not layout.has_blob(desc.digest):
                os.link(store.layout.blob_path(desc.digest), layout.blob_path(desc.digest))
        written = layout.add_manifest(mdesc, ref_name)
        try:
            write_oci_archive(layout.path, path)  # checks each blob as it copies it
        except BlobCorrupt as e:
            # the blob is a hard link of the store's: name the store's file, not the link
            raise ExportError(f"save: {str(e).replace(str(layout.path), str(store.layout.path))}") from None
    return written


def _check_parent(path: Path) -> None:
    if not path.parent.is_dir():
        raise ExportError(f"save: {path.parent}: no such directory")
    if path.is_dir():
        raise ExportError(f"save: {path} is a directory (an archive is a file)")


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _export_docker_archive(store: "Store", mdesc: Descriptor, path: Path, ref) -> None:
    _check_parent(path)
    manifest = store.layout.read_manifest(mdesc)
    config_hex = digest_hex(manifest.config.digest)
    config_bytes = store.layout.read_blob(manifest.config)  # the exact bytes: the image id is their digest
    config = store.layout.read_config(manifest)
    layer_names = [f"{digest_hex(d)}/layer.tar" for d in config.rootfs_diff_ids]
    entry = {"Config": f"{config_hex}.json", "RepoTags": [ref.short] if ref and ref.tag else [], "Layers": layer_names}
    with atomic_file(path, prefix=f".{path.name}.") as out, \
            tarfile.open(fileobj=out.file, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        written = set()
        for ld, diff_id, name in zip(manifest.layers, config.rootfs_diff_ids, layer_names):
            if name in written:
                continue
            written.add(name)
            dir_info = tarfile.TarInfo(digest_hex(diff_id))
            dir_info.type, dir_info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(dir_info)
            _add_bytes(tar, f"{digest_hex(diff_id)}/VERSION", b"1.0")
            _add_uncompressed_layer(store, tar, ld, diff_id, name)
        _add_bytes(tar, f"{config_hex}.json", config_bytes)
        _add_bytes(tar, "manifest.json", json.dumps([entry], separators=(",", ":")).encode())
        if ref and ref.tag and layer_names:
            repos = {ref.familiar_repo: {ref.tag: digest_hex(config.rootfs_diff_ids[-1])}}
            _add_bytes(tar, "repositories", json.dumps(repos, separators=(",", ":")).encode())


def _add_uncompressed_layer(store: "Store", tar: tarfile.TarFile, ld: Descriptor, diff_id: str, name: str) -> None:
    """A layer as ``<diff_id hex>/layer.tar``: decompressed to a temp file first (a tar header
    needs the size), checked against the diff_id."""
    import hashlib

    with tempfile.TemporaryFile(dir=store.tmp_dir) as spool:
        h = hashlib.sha256()
        with store.layout.open_blob(ld) as raw, open_decompressed(raw) as plain:
            while block := plain.read(CHUNK):
                h.update(block)
                spool.write(block)
            while raw.read(CHUNK):  # to EOF: the blob's digest is checked there
                pass
        if "sha256:" + h.hexdigest() != diff_id:
            raise StoreError(f"layer {ld.digest}: uncompressed content does not match its diff_id {diff_id}")
        info = tarfile.TarInfo(name)
        info.size = spool.tell()
        info.mode = 0o644
        spool.seek(0)
        tar.addfile(info, spool)


# -- reading layouts and archives --------------------------------------------------------------


def load_archive(store: "Store", src: str, platform: Platform | None = None) -> Image:
    try:
        source = parse_transport(src)
    except InvalidName as e:
        raise ExportError(str(e)) from None
    if source.transport in (OCI_LAYOUT, OCI_ARCHIVE):
        try:
            return Image.load(source, platform=platform)
        except (CbtError, LayoutError) as e:  # part 3's and part 2's errors: one line, with the reference
            raise ImageNotFound(f"{src}: {e}") from None
    if source.transport == DOCKER_ARCHIVE:
        return _load_docker_archive(Path(source.path), source.given_name)
    raise ExportError(f"cannot read images from {src!r} (oci:, oci-archive: or docker-archive:)")


def _members(tf: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """Regular members by their name relative to the archive's root (``./x`` is ``x``)."""
    out = {}
    for m in tf.getmembers():
        name = posixpath.normpath(m.name.lstrip("/"))
        if m.isreg() and not name.startswith(".."):
            out[name] = m
    return out


def archive_kind(path: Path) -> str | None:
    """``docker-archive`` (a ``manifest.json`` at the root, as ``docker save``, ``podman save``
    and skopeo write), ``oci-archive`` (``oci-layout`` and ``index.json``), or None (any other
    tar, or not a tar). Only the headers are read."""
    try:
        with tarfile.open(path, "r:*") as tf:
            names = set(_members(tf))
    except (tarfile.TarError, OSError, EOFError):
        return None
    if "manifest.json" in names:
        return DOCKER_ARCHIVE
    if {"oci-layout", "index.json"} <= names:
        return OCI_ARCHIVE
    return None


def _read_member(tf: tarfile.TarFile, members: dict, path: Path, name: str) -> bytes:
    m = members.get(name)
    if m is None:
        raise ExportError(f"{path}: no member {name} (not a docker-archive?)")
    if m.size > MAX_JSON_SIZE:  # part 2's limit for a JSON document of an image, as a pull allows
        raise ExportError(f"{path}: {name} is {m.size} bytes, more than the {MAX_JSON_SIZE} a manifest or "
                          "image config may have")
    return tf.extractfile(m).read(MAX_JSON_SIZE + 1)


def _docker_entries(tf: tarfile.TarFile, members: dict, path: Path) -> list[dict]:
    try:
        entries = json.loads(_read_member(tf, members, path, "manifest.json"))
    except ValueError as e:
        raise ExportError(f"{path}: manifest.json is not JSON ({e})") from None
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise ExportError(f"{path}: manifest.json lists no image")
    for e in entries:
        if not isinstance(e.get("Config"), str) or not isinstance(e.get("Layers") or [], list):
            raise ExportError(f"{path}: manifest.json: an entry without Config or Layers")
        tags = e.get("RepoTags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ExportError(f"{path}: manifest.json: RepoTags is not a list of names")
    return entries


def _docker_image(tf: tarfile.TarFile, members: dict, path: Path, entry: dict) -> Image:
    try:
        doc = json.loads(_read_member(tf, members, path, posixpath.normpath(entry["Config"])))
    except ValueError as e:
        raise ExportError(f"{path}: {entry['Config']} is not JSON ({e})") from None
    config = ImageConfig.from_json(doc, f"{path}:{entry['Config']}")
    layers = []
    for name in entry.get("Layers") or []:
        member = posixpath.normpath(str(name))
        if member not in members:
            raise ExportError(f"{path}: no member {name}")
        info = layer_info(tf.extractfile(members[member]))
        layers.append(Layer(info.descriptor(), info.diff_id, ArchiveBlob(path.resolve(), member)))
    if tuple(layer.diff_id for layer in layers) != tuple(config.rootfs_diff_ids):
        raise ExportError(f"{path}: the layers do not match the config's diff_ids")
    return Image(config, tuple(layers))


def _open_docker_archive(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:*")
    except FileNotFoundError:
        raise ImageNotFound(f"{path}: no such archive") from None
    except (tarfile.TarError, OSError) as e:
        raise ExportError(f"{path}: not a docker-archive ({e})") from None


def _load_docker_archive(path: Path, ref: str | None) -> Image:
    with _open_docker_archive(path) as tf:
        members = _members(tf)
        entries = _docker_entries(tf, members, path)
        if ref is not None:
            wanted = parse_name(ref).name
            chosen = [e for e in entries if any(parse_name(t).name == wanted for t in e.get("RepoTags") or [])]
            if not chosen:
                raise ImageNotFound(f"{path}: no image tagged {ref}")
            entry = chosen[0]
        elif len(entries) == 1:
            entry = entries[0]
        else:
            raise ExportError(f"{path}: {len(entries)} images in the archive: name one (docker-archive:FILE:NAME:TAG)")
        return _docker_image(tf, members, path, entry)


def load_file(store: "Store", path: Path, platform: Platform | None = None) -> list[tuple[Descriptor, list[str]]]:
    """``capstone load``: every image of a docker-archive or oci-archive file (``docker save``,
    ``podman save``, ``skopeo copy``) into the store, named as the archive names it (a
    docker-archive's ``RepoTags``; an oci-archive's ``org.opencontainers.image.ref.name`` when
    it is a name, not a bare tag); a multi-platform entry gives its image for ``platform``
    (default: this host). Everything is read and checked before any name changes. Returns
    (manifest descriptor, names) per image."""
    from part3_go_style_builder import ImageReference

    if not path.is_file():
        raise ImageNotFound(f"load: {path}: no such file")
    kind = archive_kind(path)
    if kind is None:
        raise ExportError(f"load: {path} is neither a docker-archive (manifest.json) nor an oci-archive "
                          "(oci-layout and index.json)")
    loaded: list[tuple[Image, list[str]]] = []
    if kind == DOCKER_ARCHIVE:
        with _open_docker_archive(path) as tf:
            members = _members(tf)
            for entry in _docker_entries(tf, members, path):
                try:
                    names = [parse_name(t).name for t in entry.get("RepoTags") or []]
                except InvalidName as e:
                    raise ExportError(f"load: {path}: RepoTags: {e}") from None
                loaded.append((_docker_image(tf, members, path, entry), names))
    else:
        ref = ImageReference(OCI_ARCHIVE, str(path))
        try:
            entries = Image.index_entries(ref)
            for entry in entries:
                name = entry.ref_name
                names = [parse_name(name).name] if name and (":" in name or "/" in name) else []
                loaded.append((Image.load(ref, manifest_digest=entry.digest, platform=platform), names))
        except (CbtError, LayoutError, InvalidName) as e:
            raise ExportError(f"load: {path}: {e}") from None
    with store.session(), store.lock():
        descs = [store.commit(image, []) for image, _ in loaded]
        for desc, (_, names) in zip(descs, loaded):
            for name in names:
                store.tag(name, desc)
    return [(desc, names) for desc, (_, names) in zip(descs, loaded)]


# -- the root filesystem as an output -----------------------------------------------------------


def write_rootfs(store: "Store", desc: Descriptor, dest: Path, *, as_tar: bool, owner: tuple[int, int] | None = None) -> None:
    """The image's root filesystem (its layers applied in order, whiteouts honoured) in the
    directory ``dest`` (``--output type=local``; every file ``owner``'s when given, not the
    layers' owners) or as one tar file (``type=tar``, the layers' owners). For a
    multi-platform index, each platform's under ``<os>_<arch>[_<variant>]/`` (BuildKit's
    layout). A tar is written beside ``dest`` and renamed when complete.

    A directory gets the files without what would give privileges to whoever reaches it
    (part 4's ``privileges=False``: no set-id bit, no file capability, no device node): a
    Dockerfile's ``chmod u+s`` on a root-owned shell must not become a root shell on the
    host. The tar keeps them: it is inert until someone extracts it."""
    from part4_tar import apply_layers

    if desc.media_type in mt.INDEX_TYPES:
        targets = []
        for child in store.layout.read_index(desc).manifests:
            platform = store.layout.read_config(store.layout.read_manifest(child)).platform
            targets.append(("_".join(p for p in (platform.os, platform.architecture, platform.variant) if p), child))
    else:
        targets = [("", desc)]

    def fill(root: Path, owner: tuple[int, int] | None = None) -> None:
        for sub, mdesc in targets:
            where = root / sub if sub else root
            where.mkdir(parents=True, exist_ok=True)
            manifest = store.layout.read_manifest(mdesc)
            # a tar is inert; a directory is not: no setuid file or device node lands there
            apply_layers([store.layout.blob_path(ld.digest) for ld in manifest.layers], where, owner=owner,
                         privileges=as_tar)

    with store.session():
        if not as_tar:
            if dest.exists() and not dest.is_dir():
                raise ExportError(f"--output type=local: {dest} is not a directory")
            dest.mkdir(parents=True, exist_ok=True)
            fill(dest, owner)
            return
        _check_parent(dest)
        with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX + "rootfs-", dir=store.tmp_dir) as tmp:
            root = Path(tmp) / "root"
            root.mkdir()
            fill(root)
            with atomic_file(dest, prefix=f".{dest.name}.") as out:
                write_layer(root, out.file, "none")
