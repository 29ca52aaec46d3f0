"""The real registry for the tests: ``docker-registry serve`` (CNCF distribution) on 127.0.0.1.

``Registry(root)`` listens on a free port with its storage under ``root``; ``htpasswd``
({user: password}) turns on Basic auth through a file made by Debian's ``htpasswd`` (bcrypt, as
distribution wants); ``tls`` (a :class:`Certificates`) serves HTTPS with a server certificate
signed by a CA made here; ``auth`` is any other auth section (the token tests'). ``requests``
reads the registry's access log: (method, path) of every request it served.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Certificates:
    """A CA, and a server certificate for 127.0.0.1 and localhost that it signed."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def make(cls, root: Path, name: str = "capstone test CA") -> "Certificates":
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        root.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                           content_commitment=False, key_encipherment=False, data_encipherment=False,
                                           key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
              .sign(ca_key, hashes.SHA256()))
        key = ec.generate_private_key(ec.SECP256R1())
        server = (x509.CertificateBuilder()
                  .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
                  .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                  .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
                  .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                              x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                 critical=False)
                  .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                  .sign(ca_key, hashes.SHA256()))
        paths = cls(root / "ca.crt", root / "server.crt", root / "server.key")
        paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        paths.cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
        paths.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
        return paths


class Registry:
    """``docker-registry serve`` on 127.0.0.1:<free port>; ``host`` is ``127.0.0.1:PORT``."""

    def __init__(self, root: Path, auth: dict | None = None, *, htpasswd: dict[str, str] | None = None,
                 tls: Certificates | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.tls = tls
        self.scheme = "https" if tls else "http"
        config = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": False}, "formatter": "json"},
            "storage": {"filesystem": {"rootdirectory": str(root / "data")}, "delete": {"enabled": True}},
            "http": {"addr": self.host},
        }
        if htpasswd:
            file = root / "htpasswd"
            for i, (user, password) in enumerate(htpasswd.items()):
                subprocess.run(["htpasswd", "-B", "-b", *(["-c"] if i == 0 else []), str(file), user, password],
                               check=True, capture_output=True)
            auth = {"htpasswd": {"realm": "capstone-test", "path": str(file)}}
        if auth:
            config["auth"] = auth
        if tls:
            config["http"]["tls"] = {"certificate": str(tls.cert), "key": str(tls.key)}
        conf = root / "config.yml"
        conf.write_text(json.dumps(config))  # JSON is YAML
        self.log_path = root / "registry.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(conf)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"{self.scheme}://{self.host}/v2/", timeout=1, verify=False).status_code in (200, 401):
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"registry did not start: {self.log_path.read_text()}")
            time.sleep(0.05)

    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of the requests served so far, from the access log."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            # the access log is Apache's combined format: ... "GET /v2/ HTTP/1.1" 200 ...
            if '"' in line:
                parts = line.split('"')
                request = parts[1].split(" ") if len(parts) > 1 else []
                if len(request) == 3 and request[2].startswith("HTTP/"):
                    out.append((request[0], request[1]))
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
