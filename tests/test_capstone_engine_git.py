"""capstone.engine ADD from git: a real repository made here (commits, an annotated and a
lightweight tag, a subdir, files with modes 0755 and 0600), served on 127.0.0.1 by ``git daemon``
(git://) and by ``git http-backend`` behind a small HTTP server (smart HTTP, http://...git).
Checked on the built images' files: refs by branch, tag and commit, ``#ref:subdir``, ``.git``
dropped unless ``--keep-git-dir``, modes normalised, the cache keyed by the resolved commit (a
hit fetches nothing), ``--checksum``, and one-line errors at the ADD's line."""

from __future__ import annotations

import http.server
import os
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest
from registry_server import free_port
from support import image_rootfs, make_context, quiet_build

from capstone.engine.gitsource import parse_git_source
from capstone.errors import DockerfileError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds need root (namespaces, overlay mounts)")

GIT_ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True,
                          text=True).stdout.strip()


def commit(work: Path, message: str, when: int) -> str:
    env = {**GIT_ENV, "GIT_AUTHOR_DATE": f"@{when} +0000", "GIT_COMMITTER_DATE": f"@{when} +0000"}
    subprocess.run(["git", "add", "-A"], cwd=work, env=env, check=True)
    subprocess.run(["git", "commit", "-q", "-m", message], cwd=work, env=env, check=True)
    return git(work, "rev-parse", "HEAD")


class Repo:
    """``base/proj.git`` (bare, what the servers serve) fed from the work tree ``work``."""

    def __init__(self, root: Path) -> None:
        self.base = root / "served"
        self.work = root / "work"
        self.base.mkdir()
        self.work.mkdir()
        git(self.base, "init", "-q", "--bare", "-b", "main", "proj.git")
        git(self.work, "init", "-q", "-b", "main")
        git(self.work, "remote", "add", "origin", str(self.base / "proj.git"))
        w = self.work
        (w / "README").write_text("one\n")
        (w / "bin").mkdir()
        (w / "bin/run.sh").write_text("#!/bin/sh\necho run\n")
        os.chmod(w / "bin/run.sh", 0o755)
        (w / "secret.txt").write_text("not secret in git\n")
        os.chmod(w / "secret.txt", 0o600)
        (w / "sub/deep").mkdir(parents=True)
        (w / "sub/deep/inner.txt").write_text("inner\n")
        (w / "sub/tool").write_text("#!/bin/sh\n")
        os.chmod(w / "sub/tool", 0o700)
        os.symlink("README", w / "link")
        self.c1 = commit(w, "one", 1_600_000_000)
        git(w, "tag", "-a", "-m", "version 1", "v1")
        self.v1_tag_object = git(w, "rev-parse", "v1")
        (w / "README").write_text("two\n")
        self.c2 = commit(w, "two", 1_700_000_000)
        git(w, "tag", "v2")
        git(w, "branch", "moving")
        git(w, "push", "-q", "origin", "main", "moving", "v1", "v2")

    def advance(self, branch: str, name: str, when: int) -> str:
        git(self.work, "checkout", "-q", branch)
        (self.work / name).write_text(name + "\n")
        sha = commit(self.work, name, when)
        git(self.work, "push", "-q", "origin", branch)
        git(self.work, "checkout", "-q", "main")
        return sha


