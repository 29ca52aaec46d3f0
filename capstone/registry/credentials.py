"""Registry credentials where podman and docker keep them: found, saved and removed.

**Reading** (the first source that has credentials for the registry wins):

1. ``--creds USER[:PASSWORD]`` on the command line;
2. ``--authfile FILE``;
3. ``$REGISTRY_AUTH_FILE``;
4. the containers auth file, ``$XDG_RUNTIME_DIR/containers/auth.json`` (without
   ``XDG_RUNTIME_DIR``, podman's fallback ``/run/containers/<uid>/auth.json``), then
   ``$XDG_CONFIG_HOME/containers/auth.json`` (``~/.config/containers/auth.json``);
5. the Docker config, ``$DOCKER_CONFIG/config.json`` (``~/.docker/config.json``).

In each file (containers-auth.json(5) and Docker's config.json have the same shape) a
``credHelpers`` entry for the registry comes first, then an ``auths`` entry with ``auth``
(base64 ``user:password``), then the file's ``credsStore``. An ``auths`` key may name a
repository namespace (``registry/ns``): the longest that matches the image wins, as podman
does. Docker Hub is ``https://index.docker.io/v1/`` in Docker's files.

**Credential helpers** speak Docker's protocol (docker-credential-helpers): the program
``docker-credential-NAME`` on ``PATH``; ``get`` reads the server on stdin and answers
``{"ServerURL", "Username", "Secret"}``; ``store`` reads that object; ``erase`` reads the
server. "credentials not found" on ``get`` means none.

**Writing** (``capstone login``): to ``--authfile`` / ``$REGISTRY_AUTH_FILE`` when given;
else to the containers auth file when it exists; else to the Docker config when that is what
exists (through its ``credHelpers`` or ``credsStore`` helper when it names one); else a new
containers auth file. Files are written whole (a temporary file in the same directory,
renamed), mode 0600, other entries kept; directories made 0700.

A :class:`Credentials` never shows its secret: not in ``repr``, not in an error message.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
from pathlib import Path

from part1_overview import field, model
from part2_manual_oci import atomic_file

from .errors import RegistryError

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io")
#: a helper's answer or an auth file bigger than this is refused
MAX_FILE = 4 << 20
HELPER_TIMEOUT = 60


class CredentialsError(RegistryError):
    """An auth file or a credential helper failed (the message names which)."""


@model(frozen=True)
class Credentials:
    """A user name and a secret, and ``source``: where they were found (for messages)."""

    username: str
    password: str = field(repr=False)
    source: str = "the caller"

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, source={self.source!r})"

    def __str__(self) -> str:
        return f"user {self.username!r} (credentials from {self.source})"


# -- where the files are -----------------------------------------------------------------------


def containers_auth_file(environ=None) -> Path:
    """podman's auth file: ``$XDG_RUNTIME_DIR/containers/auth.json``, else
    ``/run/containers/<uid>/auth.json``."""
    environ = os.environ if environ is None else environ
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "containers" / "auth.json"
    return Path("/run/containers") / str(os.getuid()) / "auth.json"


def _home(environ) -> Path:
    return Path(environ.get("HOME") or Path.home())


def containers_config_auth_file(environ=None) -> Path:
    environ = os.environ if environ is None else environ
    config = Path(environ.get("XDG_CONFIG_HOME") or _home(environ) / ".config")
    return config / "containers" / "auth.json"


def docker_config_file(environ=None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get("DOCKER_CONFIG") or _home(environ) / ".docker") / "config.json"


def auth_files(authfile: str | os.PathLike | None = None, environ=None) -> list[tuple[Path, str]]:
    """Every file credentials are read from, in order, with a label for messages."""
    environ = os.environ if environ is None else environ
    files: list[tuple[Path, str]] = []
    if authfile:
        files.append((Path(authfile), "--authfile"))
    if environ.get("REGISTRY_AUTH_FILE"):
        files.append((Path(environ["REGISTRY_AUTH_FILE"]), "$REGISTRY_AUTH_FILE"))
    files.append((containers_auth_file(environ), "containers auth file"))
    files.append((containers_config_auth_file(environ), "containers auth file"))
    files.append((docker_config_file(environ), "Docker config"))
    return files


# -- reading -----------------------------------------------------------------------------------


def read_auth_file(path: Path) -> dict:
    """The JSON object of an auth file ({} when it does not exist)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise CredentialsError(f"{path}: {e.strerror}") from None
    if len(data) > MAX_FILE:
        raise CredentialsError(f"{path}: more than {MAX_FILE} bytes, not an auth file")
    if not data.strip():
        return {}
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise CredentialsError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(doc, dict):
        raise CredentialsError(f"{path}: not a JSON object")
    return doc


