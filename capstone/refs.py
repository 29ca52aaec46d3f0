"""Image names by Docker's rules, and the transports a reference may name instead.

A name is ``[REGISTRY/]REPOSITORY[:TAG][@DIGEST]``. Docker fills in what is left out, and the
store keeps only the full form (``normalize``):

================================  ==========================================
given                             normalized
================================  ==========================================
``busybox``                       ``docker.io/library/busybox:latest``
``busybox:bench``                 ``docker.io/library/busybox:bench``
``me/app``                        ``docker.io/me/app:latest``
``localhost:5000/a/b``            ``localhost:5000/a/b:latest``
``quay.io/x/y:1``                 ``quay.io/x/y:1``
``x@sha256:<64 hex>``             ``docker.io/library/x@sha256:<64 hex>``
================================  ==========================================

The first ``/``-separated part is a registry when it contains a ``.`` or a ``:``, is
``localhost``, or has an upper-case letter (distribution/reference's ``splitDockerDomain``);
otherwise the registry is ``docker.io``, and a one-part repository there lives under
``library/``. Repositories are lower case; tags are ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``.

A reference can also name where an image is rather than what it is called
(``parse_reference``): ``oci-layout:DIR[:TAG]`` (``oci:`` too), ``oci-archive:FILE[:TAG]``,
``docker-archive:FILE[:NAME:TAG]``, read by part 3's one grammar, and ``docker://NAME``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from part1_overview import model

from .errors import CapstoneError

if TYPE_CHECKING:
    from part3_go_style_builder import ImageReference

DEFAULT_REGISTRY = "docker.io"
LEGACY_REGISTRY = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
MAX_NAME_LENGTH = 255

# distribution/reference's grammar (regexp.go), written out once here
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
_PATH_RE = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
_TAG_RE = re.compile(rf"^{_TAG}$", re.ASCII)
_DIGEST_RE = re.compile(rf"^{_DIGEST}$")
_ID_RE = re.compile(r"^[a-f0-9]{64}$")
_SHA256_RE = re.compile(r"^sha256:[a-f0-9]{64}$")

# transports a reference may name (skopeo's spellings); "oci" is "oci-layout"
OCI_LAYOUT = "oci-layout"
OCI_ARCHIVE = "oci-archive"
DOCKER_ARCHIVE = "docker-archive"
_TRANSPORT_ALIASES = {"oci": OCI_LAYOUT, OCI_LAYOUT: OCI_LAYOUT, OCI_ARCHIVE: OCI_ARCHIVE,
                      DOCKER_ARCHIVE: DOCKER_ARCHIVE}


class InvalidName(CapstoneError):
    """A string that is not an image name by Docker's rules (the message says why)."""


@model(frozen=True)
class NameRef:
    """A normalized image name: ``registry/repository[:tag][@digest]``.

    ``tag`` is None only when a digest is given without a tag (``x@sha256:...``).
    """

    registry: str
    repository: str
    tag: str | None = DEFAULT_TAG
    digest: str | None = None

    @property
    def repo(self) -> str:
        """``registry/repository`` (no tag, no digest)."""
        return f"{self.registry}/{self.repository}"

    @property
    def name(self) -> str:
        """The normalized string the store keys images by."""
        out = self.repo
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    @property
    def familiar_repo(self) -> str:
        """The repository as Docker shows it: ``busybox``, ``me/app``, ``localhost:5000/a/b``."""
        if self.registry == DEFAULT_REGISTRY:
            if self.repository.startswith(OFFICIAL_PREFIX) and "/" not in self.repository[len(OFFICIAL_PREFIX):]:
                return self.repository[len(OFFICIAL_PREFIX):]
            return self.repository
        return self.repo

    @property
    def short(self) -> str:
        """The familiar form for display: ``busybox:bench``, ``localhost:5000/a/b:latest``."""
        out = self.familiar_repo
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    def with_tag(self, tag: str) -> "NameRef":
        if not _TAG_RE.match(tag):
            raise InvalidName(f"invalid tag {tag!r}: up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'")
        return NameRef(self.registry, self.repository, tag, None)

    def __str__(self) -> str:
        return self.name


def split_registry(name: str) -> tuple[str, str]:
    """(registry, remainder) as Docker splits a name (``splitDockerDomain``)."""
    i = name.find("/")
    first = name[:i]
    if i == -1 or ("." not in first and ":" not in first and first != "localhost" and first.lower() == first):
        registry, rest = DEFAULT_REGISTRY, name
    else:
        registry, rest = first, name[i + 1:]
    if registry == LEGACY_REGISTRY:
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in rest:
        rest = OFFICIAL_PREFIX + rest
    return registry, rest


