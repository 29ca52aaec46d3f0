"""Errors of the local store.

::

    CapstoneError
    └── StoreError              the store cannot do what was asked (names the store path)
        ├── ImageNotFound       no image in the store has that name, digest or id
        ├── AmbiguousImage      an id prefix matches several images
        ├── ImageInUse          rmi of an image id that several names share (give -f)
        └── ExportError         a save/export/load destination that is malformed or unwritable

Errors of the parts below (``LayoutError``, ``LayerError``, ``OverlayError``) pass through
unchanged: they already name the blob or the path.
"""

from __future__ import annotations

from ..errors import CapstoneError


class StoreError(CapstoneError):
    """The store cannot do what was asked."""


class ImageNotFound(StoreError):
    """No image in the store has the name, digest or id asked for."""


class AmbiguousImage(StoreError):
    """An image id prefix that matches more than one image."""


class ImageInUse(StoreError):
    """``rmi`` of an id that several names share, without force."""


class ExportError(StoreError):
    """A destination or archive that is malformed, or cannot be written or read."""
