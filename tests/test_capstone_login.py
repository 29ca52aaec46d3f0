"""Credentials and TLS as users meet them: ``capstone login``/``logout``, the auth files podman
and docker read, credential helpers, and registries served over TLS.

Every registry here is the real ``docker-registry`` on 127.0.0.1: with htpasswd auth (Basic,
users made by Debian's ``htpasswd``), over TLS with a certificate signed by a CA the test
makes, or both. skopeo (containers/image, podman's library) reads what ``login`` writes. The
conftest points every default location (containers auth file, Docker config, registries.conf,
certs.d) into the session's own directory; each test here narrows them to its own.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from registry_server import Certificates, Registry
from support import capstone

from capstone.registry import (
    Credentials,
    CredentialsError,
    HostConfig,
    RegistryAuthError,
    RegistryClient,
    RegistryError,
    find_credentials,
    pull,
    push,
    remove_credentials,
    save_credentials,
)
from capstone.store import Store

HELPERS = Path(__file__).resolve().parent / "fixtures" / "credential-helper"
USER, PASSWORD = "alice", "correct-horse-7f3a9"
WRONG = "wrong-battery-21c8e"


# -- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certificates:
    return Certificates.make(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory):
    r = Registry(tmp_path_factory.mktemp("basic-registry"), htpasswd={USER: PASSWORD, "bob": "bobs-pass-0a1b"})
    yield r
    r.stop()


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory, certs):
    r = Registry(tmp_path_factory.mktemp("tls-registry"), tls=certs)
    yield r
    r.stop()


@pytest.fixture(scope="module")
def tls_basic_registry(tmp_path_factory, certs):
    r = Registry(tmp_path_factory.mktemp("tls-basic-registry"), tls=certs, htpasswd={USER: PASSWORD})
    yield r
    r.stop()


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("login-store") / "store"
    s = Store.open(path)
    s.commit(s.load("capstone/busybox").with_config(env=["PATH=/bin", "WHO=pushed"]), ["test/login:1"])
    return path


@pytest.fixture
def home(tmp_path, monkeypatch) -> dict[str, str]:
    """This test's own credential locations (for this process and the commands it runs)."""
    env = {"XDG_RUNTIME_DIR": str(tmp_path / "run"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "DOCKER_CONFIG": str(tmp_path / "docker"), "CAPSTONE_CERTS_D": str(tmp_path / "certs.d"),
           "CONTAINERS_REGISTRIES_CONF": str(tmp_path / "registries.conf")}
    (tmp_path / "registries.conf").write_text("")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def auth_file(env: dict[str, str]) -> Path:
    return Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def skopeo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


# -- login and logout ---------------------------------------------------------------------------------


def test_login_writes_the_containers_auth_file_that_skopeo_reads(basic_registry, store_dir, home, tmp_path):
    r = capstone(store_dir, "login", "-u", USER, "--password-stdin", basic_registry.host, input=PASSWORD + "\n")
    assert (r.returncode, r.stdout) == (0, "Login Succeeded!\n"), r.stderr
    path = auth_file(home)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert json.loads(path.read_text()) == {"auths": {basic_registry.host: {"auth": basic(USER, PASSWORD)}}}

    # pushes and pulls find them there; skopeo (podman's library) reads the same file by itself
    r = capstone(store_dir, "push", "test/login:1", f"{basic_registry.host}/cred/app:1")
    assert r.returncode == 0, r.stderr
    seen = skopeo("inspect", "--tls-verify=false", f"docker://{basic_registry.host}/cred/app:1", env=home)
    assert seen.returncode == 0, seen.stderr
    assert json.loads(seen.stdout)["Digest"] == r.stdout.strip()
    r = capstone(tmp_path / "other", "pull", f"{basic_registry.host}/cred/app:1")
    assert r.returncode == 0, r.stderr

    r = capstone(store_dir, "login", "--get-login", basic_registry.host)
    assert r.stdout == f"{USER}\n"
    r = capstone(store_dir, "login", basic_registry.host)  # what is saved is checked, nothing asked
    assert r.returncode == 0 and "Already logged in" in r.stdout, r.stderr

    r = capstone(store_dir, "logout", basic_registry.host)
    assert (r.returncode, r.stdout) == (0, f"Removed login credentials for {basic_registry.host}\n")
    assert json.loads(path.read_text()) == {"auths": {}}
    r = capstone(store_dir, "logout", basic_registry.host)
    assert r.returncode == 1 and r.stderr == f"capstone: logout: not logged in to {basic_registry.host}\n"
    r = capstone(tmp_path / "third", "pull", f"{basic_registry.host}/cred/app:1")
    assert r.returncode == 1 and "wants a user name and password" in r.stderr


def test_a_refused_login_names_the_registry_the_user_and_where_the_credentials_came_from(basic_registry, store_dir,
                                                                                         home):
    r = capstone(store_dir, "login", "-u", USER, "--password-stdin", basic_registry.host, input=WRONG)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"capstone: {basic_registry.host} refused user '{USER}' (credentials from the command line and standard "
        f"input): GET http://{basic_registry.host}/v2/: 401 Unauthorized (UNAUTHORIZED authentication required)"]
    assert not auth_file(home).exists()  # nothing saved

    # saved credentials that are refused name the file they were read from
    auth_file(home).parent.mkdir(parents=True)
    auth_file(home).write_text(json.dumps({"auths": {basic_registry.host: {"auth": basic(USER, WRONG)}}}))
    r = capstone(store_dir, "pull", f"{basic_registry.host}/cred/any:1")
    assert r.returncode == 1
    assert r.stderr.startswith(f"capstone: {basic_registry.host} refused user '{USER}' (credentials from "
                               f"{auth_file(home)} (containers auth file)): GET http://"), r.stderr
    r = capstone(store_dir, "login", basic_registry.host)
    assert r.returncode == 1 and f"refused user '{USER}' (credentials from {auth_file(home)}" in r.stderr


