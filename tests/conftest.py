"""Session-wide isolation from the user's own state.

A test that forgets ``--store`` (or a working folder, or registry credentials) must not read or
write the store, the cbt working folders or the credentials of whoever runs the suite, nor meet
another suite's: the defaults point into this session's own temporary directory.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def own_default_locations(tmp_path_factory):
    home = tmp_path_factory.mktemp("defaults")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAPSTONE_STORE", str(home / "capstone-store"))
        mp.setenv("CBT_HOME", str(home / "cbt"))
        mp.setenv("DOCKER_CONFIG", str(home / "docker"))
        mp.delenv("REGISTRY_AUTH_FILE", raising=False)
        yield home
