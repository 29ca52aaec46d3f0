"""A registry client: Docker Registry HTTP API v2 (the OCI distribution spec) over httpx.

``pull(store, name)`` fetches a manifest (an index or manifest list resolves to this host's
platform), streams the config and layers into the store's OCI layout with digest checks, and
tags the name in the store. ``push(store, name, dest)`` uploads the blobs the registry lacks
and then the manifest. Plain HTTP for localhost and 127.0.0.1, Bearer tokens when the registry
answers 401 with a challenge. See ``client.py`` for the requests and ``transfer.py`` for the
flows; the errors are in ``errors.py``.
"""

from .client import RegistryClient, is_insecure
from .errors import BlobUnknown, DigestMismatch, ManifestUnknown, RegistryAuthError, RegistryError
from .transfer import pull, push, select_platform

__all__ = [
    "BlobUnknown",
    "DigestMismatch",
    "ManifestUnknown",
    "RegistryAuthError",
    "RegistryClient",
    "RegistryError",
    "is_insecure",
    "pull",
    "push",
    "select_platform",
]
