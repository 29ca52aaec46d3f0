"""The registry client's errors (leaves of ``capstone.errors.CapstoneError``).

::

    RegistryError               any failed exchange with a registry (names the URL and status)
    ├── RegistryAuthError       401/403 after authenticating (or the token service refused)
    ├── ManifestUnknown         404 for a manifest: no such repository, tag or digest
    ├── BlobUnknown             404 for a blob the manifest names
    └── DigestMismatch          what arrived does not hash to the digest asked for
"""

from __future__ import annotations

from ..errors import CapstoneError


class RegistryError(CapstoneError):
    """A registry exchange failed; the message names the method, URL and status."""


class RegistryAuthError(RegistryError):
    """The registry refused the credentials (or there were none and it wants some)."""


class ManifestUnknown(RegistryError):
    """The registry has no manifest for that name (repository, tag or digest)."""


class BlobUnknown(RegistryError):
    """The registry has no blob with that digest in the repository."""


class DigestMismatch(RegistryError):
    """Content from the registry does not hash to the digest it was fetched by."""
