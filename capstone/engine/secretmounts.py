"""Build secrets and SSH agent forwarding: ``--secret`` / ``--ssh`` and the RUN mounts that use them.

A secret is something a RUN step may read but the image must never hold: a token, a
``.netrc``, a private key. BuildKit's rules, which this module follows:

* ``build --secret id=ID[,src=PATH|,env=VAR][,type=file|env]``: the value is read from a file
  (``src``/``source``) or from an environment variable (``env``); with neither, from the
  variable named ID when it is set, else from the file named ID. Read when a step needs it.
* ``RUN --mount=type=secret,id=ID[,target=PATH][,env=VAR][,required][,mode=0400][,uid=][,gid=]``:
  the value is a read-only file at ``/run/secrets/ID`` (or ``target``), or, with ``env=`` and no
  target, only an environment variable of that step. The file is a bind mount of a copy made in
  a private (0700) directory on tmpfs (``/dev/shm``) when there is one; the mount point itself is
  made in the container's init layer, so the step's layer holds no trace of it. The key of the
  step's cache entry names the secret's id, never its value; the history shows the command only.
  A secret that was not given is an error when ``required``, else the mount is left out.
* ``build --ssh ID[=SOCKET|KEY,...]`` (``default`` when no id: ``$SSH_AUTH_SOCK``) and
  ``RUN --mount=type=ssh[,id=default][,target=][,required][,mode=0600][,uid=][,gid=]``: the
  agent is reached through a socket at ``/run/buildkit/ssh_agent.N`` (N counts the step's ssh
  mounts), and ``SSH_AUTH_SOCK`` names the first one. As BuildKit does, the step does not get
  the agent's own socket: it gets a socket of its own (owner and mode from the mount) whose
  connections this process relays to the agent (:class:`AgentRelay`), so a step running as
  another user still reaches it and nothing outlives the step. Key files instead of a socket
  start a private ``ssh-agent`` (openssh-client) holding those keys for the build.
"""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from part1_overview import model

from .errors import BuildError

#: BuildKit's limit on a secret's size
MAX_SECRET_SIZE = 500 * 1024


@model(frozen=True)
class SecretSource:
    """One ``--secret``: its ``id`` and where its value is read from (a file or a variable)."""

    id: str
    path: str | None = None
    env: str | None = None

    def read(self) -> bytes:
        """The secret's value (BuildError when the file cannot be read or is too large)."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise BuildError(f"--secret id={self.id}: environment variable {self.env} is not set")
            return value.encode("utf-8", "surrogateescape")
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_SECRET_SIZE + 1)
        except OSError as e:
            raise BuildError(f"--secret id={self.id}: {e.strerror}: {self.path}") from None
        if len(data) > MAX_SECRET_SIZE:
            raise BuildError(f"--secret id={self.id}: {self.path} is larger than {MAX_SECRET_SIZE} bytes")
        return data


def parse_secret(text: str) -> SecretSource:
    """``id=ID[,src=PATH|,env=VAR][,type=file|env]`` (buildx's ``--secret`` syntax)."""
    kind = "file"
    ident = path = env = None
    for field in text.split(","):
        key, eq, value = field.partition("=")
        key = key.strip().lower()
        if not eq:
            raise BuildError(f"--secret {text}: invalid field '{field}' must be a key=value pair")
        if key == "type":
            if value not in ("file", "env"):
                raise BuildError(f"--secret {text}: unsupported secret type {value!r} (file, env)")
            kind = value
        elif key == "id":
            ident = value
        elif key in ("source", "src"):
            path = value
        elif key == "env":
            env = value
        else:
            raise BuildError(f"--secret {text}: unexpected key '{key}' in '{field}'")
    if not ident:
        raise BuildError(f"--secret {text}: the secret needs an id")
    if kind == "env" and env is None:
        env, path = path or ident, None
    if env is None and path is None:
        if ident in os.environ:
            env = ident
        else:
            path = ident
    if env is not None and path is not None:
        raise BuildError(f"--secret {text}: give src or env, not both")
    return SecretSource(ident, os.path.abspath(path) if path is not None else None, env)


@model(frozen=True)
class SSHSource:
    """One ``--ssh``: an ``id`` and an agent socket, or key files for a private agent."""

    id: str
    socket: str | None = None
    keys: tuple[str, ...] = ()


def parse_ssh(text: str) -> SSHSource:
    """``default``, ``ID=SOCKET`` or ``ID=KEY[,KEY...]``; no path means ``$SSH_AUTH_SOCK``."""
    ident, eq, rest = text.partition("=")
    ident = ident.strip() or "default"
    paths = [p for p in rest.split(",") if p] if eq else []
    if not paths:
        sock = os.environ.get("SSH_AUTH_SOCK")
        if not sock:
            raise BuildError(f"--ssh {text}: no socket given and SSH_AUTH_SOCK is not set")
        paths = [sock]
    for p in paths:
        if not os.path.exists(p):
            raise BuildError(f"--ssh {text}: {p} does not exist")
    if len(paths) == 1 and stat.S_ISSOCK(os.stat(paths[0]).st_mode):
        return SSHSource(ident, os.path.abspath(paths[0]))
    for p in paths:
        if stat.S_ISSOCK(os.stat(p).st_mode):
            raise BuildError(f"--ssh {text}: give one agent socket or key files, not both")
    return SSHSource(ident, None, tuple(os.path.abspath(p) for p in paths))


def private_dir(fallback: Path) -> Path:
    """A fresh 0700 directory, on tmpfs (``/dev/shm``) when this host has one, so a secret's
    copy never reaches a disk; else under ``fallback``."""
    shm = "/dev/shm"
    base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else str(fallback)
    os.makedirs(base, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="capstone-secret-", dir=base))