def test_login_writes_the_docker_config_when_that_is_what_exists(basic_registry, store_dir, home):
    config = Path(home["DOCKER_CONFIG"]) / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"auths": {"other.example": {"auth": basic("x", "y")}}, "psFormat": "table"}))
    r = capstone(store_dir, "login", "-u", USER, "--password-stdin", basic_registry.host, input=PASSWORD)
    assert r.returncode == 0, r.stderr
    assert not auth_file(home).exists()
    doc = json.loads(config.read_text())
    assert doc["auths"][basic_registry.host] == {"auth": basic(USER, PASSWORD)}
    assert doc["auths"]["other.example"] == {"auth": basic("x", "y")} and doc["psFormat"] == "table"
    assert config.stat().st_mode & 0o777 == 0o600
    found = find_credentials(basic_registry.host)
    assert (found.username, found.password) == (USER, PASSWORD)
    assert found.source == f"{config} (Docker config)"


def test_login_with_authfile_and_registry_auth_file(basic_registry, store_dir, home, tmp_path):
    own = tmp_path / "own" / "auth.json"
    r = capstone(store_dir, "login", "--authfile", str(own), "-u", USER, "--password-stdin", basic_registry.host,
                 input=PASSWORD)
    assert r.returncode == 0, r.stderr
    assert json.loads(own.read_text())["auths"][basic_registry.host]["auth"] == basic(USER, PASSWORD)
    assert not auth_file(home).exists()
    r = capstone(store_dir, "push", "--authfile", str(own), "test/login:1", f"{basic_registry.host}/cred/af:1")
    assert r.returncode == 0, r.stderr
    r = capstone(store_dir, "push", "test/login:1", f"{basic_registry.host}/cred/af:1",
                 env={"REGISTRY_AUTH_FILE": str(own)})
    assert r.returncode == 0, r.stderr


def test_credentials_are_read_in_their_order(home, tmp_path, monkeypatch):
    def write(path: Path, user: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"auths": {"reg.example:5000": {"auth": basic(user, f"{user}-pass")}}}))
        return path

    docker = write(Path(home["DOCKER_CONFIG"]) / "config.json", "docker")
    assert find_credentials("reg.example:5000").source == f"{docker} (Docker config)"
    config_home = write(Path(home["XDG_CONFIG_HOME"]) / "containers" / "auth.json", "config-home")
    assert find_credentials("reg.example:5000").username == "config-home"
    write(auth_file(home), "runtime")
    assert find_credentials("reg.example:5000").username == "runtime"
    env_file = write(tmp_path / "env.json", "env")
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(env_file))
    found = find_credentials("reg.example:5000")
    assert (found.username, found.password, found.source) == ("env", "env-pass", f"{env_file} ($REGISTRY_AUTH_FILE)")
    flag_file = write(tmp_path / "flag.json", "flag")
    assert find_credentials("reg.example:5000", authfile=flag_file).username == "flag"
    found = find_credentials("reg.example:5000", authfile=flag_file, creds="cli:cli-pass")
    assert (found.username, found.password, found.source) == ("cli", "cli-pass", "--creds")
    # a file that lacks the registry passes the question on
    assert find_credentials("reg.example:5000", authfile=tmp_path / "missing.json").username == "env"
    assert config_home.exists() and find_credentials("nowhere.example") is None


