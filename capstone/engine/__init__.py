"""The executor: a Dockerfile, step by step, into images in the local store.

A build is a chain of part 3 image values. The plan (``plan``) says which stages run; each
FROM loads a base image (the store, another stage, an ``oci-layout:``/``oci-archive:``
reference, a registry, or scratch); each step makes the next image:

* COPY/ADD (``copystep``, ``sources``): files chosen from the build context (``.dockerignore``
  applied) or from another stage, streamed into a part 4 layer written straight into the
  store (``layers``);
* RUN (``runstep``): a container (part 6) over an overlay (part 7) of the layer snapshots;
  the upper dir becomes the layer, and is kept as that layer's snapshot;
* ENV, LABEL, CMD, ... (``metadata``): part 3 ``with_config`` and a history entry;
* every step has a cache key (``cachekeys``, ``contenthash``); a hit reuses the recorded image.

The result is committed to the store with its tags, then exported (``outputs``). Progress and
``--explain`` lines (``progress``) go to a callable: library code never prints.
"""

from typing import TYPE_CHECKING

from part1_overview import lazy_exports

from .errors import BuildError, StepError
from .executor import BuildResult, StepResult, build

if TYPE_CHECKING:
    from .outputs import OutputSpec, parse_output

#: ``OutputSpec`` and ``parse_output`` load ``outputs`` when first used (PEP 562): a build
#: without ``--output`` never needs it
__getattr__ = lazy_exports(__name__, globals(), {"OutputSpec": "outputs", "parse_output": "outputs"})


__all__ = ["BuildError", "BuildResult", "OutputSpec", "StepError", "StepResult", "build", "parse_output"]