def _keys(registry: str) -> list[str]:
    """The spellings of a registry as an ``auths`` or ``credHelpers`` key."""
    keys = [registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v2/", f"https://{registry}/v1/"]
    if registry in _HUB_NAMES:
        keys = [DOCKER_HUB_KEY, *[k for name in _HUB_NAMES for k in (name, f"https://{name}")], *keys]
    return keys


def _normal_key(key: str) -> str:
    """``https://host/v1/`` -> ``host``; a namespaced key keeps its path."""
    for scheme in ("https://", "http://"):
        key = key.removeprefix(scheme)
    key = key.rstrip("/")
    for suffix in ("/v1", "/v2"):
        key = key.removesuffix(suffix)
    return "docker.io" if key in _HUB_NAMES else key


def _auth_entry(auths: dict, registry: str, repository: str | None) -> tuple[str, dict] | None:
    """The ``auths`` entry for the image: the longest key that is ``registry`` or a namespace
    of it the repository is in."""
    wanted = "docker.io" if registry in _HUB_NAMES else registry
    name = f"{wanted}/{repository}" if repository else wanted
    best: tuple[str, dict] | None = None
    for key, entry in auths.items():
        if not isinstance(entry, dict):
            continue
        normal = _normal_key(key)
        fits = normal == wanted or (repository and name.startswith(normal + "/") and normal.startswith(wanted + "/"))
        if fits and (best is None or len(_normal_key(best[0])) < len(normal)):
            best = (key, entry)
    return best


def _decode(key: str, entry: dict, path: Path) -> tuple[str, str] | None:
    token = entry.get("auth")
    if not token:
        if entry.get("username") and entry.get("password"):  # a form some tools write
            return str(entry["username"]), str(entry["password"])
        return None
    try:
        user, sep, password = base64.b64decode(token, validate=True).decode().partition(":")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise CredentialsError(f"{path}: the auth of {key!r} is not base64 of user:password") from None
    if not sep:
        raise CredentialsError(f"{path}: the auth of {key!r} is not base64 of user:password")
    return user, password


def _helper_key(registry: str) -> str:
    return DOCKER_HUB_KEY if registry in _HUB_NAMES else registry


def _file_credentials(path: Path, label: str, registry: str, repository: str | None) -> Credentials | None:
    doc = read_auth_file(path)
    if not doc:
        return None
    helpers = doc.get("credHelpers") if isinstance(doc.get("credHelpers"), dict) else {}
    for key in _keys(registry):
        if isinstance(helpers.get(key), str) and helpers[key]:
            return helper_get(helpers[key], _helper_key(registry), f"credHelpers in {path}")
    auths = doc.get("auths") if isinstance(doc.get("auths"), dict) else {}
    found = _auth_entry(auths, registry, repository)
    if found is not None:
        pair = _decode(found[0], found[1], path)
        if pair is not None:
            return Credentials(pair[0], pair[1], f"{path} ({label})")
    store = doc.get("credsStore")
    if isinstance(store, str) and store:
        return helper_get(store, _helper_key(registry), f"credsStore in {path}")
    return None


def parse_creds(text: str) -> Credentials:
    """``--creds USER[:PASSWORD]`` (a password is required here: nothing is prompted)."""
    user, sep, password = text.partition(":")
    if not user:
        raise CredentialsError("--creds: expected USER:PASSWORD")
    if not sep:
        raise CredentialsError("--creds: give the password too (USER:PASSWORD), or use capstone login")
    return Credentials(user, password, "--creds")


def find_credentials(registry: str, repository: str | None = None, *, creds: str | Credentials | None = None,
                     authfile: str | os.PathLike | None = None, environ=None) -> Credentials | None:
    """The credentials for ``registry`` (and the image's ``repository``), in the order of the
    module page; None when no source has any."""
    if creds is not None:
        return creds if isinstance(creds, Credentials) else parse_creds(creds)
    for path, label in auth_files(authfile, environ):
        found = _file_credentials(path, label, registry, repository)
        if found is not None:
            return found
    return None


# -- credential helpers ------------------------------------------------------------------------


def _helper(name: str, action: str, stdin: str, where: str) -> str | None:
    """Run ``docker-credential-NAME ACTION``; its stdout, or None for "not found"."""
    program = f"docker-credential-{name}"
    path = shutil.which(program)
    if path is None:
        raise CredentialsError(f"{where} names the helper {program}, which is not on PATH")
    try:
        r = subprocess.run([path, action], input=stdin.encode(), capture_output=True, timeout=HELPER_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise CredentialsError(f"{program} {action}: no answer in {HELPER_TIMEOUT} s") from None
    except OSError as e:
        raise CredentialsError(f"{program} {action}: {e.strerror}") from None
    out = r.stdout[:MAX_FILE].decode(errors="replace")
    if r.returncode != 0:
        said = (out.strip() or r.stderr.decode(errors="replace").strip()).splitlines()
        text = said[0][:200] if said else f"exit status {r.returncode}"
        if "credentials not found" in text.lower() or "not found in native keychain" in text.lower():
            return None
        raise CredentialsError(f"{program} {action} failed: {text}")
    return out


def helper_get(name: str, server: str, where: str) -> Credentials | None:
    out = _helper(name, "get", server, where)
    if out is None:
        return None
    try:
        doc = json.loads(out)
        user, secret = doc["Username"], doc["Secret"]
    except (ValueError, KeyError, TypeError):
        raise CredentialsError(f"docker-credential-{name} get: the answer is not the helper protocol's JSON") from None
    if not isinstance(user, str) or not isinstance(secret, str) or not secret:
        return None
    return Credentials(user, secret, f"docker-credential-{name} ({where})")


def helper_store(name: str, server: str, user: str, password: str, where: str) -> None:
    _helper(name, "store", json.dumps({"ServerURL": server, "Username": user, "Secret": password}), where)


def helper_erase(name: str, server: str, where: str) -> bool:
    return _helper(name, "erase", server, where) is not None


# -- writing -----------------------------------------------------------------------------------


def write_auth_file(path: Path, doc: dict) -> None:
    """Write ``doc`` to ``path`` whole (part 2's ``atomic_file``: a 0600 temporary file beside
    it, renamed); the directories made 0700 when missing."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with atomic_file(path, 0o600, prefix=f".{path.name}.") as out:
        out.write(json.dumps(doc, indent="\t").encode() + b"\n")


def login_file(authfile: str | os.PathLike | None = None, environ=None) -> Path:
    """Where ``capstone login`` writes (see the module page)."""
    environ = os.environ if environ is None else environ
    if authfile:
        return Path(authfile)
    if environ.get("REGISTRY_AUTH_FILE"):
        return Path(environ["REGISTRY_AUTH_FILE"])
    containers = containers_auth_file(environ)
    if containers.exists():
        return containers
    docker = docker_config_file(environ)
    return docker if docker.exists() else containers


def _file_key(registry: str, path: Path, auths: dict) -> str:
    """The key the registry has (or gets) in the file: Docker's spelling for Docker Hub in a
    Docker config, an existing spelling when there is one."""
    for key in auths:
        if _normal_key(key) == _normal_key(registry):
            return key
    if registry in _HUB_NAMES:
        return DOCKER_HUB_KEY
    return registry


def save_credentials(registry: str, user: str, password: str, *, authfile: str | os.PathLike | None = None,
                     environ=None) -> str:
    """Save the login; returns where (a file, or a helper and the file that names it)."""
    path = login_file(authfile, environ)
    doc = read_auth_file(path)
    auths = doc.get("auths") if isinstance(doc.get("auths"), dict) else {}
    helpers = doc.get("credHelpers") if isinstance(doc.get("credHelpers"), dict) else {}
    helper = next((helpers[k] for k in _keys(registry) if isinstance(helpers.get(k), str) and helpers[k]), None)
    if helper is None and isinstance(doc.get("credsStore"), str) and doc["credsStore"]:
        helper = doc["credsStore"]
    key = _file_key(registry, path, auths)
    if helper is not None:
        helper_store(helper, _helper_key(registry), user, password, f"{path}")
        if "credHelpers" not in doc or key not in helpers:  # as docker login: the file lists the registry
            auths[key] = {}
        entry = f"docker-credential-{helper} (named in {path})"
    else:
        auths[key] = {**(auths.get(key) or {}),
                      "auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
        entry = str(path)
    doc["auths"] = auths
    write_auth_file(path, doc)
    return entry


def remove_credentials(registry: str, *, authfile: str | os.PathLike | None = None, environ=None) -> list[str]:
    """Remove the registry's credentials from every file that has them (and their helpers);
    returns where they were removed from ([] when nowhere)."""
    removed: list[str] = []
    seen: set[Path] = set()
    for path, _label in auth_files(authfile, environ):
        if path in seen:
            continue
        seen.add(path)
        doc = read_auth_file(path)
        if not doc:
            continue
        auths = doc.get("auths") if isinstance(doc.get("auths"), dict) else {}
        helpers = doc.get("credHelpers") if isinstance(doc.get("credHelpers"), dict) else {}
        helper = next((helpers[k] for k in _keys(registry) if isinstance(helpers.get(k), str) and helpers[k]), None)
        if helper is None and isinstance(doc.get("credsStore"), str) and doc["credsStore"]:
            helper = doc["credsStore"]
        if helper is not None and helper_erase(helper, _helper_key(registry), str(path)):
            removed.append(f"docker-credential-{helper}")
        keys = [k for k in auths if _normal_key(k) == _normal_key(registry)]
        if keys:
            for k in keys:
                del auths[k]
            doc["auths"] = auths
            write_auth_file(path, doc)
            removed.append(str(path))
    return removed


__all__ = [
    "Credentials",
    "CredentialsError",
    "auth_files",
    "containers_auth_file",
    "docker_config_file",
    "find_credentials",
    "login_file",
    "parse_creds",
    "remove_credentials",
    "save_credentials",
]