def test_auth_file_keys_as_docker_and_podman_spell_them(home):
    config = Path(home["DOCKER_CONFIG"]) / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": basic("hub", "hub-pass")},
        "https://reg.example/": {"auth": basic("url", "url-pass")},
        "ns.example": {"auth": basic("host", "host-pass")},
        "ns.example/team": {"auth": basic("team", "team-pass")},
    }}))
    assert find_credentials("docker.io").username == "hub"
    assert find_credentials("reg.example").username == "url"
    assert find_credentials("ns.example", "team/app").username == "team"  # the longest namespace
    assert find_credentials("ns.example", "other/app").username == "host"
    config.write_text(json.dumps({"auths": {"bad.example": {"auth": "not base64!"}}}))
    with pytest.raises(CredentialsError, match=r"config.json: the auth of 'bad.example' is not base64"):
        find_credentials("bad.example")
    config.write_text("{not json")
    with pytest.raises(CredentialsError, match=r"config.json: not JSON"):
        find_credentials("bad.example")


# -- credential helpers -------------------------------------------------------------------------------


@pytest.fixture
def helper(home, tmp_path, monkeypatch) -> Path:
    """The test's docker-credential-capstonetest on PATH, keeping its secrets in a file."""
    monkeypatch.setenv("PATH", f"{HELPERS}{os.pathsep}{os.environ['PATH']}")
    store = tmp_path / "helper-store.json"
    monkeypatch.setenv("CAPSTONE_TEST_HELPER_STORE", str(store))
    return store


def test_login_through_creds_store_and_pull_through_it(basic_registry, store_dir, home, helper, tmp_path):
    config = Path(home["DOCKER_CONFIG"]) / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"credsStore": "capstonetest"}))
    r = capstone(store_dir, "login", "-u", USER, "--password-stdin", basic_registry.host, input=PASSWORD)
    assert r.returncode == 0, r.stderr
    # the secret is in the helper, the config only names the registry (as docker login leaves it)
    assert json.loads(config.read_text()) == {"credsStore": "capstonetest", "auths": {basic_registry.host: {}}}
    assert PASSWORD not in config.read_text()
    assert json.loads(helper.read_text()) == {basic_registry.host: {"Username": USER, "Secret": PASSWORD}}
    r = capstone(store_dir, "push", "test/login:1", f"{basic_registry.host}/cred/helper:1")
    assert r.returncode == 0, r.stderr
    found = find_credentials(basic_registry.host)
    assert found.source == f"docker-credential-capstonetest (credsStore in {config})"
    r = capstone(store_dir, "logout", basic_registry.host)
    assert r.returncode == 0, r.stderr
    assert json.loads(helper.read_text()) == {}
    calls = Path(f"{helper}.log").read_text().split("\n")
    assert f"store {basic_registry.host}" in calls and f"get {basic_registry.host}" in calls
    assert f"erase {basic_registry.host}" in calls


def test_cred_helpers_per_registry_come_first(home, helper):
    config = Path(home["DOCKER_CONFIG"]) / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"credHelpers": {"helped.example": "capstonetest"},
                                  "auths": {"helped.example": {"auth": basic("file", "file-pass")}}}))
    helper.write_text(json.dumps({"helped.example": {"Username": "helped", "Secret": "helper-pass"}}))
    found = find_credentials("helped.example")
    assert (found.username, found.password) == ("helped", "helper-pass")
    assert found.source == f"docker-credential-capstonetest (credHelpers in {config})"
    helper.write_text("{}")  # the helper has none: no credentials (the file's entry is the helper's)
    assert find_credentials("helped.example") is None
    config.write_text(json.dumps({"credHelpers": {"helped.example": "missing"}}))
    with pytest.raises(CredentialsError, match="names the helper docker-credential-missing, which is not on PATH"):
        find_credentials("helped.example")


def test_save_and_remove_keep_other_entries_and_mode(home):
    where = save_credentials("one.example", "u1", "p1")
    save_credentials("two.example", "u2", "p2")
    assert where == str(auth_file(home))
    doc = json.loads(auth_file(home).read_text())
    assert set(doc["auths"]) == {"one.example", "two.example"}
    assert remove_credentials("one.example") == [str(auth_file(home))]
    assert set(json.loads(auth_file(home).read_text())["auths"]) == {"two.example"}
    assert auth_file(home).stat().st_mode & 0o777 == 0o600
    assert remove_credentials("one.example") == []


# -- bearer tokens with credentials from a file --------------------------------------------------------


