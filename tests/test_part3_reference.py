"""Part 3: image references with transports, table-tested, and manifest selection by name."""

from __future__ import annotations

import pytest

from part2_manual_oci.mediatypes import ANNOTATION_REF_NAME, OCI_MANIFEST
from part2_manual_oci.models import Descriptor
from part3_go_style_builder.errors import AmbiguousImage, ImageNotFound, InvalidReference
from part3_go_style_builder.reference import ImageReference, parse_reference, select_manifest

VALID = [
    # text, transport, path, image, tag, tag_given, workdir name, ref name
    ("oci-archive:nginx.tar", "oci-archive", "nginx.tar", None, "latest", False, "nginx", "latest"),
    ("oci-archive:alpine.tar:latest", "oci-archive", "alpine.tar", None, "latest", True, "alpine", "latest"),
    ("oci-archive:/tmp/centos.tar", "oci-archive", "/tmp/centos.tar", None, "latest", False, "centos", "latest"),
    ("oci-archive:/tmp/x.tar.gz:1.0", "oci-archive", "/tmp/x.tar.gz", None, "1.0", True, "x", "1.0"),
    ("oci-archive:/tmp/image", "oci-archive", "/tmp/image", None, "latest", False, "image", "latest"),
    ("oci-archive:a.tar:app:v2", "oci-archive", "a.tar", "app", "v2", True, "app", "app:v2"),
    ("oci-layout:/var/tmp/nginx", "oci-layout", "/var/tmp/nginx", None, "latest", False, "nginx", "latest"),
    ("oci-layout:/Users/bob/nginx/:nginx:latest", "oci-layout", "/Users/bob/nginx/", "nginx", "latest", True, "nginx", "nginx:latest"),
    ("oci-layout:/tmp/centos:latest", "oci-layout", "/tmp/centos", None, "latest", True, "centos", "latest"),
    ("oci-layout:/tmp/nodejs:nodejs:latest", "oci-layout", "/tmp/nodejs", "nodejs", "latest", True, "nodejs", "nodejs:latest"),
    ("oci-layout:out/:v1", "oci-layout", "out/", None, "v1", True, "out", "v1"),
    ("oci-layout:rel/dir:library/busybox:1.36_musl", "oci-layout", "rel/dir", "library/busybox", "1.36_musl", True, "busybox", "library/busybox:1.36_musl"),
    ("oci:/srv/img:Tag-9", "oci-layout", "/srv/img", None, "Tag-9", True, "img", "Tag-9"),
]


@pytest.mark.parametrize("text,transport,path,image,tag,tag_given,workdir,ref_name", VALID)
def test_valid_references_parse_like_cbt(text, transport, path, image, tag, tag_given, workdir, ref_name):
    ref = parse_reference(text)
    assert ref == ImageReference(transport, path, image, tag)
    assert ref.tag_given is tag_given
    assert ref.workdir_name == workdir
    assert ref.ref_name == ref_name
    # the text form parses back to the same reference
    again = parse_reference(str(ref))
    assert again == ref and again.tag_given == ref.tag_given


ERRORS = [
    ("", "empty image reference"),
    ("   ", "empty image reference"),
    ("/tmp/nginx", "has no transport"),
    ("docker://busybox:latest", "unknown transport 'docker'"),
    ("oci-archiv:x.tar", "unknown transport 'oci-archiv'"),
    (":x", "unknown transport ''"),
    ("oci-layout:", "missing path"),
    ("oci-layout::latest", "missing path"),
    ("oci-layout:/a:b:c:d", "too many ':'"),
    ("oci-layout:/tmp/x:", "empty tag"),
    ("oci-layout:/tmp/x:app:", "empty tag"),
    ("oci-layout:/tmp/x::v1", "empty image name"),
    ("oci-layout:/tmp/x:-bad", "invalid tag '-bad'"),
    ("oci-layout:/tmp/x:.bad", "invalid tag '.bad'"),
    ("oci-layout:/tmp/x:app:" + "t" * 129, "invalid tag"),
    ("oci-layout:/tmp/x:has space", "invalid tag 'has space'"),
    ("oci-layout:/tmp/x:app/:v1", "invalid image name 'app/'"),
    ("oci-layout:/tmp/x:-app:v1", "invalid image name '-app'"),
    ("oci-layout:/tmp/x:a b:v1", "invalid image name 'a b'"),
    ("oci-layout:/", "cannot name a working folder"),
    ("oci-layout:..", "cannot name a working folder"),
    ("oci-archive:.", "cannot name a working folder"),
]


