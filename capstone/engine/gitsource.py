"""``ADD`` from a git repository, with the host's ``git`` program.

Which source words are git repositories (BuildKit's ``gitutil.ParseGitRef`` rules):

* ``http://`` / ``https://`` URLs whose path ends in ``.git`` (any other http URL is a download);
* ``git://`` and ``ssh://`` URLs;
* SCP-style addresses ``user@host:path`` (``git@github.com:moby/buildkit.git``);
* never ``./`` or ``../`` paths, and not ``github.com/x/y`` (BuildKit takes that form only for
  build contexts).

The fragment picks what to check out: ``#REF:SUBDIR`` (REF a branch, a tag or a commit; empty:
the remote's default branch; SUBDIR a directory of the tree to copy instead of its root), or
BuildKit's newer form ``##ref=REF,commit=SHA,subdir=DIR``.

How a source becomes files:

1. :func:`resolve`: ``git ls-remote`` names the commit (a tag is peeled to its commit; a full
   commit id is taken as it is). That is all the cache key needs: the step's key is made from
   the commit, the subdir and the flags, so a rebuild at the same commit is a cache hit that
   fetches nothing, and a new commit on the branch is a miss. ``--checksum`` is checked here:
   a hex prefix of the commit (or of an annotated tag's object).
2. :func:`checkout`: ``git init`` in a private directory, ``git fetch --depth 1`` of exactly that
   commit, ``git checkout``, submodules when the tree has a ``.gitmodules``; then the tree is
   made to look as BuildKit gives it: ``.git`` removed unless ``--keep-git-dir``, file modes
   normalised (directories and executables 0755, other files 0644: git records one bit), and
   every mtime set to the commit's time (BuildKit's ``git.mtime=commit``: the same commit gives
   the same layer).

Git runs without the user's or the system's configuration (so no ``url.insteadOf`` or hooks
change what is fetched), never prompts, and may only speak http(s), ssh and git.

Git's transfers are bounded as every other download (``capstone.download.Limits``): over http(s)
``http.lowSpeedLimit``/``http.lowSpeedTime`` are the minimum rate and its window, over ssh
``ConnectTimeout`` is the connect timeout and keep-alives end a silent connection after the read
timeout; each git command also has a deadline, after which its whole process group (git and its
``git-remote-https`` or ``ssh`` helpers) is killed.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import stat
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from part1_overview import model

from .errors import StepFailure

if TYPE_CHECKING:
    from ..download import Limits

#: how long one ``git ls-remote`` / ``git fetch`` may take (seconds)
LS_REMOTE_TIMEOUT = 60
FETCH_TIMEOUT = 600

_SCHEMES = ("http", "https", "git", "ssh")
_PROTO = re.compile(r"^([A-Za-z0-9]+)://")
_SCP = re.compile(r"^(?:[A-Za-z0-9_.-]+@)([A-Za-z0-9.-]+):(.+)$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")


class GitSourceError(StepFailure):
    """A git source that cannot be resolved or fetched (the step turns it into
    ``Dockerfile:LINE: ...``)."""


@model(frozen=True)
class GitSource:
    """One ``ADD`` source word that names a git repository: ``remote`` (the address git is
    given, no fragment), ``ref`` (branch, tag or commit; "" for the default branch),
    ``subdir`` (slash path, "" for the root), ``commit`` (a commit the ref must be, from the
    ``##commit=`` form), ``word`` (as written)."""

    word: str
    remote: str
    ref: str = ""
    subdir: str = ""
    commit: str = ""


@model(frozen=True)
class ResolvedGit:
    """A git source at a commit: ``refname`` is the full ref the name resolved to
    (``refs/heads/main``; None when a commit was asked for), ``tag_object`` the annotated
    tag's own object id."""

    source: GitSource
    commit: str
    refname: str | None = None
    tag_object: str | None = None

    def key_facts(self, keep_git_dir: bool) -> dict:
        """What decides the files: the repository, the commit, the subdir (and, when ``.git``
        is kept, which ref it names)."""
        facts = {"git": self.source.remote, "commit": self.commit, "subdir": self.source.subdir}
        if keep_git_dir:
            facts["ref"] = self.refname or ""
        return facts


def _fragment(fragment: str) -> tuple[str, str, str]:
    """(ref, subdir, commit) of a URL fragment (after the first ``#``)."""
    if fragment.startswith("#"):  # ##ref=..,commit=..,subdir=..
        ref = subdir = commit = ""
        for field in filter(None, fragment[1:].split(",")):
            key, eq, value = field.partition("=")
            if not eq:
                raise GitSourceError(f"invalid field {field!r} in git fragment: must be a key=value pair")
            key = key.strip().lower()
            if key == "ref":
                ref = value
            elif key == "commit":
                commit = value
            elif key == "subdir":
                subdir = value
            else:
                raise GitSourceError(f"unexpected key {key!r} in git fragment (supported keys: ref, commit, "
                                     "subdir)")
        return ref or commit, subdir, commit
    ref, _, subdir = fragment.partition(":")
    return ref, subdir, ""


def _clean_subdir(subdir: str) -> str:
    parts = [p for p in subdir.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise GitSourceError(f"git subdir {subdir!r} may not contain ..")
    return "/".join(parts)


def parse_git_source(word: str) -> GitSource | None:
    """The git repository ``word`` names, or None when it names none (a local path or a plain
    http download). Raises :class:`GitSourceError` for a git address with a bad fragment."""
    if word.startswith(("./", "../", "/", "github.com/")):
        return None
    m = _PROTO.match(word)
    if m:
        scheme = m.group(1).lower()
        if scheme not in _SCHEMES:
            return None
        base, sep, fragment = word.partition("#")
        if scheme in ("http", "https"):
            path = urlsplit(base).path
            if not path.endswith(".git"):
                return None
    elif _SCP.match(word.partition("#")[0]):
        base, sep, fragment = word.partition("#")
    else:
        return None
    ref, subdir, commit = _fragment(fragment) if sep else ("", "", "")
    return GitSource(word, base, ref, _clean_subdir(subdir), commit.lower())


def is_git_source(word: str) -> bool:
    try:
        return parse_git_source(word) is not None
    except GitSourceError:
        return True


# -- running git ---------------------------------------------------------------------------------


def _env(limits: Limits) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ALLOW_PROTOCOL": "http:https:ssh:git",
        "LC_ALL": "C",
    })
    alive = max(1, math.ceil(limits.read_timeout / 3))
    env["GIT_SSH_COMMAND"] = (f"ssh -o BatchMode=yes -o ConnectTimeout={max(1, math.ceil(limits.connect_timeout))} "
                              f"-o ServerAliveInterval={alive} -o ServerAliveCountMax=3")
    return env


