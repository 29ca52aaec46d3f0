"""The errors of part 4.

::

    LayerError                  a layer could not be written, read or applied
    └── UnsafeArchiveError      an entry would create, change or follow something outside the root

Messages are one line and name the entry or path: ``layer entry '../etc/passwd': '..' escapes
the root``.
"""


class LayerError(Exception):
    """A layer could not be written, read or applied."""


class UnsafeArchiveError(LayerError):
    """An archive entry tried to reach outside the extraction root."""
