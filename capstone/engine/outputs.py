"""Where a built image goes besides the store: ``--output``, ``--iidfile``.

``--output`` takes BuildKit's CSV form: ``type=oci,dest=DIR`` (an OCI image layout directory,
like ``tar=false``), ``type=oci-archive,dest=FILE`` (the same as a tar), ``type=docker-archive,
dest=FILE`` (what ``docker load`` reads), ``type=registry,name=HOST/REPO:TAG`` (a push).
BuildKit reads a bare ``-o DIR`` as ``type=local`` (a root filesystem), which is not offered
here, so a value without ``type=`` is an error.

The image id written by ``--iidfile`` is docker's: ``sha256:`` and the config's digest.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from part2_manual_oci import write_file_atomic

from .errors import BuildError

OUTPUT_TYPES = ("oci", "oci-archive", "docker-archive", "registry")


@dataclass(frozen=True)
class OutputSpec:
    """One ``--output``: ``type`` and ``dest`` (a path, or the registry name for a push)."""

    type: str
    dest: str

    def transport(self, name: str | None) -> str:
        """The store's export destination (``oci:DIR:TAG`` ...) for this output."""
        tag = None
        if name:
            from ..refs import parse_name

            ref = parse_name(name)
            tag = ref.tag
        if self.type == "oci":
            return f"oci:{self.dest}" + (f":{tag}" if tag else "")
        if self.type == "oci-archive":
            return f"oci-archive:{self.dest}" + (f":{tag}" if tag else "")
        if self.type == "docker-archive":
            return f"docker-archive:{self.dest}" + (f":{name}" if name else "")
        raise BuildError(f"--output type={self.type} is not an export")


def parse_output(text: str) -> OutputSpec:
    """``type=oci,dest=out`` -> OutputSpec; BuildError with the reason otherwise."""
    try:
        fields = next(csv.reader([text]))
    except (csv.Error, StopIteration):
        raise BuildError(f"--output {text!r}: not a comma-separated list of key=value") from None
    values = {}
    for field in fields:
        key, eq, value = field.partition("=")
        if not eq:
            raise BuildError(f"--output {text!r}: {field!r} is not key=value (expected type=...,dest=...)")
        values[key.strip().lower()] = value
    kind = values.get("type")
    if kind not in OUTPUT_TYPES:
        raise BuildError(f"--output {text!r}: type must be one of {', '.join(OUTPUT_TYPES)}")
    dest = values.get("name") if kind == "registry" else values.get("dest")
    if not dest:
        raise BuildError(f"--output {text!r}: " + ("name=HOST/REPO:TAG is required" if kind == "registry"
                                                    else "dest=PATH is required"))
    return OutputSpec(kind, os.path.expanduser(dest) if kind != "registry" else dest)


def write_output(store, spec: OutputSpec, desc, name: str | None) -> None:
    """Export the built image (``desc``: its manifest, or its index for several platforms)."""
    store.export(desc.digest, spec.transport(name))


def write_iidfile(path: str | os.PathLike, image_id: str) -> None:
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise BuildError(f"--iidfile {path}: directory {path.parent} does not exist")
    write_file_atomic(path, image_id.encode())


__all__ = ["OUTPUT_TYPES", "OutputSpec", "parse_output", "write_iidfile", "write_output"]
