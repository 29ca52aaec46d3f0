"""A proxy in front of the real registry that fails on purpose, for the transfer tests.

``FaultProxy(upstream)`` listens on 127.0.0.1:<port 0> and forwards every request to the
``docker-registry`` at ``upstream`` (``Host`` kept as the proxy's, so the registry's
``Location`` headers point back through it). Rules make it misbehave, each for the first
``times`` requests that match (method, and a substring of the path):

* ``status(method, part, code, times)``: answer ``code`` instead (a 503 storm);
* ``cut(method, part, after, times)``: send the head and ``after`` bytes of the body, then
  drop the connection (a connection reset halfway through a layer);
* ``hold(method, part, event)``: send the head and nothing more until ``event`` is set (a
  stalled layer, to interrupt a pull while it waits);
* ``slow(method, part, seconds)``: wait before answering (so parallel requests overlap).

``requests`` lists (method, path, Range header) of every request; ``max_in_flight`` is the
most blob requests it held at the same time before answering (see ``_handle``).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


@dataclass
class Rule:
    method: str
    part: str
    kind: str
    value: object = None
    times: int = 1 << 30
    hit: int = field(default=0)


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.rules: list[Rule] = []
        self.requests: list[tuple[str, str, str | None]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=60)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

            def do_HEAD(self) -> None:
                proxy._handle(self)

            def do_PUT(self) -> None:
                proxy._handle(self)

            def do_POST(self) -> None:
                proxy._handle(self)

            def do_PATCH(self) -> None:
                proxy._handle(self)

            def do_DELETE(self) -> None:
                proxy._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    # -- rules ---------------------------------------------------------------------------------
    def status(self, method: str, part: str, code: int, times: int = 1) -> Rule:
        return self._add(Rule(method, part, "status", code, times))

    def cut(self, method: str, part: str, after: int, times: int = 1) -> Rule:
        return self._add(Rule(method, part, "cut", after, times))

    def hold(self, method: str, part: str, event: threading.Event, times: int = 1 << 30) -> Rule:
        return self._add(Rule(method, part, "hold", event, times))

    def slow(self, method: str, part: str, seconds: float, times: int = 1 << 30) -> Rule:
        return self._add(Rule(method, part, "slow", seconds, times))

    def _add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def _match(self, method: str, path: str) -> list[Rule]:
        with self._lock:
            found = []
            for rule in self.rules:
                if rule.method == method and rule.part in path and rule.hit < rule.times:
                    rule.hit += 1
                    found.append(rule)
            return found

    # -- serving -------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        method, path = h.command, h.path
        self.requests.append((method, path, h.headers.get("Range")))
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        rules = self._match(method, path)
        counted = "/blobs/" in path
        if counted:
            with self._lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)

        def answered() -> None:
            # a request is in flight until its answer starts: once the client has the answer it
            # may send its next request before this thread gets further (on a loaded machine,
            # well before), and counting both would see more at once than the client ever sent
            nonlocal counted
            if counted:
                counted = False
                with self._lock:
                    self.in_flight -= 1

        try:
            for rule in rules:
                if rule.kind == "slow":
                    time.sleep(rule.value)
            for rule in rules:
                if rule.kind == "status":
                    answered()
                    h.send_response(rule.value)
                    h.send_header("Content-Length", "0")
                    h.end_headers()
                    return
            headers = {k: v for k, v in h.headers.items() if k.lower() not in ("host", "content-length", "connection")}
            headers["Host"] = self.host
            request = self._client.build_request(method, f"http://{self.upstream}{path}", headers=headers, content=body)
            response = self._client.send(request, stream=True)
            try:
                answered()
                h.send_response(response.status_code)
                for key, value in response.headers.multi_items():
                    if key.lower() not in ("transfer-encoding", "connection", "date", "server"):
                        h.send_header(key, value)
                whole = None
                if "content-length" not in response.headers:
                    whole = b"" if method == "HEAD" else response.read()
                    h.send_header("Content-Length", str(len(whole)))
                h.end_headers()
                if method == "HEAD":
                    return
                if whole is not None:
                    h.wfile.write(whole)
                    return
                cut = next((r.value for r in rules if r.kind == "cut"), None)
                hold = next((r.value for r in rules if r.kind == "hold"), None)
                sent = 0
                for chunk in response.iter_raw(65536):
                    if hold is not None:
                        h.wfile.flush()
                        hold.wait()
                        h.close_connection = True
                        return
                    if cut is not None and sent + len(chunk) >= cut:
                        h.wfile.write(chunk[:cut - sent])
                        h.wfile.flush()
                        # a reset, not a clean close: the client sees its body end early
                        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        h.close_connection = True
                        return
                    h.wfile.write(chunk)
                    sent += len(chunk)
            finally:
                response.close()
        finally:
            answered()

    def blob_gets(self, digest: str) -> list[str | None]:
        """The Range header of each GET of the blob ``digest`` (None: the whole blob)."""
        return [rng for method, path, rng in self.requests if method == "GET" and path.endswith(f"/blobs/{digest}")]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._client.close()
