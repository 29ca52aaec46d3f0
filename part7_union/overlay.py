"""Mount and unmount an overlay filesystem.

``lowerdir`` is a colon-separated list, top layer first; ``upperdir`` receives every change;
``workdir`` is overlayfs's scratch space on the same filesystem as the upper.

Options, and why (checked on this kernel, 6.18):

* ``redirect_dir=nofollow``: renaming a lower directory fails with EXDEV, so ``mv`` falls back to
  copy + delete and the upper holds plain entries and whiteouts, never a redirect xattr that a
  layer could not express. ``off`` is not enough: with the module parameter
  ``redirect_always_follow=Y`` (the default) ``off`` means "follow", which ``userxattr`` refuses.
* ``metacopy=off``: a chmod or chown copies the whole file up, so every upper file has its data.
* ``index=off``: no inode index in the work dir (hard links to a lower file break on copy-up,
  which is what a layer can express anyway).
* ``userxattr``: inside a user namespace trusted.* xattrs cannot be written, so overlayfs keeps
  its opaque marks in ``user.overlay.*``. Given as None (the default), it is used exactly when
  this process is unprivileged on the host (``whiteouts.use_userxattr``): a rootless build's
  overlays and the lowers extracted for them agree without the caller saying so.

The options travel through mount(2)'s ``data`` argument, which the kernel copies as one page
(4096 bytes, NUL included). Dozens of layers with long paths do not fit. When they do not,
:func:`mount_overlay` makes a private directory of short symlinks (``0``, ``1``, ... -> each
lower dir), forks a child that changes into it and mounts with ``lowerdir=0:1:...`` (the kernel
resolves relative paths against the caller's working directory), and removes the symlinks once
mounted: overlayfs holds the resolved directories, not the names. A child is used so that the
caller's working directory never changes (it is shared by all its threads). 500 layers (the
kernel's limit) take about 2 KiB this way.

The mount happens in the caller's mount namespace: as root on the host, or inside a child that
has its own mount (and user) namespace. The forked child shares that namespace, so the mount
it makes is the caller's mount.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

# part 5's mount bindings are imported where a mount happens: the capstone's cached builds use
# this part's LayerStack and never mount, and should not pay for loading the bindings.
from .errors import OverlayError
from .whiteouts import use_userxattr

#: mount(2) copies at most one page of option data, the terminating NUL included
OPTIONS_LIMIT = 4096
#: overlayfs's maximum number of lower layers (OVL_MAX_STACK)
MAX_LOWERS = 500

OPTIONS = ("redirect_dir=nofollow", "metacopy=off", "index=off")


def _escape(path: str) -> str:
    r"""Escape a path for overlay's option string: ``\``, ``:`` and ``,`` get a backslash."""
    return path.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")


def overlay_options(
    lowers_top_first: Sequence[str | os.PathLike],
    upper: str | os.PathLike | None,
    work: str | os.PathLike | None,
    *,
    userxattr: bool = False,
) -> str:
    """The ``data`` string of mount(2) for these directories (paths used as given)."""
    parts = ["lowerdir=" + ":".join(_escape(os.fspath(p)) for p in lowers_top_first)]
    if upper is not None:
        parts.append("upperdir=" + _escape(os.fspath(upper)))
        parts.append("workdir=" + _escape(os.fspath(work)))
    parts.extend(OPTIONS)
    if userxattr:
        parts.append("userxattr")
    return ",".join(parts)


class OverlayMount:
    """An overlay mount of ``lowers_top_first`` (+ ``upper``/``work``) at ``target``.

    A context manager: mounted on enter, unmounted on exit (also when the body raises). With
    ``upper=None`` (and ``work=None``) the overlay is read-only and needs two lowers or more.
    ``target``, ``upper`` and ``work`` are created when missing.
    """

    def __init__(
        self,
        lowers_top_first: Sequence[str | os.PathLike],
        upper: str | os.PathLike | None,
        work: str | os.PathLike | None,
        target: str | os.PathLike,
        *,
        userxattr: bool | None = None,
    ) -> None:
        self.lowers = tuple(Path(os.path.abspath(p)) for p in lowers_top_first)
        self.upper = None if upper is None else Path(os.path.abspath(upper))
        self.work = None if work is None else Path(os.path.abspath(work))
        self.target = Path(os.path.abspath(target))
        self.userxattr = use_userxattr(userxattr)
        self.mounted = False
        if not self.lowers:
            raise OverlayError(22, "overlay needs at least one lower directory", str(self.target))
        if len(self.lowers) > MAX_LOWERS:
            raise OverlayError(22, f"overlay takes at most {MAX_LOWERS} lower directories, got {len(self.lowers)}", str(self.target))
        if (self.upper is None) != (self.work is None):
            raise OverlayError(22, "overlay needs both upper and work directories, or neither", str(self.target))
        if self.upper is None and len(self.lowers) < 2:
            raise OverlayError(22, "a read-only overlay (no upper) needs at least two lower directories", str(self.target))

    def options(self) -> str:
        """The option string with absolute paths (what a direct mount passes)."""
        return overlay_options(self.lowers, self.upper, self.work, userxattr=self.userxattr)

    def mount(self) -> "OverlayMount":
        if self.mounted:
            return self
        for d in (self.target, self.upper, self.work):
            if d is not None:
                d.mkdir(parents=True, exist_ok=True)
        for lower in self.lowers:
            if not lower.is_dir():
                raise OverlayError(2, "overlay lower directory is missing", str(lower))
        data = self.options()
        if len(os.fsencode(data)) < OPTIONS_LIMIT:
            _mount(data, self.target)
        else:
            _mount_with_short_names(self)
        self.mounted = True
        return self

    def unmount(self, *, lazy: bool = False) -> None:
        if self.mounted:
            unmount(self.target, lazy=lazy)
            self.mounted = False
            if self.work is not None:
                _open_work_dir(self.work)

    def __enter__(self) -> "OverlayMount":
        return self.mount()

    def __exit__(self, *exc: object) -> None:
        self.unmount()

    def __repr__(self) -> str:
        state = "mounted" if self.mounted else "not mounted"
        return f"OverlayMount({len(self.lowers)} lowers, upper={self.upper}, target={self.target}, {state})"