def parse_name(text: str) -> NameRef:
    """Parse a name by Docker's rules; :class:`InvalidName` says what is wrong."""
    if not isinstance(text, str) or not text:
        raise InvalidName("invalid reference format: empty image name")
    if _ID_RE.match(text):
        raise InvalidName(f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    if text != text.strip() or any(c.isspace() for c in text):
        raise InvalidName(f"invalid reference format: {text!r} contains white space")
    rest, at, digest = text.partition("@")
    digest_value = None
    if at:
        if not _DIGEST_RE.match(digest):
            raise InvalidName(f"invalid reference format: {text!r} has an invalid digest {digest!r}")
        if digest.startswith("sha256:") and not _SHA256_RE.match(digest):
            raise InvalidName(f"invalid reference format: {text!r}: a sha256 digest is 64 lower-case hex digits")
        digest_value = digest
    # the tag is after the last ':' that comes after the last '/' (a ':' before is a port)
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    tag = None
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG_RE.match(tag):
            raise InvalidName(f"invalid reference format: {text!r} has an invalid tag {tag!r} "
                              "(up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-')")
    if not rest:
        raise InvalidName(f"invalid reference format: {text!r} has no repository name")
    registry, repository = split_registry(rest)
    if not _DOMAIN_RE.match(registry):
        raise InvalidName(f"invalid reference format: {text!r} has an invalid registry {registry!r}")
    if repository.lower() != repository and _PATH_RE.match(repository.lower()):
        raise InvalidName(f"invalid reference format: repository name ({repository}) must be lowercase")
    if not _PATH_RE.match(repository):
        raise InvalidName(f"invalid reference format: {text!r} (repository {repository!r}: lower-case letters, "
                          "digits and . _ - separators, components joined by /)")
    if len(f"{registry}/{repository}") > MAX_NAME_LENGTH:
        raise InvalidName(f"invalid reference format: repository name must not be more than {MAX_NAME_LENGTH} characters")
    if tag is None and digest_value is None:
        tag = DEFAULT_TAG
    return NameRef(registry, repository, tag, digest_value)


def normalize(name: str) -> str:
    """The full form of an image name: ``busybox`` -> ``docker.io/library/busybox:latest``."""
    return parse_name(name).name


def familiar(name: str) -> str:
    """The short form of a name: ``docker.io/library/busybox:latest`` -> ``busybox:latest``."""
    return parse_name(name).short


def is_image_id(text: str) -> bool:
    """``sha256:<64 hex>`` or a bare 64-hex id."""
    return bool(_SHA256_RE.match(text) or _ID_RE.match(text))


# -- transports --------------------------------------------------------------------------------
# One grammar for ``TRANSPORT:PATH[:REF]``: part 3's ``parse_reference`` (cbt's and skopeo's).
# Here it is only told apart from a name, and ``docker://NAME`` is read as a name.


def has_transport(text: str) -> bool:
    """Whether ``text`` names a transport (``oci:``, ``oci-archive:``, ``docker://``...), not a name."""
    if text.startswith("docker://"):
        return True
    head, colon, _ = text.partition(":")
    return bool(colon) and head in _TRANSPORT_ALIASES


def parse_transport(text: str) -> ImageReference:
    """``oci:DIR[:REF]``, ``oci-layout:``, ``oci-archive:FILE[:REF]`` or
    ``docker-archive:FILE[:NAME[:TAG]]`` by part 3's grammar; :class:`InvalidName` when malformed."""
    from part3_go_style_builder import InvalidReference
    from part3_go_style_builder import parse_reference as parse_location

    try:
        ref = parse_location(text)
    except InvalidReference as e:
        raise InvalidName(str(e)) from None
    if ref.transport == DOCKER_ARCHIVE and ref.image is not None:
        parse_name(ref.ref_name)  # NAME[:TAG] must be a valid name by Docker's rules
    return ref


def parse_reference(text: str) -> NameRef | ImageReference:
    """A name (:class:`NameRef`; ``docker://NAME`` too) or a transport reference (part 3's
    ``ImageReference``)."""
    if text.startswith("docker://"):
        return parse_name(text[len("docker://"):])
    if has_transport(text):
        return parse_transport(text)
    return parse_name(text)
