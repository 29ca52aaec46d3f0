"""The two ways a layer says "this is gone", and how overlayfs writes them.

In an OCI layer (image-spec, layer.md, "Whiteouts"):

* a file ``dir/.wh.NAME`` means ``dir/NAME`` is deleted from the layers below;
* a file ``dir/.wh..wh..opq`` means ``dir`` is opaque: every child it had below is hidden, only
  the children in this layer (and the layers above) remain.

In an overlayfs upper (or lower) directory (kernel docs, filesystems/overlayfs.rst):

* a *whiteout* is a character device with device number 0/0 named ``NAME``;
* an *opaque directory* carries the xattr ``trusted.overlay.opaque`` = ``y`` (or
  ``user.overlay.opaque`` = ``y`` when the overlay is mounted with ``userxattr``, as it must be
  inside a user namespace, where trusted.* xattrs cannot be written).

Overlayfs also keeps its own bookkeeping in ``trusted.overlay.*`` (or ``user.overlay.*``)
xattrs: ``origin``, ``impure``, ``redirect``, ``metacopy``, ``uuid``... None of them belongs in
a layer, so every xattr under those prefixes is left out of layers and comparisons.
"""

from __future__ import annotations

import errno
import os
import stat

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"

TRUSTED_PREFIX = "trusted.overlay."
USER_PREFIX = "user.overlay."
OVERLAY_XATTR_PREFIXES = (TRUSTED_PREFIX, USER_PREFIX)


def opaque_xattr(userxattr: bool | None = False) -> str:
    """The xattr that marks an opaque directory for an overlay mounted with/without userxattr
    (None: as :func:`use_userxattr` decides for this process)."""
    return (USER_PREFIX if use_userxattr(userxattr) else TRUSTED_PREFIX) + "opaque"


def use_userxattr(userxattr: bool | None = None) -> bool:
    """``userxattr`` as given; None: whether this process must use it, being unprivileged on
    the host (in a user namespace, or an ordinary user), where trusted.* xattrs cannot be
    written and overlayfs refuses to read them."""
    if userxattr is not None:
        return userxattr
    if os.geteuid() != 0:
        return True
    from part5_namespaces import in_user_namespace  # only where a lower is made or mounted

    return in_user_namespace()


def is_whiteout(st: os.stat_result) -> bool:
    """An overlayfs whiteout: a character device whose device number is 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_overlay_xattr(name: str) -> bool:
    """True for overlayfs's own xattrs (bookkeeping that never goes into a layer)."""
    return name.startswith(OVERLAY_XATTR_PREFIXES)


def is_opaque(path: str | os.PathLike, *, prefixes: tuple[str, ...] = OVERLAY_XATTR_PREFIXES) -> bool:
    """True when the directory ``path`` carries ``<prefix>opaque`` = ``y``.

    Only ``y`` means opaque: since Linux 6.7 the value ``x`` marks a directory that merely
    *contains* xattr-whiteouts, and it is not opaque.
    """
    for prefix in prefixes:
        try:
            if os.getxattr(path, prefix + "opaque", follow_symlinks=False) == b"y":
                return True
        except OSError as e:
            if e.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
                raise
    return False


def read_xattrs(path: str | os.PathLike) -> dict[str, bytes]:
    """The xattrs of ``path`` (not following symlinks), overlay bookkeeping left out."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM):
            return {}
        raise
    out = {}
    for name in sorted(names):
        if is_overlay_xattr(name):
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError as e:
            if e.errno != errno.ENODATA:  # removed between list and get
                raise
    return out


