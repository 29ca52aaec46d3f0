"""How a registry host is reached: plain HTTP or TLS, verified or not, with which CAs and
client certificate; as podman and docker decide it.

**Plain HTTP or TLS.** HTTPS is always tried first. Plain HTTP is used only where it is
allowed, and only when the server turns out not to speak TLS at all:

* a loopback registry (``localhost``, ``127.0.0.0/8``, ``[::1]``), as Docker treats them
  (docs/architecture.md: the CLI contract); TLS, when the server speaks it, is verified;
* a registry marked insecure: ``insecure = true`` in ``registries.conf`` (``[[registry]]``
  tables, matched by their ``prefix`` or ``location`` as containers-registries.conf(5) says,
  the longest match winning; the v1 ``[registries.insecure]`` list too), or listed in
  ``$CAPSTONE_INSECURE_REGISTRIES`` (comma separated): TLS without verification, else HTTP;
* ``--tls-verify=false``: the same for every registry of the command.

``--tls-verify=true`` (given explicitly) is TLS with verification and nothing else, whatever
the other settings say. A ``blocked = true`` registry is refused.

**Certificates** (containers-certs.d(5), and Docker's ``certs.d``): for ``HOST:PORT`` the
directory of that name under each root, ``$HOME/.config/containers/certs.d``,
``/etc/containers/certs.d`` and ``/etc/docker/certs.d`` (``$CAPSTONE_CERTS_D``, a
colon-separated list, replaces these roots; ``--cert-dir DIR`` is that one directory instead):
``*.crt`` files are CAs trusted besides the system's, ``NAME.cert`` with ``NAME.key`` a client
certificate.

**Where registries.conf is read:** ``$CONTAINERS_REGISTRIES_CONF`` alone when set; else
``$HOME/.config/containers/registries.conf`` when it exists, else
``/etc/containers/registries.conf``, then the ``*.conf`` drop-ins of ``registries.conf.d``
beside either, in name order (a later file's table for the same prefix wins).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import ssl
import tomllib
from pathlib import Path

from part1_overview import field, model

from .errors import RegistryError

SYSTEM_REGISTRIES_CONF = Path("/etc/containers/registries.conf")
SYSTEM_CERTS_D = (Path("/etc/containers/certs.d"), Path("/etc/docker/certs.d"))


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def is_loopback(registry: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` or ``::1``, with or without a port."""
    host = host_of(registry)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_of(registry: str) -> str:
    """``registry`` without its port (``[::1]:5000`` -> ``::1``)."""
    if registry.startswith("[") and "]" in registry:
        return registry[1:registry.index("]")]
    return registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry


# -- registries.conf ---------------------------------------------------------------------------


@model(frozen=True)
class RegistryEntry:
    """One ``[[registry]]`` table (or a v1 list item) that matters here: its prefix and the
    file it came from."""

    prefix: str
    insecure: bool | None
    blocked: bool | None
    source: str


def registries_conf_files(environ=None) -> list[Path]:
    """The registries.conf files in the order they are read (see the module page)."""
    environ = os.environ if environ is None else environ
    if environ.get("CONTAINERS_REGISTRIES_CONF"):
        return [Path(environ["CONTAINERS_REGISTRIES_CONF"])]
    user = Path(environ.get("HOME") or _home()) / ".config" / "containers" / "registries.conf"
    main = user if user.is_file() else SYSTEM_REGISTRIES_CONF
    files = [main] if main.is_file() else []
    for conf_d in (SYSTEM_REGISTRIES_CONF.with_suffix(".conf.d"), user.with_suffix(".conf.d")):
        with contextlib.suppress(OSError):
            files.extend(sorted(p for p in conf_d.iterdir() if p.suffix == ".conf" and p.is_file()))
    return files


