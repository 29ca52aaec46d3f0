"""Errors of part 2.

Exception tree (``part1_overview.CourseError`` is the root of every part's errors)::

    LayoutError                 anything wrong with an OCI image layout or its JSON
    ├── BlobNotFound            a descriptor names a blob the layout does not hold
    ├── BlobCorrupt             a blob's bytes do not match its digest (or size)
    ├── ModelError              JSON that is not a valid descriptor / config / manifest / index
    │   ├── PlatformError       a platform specifier that cannot be parsed (platforms.py)
    │   └── PlatformNotFound    an index without an image for the platform asked for (platforms.py)
    └── ArchiveError            an oci-archive that cannot be read safely

``digest.DigestError`` (a CourseError and a ValueError) is raised for malformed digest strings.
"""

from __future__ import annotations

from part1_overview import CourseError


class LayoutError(CourseError):
    """Base error of part 2: something wrong with an OCI image layout or its documents."""


class BlobNotFound(LayoutError):
    """A blob named by a digest is missing from ``blobs/sha256``."""


class BlobCorrupt(LayoutError):
    """A blob whose content does not hash to its name, or has the wrong size."""


class ModelError(LayoutError):
    """JSON that does not follow the image spec (a missing field, a wrong type)."""


class ArchiveError(LayoutError):
    """An oci-archive with an unsafe or unsupported member."""