def test_credentials_never_appear_in_output_or_logs(basic_registry, tls_basic_registry, store_dir, home, tmp_path,
                                                    certs):
    """Everything the commands print, with and without --debug, refused or accepted, and the
    registry's own log: neither the password nor its base64 form is anywhere."""
    outputs = []

    def run(*args, **kw):
        r = capstone(store_dir, *args, **kw)
        outputs.append(r.stdout + r.stderr)
        return r

    host = basic_registry.host
    run("login", "-u", USER, "--password-stdin", host, input=WRONG)
    run("--debug", "login", "-u", USER, "--password-stdin", host, input=WRONG)
    run("login", "-u", USER, "-p", WRONG, host)
    assert run("login", "-u", USER, "--password-stdin", host, input=PASSWORD).returncode == 0
    run("push", "test/login:1", f"{host}/secret/app:1")
    run("--debug", "pull", f"{host}/secret/app:1")
    run("pull", "--creds", f"{USER}:{WRONG}", f"{host}/secret/app:1")
    run("--debug", "pull", "--creds", f"{USER}:{WRONG}", f"{host}/secret/app:1")
    run("login", "--get-login", host)
    run("logout", host)
    cert_dir = tmp_path / "cert-dir"
    cert_dir.mkdir()
    shutil.copy(certs.ca, cert_dir / "ca.crt")
    run("login", "--cert-dir", str(cert_dir), "-u", USER, "--password-stdin", tls_basic_registry.host, input=WRONG)
    run("push", "--cert-dir", str(cert_dir), "--creds", f"{USER}:{PASSWORD}", "test/login:1",
        f"{tls_basic_registry.host}/secret/app:1")
    run("--debug", "push", "--cert-dir", str(cert_dir), "--creds", f"{USER}:{WRONG}", "test/login:1",
        f"{tls_basic_registry.host}/secret/app:1")
    assert len(outputs) == 13 and any("Traceback" in o for o in outputs)  # --debug did show tracebacks
    logs = [basic_registry.log_path.read_text(errors="replace"), tls_basic_registry.log_path.read_text(errors="replace")]
    for text in outputs + logs:
        for secret in (PASSWORD, WRONG, basic(USER, PASSWORD), basic(USER, WRONG)):
            assert secret not in text
    assert repr(Credentials(USER, PASSWORD, "x")).find(PASSWORD) == -1


# -- TLS ------------------------------------------------------------------------------------------------


def test_a_registry_whose_certificate_is_not_trusted_is_refused_in_one_line(tls_registry, store_dir, home):
    r = capstone(store_dir, "push", "-q", "test/login:1", f"{tls_registry.host}/tls/app:1")
    assert r.returncode == 1
    assert r.stderr.splitlines() == [r.stderr.strip()], r.stderr
    assert f"https://{tls_registry.host}/v2/" in r.stderr
    assert "certificate verify failed: unable to get local issuer certificate" in r.stderr
    assert f"certs.d/{tls_registry.host}/ca.crt, or --tls-verify=false" in r.stderr
    # no request was ever made in plain HTTP to a registry that speaks TLS
    assert not any(path.startswith("/v2/tls") for _, path in tls_registry.requests())
    # with its progress shown, it is still one line: no blob moved, so none has a line of its own
    r = capstone(store_dir, "push", "test/login:1", f"{tls_registry.host}/tls/app:1")
    assert r.returncode == 1 and r.stderr.splitlines() == [r.stderr.strip()], r.stderr


@pytest.mark.parametrize("root_kind", ["containers", "docker"])
def test_a_ca_in_certs_d_is_trusted(tls_registry, store_dir, home, tmp_path, certs, root_kind):
    # the two roots, as /etc/containers/certs.d and /etc/docker/certs.d (the test's own copies)
    roots = [tmp_path / "containers-certs.d", tmp_path / "docker-certs.d"]
    directory = roots[0 if root_kind == "containers" else 1] / tls_registry.host
    directory.mkdir(parents=True)
    shutil.copy(certs.ca, directory / "ca.crt")
    env = {"CAPSTONE_CERTS_D": ":".join(map(str, roots))}
    r = capstone(store_dir, "push", "-q", "test/login:1", f"{tls_registry.host}/tls/{root_kind}:1", env=env)
    assert r.returncode == 0, r.stderr
    r = capstone(tmp_path / "other", "pull", "-q", f"{tls_registry.host}/tls/{root_kind}:1", env=env)
    assert r.returncode == 0, r.stderr
    seen = skopeo("inspect", "--cert-dir", str(directory), f"docker://{tls_registry.host}/tls/{root_kind}:1")
    assert json.loads(seen.stdout)["Digest"] == r.stdout.strip()


