"""pivot_root two ways: the blog's ``put_old`` directory, and ``pivot_root(".", ".")``.

pivot_root(2) moves the root mount of the caller's mount namespace to ``put_old`` and makes
``new_root`` the root. The blog's runtime (and runc before 2019) gives it a real directory:

    mkdir new_root/.pivot_root; pivot_root(new_root, new_root/.pivot_root); chdir("/");
    umount2("/.pivot_root", MNT_DETACH); rmdir("/.pivot_root")

Until the unmount, the whole host is visible under ``/.pivot_root``. The directory must be
made in the image (a read-only rootfs has no room for it) and removed afterwards.

``pivot_root(".", ".")`` (runc since 2019, and this course's ``setup.pivot``) passes the new
root as both arguments, from inside it: the old root is stacked on top of the new one, at
``/``. A ``umount2(".", MNT_DETACH)`` from the old root's side takes it off again. No directory,
nothing to clean up, nothing to make in a read-only image.

:func:`compare_pivot_forms` runs both in children with new mount namespaces over the same
root filesystem, and records what each sees after ``pivot_root`` and after the unmount.
"""

from __future__ import annotations

import os

from part5_namespaces import CloneFlags, MountFlags, UmountFlags, call_in_namespaces, mount, pivot_root, umount2

PUT_OLD = ".pivot_root"


def _mount_points() -> list[str]:
    """The mount points of this mount namespace, as this process sees them. The new root has
    no /proc of its own yet: one is mounted there first (in this namespace only)."""
    if not os.path.exists("/proc/self"):
        mount("proc", "/proc", "proc", MountFlags.NOSUID | MountFlags.NODEV | MountFlags.NOEXEC)
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def _prepare(rootfs: str) -> None:
    mount(None, "/", None, MountFlags.REC | MountFlags.PRIVATE)
    mount(rootfs, rootfs, None, MountFlags.BIND | MountFlags.REC)


def _put_old_form(rootfs: str) -> dict:
    _prepare(rootfs)
    put_old = os.path.join(rootfs, PUT_OLD)
    os.mkdir(put_old, 0o700)
    pivot_root(rootfs, put_old)
    os.chdir("/")
    seen = {
        "after pivot_root: /": sorted(os.listdir("/")),
        f"after pivot_root: /{PUT_OLD}": sorted(os.listdir("/" + PUT_OLD))[:12],
        "after pivot_root: mounts": len(_mount_points()),
    }
    umount2("/" + PUT_OLD, UmountFlags.DETACH)
    os.rmdir("/" + PUT_OLD)
    seen["after the unmount: /"] = sorted(os.listdir("/"))
    seen["after the unmount: mounts"] = len(_mount_points())
    return seen


def _dot_form(rootfs: str) -> dict:
    _prepare(rootfs)
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY)
    try:
        os.chdir(rootfs)
        pivot_root(".", ".")
        points = _mount_points()
        seen = {
            "after pivot_root: /": sorted(os.listdir("/")),
            "after pivot_root: mounts at /": points.count("/"),
            "after pivot_root: mounts": len(points),
        }
        os.fchdir(old_root)  # the old root, now on top at "/": detach it from its own side
        mount(None, ".", None, MountFlags.REC | MountFlags.SLAVE)
        umount2(".", UmountFlags.DETACH)
        os.chdir("/")
    finally:
        os.close(old_root)
    points = _mount_points()
    seen["after the unmount: /"] = sorted(os.listdir("/"))
    seen["after the unmount: mounts at /"] = points.count("/")
    seen["after the unmount: mounts"] = len(points)
    return seen


def compare_pivot_forms(rootfs: str | os.PathLike) -> dict[str, dict]:
    """Both forms, each in a child with a new mount namespace: what it saw, stage by stage.
    ``rootfs`` is not changed (the put_old directory is removed again)."""
    rootfs = os.path.realpath(rootfs)
    return {
        "put_old": call_in_namespaces(lambda: _put_old_form(rootfs), CloneFlags.NEWNS),
        '"." and "."': call_in_namespaces(lambda: _dot_form(rootfs), CloneFlags.NEWNS),
    }
