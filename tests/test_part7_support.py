"""Helpers shared by the part 7 tests (no tests here).

Every overlay mount of the tests happens in a child process with its own mount namespace
(``in_mount_namespace``): whatever happens, the mounts disappear with the child.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from part5_namespaces import CloneFlags, MountFlags, call_in_namespaces, mount

T = TypeVar("T")


def in_mount_namespace(fn: Callable[[], T], *, user: bool = False) -> T:
    """``fn()`` in a child with a private mount namespace (and a user namespace with the
    identity mapping when ``user``); returns its result, raises its error."""
    from part5_namespaces import IdMap

    def body() -> T:
        # mounts made here must not propagate back to the host's namespace
        mount(None, "/", None, MountFlags.REC | MountFlags.PRIVATE)
        return fn()

    body.__name__ = getattr(fn, "__name__", "body")
    if user:
        maps = (IdMap(0, 0, 65536),)
        return call_in_namespaces(body, CloneFlags.NEWUSER | CloneFlags.NEWNS, uid_maps=maps, gid_maps=maps)
    return call_in_namespaces(body, CloneFlags.NEWNS)


def hash_tree(root: Path) -> dict[str, tuple]:
    """Everything about a tree that must not change: for each entry (root included) type,
    mode, owner, size, mtime, content digest / link target / device, xattrs."""
    out = {}
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [None, *dirnames, *filenames]:
            if name is None and dirpath != str(root):
                continue
            p = Path(dirpath) if name is None else Path(dirpath) / name
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                what = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(p)
            else:
                what = st.st_rdev
            xattrs = () if stat.S_ISLNK(st.st_mode) else tuple(sorted((n, os.getxattr(p, n, follow_symlinks=False)) for n in os.listxattr(p, follow_symlinks=False)))
            out[str(p.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, what, xattrs)
    return out


def write(path: Path, data: str | bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


# -- layers and scenarios ------------------------------------------------------------------

def make_base_layers(tmp_path: Path) -> list[Path]:
    """Two layer blobs, bottom first: a small root filesystem, and an app layer that deletes
    a base file (whiteout) and replaces a base directory (opaque)."""
    from part4_tar import LayerWriter, write_layer

    base = tmp_path / "src-base"
    write(base / "etc/os-release", "NAME=base\n")
    write(base / "etc/motd", "welcome\n")
    write(base / "etc/shadow", "root:*:1::::::\n", 0o640, 0, 42)
    write(base / "bin/tool", "#!/bin/sh\necho tool\n", 0o755)
    os.symlink("tool", base / "bin/tool-link")
    write(base / "usr/share/doc/a.txt", "a\n")
    write(base / "usr/share/doc/b.txt", "b\n")
    write(base / "usr/share/doc/sub/c.txt", "c\n")
    write(base / "var/cache/one", "1")
    write(base / "var/cache/two", "2")
    write(base / "opt/old/config", "old")
    write(base / "home/user/notes", "mine\n", 0o600, 1000, 1000)
    os.chown(base / "home/user", 1000, 1000)
    os.setxattr(base / "etc/os-release", "user.origin", b"base")
    os.setxattr(base / "bin/tool", "user.kind", b"script")
    os.setxattr(base / "var/cache/one", "user.keep", b"1")
    os.link(base / "usr/share/doc/a.txt", base / "usr/share/doc/a-link.txt")
    app = tmp_path / "src-app"
    write(app / "srv/app.py", "print('app')\n", 0o755, 1000, 1000)
    write(app / "opt/new/config", "new")
    write(app / "etc/os-release", "NAME=app\n")
    blobs = [tmp_path / "base.tar.gz", tmp_path / "app.tar.gz"]
    with open(blobs[0], "wb") as f:
        write_layer(base, f)
    with open(blobs[1], "wb") as f, LayerWriter(f) as w:
        w.add_tree(app)
        w.add_whiteout("etc/motd")
        w.add_opaque("opt")
    return blobs


def make_lowers(tmp_path: Path, blobs: list[Path], *, userxattr: bool = False) -> list[Path]:
    """The blobs extracted as overlay lowers; returned top first."""
    from part7_union import extract_lower

    lowers = [extract_lower(b, tmp_path / "lowers" / f"{i}", userxattr=userxattr) for i, b in enumerate(blobs)]
    return lowers[::-1]


def tar_entries(blob: Path) -> list:
    import tarfile

    from part4_tar import open_decompressed

    with open(blob, "rb") as f, tarfile.open(fileobj=open_decompressed(f), mode="r|") as tar:
        return [(m.name, m.type, dict(m.pax_headers)) for m in tar]


def applied(tmp_path: Path, blobs: list[Path], name: str) -> dict:
    """The tree that part 4 makes of these layers, described (the root itself left out)."""
    from part4_tar import apply_layers
    from part7_union import describe_tree

    root = tmp_path / name
    root.mkdir()
    apply_layers(blobs, root)
    d = describe_tree(root)
    d.pop(".")
    return d
