"""A Docker Registry HTTP API v2 client (the OCI distribution spec), over httpx.

The calls a pull, a push and a login need:

* ``GET /v2/``: is it a registry, and what authentication does it want (``login``);
* ``GET /v2/<name>/manifests/<reference>`` with an ``Accept`` of the four manifest and index
  types; ``PUT`` the same URL with the manifest's own ``Content-Type`` to push one;
* ``HEAD``/``GET /v2/<name>/blobs/<digest>`` (blob downloads may redirect to a CDN: followed,
  and httpx drops the ``Authorization`` header when the host changes); a download that breaks
  goes on with ``Range: bytes=N-`` (:class:`~capstone.download.ResumableBody`);
* ``POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<other>``: a blob the registry has in
  another repository is mounted, not sent again (201); otherwise the 202 is an upload session;
* an upload: one ``PUT <location>?digest=`` with the whole blob (the spec's "monolithic"
  upload), or for a blob larger than :attr:`RegistryClient.chunk_size` a ``PATCH`` per chunk
  with its ``Content-Range`` and a closing ``PUT ?digest=``; a chunk whose connection fails is
  sent again from where the registry says the upload stands (``GET <location>``: ``Range``).

**Reaching the host**: :mod:`.hostconfig` (TLS, certs.d, registries.conf, plain HTTP for
loopback and insecure registries only). **Auth**, as the distribution spec's token flow: a
request answered ``401`` with ``WWW-Authenticate: Bearer realm="...",service="...",scope="..."``
makes the client fetch a token from ``realm`` for the scopes the request needs (``pull``, or
``pull,push``, plus ``pull`` on a repository a blob is mounted from), with Basic credentials
when it has some and anonymously otherwise, then repeat the request with ``Authorization:
Bearer <token>``; tokens are kept per scope. ``Basic`` challenges are answered with the
credentials directly. Credentials come from the caller or :mod:`.credentials`, looked up
only when a registry asks for them; a refusal names the registry, the user and where the
credentials came from, never the secret.

**Bounds and retries.** Every request and every body goes through ``capstone.download``: the
client's timeouts, minimum rate, retries and parallelism are its
:class:`~capstone.download.Limits`; a blob is read as exactly its descriptor's size, a
manifest as at most 4 MiB (its descriptor's size when it has one), tokens, tag lists and error
bodies as small bodies; a network failure is one :class:`~capstone.download.DownloadError`
line.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from urllib.parse import quote, urlencode, urljoin

import httpx

from part1_overview import model, replace
from part2_manual_oci import MAX_JSON_SIZE
from part2_manual_oci import mediatypes as mt

from ..download import (
    MAX_ERROR_BODY,
    DownloadTooSlow,
    Limits,
    NetworkError,
    ResumableBody,
    http_client,
    read_body,
    send,
)
from ..errors import CapstoneError
from .credentials import Credentials, find_credentials
from .errors import BlobUnknown, DigestMismatch, ManifestUnknown, RegistryAuthError, RegistryError
from .hostconfig import HostConfig, is_certificate_error, is_loopback, speaks_no_tls

#: registries whose API lives on another host than their name says
API_HOSTS = {"docker.io": "registry-1.docker.io", "index.docker.io": "registry-1.docker.io"}

#: what we accept for a manifest GET, preferred first
MANIFEST_ACCEPT = (mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST)

#: a manifest bigger than this is refused (distribution's own limit, part 2's for JSON documents)
MAX_MANIFEST = MAX_JSON_SIZE
#: a token service's answer or a tag list bigger than this is refused
MAX_SMALL_BODY = 1 << 20

CHUNK = 1 << 20
#: seconds a registry that may speak plain HTTP gets to answer a TLS hello
PROBE_TIMEOUT = 5.0
#: blobs larger than this are uploaded in chunks of this size ($CAPSTONE_UPLOAD_CHUNK)
DEFAULT_UPLOAD_CHUNK = 64 << 20


@model(frozen=True)
class RegistryOptions:
    """What the command line says about registries: ``tls_verify`` (``--tls-verify``; None:
    not given), ``cert_dir`` (``--cert-dir``), ``creds`` (``--creds USER:PASSWORD``) and
    ``authfile`` (``--authfile``)."""

    tls_verify: bool | None = None
    cert_dir: str | None = None
    creds: str | None = None
    authfile: str | None = None


def is_insecure(registry: str) -> bool:
    """May this registry be reached over plain HTTP (loopback, or marked insecure)?"""
    return HostConfig.for_registry(registry).allow_http


_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="https://a/token",service="r",scope="x"`` -> ("bearer", {...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _CHALLENGE_PARAM.finditer(rest)}
    return scheme.lower(), params


def _upload_chunk() -> int:
    text = os.environ.get("CAPSTONE_UPLOAD_CHUNK")
    if not text:
        return DEFAULT_UPLOAD_CHUNK
    from ..download import _size

    try:
        value = _size(text)
    except ValueError:
        raise RegistryError(f"$CAPSTONE_UPLOAD_CHUNK={text!r}: not a size") from None
    if 0 < value < 1024:
        raise RegistryError(f"$CAPSTONE_UPLOAD_CHUNK={text!r}: at least 1K (0: never in chunks)")
    return value


class RegistryClient:
    """One registry (``host[:port]``), e.g. ``RegistryClient("127.0.0.1:5000")``.

    A context manager (closes the connection pool). ``options``: the command line's TLS and
    credential flags; ``insecure``: True allows plain HTTP and unverified TLS, False demands
    verified TLS (None: :class:`~.hostconfig.HostConfig` decides); ``credentials``:
    ``(user, password)`` or :class:`~.credentials.Credentials` (None: looked up when asked
    for); ``limits``: timeouts, rate, retries (None: ``Limits.from_environment()``);
    ``on_note``: hears retries. Safe to share between the threads of one transfer.
    """

    def __init__(
        self,
        registry: str,
        *,
        options: RegistryOptions | None = None,
        insecure: bool | None = None,
        credentials: tuple[str, str] | Credentials | None = None,
        limits: Limits | None = None,
        repository: str | None = None,
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        self.registry = registry
        self.host = API_HOSTS.get(registry, registry)
        self.options = options or RegistryOptions()
        verify = self.options.tls_verify if insecure is None else not insecure
        self.config = HostConfig.for_registry(registry, repository, tls_verify=verify, cert_dir=self.options.cert_dir)
        if isinstance(credentials, tuple):
            credentials = Credentials(credentials[0], credentials[1], "the caller")
        self._given = credentials
        self._credentials: dict[str | None, Credentials | None] = {}
        self._tokens: dict[str, str] = {}
        self._basic: Credentials | None = None
        self._lock = threading.Lock()
        self._base: str | None = None if self.config.allow_http else f"https://{self.host}"
        self.limits = limits or Limits.from_environment()
        self.chunk_size = _upload_chunk()
        self.on_note = on_note
        self._http = http_client(self.limits, verify=self.config.ssl_context())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RegistryClient({self._base or self.host})"

    # -- where the registry is ---------------------------------------------------------------
    @property
    def base(self) -> str:
        """``https://HOST`` or, where plain HTTP is allowed and the server speaks no TLS,
        ``http://HOST`` (found out by one request, the first time it is needed)."""
        if self._base is None:
            with self._lock:
                if self._base is None:
                    self._base = self._probe()
        return self._base

    def _probe(self) -> str:
        url = f"https://{self.host}/v2/"
        # a server that waits for an HTTP request never answers a TLS hello: a short wait says so
        timeout = httpx.Timeout(self.limits.read_timeout, connect=min(self.limits.connect_timeout, PROBE_TIMEOUT))
        try:
            r = send(self._http, "GET", url, limits=replace(self.limits, retries=0), timeout=timeout)
        except DownloadTooSlow:
            return f"http://{self.host}"
        except NetworkError as e:
            if speaks_no_tls(e):
                return f"http://{self.host}"
            return f"https://{self.host}"  # the real request fails again, with its retries and its words
        r.close()
        return f"https://{self.host}"

    def _url(self, path_or_url: str) -> str:
        return path_or_url if "://" in path_or_url else self.base + path_or_url

    def _note(self, text: str) -> None:
        if self.on_note is not None:
            self.on_note(text)

    # -- credentials and tokens --------------------------------------------------------------
    def credentials(self, repository: str | None = None) -> Credentials | None:
        """The credentials for the registry (and a repository namespace), looked up once."""
        if self._given is not None:
            return self._given
        if repository not in self._credentials:
            self._credentials[repository] = find_credentials(
                self.registry, repository, creds=self.options.creds, authfile=self.options.authfile)
        return self._credentials[repository]

    def _auth_headers(self, scope: str) -> dict[str, str]:
        token = self._tokens.get(scope)
        if token is not None:
            return {"Authorization": f"Bearer {token}"}
        if self._basic is not None:
            return {"Authorization": _basic(self._basic)}
        return {}

    def _send(
        self,
        method: str,
        path_or_url: str,
        *,
        scope: str,
        headers: dict[str, str] | None = None,
        body: Callable[[], bytes | Iterator[bytes]] | None = None,
        stream: bool = False,
        cancel: threading.Event | None = None,
        retries: bool = True,
    ) -> httpx.Response:
        """Send (with the retries of ``capstone.download.send``), answering one auth
        challenge; the response is streamed when ``stream``. ``body`` is a factory so the
        request can be sent again."""
        url = self._url(path_or_url)
        limits = self.limits if retries else replace(self.limits, retries=0)
        for attempt in (1, 2):
            hdrs = {**(headers or {}), **self._auth_headers(scope)}
            try:
                response = send(self._http, method, url, headers=hdrs, content=body, limits=limits,
                                cancel=cancel, on_retry=self._note)
            except NetworkError as e:
                if is_certificate_error(e):
                    e.args = (f"{e} (trust its CA in certs.d/{self.registry}/ca.crt, or --tls-verify=false)",)
                raise
            if response.status_code != 401 or attempt == 2:
                break
            challenge = response.headers.get("www-authenticate", "")
            if not challenge:
                break
            response.close()
            self._answer(challenge, scope, url)
        if not stream:
            # a body nobody streams is small (an upload's answer): read it, bounded
            try:
                # a HEAD's Content-Length is the size of what a GET would send: no body
                data = b"" if method == "HEAD" or response.status_code in (204, 304) else \
                    read_body(response, what=f"{method} {url}", limit=MAX_SMALL_BODY, limits=self.limits)
            finally:
                response.close()
            response = httpx.Response(response.status_code, headers=response.headers, content=data,
                                      request=response.request)
        return response

    def _answer(self, challenge: str, scope: str, url: str) -> None:
        scheme, params = parse_challenge(challenge)
        repository = _scope_repository(scope)
        creds = self.credentials(repository)
        if scheme == "basic":
            if creds is None:
                raise RegistryAuthError(f"{self.registry} wants a user name and password for {url}: no credentials "
                                        f"found (capstone login {self.registry}, --creds or --authfile)")
            self._basic = creds
            return
        if scheme != "bearer" or "realm" not in params:
            raise RegistryAuthError(f"{url}: unsupported auth challenge {challenge.split(' ', 1)[0]!r}")
        with self._lock:
            if scope in self._tokens:  # another thread fetched it meanwhile
                return
            self._tokens[scope] = self._token(params, scope, creds)

    def _token(self, params: dict[str, str], scope: str, creds: Credentials | None) -> str:
        query: list[tuple[str, str]] = []
        if params.get("service"):
            query.append(("service", params["service"]))
        for item in (scope or params.get("scope") or "").split(" "):
            if item:
                query.append(("scope", item))
        if creds is not None:
            query.append(("account", creds.username))
        realm = params["realm"]
        where = f"token service {realm}"
        auth = httpx.BasicAuth(creds.username, creds.password) if creds is not None else None
        sep = "&" if "?" in realm else "?"
        r = send(self._http, "GET", realm + (sep + urlencode(query) if query else ""), what=where, auth=auth,
                 limits=self.limits, on_retry=self._note)
        try:
            if r.status_code != 200:
                status = f"{r.status_code} {r.reason_phrase}{_error_text(r, where)}"
                if r.status_code in (401, 403) and creds is not None:
                    raise RegistryAuthError(f"{self.registry} refused {creds}: {where}: {status}")
                raise RegistryAuthError(f"{where}: {status}")
            text = read_body(r, what=where, limit=MAX_SMALL_BODY, limits=self.limits)
        finally:
            r.close()
        try:
            data = json.loads(text)
        except ValueError:
            raise RegistryAuthError(f"{where}: the answer is not JSON") from None
        token = (data.get("token") or data.get("access_token")) if isinstance(data, dict) else None
        if not token or not isinstance(token, str):
            raise RegistryAuthError(f"{where}: no token in the answer")
        return token

    def _check(self, response: httpx.Response, expected: tuple[int, ...], what: str, unknown=RegistryError,
               scope: str = "") -> None:
        if response.status_code in expected:
            return
        status = response.status_code
        text = f"{what}: {status} {response.reason_phrase}{_error_text(response, what)}"
        response.close()
        if status in (401, 403):
            raise RegistryAuthError(self._refusal(status, scope, text))
        if status == 404:
            raise unknown(text)
        raise RegistryError(text)

    def _refusal(self, status: int, scope: str, text: str) -> str:
        """Who was refused what, and where their credentials came from."""
        repository = _scope_repository(scope)
        creds = self._basic or (self.credentials(repository) if repository or scope else None)
        action = "push to" if ":push" in scope or ",push" in scope else "pull from"
        where = f"{self.registry}/{repository}" if repository else self.registry
        if creds is None:
            return (f"{where} wants credentials to {action.split()[0]} (none found: capstone login {self.registry}, "
                    f"--creds or --authfile): {text}")
        if status == 401:
            return f"{self.registry} refused {creds}: {text}"
        return f"{creds} may not {action} {where}: {text}"

    # -- the API -----------------------------------------------------------------------------
    def ping(self) -> None:
        """``GET /v2/``: is this a v2 registry? (401 counts: it answered as one.)"""
        r = self._send("GET", "/v2/", scope="")
        if r.status_code not in (200, 401):
            raise RegistryError(f"GET {self.base}/v2/: {r.status_code} {r.reason_phrase}: not a v2 registry")

    def login(self, credentials: Credentials) -> None:
        """Check ``credentials`` as ``docker login`` does: ``GET /v2/``, and the token service
        (with no scope) or Basic auth it asks for must accept them. RegistryAuthError names the
        registry and the user when they are refused."""
        self._given = credentials
        self._tokens.clear()
        self._basic = None
        r = self._send("GET", "/v2/", scope="")
        if r.status_code == 200:
            return
        if r.status_code == 401:
            raise RegistryAuthError(f"{self.registry} refused {credentials}: GET {self.base}/v2/: 401 "
                                    f"{r.reason_phrase}{_error_text(r, '')}")
        raise RegistryError(f"GET {self.base}/v2/: {r.status_code} {r.reason_phrase}: not a v2 registry")

    def get_manifest(self, repository: str, reference: str, size: int | None = None) -> tuple[bytes, str, str]:
        """``(bytes, media type, digest)`` of a manifest or index, by tag or digest. Fetched by
        digest, the bytes are checked against it; ``size`` (a descriptor's) is the exact size
        that must arrive, else at most 4 MiB are read."""
        url = f"/v2/{repository}/manifests/{reference}"
        if size is not None and size > MAX_MANIFEST:
            raise RegistryError(f"manifest {repository}@{reference}: {size} bytes, more than the limit of {MAX_MANIFEST}")
        scope = pull_scope(repository)
        r = self._send("GET", url, scope=scope, headers={"Accept": ", ".join(MANIFEST_ACCEPT)}, stream=True)
        try:
            self._check(r, (200,), f"GET {self._url(url)}", ManifestUnknown, scope)
            data = read_body(r, what=f"GET {self._url(url)}", limit=MAX_MANIFEST, expected=size, limits=self.limits)
        finally:
            r.close()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise DigestMismatch(f"manifest {repository}@{reference}: the registry sent bytes hashing to {digest}")
        media_type = r.headers.get("content-type", "").split(";")[0].strip()
        if media_type not in MANIFEST_ACCEPT:
            try:
                doc = json.loads(data)
            except ValueError:
                raise RegistryError(f"manifest {repository}:{reference}: not JSON") from None
            media_type = (doc.get("mediaType") if isinstance(doc, dict) else None) or ""
            if not media_type and isinstance(doc, dict):  # OCI lets a manifest omit mediaType: tell them apart by shape
                media_type = mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST
        return data, media_type, digest

    def has_blob(self, repository: str, digest: str) -> bool:
        """``HEAD`` the blob: does the repository already have it?"""
        url = f"/v2/{repository}/blobs/{digest}"
        scope = pull_scope(repository)
        r = self._send("HEAD", url, scope=scope)
        if r.status_code == 200:
            return True
        if r.status_code == 404:
            return False
        self._check(r, (200,), f"HEAD {self._url(url)}", scope=scope)
        return False

    @contextlib.contextmanager
    def open_blob(self, repository: str, digest: str, size: int, *, meter: Callable[[int], None] | None = None,
                  cancel: threading.Event | None = None) -> Iterator[ResumableBody]:
        """A readable stream of the blob's bytes, exactly ``size`` of them (the descriptor's:
        one byte more stops the transfer), resumed where it broke off; not hashed here:
        ``put_blob`` with ``expected_digest`` hashes while it stores. ``meter`` hears the bytes
        as they arrive, ``cancel`` stops the transfer."""
        url = f"/v2/{repository}/blobs/{digest}"
        scope = pull_scope(repository)

        def open_at(offset: int) -> httpx.Response:
            headers = {"Range": f"bytes={offset}-"} if offset else None
            r = self._send("GET", url, scope=scope, headers=headers, stream=True, cancel=cancel)
            self._check(r, (200, 206) if offset else (200,), f"GET {self._url(url)}", BlobUnknown, scope)
            return r

        body = ResumableBody(open_at, what=f"GET {self._url(url)}", expected=size, limits=self.limits, meter=meter,
                             cancel=cancel, on_retry=self._note)
        try:
            yield body
        finally:
            body.close()

    def upload_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        open_source: Callable[[], io.BufferedIOBase],
        *,
        mount_from: Sequence[str] = (),
        meter: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> str:
        """Upload one blob, or mount it: returns ``"mounted"`` or ``"uploaded"``.

        ``mount_from``: repositories of this registry that may have the blob (the first that
        does lends it: no byte is sent). Otherwise all ``size`` bytes are sent from
        ``open_source()`` (called again for a retry), in one ``PUT`` or, for a blob larger
        than :attr:`chunk_size`, chunk by chunk; the registry checks the digest."""
        start = f"/v2/{repository}/blobs/uploads/"
        location = None
        for source in mount_from:
            if source == repository:
                continue
            scope = f"{push_scope(repository)} {pull_scope(source)}"
            query = urlencode({"mount": digest, "from": source})
            r = self._send("POST", f"{start}?{query}", scope=scope, headers={"Content-Length": "0"})
            if r.status_code == 201:
                return "mounted"
            if r.status_code == 202:  # not mounted: the answer is an upload session to use
                location = self._location(r, start)
                break
            if r.status_code in (401, 403, 404):
                continue  # no pull rights on the source, or no such repository: upload instead
            self._check(r, (201, 202), f"POST {self._url(start)}?{query}", scope=scope)
        scope = push_scope(repository)
        if location is None:
            r = self._send("POST", start, scope=scope, headers={"Content-Length": "0"})
            self._check(r, (202,), f"POST {self._url(start)}", scope=scope)
            location = self._location(r, start)
            minimum = _int(r.headers.get("oci-chunk-min-length"))
        else:
            minimum = None
        chunk = max(self.chunk_size, minimum or 0)
        if self.chunk_size <= 0 or size <= chunk:
            self._put_whole(repository, location, digest, size, open_source, meter, cancel)
        else:
            self._put_chunked(repository, location, digest, size, chunk, open_source, meter, cancel)
        return "uploaded"

    def _location(self, r: httpx.Response, start: str) -> str:
        location = r.headers.get("location")
        if not location:
            raise RegistryError(f"POST {self._url(start)}: no Location for the upload")
        return urljoin(self._url(start), location)

    def _put_whole(self, repository, location, digest, size, open_source, meter, cancel) -> None:
        sent = [0]

        def body() -> Iterator[bytes]:
            if sent[0] and meter is not None:  # sent again after a failure: the bar goes back
                meter(-sent[0])
            sent[0] = 0
            with open_source() as f:
                while block := f.read(CHUNK):
                    if cancel is not None and cancel.is_set():
                        from ..download import TransferCancelled

                        raise TransferCancelled(f"PUT blob {digest}: stopped")
                    sent[0] += len(block)
                    if meter is not None:
                        meter(len(block))
                    yield block

        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        scope = push_scope(repository)
        r = self._send("PUT", _with_digest(location, digest), scope=scope, headers=headers, body=body, cancel=cancel)
        self._check(r, (201,), f"PUT blob {digest} to {self.registry}/{repository}", scope=scope)

    def _put_chunked(self, repository, location, digest, size, chunk, open_source, meter, cancel) -> None:
        """PATCH chunk after chunk (each one ``Content-Range: START-END``), then PUT the
        digest. A chunk that fails is sent again from the offset the registry reports."""
        from ..download import TransferCancelled

        scope = push_scope(repository)
        offset = 0
        failures = 0
        with open_source() as f:
            while offset < size:
                if cancel is not None and cancel.is_set():
                    raise TransferCancelled(f"PATCH blob {digest}: stopped")
                length = min(chunk, size - offset)
                start = offset

                def body(start=start, length=length) -> Iterator[bytes]:
                    f.seek(start)
                    left = length
                    while left:
                        block = f.read(min(CHUNK, left))
                        if not block:
                            raise RegistryError(f"blob {digest}: the file ended before {size} bytes")
                        left -= len(block)
                        yield block

                headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length),
                           "Content-Range": f"{start}-{start + length - 1}"}
                try:
                    r = self._send("PATCH", location, scope=scope, headers=headers, body=body, cancel=cancel,
                                   retries=False)
                    self._check(r, (202,), f"PATCH blob {digest} to {self.registry}/{repository} "
                                           f"(bytes {start}-{start + length - 1})", scope=scope)
                except (NetworkError, RegistryError) as e:
                    failures += 1
                    if isinstance(e, RegistryAuthError) or failures > self.limits.retries or \
                            (isinstance(e, NetworkError) and not e.retryable):
                        raise
                    offset, location = self._upload_offset(location, scope, digest)
                    self._note(f"{e}; going on at byte {offset}")
                    if meter is not None:
                        meter(offset - start)
                    continue
                failures = 0
                location = self._location(r, location)
                offset = start + length
                if meter is not None:
                    meter(length)
        r = self._send("PUT", _with_digest(location, digest), scope=scope, headers={"Content-Length": "0"},
                       cancel=cancel)
        self._check(r, (201,), f"PUT blob {digest} to {self.registry}/{repository}", scope=scope)

    def _upload_offset(self, location: str, scope: str, digest: str) -> tuple[int, str]:
        """Where an upload stands, and its location from now on: ``GET <location>`` answers
        204 with ``Range: 0-END`` (the last byte received) and a fresh ``Location``."""
        r = self._send("GET", location, scope=scope)
        self._check(r, (204,), f"GET upload status of {digest}", scope=scope)
        found = re.fullmatch(r"(?:bytes=)?0-(\d+)", (r.headers.get("range") or "").strip())
        # distribution says 0-0 for an empty upload too; a chunk is never a single byte
        received = int(found.group(1)) + 1 if found and found.group(1) != "0" else 0
        return received, self._location(r, location) if r.headers.get("location") else location

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        """``PUT`` a manifest (or index) under a tag or its digest; returns its digest."""
        url = f"/v2/{repository}/manifests/{reference}"
        scope = push_scope(repository)
        r = self._send("PUT", url, scope=scope, headers={"Content-Type": media_type}, body=lambda: data)
        self._check(r, (201,), f"PUT {self._url(url)}", ManifestUnknown, scope)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        sent = r.headers.get("docker-content-digest")
        if sent and sent != digest:
            raise DigestMismatch(f"PUT {self._url(url)}: the registry stored {sent}, we sent {digest}")
        return digest

    def tags(self, repository: str) -> list[str]:
        """``GET /v2/<name>/tags/list`` (first page)."""
        url = f"/v2/{repository}/tags/list"
        scope = pull_scope(repository)
        r = self._send("GET", url, scope=scope)
        self._check(r, (200,), f"GET {self._url(url)}", ManifestUnknown, scope)
        try:
            doc = json.loads(r.content)
        except ValueError:
            raise RegistryError(f"GET {self._url(url)}: the answer is not JSON") from None
        tags = doc.get("tags") if isinstance(doc, dict) else None
        return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


