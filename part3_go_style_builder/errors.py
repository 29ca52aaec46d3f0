"""Errors of part 3.

Exception tree (under ``part1_overview.CourseError``, the root of every part's errors)::

    CbtError                    anything cbt refuses to do; the message is one line
    ├── InvalidReference        an image reference that does not parse (``oci-layout:DIR:...``)
    ├── ImageNotFound           no image in a layout / archive matches the reference
    ├── AmbiguousImage          several images match and none is named
    ├── WorkdirError            a working folder that is missing, exists already, or is broken
    └── BuildError              ``build`` cannot make the image (layer folder missing, base changed)

Errors of the parts below (``part2_manual_oci.LayoutError``, ``part4_tar.LayerError``) pass
through unchanged: they already name the blob or the path.
"""

from __future__ import annotations

from part1_overview import CourseError


class CbtError(CourseError):
    """Base error of part 3: cbt cannot do what was asked."""


class InvalidReference(CbtError):
    """A reference that is not ``oci-archive:FILE[:TAG]`` or ``oci-layout:DIR[[:IMAGE]:TAG]``."""


class ImageNotFound(CbtError):
    """No image of the layout or archive matches the reference."""


class AmbiguousImage(CbtError):
    """Several images match the reference and it does not say which one."""


class WorkdirError(CbtError):
    """A working folder under ``$CBT_HOME`` is missing, already exists, or is broken."""


class BuildError(CbtError):
    """``build`` cannot make the image."""
