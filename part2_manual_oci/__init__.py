"""Part 2: an OCI image by hand.

An image is a tar archive plus JSON: layers (tar streams), a config (what to run, and the
diff_ids of the layers), a manifest (the config and layer descriptors), and an index that
names manifests. Every piece is a blob named by the sha256 of its bytes.
"""

from . import mediatypes
from .digest import DigestError, HashingWriter, check_digest, digest_hex, digest_stream, sha256_digest

__all__ = ["DigestError", "HashingWriter", "check_digest", "digest_hex", "digest_stream", "mediatypes", "sha256_digest"]