def test_tls_verify_false_and_insecure_registries_skip_verification(tls_registry, store_dir, home, tmp_path):
    r = capstone(store_dir, "push", "-q", "--tls-verify=false", "test/login:1", f"{tls_registry.host}/tls/noverify:1")
    assert r.returncode == 0, r.stderr
    # registries.conf's insecure = true, for this registry only
    Path(home["CONTAINERS_REGISTRIES_CONF"]).write_text(
        f'[[registry]]\nlocation = "{tls_registry.host}"\ninsecure = true\n')
    r = capstone(tmp_path / "other", "pull", "-q", f"{tls_registry.host}/tls/noverify:1")
    assert r.returncode == 0, r.stderr
    # --tls-verify=true overrides it
    r = capstone(tmp_path / "third", "pull", "-q", "--tls-verify=true", f"{tls_registry.host}/tls/noverify:1")
    assert r.returncode == 1 and "certificate verify failed" in r.stderr


def test_login_over_tls_with_a_cert_dir(tls_basic_registry, store_dir, home, tmp_path, certs):
    cert_dir = tmp_path / "cert-dir"
    cert_dir.mkdir()
    shutil.copy(certs.ca, cert_dir / "ca.crt")
    r = capstone(store_dir, "login", "--cert-dir", str(cert_dir), "-u", USER, "--password-stdin",
                 tls_basic_registry.host, input=PASSWORD)
    assert r.returncode == 0, r.stderr
    r = capstone(store_dir, "push", "-q", "--cert-dir", str(cert_dir), "test/login:1",
                 f"{tls_basic_registry.host}/tls/login:1")
    assert r.returncode == 0, r.stderr
    seen = skopeo("inspect", "--cert-dir", str(cert_dir), f"docker://{tls_basic_registry.host}/tls/login:1", env=home)
    assert seen.returncode == 0, seen.stderr


def test_plain_http_only_where_it_is_allowed(basic_registry, home, monkeypatch):
    # loopback and speaking no TLS: plain HTTP; but never when TLS is demanded
    assert HostConfig.for_registry(basic_registry.host).allow_http
    with RegistryClient(basic_registry.host) as client:
        assert client.base == f"http://{basic_registry.host}"
    with RegistryClient(basic_registry.host, insecure=False) as client:
        assert client.base == f"https://{basic_registry.host}"
    # any other registry: TLS, unless registries.conf or the flag says otherwise
    assert not HostConfig.for_registry("reg.example:5000").allow_http
    Path(home["CONTAINERS_REGISTRIES_CONF"]).write_text(
        '[[registry]]\nprefix = "*.example"\ninsecure = true\n'
        '[[registry]]\nlocation = "blocked.org/team"\nblocked = true\n'
        '[registries.insecure]\nregistries = ["v1.example:5000"]\n')
    config = HostConfig.for_registry("reg.example:5000")
    assert (config.allow_http, config.verify) == (True, False)
    assert config.why == f"insecure in {home['CONTAINERS_REGISTRIES_CONF']}"
    assert HostConfig.for_registry("v1.example:5000").allow_http
    assert HostConfig.for_registry("blocked.org").allow_http is False
    with pytest.raises(RegistryError, match="registry blocked.org is blocked in"):
        HostConfig.for_registry("blocked.org", "team/app")
    assert not HostConfig.for_registry("other.org").allow_http
    Path(home["CONTAINERS_REGISTRIES_CONF"]).write_text("[[registry]\n")
    with pytest.raises(RegistryError, match="registries.conf: not valid TOML"):
        HostConfig.for_registry("other.org")


def test_a_key_without_its_certificate_in_certs_d_is_one_line(home, tls_registry, certs):
    directory = Path(home["CAPSTONE_CERTS_D"]) / tls_registry.host
    directory.mkdir(parents=True)
    shutil.copy(certs.key, directory / "client.key")
    with pytest.raises(RegistryError, match=r"client.key: a client key without its certificate client.cert"):
        RegistryClient(tls_registry.host)


def test_wrong_creds_on_the_command_line_are_named_as_such(basic_registry, store_dir, home):
    with pytest.raises(RegistryAuthError) as info:
        push(Store.open(store_dir), "test/login:1", f"{basic_registry.host}/cred/flag:1",
             client=RegistryClient(basic_registry.host, credentials=Credentials(USER, WRONG, "--creds")))
    assert f"{basic_registry.host} refused user '{USER}' (credentials from --creds)" in str(info.value)
    with pytest.raises(RegistryAuthError, match="no credentials found .capstone login"):
        pull(Store.open(store_dir), f"{basic_registry.host}/cred/flag:1")