def _limit_options(limits: Limits) -> list[str]:
    """git's own minimum rate for http(s): below ``lowSpeedLimit`` bytes/s for ``lowSpeedTime``
    seconds ends the transfer (curl's CURLOPT_LOW_SPEED_*)."""
    return ["-c", f"http.lowSpeedLimit={max(1, limits.min_rate)}",
            "-c", f"http.lowSpeedTime={max(1, math.ceil(limits.rate_window))}"]


def _git(args: list[str], *, cwd: str | os.PathLike | None = None, timeout: float) -> subprocess.CompletedProcess:
    from ..download import Limits  # the registry client's module (httpx): only when git runs

    limits = Limits.from_environment()
    argv = ["git", "-c", "advice.detachedHead=false", "-c", "init.defaultBranch=main", "-c", "protocol.version=2",
            *_limit_options(limits), *args]
    try:
        # a session of its own: at the deadline git and every helper it started are killed
        proc = subprocess.Popen(argv, cwd=cwd, env=_env(limits), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
    except FileNotFoundError:
        raise GitSourceError("ADD from a git repository needs the git program, which is not installed") from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise GitSourceError(f"git {args[0]} took longer than {timeout:.0f}s") from None
    except BaseException:
        _kill_group(proc)
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


def _why(proc: subprocess.CompletedProcess) -> str:
    """The last meaningful line git wrote to stderr."""
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(("fatal:", "error:")):
            return line.split(":", 1)[1].strip()
    return lines[-1] if lines else f"git exited with {proc.returncode}"


# -- 1. the commit ---------------------------------------------------------------------------------


def _is_commit_id(ref: str) -> bool:
    return len(ref) in (40, 64) and _HEX.match(ref) is not None


def ls_remote(source: GitSource, patterns: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """``git ls-remote --symref``: (ref name -> object id, symbolic ref -> its target)."""
    proc = _git(["ls-remote", "--symref", "--", source.remote, *patterns], timeout=LS_REMOTE_TIMEOUT)
    if proc.returncode != 0:
        raise GitSourceError(f"ADD {source.word}: cannot reach the git repository {source.remote}: {_why(proc)}")
    refs: dict[str, str] = {}
    symrefs: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        left, _, name = line.partition("\t")
        if left.startswith("ref: "):
            symrefs[name] = left[5:]
        elif name:
            refs[name] = left
    return refs, symrefs


def resolve(source: GitSource, checksum: str | None = None) -> ResolvedGit:
    """The commit ``source`` names now (one ``git ls-remote``), checked against ``checksum``
    (a hex prefix of the commit or of the annotated tag) and the fragment's ``commit=``."""
    if checksum is not None and (not checksum or _HEX.match(checksum) is None):
        raise GitSourceError(f"ADD {source.word}: invalid checksum {checksum!r}: expected hex commit hash")
    ref = source.ref
    if ref and _is_commit_id(ref):
        resolved = ResolvedGit(source, ref.lower())
        ls_remote(source, ["HEAD"])  # the repository must answer, as for a name
    else:
        refs, symrefs = ls_remote(source, [ref, ref + "^{}"] if ref else ["HEAD"])  # ^{}: a tag's commit
        resolved = None
        if not ref:
            if "HEAD" in refs:
                resolved = ResolvedGit(source, refs["HEAD"], symrefs.get("HEAD"))
        else:
            candidates = [ref] if ref.startswith("refs/") else []
            candidates += [f"refs/{ref}", f"refs/tags/{ref}", f"refs/heads/{ref}", f"refs/remotes/{ref}",
                           f"refs/remotes/{ref}/HEAD"]
            for name in candidates:
                if name in refs:
                    peeled = refs.get(name + "^{}")
                    if peeled is not None:  # an annotated tag: its commit
                        resolved = ResolvedGit(source, peeled, name, refs[name])
                    else:
                        resolved = ResolvedGit(source, refs[name], name)
                    break
        if resolved is None:
            what = f"ref {ref!r}" if ref else "a default branch (HEAD)"
            hint = ""
            if ref and _HEX.match(ref) and len(ref) >= 4:
                hint = " (an abbreviated commit cannot be fetched: give all of its hex digits)"
            raise GitSourceError(f"ADD {source.word}: {what} not found in {source.remote}{hint}")
    if source.commit and not resolved.commit.startswith(source.commit):
        raise GitSourceError(f"ADD {source.word}: expected commit {source.commit}, got {resolved.commit}")
    if checksum is not None:
        want = checksum.lower()
        if not (resolved.commit.startswith(want) or (resolved.tag_object or "").startswith(want)):
            got = resolved.commit if resolved.tag_object is None else f"{resolved.tag_object} or {resolved.commit}"
            raise GitSourceError(f"ADD {source.word}: expected checksum to match {checksum}, got {got}")
    return resolved


# -- 2. the files ----------------------------------------------------------------------------------


@model(frozen=True)
class GitTree:
    """A checked-out git source: ``path`` (the directory to copy: the root or the subdir),
    ``root`` (the work tree), ``commit`` and its ``commit_time`` (seconds since the epoch)."""

    path: str
    root: str
    commit: str
    commit_time: int


def checkout(resolved: ResolvedGit, workdir: str | os.PathLike, *, keep_git_dir: bool = False) -> GitTree:
    """Fetch ``resolved.commit`` (depth 1) into the new directory ``workdir`` and check it
    out; ``.git`` removed unless ``keep_git_dir``, modes and mtimes normalised."""
    source = resolved.source
    root = Path(workdir)
    root.mkdir(parents=True)

    def run(*args: str, timeout: float = FETCH_TIMEOUT, what: str = "") -> str:
        proc = _git(list(args), cwd=root, timeout=timeout)
        if proc.returncode != 0:
            raise GitSourceError(f"ADD {source.word}: {what or 'git ' + args[0]} failed: {_why(proc)}")
        return proc.stdout

    run("init", "-q", ".")
    run("remote", "add", "origin", source.remote)
    proc = _git(["fetch", "-q", "--depth", "1", "--no-tags", "origin", resolved.commit], cwd=root,
                timeout=FETCH_TIMEOUT)
    if proc.returncode != 0:
        if resolved.refname is None:
            raise GitSourceError(f"ADD {source.word}: commit {resolved.commit} not found in {source.remote}: "
                                 f"{_why(proc)}")
        # a server that refuses unadvertised commits: fetch the ref, which must still be there
        run("fetch", "-q", "--depth", "1", "--no-tags", "origin", resolved.refname, what="git fetch")
        fetched = run("rev-parse", "FETCH_HEAD^{commit}").strip()
        if fetched != resolved.commit:
            raise GitSourceError(f"ADD {source.word}: {resolved.refname} moved from {resolved.commit} to "
                                 f"{fetched} during the build")
    run("checkout", "-q", "--detach", f"{resolved.commit}", what="git checkout")
    head = run("rev-parse", "HEAD").strip()
    if head != resolved.commit:
        raise GitSourceError(f"ADD {source.word}: {resolved.commit} is not a commit (checked out {head})")
    if keep_git_dir and resolved.refname:
        name = resolved.refname
        if name.startswith("refs/heads/"):
            run("checkout", "-q", "-B", name[len("refs/heads/"):], resolved.commit, what="git checkout")
        else:
            run("update-ref", name, resolved.commit)
    commit_time = int(run("show", "-s", "--format=%ct", "HEAD").strip() or 0)
    if (root / ".gitmodules").is_file():
        run("submodule", "update", "--init", "--recursive", "--depth", "1", what="git submodule update")
    if not keep_git_dir:
        _remove_tree(root / ".git")
    top = root
    walked = []
    for part in source.subdir.split("/") if source.subdir else ():
        walked.append(part)
        top = top / part
        try:
            st = os.lstat(top)
        except FileNotFoundError:
            raise GitSourceError(f"ADD {source.word}: subdir {'/'.join(walked)} not found in {source.remote} at "
                                 f"{resolved.commit[:12]}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise GitSourceError(f"ADD {source.word}: subdir {'/'.join(walked)} is not a directory in "
                                 f"{source.remote} at {resolved.commit[:12]}")
    normalise(root, commit_time)
    return GitTree(str(top), str(root), resolved.commit, commit_time)


def _remove_tree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
        return
    if not path.exists():
        return
    for dirpath, dirnames, _ in os.walk(path):  # git makes its objects read-only
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
    shutil.rmtree(path)


def normalise(root: str | os.PathLike, mtime: int) -> None:
    """Directories and executable files 0755, other files 0644 (``.git`` left as git made
    it), owner 0:0, every mtime ``mtime``."""
    root = str(root)
    owned = os.geteuid() == 0  # (the copy stages what it cannot stream with the right owner)
    if owned:
        os.chown(root, 0, 0)
    for dirpath, dirnames, filenames in os.walk(root):
        in_git = os.path.relpath(dirpath, root).split(os.sep)[0] == ".git"
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if owned:
                os.chown(path, 0, 0, follow_symlinks=False)
            if not in_git and not stat.S_ISLNK(st.st_mode):
                if stat.S_ISDIR(st.st_mode) or st.st_mode & 0o100:
                    os.chmod(path, 0o755)
                else:
                    os.chmod(path, 0o644)
            os.utime(path, (mtime, mtime), follow_symlinks=False)
    os.chmod(root, 0o755)
    os.utime(root, (mtime, mtime))  # (chmod, chown and utime leave a directory's mtime alone)


__all__ = ["GitSource", "GitSourceError", "GitTree", "ResolvedGit", "checkout", "is_git_source", "ls_remote",
           "normalise", "parse_git_source", "resolve"]
