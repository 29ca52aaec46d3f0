"""Session-wide isolation from the user's own state.

A test that forgets ``--store`` (or a working folder, or registry credentials) must not read or
write the store, the cbt working folders or the credentials of whoever runs the suite, nor meet
another suite's: the defaults point into this session's own temporary directory. That covers
every place registry settings are read from: the containers auth file ($XDG_RUNTIME_DIR,
$XDG_CONFIG_HOME), the Docker config, registries.conf and the certs.d roots (never the real
/etc: a test writes its CAs under its own directory). Retries wait a twentieth of a second
instead of half of one: the tests of retries say how long they wait.
"""

from __future__ import annotations

import shutil

import pytest
from ci_user import nobody, user  # noqa: F401 - the rootless tests' sessions of an ordinary user


@pytest.fixture(scope="session", autouse=True)
def own_default_locations(tmp_path_factory):
    home = tmp_path_factory.mktemp("defaults")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAPSTONE_STORE", str(home / "capstone-store"))
        mp.setenv("CBT_HOME", str(home / "cbt"))
        mp.setenv("DOCKER_CONFIG", str(home / "docker"))
        mp.delenv("REGISTRY_AUTH_FILE", raising=False)
        mp.setenv("XDG_RUNTIME_DIR", str(home / "runtime"))
        mp.setenv("XDG_CONFIG_HOME", str(home / "config"))
        (home / "registries.conf").write_text("")
        mp.setenv("CONTAINERS_REGISTRIES_CONF", str(home / "registries.conf"))
        mp.setenv("CAPSTONE_CERTS_D", str(home / "certs.d"))
        mp.delenv("CAPSTONE_INSECURE_REGISTRIES", raising=False)
        mp.setenv("CAPSTONE_RETRY_DELAY", "0.05")
        yield home


@pytest.fixture(scope="session")
def busybox_store_template(tmp_path_factory):
    """A store holding the embedded ``capstone/busybox``, made once for the session (part 2
    builds it from the host's busybox-static: about a second each time)."""
    from capstone.store import Store

    path = tmp_path_factory.mktemp("busybox-store") / "store"
    Store.open(path).load("capstone/busybox")
    return path


@pytest.fixture(scope="module")
def busybox_store(busybox_store_template, tmp_path_factory):
    """A store of the test module's own, with ``capstone/busybox`` in it already: a copy of the
    session's template (no blob or file is shared, so a test may damage or prune its own)."""
    from capstone.store import Store

    path = tmp_path_factory.mktemp("store") / "store"
    shutil.copytree(busybox_store_template, path, symlinks=True)
    return Store.open(path)


@pytest.fixture(scope="module")
def store(busybox_store):
    """The test module's store (``busybox_store``: ``capstone/busybox`` in it, no blob shared with
    another module). A module whose store must hold more, or whose tests each need one of their
    own, defines its own ``store``."""
    return busybox_store