def _scope_repository(scope: str) -> str | None:
    """The repository of a scope's first item (``repository:a/b:pull`` -> ``a/b``)."""
    first = scope.split(" ", 1)[0]
    parts = first.split(":")
    return parts[1] if len(parts) == 3 and parts[0] == "repository" else None


def _with_digest(location: str, digest: str) -> str:
    # the Location keeps the session's state in its query: append to it, never replace it
    return location + ("&" if "?" in location else "?") + "digest=" + quote(digest, safe="")


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


def _basic(credentials: Credentials) -> str:
    return "Basic " + base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()


def _error_text(r: httpx.Response, what: str) -> str:
    """The registry's own words: ``{"errors": [{"code": ..., "message": ...}]}`` (the body is
    read when it was streamed: at most 64 KiB, and a failure to read it only loses the
    detail)."""
    if r.request.method == "HEAD":
        return ""
    try:
        data = r.content if r.is_stream_consumed else read_body(r, what=what, limit=MAX_ERROR_BODY)
        doc = json.loads(data)
    except (ValueError, CapstoneError, httpx.StreamError):
        return ""
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return ""
    words = [f"{e.get('code', '')} {e.get('message', '')}".strip() for e in errors if isinstance(e, dict)]
    return f" ({'; '.join(w for w in words if w)[:500]})" if any(words) else ""


__all__ = ["RegistryClient", "RegistryOptions", "is_insecure", "is_loopback", "parse_challenge"]