@pytest.mark.parametrize("text,message", ERRORS)
def test_invalid_references_raise_one_clear_line(text, message):
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    text_of_error = str(info.value)
    assert message in text_of_error
    assert "\n" not in text_of_error


def test_absolute_keeps_everything_but_the_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ref = parse_reference("oci-layout:out:app:v1").absolute()
    assert ref == ImageReference("oci-layout", str(tmp_path / "out"), "app", "v1")


def _entry(n: int, name: str | None) -> Descriptor:
    return Descriptor(
        OCI_MANIFEST,
        "sha256:" + f"{n:x}" * 64 if n < 16 else "sha256:" + "f" * 64,
        100 + n,
        annotations=None if name is None else {ANNOTATION_REF_NAME: name},
    )


SELECT = [
    # entries (name per manifest), reference, index of the chosen entry
    ([None], "oci-layout:/l", 0),
    (["latest"], "oci-layout:/l", 0),
    (["app:v1"], "oci-layout:/l", 0),
    ([None], "oci-layout:/l:v9", 0),  # a single unnamed image serves any tag, as in cbt
    (["app:v1", "app:v2"], "oci-layout:/l:app:v2", 1),
    (["v1", "v2"], "oci-layout:/l:v2", 1),  # skopeo's bare tags
    (["v1", "v2"], "oci-layout:/l:app:v2", 1),  # IMAGE:TAG falls back to the bare tag
    (["app:v1", "web:v2"], "oci-layout:/l:v2", 1),  # a bare tag finds the one *:TAG
    (["latest", "app:latest"], "oci-layout:/l:latest", 0),  # exact name before *:TAG
    (["app:v1", "v1"], "oci-layout:/l:app:v1", 0),  # exact IMAGE:TAG before the bare tag
]


@pytest.mark.parametrize("names,text,chosen", SELECT)
def test_manifest_selection_by_ref_name(names, text, chosen):
    entries = [_entry(i, name) for i, name in enumerate(names)]
    assert select_manifest(entries, parse_reference(text), "/l") is entries[chosen]


SELECT_ERRORS = [
    ([], "oci-layout:/l", ImageNotFound, "/l: index.json lists no images"),
    (["app:v1", "app:v2"], "oci-layout:/l", AmbiguousImage, "multiple images found in index (app:v1, app:v2), specify image name"),
    ([None, None], "oci-layout:/l", AmbiguousImage, "multiple images found in index (<unnamed sha256:000000000000>, <unnamed sha256:111111111111>)"),
    (["app:v1", "web:v1"], "oci-layout:/l:v1", AmbiguousImage, "several images match 'v1' (app:v1, web:v1)"),
    (["app:v1"], "oci-layout:/l:v2", ImageNotFound, "no image named 'v2' (found: app:v1)"),
    (["app:v1", "web:v2"], "oci-layout:/l:app:v2", ImageNotFound, "no image named 'app:v2' (found: app:v1, web:v2)"),
    (["v1"], "oci-layout:/l:latest", ImageNotFound, "no image named 'latest' (found: v1)"),
]


@pytest.mark.parametrize("names,text,error,message", SELECT_ERRORS)
def test_manifest_selection_errors(names, text, error, message):
    entries = [_entry(i, name) for i, name in enumerate(names)]
    with pytest.raises(error) as info:
        select_manifest(entries, parse_reference(text), "/l")
    assert message in str(info.value)
