"""Part 7: union mounts.

A container's root filesystem is a stack: the image's layers, read-only, and one writable
layer on top. Overlayfs does the stacking in the kernel: reads fall through to the topmost
layer that has a name, the first write to a lower file copies it up into the upper directory,
a deletion leaves a *whiteout* (a 0/0 character device) and a directory replaced wholesale is
marked *opaque* (an ``overlay.opaque`` xattr). After a RUN step the upper directory is exactly
the change the step made, and turning it into an OCI layer is a translation: whiteout devices
become ``.wh.NAME`` files, opaque marks become ``.wh..wh..opq``, overlay's own bookkeeping is
left out.

This part mounts overlays (any number of layers, in the caller's mount namespace, ``userxattr``
inside a user namespace), offers a copy-based snapshotter with the same interface for hosts
without overlayfs (it diffs two plain trees instead of reading an upper dir), and writes the
changes as a layer with part 4.
"""

from .changes import Change, ChangeKind, diff_dirs, upper_changes, write_change_list, write_changes, write_dir_diff
from .errors import ChangesError, OverlayError, SnapshotError, UnionError
from .lower import extract_lower
from .overlay import OverlayMount, mount_overlay, overlay_supported, unmount
from .snapshot import CopySnapshot, CopySnapshotter, OverlaySnapshot, OverlaySnapshotter, snapshotter
from .tree import LayerStack, copy_tree, describe_tree

__all__ = [
    "Change",
    "ChangeKind",
    "ChangesError",
    "CopySnapshot",
    "CopySnapshotter",
    "LayerStack",
    "OverlayError",
    "OverlayMount",
    "OverlaySnapshot",
    "OverlaySnapshotter",
    "SnapshotError",
    "UnionError",
    "copy_tree",
    "describe_tree",
    "diff_dirs",
    "extract_lower",
    "mount_overlay",
    "overlay_supported",
    "snapshotter",
    "unmount",
    "upper_changes",
    "write_change_list",
    "write_changes",
    "write_dir_diff",
]
