"""Bounded downloads: every byte the capstone takes from the network comes through here.

A registry layer, a manifest, a token, an error body, an ``ADD https://...`` file: each one is
read through a :class:`Body`, which bounds the transfer three ways and turns every failure into
one :class:`DownloadError` line naming the method and URL.

**Size.** What was declared is the bound: a descriptor's ``size`` (``expected``: exactly that
many bytes) or else the response's ``Content-Length``; a body with neither is capped by
``limit`` (a manifest's 4 MiB) or :attr:`Limits.max_undeclared`. The transfer stops the moment
one byte more arrives (that chunk is never handed on), and a body that ends early is
incomplete. A Content-Length larger than the bound is refused before the body is read.

**Time.** A connect timeout, a read timeout (no byte at all for that long), and a minimum rate:
over any window of :attr:`Limits.rate_window` seconds at least ``min_rate`` bytes per second
must arrive, so a server that sends one byte a second is cut off after one window instead of
never. (The response head is bounded by the read timeout per read and by h11's 16 KiB limit on
a head; the rate applies to the body.)

**Errors.** Timeouts, refused or reset connections, TLS failures, malformed responses, bad URLs:
all of them become a :class:`DownloadError` leaf, never a traceback::

    DownloadError            a transfer failed (``GET URL: reason``)
    ├── DownloadTooLarge     more bytes than declared or allowed
    ├── DownloadIncomplete   the body ended before the declared size
    ├── DownloadTooSlow      a timeout, or less than the minimum rate over the window
    └── NetworkError         connection refused or reset, TLS, DNS, protocol errors

The pieces, for any caller that has an httpx response in hand (the registry client makes its
own requests, with auth): :func:`http_client` (an ``httpx.Client`` with the limits' timeouts),
:func:`network_errors` (a context manager around a request), :class:`Body` (a file object over
a streamed response), :func:`read_body` (a small body into memory). :func:`download` is the
whole thing for a URL to a file (``ADD``). Every chunk passes through ``Body._take``, the one
place that counts it: the hook for a progress callback, and retries wrap a whole ``Body``.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import os
import ssl
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from .errors import CapstoneError

__all__ = [
    "Body",
    "DownloadError",
    "DownloadIncomplete",
    "DownloadTooLarge",
    "DownloadTooSlow",
    "Downloaded",
    "Limits",
    "NetworkError",
    "download",
    "http_client",
    "network_errors",
    "read_body",
]

#: an error body is only read for its message
MAX_ERROR_BODY = 64 << 10


class DownloadError(CapstoneError):
    """A transfer failed; the message is ``METHOD URL: reason``."""


class DownloadTooLarge(DownloadError):
    """The body is bigger than it was declared (or than allowed where nothing was declared)."""


class DownloadIncomplete(DownloadError):
    """The body ended before the size that was declared for it."""


class DownloadTooSlow(DownloadError):
    """A connect or read timeout, or less than the minimum rate over the rate window."""


class NetworkError(DownloadError):
    """The connection failed: refused, reset, TLS, name resolution, a malformed response."""


def _size(text: str) -> int:
    """``1048576``, ``64K``, ``1M``, ``2G`` (powers of 1024)."""
    text = text.strip()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1:].upper())
    value = int(text[:-1] if scale else text)
    if value < 0:
        raise ValueError(text)
    return value * (scale or 1)


#: environment variables that override the defaults (for slow links, and tests)
ENVIRONMENT = {
    "connect_timeout": ("CAPSTONE_CONNECT_TIMEOUT", float),
    "read_timeout": ("CAPSTONE_READ_TIMEOUT", float),
    "min_rate": ("CAPSTONE_MIN_RATE", _size),
    "rate_window": ("CAPSTONE_RATE_WINDOW", float),
    "max_undeclared": ("CAPSTONE_MAX_UNDECLARED", _size),
}


@dataclass(frozen=True)
class Limits:
    """How long and how slow a transfer may be, and how big when nothing declared its size.

    ``connect_timeout``: seconds to open the connection (TCP and TLS). ``read_timeout``:
    seconds without a single byte. ``min_rate``: bytes per second that must arrive on average
    over every ``rate_window`` seconds of the body. ``max_undeclared``: the largest body taken
    without a descriptor size or Content-Length. :meth:`from_environment` reads
    ``$CAPSTONE_CONNECT_TIMEOUT``, ``$CAPSTONE_READ_TIMEOUT``, ``$CAPSTONE_MIN_RATE`` (``1K``),
    ``$CAPSTONE_RATE_WINDOW`` and ``$CAPSTONE_MAX_UNDECLARED`` (``1G``) over the defaults.
    """

    connect_timeout: float = 30.0
    read_timeout: float = 60.0
    min_rate: int = 1024
    rate_window: float = 60.0
    max_undeclared: int = 1 << 30

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> "Limits":
        environ = os.environ if environ is None else environ
        values = {}
        for field_name, (var, convert) in ENVIRONMENT.items():
            text = environ.get(var)
            if text:
                try:
                    values[field_name] = convert(text)
                except ValueError:
                    raise DownloadError(f"${var}={text!r}: not a number") from None
        return cls(**values)

    def timeout(self) -> httpx.Timeout:
        """httpx's timeouts: connect, and read (and write, and waiting for a pooled
        connection) as the read timeout."""
        return httpx.Timeout(self.read_timeout, connect=self.connect_timeout)


def http_client(limits: Limits | None = None, **kwargs) -> httpx.Client:
    """An ``httpx.Client`` with ``limits``' timeouts (default: :meth:`Limits.from_environment`)
    that follows redirects and asks for bodies as they are (``Accept-Encoding: identity``: a
    declared size is the size of what arrives, and no compressed body expands on the way)."""
    limits = limits or Limits.from_environment()
    headers = {"Accept-Encoding": "identity", **kwargs.pop("headers", {})}
    return httpx.Client(follow_redirects=True, timeout=limits.timeout(), headers=headers, **kwargs)


def describe(error: BaseException) -> str:
    """One line for a network error (httpx's, the ssl module's, the socket's)."""
    if isinstance(error, httpx.ConnectTimeout):
        return "timed out connecting"
    if isinstance(error, httpx.ReadTimeout):
        return "timed out waiting for data"
    if isinstance(error, httpx.TimeoutException):
        return f"timed out ({type(error).__name__})"
    cause: BaseException | None = error
    while cause is not None:  # the deepest ssl or socket error says most
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {cause.reason or cause}"
        cause = cause.__cause__ or cause.__context__
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _convert(error: BaseException, what: str) -> DownloadError:
    if isinstance(error, httpx.TimeoutException):
        return DownloadTooSlow(f"{what}: {describe(error)}")
    return NetworkError(f"{what}: {describe(error)}")


#: what a request or a read can raise that is the network's fault, not ours
NETWORK_ERRORS = (httpx.HTTPError, httpx.InvalidURL, ssl.SSLError, ConnectionError, TimeoutError)


@contextlib.contextmanager
def network_errors(what: str) -> Iterator[None]:
    """Around a request (``client.send(...)``): its network failures become one
    :class:`DownloadError` line starting with ``what`` (``GET https://...``)."""
    try:
        yield
    except NETWORK_ERRORS as e:
        raise _convert(e, what) from None


def _content_length(response: httpx.Response) -> int | None:
    """The declared length of the body as it arrives (the Content-Length)."""
    text = response.headers.get("content-length")
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= 0 else None


class Body(io.RawIOBase):
    """The body of a streamed ``response`` as a file object, bounded (see the module page).

    ``expected``: the exact size (a descriptor's); ``limit``: the most that is accepted (a
    manifest's 4 MiB); with neither, the Content-Length, else ``limits.max_undeclared``.
    ``what`` starts every message (``GET https://host/v2/a/blobs/sha256:...``). The response is
    the caller's to close.
    """

    def __init__(
        self,
        response: httpx.Response,
        *,
        what: str,
        expected: int | None = None,
        limit: int | None = None,
        limits: Limits | None = None,
    ) -> None:
        super().__init__()
        self.what = what
        self.limits = limits or Limits.from_environment()
        declared = _content_length(response)
        if expected is not None and declared is not None and declared != expected:
            raise DownloadTooLarge(f"{what}: the server declares {declared} bytes, expected {expected}") \
                if declared > expected else \
                DownloadIncomplete(f"{what}: the server declares {declared} bytes, expected {expected}")
        if expected is not None:
            self.bound, self.why = expected, "the size that was declared"
        elif declared is not None:
            self.bound, self.why = declared, "its Content-Length"
        elif limit is not None:
            self.bound, self.why = limit, "the limit"
        else:
            self.bound, self.why = self.limits.max_undeclared, "the limit for a body of undeclared size"
        if limit is not None and self.bound > limit:
            raise DownloadTooLarge(f"{what}: {self.bound} bytes declared, more than the limit of {limit}")
        #: the size that must arrive in full (None: whatever arrives up to the bound)
        self.exact = expected if expected is not None else declared
        self.received = 0
        # raw: the bytes as sent, never decoded (a content coding we did not ask for is not
        # undone, as Go's client does not: a small compressed body cannot expand here), and
        # each chunk as it arrives (a chunk size would buffer a trickle out of the rate check)
        self._chunks = response.iter_raw()
        self._pending = b""
        self._done = False
        now = time.monotonic()
        self._start = now
        self._samples: collections.deque[tuple[float, int]] = collections.deque([(now, 0)])

    def readable(self) -> bool:
        return True

    def _take(self, chunk: bytes) -> bytes:
        """Count one chunk: refused when it goes past the bound, or when the rate is too low."""
        total = self.received + len(chunk)
        if total > self.bound:
            raise DownloadTooLarge(f"{self.what}: more than {self.bound} bytes ({self.why}); stopped there")
        self.received = total
        self._check_rate(time.monotonic())
        return chunk

    def _check_rate(self, now: float) -> None:
        window, samples = self.limits.rate_window, self._samples
        samples.append((now, self.received))
        while len(samples) > 2 and samples[1][0] <= now - window:
            samples.popleft()
        if now - self._start < window or samples[0][0] > now - window:
            return
        got = self.received - samples[0][1]
        if got < self.limits.min_rate * window:
            raise DownloadTooSlow(f"{self.what}: too slow: {got} bytes in the last {window:g} s "
                                  f"(at least {self.limits.min_rate} bytes/s wanted)")

    def _next(self) -> bytes:
        if self._done:
            return b""
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._done = True
            if self.exact is not None and self.received < self.exact:
                raise DownloadIncomplete(f"{self.what}: the body ended after {self.received} of "
                                         f"{self.exact} bytes") from None
            return b""
        except NETWORK_ERRORS as e:
            self._done = True
            if isinstance(e, httpx.RemoteProtocolError) and self.exact is not None and self.received < self.exact:
                # h11's words for a connection closed before the Content-Length was reached
                raise DownloadIncomplete(f"{self.what}: the body ended after {self.received} of "
                                         f"{self.exact} bytes") from None
            raise _convert(e, self.what) from None
        return self._take(chunk)

    def readinto(self, buffer) -> int:
        while not self._pending:
            self._pending = self._next()
            if not self._pending:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def chunks(self) -> Iterator[bytes]:
        """The body chunk by chunk, as it arrives."""
        if self._pending:
            chunk, self._pending = self._pending, b""
            yield chunk
        while chunk := self._next():
            yield chunk


def read_body(response: httpx.Response, *, what: str, limit: int, expected: int | None = None,
              limits: Limits | None = None) -> bytes:
    """A small body (a manifest, a token, an error) read whole, at most ``limit`` bytes."""
    return b"".join(Body(response, what=what, expected=expected, limit=limit, limits=limits).chunks())


@dataclass(frozen=True)
class Downloaded:
    """A file :func:`download` wrote: its ``path``, ``size``, ``digest`` (``ALGORITHM:hex``),
    the ``Last-Modified`` header (None when absent) and the ``url`` it came from at last
    (after redirects)."""

    path: Path
    size: int
    digest: str
    last_modified: str | None
    url: str


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    expected_size: int | None = None,
    algorithm: str = "sha256",
    limits: Limits | None = None,
    client: httpx.Client | None = None,
) -> Downloaded:
    """GET ``url`` into the new file ``dest`` (mode 0600), hashed with ``algorithm`` on the way.

    Bounded as the module page says; anything but a 200 is an error. A failed download leaves
    no file.
    """
    limits = limits or Limits.from_environment()
    what = f"GET {url}"
    dest = Path(dest)
    own = client is None
    client = client or http_client(limits)
    try:
        with network_errors(what):
            request = client.build_request("GET", url)
            response = client.send(request, stream=True)
        try:
            if response.status_code != 200:
                raise DownloadError(f"{what}: HTTP {response.status_code} {response.reason_phrase}".rstrip())
            body = Body(response, what=what, expected=expected_size, limits=limits)
            h = hashlib.new(algorithm)
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                with os.fdopen(fd, "wb") as f:
                    for chunk in body.chunks():
                        f.write(chunk)
                        h.update(chunk)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(dest)
                raise
            return Downloaded(dest, body.received, f"{algorithm}:{h.hexdigest()}",
                              response.headers.get("last-modified"), str(response.url))
        finally:
            response.close()
    finally:
        if own:
            client.close()
