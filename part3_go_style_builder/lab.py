"""Part 3's lab: cbt's references and its build (``python -m part3_go_style_builder lab start DIR``).

The student gets ``reference.py`` and ``builder.py`` with three holes: ``parse_reference``
(cbt's ``TRANSPORT:PATH[[:IMAGE]:TAG]``), ``select_manifest`` (which image of a layout a
reference names) and ``cbt_build`` (base layers, the working folder's layer folders, the
config: a new image). The checks run tables of references like the chapter's, and a build
round trip: a base image, ``from``, two layer folders, ``config``, the student's ``build``,
then ``validate_layout``, the layer digests and the files the layers put in a root filesystem.
"""

from __future__ import annotations

from pathlib import Path

from part1_overview import Lab, LabContext, Task
from part2_manual_oci import Descriptor, OCILayout, validate_layout
from part2_manual_oci import mediatypes as mt
from part4_tar import apply_layers

from .errors import AmbiguousImage, BuildError, ImageNotFound, InvalidReference
from .image import Image, layer_from_directory
from .reference import ImageReference

EPOCH = 1700000000

# -- task 1: references ----------------------------------------------------------------------------

#: text -> (transport, path, image, tag, tag_given): the forms cbt accepts
VALID = (
    ("oci-archive:nginx.tar", ("oci-archive", "nginx.tar", None, "latest", False)),
    ("oci-archive:alpine.tar:latest", ("oci-archive", "alpine.tar", None, "latest", True)),
    ("oci-archive:a.tar:app:v2", ("oci-archive", "a.tar", "app", "v2", True)),
    ("oci-layout:/var/tmp/nginx", ("oci-layout", "/var/tmp/nginx", None, "latest", False)),
    ("oci-layout:/tmp/centos:7", ("oci-layout", "/tmp/centos", None, "7", True)),
    ("oci-layout:/tmp/nodejs:nodejs:20", ("oci-layout", "/tmp/nodejs", "nodejs", "20", True)),
    ("oci-layout:rel/dir:library/busybox:1.36_musl", ("oci-layout", "rel/dir", "library/busybox", "1.36_musl", True)),
    ("oci:/srv/img:v1", ("oci-layout", "/srv/img", None, "v1", True)),
)

#: text -> words the one-line error must contain
INVALID = (
    ("", "empty"),
    ("/tmp/nginx", "no transport"),
    ("docker://busybox:latest", "unknown transport"),
    ("oci-layout:", "missing path"),
    ("oci-layout:/a:b:c:d", "too many ':'"),
    ("oci-layout:/tmp/x:", "empty tag"),
    ("oci-layout:/tmp/x::v1", "empty image name"),
    ("oci-layout:/tmp/x:-bad", "invalid tag"),
    ("oci-layout:/tmp/x:a b:v1", "invalid image name"),
    ("oci-layout:/", "cannot name a working folder"),
)


def check_parse(ctx: LabContext) -> None:
    parse = ctx.modules["reference"].parse_reference
    for text, (transport, path, image, tag, tag_given) in VALID:
        try:
            ref = parse(text)
        except InvalidReference as e:
            raise AssertionError(f"parse_reference({text!r}) refused a valid reference: {e}") from None
        assert type(ref).__name__ == "ImageReference", (
            f"parse_reference({text!r}) must return an ImageReference, not {type(ref).__name__}"
        )
        got = (ref.transport, ref.path, ref.image, ref.tag, ref.tag_given)
        assert got == (transport, path, image, tag, tag_given), (
            f"parse_reference({text!r}) gave transport, path, image, tag, tag_given = {got}, expected {(transport, path, image, tag, tag_given)}"
        )
    for text, words in INVALID:
        try:
            ref = parse(text)
        except InvalidReference as e:
            assert words in str(e), f"parse_reference({text!r}) raised {str(e)!r}; the message should say {words!r}"
            assert "\n" not in str(e), f"parse_reference({text!r}): an error message is one line"
        except Exception as e:  # noqa: BLE001 - any other exception is the wrong one
            raise AssertionError(f"parse_reference({text!r}) raised {type(e).__name__}: {e}; it must raise InvalidReference") from None
        else:
            raise AssertionError(f"parse_reference({text!r}) accepted it ({ref}); it must raise InvalidReference ({words})")


# -- task 2: choosing a manifest -------------------------------------------------------------------


def _entry(n: int, name: str | None) -> Descriptor:
    return Descriptor(mt.OCI_MANIFEST, "sha256:" + f"{n:x}" * 64, 100 + n,
                      annotations=None if name is None else {mt.ANNOTATION_REF_NAME: name})


