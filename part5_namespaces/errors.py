"""Errors of part 5.

``NamespaceError`` (a ``part1_overview.CourseError``, the root of every part's errors, and an
``OSError``: it keeps the errno of the call that failed) is raised when a
child could not be put into its namespaces: the step that failed is named in the message
(``spawn: unshare(NEWUSER|NEWPID): Operation not permitted``). ``IdMapError`` is raised when
the uid/gid maps cannot be written or computed.
"""

from __future__ import annotations

from part1_overview import CourseError


class NamespaceError(CourseError, OSError):
    """A namespace could not be created, joined or set up; the message names the step."""


class IdMapError(NamespaceError):
    """uid_map / gid_map could not be written, or /etc/subuid has no range for the user."""
