"""The map of the course: its parts, what each teaches, and how they build on each other.

``PARTS`` is the one place where the import rules of the course are written down: a part may
import only the packages named in its ``uses`` (the capstone may import any part). A test reads
every part's source and checks that it keeps to this map.
"""

from __future__ import annotations

from .models import asdict, model


@model(frozen=True)
class Part:
    """One chapter: the package, the blog post it mirrors, the idea, the command to run.

    ``command`` runs today (a test hands it to the chapter's own argument parser);
    ``later`` names what the chapter will add and cannot run yet.
    """

    number: str  # "1".."7", or "capstone"
    package: str
    title: str
    concept: str
    command: str
    uses: tuple[str, ...]  # packages this one may import; ("*",) means any part
    later: str = ""

    def to_json(self) -> dict:
        return asdict(self)


PARTS: tuple[Part, ...] = (
    Part(
        "1",
        "part1_overview",
        "The tour",
        "what an image is (a tar archive plus JSON), the build pipeline, what this host can do",
        "python -m part1_overview",
        (),
    ),
    Part(
        "2",
        "part2_manual_oci",
        "An OCI image by hand",
        "digests, descriptors, config / manifest / index, the OCI image layout",
        "python -m part2_manual_oci --out /tmp/busybox-oci",
        ("part1_overview",),
    ),
    Part(
        "3",
        "part3_go_style_builder",
        "cbt: from / config / build",
        "image references, an immutable Image value, a working folder; no RUN yet",
        "python -m part3_go_style_builder",
        ("part1_overview", "part2_manual_oci", "part4_tar"),
    ),
    Part(
        "4",
        "part4_tar",
        "Layers as tar streams",
        "directory -> layer and back, deterministic and streaming; diff_id vs digest; whiteouts",
        "python -m part4_tar",
        ("part1_overview", "part2_manual_oci"),
    ),
    Part(
        "5",
        "part5_namespaces",
        "Linux namespaces",
        "unshare / setns / clone flags, uid and gid maps, one demo per namespace",
        "python -m part5_namespaces",
        ("part1_overview",),
    ),
    Part(
        "6",
        "part6_runtime",
        "A mini container runtime",
        "pivot_root, /proc and /dev, capabilities, no_new_privs, cgroup limits, exit codes",
        "python -m part6_runtime",
        ("part1_overview", "part4_tar", "part5_namespaces"),
    ),
    Part(
        "7",
        "part7_union",
        "Union mounts",
        "overlayfs lower / upper / work, a copy fallback, upper dir -> layer with whiteouts",
        "python -m part7_union",
        ("part1_overview", "part2_manual_oci", "part4_tar", "part5_namespaces"),
    ),
    Part(
        "capstone",
        "capstone",
        "A Dockerfile builder",
        "parse, plan, cache, RUN in an overlay, write and push the image",
        "python -m capstone build -t hello examples/hello",
        ("*",),
    ),
)


@model(frozen=True)
class Stage:
    """One stage of the way from a Dockerfile to an image, and the parts that do it."""

    what: str
    how: str
    parts: tuple[str, ...]

    def to_json(self) -> dict:
        return asdict(self)


PIPELINE: tuple[Stage, ...] = (
    Stage("Dockerfile", "parse instructions, expand ARG / ENV, plan the stages", ("capstone",)),
    Stage("FROM", "open the base image: its manifest, config and layer blobs", ("part3", "part2")),
    Stage("COPY / ADD", "stage files from the context, pack them as a tar layer", ("part4", "part3")),
    Stage(
        "RUN",
        "overlay the layers, run the command in namespaces, pack the upper dir as a layer",
        ("part7", "part6", "part5", "part4"),
    ),
    Stage("ENV / CMD / ...", "change the image config, add a history entry", ("part3",)),
    Stage("image", "write blobs, config, manifest and index.json: an OCI image layout", ("part2", "part3")),
)


def part_by_package(package: str) -> Part:
    """The course entry of a package (KeyError for a package outside the course)."""
    for part in PARTS:
        if part.package == package:
            return part
    raise KeyError(f"{package!r} is not a part of the course")
