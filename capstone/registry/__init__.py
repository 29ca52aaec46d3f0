"""A registry client: Docker Registry HTTP API v2 (the OCI distribution spec) over httpx.

``pull(store, name)`` fetches a manifest (an index or manifest list resolves to this host's
platform), streams the config and layers into the store's OCI layout with digest checks, a few
at a time, and tags the name in the store. ``push(store, name, dest)`` mounts or uploads the
blobs the registry lacks and then the manifest. ``client.py`` has the requests (TLS and
plain HTTP as ``hostconfig.py`` decides, Bearer and Basic auth with the credentials of
``credentials.py``), ``transfer.py`` the flows, ``errors.py`` the errors.
"""

from .client import RegistryClient, RegistryOptions, is_insecure
from .credentials import (
    Credentials,
    CredentialsError,
    find_credentials,
    login_file,
    parse_creds,
    remove_credentials,
    save_credentials,
)
from .errors import BlobUnknown, DigestMismatch, ManifestUnknown, RegistryAuthError, RegistryError
from .hostconfig import HostConfig
from .transfer import LineProgress, fetch_blobs, pull, push, push_blobs, push_manifest

__all__ = [
    "BlobUnknown",
    "Credentials",
    "CredentialsError",
    "DigestMismatch",
    "HostConfig",
    "LineProgress",
    "ManifestUnknown",
    "RegistryAuthError",
    "RegistryClient",
    "RegistryError",
    "RegistryOptions",
    "fetch_blobs",
    "find_credentials",
    "is_insecure",
    "login_file",
    "parse_creds",
    "pull",
    "push",
    "push_blobs",
    "push_manifest",
    "remove_credentials",
    "save_credentials",
]
