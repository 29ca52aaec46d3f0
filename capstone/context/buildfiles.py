"""The build's own files in the context: the Dockerfile and the .dockerignore, read inside it.

A context is hostile, and so are the names in it: a pull request can make ``Dockerfile`` or
``.dockerignore`` a symbolic link to ``/proc/self/environ`` or ``/etc/shadow`` (a parse error
then prints the host file's first line), or a FIFO (the build waits for ever). So a file that
lies in the context directory is resolved inside it by part 4's ``RootDir``, its links
followed as if the context were ``/``, as BuildKit reads the Dockerfile from its own copy of
the directory; one whose link leads out of the context is an error naming it, never skipped
(a ``.dockerignore`` silently missing would send what it excludes). It is read only when it is
a regular file, and bounded. A path outside the context (``-f ../ci/Dockerfile``) is the caller's own and read as given,
with the same checks.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import ContextError

__all__ = ["MAX_BUILD_FILE", "read_build_file"]

#: the most read of a Dockerfile or a .dockerignore (far above any real one)
MAX_BUILD_FILE = 16 << 20


def read_build_file(path: str | os.PathLike, context_dir: str | os.PathLike) -> bytes | None:
    """The bytes of the file ``path`` (None when there is none); resolved inside
    ``context_dir`` when it is in it. ContextError names the file when it is a link out of
    the context, not a regular file, or larger than :data:`MAX_BUILD_FILE`."""
    from part4_tar import RootDir, UnsafePathError

    path, context = Path(os.path.abspath(path)), Path(os.path.abspath(context_dir))
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        if path.is_relative_to(context):
            try:
                with RootDir(context) as rd:
                    fd = rd.open(str(path.relative_to(context)), flags)
            except (FileNotFoundError, NotADirectoryError):
                if not os.path.lexists(path):
                    return None
                raise ContextError(f"{path}: a symbolic link that leads out of the build context {context}") from None
            except UnsafePathError as e:
                raise ContextError(f"{path}: {e.reason}") from None
        else:
            try:  # the caller's own path: its links are the caller's
                fd = os.open(path, flags)
            except (FileNotFoundError, NotADirectoryError):
                return None
    except OSError as e:
        raise ContextError(f"{path}: cannot read: {e.strerror}") from None
    return _read_regular(fd, path)


def _read_regular(fd: int, path: Path) -> bytes:
    """All of ``fd`` (taken over) when it is a regular file of at most MAX_BUILD_FILE bytes.
    (Part 6's read_image_file does the same for image files; a build without RUN must not
    load the runtime to read its Dockerfile.)"""
    with open(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ContextError(f"{path}: not a regular file")
        data = f.read(MAX_BUILD_FILE + 1)
    if max(st.st_size, len(data)) > MAX_BUILD_FILE:
        raise ContextError(f"{path}: larger than the {MAX_BUILD_FILE} bytes read from a Dockerfile or .dockerignore")
    return data
