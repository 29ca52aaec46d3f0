"""The root of every error the course raises on purpose.

::

    CourseError                       a refusal the user can act on: one line, no traceback
    ├── part1_overview.LabError       a lab that cannot be started or checked
    ├── part2_manual_oci.LayoutError  (and DigestError) an OCI layout, a document, a digest
    ├── part3_go_style_builder.CbtError
    ├── part4_tar.LayerError
    ├── part5_namespaces.NamespaceError   (also an OSError: the errno is kept)
    ├── part6_runtime.ContainerError
    ├── part7_union.UnionError
    └── capstone.errors.CapstoneError

Each part's base error derives from it, so a caller that turns errors into messages catches
``CourseError`` (and ``OSError``, which names its file): anything else that escapes is a bug,
and its traceback is the useful report.
"""

from __future__ import annotations


class CourseError(Exception):
    """Base of every part's base error: something the course refuses to do, for a reason the
    message gives in one line (not a bug)."""


__all__ = ["CourseError"]
