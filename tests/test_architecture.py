"""The import rules of docs/architecture.md §1, and no work at import time.

Imports are read with ``ast``, never by importing, so a violation is reported with its file and
line even when the module would fail to import.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: docs/architecture.md §1: which of our packages each package may import
ALLOWED: dict[str, set[str]] = {
    "part1_overview": set(),
    "part2_manual_oci": {"part1_overview"},
    "part4_tar": {"part1_overview", "part2_manual_oci"},
    "part3_go_style_builder": {"part1_overview", "part2_manual_oci", "part4_tar"},
    "part5_namespaces": {"part1_overview"},
    "part6_runtime": {"part1_overview", "part4_tar", "part5_namespaces"},
    "part7_union": {"part1_overview", "part2_manual_oci", "part4_tar", "part5_namespaces"},
    "capstone": {
        "part1_overview",
        "part2_manual_oci",
        "part3_go_style_builder",
        "part4_tar",
        "part5_namespaces",
        "part6_runtime",
        "part7_union",
    },
}
PACKAGES = sorted(ALLOWED)

#: calls allowed at module level: they build constants and do no I/O
CONSTANT_CALLS = {
    "frozenset", "set", "dict", "tuple", "list", "range", "int", "str", "bytes", "object",
    "re.compile", "struct.Struct", "TypeVar", "typing.TypeVar", "namedtuple",
    "collections.namedtuple", "NamedTuple", "field", "dataclasses.field", "sorted",
    "enum.auto", "auto", "ContextVar", "contextvars.ContextVar", "logging.getLogger",
    "os.environ.get", "Path", "pathlib.Path", "ctypes.POINTER", "ctypes.CFUNCTYPE", "len",
    "functools.partial", "partial", "operator.itemgetter", "itemgetter", "zip", "enumerate",
    "property", "staticmethod", "dataclasses.fields", "fields", "classmethod", "globals", "IntFlag", "IntEnum", "Enum",
}


def modules(package: str):
    yield from sorted((ROOT / package).rglob("*.py"))


def _public_names(package: str) -> set[str]:
    """The package's ``__all__``, read from its ``__init__.py`` without importing it."""
    tree = ast.parse((ROOT / package / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    return set()


def _imports(path: Path):
    """(line, package, submodule path, imported names) for every import of one of our packages."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top, _, rest = alias.name.partition(".")
                if top in ALLOWED:
                    yield node.lineno, top, rest, None
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top, _, rest = node.module.partition(".")
            if top in ALLOWED:
                yield node.lineno, top, rest, [a.name for a in node.names]


def import_violations() -> list[str]:
    problems = []
    for package in PACKAGES:
        for path in modules(package):
            where = path.relative_to(ROOT)
            for line, target, submodule, names in _imports(path):
                if target == package:
                    continue  # absolute imports inside a package are its own business
                if target not in ALLOWED[package]:
                    problems.append(f"{where}:{line}: {package} may not import {target} (docs/architecture.md §1)")
                    continue
                public = _public_names(target)
                if submodule:
                    # only a public submodule (named in __all__) may be reached into
                    first = submodule.split(".")[0]
                    if first not in public:
                        problems.append(f"{where}:{line}: {target}.{submodule} is private; import public names from {target}")
                elif names is not None:
                    for name in names:
                        if name not in public:
                            problems.append(f"{where}:{line}: {target}.{name} is not in {target}.__all__")
    return problems


def test_parts_import_only_what_design_allows():
    assert import_violations() == []


def test_import_graph_is_a_dag():
    def visit(p: str, stack: tuple[str, ...]) -> None:
        assert p not in stack, f"import cycle: {' -> '.join(stack + (p,))}"
        for q in ALLOWED[p]:
            visit(q, stack + (p,))

    for p in PACKAGES:
        visit(p, ())


def test_nothing_but_tests_imports_capstone():
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in PACKAGES
        if package != "capstone"
        for path in modules(package)
        for line, target, _, _ in _imports(path)
        if target == "capstone"
    ]
    assert offenders == []


def _call_name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_call_name(node.value)}.{node.attr}"
    return "?"


def _top_level_calls(tree: ast.Module):
    """Calls that would run at import time (module body, class bodies, decorators, defaults)."""
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and _call_name(node.test).endswith("TYPE_CHECKING"):
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            pending.extend(node.decorator_list)
            pending.extend(d for d in node.args.defaults + node.args.kw_defaults if d is not None)
            continue
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Call):
            yield node
        pending.extend(ast.iter_child_nodes(node))


def test_no_work_at_import_time_in_module_bodies():
    problems = []
    for package in PACKAGES:
        for path in modules(package):
            if path.name == "__main__.py":
                continue  # a chapter script's body may run under `if __name__ == "__main__"`
            tree = ast.parse(path.read_text())
            for call in _top_level_calls(tree):
                name = _call_name(call.func)
                last = name.rsplit(".", 1)[-1]
                if name in CONSTANT_CALLS or last in {"dataclass", "model", "dataclass_transform", "total_ordering", "unique", "cache", "lru_cache", "contextmanager", "wraps", "field", "auto", "TypeVar", "namedtuple", "NamedTuple", "lazy_exports"}:
                    continue
                if last.endswith("_field"):
                    continue  # a model field factory (returns field(...))
                if last[:1].isupper():
                    continue  # constructing a constant object of our own (an enum member, a spec value)
                problems.append(f"{path.relative_to(ROOT)}:{call.lineno}: {name}() runs at import time")
    assert problems == []


@pytest.mark.parametrize("package", PACKAGES)
def test_importing_a_package_prints_nothing_and_starts_nothing(package):
    code = (
        "import threading, sys\n"
        f"import {package}\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""


@pytest.mark.parametrize("package", PACKAGES)
def test_every_part_has_a_chapter(package):
    assert (ROOT / package / "__init__.py").read_text().lstrip().startswith('"""')
    assert (ROOT / package / "__main__.py").exists(), f"{package} has no chapter script"
    assert (ROOT / package / "README.md").exists(), f"{package} has no chapter page"


# -- one implementation of a concept ---------------------------------------------------------------
PLATFORMS_MODULE = ROOT / "part2_manual_oci" / "platforms.py"
#: a descriptor's or config's platform fields: reading them is choosing by platform
_PLATFORM_FIELDS = {"os", "architecture", "variant", "os_version", "os_features"}
#: modules that ask the CPU's name for another reason than an image's platform (syscall
#: numbers, seccomp's architecture, the tour's facts)
_MACHINE_READERS = {"part5_namespaces/syscalls.py", "part6_runtime/seccomp.py", "part1_overview/host.py",
                    "part3_go_style_builder/__main__.py", "part3_go_style_builder/cli.py", "part5_namespaces/__main__.py"}


def platform_selection_violations() -> list[str]:
    """Choosing an index's image by platform, and naming this host's platform, happen in part
    2's ``platforms`` module only: no other module reads ``<x>.platform.<field>``, defines
    ``host_platform``/``select_platform``, or asks ``platform.machine()`` for an image."""
    problems = []
    for package in PACKAGES:
        for path in modules(package):
            if path == PLATFORMS_MODULE:
                continue
            where = path.relative_to(ROOT)
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if (isinstance(node, ast.Attribute) and node.attr in _PLATFORM_FIELDS
                        and isinstance(node.value, ast.Attribute) and node.value.attr == "platform"):
                    problems.append(f"{where}:{node.lineno}: reads .platform.{node.attr}: use part 2's select_platform / "
                                    "platform_compatible")
                elif isinstance(node, ast.FunctionDef) and node.name in ("host_platform", "select_platform"):
                    problems.append(f"{where}:{node.lineno}: a second {node.name}()")
                elif (isinstance(node, ast.Call) and _call_name(node.func) == "platform.machine"
                      and str(where) not in _MACHINE_READERS):
                    problems.append(f"{where}:{node.lineno}: platform.machine(): use part 2's host_platform()")
    return problems


def test_one_platform_selection():
    assert platform_selection_violations() == []


# -- one implementation of each concept (docs/architecture.md §2) ---------------------------------


def _calls(path: Path):
    """(line, dotted name, call node) of every call in a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node.lineno, _call_name(node.func), node


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_overlay_is_mounted_only_by_part7():
    """Every overlay mount goes through part 7 (OverlayMount, a snapshotter): no other module
    mounts a file system of type overlay or writes overlay's mount options itself."""
    found = []
    for package in PACKAGES:
        if package == "part7_union":
            continue
        for path in modules(package):
            for line, name, call in _calls(path):
                words = [a for a in (*call.args, *(k.value for k in call.keywords))
                         if isinstance(a, ast.Constant) and a.value in ("overlay", b"overlay")]
                if name.rsplit(".", 1)[-1] in ("mount", "fsopen", "run", "check_call", "Popen") and words:
                    found.append(f"{_rel(path)}:{line}: {name}(... 'overlay' ...)")
            for node in ast.walk(ast.parse(path.read_text())):
                parts = node.values if isinstance(node, ast.JoinedStr) else [node]
                first = parts[0] if parts else None
                if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value.startswith("lowerdir="):
                    found.append(f"{_rel(path)}:{node.lineno}: overlay mount options written outside part 7")
    assert found == []


#: the one atomic file write (part 2's atomic_file); directories are placed with os.rename
ATOMIC_WRITE = ROOT / "part2_manual_oci" / "atomic.py"


def test_one_atomic_file_write():
    """A temp file, fsync and rename into place is written once, in part 2's ``atomic_file``:
    every other writer uses it (no mkstemp, os.replace or fsync of its own)."""
    found = []
    for package in PACKAGES:
        for path in modules(package):
            if path == ATOMIC_WRITE:
                continue
            for line, name, _call in _calls(path):
                if name in ("tempfile.mkstemp", "mkstemp", "os.replace", "os.fsync", "fsync", "os.fdatasync"):
                    found.append(f"{_rel(path)}:{line}: {name}")
    assert found == []


def _handler_names(handler: ast.ExceptHandler) -> set[str]:
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return {_call_name(k) for k in kinds if k is not None}


def _reraises(handler: ast.ExceptHandler) -> bool:
    return any(isinstance(n, ast.Raise) and n.exc is None for n in ast.walk(handler))


def _reports_exit_status(function: ast.AST | None, handler: ast.ExceptHandler) -> bool:
    """The handler ends a child process (``os._exit`` in its function) or returns an exit code."""
    calls = [_call_name(n.func) for n in ast.walk(function or handler) if isinstance(n, ast.Call)]
    returns = [n for n in ast.walk(handler) if isinstance(n, ast.Return)]
    return "os._exit" in calls or any(isinstance(r.value, ast.Constant) and isinstance(r.value.value, int)
                                      for r in returns)


def test_the_capstone_catches_named_errors():
    """``except Exception`` (or BaseException, or a bare except) in the capstone only cleans up
    and re-raises, or, with its reason written beside it (``# noqa: BLE001 - why``), makes a
    child process report by its exit status: never turns a bug into a user's error."""
    found = []
    for path in modules("capstone"):
        text = path.read_text()
        lines = text.splitlines()
        tree = ast.parse(text, filename=str(path))
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for handler in (n for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler)):
            broad = handler.type is None or _handler_names(handler) & {"Exception", "BaseException"}
            if not broad or _reraises(handler):
                continue
            inside = [f for f in functions if f.lineno <= handler.lineno <= f.end_lineno]
            function = min(inside, key=lambda f: f.end_lineno - f.lineno) if inside else None
            reason = "noqa: BLE001 - " in lines[handler.lineno - 1]
            if not (reason and _reports_exit_status(function, handler)):
                found.append(f"{_rel(path)}:{handler.lineno}: {lines[handler.lineno - 1].strip()}")
    assert found == []


#: capstone/store/interface.py: the Protocol each package of the capstone uses a store through
STORE_INTERFACE = ROOT / "capstone" / "store" / "interface.py"
STORE_CLIENTS = {"engine": "BuildStore", "runner.py": "BuildStore", "registry": "RegistryStore"}


def _protocol_members() -> dict[str, set[str]]:
    """Each Protocol class of the store's interface: the names it declares, its bases' too."""
    tree = ast.parse(STORE_INTERFACE.read_text())
    members: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
            names |= {n.target.id for n in node.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
            for base in node.bases:
                names |= members.get(_call_name(base), set())
            members[node.name] = names
    return members


def _store_attributes(path: Path):
    """(line, attribute) of every ``store.X`` and ``self.store.X`` in a module."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Attribute):
            owner = node.value
            if (isinstance(owner, ast.Name) and owner.id == "store") or \
                    (isinstance(owner, ast.Attribute) and owner.attr == "store"):
                yield node.lineno, node.attr


def test_nothing_reaches_into_the_store():
    """Outside ``capstone/store`` nothing uses a store's OCI layout (``store.layout``): blobs are
    read and written through the store's own methods."""
    found = [f"{_rel(path)}:{line}: store.layout"
             for path in modules("capstone") if "store" not in path.relative_to(ROOT / "capstone").parts[:1]
             for line, attr in _store_attributes(path) if attr == "layout"]
    assert found == []


def test_the_build_and_the_registry_client_use_the_store_through_its_protocols():
    """Every attribute the build, ``capstone run`` and the registry client use on a store is
    declared by their Protocol in ``capstone/store/interface.py``."""
    members = _protocol_members()
    found = []
    for client, protocol in STORE_CLIENTS.items():
        paths = [ROOT / "capstone" / client] if client.endswith(".py") else modules(f"capstone/{client}")
        for path in paths:
            for line, attr in _store_attributes(path):
                if attr not in members[protocol]:
                    found.append(f"{_rel(path)}:{line}: store.{attr} is not in {protocol}")
    assert found == []


#: the longest a function (or method) of a part or the capstone may be, in lines from its
#: ``def`` to its last line, docstring included: a longer one is broken into named steps
MAX_FUNCTION_LINES = 80


def long_functions(limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``file:line: name is N lines`` for every function of our packages longer than ``limit``."""
    found = []
    for package in PACKAGES:
        for path in modules(package):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > limit:
                        found.append(f"{_rel(path)}:{node.lineno}: {node.name} is {length} lines")
    return found


def test_no_function_is_longer_than_80_lines():
    """docs/architecture.md §2: a function over 80 lines is read as named steps instead."""
    assert long_functions() == []


def test_the_length_rule_sees_a_long_function(tmp_path, monkeypatch):
    """The rule measures what it says: an 81-line function in a package is reported."""
    package = tmp_path / "part1_overview"
    package.mkdir()
    body = "".join(f"    x{i} = {i}\n" for i in range(79))
    (package / "long.py").write_text(f"def too_long():\n{body}    return x0\n")
    (package / "short.py").write_text(f"def fits():\n{body[:-len('    x78 = 78' + chr(10))]}    return x0\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGES", ["part1_overview"])
    assert long_functions() == ["part1_overview/long.py:1: too_long is 81 lines"]


def test_one_hashing_reader():
    """A stream hashed while it is read is part 2's ``HashingReader``: no other module defines
    a class that hashes in ``read``/``readinto`` (three private copies did, and read differently)."""
    found = []
    for package in PACKAGES:
        for path in modules(package):
            if path == ROOT / "part2_manual_oci" / "digest.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if not isinstance(node, ast.ClassDef):
                    continue
                for method in node.body:
                    if isinstance(method, ast.FunctionDef) and method.name in ("read", "readinto"):
                        calls = {_call_name(c.func).rsplit(".", 1)[-1] for c in ast.walk(method) if isinstance(c, ast.Call)}
                        if "update" in calls and any("hash" in _call_name(c.func) for c in ast.walk(method)
                                                     if isinstance(c, ast.Call)):
                            found.append(f"{_rel(path)}:{node.lineno}: {node.name}.{method.name} hashes what it reads")
    assert found == []


def test_one_lazy_export():
    """A package's names loaded on first use go through part 1's ``lazy_exports``: no package
    defines its own module ``__getattr__`` (five copies did)."""
    found = [f"{_rel(path)}:{node.lineno}"
             for package in PACKAGES for path in modules(package)
             for node in ast.parse(path.read_text(), filename=str(path)).body
             if isinstance(node, ast.FunctionDef) and node.name == "__getattr__"]
    assert found == []


def test_one_kind_of_model():
    """Every record class of the parts and the capstone is part 1's ``@model``: none imports
    ``dataclasses``, whose classes compile their methods from source at every start (66 of
    them were half of a fully cached build's instructions)."""
    found = []
    for package in PACKAGES:
        for path in modules(package):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module] if isinstance(node, ast.ImportFrom) and not node.level else [])
                found += [f"{_rel(path)}:{node.lineno}: {n}" for n in names if n and n.split(".")[0] == "dataclasses"]
    assert found == []


def test_lazy_exports_loads_a_name_once_where_it_is_declared(tmp_path, monkeypatch):
    from part1_overview import lazy_exports

    package = tmp_path / "lazypkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from part1_overview import lazy_exports\n"
        "__getattr__ = lazy_exports(__name__, globals(), {'heavy': 'impl', 'other': 'impl:renamed'})\n")
    (package / "impl.py").write_text("LOADS = []\nLOADS.append(1)\ndef heavy(): return 'h'\ndef renamed(): return 'r'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import lazypkg

    assert "lazypkg.impl" not in sys.modules
    assert (lazypkg.heavy(), lazypkg.other()) == ("h", "r")
    assert vars(lazypkg)["heavy"] is sys.modules["lazypkg.impl"].heavy  # kept: looked up once
    assert sys.modules["lazypkg.impl"].LOADS == [1]
    with pytest.raises(AttributeError, match="module 'lazypkg' has no attribute 'missing'"):
        lazypkg.missing  # noqa: B018
    assert callable(lazy_exports)
    del sys.modules["lazypkg"], sys.modules["lazypkg.impl"]
