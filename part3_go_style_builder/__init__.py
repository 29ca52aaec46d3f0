"""Part 3: cbt in Python: from / config / build, no RUN yet.

The blog's second step automates the image made by hand in part 2. ``from REF`` opens a base
image (``oci-layout:DIR[[:IMAGE]:TAG]`` or ``oci-archive:FILE[[:IMAGE]:TAG]``) and makes a
working folder; each folder under its ``layers/`` becomes a layer (packed by part 4);
``config`` edits what the image runs; ``build`` writes base layers, new layers and config as a
new image; ``run`` is planned here (``cbt_run_plan``) and run by the cbt command, which adds the
container of parts 5-7 (``cbt_main(runner=...)``). Underneath is an immutable ``Image`` value: ``append_layer`` and ``with_config``
return new images, ``write`` stores one, reusing and verifying the base blobs.
"""

from typing import TYPE_CHECKING

from part1_overview import lazy_exports

from .errors import AmbiguousImage, BuildError, CbtError, ImageNotFound, InvalidReference, WorkdirError
from .image import ArchiveBlob, FileBlob, Image, Layer, layer_from_directory, utc_now, write_layer_blob
from .reference import ImageReference, parse_reference, select_manifest

if TYPE_CHECKING:
    from .builder import BuilderState, RunPlan, Workdir, cbt_build, cbt_config, cbt_from, cbt_home, cbt_run_plan, materialize_root
    from .cli import main as cbt_main

#: the cbt working folders and command line (shlex, argparse, subprocess, part 1's lab
#: machinery) are imported when one of their names is first used (PEP 562): the capstone's
#: builds use the Image value only
_LAZY = {
    **{name: "builder" for name in ("BuilderState", "RunPlan", "Workdir", "cbt_build", "cbt_config",
                                    "cbt_from", "cbt_home", "cbt_run_plan", "materialize_root")},
    "cbt_main": "cli:main",
}

__getattr__ = lazy_exports(__name__, globals(), _LAZY)


__all__ = [
    "AmbiguousImage",
    "ArchiveBlob",
    "BuildError",
    "BuilderState",
    "CbtError",
    "FileBlob",
    "Image",
    "ImageNotFound",
    "ImageReference",
    "InvalidReference",
    "Layer",
    "RunPlan",
    "WorkdirError",
    "Workdir",
    "cbt_build",
    "cbt_config",
    "cbt_from",
    "cbt_home",
    "cbt_main",
    "cbt_run_plan",
    "layer_from_directory",
    "materialize_root",
    "parse_reference",
    "select_manifest",
    "utc_now",
    "write_layer_blob",
]
