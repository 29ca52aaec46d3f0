"""A Docker Registry HTTP API v2 client (the OCI distribution spec), over httpx.

The calls a pull and a push need, nothing more:

* ``GET /v2/<name>/manifests/<reference>`` with an ``Accept`` of the four manifest and index
  types; ``PUT`` the same URL with the manifest's own ``Content-Type`` to push one;
* ``HEAD``/``GET /v2/<name>/blobs/<digest>`` (blob downloads may redirect to a CDN: followed,
  and httpx drops the ``Authorization`` header when the host changes);
* ``POST /v2/<name>/blobs/uploads/`` (202 + ``Location``), then one ``PUT <location>?digest=``
  with the whole blob streamed from disk: the spec's "monolithic" upload in two requests.

**Plain HTTP** for ``localhost``, ``127.0.0.1`` and ``[::1]`` registries (as Docker does), and
for hosts listed in ``$CAPSTONE_INSECURE_REGISTRIES`` (comma separated); HTTPS otherwise.

**Auth**, as the distribution spec's token flow: a request answered ``401`` with
``WWW-Authenticate: Bearer realm="...",service="...",scope="..."`` makes the client fetch a
token from ``realm`` (with Basic credentials when it has some, anonymous otherwise), then repeat
the request with ``Authorization: Bearer <token>``; tokens are kept per scope. ``Basic``
challenges are answered with the credentials directly. Credentials come from the caller, or
from ``auths`` in ``$DOCKER_CONFIG/config.json`` / ``~/.docker/config.json`` /
``$REGISTRY_AUTH_FILE`` (podman's), base64 ``user:password`` as ``docker login`` stores them.

**Bounds.** Every request and every body goes through ``capstone.download``: the client's
timeouts and minimum rate are its :class:`~capstone.download.Limits`, a blob is read as exactly
its descriptor's size, a manifest as at most 4 MiB (its descriptor's size when it has one),
tokens, tag lists and error bodies as small bodies; a network failure is one
:class:`~capstone.download.DownloadError` line.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urljoin

import httpx

from part2_manual_oci import MAX_JSON_SIZE
from part2_manual_oci import mediatypes as mt

from ..download import MAX_ERROR_BODY, Body, Limits, http_client, network_errors, read_body
from ..errors import CapstoneError
from .errors import BlobUnknown, DigestMismatch, ManifestUnknown, RegistryAuthError, RegistryError

#: registries whose API lives on another host than their name says
API_HOSTS = {"docker.io": "registry-1.docker.io", "index.docker.io": "registry-1.docker.io"}

#: what we accept for a manifest GET, preferred first
MANIFEST_ACCEPT = (mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST)

#: a manifest bigger than this is refused (distribution's own limit, part 2's for JSON documents)
MAX_MANIFEST = MAX_JSON_SIZE
#: a token service's answer or a tag list bigger than this is refused
MAX_SMALL_BODY = 1 << 20

CHUNK = 1 << 20

_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def is_insecure(registry: str) -> bool:
    """Plain HTTP for this registry? (localhost and loopback, or listed in the environment)."""
    host = registry[1:registry.index("]")] if registry.startswith("[") and "]" in registry else registry.split(":", 1)[0]
    listed = [h.strip() for h in os.environ.get("CAPSTONE_INSECURE_REGISTRIES", "").split(",") if h.strip()]
    return host in _LOCAL_HOSTS or registry in listed or host in listed


def stored_credentials(registry: str) -> tuple[str, str] | None:
    """``(user, password)`` for ``registry`` from docker's or podman's auth file, if any."""
    files = []
    if os.environ.get("REGISTRY_AUTH_FILE"):
        files.append(Path(os.environ["REGISTRY_AUTH_FILE"]))
    docker_dir = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    files.append(docker_dir / "config.json")
    keys = {registry, f"https://{registry}", f"http://{registry}"}
    if registry in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        keys |= {"https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"}
    for f in files:
        try:
            auths = json.loads(f.read_text()).get("auths") or {}
        except (OSError, ValueError):
            continue
        for key, entry in auths.items():
            if key.rstrip("/") in keys or key in keys:
                token = (entry or {}).get("auth")
                if token:
                    user, _, password = base64.b64decode(token).decode().partition(":")
                    return user, password
    return None


_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="https://a/token",service="r",scope="x"`` -> ("bearer", {...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _CHALLENGE_PARAM.finditer(rest)}
    return scheme.lower(), params


class RegistryClient:
    """One registry (``host[:port]``), e.g. ``RegistryClient("127.0.0.1:5000")``.

    A context manager (closes the connection pool). ``insecure``: None decides by
    :func:`is_insecure`; ``credentials``: ``(user, password)``, None reads the auth files;
    ``limits``: timeouts and minimum rate (None: ``Limits.from_environment()``).
    """

    def __init__(
        self,
        registry: str,
        *,
        insecure: bool | None = None,
        credentials: tuple[str, str] | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.registry = registry
        self.host = API_HOSTS.get(registry, registry)
        plain = is_insecure(registry) if insecure is None else insecure
        self.base = f"{'http' if plain else 'https'}://{self.host}"
        self.credentials = credentials if credentials is not None else stored_credentials(registry)
        self._tokens: dict[str, str] = {}
        self._basic = False
        self.limits = limits or Limits.from_environment()
        self._http = http_client(self.limits)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RegistryClient({self.base})"

    # -- requests with auth ------------------------------------------------------------------
    def _url(self, path_or_url: str) -> str:
        return path_or_url if "://" in path_or_url else self.base + path_or_url

    def _auth_headers(self, scope: str) -> dict[str, str]:
        if scope in self._tokens:
            return {"Authorization": f"Bearer {self._tokens[scope]}"}
        if self._basic and self.credentials:
            return {"Authorization": _basic(self.credentials)}
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
    ) -> httpx.Response:
        """Send, answering one auth challenge; the response is streamed when ``stream``.
        ``body`` is a factory so the request can be sent again after the challenge."""
        url = self._url(path_or_url)
        for attempt in (1, 2):
            hdrs = {**(headers or {}), **self._auth_headers(scope)}
            with network_errors(f"{method} {url}"):
                request = self._http.build_request(method, url, headers=hdrs, content=body() if body else None)
                response = self._http.send(request, stream=True)
            if not stream and (response.status_code != 401 or attempt == 2):
                # a body nobody streams is small (an upload's answer): read it, bounded
                try:
                    # a HEAD's Content-Length is the size of what a GET would send: no body
                    data = b"" if method == "HEAD" or response.status_code in (204, 304) else \
                        read_body(response, what=f"{method} {url}", limit=MAX_SMALL_BODY, limits=self.limits)
                finally:
                    response.close()
                response = httpx.Response(response.status_code, headers=response.headers, content=data,
                                          request=response.request)
            if response.status_code != 401 or attempt == 2:
                return response
            challenge = response.headers.get("www-authenticate", "")
            response.close()
            if not challenge:
                return response
            self._answer(challenge, scope, url)
        raise AssertionError("unreachable")

    def _answer(self, challenge: str, scope: str, url: str) -> None:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if not self.credentials:
                raise RegistryAuthError(f"{url}: the registry wants a user name and password (docker login {self.registry})")
            self._basic = True
            return
        if scheme != "bearer" or "realm" not in params:
            raise RegistryAuthError(f"{url}: unsupported auth challenge {challenge!r}")
        query = {k: v for k, v in (("service", params.get("service")), ("scope", scope or params.get("scope"))) if v}
        auth = httpx.BasicAuth(*self.credentials) if self.credentials else None
        where = f"token service {params['realm']}"
        with network_errors(where):
            request = self._http.build_request("GET", params["realm"], params=query)
            r = self._http.send(request, auth=auth, stream=True)
        try:
            if r.status_code != 200:
                raise RegistryAuthError(f"{where}: {r.status_code} {r.reason_phrase}{_error_text(r, where)}")
            text = read_body(r, what=where, limit=MAX_SMALL_BODY, limits=self.limits)
        finally:
            r.close()
        try:
            data = json.loads(text)
        except ValueError:
            raise RegistryAuthError(f"token service {params['realm']}: the answer is not JSON") from None
        token = (data.get("token") or data.get("access_token")) if isinstance(data, dict) else None
        if not token:
            raise RegistryAuthError(f"token service {params['realm']}: no token in the answer")
        self._tokens[scope] = token

    def _check(self, response: httpx.Response, expected: tuple[int, ...], what: str, unknown=RegistryError) -> None:
        if response.status_code in expected:
            return
        status = response.status_code
        text = f"{what}: {status} {response.reason_phrase}{_error_text(response, what)}"
        response.close()
        if status in (401, 403):
            raise RegistryAuthError(text)
        if status == 404:
            raise unknown(text)
        raise RegistryError(text)

    # -- the API -----------------------------------------------------------------------------
    def ping(self) -> None:
        """``GET /v2/``: is this a v2 registry? (401 counts: it answered as one.)"""
        r = self._send("GET", "/v2/", scope="")
        r.close()
        if r.status_code not in (200, 401):
            raise RegistryError(f"GET {self.base}/v2/: {r.status_code} {r.reason_phrase}: not a v2 registry")

    def get_manifest(self, repository: str, reference: str, size: int | None = None) -> tuple[bytes, str, str]:
        """``(bytes, media type, digest)`` of a manifest or index, by tag or digest. Fetched by
        digest, the bytes are checked against it; ``size`` (a descriptor's) is the exact size
        that must arrive, else at most 4 MiB are read."""
        url = f"/v2/{repository}/manifests/{reference}"
        if size is not None and size > MAX_MANIFEST:
            raise RegistryError(f"manifest {repository}@{reference}: {size} bytes, more than the limit of {MAX_MANIFEST}")
        r = self._send("GET", url, scope=pull_scope(repository), headers={"Accept": ", ".join(MANIFEST_ACCEPT)}, stream=True)
        try:
            self._check(r, (200,), f"GET {self._url(url)}", ManifestUnknown)
            data = read_body(r, what=f"GET {self._url(url)}", limit=MAX_MANIFEST, expected=size, limits=self.limits)
        finally:
            r.close()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise DigestMismatch(f"manifest {repository}@{reference}: the registry sent bytes hashing to {digest}")
        media_type = r.headers.get("content-type", "").split(";")[0].strip()
        if media_type not in MANIFEST_ACCEPT:
            try:
                media_type = json.loads(data).get("mediaType") or ""
            except ValueError:
                raise RegistryError(f"manifest {repository}:{reference}: not JSON") from None
            if not media_type:  # OCI lets a manifest omit mediaType: tell them apart by shape
                doc = json.loads(data)
                media_type = mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST
        return data, media_type, digest

    def has_blob(self, repository: str, digest: str) -> bool:
        """``HEAD`` the blob: does the repository already have it?"""
        url = f"/v2/{repository}/blobs/{digest}"
        r = self._send("HEAD", url, scope=pull_scope(repository))
        r.close()
        if r.status_code == 200:
            return True
        if r.status_code == 404:
            return False
        self._check(r, (200,), f"HEAD {self._url(url)}")
        return False

    @contextlib.contextmanager
    def open_blob(self, repository: str, digest: str, size: int) -> Iterator[Body]:
        """A readable stream of the blob's bytes, exactly ``size`` of them (the descriptor's:
        one byte more stops the transfer); not hashed here: ``put_blob`` with
        ``expected_digest`` hashes while it stores."""
        url = f"/v2/{repository}/blobs/{digest}"
        r = self._send("GET", url, scope=pull_scope(repository), stream=True)
        try:
            self._check(r, (200,), f"GET {self._url(url)}", BlobUnknown)
            yield Body(r, what=f"GET {self._url(url)}", expected=size, limits=self.limits)
        finally:
            r.close()

    def upload_blob(self, repository: str, digest: str, size: int, open_source: Callable[[], io.BufferedIOBase]) -> None:
        """Upload one blob: ``POST`` an upload session, then ``PUT`` all ``size`` bytes with
        ``?digest=`` (the registry verifies it). ``open_source()`` opens the bytes (called
        again if the PUT had to be repeated after an auth challenge)."""
        scope = push_scope(repository)
        start = f"/v2/{repository}/blobs/uploads/"
        r = self._send("POST", start, scope=scope, headers={"Content-Length": "0"})
        r.close()
        self._check(r, (202,), f"POST {self._url(start)}")
        location = r.headers.get("location")
        if not location:
            raise RegistryError(f"POST {self._url(start)}: no Location for the upload")
        location = urljoin(self._url(start), location)

        def body() -> Iterator[bytes]:
            with open_source() as f:
                while block := f.read(CHUNK):
                    yield block

        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        # the Location keeps the session's state in its query: append to it, never replace it
        put_url = location + ("&" if "?" in location else "?") + "digest=" + quote(digest, safe="")
        r = self._send("PUT", put_url, scope=scope, headers=headers, body=body)
        r.close()
        self._check(r, (201,), f"PUT blob {digest} to {self.registry}/{repository}")

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        """``PUT`` a manifest (or index) under a tag or its digest; returns its digest."""
        url = f"/v2/{repository}/manifests/{reference}"
        r = self._send("PUT", url, scope=push_scope(repository), headers={"Content-Type": media_type}, body=lambda: data)
        self._check(r, (201,), f"PUT {self._url(url)}", ManifestUnknown)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        sent = r.headers.get("docker-content-digest")
        if sent and sent != digest:
            raise DigestMismatch(f"PUT {self._url(url)}: the registry stored {sent}, we sent {digest}")
        return digest

    def tags(self, repository: str) -> list[str]:
        """``GET /v2/<name>/tags/list`` (first page)."""
        url = f"/v2/{repository}/tags/list"
        r = self._send("GET", url, scope=pull_scope(repository))
        self._check(r, (200,), f"GET {self._url(url)}", ManifestUnknown)
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


def _basic(credentials: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()


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