def read_registries_conf(files: list[Path]) -> list[RegistryEntry]:
    """The entries of ``files`` (a malformed file is a one-line error naming it)."""
    entries: list[RegistryEntry] = []
    for path in files:
        try:
            with open(path, "rb") as f:
                doc = tomllib.load(f)
        except OSError as e:
            raise RegistryError(f"{path}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise RegistryError(f"{path}: not valid TOML: {e}") from None
        for table in doc.get("registry") or ():
            if not isinstance(table, dict):
                continue
            prefix = table.get("prefix") or table.get("location")
            if isinstance(prefix, str) and prefix:
                entries.append(RegistryEntry(prefix, _bool(table.get("insecure")), _bool(table.get("blocked")),
                                             str(path)))
        v1 = doc.get("registries")
        if isinstance(v1, dict):  # version 1: [registries.insecure] registries = [...]
            for key, insecure, blocked in (("insecure", True, None), ("block", None, True)):
                for name in (v1.get(key) or {}).get("registries") or ():
                    if isinstance(name, str) and name:
                        entries.append(RegistryEntry(name, insecure, blocked, str(path)))
    return entries


def _bool(value) -> bool | None:
    return value if isinstance(value, bool) else None


def _matches(prefix: str, name: str) -> bool:
    """containers-registries.conf(5): ``name`` starts with ``prefix`` and goes on with a
    separator; ``*.example.com`` matches any subdomain's registry."""
    if prefix.startswith("*."):
        host = name.split("/", 1)[0]
        return host_of(host).endswith(prefix[1:])
    if not name.startswith(prefix):
        return False
    return len(name) == len(prefix) or name[len(prefix)] in "/:@"


def registry_entry(registry: str, repository: str | None = None, environ=None) -> RegistryEntry | None:
    """The registries.conf entry for ``registry[/repository]``: the longest matching prefix
    (the last one read among equals)."""
    name = f"{registry}/{repository}" if repository else registry
    best: RegistryEntry | None = None
    for entry in read_registries_conf(registries_conf_files(environ)):
        if _matches(entry.prefix, name) and (best is None or len(entry.prefix) >= len(best.prefix)):
            best = entry
    return best


# -- certs.d -----------------------------------------------------------------------------------


def certs_d_roots(environ=None) -> list[Path]:
    """Where ``HOST:PORT`` certificate directories are looked for (see the module page)."""
    environ = os.environ if environ is None else environ
    if environ.get("CAPSTONE_CERTS_D") is not None:
        return [Path(p) for p in environ["CAPSTONE_CERTS_D"].split(":") if p]
    user = Path(environ.get("HOME") or _home()) / ".config" / "containers" / "certs.d"
    return [user, *SYSTEM_CERTS_D]


@model(frozen=True)
class Certificates:
    """The CA files and client certificate pairs found for one registry."""

    cas: tuple[Path, ...] = ()
    client: tuple[tuple[Path, Path], ...] = ()
    directories: tuple[Path, ...] = ()


def find_certificates(registry: str, cert_dir: str | os.PathLike | None = None, environ=None) -> Certificates:
    """The certificates for ``registry`` from ``cert_dir``, else from every certs.d root."""
    dirs = [Path(cert_dir)] if cert_dir else [root / registry for root in certs_d_roots(environ)]
    cas: list[Path] = []
    client: list[tuple[Path, Path]] = []
    used: list[Path] = []
    for d in dirs:
        try:
            names = sorted(p.name for p in d.iterdir())
        except OSError:
            continue
        used.append(d)
        for name in names:
            if name.endswith(".crt"):
                cas.append(d / name)
            elif name.endswith(".cert"):
                key = d / (name[:-len(".cert")] + ".key")
                if not key.is_file():
                    raise RegistryError(f"{d / name}: a client certificate without its key {key.name}")
                client.append((d / name, key))
            elif name.endswith(".key") and (name[:-len(".key")] + ".cert") not in names:
                raise RegistryError(f"{d / name}: a client key without its certificate {name[:-4]}.cert")
    return Certificates(tuple(cas), tuple(client), tuple(used))


# -- the decision ------------------------------------------------------------------------------


@model(frozen=True)
class HostConfig:
    """How to reach one registry.

    ``verify``: check the server's certificate; ``allow_http``: fall back to plain HTTP when the
    server does not speak TLS; ``certificates``: from certs.d; ``why``: what made it insecure
    (for messages: ``--tls-verify=false``, ``insecure in /etc/containers/registries.conf``,
    ``a loopback registry``), empty when it is the default TLS."""

    registry: str
    verify: bool = True
    allow_http: bool = False
    certificates: Certificates = field(default_factory=Certificates)
    why: str = ""

    @classmethod
    def for_registry(cls, registry: str, repository: str | None = None, *, tls_verify: bool | None = None,
                     cert_dir: str | os.PathLike | None = None, environ=None) -> "HostConfig":
        """The configuration of ``registry`` from the command line's ``tls_verify`` (None: not
        given) and ``cert_dir``, registries.conf, the environment and certs.d."""
        environ = os.environ if environ is None else environ
        entry = registry_entry(registry, repository, environ)
        if entry is not None and entry.blocked:
            raise RegistryError(f"registry {registry} is blocked in {entry.source}")
        certificates = find_certificates(registry, cert_dir, environ)
        if tls_verify is True:
            return cls(registry, True, False, certificates)
        if tls_verify is False:
            return cls(registry, False, True, certificates, "--tls-verify=false")
        listed = [h.strip() for h in environ.get("CAPSTONE_INSECURE_REGISTRIES", "").split(",") if h.strip()]
        if registry in listed or host_of(registry) in listed:
            return cls(registry, False, True, certificates, "$CAPSTONE_INSECURE_REGISTRIES")
        if entry is not None and entry.insecure:
            return cls(registry, False, True, certificates, f"insecure in {entry.source}")
        if is_loopback(registry):
            return cls(registry, True, True, certificates, "a loopback registry")
        return cls(registry, True, False, certificates)

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context: the system's CAs and certs.d's, client certificates; no
        verification when ``verify`` is false."""
        ctx = ssl.create_default_context()
        for ca in self.certificates.cas:
            try:
                ctx.load_verify_locations(cafile=str(ca))
            except (OSError, ssl.SSLError) as e:
                raise RegistryError(f"{ca}: not a CA certificate ({_reason(e)})") from None
        for cert, key in self.certificates.client:
            try:
                ctx.load_cert_chain(str(cert), str(key))
            except (OSError, ssl.SSLError) as e:
                raise RegistryError(f"{cert}: cannot use it as a client certificate with {key.name} ({_reason(e)})") from None
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


def _reason(e: BaseException) -> str:
    return getattr(e, "reason", None) or getattr(e, "strerror", None) or str(e)


#: OpenSSL's words when what came back is no TLS at all (an HTTP server answered, or hung up)
NOT_TLS_REASONS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG",
                             "HTTP_REQUEST", "UNKNOWN_PROTOCOL", "UNEXPECTED_RECORD",
                             "UNEXPECTED_EOF_WHILE_READING"})


def speaks_no_tls(error: BaseException) -> bool:
    """Whether a failed handshake means the server speaks plain HTTP (not a certificate or a
    protocol disagreement)."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return False
        if isinstance(cause, ssl.SSLError):
            return (cause.reason or "") in NOT_TLS_REASONS
        cause = cause.__cause__ or cause.__context__
    return False


def is_certificate_error(error: BaseException) -> bool:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


__all__ = ["Certificates", "HostConfig", "find_certificates", "host_of", "is_loopback", "registry_entry"]