#: names of the entries, the reference (IMAGE and TAG, or TAG, or nothing), the index chosen
SELECT = (
    ([None], ImageReference("oci-layout", "/l"), 0),
    (["app:v1"], ImageReference("oci-layout", "/l"), 0),
    ([None], ImageReference("oci-layout", "/l", None, "v9", True), 0),
    (["app:v1", "app:v2"], ImageReference("oci-layout", "/l", "app", "v2", True), 1),
    (["v1", "v2"], ImageReference("oci-layout", "/l", None, "v2", True), 1),
    (["v1", "v2"], ImageReference("oci-layout", "/l", "app", "v2", True), 1),
    (["app:v1", "web:v2"], ImageReference("oci-layout", "/l", None, "v2", True), 1),
    (["latest", "app:latest"], ImageReference("oci-layout", "/l", None, "latest", True), 0),
    (["app:v1", "v1"], ImageReference("oci-layout", "/l", "app", "v1", True), 0),
)

SELECT_ERRORS = (
    ([], ImageReference("oci-layout", "/l"), ImageNotFound, "lists no images"),
    (["app:v1", "app:v2"], ImageReference("oci-layout", "/l"), AmbiguousImage, "multiple images found in index"),
    (["app:v1", "web:v1"], ImageReference("oci-layout", "/l", None, "v1", True), AmbiguousImage, "several images match"),
    (["app:v1"], ImageReference("oci-layout", "/l", None, "v2", True), ImageNotFound, "no image named 'v2'"),
)


def _describe(names, ref) -> str:
    wanted = ref.ref_name if (ref.image or ref.tag_given) else "no name or tag"
    return f"index entries named {names}, reference asking for {wanted}"


def check_select(ctx: LabContext) -> None:
    select = ctx.modules["reference"].select_manifest
    for names, ref, chosen in SELECT:
        entries = [_entry(i, name) for i, name in enumerate(names)]
        try:
            got = select(entries, ref, "/l")
        except Exception as e:  # noqa: BLE001 - any error here is the wrong answer
            raise AssertionError(f"{_describe(names, ref)}: raised {type(e).__name__}: {e}; it should choose {names[chosen]!r}") from None
        assert got is entries[chosen], (
            f"{_describe(names, ref)}: chose {getattr(got, 'ref_name', got)!r}, it should choose {names[chosen]!r}"
        )
    for names, ref, error, words in SELECT_ERRORS:
        entries = [_entry(i, name) for i, name in enumerate(names)]
        try:
            got = select(entries, ref, "/l")
        except error as e:
            assert words in str(e) and str(e).startswith("/l"), f"{_describe(names, ref)}: the message {str(e)!r} should start with the layout (/l) and say {words!r}"
        except Exception as e:  # noqa: BLE001 - the wrong exception
            raise AssertionError(f"{_describe(names, ref)}: raised {type(e).__name__}; it must raise {error.__name__}") from None
        else:
            raise AssertionError(f"{_describe(names, ref)}: chose {getattr(got, 'ref_name', got)!r}; it must raise {error.__name__} ({words})")


# -- task 3: build ---------------------------------------------------------------------------------


