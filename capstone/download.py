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
    ├── NetworkError         connection refused or reset, TLS, DNS, protocol errors
    └── TransferCancelled    stopped: another transfer of the same command failed, or ^C

**Retries.** A connection that fails (refused, reset, closed before the declared size) and a
server error (5xx, 429) are tried again, :attr:`Limits.retries` times, after a delay that
doubles from :attr:`Limits.retry_delay` (a ``Retry-After`` is honoured up to the largest
delay). A timeout, a trickle, a body larger than declared, a certificate that does not verify
and any other 4xx are not: they would only fail again. :func:`send` is a request with these
retries.

**Resumption.** :class:`ResumableBody` is a body of a declared size that survives a connection
failing halfway: it asks again with ``Range: bytes=N-`` and goes on from byte N (a server that
ignores the range sends it all again, and the first N bytes are skipped), so its reader (a
hashing writer into the store) sees one unbroken stream.

**Progress and parallel transfers.** Every chunk passes through ``Body._take``, the one place
that counts it: it tells a ``meter`` how much arrived, and stops when a ``cancel`` event is set.
A :class:`TransferProgress` receives what a command shows (begin, advance, end, notes; the
base class shows nothing). :func:`run_parallel` runs a few transfers at a time
(:attr:`Limits.parallel`) and stops the others at their next chunk when one fails or the
command is interrupted, so what they were writing is removed before it returns.

