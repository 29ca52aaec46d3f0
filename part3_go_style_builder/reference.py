"""Image references with a transport, as cbt and skopeo write them, and choosing a manifest by name.

This is the one grammar of transport references in the project (the capstone parses its
``oci:``, ``oci-archive:`` and ``docker-archive:`` references here too). A reference is
``TRANSPORT:PATH[:REF]``, split on the first ``:`` twice, so a path cannot hold a ``:`` (as in
cbt and skopeo), and ``REF`` is everything after the path:

=============================================  =================  ====================  =========
reference                                      path               image                 tag
=============================================  =================  ====================  =========
``oci-layout:/tmp/centos``                     /tmp/centos                              latest
``oci-layout:/tmp/centos:7``                   /tmp/centos                              7
``oci-layout:/tmp/nodejs:nodejs:20``           /tmp/nodejs        nodejs                20
``oci:/s:localhost:5000/a/b:1``                /s                 localhost:5000/a/b    1
``oci-archive:alpine.tar:latest``              alpine.tar                               latest
``docker-archive:d.tar:busybox``               d.tar              busybox               latest
``docker-archive:d.tar:busybox:bench``         d.tar              busybox               bench
=============================================  =================  ====================  =========

In ``REF`` the tag is what follows the last ``:`` after the last ``/`` (Docker's rule, so a
registry's port is part of the image name). For ``oci-layout:`` and ``oci-archive:`` a ``REF``
of one word is a tag (the layout's ref name); for ``docker-archive:`` it is an image name, as
skopeo reads them. ``oci:`` is another name of ``oci-layout:`` (skopeo's spelling).

In a layout, an image is named by its index entry's ``org.opencontainers.image.ref.name``
annotation. cbt writes ``IMAGE:TAG`` there; skopeo and umoci write a bare ``TAG``; the capstone
writes a full name (``docker.io/library/busybox:latest``). All are accepted, see
:func:`select_manifest`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from part1_overview import field, model, replace

from .errors import AmbiguousImage, ImageNotFound, InvalidReference

OCI_ARCHIVE = "oci-archive"
OCI_LAYOUT = "oci-layout"
DOCKER_ARCHIVE = "docker-archive"
TRANSPORTS = (OCI_ARCHIVE, OCI_LAYOUT, DOCKER_ARCHIVE)
_ALIASES = {"oci": OCI_LAYOUT}
DEFAULT_TAG = "latest"

# Docker's tag grammar: "[\w][\w.-]{0,127}"
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# a repository name: components of alphanumerics joined by separators, split by "/"
_COMPONENT = r"[A-Za-z0-9]+(?:(?:[._]|__|-+)[A-Za-z0-9]+)*"
# ... the first of them may be a registry host with a port (localhost:5000/app)
_IMAGE = re.compile(rf"^{_COMPONENT}(?::[0-9]+/{_COMPONENT})?(?:/{_COMPONENT})*$")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tar.zst", ".tar.xz", ".tar.bz2", ".tgz", ".tar", ".oci")


@model(frozen=True)
class ImageReference:
    """A parsed reference: where the image is (``transport``, ``path``) and its name in there.

    ``image`` is None when the reference names no image; ``tag`` is ``latest`` when it names
    none, and ``tag_given`` tells the two apart (it does not take part in equality).
    """

    transport: str
    path: str
    image: str | None = None
    tag: str = DEFAULT_TAG
    tag_given: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        text = f"{self.transport}:{self.path}"
        if self.image is not None:
            return f"{text}:{self.image}:{self.tag}"
        return f"{text}:{self.tag}" if self.tag_given else text

    @property
    def ref_name(self) -> str:
        """The ref name annotation this reference writes: ``IMAGE:TAG``, or the bare ``TAG``."""
        return f"{self.image}:{self.tag}" if self.image is not None else self.tag

    @property
    def given_name(self) -> str | None:
        """:attr:`ref_name` when the reference names an image or a tag, else None (the
        layout's only image, or a default the caller picks)."""
        return self.ref_name if self.image is not None or self.tag_given else None

    @property
    def workdir_name(self) -> str:
        """cbt's working-folder name: the image name, else the layout folder's name, else the
        archive's file name without its extension (``nginx.tar`` -> ``nginx``)."""
        if self.image is not None:
            return self.image.rsplit("/", 1)[-1]
        base = os.path.basename(os.path.normpath(self.path))
        if self.transport == OCI_ARCHIVE:
            for suffix in _ARCHIVE_SUFFIXES:
                if base.endswith(suffix) and len(base) > len(suffix):
                    return base[: -len(suffix)]
        return base

    def absolute(self) -> "ImageReference":
        """The same reference with an absolute path (what ``builder.json`` keeps)."""
        return replace(self, path=os.path.abspath(self.path))


def parse_reference(text: str) -> ImageReference:
    """Parse ``oci-archive:FILE[:REF]``, ``oci-layout:DIR[:REF]`` or ``docker-archive:FILE[:REF]``
    (``REF``: ``TAG`` or ``IMAGE[:TAG]``, see the module docstring).

    Raises :class:`InvalidReference` with a message that quotes the reference.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidReference("empty image reference (expected oci-layout:DIR[:TAG] or oci-archive:FILE[:TAG])")
    transport, colon, rest = text.partition(":")
    if not colon:
        raise InvalidReference(
            f"image reference {text!r} has no transport (expected oci-layout:{text} or oci-archive:{text})"
        )
    transport = _ALIASES.get(transport, transport)
    if transport not in TRANSPORTS:
        raise InvalidReference(
            f"unknown transport {transport!r} in {text!r} (expected one of: {', '.join(TRANSPORTS)})"
        )
    path, has_ref, ref_text = rest.partition(":")
    if not path:
        raise InvalidReference(f"missing path in {text!r} (expected {transport}:PATH[:TAG])")
    image, tag = _split_ref(ref_text, text, transport) if has_ref else (None, None)
    ref = ImageReference(transport, path, image, tag or DEFAULT_TAG, tag_given=tag is not None)
    if ref.workdir_name in ("", ".", ".."):
        raise InvalidReference(f"cannot name a working folder after {text!r}: give an image name (PATH:IMAGE:TAG)")
    return ref


def _split_ref(ref: str, text: str, transport: str) -> tuple[str | None, str | None]:
    """``REF`` -> (image or None, tag or None), checked."""
    slash, colon = ref.rfind("/"), ref.rfind(":")
    if colon > slash:
        image, tag = ref[:colon], ref[colon + 1:]
        if not image:
            raise InvalidReference(f"empty image name in {text!r} (expected {transport}:PATH:IMAGE:TAG)")
    elif transport == DOCKER_ARCHIVE or "/" in ref:
        image, tag = ref, None
    else:
        image, tag = None, ref
    if tag is not None:
        if not tag:
            raise InvalidReference(f"empty tag in {text!r} (leave out the ':' for the default tag {DEFAULT_TAG})")
        if not _TAG.match(tag):
            raise InvalidReference(
                f"invalid tag {tag!r} in {text!r} (up to 128 letters, digits, _ . -; not starting with . or -)"
            )
    if image is not None and not _IMAGE.match(image):
        if ":" in image:
            raise InvalidReference(
                f"too many ':' in {text!r} (expected {transport}:PATH[:TAG] or {transport}:PATH:IMAGE:TAG; "
                "a path cannot contain ':')"
            )
        raise InvalidReference(
            f"invalid image name {image!r} in {text!r} (letters, digits and . _ - separators, "
            "components joined by /, a registry may have a :port)"
        )
    return image, tag


def _names(manifests: Sequence) -> str:
    return ", ".join(m.ref_name or f"<unnamed {m.digest[:19]}>" for m in manifests)


def select_manifest(manifests: Sequence, ref: ImageReference, where: str):
    """The index entry (a ``Descriptor``) that ``ref`` names among ``manifests``.

    - No tag and no image in the reference: the index must hold exactly one image (cbt's rule);
      several give "multiple images found ..., specify image name".
    - ``IMAGE:TAG``: the entry named ``IMAGE:TAG``, else one named bare ``TAG`` (as skopeo
      writes). A bare ``TAG``: the entry named ``TAG``, else the one entry named ``*:TAG``.
    - A single unnamed image is taken for any tag, as cbt does.

    ``where`` names the layout or archive in messages.
    """
    if not manifests:
        raise ImageNotFound(f"{where}: index.json lists no images")
    if ref.image is None and not ref.tag_given:
        if len(manifests) == 1:
            return manifests[0]
        raise AmbiguousImage(
            f"{where}: multiple images found in index ({_names(manifests)}), specify image name "
            f"({ref.transport}:{ref.path}:TAG or {ref.transport}:{ref.path}:IMAGE:TAG)"
        )
    wanted = ref.ref_name
    candidates = [m for m in manifests if m.ref_name == wanted]
    if not candidates:
        if ref.image is not None:
            candidates = [m for m in manifests if m.ref_name == ref.tag]
        else:
            candidates = [m for m in manifests if (m.ref_name or "").rpartition(":")[2] == ref.tag and m.ref_name]
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        raise AmbiguousImage(
            f"{where}: several images match {wanted!r} ({_names(candidates)}), specify image name "
            f"({ref.transport}:{ref.path}:IMAGE:{ref.tag})"
        )
    if len(manifests) == 1 and manifests[0].ref_name is None:
        return manifests[0]
    raise ImageNotFound(f"{where}: no image named {wanted!r} (found: {_names(manifests)})")
