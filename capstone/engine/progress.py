"""What a build says while it runs: buildah-like step lines, and ``--explain``.

``plain`` / ``auto``::

    [1/3] STEP 2/12: ARG VERSION=1.0          (the stage prefix only when there are stages)
    STEP 3/9: COPY . .
    --> Using cache 3f2a4b5c6d7e
    --> 9a8b7c6d5e4f
    COMMIT bench-hello

``quiet``: nothing (the command line prints the image id at the end in every mode).

``--explain`` adds, after each step, which part of the course did the work and what came out
of it: the layer's digest, diff_id and size, the files read, whether the cache answered.
Lines go to a callable (the command line passes one that writes to stderr): library code never
prints.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import BuildError

#: which part of the course does each kind of step
PARTS = {
    "FROM": "part 3 (Image.load / scratch) over the store, an OCI layout (part 2)",
    "COPY": "capstone.context (.dockerignore) + part 4 (LayerWriter: tar, gzip, digest and diff_id in one pass)",
    "ADD": "the context, a download or a git checkout + part 4 (local tar archives unpacked by extract_layer; LayerWriter)",
    "RUN": "part 7 (overlay over the layer snapshots) + part 6 (the container) + part 7 (upper dir -> layer)",
    "WORKDIR": "part 4 (a layer with the new directories) + part 3 (with_config)",
    "CONFIG": "part 3 (Image.with_config: a config change and an empty_layer history entry)",
    "ARG": "capstone.dockerfile (BuildVariables: scope only, nothing in the image)",
}


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


class Progress:
    """Formats the build's lines and hands them to ``log`` (None or quiet: silent)."""

    def __init__(self, mode: str = "auto", log: Callable[[str], None] | None = None,
                 explain: bool = False, stages: int = 1) -> None:
        if mode not in ("auto", "plain", "quiet", "tty"):
            raise BuildError(f"--progress={mode}: expected auto, plain or quiet")
        self.quiet = mode == "quiet" or log is None
        self.log = log
        self.explain_on = explain and log is not None
        self.stages = stages
        #: stages run at the same time (capstone.engine.schedule): every line names its stage
        self.parallel = False
        #: the position of the stage this process builds now (1-based)
        self.stage_pos = 0

    def _prefixed(self, text: str) -> str:
        if self.parallel and self.stage_pos:
            return f"[{self.stage_pos}/{self.stages}] {text}"
        return text

    def _say(self, text: str) -> None:
        if not self.quiet:
            self.log(self._prefixed(text))

    def step(self, stage_pos: int, number: int, total: int, text: str) -> None:
        prefix = f"[{stage_pos}/{self.stages}] " if self.stages > 1 else ""
        first = text.splitlines()[0] if text else text
        if not self.quiet:
            self.log(f"{prefix}STEP {number}/{total}: {first}")

    def cached(self, image_id: str) -> None:
        self._say(f"--> Using cache {image_id.removeprefix('sha256:')[:12]}")

    def produced(self, image_id: str) -> None:
        self._say(f"--> {image_id.removeprefix('sha256:')[:12]}")

    def commit(self, names) -> None:
        self._say(f"COMMIT {' '.join(names)}" if names else "COMMIT")

    def message(self, text: str) -> None:
        self._say(text)

    def warning(self, text: str) -> None:
        if self.log is not None:  # warnings are shown even when quiet
            self.log(self._prefixed(text))

    def explain(self, kind: str, *, hit: bool | None, layer=None, detail: str = "") -> None:
        if not self.explain_on:
            return
        part = PARTS.get(kind, PARTS["CONFIG"])
        self.log(self._prefixed(f"    explain: done by {part}"))
        if detail:
            self.log(self._prefixed(f"    explain: {detail}"))
        if layer is not None:
            self.log(self._prefixed(f"    explain: layer {layer.descriptor.digest} ({human_size(layer.descriptor.size)} "
                                    f"{layer.descriptor.media_type.rsplit('+', 1)[-1]}), diff_id {layer.diff_id}"))
        elif kind not in ("FROM", "ARG"):
            self.log(self._prefixed("    explain: no layer (config and history only)"))
        if hit is not None:
            self.log(self._prefixed(f"    explain: cache {'hit: the step did not run' if hit else 'miss: the step ran'}"))


__all__ = ["PARTS", "Progress", "human_size"]
