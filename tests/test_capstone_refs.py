"""capstone.refs: image names by Docker's rules (distribution/reference), and transports."""

from __future__ import annotations

import pytest

from capstone.errors import CapstoneError
from capstone.refs import (
    InvalidName,
    NameRef,
    familiar,
    normalize,
    parse_name,
    parse_reference,
    parse_transport,
)
from part3_go_style_builder import ImageReference
from part3_go_style_builder import parse_reference as part3_parse_reference

DIGEST = "sha256:" + "ab" * 32

NORMALIZED = [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:bench", "docker.io/library/busybox:bench"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/busybox:1", "docker.io/library/busybox:1"),
    ("me/app", "docker.io/me/app:latest"),
    ("me/app/sub:v1.2_x-y", "docker.io/me/app/sub:v1.2_x-y"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/a/b", "localhost:5000/a/b:latest"),
    ("127.0.0.1:5000/a:t", "127.0.0.1:5000/a:t"),
    ("quay.io/x/y:1", "quay.io/x/y:1"),
    ("Registry.Example/x", "Registry.Example/x:latest"),
    ("[::1]:5000/x", "[::1]:5000/x:latest"),
    ("a.b-c__d", "docker.io/library/a.b-c__d:latest"),
    (f"x@{DIGEST}", f"docker.io/library/x@{DIGEST}"),
    (f"x:t@{DIGEST}", f"docker.io/library/x:t@{DIGEST}"),
    ("capstone/busybox", "docker.io/capstone/busybox:latest"),
]


@pytest.mark.parametrize("given,expected", NORMALIZED)
def test_normalize_fills_in_registry_library_and_tag(given, expected):
    assert normalize(given) == expected
    assert normalize(expected) == expected  # idempotent


@pytest.mark.parametrize("given,short", [
    ("docker.io/library/busybox:bench", "busybox:bench"),
    ("busybox", "busybox:latest"),
    ("docker.io/me/app:1", "me/app:1"),
    ("localhost:5000/a/b", "localhost:5000/a/b:latest"),
    ("docker.io/library/a/b:1", "library/a/b:1"),
])
def test_short_is_dockers_familiar_form(given, short):
    assert familiar(given) == short


def test_name_ref_parts():
    ref = parse_name("localhost:5000/team/app:v2")
    assert ref == NameRef("localhost:5000", "team/app", "v2", None)
    assert ref.repo == "localhost:5000/team/app"
    assert ref.familiar_repo == "localhost:5000/team/app"
    ref = parse_name(f"busybox@{DIGEST}")
    assert (ref.tag, ref.digest, ref.short) == (None, DIGEST, f"busybox@{DIGEST}")
    assert parse_name("busybox").with_tag("x").name == "docker.io/library/busybox:x"


@pytest.mark.parametrize("bad,message", [
    ("", "empty"),
    ("Busybox", "repository name (library/Busybox) must be lowercase"),
    ("me/App:1", "must be lowercase"),
    ("a" * 64, "cannot specify 64-byte hexadecimal strings"),
    ("x:", "invalid tag"),
    ("x:-a", "invalid tag"),
    ("x:" + "t" * 129, "invalid tag"),
    ("x:a/b", "invalid reference format"),
    ("/x", "invalid reference format"),
    ("x/", "invalid reference format"),
    ("x//y", "invalid reference format"),
    ("-x", "invalid reference format"),
    ("x_-y", "invalid reference format"),
    ("x y", "white space"),
    ("x@sha256:abc", "invalid digest"),
    ("x@sha256:" + "A" * 64, "sha256 digest is 64 lower-case"),
    ("a:b:c", "invalid reference format"),
    ("-bad.host/x", "invalid registry"),
    ("docker.io/" + "a/" * 130 + "b", "more than 255"),
])
def test_invalid_names_raise_one_line_errors(bad, message):
    with pytest.raises(InvalidName) as info:
        parse_name(bad)
    assert isinstance(info.value, CapstoneError)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text,expected,given", [
    ("oci:/tmp/l", ImageReference("oci-layout", "/tmp/l"), None),
    ("oci-layout:/tmp/l:bench", ImageReference("oci-layout", "/tmp/l", None, "bench"), "bench"),
    ("oci:/s/oci:docker.io/library/x:tag", ImageReference("oci-layout", "/s/oci", "docker.io/library/x", "tag"),
     "docker.io/library/x:tag"),
    ("oci:/s:localhost:5000/a/b:1", ImageReference("oci-layout", "/s", "localhost:5000/a/b", "1"), "localhost:5000/a/b:1"),
    ("oci-archive:a.tar:1", ImageReference("oci-archive", "a.tar", None, "1"), "1"),
    ("docker-archive:d.tar", ImageReference("docker-archive", "d.tar"), None),
    ("docker-archive:d.tar:busybox:bench", ImageReference("docker-archive", "d.tar", "busybox", "bench"), "busybox:bench"),
    ("docker-archive:d.tar:busybox", ImageReference("docker-archive", "d.tar", "busybox"), "busybox:latest"),
])
def test_transport_references(text, expected, given):
    """The capstone reads transports with part 3's one grammar: the same value, the same
    ref name, whichever of the two parsers is asked."""
    assert parse_reference(text) == expected == part3_parse_reference(text)
    assert parse_transport(text).given_name == given


def test_docker_transport_and_plain_names():
    ref = parse_reference("docker://localhost:5000/a:1")
    assert isinstance(ref, NameRef) and ref.name == "localhost:5000/a:1"
    # a registry with a port is a name, not a transport
    assert isinstance(parse_reference("localhost:5000/a"), NameRef)
    assert isinstance(parse_reference("busybox"), NameRef)


@pytest.mark.parametrize("bad", ["oci:", "oci-archive::x", "oci:/d:", "docker-archive:f.tar:Bad:1", "nope:x/y"])
def test_bad_transport_references(bad):
    with pytest.raises(InvalidName):
        parse_transport(bad)