The pieces, for any caller that has an httpx response in hand (the registry client makes its
own requests, with auth): :func:`http_client` (an ``httpx.Client`` with the limits' timeouts),
:func:`network_errors` (a context manager around a request), :func:`send`, :class:`Body` (a
file object over a streamed response), :class:`ResumableBody`, :func:`read_body` (a small body
into memory). :func:`download` is the whole thing for a URL to a file (``ADD``).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import email.utils
import hashlib
import io
import os
import random
import re
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import httpx

from part1_overview import model

from .errors import CapstoneError
from .transferview import TransferProgress

__all__ = [
    "Body",
    "CancelGroup",
    "DownloadError",
    "DownloadIncomplete",
    "DownloadTooLarge",
    "DownloadTooSlow",
    "Downloaded",
    "LargeTransfers",
    "NETWORK_READ",
    "Limits",
    "NetworkError",
    "ResumableBody",
    "TransferCancelled",
    "TransferProgress",
    "download",
    "http_client",
    "network_errors",
    "read_body",
    "run_parallel",
    "send",
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


class TransferCancelled(DownloadError):
    """Stopped on purpose: another transfer of the same command failed, or it was interrupted."""

    retryable = False


#: what is worth a second try: the connection, not the content (see the module page)
DownloadIncomplete.retryable = True
DownloadTooLarge.retryable = False
DownloadTooSlow.retryable = False
DownloadError.retryable = False
NetworkError.retryable = True


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
    "retries": ("CAPSTONE_RETRIES", int),
    "retry_delay": ("CAPSTONE_RETRY_DELAY", float),
    "parallel": ("CAPSTONE_PARALLEL_TRANSFERS", int),
}


@model(frozen=True)
class Limits:
    """How long and how slow a transfer may be, and how big when nothing declared its size.

    ``connect_timeout``: seconds to open the connection (TCP and TLS). ``read_timeout``:
    seconds without a single byte. ``min_rate``: bytes per second that must arrive on average
    over every ``rate_window`` seconds of the body. ``max_undeclared``: the largest body taken
    without a descriptor size or Content-Length. ``retries``: how many times a failed
    connection or a server error is tried again; ``retry_delay``: seconds before the first
    retry (doubled each time, at most :data:`MAX_RETRY_DELAY`). ``parallel``: how many
    transfers of one command run at a time (layers of a pull or a push).
    :meth:`from_environment` reads ``$CAPSTONE_CONNECT_TIMEOUT``, ``$CAPSTONE_READ_TIMEOUT``,
    ``$CAPSTONE_MIN_RATE`` (``1K``), ``$CAPSTONE_RATE_WINDOW``, ``$CAPSTONE_MAX_UNDECLARED``
    (``1G``), ``$CAPSTONE_RETRIES``, ``$CAPSTONE_RETRY_DELAY`` and
    ``$CAPSTONE_PARALLEL_TRANSFERS`` over the defaults.
    """

    connect_timeout: float = 30.0
    read_timeout: float = 60.0
    min_rate: int = 1024
    rate_window: float = 60.0
    max_undeclared: int = 1 << 30
    retries: int = 3
    retry_delay: float = 0.5
    parallel: int = 3

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
                if values[field_name] < 0 or (field_name == "parallel" and values[field_name] < 1):
                    raise DownloadError(f"${var}={text!r}: out of range")
        return cls(**values)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1, 2, ...): doubling, a little
        jitter so that parallel transfers do not come back at the same instant."""
        base = min(MAX_RETRY_DELAY, self.retry_delay * (2 ** (attempt - 1)))
        return base * (1 + random.random() / 4)

    def timeout(self) -> httpx.Timeout:
        """httpx's timeouts: connect, and read (and write, and waiting for a pooled
        connection) as the read timeout."""
        return httpx.Timeout(self.read_timeout, connect=self.connect_timeout)


#: the longest wait between two attempts (also the most of a Retry-After that is honoured)
MAX_RETRY_DELAY = 8.0


def http_client(limits: Limits | None = None, **kwargs) -> httpx.Client:
    """An ``httpx.Client`` with ``limits``' timeouts (default: :meth:`Limits.from_environment`)
    that follows redirects and asks for bodies as they are (``Accept-Encoding: identity``: a
    declared size is the size of what arrives, and no compressed body expands on the way)."""
    limits = limits or Limits.from_environment()
    headers = {"Accept-Encoding": "identity", **kwargs.pop("headers", {})}
    _read_larger_pieces()
    return httpx.Client(follow_redirects=True, timeout=limits.timeout(), headers=headers, **kwargs)


#: how much one read of a connection takes at most. httpcore reads 64 KiB at a time and h11
#: parses each piece in Python: a 512 MiB pull was 8,000 trips through that stack, three
#: streams sharing the interpreter lock. A read returns what has arrived (up to this), so a
#: slow server's bytes are still seen, and rate-checked, as they come.
NETWORK_READ = 1 << 20


def _read_larger_pieces() -> None:
    """httpcore's HTTP/1.1 connections read :data:`NETWORK_READ` bytes at a time (its class
    attribute ``READ_NUM_BYTES``; left alone if a later httpcore drops it)."""
    import httpcore

    connection = getattr(httpcore, "HTTP11Connection", None)
    if getattr(connection, "READ_NUM_BYTES", None) is not None and connection.READ_NUM_BYTES < NETWORK_READ:
        connection.READ_NUM_BYTES = NETWORK_READ


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
        if isinstance(cause, ssl.SSLCertVerificationError) and cause.verify_message:
            return f"TLS error: certificate verify failed: {cause.verify_message}"
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
    converted = NetworkError(f"{what}: {describe(error)}")
    # a refused, reset or dropped connection may work the next time; TLS that fails to agree
    # or to verify, a name that does not resolve, a malformed URL will not
    converted.retryable = not (_ssl_cause(error) or isinstance(error, (httpx.InvalidURL, httpx.UnsupportedProtocol))
                               or "Name or service not known" in str(error))
    return converted


def _ssl_cause(error: BaseException) -> bool:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


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


class _ChunkedBody(io.RawIOBase):
    """A file object over chunks that ``_next()`` returns (``b""`` at the end): what
    :class:`Body` and :class:`ResumableBody` read through, by ``read``, ``readinto`` or chunk
    by chunk.

    What is left of a chunk is kept as a view into it, never copied again: a ``read`` that
    wants at least a whole chunk gets the chunk itself (the store's hashing writer takes it as
    it came from the socket), a smaller read or a ``readinto`` copies out only what it asked
    for."""

    _pending: memoryview | bytes = b""

    def _next(self) -> bytes:
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if not self._pending and size:
            chunk = self._next()
            if len(chunk) <= size:
                return chunk
            self._pending = memoryview(chunk)
        out = bytes(self._pending[:size])
        self._pending = self._pending[size:]
        return out

    def readinto(self, buffer) -> int:
        while not self._pending:
            chunk = self._next()
            if not chunk:
                return 0
            self._pending = memoryview(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def chunks(self) -> Iterator[bytes]:
        """The body chunk by chunk, as it arrives."""
        if self._pending:
            chunk, self._pending = bytes(self._pending), b""
            yield chunk
        while chunk := self._next():
            yield chunk


class Body(_ChunkedBody):
    """The body of a streamed ``response`` as a file object, bounded (see the module page).

    ``expected``: the exact size (a descriptor's); ``limit``: the most that is accepted (a
    manifest's 4 MiB); with neither, the Content-Length, else ``limits.max_undeclared``.
    ``what`` starts every message (``GET https://host/v2/a/blobs/sha256:...``). ``meter`` is
    told the size of every chunk that is taken; a set ``cancel`` event stops the transfer at
    the next chunk (:class:`TransferCancelled`). The response is the caller's to close.
    """

    def __init__(
        self,
        response: httpx.Response,
        *,
        what: str,
        expected: int | None = None,
        limit: int | None = None,
        limits: Limits | None = None,
        meter: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        super().__init__()
        self.what = what
        self.limits = limits or Limits.from_environment()
        self.meter = meter
        self.cancel = cancel
        if isinstance(cancel, CancelGroup):
            cancel.watch(response)
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
        self._done = False
        now = time.monotonic()
        self._start = now
        self._samples: collections.deque[tuple[float, int]] = collections.deque([(now, 0)])

    def _take(self, chunk: bytes) -> bytes:
        """Count one chunk: refused when it goes past the bound, or when the rate is too low."""
        if self.cancel is not None and self.cancel.is_set():
            raise TransferCancelled(f"{self.what}: stopped")
        total = self.received + len(chunk)
        if total > self.bound:
            raise DownloadTooLarge(f"{self.what}: more than {self.bound} bytes ({self.why}); stopped there")
        self.received = total
        self._check_rate(time.monotonic())
        if self.meter is not None:
            self.meter(len(chunk))
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


def read_body(response: httpx.Response, *, what: str, limit: int, expected: int | None = None,
              limits: Limits | None = None) -> bytes:
    """A small body (a manifest, a token, an error) read whole, at most ``limit`` bytes."""
    return b"".join(Body(response, what=what, expected=expected, limit=limit, limits=limits).chunks())


# -- retries -----------------------------------------------------------------------------------------

#: statuses that say "not now" rather than "no": tried again
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def _retry_after(response: httpx.Response) -> float | None:
    """A ``Retry-After`` in seconds (a number or an HTTP date), None when absent or unreadable."""
    text = (response.headers.get("retry-after") or "").strip()
    if not text:
        return None
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, OverflowError):
        return None
    return max(0.0, when - time.time())


def _wait(seconds: float, cancel: threading.Event | None, what: str) -> None:
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        raise TransferCancelled(f"{what}: stopped")


def send(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    what: str | None = None,
    headers: Mapping[str, str] | None = None,
    content: Callable[[], bytes | Iterator[bytes]] | None = None,
    limits: Limits | None = None,
    auth: httpx.Auth | None = None,
    cancel: threading.Event | None = None,
    on_retry: Callable[[str], None] | None = None,
    timeout: httpx.Timeout | None = None,
) -> httpx.Response:
    """Send a request and return its response, streamed (the caller reads and closes it).

    A connection failure or a 5xx/429 answer is tried again as the module page says;
    ``content`` is a factory so that a body can be sent again. When every attempt failed the
    last error is raised (one :class:`DownloadError` line saying how many attempts were made),
    or the last 5xx response is returned for the caller to report. ``on_retry`` hears one line
    per retry; ``timeout`` replaces the client's for this request."""
    limits = limits or Limits.from_environment()
    what = what or f"{method} {url}"
    attempt = 0
    while True:
        attempt += 1
        try:
            with network_errors(what):
                request = client.build_request(method, url, headers=headers, content=content() if content else None,
                                               **({"timeout": timeout} if timeout is not None else {}))
                response = client.send(request, stream=True, auth=auth)
        except DownloadError as e:
            if not e.retryable or attempt > limits.retries:
                if attempt > 1:
                    e.args = (f"{e} (after {attempt} attempts)",)
                raise
            reason = str(e).removeprefix(what + ": ")
            delay = limits.backoff(attempt)
        else:
            if response.status_code not in RETRY_STATUSES or attempt > limits.retries:
                return response
            reason = f"{response.status_code} {response.reason_phrase}".strip()
            delay = limits.backoff(attempt)
            asked = _retry_after(response)
            if asked is not None:
                delay = min(MAX_RETRY_DELAY, max(delay, asked))
            response.close()
        if on_retry is not None:
            on_retry(f"{what}: {reason}; retrying in {delay:.1f} s ({attempt + 1} of {limits.retries + 1})")
        _wait(delay, cancel, what)


_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class ResumableBody(_ChunkedBody):
    """A body of exactly ``expected`` bytes that goes on where it stopped when the connection
    fails (see the module page).

    ``open_at(offset)`` sends the request again with ``Range: bytes=offset-`` (when offset > 0)
    and returns the streamed response, its status already checked (200 or 206); it has its own
    retries for opening. The body is resumed at most :attr:`Limits.retries` times in a row
    without progress. ``meter`` hears only bytes that are new; ``cancel`` stops it.
    """

    def __init__(
        self,
        open_at: Callable[[int], httpx.Response],
        *,
        what: str,
        expected: int,
        limits: Limits | None = None,
        meter: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self.open_at = open_at
        self.what = what
        self.expected = expected
        self.limits = limits or Limits.from_environment()
        self.meter = meter
        self.cancel = cancel
        self.on_retry = on_retry
        self.received = 0
        self.resumed = 0
        self._response: httpx.Response | None = None
        self._body: Body | None = None
        self._skip = 0
        self._failures = 0

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None
        super().close()

    def _open(self) -> None:
        offset = self.received
        response = self.open_at(offset)
        try:
            remaining, self._skip = self.expected, 0
            if offset and response.status_code == 206:
                found = _CONTENT_RANGE.match(response.headers.get("content-range", "").strip())
                if not found or int(found.group(1)) != offset or int(found.group(2)) != self.expected - 1:
                    raise DownloadError(f"{self.what}: asked for bytes {offset}- and the server sent the range "
                                        f"{response.headers.get('content-range')!r}")
                remaining = self.expected - offset
            elif offset:  # the whole body again: what we have is skipped
                self._skip = offset
            self._body = Body(response, what=self.what, expected=remaining, limits=self.limits, cancel=self.cancel)
        except BaseException:
            response.close()
            raise
        self._response = response

    def _next(self) -> bytes:
        while self.received < self.expected:
            try:
                if self._body is None:
                    self._open()
                chunk = self._body._next()
            except DownloadError as e:
                self._drop()
                if self.cancel is not None and self.cancel.is_set():
                    raise TransferCancelled(f"{self.what}: stopped") from None
                self._failures += 1
                if not e.retryable or self._failures > self.limits.retries:
                    if isinstance(e, DownloadIncomplete):  # in the whole body's terms, not the last range's
                        raise DownloadIncomplete(f"{self.what}: the body ended after {self.received} of "
                                                 f"{self.expected} bytes (it broke off {self._failures} times in a row)") from None
                    raise
                delay = self.limits.backoff(self._failures)
                if self.on_retry is not None:
                    self.on_retry(f"{e}; resuming at byte {self.received} in {delay:.1f} s")
                _wait(delay, self.cancel, self.what)
                self.resumed += 1
                continue
            if not chunk:  # Body checks the size: an early end is DownloadIncomplete
                break
            if self._skip:
                dropped = min(self._skip, len(chunk))
                self._skip -= dropped
                chunk = chunk[dropped:]
                if not chunk:
                    continue
            self._failures = 0
            self.received += len(chunk)
            if self.meter is not None:
                self.meter(len(chunk))
            return chunk
        self._drop()
        return b""

    def _drop(self) -> None:
        if self._response is not None:
            self._response.close()
        self._response = self._body = None


# -- progress and parallel transfers -----------------------------------------------------------------


class CancelGroup(threading.Event):
    """The cancel event of a group of transfers: setting it also shuts down the connections
    of the bodies that are reading (a read blocked on a silent server returns at once instead
    of after the read timeout), so an interrupted command ends promptly."""

    def __init__(self) -> None:
        super().__init__()
        self._responses: weakref.WeakSet[httpx.Response] = weakref.WeakSet()
        self._mutex = threading.Lock()

    def watch(self, response: httpx.Response) -> None:
        with self._mutex:
            self._responses.add(response)
        if self.is_set():
            _shut_down(response)

    def set(self) -> None:
        super().set()
        with self._mutex:
            responses = list(self._responses)
        for response in responses:
            _shut_down(response)


def _shut_down(response: httpx.Response) -> None:
    """Shut the socket under ``response`` down (its reader gets the end of the stream)."""
    if response.is_closed:
        return
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class LargeTransfers(TransferProgress):
    """Passes on to ``progress`` only transfers of at least ``minimum`` bytes (and those of
    unknown size when ``unknown``): a build shows its big downloads, not every small file."""

    def __init__(self, progress: TransferProgress, minimum: int, *, unknown: bool = False) -> None:
        self.progress = progress
        self.minimum = minimum
        self.unknown = unknown
        self._shown: set[str] = set()

    def begin(self, key: str, label: str, total: int | None) -> None:
        if (total is None and self.unknown) or (total is not None and total >= self.minimum):
            self._shown.add(key)
            self.progress.begin(key, label, total)

    def advance(self, key: str, amount: int) -> None:
        if key in self._shown:
            self.progress.advance(key, amount)

    def end(self, key: str, outcome: str = "done") -> None:
        if key in self._shown:
            self._shown.discard(key)
            self.progress.end(key, outcome)

    def note(self, text: str) -> None:
        self.progress.note(text)


T = TypeVar("T")


def run_parallel(jobs: Sequence[Callable[[threading.Event], T]], *, workers: int) -> list[T]:
    """Run ``jobs`` ``workers`` at a time; their results in order.

    Each job gets the group's cancel event (to hand to its bodies). When a job fails, or the
    caller is interrupted (^C), the event is set: the others stop at their next chunk, and
    this returns (raising the first failure) only when every job has ended, so none is still
    writing into the store."""
    cancel = CancelGroup()
    if workers <= 1 or len(jobs) <= 1:
        return [job(cancel) for job in jobs]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(jobs)), thread_name_prefix="transfer")
    futures = [pool.submit(job, cancel) for job in jobs]
    failure: BaseException | None = None
    try:
        pending = set(futures)
        while pending:
            # a timeout so that ^C reaches this thread while it waits
            done, pending = concurrent.futures.wait(pending, timeout=0.5, return_when=concurrent.futures.FIRST_EXCEPTION)
            for f in done:
                if f.exception() is not None and not cancel.is_set():
                    failure = f.exception()
                    cancel.set()
            if cancel.is_set():
                break
    except BaseException:
        cancel.set()
        raise
    finally:
        for f in futures:
            f.cancel()
        pool.shutdown(wait=True)
    if failure is not None:
        raise failure
    return [f.result() for f in futures]


# -- a URL into a file ---------------------------------------------------------------------------------


@model(frozen=True)
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
    progress: TransferProgress | None = None,
) -> Downloaded:
    """GET ``url`` into the new file ``dest`` (mode 0600), hashed with ``algorithm`` on the way.

    Bounded, retried and resumed as the module page says (resumed when the size is known: from
    ``expected_size`` or the first answer's Content-Length); anything but a 200 is an error. A
    failed download leaves no file. ``progress`` hears the bytes as they arrive.
    """
    limits = limits or Limits.from_environment()
    what = f"GET {url}"
    dest = Path(dest)
    own = client is None
    client = client or http_client(limits)
    progress = progress or TransferProgress()
    note = progress.note
    first: list[httpx.Response] = []

    def open_at(offset: int) -> httpx.Response:
        if first:  # the first answer, opened below to learn the size
            return first.pop()
        response = send(client, "GET", url, what=what, headers={"Range": f"bytes={offset}-"} if offset else None,
                        limits=limits, on_retry=note)
        if response.status_code not in ((200, 206) if offset else (200,)):
            response.close()
            raise DownloadError(f"{what}: HTTP {response.status_code} {response.reason_phrase}".rstrip())
        return response

    body: Body | ResumableBody | None = None
    try:
        response = open_at(0)
        try:
            size = expected_size if expected_size is not None else _content_length(response)
            meter = lambda n: progress.advance(url, n)  # noqa: E731
            if size is None:  # no size to resume to: one try, bounded by the limit
                body = Body(response, what=what, limits=limits, meter=meter)
            else:
                first.append(response)
                body = ResumableBody(open_at, what=what, expected=size, limits=limits, meter=meter, on_retry=note)
            progress.begin(url, url.rsplit("/", 1)[-1] or url, size)
            _write_new_file(dest, body.chunks(), h := hashlib.new(algorithm))
        except BaseException:
            progress.end(url, "failed")
            raise
        finally:
            response.close()
            if isinstance(body, ResumableBody):
                body.close()
        progress.end(url, "done")
        return Downloaded(dest, body.received, f"{algorithm}:{h.hexdigest()}",
                          response.headers.get("last-modified"), str(response.url))
    finally:
        if own:
            client.close()


def _write_new_file(dest: Path, chunks: Iterator[bytes], h) -> None:
    """``chunks`` into the new file ``dest`` (0600, never through a symlink), hashed into
    ``h``; a failure leaves no file."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
                h.update(chunk)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest)
        raise
