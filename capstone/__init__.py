"""The capstone: a daemonless Dockerfile builder made of the course's parts.

A Dockerfile is read exactly as BuildKit reads it (``capstone.dockerfile``: directives,
continuations, heredocs, JSON and shell forms, per-instruction flags, the stage graph), its
variables are expanded by BuildKit's shell-word rules, the build context is filtered by
``.dockerignore``, and each instruction becomes a step: FROM loads an image (part 3), COPY/ADD
turn staged files into layers (part 4), RUN runs in a container (parts 5-7) over an overlay
of the previous layers, metadata instructions change the config. Results land in a local store
that is itself an OCI image layout.

``python -m capstone parse FILE`` shows how a Dockerfile is understood; ``--dump`` prints
BuildKit's own parser dump format.
"""

from .errors import (
    BuildArgError,
    CapstoneError,
    ContextError,
    DockerfileError,
    ExpansionError,
    IgnoreFileError,
    ParseError,
    StageError,
)

__all__ = [
    "BuildArgError",
    "CapstoneError",
    "ContextError",
    "DockerfileError",
    "ExpansionError",
    "IgnoreFileError",
    "ParseError",
    "StageError",
]
