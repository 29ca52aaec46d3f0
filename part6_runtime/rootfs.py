"""A minimal root filesystem from the static busybox binary (the chapter's and the tests').

``busybox --install -s`` would point its symlinks at wherever busybox runs from *on the
host*; the links made here point at /bin/busybox *inside* the rootfs, one per applet of
``busybox --list-full``, which is what the install does in an image build.

alice's home belongs to her (1000:1000) when the caller may give files away: root, or root of
a user namespace that maps 1000. An ordinary user (or the single mapping) cannot, and her home
then stays the caller's: everything else works the same.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

BUSYBOX = "/usr/bin/busybox"

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "alice:x:1000:1000:Alice:/home/alice:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = (
    "root:x:0:\n"
    "daemon:x:1:\n"
    "wheel:x:10:root,alice\n"
    "tty:x:5:\n"
    "alice:x:1000:\n"
    "audio:x:29:alice\n"
    "nogroup:x:65534:\n"
)


def make_busybox_rootfs(dest: str | os.PathLike, busybox: str = BUSYBOX) -> Path:
    """Create a busybox root filesystem in ``dest`` (created if missing) and return it."""
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "home/alice", "tmp", "var", "proc", "dev", "sys"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    os.chmod(root / "root", 0o700)
    try:
        os.chown(root / "home/alice", 1000, 1000)
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EINVAL):  # not root / 1000 not mapped here
            raise
    shutil.copy2(busybox, root / "bin/busybox")
    applets = subprocess.run([busybox, "--list-full"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        link = root / applet
        if applet == "bin/busybox" or link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/bin/busybox")
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/group").write_text(GROUP)
    (root / "etc/hostname").write_text("image-hostname\n")
    (root / "etc/hosts").write_text("# the image's own hosts file\n127.0.0.1 localhost\n")
    return root
