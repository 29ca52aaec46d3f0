"""Names a package exports but imports only when first used (PEP 562's module ``__getattr__``).

Every part keeps its cheap names eager and its heavy machinery (tarfile, subprocess, the lab
tooling) behind this, so that a command loads only what it runs: ``--help`` or a fully cached
build never pays for a tar writer. A package declares where each lazy name lives::

    __getattr__ = lazy_exports(__name__, globals(), {"write_layer": "writer", "cbt_main": "cli:main"})

``"module"`` means the attribute of the same name in ``package.module``; ``"module:attr"`` one
of another name. The value is kept in the package's namespace once loaded, so the lookup runs
once per name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, namespace: dict[str, Any], where: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package`` (whose ``globals()`` is ``namespace``) for the
    names in ``where``; any other name is an AttributeError, as for a module without one."""

    def module_getattr(name: str) -> Any:
        place = where.get(name)
        if place is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attr = place.partition(":")
        value = getattr(importlib.import_module(f".{module}", package), attr or name)
        namespace[name] = value
        return value

    return module_getattr