def _put(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_base(tmp: Path) -> Path:
    """A one-layer base image in an OCI layout (made with the course's Image value)."""
    src = tmp / "base-src"
    _put(src / "etc/motd", "base\n")
    _put(src / "lib/dep.txt", "from the base\n")
    layer = layer_from_directory(src, tmp / "base-blobs", source_date_epoch=EPOCH)
    image = Image.scratch().append_layer(layer, created_by="base layer", created="2023-11-14T22:13:20Z")
    image = image.with_config(cmd=["sh"], env=["PATH=/bin"], created="2023-11-14T22:13:20Z")
    image.write(f"oci-layout:{tmp / 'base'}")
    return tmp / "base"


def _workdir(ctx: LabContext, home: Path, base: Path) -> str:
    b = ctx.modules["builder"]
    workdir = b.cbt_from(f"oci-layout:{base}", home=home, name="lab")
    _put(workdir.layers_dir / "deps/lib/dep.txt", "from the deps layer\n")
    _put(workdir.layers_dir / "deps/lib/only-deps.txt", "deps\n")
    _put(workdir.layers_dir / "app/hello.txt", "hello from cbt\n")
    _put(workdir.layers_dir / "app/lib/dep.txt", "from the app layer\n")
    b.cbt_config("lab", home=home, command="cbt config lab --cmd 'cat /hello.txt' --env GREETING=hi",
                 cmd="cat /hello.txt", env=["GREETING=hi"])
    return "lab"


def _expect_error(build, error, words: str, *args, **kwargs) -> None:
    try:
        build(*args, **kwargs)
    except error as e:
        assert words in str(e), f"cbt_build raised {str(e)!r}; the message should say {words!r}"
    except Exception as e:  # noqa: BLE001 - the wrong exception
        raise AssertionError(f"cbt_build raised {type(e).__name__}: {e}; expected {error.__name__} ({words})") from None
    else:
        raise AssertionError(f"cbt_build did not refuse: it must raise {error.__name__} ({words})")


def check_build(ctx: LabContext) -> None:
    build = ctx.modules["builder"].cbt_build
    home = ctx.tmp / "home"
    base = make_base(ctx.tmp)
    base_image = Image.load(f"oci-layout:{base}")
    wd = _workdir(ctx, home, base)
    out = ctx.tmp / "out"
    result = build(wd, f"oci-layout:{out}:hello:v1", ["deps", "app"], home=home, source_date_epoch=EPOCH)
    assert hasattr(result, "descriptor") and hasattr(result, "image"), "cbt_build must return a BuildResult (image, descriptor, target, ...)"
    problems = validate_layout(out)
    assert not problems, f"the image cbt_build wrote is not valid: {problems[0]}"
    layout = OCILayout.open(out)
    assert layout.refs() == ["hello:v1"], f"index.json must name the image hello:v1 (the target's IMAGE:TAG), it names {layout.refs()}"
    built = Image.load(f"oci-layout:{out}:hello:v1")
    assert result.descriptor.digest == built.loaded_from.digest, "the returned descriptor is not the manifest written to the target"
    assert len(built.layers) == len(base_image.layers) + 2, (
        f"the image must have the base's {len(base_image.layers)} layer(s) and one per --layers name (2): it has {len(built.layers)}"
    )
    assert built.layers[0].descriptor.digest == base_image.layers[0].descriptor.digest, (
        "the base layer must be copied byte for byte: its digest changed"
    )
    rootfs = ctx.tmp / "rootfs"
    with built.layers[1].open() as a, built.layers[2].open() as b, base_image.layers[0].open() as c:
        apply_layers([c, a, b], rootfs)
    assert (rootfs / "hello.txt").read_text() == "hello from cbt\n", "layers/app/hello.txt is not /hello.txt in the image"
    assert (rootfs / "lib/only-deps.txt").exists(), "layers/deps/lib/only-deps.txt is not in the image"
    assert (rootfs / "lib/dep.txt").read_text() == "from the app layer\n", (
        "lib/dep.txt must come from the app layer: the layers go on in --layers order (deps, then app) over the base"
    )
    cfg = built.config.config
    assert cfg.cmd == ("/bin/sh", "-c", "cat /hello.txt"), f"the image's Cmd must be the one of builder.json (config --cmd), got {cfg.cmd}"
    assert "GREETING=hi" in (cfg.env or ()), "the image's Env must be the one of builder.json (config --env GREETING=hi)"
    history = built.config.history
    layered = [h for h in history if not h.empty_layer]
    assert len(layered) == len(built.layers), (
        f"the history must have one non-empty entry per layer ({len(built.layers)}), it has {len(layered)}"
    )

    again = build(wd, f"oci-layout:{ctx.tmp / 'again'}:hello:v1", ["deps", "app"], home=home, source_date_epoch=EPOCH)
    assert again.descriptor.digest == result.descriptor.digest, "two builds with the same SOURCE_DATE_EPOCH gave two manifest digests"
    archived = build(wd, f"oci-archive:{ctx.tmp / 'hello.tar'}:hello:v1", ["app"], home=home, source_date_epoch=EPOCH)
    assert (ctx.tmp / "hello.tar").is_file(), "an oci-archive: target must be written as a tar file"
    assert Image.load(f"oci-archive:{ctx.tmp / 'hello.tar'}:hello:v1").loaded_from.digest == archived.descriptor.digest, (
        "the oci-archive does not hold the image cbt_build returned"
    )

    _expect_error(build, BuildError, "layers must be specified", wd, f"oci-layout:{out}", [], home=home)
    _expect_error(build, BuildError, "not found", wd, f"oci-layout:{out}", ["nope"], home=home)
    # the base is replaced under the same name: build must notice, not build on another image
    Image.load(f"oci-layout:{base}").with_config(cmd=["other"]).write(f"oci-layout:{base}:latest")
    _expect_error(build, BuildError, "changed since", wd, f"oci-layout:{ctx.tmp / 'third'}", ["app"], home=home)
    assert not (ctx.tmp / "third").exists() or not OCILayout.open(ctx.tmp / "third").refs(), "a refused build wrote an image"


LAB = Lab(
    package="part3_go_style_builder",
    title="Part 3, cbt: references and build",
    intro="""
Two hours. You write the parts of cbt that decide *which* image a command means and *what*
`build` writes: the reference parser (`oci-layout:DIR:IMAGE:TAG`), the choice of a manifest in
a layout by its ref name, and `build` itself. First run the chapter's workflow
(`python -m part3_go_style_builder demo --workspace /tmp/cbt-demo`) and then the blog's workflow
by hand (the section "The blog's workflow, by hand"): your `build` must do what the course's does.
Everything else (`from`, `config`, the `Image` value, part 4's layer packing) is the course's.
""",
    modules=("reference.py", "builder.py"),
    tasks=(
        Task(1, "parse an image reference", ("reference.py:parse_reference",),
             """`parse_reference(text)` splits `TRANSPORT:REST` on the first `:`; `oci:` means
`oci-layout:`; the rest is `PATH`, `PATH:TAG` or `PATH:IMAGE:TAG` (the default tag is `latest`).
It returns an `ImageReference` (with `tag_given` telling `latest` given from `latest` assumed), and
refuses anything else with one line of `InvalidReference` that quotes the reference.""",
             ("Concepts", "Commands"),
             ("The module docstring of reference.py has the table of forms.",
              "`_TAG` and `_IMAGE` are the regular expressions of a tag and an image name; `TRANSPORTS` and `_ALIASES` the transports.",
              "After parsing, `ref.workdir_name` must not be empty, `.` or `..` (`oci-layout:/` names no folder)."),
             "eight valid references (every field, `tag_given` included) and ten invalid ones (the exception and the words of its message).",
             check_parse),
        Task(2, "choose the image a reference names", ("reference.py:select_manifest",),
             """`select_manifest(manifests, ref, where)` returns the index.json entry that `ref` names.
No name and no tag: the index must hold exactly one image (else `AmbiguousImage`: "multiple images
found in index (...), specify image name"). `IMAGE:TAG`: the entry named `IMAGE:TAG`, else the one
named bare `TAG` (skopeo writes bare tags). A bare `TAG`: the entry named `TAG`, else the one entry
named `*:TAG`. A single unnamed image is taken for any tag, as cbt does. Nothing found:
`ImageNotFound`; messages start with `where`.""",
             ("Concepts",),
             ("An entry's name is `entry.ref_name` (the org.opencontainers.image.ref.name annotation), None when it has none.",
              "`ref.ref_name` is `IMAGE:TAG` or the bare `TAG`; `ref.tag_given` tells whether a tag was written.",
              "`_names(manifests)` formats the names for a message."),
             "nine choices between entries named like cbt, skopeo and umoci name them, and four refusals (exception and message).",
             check_select),
        Task(3, "build: base layers, layer folders, config", ("builder.py:cbt_build",),
             """`cbt_build(workdir_id, target, layers, home=..., compression=..., source_date_epoch=...)`
reopens the base image of the working folder (`builder.json`'s fromImage), packs each
`layers/<name>` in the order given as a new layer (part 4, through `layer_from_directory`), applies
the config kept in builder.json, and writes the result to `target`; it returns a `BuildResult`. It
refuses an empty `layers` ("layers must be specified"), a missing layer folder, and a base image
that changed since `from` (builder.json's `baseManifest`).""",
             ("Concepts", "The blog's workflow, by hand", "Commands"),
             ("`Workdir.open(id, home)`, `.state()`, and `_layer_dir(workdir, name)` are there for you.",
              "`Image.load(ref, manifest_digest=...)` finds the base `from` chose even when its layout has grown.",
              "`image.append_layer(layer, created_by=..., created=...)` and `image.with_config(...)` return new images; `image.write(target)` stores one.",
              "Pack into a temporary folder inside the working folder (`tempfile.TemporaryDirectory(dir=workdir.path)`).",
              "`rfc3339(source_date_epoch)` is the `created` time of a reproducible build."),
             "a build of two layer folders over a base: validate_layout, the ref name, the base layer's digest, the files of the layers "
             "applied in order, Cmd and Env, one history entry per layer; the same digest twice with SOURCE_DATE_EPOCH; an oci-archive "
             "target; and the three refusals.",
             check_build),
    ),
    timeout=180,
)
