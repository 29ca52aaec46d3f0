"""Paths inside a root filesystem, resolved the way the container will see them.

An image's ``/etc/resolv.conf`` may be a symlink to ``/run/systemd/resolve/stub-resolv.conf``:
read from the host, that absolute target would point at the *host's* file. Every path the
runtime touches in a rootfs goes through :func:`resolve_in_root`, which follows symlinks with
the rootfs as ``/`` and never lets ``..`` climb out of it.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import SpecError

_MAX_SYMLINKS = 40  # as the kernel's path walk (ELOOP after 40)


def resolve_in_root(root: str | os.PathLike, path: str) -> Path:
    """The host path of ``path`` as seen inside ``root``; the last components may not exist."""
    root = Path(root)
    todo = [p for p in path.split("/") if p]
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        here = root.joinpath(*done, part)
        try:
            is_link = here.is_symlink()
        except OSError:
            is_link = False
        if not is_link:
            done.append(part)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise SpecError(f"{path}: too many levels of symbolic links in {root}")
        target = os.readlink(here)
        if target.startswith("/"):
            done = []
        todo = [p for p in target.split("/") if p] + todo
    return root.joinpath(*done)


def inside_path(root: str | os.PathLike, host_path: str | os.PathLike) -> str:
    """``host_path`` (under ``root``) as the container names it: ``/etc/hosts``."""
    rel = os.path.relpath(host_path, root)
    return "/" if rel == "." else "/" + rel
