"""The ``cbt`` command: the blog's tool, finished with RUN, where the course's layering allows it.

``cbt run WORKDIR -l root -u deps -- CMD`` (the blog's example: ``cbt run $CONTAINER -l root -u
deps -- /bin/sh -c "echo hello world"``) needs a container: namespaces (part 5), a runtime
(part 6) and a union mount (part 7). Part 3, where cbt lives, may import parts 1, 2 and 4 only
(docs/architecture.md §1: a chapter builds on earlier ones, never on later ones), and part 7 may not
import parts 3 and 6. The capstone may import every part, so the command is assembled here,
from public pieces and nothing else:

- part 3 parses every command, keeps the working folder and plans the run
  (``cbt_run_plan``: the layer folders, ``layers/root`` made from the base image the first time,
  the image's Env, WorkingDir and User);
- the runner given to part 3's ``cbt_main`` mounts an overlay (part 7) of the lower layer
  folders with ``layers/<upper>`` as its upper directory, and runs the command in it with the
  part 6 runtime: ``capstone.runner.Container``, the same piece that runs the capstone's RUN
  steps and ``capstone run``;
- the packer given for ``build`` turns a layer folder into a layer with part 7's translation:
  in a folder ``run`` wrote into, a deleted file is overlayfs's 0/0 device and a replaced
  directory has ``overlay.opaque``; in the layer they must be ``.wh.NAME`` and ``.wh..wh..opq``.
  A plain folder packs to the same bytes as part 4 packs it.

Installed as the ``cbt`` console script (pyproject.toml); also ``python -m capstone.cbt``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from part1_overview import run_cli
from part3_go_style_builder import CbtError, Layer, RunPlan, cbt_main, write_layer_blob
from part7_union import write_changes

from ..runner import Container, ContainerRunError


def run_plan(plan: RunPlan, *, network: str = "private") -> int:
    """Run ``plan`` (from part 3's ``cbt_run_plan``) in a container over its layer folders; the
    command's exit code (128+N after signal N). The changes land in ``plan.upper``."""
    scratch = plan.workdir.path / f".run-{plan.upper.name}"
    try:
        with Container(plan.lowers, scratch, upper=plan.upper) as container:
            return container.run(list(plan.argv), env=plan.env, cwd=plan.cwd, user=plan.user, network=network)
    except ContainerRunError as e:
        raise CbtError(f"run: {e}") from None


def pack_layer(src_dir: str | os.PathLike, out_dir: str | os.PathLike, *, compression: str = "gzip",
               source_date_epoch: int | None = None) -> Layer:
    """A layer folder as a layer blob in ``out_dir``, overlay whiteouts translated (part 7)."""
    return write_layer_blob(out_dir, lambda f: write_changes(src_dir, f, compression, source_date_epoch=source_date_epoch))


def main(argv: Sequence[str] | None = None) -> int:
    """cbt: from, config, build, run, rm, version (part 3's command line, with RUN)."""
    return cbt_main(None if argv is None else list(argv), runner=run_plan, packer=pack_layer)


def cli() -> None:
    """The ``cbt`` console script."""
    sys.exit(run_cli(main))

