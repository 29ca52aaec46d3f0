"""A layer blob -> an overlay lower directory (whiteouts in overlay's own format).

Overlayfs stacks layer directories only if each says "deleted" the way overlayfs does: a 0/0
character device for a deleted name, ``overlay.opaque=y`` on a directory that hides what is
below. So a layer is extracted with its ``.wh.`` files kept as they are (part 4,
``whiteouts=False``) and then each marker is translated in place:

* ``dir/.wh.NAME``       -> ``dir/NAME``, a character device 0/0;
* ``dir/.wh..wh..opq``   -> xattr ``trusted.overlay.opaque=y`` on ``dir`` (``user.overlay.opaque``
  for an overlay that will be mounted with ``userxattr``).

Each layer is extracted once into its own directory; those directories are then reused as
lowers by every overlay (and by the copy snapshotter) that needs them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from part4_tar import extract_layer, fd_path

from .errors import ChangesError
from .whiteouts import OPAQUE_MARKER, WHITEOUT_PREFIX, opaque_xattr


def extract_lower(blob: BinaryIO | str | os.PathLike, dest: str | os.PathLike, *, userxattr: bool | None = None) -> Path:
    """Extract the layer ``blob`` (a stream or a file path) into ``dest`` as an overlay lower
    (``userxattr``: opaque marks for an overlay mounted with it; None decides for this process)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if isinstance(blob, (str, os.PathLike)):
        with open(blob, "rb") as f:
            extract_layer(f, dest, whiteouts=False)
    else:
        extract_layer(blob, dest, whiteouts=False)
    convert_whiteouts(dest, userxattr=userxattr)
    return dest


def convert_whiteouts(root: str | os.PathLike, *, userxattr: bool | None = None) -> int:
    """Turn the OCI whiteout files under ``root`` into overlay whiteouts; how many there were.

    Walked with ``os.fwalk``, every change made through the descriptor of the directory it is
    in (``unlinkat``, ``mknodat``, the xattr through ``/proc/self/fd``): a symlink in the tree
    is never followed, so a hostile layer's links cannot aim a conversion outside ``root``.
    """
    count = 0
    xattr = opaque_xattr(userxattr)
    for dirpath, _dirnames, filenames, dir_fd in os.fwalk(root):
        for name in filenames:
            if not name.startswith(WHITEOUT_PREFIX):
                continue
            if not stat.S_ISREG(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                continue
            os.unlink(name, dir_fd=dir_fd)
            count += 1
            if name == OPAQUE_MARKER:
                os.setxattr(fd_path(dir_fd), xattr, b"y")
                continue
            target = name[len(WHITEOUT_PREFIX):]
            try:
                os.stat(target, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                pass
            else:
                raise ChangesError(f"layer has both {os.path.join(dirpath, name)} and {os.path.join(dirpath, target)}")
            os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=dir_fd)
    return count