def wait_listening(port: int, proc: subprocess.Popen) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise RuntimeError(f"git daemon exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    return Repo(tmp_path_factory.mktemp("git"))


@pytest.fixture(scope="module")
def daemon(repo):
    """``git daemon`` serving ``repo.base`` on 127.0.0.1: the git:// URL of proj.git."""
    exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True).stdout.strip()
    port = free_port()
    proc = subprocess.Popen([os.path.join(exec_path, "git-daemon"), "--reuseaddr", f"--base-path={repo.base}",
                             "--export-all", "--listen=127.0.0.1", f"--port={port}", str(repo.base)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc)
        yield f"git://127.0.0.1:{port}/proj.git"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class SmartHTTP(http.server.BaseHTTPRequestHandler):
    """Git's smart HTTP protocol: each request handed to ``git http-backend`` as a CGI."""

    root = ""
    fetches: ClassVar[list[str]] = []

    def do_GET(self):
        self.cgi()

    def do_POST(self):
        self.cgi()

    def log_message(self, *a):
        pass

    def cgi(self):
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": self.root, "GIT_HTTP_EXPORT_ALL": "1",
               "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
               "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": self.command,
               "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
               "REMOTE_ADDR": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.0"}
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if b"command=fetch" in body:
            type(self).fetches.append(path)
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=False).stdout
        sep = b"\r\n\r\n" if b"\r\n\r\n" in out else b"\n\n"
        head, _, payload = out.partition(sep)
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture(scope="module")
def smart_http(repo):
    """An HTTP server on 127.0.0.1 speaking git's smart protocol: the http:// URL of proj.git,
    and the list of paths that received a fetch."""
    handler = type("Handler", (SmartHTTP,), {"root": str(repo.base), "fetches": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/proj.git", handler.fetches
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def built(store, ctx: Path, tmp_path: Path, name: str = "gittest", **kw):
    """Build ``ctx`` with the umask 077 (git then checks out 0600/0700: the build must
    normalise); the result and the image's files."""
    old = os.umask(0o077)
    try:
        result = quiet_build(store, ctx, tags=[name], **kw)
    finally:
        os.umask(old)
    return result, image_rootfs(store, name, tmp_path / f"rootfs-{len(list(tmp_path.glob('rootfs-*')))}")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# -- which words are git sources ---------------------------------------------------------------


@pytest.mark.parametrize("word, remote, ref, subdir", [
    ("https://github.com/moby/buildkit.git", "https://github.com/moby/buildkit.git", "", ""),
    ("https://github.com/moby/buildkit.git#v0.10.1", "https://github.com/moby/buildkit.git", "v0.10.1", ""),
    ("https://host/r.git#main:docs/api", "https://host/r.git", "main", "docs/api"),
    ("https://host/r.git#:sub", "https://host/r.git", "", "sub"),
    ("http://127.0.0.1:8080/r.git#refs/pull/1/head", "http://127.0.0.1:8080/r.git", "refs/pull/1/head", ""),
    ("git://host/r#v1", "git://host/r", "v1", ""),
    ("ssh://git@host/r.git", "ssh://git@host/r.git", "", ""),
    ("git@github.com:moby/buildkit.git#main:frontend", "git@github.com:moby/buildkit.git", "main", "frontend"),
    ("https://host/r.git##ref=v2,subdir=a/b", "https://host/r.git", "v2", "a/b"),
])
def test_git_words_are_recognised_as_buildkit_does(word, remote, ref, subdir):
    src = parse_git_source(word)
    assert src is not None
    assert (src.remote, src.ref, src.subdir) == (remote, ref, subdir)


@pytest.mark.parametrize("word", [
    "https://host/file.tar.gz", "http://host/repo", "./repo.git", "../x.git", "/abs/r.git", "file.git",
    "github.com/moby/buildkit", "ftp://host/r.git", "dir/sub:colon",
])
def test_other_words_are_not_git_sources(word):
    assert parse_git_source(word) is None


# -- over git:// -------------------------------------------------------------------------------


def test_add_git_branch_tag_commit_and_subdir(store, repo, daemon, tmp_path):
    ctx = make_context(tmp_path / "ctx", f"""\
FROM scratch
ADD {daemon} /default/
ADD {daemon}#v1 /v1
ADD {daemon}#{repo.c1} /bysha
ADD {daemon}#main:sub /subonly/
ADD {daemon}#refs/heads/main:sub/deep /deep
""")
    _, root = built(store, ctx, tmp_path)
    assert (root / "default/README").read_text() == "two\n"
    assert (root / "v1/README").read_text() == "one\n"
    assert (root / "bysha/README").read_text() == "one\n"
    assert sorted(os.listdir(root / "subonly")) == ["deep", "tool"]
    assert os.listdir(root / "deep") == ["inner.txt"]
    for top in ("default", "v1", "bysha", "subonly", "deep"):
        assert not (root / top / ".git").exists()
    # modes: git records one bit; the build's umask 077 does not leak into the image
    assert mode(root / "default/bin/run.sh") == 0o755
    assert mode(root / "default/secret.txt") == 0o644
    assert mode(root / "default/README") == 0o644
    assert mode(root / "default/bin") == 0o755
    assert mode(root / "default/sub/deep") == 0o755
    assert mode(root / "subonly/tool") == 0o755
    assert os.readlink(root / "default/link") == "README"
    st = os.stat(root / "default/README")
    assert (st.st_uid, st.st_gid) == (0, 0)
    # every file carries the commit's time
    assert int(os.lstat(root / "v1/bin/run.sh").st_mtime) == 1_600_000_000
    assert int(os.lstat(root / "default/sub/deep/inner.txt").st_mtime) == 1_700_000_000


def test_keep_git_dir_keeps_a_repository_at_the_ref(store, repo, daemon, tmp_path):
    ctx = make_context(tmp_path / "ctx", f"FROM scratch\nADD --keep-git-dir {daemon}#main /src\n"
                                         f"ADD --keep-git-dir=true {daemon}#v1 /tagged\n")
    _, root = built(store, ctx, tmp_path)
    assert (root / "src/.git").is_dir()
    assert git(root / "src", "rev-parse", "HEAD") == repo.c2
    assert git(root / "src", "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git(root / "src", "status", "--porcelain") == ""  # the work tree is the commit's
    assert git(root / "tagged", "rev-parse", "HEAD") == repo.c1
    assert git(root / "tagged", "rev-parse", "v1^{commit}") == repo.c1


def test_checksum_is_a_prefix_of_the_commit(store, repo, daemon, tmp_path):
    ok = make_context(tmp_path / "ok", f"FROM scratch\nADD --checksum={repo.c1[:12]} {daemon}#v1 /a\n"
                                       f"ADD --checksum={repo.v1_tag_object} {daemon}#v1 /b\n"
                                       f"ADD --checksum={repo.c2} {daemon}#main /c\n")
    _, root = built(store, ok, tmp_path)
    assert (root / "a/README").read_text() == (root / "b/README").read_text() == "one\n"
    bad = make_context(tmp_path / "bad", f"FROM scratch\nADD --checksum={repo.c2[:10]} {daemon}#v1 /a\n")
    with pytest.raises(DockerfileError, match=rf"^Dockerfile:2: ADD {daemon}#v1: expected checksum to match "
                                              rf"{repo.c2[:10]}, got .*{repo.c1}"):
        built(store, bad, tmp_path)
    garbage = make_context(tmp_path / "garbage", f"FROM scratch\nADD --checksum=sha256:00 {daemon} /a\n")
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: .*invalid checksum .*expected hex commit hash"):
        built(store, garbage, tmp_path)


def test_errors_name_the_line(store, repo, daemon, tmp_path):
    unknown = make_context(tmp_path / "unknown", f"FROM scratch\n\nADD {daemon}#no-such-branch /x/\n")
    with pytest.raises(DockerfileError, match=r"^Dockerfile:3: ADD .*: ref 'no-such-branch' not found in "):
        built(store, unknown, tmp_path)
    missing_dir = make_context(tmp_path / "missing", f"FROM scratch\nADD {daemon}#main:nope /x/\n")
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: ADD .*: subdir nope not found in "):
        built(store, missing_dir, tmp_path)
    file_dir = make_context(tmp_path / "filedir", f"FROM scratch\nADD {daemon}#main:README /x/\n")
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: ADD .*: subdir README is not a directory"):
        built(store, file_dir, tmp_path)
    closed = f"git://127.0.0.1:{free_port()}/proj.git"
    unreachable = make_context(tmp_path / "unreachable", f"FROM scratch\nADD {closed}#main /x/\n")
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: ADD .*: cannot reach the git repository "):
        built(store, unreachable, tmp_path)
    try:
        built(store, unreachable, tmp_path)
    except DockerfileError as e:
        assert "\n" not in str(e)
    copy = make_context(tmp_path / "copy", f"FROM scratch\nADD --checksum=abc {daemon} f /x/\n", {"f": "f"})
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: .*checksum can't be specified for multiple"):
        built(store, copy, tmp_path)


def test_git_and_context_sources_in_one_add(store, repo, daemon, tmp_path):
    ctx = make_context(tmp_path / "ctx", f"FROM scratch\nADD --exclude=bin {daemon}#v1 local.txt /mixed/\n",
                       {"local.txt": "local\n"})
    _, root = built(store, ctx, tmp_path)
    assert sorted(os.listdir(root / "mixed")) == ["README", "link", "local.txt", "secret.txt", "sub"]


# -- over smart HTTP -----------------------------------------------------------------------------


def test_add_git_over_smart_http_with_chown_and_chmod(store, repo, smart_http, tmp_path):
    url, _ = smart_http
    ctx = make_context(tmp_path / "ctx", f"FROM scratch\nADD --chown=7:8 --chmod=750 {url}#v1:sub /s/\n")
    _, root = built(store, ctx, tmp_path)
    assert (root / "s/deep/inner.txt").read_text() == "inner\n"
    st = os.lstat(root / "s/deep/inner.txt")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (7, 8, 0o750)


def test_cache_hit_fetches_nothing_and_a_new_commit_misses(store, repo, smart_http, tmp_path):
    url, fetches = smart_http
    ctx = make_context(tmp_path / "ctx", f"FROM scratch\nADD {url}#moving /m/\n")
    first, root = built(store, ctx, tmp_path)
    assert first.steps[-1].cached is False
    assert not (root / "m/later").exists()
    fetched = len(fetches)
    assert fetched >= 1
    again, _ = built(store, ctx, tmp_path)
    assert again.steps[-1].cached is True
    assert len(fetches) == fetched  # the hit asked only ls-remote
    repo.advance("moving", "later", 1_800_000_000)
    third, root = built(store, ctx, tmp_path)
    assert third.steps[-1].cached is False
    assert (root / "m/later").read_text() == "later\n"
    assert len(fetches) == fetched + 1
