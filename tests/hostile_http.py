"""A misbehaving HTTP server on 127.0.0.1 (port 0), for the download tests.

Each response is a fixture of ``tests/fixtures/hostile/http/`` (JSON)::

    {"status": 200, "headers": {...},            the response head, written as given (lies too)
     "body": {"fill": "x",                       the bytes repeated
              "length": 1000,                    how many (absent: without end)
              "rate": 5,                         bytes per second (absent: as fast as it goes)
              "then": "close"|"reset"|"hang",    after the body (default: keep the connection)
              "gzip_of_zeros": N}}               instead: a gzip stream of N zero bytes
    {"raw": "..."}                               bytes that are no HTTP response at all

``HostileServer(routes)`` serves ``routes`` (path -> a fixture name, a fixture dict, or
``(body bytes, content type)`` for an honest answer); anything else is a 404. ``greeting``:
bytes written as soon as a client connects, before it says anything (a TLS client then reads
them as its handshake). A context manager: on exit the server stops and every connection it
holds is closed.
"""

from __future__ import annotations

import gzip
import json
import socket
import struct
import threading
import time
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hostile" / "http"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


class HostileServer:
    def __init__(self, routes: dict[str, str | dict | tuple[bytes, str]], *, greeting: bytes = b"") -> None:
        self.greeting = greeting
        self.routes = {path: fixture(r) if isinstance(r, str) else r for path, r in routes.items()}
        # a gzip bomb is compressed now, not while a client waits: 64 MiB at level 9 takes over a
        # second on a busy host, longer than the read timeout the tests give the client
        self._gzip_of_zeros = {
            n: gzip.compress(bytes(n), 9)
            for n in {r["body"]["gzip_of_zeros"] for r in self.routes.values() if isinstance(r, dict) and "gzip_of_zeros" in r.get("body", {})}
        }
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def __enter__(self) -> "HostileServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for c in list(self._conns):
            try:
                c.close()
            except OSError:
                pass
        self._sock.close()

    # -- serving ----------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self._conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            if self.greeting:
                conn.sendall(self.greeting)
            while not self._stop.is_set():
                path = self._read_request(conn)
                if path is None:
                    return
                self.requests.append(path)
                if not self._answer(conn, path):
                    return
        except OSError:
            pass  # the client hung up: what these responses are for
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _read_request(self, conn: socket.socket) -> str | None:
        data = b""
        conn.settimeout(5)
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
            if data[:1] == b"\x16":  # a TLS hello: an HTTP server answers 400 and hangs up, as Go's does
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return None
        line = data.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        return parts[1] if len(parts) > 1 else "/"

    def _answer(self, conn: socket.socket, path: str) -> bool:
        """Write one response; False when the connection is finished with."""
        route = self.routes.get(path)
        if route is None:
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return True
        if isinstance(route, tuple):
            body, ctype = route
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                         + body)
            return True
        if "raw" in route:
            conn.sendall(route["raw"].encode())
            return False
        head = f"HTTP/1.1 {route['status']} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in route["headers"].items())
        conn.sendall(head.encode() + b"\r\n")
        body = route.get("body", {})
        if "gzip_of_zeros" in body:
            conn.sendall(self._gzip_of_zeros[body["gzip_of_zeros"]])
            conn.shutdown(socket.SHUT_WR)
            return False
        fill = body.get("fill", "x").encode()
        length = body.get("length")
        rate = body.get("rate")
        sent = 0
        block = fill * max(1, 65536 // len(fill))
        while length is None or sent < length:
            if self._stop.is_set():
                return False
            if rate:
                piece = fill[:1] * 1
                time.sleep(1 / rate)
            else:
                piece = block if length is None else block[: length - sent]
            conn.sendall(piece)
            sent += len(piece)
        then = body.get("then")
        if then == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if then == "close":
            return False
        if then == "hang":
            self._stop.wait()
            return False
        return True
