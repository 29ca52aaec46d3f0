"""Where a built image goes besides the store: ``--output``, ``--iidfile``.

``--output`` takes BuildKit's CSV form (``docker buildx build -o``), and refuses a key it does
not know for the type:

=================================================  ===========================================
``type=oci,dest=DIR``                              an OCI image layout directory (BuildKit's
                                                   ``tar=false``; ``tar=true`` is oci-archive)
``type=oci-archive,dest=FILE``                     the same layout as a tar file
``type=docker-archive,dest=FILE``                  what ``docker load`` reads (``type=docker``)
``type=registry,name=HOST/REPO:TAG``               a push (``type=image,push=true`` too)
``type=local,dest=DIR``                            the image's root filesystem, extracted
``type=tar,dest=FILE``                             the root filesystem as one tar file
``-o DIR``                                         ``type=local,dest=DIR``, as BuildKit reads it
=================================================  ===========================================

The image types also take ``name=`` (the name written into the export: an oci-archive's
``org.opencontainers.image.ref.name`` holds it in full, so ``podman load`` names the image as
built), ``compression=gzip|zstd|uncompressed`` (layers are re-compressed where they differ) and
``oci-mediatypes=true|false`` (``false``: Docker's schema2 media types, what older registries
want; zstd has none, as BuildKit says). For several platforms, ``local`` and ``tar`` put each
platform's root filesystem under ``linux_amd64/``, ``linux_arm64/``, ... as BuildKit does.

The image id written by ``--iidfile`` is docker's: ``sha256:`` and the config's digest (the
index's digest for a multi-platform image).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from part1_overview import model
from part2_manual_oci import write_file_atomic

from .errors import BuildError
from .optionfields import option_fields

if TYPE_CHECKING:
    from ..store import BuildStore

OUTPUT_TYPES = ("oci", "oci-archive", "docker-archive", "registry", "local", "tar")
#: BuildKit's other names for them
_ALIASES = {"docker": "docker-archive", "image": "registry"}
_IMAGE_KEYS = {"name", "compression", "oci-mediatypes"}
KEYS = {
    "oci": {"dest", "tar"} | _IMAGE_KEYS,
    "oci-archive": {"dest"} | _IMAGE_KEYS,
    "docker-archive": {"dest"} | _IMAGE_KEYS,
    "registry": {"push"} | _IMAGE_KEYS,
    "local": {"dest"},
    "tar": {"dest"},
}
COMPRESSIONS = ("gzip", "zstd", "uncompressed")
_BOOLS = {"true": True, "1": True, "false": False, "0": False}


@model(frozen=True)
class OutputSpec:
    """One ``--output``: ``type``, ``dest`` (a path, or the registry name for a push) and the
    image options (``name``, ``compression``, ``oci_mediatypes``; None: as stored)."""

    type: str
    dest: str
    name: str | None = None
    compression: str | None = None
    oci_mediatypes: bool = True

    def transport(self, name: str | None) -> str:
        """The store's export destination (``oci:DIR:TAG`` ...) for this output; ``name`` is
        the image's (normalized) name, if it has one."""
        name = self.name or name
        tag = None
        if name:
            from ..refs import parse_name

            ref = parse_name(name)
            tag, name = ref.tag, ref.name
        if self.type == "oci":
            return f"oci:{self.dest}" + (f":{tag}" if tag else "")
        if self.type == "oci-archive":  # the full name: podman load names the image by it
            return f"oci-archive:{self.dest}" + (f":{name}" if name else "")
        if self.type == "docker-archive":
            return f"docker-archive:{self.dest}" + (f":{name}" if name else "")
        raise BuildError(f"--output type={self.type} is not an export")


def parse_output(text: str) -> OutputSpec:
    """``type=oci,dest=out`` -> OutputSpec; BuildError with the reason otherwise."""
    if text and "=" not in text and "," not in text:
        return OutputSpec("local", os.path.expanduser(text))  # BuildKit: -o DIR is type=local
    values = option_fields("--output", text, BuildError)
    kind = values.pop("type", None)
    kind = _ALIASES.get(kind, kind)
    if kind not in OUTPUT_TYPES:
        raise BuildError(f"--output {text!r}: type must be one of {', '.join(OUTPUT_TYPES)}")
    unknown = sorted(set(values) - KEYS[kind])
    if unknown:
        raise BuildError(f"--output {text!r}: unknown key {unknown[0]!r} for type={kind} "
                         f"(known: {', '.join(sorted(KEYS[kind] | {'type'}))})")
    flags = {}
    for key in ("tar", "push", "oci-mediatypes"):
        if key in values:
            if values[key].lower() not in _BOOLS:
                raise BuildError(f"--output {text!r}: {key}={values[key]} is not true or false")
            flags[key] = _BOOLS[values[key].lower()]
    if kind == "registry" and flags.get("push") is False:
        raise BuildError(f"--output {text!r}: push=false has nothing to write to (the store keeps the image)")
    if kind == "oci" and flags.get("tar"):
        kind = "oci-archive"
    compression = values.get("compression")
    if compression is not None and compression not in COMPRESSIONS:
        raise BuildError(f"--output {text!r}: compression={compression}: expected one of {', '.join(COMPRESSIONS)}")
    oci_types = flags.get("oci-mediatypes", True)
    if compression == "zstd" and not oci_types:
        raise BuildError(f"--output {text!r}: compression=zstd needs oci-mediatypes=true (Docker's media types "
                         "have no zstd layer)")
    dest = values.get("name") if kind == "registry" else values.get("dest")
    if not dest:
        raise BuildError(f"--output {text!r}: " + ("name=HOST/REPO:TAG is required" if kind == "registry"
                                                    else "dest=PATH is required"))
    name = None if kind == "registry" else values.get("name")
    if name:
        from ..refs import InvalidName, parse_name

        try:
            parse_name(name)
        except InvalidName as e:
            raise BuildError(f"--output {text!r}: name={name}: {e}") from None
    return OutputSpec(kind, os.path.expanduser(dest) if kind != "registry" else dest, name, compression, oci_types)


def write_output(store: BuildStore, spec: OutputSpec, desc, name: str | None, *, options=None, on_progress=None) -> None:
    """Write the built image (``desc``: its manifest, or its index for several platforms) as
    ``spec`` says; a push takes the command line's registry flags (``options``, a
    RegistryOptions) and shows its transfers on ``on_progress``."""
    if spec.type in ("local", "tar"):
        from part5_namespaces import in_user_namespace

        # rootless, the files go to the user who built, as BuildKit's client writes them: with
        # the image's owners they would belong to subordinate ids, which the user could neither
        # change nor remove outside the build's user namespace
        owner = (0, 0) if spec.type == "local" and in_user_namespace() else None
        store.write_rootfs(desc, spec.dest, as_tar=spec.type == "tar", owner=owner)
        return
    if spec.compression is not None or not spec.oci_mediatypes:
        desc = store.convert(desc, compression=spec.compression, oci_mediatypes=spec.oci_mediatypes)
    if spec.type == "registry":
        from ..registry import push

        store.tag(spec.dest, desc)
        push(store, spec.dest, options=options, on_progress=on_progress)
        return
    store.export(desc.digest, spec.transport(name))


def write_iidfile(path: str | os.PathLike, image_id: str) -> None:
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise BuildError(f"--iidfile {path}: directory {path.parent} does not exist")
    write_file_atomic(path, image_id.encode())


__all__ = ["COMPRESSIONS", "OUTPUT_TYPES", "OutputSpec", "parse_output", "write_iidfile", "write_output"]
