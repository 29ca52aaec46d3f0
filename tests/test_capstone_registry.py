"""capstone pull / push against a real registry (CNCF distribution, ``docker-registry serve``).

The registry listens on 127.0.0.1 (plain HTTP, as for any loopback registry) with its storage
in a temporary directory. skopeo checks our pushes and makes pushes of its own for us to pull.
The token-auth test runs the registry with ``auth.token`` and a small token service here that
signs real JWTs (RS256, x5c) with a key the registry trusts.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from registry_server import Registry, free_port
from support import capstone, in_child, skopeo

from capstone.download import NetworkError
from capstone.registry import ManifestUnknown, RegistryAuthError, RegistryClient, pull, push
from capstone.runner import run_image
from capstone.store import Store
from part1_overview import replace
from part2_manual_oci import Index, Platform, validate_layout
from part2_manual_oci import mediatypes as mt

BUSYBOX = "capstone/busybox"
REPO = Path(__file__).resolve().parent.parent


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    r = Registry(tmp_path_factory.mktemp("registry"))
    yield r
    r.stop()


@pytest.fixture(scope="module")
def store(busybox_store) -> Store:
    s = busybox_store  # the embedded base, made once for the session (tests/conftest.py)
    base = s.load(BUSYBOX)
    app = base.with_config(env=["PATH=/bin", "WHERE=pushed"], cmd=["sh", "-c", "echo $WHERE"])
    s.commit(app, ["test/pushed:1"])
    return s


def run_output(store: Store, name: str, tmp_path: Path) -> tuple[int, str]:
    out = tmp_path / f"out-{os.urandom(4).hex()}"

    def body():
        with open(out, "wb") as f:
            return run_image(store, name, network="none", stdout=f, stderr=f)

    return in_child(body), out.read_text()


# -- push and pull, between our stores ----------------------------------------------------------


def test_push_then_pull_into_another_store_keeps_digests_and_runs(store, registry, tmp_path):
    dest = f"docker://{registry.host}/test/app:1"
    digest = push(store, "test/pushed:1", dest)
    assert digest == store.resolve("test/pushed:1").digest

    other = Store.open(tmp_path / "other")
    got = pull(other, f"{registry.host}/test/app:1")
    assert got.digest == digest
    assert other.resolve(f"{registry.host}/test/app:1").digest == digest
    assert other.load(f"{registry.host}/test/app:1").config == store.load("test/pushed:1").config
    assert validate_layout(other.layout.path) == []
    assert run_output(other, f"{registry.host}/test/app:1", tmp_path) == (0, "pushed\n")


def test_second_push_uploads_no_blob(store, registry):
    messages: list[str] = []
    push(store, "test/pushed:1", f"docker://{registry.host}/test/again:1")
    push(store, "test/pushed:1", f"docker://{registry.host}/test/again:1", on_progress=messages.append)
    blob_lines = [m for m in messages if m.startswith("sha256:")]
    assert len(blob_lines) == 2 and all("already exists" in m for m in blob_lines)


def test_pull_by_digest(store, registry, tmp_path):
    digest = push(store, "test/pushed:1", f"docker://{registry.host}/test/bydigest:1")
    other = Store.open(tmp_path / "other")
    got = pull(other, f"{registry.host}/test/bydigest@{digest}")
    assert got.digest == digest


def test_pull_of_a_missing_tag_names_it(registry, tmp_path):
    with pytest.raises(ManifestUnknown, match="test/nothing/manifests/nope"):
        pull(Store.open(tmp_path / "s"), f"{registry.host}/test/nothing:nope")


# -- skopeo reads ours, we read skopeo's ---------------------------------------------------------


def test_skopeo_inspect_reads_what_we_pushed(store, registry):
    digest = push(store, "test/pushed:1", f"docker://{registry.host}/test/seen:2")
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/test/seen:2"))
    assert info["Digest"] == digest
    assert info["Env"] == ["PATH=/bin", "WHERE=pushed"]
    assert len(info["Layers"]) == 1


@pytest.mark.parametrize("fmt", ["oci", "v2s2"])
def test_pull_reads_what_skopeo_pushed(store, registry, tmp_path, fmt):
    store.export("test/pushed:1", f"oci:{tmp_path / 'layout'}:x")
    target = f"{registry.host}/skopeo/{fmt}:1"
    skopeo("copy", "--dest-tls-verify=false", "--format", fmt, f"oci:{tmp_path / 'layout'}:x", f"docker://{target}")
    expected = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{target}"))["Digest"]
    other = Store.open(tmp_path / "other")
    got = pull(other, target)
    assert got.digest == expected
    want_type = mt.OCI_MANIFEST if fmt == "oci" else mt.DOCKER_MANIFEST
    assert got.media_type == want_type
    assert run_output(other, target, tmp_path) == (0, "pushed\n")


def test_index_push_and_pull_picks_the_host_platform(store, registry, tmp_path):
    """An index with this host's image and one for another architecture: push pushes both
    manifests then the index; pull takes the one for this host."""
    here = store.resolve("test/pushed:1")
    manifest = store.layout.read_manifest(here)
    config = store.layout.read_json(manifest.config)
    foreign_config = store.layout.put_json({**config, "architecture": "s390x"}, mt.OCI_CONFIG)
    foreign = store.layout.put_json(replace(manifest, config=foreign_config), mt.OCI_MANIFEST)
    index = Index(manifests=(
        replace(foreign, platform=Platform("s390x", "linux")),
        replace(here, annotations=None, platform=Platform(config["architecture"], "linux")),
    ))
    index_desc = store.layout.put_json(index, mt.OCI_INDEX)
    store.tag("test/multi:1", index_desc)

    pushed = push(store, "test/multi:1", f"docker://{registry.host}/test/multi:1")
    assert pushed == index_desc.digest
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/test/multi:1"))
    assert raw["mediaType"] == mt.OCI_INDEX and len(raw["manifests"]) == 2

    other = Store.open(tmp_path / "other")
    got = pull(other, f"{registry.host}/test/multi:1")
    assert got.digest == here.digest  # this host's entry, not s390x
    assert not other.layout.has_blob(foreign_config.digest)


# -- token auth ---------------------------------------------------------------------------------


class TokenService:
    """A token service as the distribution spec describes it: GET /token?service=&scope=,
    optional Basic credentials (only test:secret are accepted), answers a signed JWT granting
    the scope asked for. ``requests`` records (scope, user) for the assertions."""

    def __init__(self, root: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "capstone test token signer")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(self.key, hashes.SHA256()))
        self.bundle = root / "token-root.crt"
        self.bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self.requests: list[tuple[str, str | None]] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                user = None
                header = self.headers.get("Authorization")
                if header:
                    user, _, password = base64.b64decode(header.split()[1]).decode().partition(":")
                    if (user, password) != ("test", "secret"):
                        self.send_response(401)
                        self.end_headers()
                        return
                scope = " ".join(query.get("scope", []))  # a mount asks for two repositories
                service.requests.append((scope, user))
                body = json.dumps({"token": service.sign(scope, query.get("service", [""])[0])}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def sign(self, scope: str, audience: str) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        access = []
        for item in filter(None, scope.split(" ")):
            kind, name, actions = item.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": "capstone-test", "sub": "", "aud": audience, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": os.urandom(8).hex(), "access": access}
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        b64 = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
        signing_input = f"{b64(header)}.{b64(claims)}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("token-registry")
    tokens = TokenService(root)
    auth = {"token": {"realm": tokens.realm, "service": "capstone-registry", "issuer": "capstone-test",
                      "rootcertbundle": str(tokens.bundle)}}
    r = Registry(root, auth=auth)
    yield r, tokens
    r.stop()
    tokens.stop()


def test_bearer_token_flow_push_and_pull(store, token_registry, tmp_path):
    registry, tokens = token_registry
    assert httpx.get(f"http://{registry.host}/v2/test/tok/tags/list").status_code == 401
    digest = push(store, "test/pushed:1", f"docker://{registry.host}/test/tok:1",
                  client=RegistryClient(registry.host, credentials=("test", "secret")))
    assert ("repository:test/tok:pull,push", "test") in tokens.requests
    other = Store.open(tmp_path / "other")
    got = pull(other, f"{registry.host}/test/tok:1", client=RegistryClient(registry.host, credentials=("test", "secret")))
    assert got.digest == digest
    assert ("repository:test/tok:pull", "test") in tokens.requests


def test_a_mount_asks_for_a_token_over_both_repositories(store, token_registry):
    registry, tokens = token_registry
    with RegistryClient(registry.host, credentials=("test", "secret")) as client:
        push(store, "test/pushed:1", f"docker://{registry.host}/test/mount-from:1", client=client)
    messages: list[str] = []
    with RegistryClient(registry.host, credentials=("test", "secret")) as client:
        push(store, "test/pushed:1", f"docker://{registry.host}/test/mount-to:1", client=client,
             on_progress=messages.append)
    assert ("repository:test/mount-to:pull,push repository:test/mount-from:pull", "test") in tokens.requests
    assert len([m for m in messages if m.endswith("mounted from another repository")]) == 2


def test_wrong_credentials_are_refused(store, token_registry, tmp_path):
    registry, _ = token_registry
    with pytest.raises(RegistryAuthError) as info:
        pull(Store.open(tmp_path / "s"), f"{registry.host}/test/tok:1",
             client=RegistryClient(registry.host, credentials=("test", "wrong")))
    # which registry refused which user, where the credentials came from, and who said no
    assert str(info.value).startswith(f"{registry.host} refused user 'test' (credentials from the caller): "
                                      f"token service {tokens_realm(token_registry)}")
    assert "wrong" not in str(info.value)


def tokens_realm(token_registry) -> str:
    return token_registry[1].realm


# -- the command line ---------------------------------------------------------------------------


def test_cli_push_and_pull(store, registry, tmp_path):
    r = capstone(store.path, "push", "test/pushed:1", f"docker://{registry.host}/cli/app:1")
    assert r.returncode == 0, r.stderr
    digest = r.stdout.strip()
    assert digest == store.resolve("test/pushed:1").digest
    r = capstone(tmp_path / "other", "pull", f"{registry.host}/cli/app:1")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{registry.host}/cli/app:1@{digest}\n"


def test_cli_push_to_an_archive_goes_through_the_store_export(store, tmp_path):
    r = capstone(store.path, "push", "test/pushed:1", f"oci:{tmp_path / 'out'}:v1")
    assert r.returncode == 0, r.stderr
    skopeo("inspect", f"oci:{tmp_path / 'out'}:v1")


def test_cli_pull_unreachable_registry_is_one_line(tmp_path):
    r = capstone(tmp_path / "s", "pull", f"127.0.0.1:{free_port()}/x/y:1")
    assert r.returncode == 1
    *retries, error = r.stderr.strip().splitlines()
    assert error.startswith("capstone: GET https://127.0.0.1:") and "Connection refused (after 4 attempts)" in error
    # a refused connection is tried again (the lines say so), then fails in one line
    assert len(retries) == 3 and all("Connection refused; retrying in" in line for line in retries), r.stderr


def test_plain_http_only_for_loopback_registries(monkeypatch, registry):
    from capstone.registry import is_insecure
    from capstone.registry.client import parse_challenge

    monkeypatch.delenv("CAPSTONE_INSECURE_REGISTRIES", raising=False)
    assert is_insecure("localhost:5000") and is_insecure("127.0.0.1:5000") and is_insecure("[::1]:5000")
    assert is_insecure("127.0.0.2:5000")
    assert not is_insecure("docker.io") and not is_insecure("registry.example:5000")
    assert RegistryClient("docker.io").base == "https://registry-1.docker.io"
    # a loopback registry that speaks no TLS (the first request tries it) is spoken to in HTTP
    assert RegistryClient(registry.host).base == f"http://{registry.host}"
    # unless TLS is demanded
    with RegistryClient(registry.host, insecure=False) as strict:
        assert strict.base == f"https://{registry.host}"
        with pytest.raises(NetworkError, match="TLS error"):
            strict.ping()
    monkeypatch.setenv("CAPSTONE_INSECURE_REGISTRIES", "registry.example:5000")
    assert is_insecure("registry.example:5000")
    scheme, params = parse_challenge('Bearer realm="https://auth.example/token",service="registry.example",'
                                     'scope="repository:a/b:pull,push"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.example/token", "service": "registry.example",
                      "scope": "repository:a/b:pull,push"}


def test_a_blob_that_does_not_match_its_digest_is_refused_and_not_stored(tmp_path):
    """A server that answers like a registry but sends other bytes for the layer."""
    import hashlib

    from capstone.registry import DigestMismatch

    layer_claimed = b"the real layer"
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    sha = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()  # noqa: E731
    manifest = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                           "config": {"mediaType": mt.OCI_CONFIG, "digest": sha(config), "size": len(config)},
                           "layers": [{"mediaType": mt.OCI_LAYER, "digest": sha(layer_claimed),
                                       "size": len(layer_claimed)}]}).encode()
    bodies = {"/v2/x/y/manifests/1": (manifest, mt.OCI_MANIFEST), f"/v2/x/y/blobs/{sha(config)}": (config, "application/octet-stream"),
              f"/v2/x/y/blobs/{sha(layer_claimed)}": (b"something else", "application/octet-stream")}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            body, ctype = bodies.get(self.path, (b"{}", "application/json"))
            self.send_response(200 if self.path in bodies else 404)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        s = Store.open(tmp_path / "s")
        with pytest.raises(DigestMismatch, match=sha(layer_claimed)):
            pull(s, f"127.0.0.1:{server.server_address[1]}/x/y:1")
        assert not s.layout.has_blob(sha(layer_claimed))
        assert s.resolve(f"127.0.0.1:{server.server_address[1]}/x/y:1") is None
        assert [p.name for p in s.layout.blobs_dir.iterdir()] == [sha(config).split(":")[1]]
    finally:
        server.shutdown()
        server.server_close()
