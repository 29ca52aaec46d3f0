"""Helpers shared by several test files (imported as ``support``: pytest puts tests/ on the path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

from part5_namespaces import CloneFlags, MountFlags, call_in_namespaces, mount

REPO = Path(__file__).resolve().parent.parent


# -- tar entries built by hand: (TarInfo, data or None) ------------------------------------------
def sym(name, target):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = tarfile.SYMTYPE, target
    return ti, None


def hard(name, target):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = tarfile.LNKTYPE, target
    return ti, None


# -- the capstone ---------------------------------------------------------------------------------
def in_child(fn):
    """``fn()`` in a child with a private mount namespace; its result, or its error."""

    def body():
        mount(None, "/", None, MountFlags.REC | MountFlags.PRIVATE)
        return fn()

    return call_in_namespaces(body, CloneFlags.NEWNS)


def capstone(store_dir: Path, *args: str, env: dict[str, str | None] | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m capstone --store STORE_DIR ARGS...``, output captured; ``env`` changes this
    process's environment for the command (a None value removes the variable)."""
    environ = None
    if env is not None:
        environ = dict(os.environ)
        for key, value in env.items():
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = value
    return subprocess.run([sys.executable, "-m", "capstone", "--store", str(store_dir), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout, env=environ)


def image_rootfs(store_dir: Path, ref: str, dest: Path) -> Path:
    """The root filesystem of image ``ref`` in the store at ``store_dir``, extracted to ``dest``."""
    from capstone.store import Store
    from part4_tar import apply_layers

    dest.mkdir(parents=True)
    apply_layers([layer.open() for layer in Store.open(store_dir).load(ref).layers], dest)
    return dest


def make_context(root: Path, dockerfile: str, files: dict[str, str | bytes] | None = None) -> Path:
    """A build context: ``root/Dockerfile`` and ``files`` (relative name -> text or bytes)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    for name, content in (files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


# -- runc -----------------------------------------------------------------------------------------
def runc_run(bundle: Path, name_prefix: str, **process) -> subprocess.CompletedProcess:
    """Run an unpacked bundle with runc (no terminal; ``process`` keys replace those of its
    config.json's ``process``), then delete the container whatever happened."""
    config_path = bundle / "config.json"
    config = json.loads(config_path.read_text())
    config["process"]["terminal"] = False
    config["process"].update(process)
    config_path.write_text(json.dumps(config))
    name = f"{name_prefix}-{uuid.uuid4().hex[:12]}"
    try:
        return subprocess.run(["runc", "run", "--bundle", str(bundle), name], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120)
    finally:
        subprocess.run(["runc", "delete", "-f", name], capture_output=True, text=True, timeout=60)
