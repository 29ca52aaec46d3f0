"""The build's own files in the context: the Dockerfile and the .dockerignore, read inside it.

A context is hostile, and so are the names in it: a pull request can make ``Dockerfile`` or
``.dockerignore`` a symbolic link to ``/proc/self/environ`` or ``/etc/shadow`` (a parse error
then prints the host file's first line), or a FIFO (the build waits for ever). So a file that
lies in the context directory is resolved inside it by part 4's ``RootDir``, its links
followed as if the context were ``/``, as BuildKit reads the Dockerfile from its own copy of
the directory; one whose link leads out of the context is an error naming it, never skipped
(a ``.dockerignore`` silently missing would send what it excludes). It is read only when it is
a regular file, and bounded (part 6's ``read_image_file``, the one reader of untrusted files).
A path outside the context (``-f ../ci/Dockerfile``) is the caller's own and read as given,
with the same checks.
"""

from __future__ import annotations

import os
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
    from part6_runtime import read_image_file

    path, context = Path(os.path.abspath(path)), Path(os.path.abspath(context_dir))
    try:
        if path.is_relative_to(context):
            flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY
            try:
                with RootDir(context) as rd:
                    fd = rd.open(str(path.relative_to(context)), flags)
            except (FileNotFoundError, NotADirectoryError):
                if not os.path.lexists(path):
                    return None
                raise ContextError(f"{path}: a symbolic link that leads out of the build context {context}") from None
            except UnsafePathError as e:
                raise ContextError(f"{path}: {e.reason}") from None
            return read_image_file(fd, str(path), MAX_BUILD_FILE)
        try:  # the caller's own path: its links are the caller's
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return read_image_file(fd, str(path), MAX_BUILD_FILE)
    except ValueError as e:  # part 6's SpecError: not a regular file, too large
        raise ContextError(str(e)) from None
    except OSError as e:
        raise ContextError(f"{path}: cannot read: {e.strerror}") from None
