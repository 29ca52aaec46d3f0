"""The local image store: an OCI image layout that skopeo, umoci and podman read directly, plus
what a layout has no place for.

Each tagged image is an index.json entry named (``org.opencontainers.image.ref.name``) by its
normalized name, ``docker.io/library/busybox:bench``. Beside the layout the store keeps each
layer extracted once as an overlay lower directory (``snapshots/<diff_id hex>``), the build
cache (one small JSON file per key), image ids, and two locks: writers hold ``lock``
exclusively, builds and runs hold ``gc.lock`` shared so that ``prune`` waits for them.

``Store.open(path)`` creates or opens a store; ``commit``/``load``/``resolve``/``tag`` move
images in and out as part 3 ``Image`` values; ``lowers(image)`` gives the overlay lower
directories of an image; ``import_rootfs``, ``export`` and ``load_archive`` cross its border.
The name ``capstone/busybox`` is made from the host's busybox-static on first use.
``lease``/``sweep`` keep what killed builds and runs leave from staying (see ``store.py``).

``Store`` is a facade over one module per concern: ``names`` (names and image ids), ``cache``
(the build cache), ``snapshots``, ``sources`` (where blobs are known to be), ``leases`` and
``locks``, ``gc`` (prune). The build and the registry client are written against the Protocols
of ``interface`` (``BuildStore``, ``RegistryStore``), never against the store's OCI layout.
"""

from .errors import AmbiguousImage, ExportError, ImageInUse, ImageNotFound, StoreError
from .interface import BlobStore, BuildStore, ImageStore, RegistryStore
from .store import EMBEDDED_BUSYBOX, ImageEntry, Store, image_from_layout, mounts_under

__all__ = [
    "AmbiguousImage",
    "BlobStore",
    "BuildStore",
    "EMBEDDED_BUSYBOX",
    "ExportError",
    "ImageEntry",
    "ImageInUse",
    "ImageNotFound",
    "ImageStore",
    "RegistryStore",
    "Store",
    "StoreError",
    "image_from_layout",
    "mounts_under",
]