def mount_overlay(
    lowers_top_first: Sequence[str | os.PathLike],
    upper: str | os.PathLike | None,
    work: str | os.PathLike | None,
    target: str | os.PathLike,
    *,
    userxattr: bool | None = None,
) -> OverlayMount:
    """Mount an overlay now, in the caller's mount namespace; returns the mounted OverlayMount."""
    return OverlayMount(lowers_top_first, upper, work, target, userxattr=userxattr).mount()


def unmount(target: str | os.PathLike, *, lazy: bool = False) -> None:
    """Unmount what is mounted at ``target`` (``lazy``: detach now, clean up when unused)."""
    from part5_namespaces import UmountFlags, umount2

    try:
        umount2(target, UmountFlags.DETACH if lazy else UmountFlags.NONE)
    except OSError as e:
        raise OverlayError(e.errno, f"unmount overlay: {os.strerror(e.errno)}", os.fspath(target)) from None


def _open_work_dir(work: Path) -> None:
    """Give overlayfs's ``work/work`` back its owner's rights once unmounted.

    overlayfs makes it mode 0 (and may leave a whiteout in it): root of the host enters it
    anyway, but an ordinary user, who mounted as root of a user namespace of its own, could
    then remove neither it nor the directories above it from outside that namespace.
    """
    with contextlib.suppress(OSError):  # not there (never mounted), or not ours: nothing to give back
        os.chmod(work / "work", 0o700)


def _mount(data: str, target: Path) -> None:
    from part5_namespaces import MountFlags, mount

    try:
        mount("overlay", target, "overlay", MountFlags.NONE, data)
    except OSError as e:
        raise OverlayError(e.errno, f"mount overlay: {os.strerror(e.errno)} (see dmesg for overlayfs's reason)", str(target)) from None


def _mount_with_short_names(m: OverlayMount) -> None:
    """Mount with ``lowerdir=0:1:2...`` relative to a directory of symlinks, from a child."""
    from part5_namespaces import MountFlags, mount, syscalls

    links = Path(tempfile.mkdtemp(prefix="part7-lowers-"))
    try:
        for i, lower in enumerate(m.lowers):
            os.symlink(lower, links / str(i))
        data = overlay_options([str(i) for i in range(len(m.lowers))], m.upper, m.work, userxattr=m.userxattr)
        if len(os.fsencode(data)) >= OPTIONS_LIMIT:
            raise OverlayError(7, "overlay options too long even with short lower names (upper/work paths too long)", str(m.target))
        syscalls.libc()  # load libc before the fork: the child only makes system calls
        pid = os.fork()
        if pid == 0:  # child: only chdir, mount, and exit with the errno (0: mounted)
            code = 0
            try:
                os.chdir(links)
                mount("overlay", m.target, "overlay", MountFlags.NONE, data)
            except OSError as e:
                code = e.errno or 1
            except BaseException:  # noqa: BLE001 - a forked child reports by exit status only
                code = 255
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err = code if 0 < code < 255 else 5
            raise OverlayError(err, f"mount overlay ({len(m.lowers)} lowers, short names): {os.strerror(err)} (see dmesg)", str(m.target))
    finally:
        shutil.rmtree(links, ignore_errors=True)


def overlay_supported(userxattr: bool | None = None) -> bool:
    """Can this process mount an overlay here? Tries a tiny one in a temporary directory."""
    return _overlay_supported(use_userxattr(userxattr))


@lru_cache(maxsize=2)
def _overlay_supported(userxattr: bool) -> bool:
    from part5_namespaces import MountFlags, UmountFlags, mount, umount2

    base = Path(tempfile.mkdtemp(prefix="part7-probe-"))
    try:
        dirs = [base / n for n in ("lower", "upper", "work", "merged")]
        for d in dirs:
            d.mkdir()
        try:
            mount("overlay", dirs[3], "overlay", MountFlags.NONE, overlay_options([dirs[0]], dirs[1], dirs[2], userxattr=userxattr))
        except OSError:
            return False
        umount2(dirs[3], UmountFlags.DETACH)
        return True
    finally:
        shutil.rmtree(base, ignore_errors=True)
