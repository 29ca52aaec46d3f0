"""Part 2: an OCI image by hand.

An image is a tar archive plus JSON: layers (tar streams), a config (what to run, and the
diff_ids of the layers), a manifest (the config and layer descriptors), and an index that
names manifests. Every piece is a blob named by the sha256 of its bytes, and an OCI image
layout is the directory that holds them: ``oci-layout``, ``index.json``, ``blobs/sha256/``.

This part models those documents (``Descriptor``, ``ImageConfig``, ``Manifest``, ``Index``;
OCI image-spec v1.1, Docker schema2 read too), reads and writes layouts (``OCILayout``:
atomic, content-addressed, verified reads), checks them (``validate_layout``), picks an index's image for a platform
(``select_platform``, containerd's rules; ``host_platform``), packs them
(``write_oci_archive``), writes every file atomically (``atomic_file``: a temp file, fsync,
rename) and builds the chapter's busybox image with nothing but the stdlib
(``build_busybox_image``). Run ``python -m part2_manual_oci --out DIR`` to watch it happen.
"""

from typing import TYPE_CHECKING

from part1_overview import lazy_exports

from . import mediatypes
from .atomic import atomic_file, make_durable, write_file_atomic
from .digest import (
    ALGORITHMS,
    DigestError,
    HashingReader,
    HashingWriter,
    check_digest,
    digest_hex,
    digest_stream,
    parse_digest,
    sha256_digest,
)
from .errors import ArchiveError, BlobCorrupt, BlobNotFound, LayoutError, ModelError
from .hostinfo import rfc3339, source_date_epoch
from .layout import MAX_JSON_SIZE, OCILayout
from .models import ContainerConfig, Descriptor, History, ImageConfig, Index, Manifest, Platform, canonical_json, env_to_dict
from .platforms import (
    ELF_MACHINES,
    PlatformError,
    PlatformNotFound,
    compatible_platforms,
    elf_header,
    elf_platform,
    format_platform,
    host_platform,
    normalize_platform,
    parse_platform,
    parse_platforms,
    platform_compatible,
    platform_matches,
    same_platform,
    select_platform,
)

if TYPE_CHECKING:
    from .archive import extract_oci_archive, open_oci_archive, write_oci_archive
    from .busybox import build_busybox_image
    from .validate import validate_layout

#: archives (tarfile), the chapter's busybox image (subprocess, gzip) and the validator are
#: imported when one of their names is first used (PEP 562): a build reads and writes a layout
#: and needs none of them, and start-up is most of a cached build's time.
_LAZY = {
    **{name: "archive" for name in ("extract_oci_archive", "open_oci_archive", "write_oci_archive")},
    "build_busybox_image": "busybox",
    "validate_layout": "validate",
}

__getattr__ = lazy_exports(__name__, globals(), _LAZY)


__all__ = [
    "ALGORITHMS",
    "MAX_JSON_SIZE",
    "ELF_MACHINES",
    "ArchiveError",
    "BlobCorrupt",
    "BlobNotFound",
    "ContainerConfig",
    "Descriptor",
    "DigestError",
    "HashingReader",
    "HashingWriter",
    "History",
    "ImageConfig",
    "Index",
    "LayoutError",
    "Manifest",
    "ModelError",
    "OCILayout",
    "Platform",
    "PlatformError",
    "PlatformNotFound",
    "atomic_file",
    "build_busybox_image",
    "canonical_json",
    "check_digest",
    "compatible_platforms",
    "digest_hex",
    "digest_stream",
    "elf_header",
    "elf_platform",
    "env_to_dict",
    "extract_oci_archive",
    "format_platform",
    "host_platform",
    "make_durable",
    "mediatypes",
    "normalize_platform",
    "open_oci_archive",
    "parse_digest",
    "parse_platform",
    "parse_platforms",
    "platform_compatible",
    "platform_matches",
    "rfc3339",
    "same_platform",
    "select_platform",
    "sha256_digest",
    "source_date_epoch",
    "validate_layout",
    "write_file_atomic",
    "write_oci_archive",
]