def write_secret_file(directory: Path, name: str, data: bytes, *, mode: int, uid: int, gid: int) -> Path:
    """The secret as a file in ``directory`` (created 0600 before any byte is written)."""
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return path


class AgentRelay:
    """A unix socket at ``path`` whose connections are relayed to ``upstream`` (an ssh-agent).

    One thread accepts and copies bytes both ways with a selector; :meth:`close` stops it and
    removes the socket. The socket gets the mount's owner and mode before it is used.
    """

    def __init__(self, path: Path, upstream: str, *, mode: int = 0o600, uid: int = 0, gid: int = 0) -> None:
        self.path = Path(path)
        self.upstream = upstream
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(self.path))
        os.chown(self.path, uid, gid)
        os.chmod(self.path, mode)
        self._server.listen(16)
        self._server.setblocking(False)
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, name="capstone-ssh-relay", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._server, selectors.EVENT_READ, None)
        sel.register(self._wake_r, selectors.EVENT_READ, "stop")
        peers: dict[socket.socket, socket.socket] = {}

        def drop(s: socket.socket) -> None:
            other = peers.pop(s, None)
            for x in (s, other):
                if x is None:
                    continue
                peers.pop(x, None)
                try:
                    sel.unregister(x)
                except (KeyError, ValueError):
                    pass
                x.close()

        try:
            while True:
                for key, _ in sel.select():
                    if key.data == "stop":
                        return
                    sock = key.fileobj
                    if sock is self._server:
                        try:
                            client, _ = self._server.accept()
                        except BlockingIOError:
                            continue
                        agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                        try:
                            agent.connect(self.upstream)
                        except OSError:
                            client.close()
                            agent.close()
                            continue
                        peers[client], peers[agent] = agent, client
                        sel.register(client, selectors.EVENT_READ, None)
                        sel.register(agent, selectors.EVENT_READ, None)
                        continue
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        drop(sock)
                        continue
                    try:
                        peers[sock].sendall(data)  # agent messages are small: a short block at most
                    except (OSError, KeyError):
                        drop(sock)
        finally:
            for s in list(peers):
                s.close()
            sel.close()

    def close(self) -> None:
        if self._thread.is_alive():
            os.write(self._wake_w, b"x")
            self._thread.join(5)
        self._server.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def _accepts(path: str) -> bool:
    """Does the unix socket at ``path`` accept a connection now?"""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


class KeyAgent:
    """A private ``ssh-agent`` holding the given key files, for ``--ssh ID=KEY``."""

    def __init__(self, keys: tuple[str, ...], directory: Path) -> None:
        agent = shutil.which("ssh-agent")
        add = shutil.which("ssh-add")
        if agent is None or add is None:
            raise BuildError("--ssh with key files needs ssh-agent and ssh-add (Debian: openssh-client)")
        self.socket = str(directory / "agent.sock")
        self._proc = subprocess.Popen([agent, "-D", "-a", self.socket], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            self._wait_socket()
            env = {**os.environ, "SSH_AUTH_SOCK": self.socket}
            for key in keys:
                done = subprocess.run([add, "-q", key], env=env, stdin=subprocess.DEVNULL,
                                      capture_output=True, text=True)
                if done.returncode != 0:
                    why = (done.stderr.strip().splitlines() or ["ssh-add failed"])[-1]
                    raise BuildError(f"--ssh: cannot load key {key}: {why}")
        except BaseException:
            self.close()
            raise

    def _wait_socket(self) -> None:
        # until it accepts a connection: the socket exists from bind(2), but connections are
        # refused until the agent's listen(2), a moment later (ssh-add failed there on a busy host)
        for _ in range(1000):
            if _accepts(self.socket):
                return
            if self._proc.poll() is not None:
                raise BuildError(f"--ssh: ssh-agent exited with {self._proc.returncode}")
            time.sleep(0.01)
        raise BuildError("--ssh: ssh-agent did not listen on its socket")

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stderr is not None:
            self._proc.stderr.close()


class BuildSecrets:
    """The ``--secret`` and ``--ssh`` of one build; agents started for key files live until
    :meth:`close`."""

    def __init__(self, secrets=(), ssh=(), *, scratch: Path | None = None) -> None:
        self.secrets = {s.id: s for s in (x if isinstance(x, SecretSource) else parse_secret(x) for x in secrets)}
        self.ssh = {s.id: s for s in (x if isinstance(x, SSHSource) else parse_ssh(x) for x in ssh)}
        self._agents: dict[str, KeyAgent] = {}
        self._agent_dir: Path | None = None
        self.scratch = scratch

    def secret(self, ident: str) -> bytes | None:
        src = self.secrets.get(ident)
        return src.read() if src is not None else None

    def agent_socket(self, ident: str) -> str | None:
        src = self.ssh.get(ident)
        if src is None:
            return None
        if src.socket is not None:
            return src.socket
        agent = self._agents.get(ident)
        if agent is None:
            if self._agent_dir is None:
                self._agent_dir = Path(tempfile.mkdtemp(prefix="capstone-ssh-"))
            sub = self._agent_dir / str(len(self._agents))
            sub.mkdir(mode=0o700)
            agent = self._agents[ident] = KeyAgent(src.keys, sub)
        return agent.socket

    def close(self) -> None:
        for agent in self._agents.values():
            agent.close()
        self._agents.clear()
        if self._agent_dir is not None:
            shutil.rmtree(self._agent_dir, ignore_errors=True)
            self._agent_dir = None


__all__ = ["AgentRelay", "BuildSecrets", "KeyAgent", "MAX_SECRET_SIZE", "SSHSource", "SecretSource",
           "parse_secret", "parse_ssh", "private_dir", "write_secret_file"]
