"""capstone run: images from the store in containers (part 6 runtime over a part 7 overlay).

Every container runs for real. The overlay mounts happen in a child process with a private
mount namespace (``in_child``), so nothing is left mounted whatever a test does; the CLI tests
run ``python -m capstone`` as a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from support import capstone, in_child

from capstone.runner import Container, ContainerRunError, container_command, merge_env, run_image
from capstone.store import Store, mounts_under
from part3_go_style_builder import layer_from_directory
from part6_runtime import Mount
from part7_union import describe_tree

BUSYBOX = "capstone/busybox"
APP = "test/app:1"
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
REPO = Path(__file__).resolve().parent.parent


def run_captured(store: Store, name: str, tmp_path: Path, **kw) -> tuple[int, str]:
    """run_image in a child; (exit code, what the container wrote on stdout and stderr)."""
    out = tmp_path / f"out-{os.urandom(4).hex()}"

    def body():
        with open(out, "wb") as f:
            return run_image(store, name, network="none", stdout=f, stderr=f, **kw)

    code = in_child(body)
    return code, out.read_text()


@pytest.fixture(scope="module")
def store(busybox_store, tmp_path_factory) -> Store:
    """A store with the embedded busybox (tests/conftest.py) and ``test/app:1`` built on it: a
    layer with a user ``app`` (uid 1000), /srv/data.txt, and a config with Entrypoint, Cmd,
    Env, WorkingDir, User."""
    root = tmp_path_factory.mktemp("run-store")
    s = busybox_store
    base = s.load(BUSYBOX)
    files = root / "layer"
    (files / "etc").mkdir(parents=True)
    (files / "srv").mkdir()
    lower = s.lowers(base)[0]
    (files / "etc/passwd").write_text((lower / "etc/passwd").read_text() + "app:x:1000:1000:app:/srv:/bin/sh\n")
    (files / "srv/data.txt").write_text("from the image\n")
    image = base.append_layer(layer_from_directory(files, root / "blobs"), created_by="test layer")
    image = image.with_config(
        env=[PATH, "GREETING=hello", "MODE=image"],
        entrypoint=["/bin/echo", "entry:"],
        cmd=["default", "cmd"],
        working_dir="/srv",
        user="app",
    )
    s.commit(image, [APP])
    return s


# -- Docker's rules, pure -----------------------------------------------------------------------


def test_command_is_entrypoint_plus_cmd_or_override():
    cfg = {"config": {"Entrypoint": ["/bin/echo", "e"], "Cmd": ["c1", "c2"]}}
    assert container_command(cfg, None, None) == ["/bin/echo", "e", "c1", "c2"]
    assert container_command(cfg, ["x"], None) == ["/bin/echo", "e", "x"]
    # --entrypoint drops the image's Cmd; '' clears the entrypoint
    assert container_command(cfg, None, ["/bin/sh"]) == ["/bin/sh"]
    assert container_command(cfg, ["ls"], [""]) == ["ls"]
    with pytest.raises(ContainerRunError, match="no command"):
        container_command({"config": {}}, None, None)


def test_env_merges_image_then_flags_in_place(monkeypatch):
    monkeypatch.setenv("FROM_CALLER", "yes")
    monkeypatch.delenv("UNSET_THING", raising=False)
    got = merge_env([PATH, "A=1", "B=2"], ["B=3", "C=4", "FROM_CALLER", "UNSET_THING"])
    assert got == [PATH, "A=1", "B=3", "C=4", "FROM_CALLER=yes"]


# -- run_image ----------------------------------------------------------------------------------


def test_image_entrypoint_and_cmd_run(store, tmp_path):
    code, out = run_captured(store, APP, tmp_path)
    assert (code, out) == (0, "entry: default cmd\n")


def test_command_replaces_cmd_and_keeps_entrypoint(store, tmp_path):
    code, out = run_captured(store, APP, tmp_path, command=["given", "args"])
    assert (code, out) == (0, "entry: given args\n")


def test_entrypoint_override_env_workdir_and_user_from_image(store, tmp_path):
    script = 'echo "$GREETING $MODE $EXTRA"; pwd; id -u; id -un; cat data.txt'
    code, out = run_captured(store, APP, tmp_path, entrypoint=["/bin/sh", "-c"], command=[script],
                             env=["MODE=flag", "EXTRA=x"])
    assert code == 0
    assert out.splitlines() == ["hello flag x", "/srv", "1000", "app", "from the image"]


def test_workdir_and_user_flags_override_the_image(store, tmp_path):
    code, out = run_captured(store, APP, tmp_path, entrypoint=["sh"], command=["-c", "pwd; id -u"],
                             workdir="/tmp", user="0")
    assert (code, out.split()) == (0, ["/tmp", "0"])


def test_exit_code_passes_through(store, tmp_path):
    code, _ = run_captured(store, BUSYBOX, tmp_path, command=["sh", "-c", "exit 7"])
    assert code == 7


def test_container_sees_hostname_pid1_and_the_image_rootfs(store, tmp_path):
    code, out = run_captured(store, BUSYBOX, tmp_path, hostname="box",
                             command=["sh", "-c", "hostname; echo $$; ls /; cat /etc/hostname"])
    lines = out.split()
    assert code == 0
    assert lines[0] == "box" and lines[1] == "1"
    assert {"bin", "etc", "proc", "dev", "sys"} <= set(lines[2:])
    assert lines[-1] == "box"


def test_container_writes_never_change_the_image(store, tmp_path):
    image = store.load(APP)
    lowers = store.lowers(image)
    before = [describe_tree(p) for p in lowers]
    changes = "echo changed > /srv/data.txt; rm /bin/ls; mkdir /new; echo hi > /new/file"
    code, _ = run_captured(store, APP, tmp_path, entrypoint=["sh", "-c"], command=[changes], user="0", rm=False)
    assert code == 0
    assert [describe_tree(p) for p in lowers] == before  # the snapshots are untouched
    # the next container starts from the image again
    code, out = run_captured(store, APP, tmp_path, entrypoint=["sh", "-c"],
                             command=["cat /srv/data.txt; ls /bin/ls; ls /new 2>&1 | wc -l"])
    assert code == 0 and out.splitlines()[:2] == ["from the image", "/bin/ls"]
    # without rm the container's upper dir stays in the store, with exactly the changes
    kept = [d for d in (store.path / "containers").iterdir() if (d / "container.json").exists()]
    uppers = [d / "upper" for d in kept if (d / "upper/new/file").exists()]
    assert len(uppers) == 1
    upper = uppers[0]
    assert (upper / "srv/data.txt").read_text() == "changed\n"
    assert os.lstat(upper / "bin/ls").st_rdev == 0 and not (upper / "bin/ls").is_file()  # a whiteout
    assert sorted(p.name for p in upper.parent.iterdir()) == ["container.json", "upper"]
    assert not any(line.split()[4].startswith(str(store.path)) for line in open("/proc/self/mountinfo"))


def test_rm_leaves_no_container_behind(store, tmp_path):
    existing = set((store.path / "containers").glob("*")) if (store.path / "containers").exists() else set()
    code, out = run_captured(store, BUSYBOX, tmp_path, command=["sh", "-c", "echo x > /x; cat /x"], rm=True)
    assert (code, out) == (0, "x\n")
    assert set((store.path / "containers").glob("*")) == existing


def test_unknown_image_is_a_clear_error(store, tmp_path):
    with pytest.raises(Exception, match="no-such/image"):
        run_captured(store, "no-such/image:1", tmp_path)


# -- Container, as the builder's RUN uses it ----------------------------------------------------


def test_container_changes_become_a_layer(store, tmp_path):
    lowers = store.lowers(store.load(BUSYBOX))

    def body():
        with Container(lowers, tmp_path / "c") as c:
            code = c.run(["sh", "-c", "mkdir -p /app && echo v1 > /app/v && rm /etc/group"])
            with open(tmp_path / "layer.tar.gz", "wb") as f:
                info = c.write_changes(f, "gzip")
            changes = [str(ch) for ch in c.changes()]
        return code, info, changes, (tmp_path / "c").exists()

    code, info, changes, left = in_child(body)
    assert code == 0 and not left
    assert changes == ["A app", "A app/v", "C etc", "D etc/group"]
    with tarfile.open(tmp_path / "layer.tar.gz") as tf:
        names = tf.getnames()
        assert names == ["app", "app/v", "etc", "etc/.wh.group"]
        assert tf.extractfile("app/v").read() == b"v1\n"
    assert info.digest.startswith("sha256:") and info.diff_id != info.digest


def test_a_step_that_writes_nothing_has_no_changes(store, tmp_path):
    """/etc/hosts, /proc, ... come from the init layer, not the upper dir (Docker's -init)."""
    lowers = store.lowers(store.load(BUSYBOX))

    def body():
        with Container(lowers, tmp_path / "c") as c:
            code = c.run(["true"], network="none")
            return code, [str(ch) for ch in c.changes()], sorted(os.listdir(c.upper))

    assert in_child(body) == (0, [], [])


def test_container_from_scratch_runs_a_bind_mounted_binary(tmp_path):
    """No lowers (FROM scratch): the init layer alone is the root; busybox comes in by a mount."""
    from part6_runtime import Mount

    mounts = [Mount("/bin/busybox", source="/usr/bin/busybox", options=("rbind", "ro"))]

    def body():
        with Container([], tmp_path / "c", mounts=mounts) as c:
            code = c.run(["/bin/busybox", "sh", "-c", "/bin/busybox echo made > /made"])
            return code, [str(ch) for ch in c.changes()]

    code, changes = in_child(body)
    assert code == 0
    assert changes == ["A made"]


def test_container_cleans_up_when_the_command_cannot_start(store, tmp_path):
    lowers = store.lowers(store.load(BUSYBOX))

    def body():
        try:
            with Container(lowers, tmp_path / "c") as c:
                c.run(["/no/such/program"])
        except ContainerRunError as e:
            return str(e), (tmp_path / "c").exists(), mounts_under(tmp_path)
        return "no error", None, None

    message, left, mounted = in_child(body)
    assert "exec" in message and "/no/such/program" in message
    assert left is False and mounted == []


def test_the_overlay_is_never_mounted_in_the_callers_namespace(store, tmp_path):
    """The helper mounts it in a namespace of its own: while the command runs, the caller's
    mount table has nothing under the container's directory, yet the command sees its root."""
    lowers = store.lowers(store.load(BUSYBOX))
    ready = tmp_path / "ready"

    def body():
        import threading

        seen = []

        def watch():
            while not ready.exists():
                seen.append(mounts_under(tmp_path))
            seen.append(mounts_under(tmp_path))

        with Container(lowers, tmp_path / "c", mounts=[Mount("/out", "bind", str(tmp_path), ("rbind",))]) as c:
            t = threading.Thread(target=watch)
            t.start()
            code = c.run(["sh", "-c", "awk '$5 == \"/\" {print $(NF-2)}' /proc/self/mountinfo > /out/root; "
                                      "sleep 0.3; touch /out/ready"],
                         network="none")
            t.join()
        return code, seen

    code, seen = in_child(body)
    assert code == 0 and (tmp_path / "root").read_text().split() == ["overlay"]
    assert seen and all(m == [] for m in seen)


# -- the command line ---------------------------------------------------------------------------


def test_cli_run_prints_output_and_returns_the_exit_code(store):
    r = capstone(store.path, "run", "--rm", "--network", "none", "-e", "WHO=cli", BUSYBOX,
                 "sh", "-c", "echo hi $WHO; exit 3")
    assert (r.returncode, r.stdout) == (3, "hi cli\n"), r.stderr


def test_cli_run_without_rm_prints_the_kept_container(store):
    r = capstone(store.path, "run", "--network", "none", "-w", "/tmp", APP)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "entry: default cmd\n"
    cid = r.stderr.split("container ", 1)[1].split()[0]
    assert len(cid) == 12
    assert any(d.name.startswith(cid) for d in (store.path / "containers").iterdir())


def test_cli_run_unknown_image_fails_with_one_line(store):
    r = capstone(store.path, "run", "--rm", "--network", "none", "nothing/here:1")
    assert r.returncode == 125
    assert len(r.stderr.strip().splitlines()) == 1 and "nothing/here" in r.stderr


@pytest.mark.parametrize("args, said", [
    (["--bogus", BUSYBOX, "true"], "unrecognized arguments: --bogus"),
    (["--network", "bogus", BUSYBOX, "true"], "invalid choice: 'bogus'"),
    (["--stop-timeout", "soon", BUSYBOX, "true"], "invalid int value: 'soon'"),
    ([], "the following arguments are required: IMAGE"),
    (["-v", "nocolon", BUSYBOX, "true"], "capstone: invalid volume 'nocolon': expected /host/path:/container/path[:ro]"),
    (["-v", "/no/such/dir/here:/x", BUSYBOX, "true"], "capstone: volume source /no/such/dir/here does not exist"),
    (["-e", "=x", BUSYBOX, "true"], "capstone: invalid environment entry '=x': expected KEY=VALUE"),
    (["-w", "relative", BUSYBOX, "pwd"],
     f"capstone: run {BUSYBOX}: the working directory 'relative' is invalid, it needs to be an absolute path"),
    (["--entrypoint", "", BUSYBOX], "capstone: no command specified: the image has no Entrypoint or Cmd"),
])
def test_cli_run_fails_as_docker_run_with_125_when_run_itself_fails(store, args, said):
    """docker run's own failures (its flags, the image, the user, the mounts) exit 125, so that
    no code of the container's command is mistaken for one of them; nothing is kept."""
    before = sorted((store.path / "containers").iterdir()) if (store.path / "containers").exists() else []
    r = capstone(store.path, "run", "--rm", *args)
    assert r.returncode == 125, r.stderr
    assert said in r.stderr and "Traceback" not in r.stderr
    assert sorted((store.path / "containers").iterdir()) == before


@pytest.mark.parametrize("argv, code, said", [
    (["no-such-program"], 127, "executable file not found in $PATH"),
    (["/etc/passwd"], 126, "Permission denied: '/etc/passwd'"),
    (["/"], 126, "Permission denied: '/'"),
    (["sh", "-c", "exit 3"], 3, None),
    (["sh", "-c", "exit 125"], 125, None),
    # PID 1 is immune to its own signals: the shell under --init is not, and the reaper exits
    # 128+N when its command died of signal N, as docker run --init (tini) does
    (["--init", BUSYBOX, "sh", "-c", "kill -TERM $$"], 143, None),
    (["--init", BUSYBOX, "sh", "-c", "kill -KILL $$"], 137, None),
])
def test_cli_run_exit_codes_are_dockers(store, argv, code, said):
    """126 for a command that cannot be invoked, 127 for one that does not exist, else the
    container's own status (128+N after signal N)."""
    args = argv if argv[0] == "--init" else [BUSYBOX, *argv]
    r = capstone(store.path, "run", "--rm", "--network", "none", *args)
    assert r.returncode == code, r.stderr
    if said is None:
        assert r.stderr == ""
    else:
        assert said in r.stderr and r.stderr.count("\n") == 1


def test_the_readmes_exit_codes_are_what_run_gives(store):
    """The capstone chapter's block of ``run``'s exit codes, run as written (stderr and stdout
    on one stream, as a terminal shows them): the same lines."""
    text = (REPO / "capstone" / "README.md").read_text()
    block = text.split("`run` exits as `docker run` does", 1)[1].split("```console\n", 1)[1].split("```", 1)[0]
    commands = [line[2:] for line in block.splitlines() if line.startswith("$ ")]
    assert len(commands) == 3
    r = subprocess.run(["bash", "-c", "exec 2>&1\n" + "\n".join(commands) + "\n"], cwd=REPO, capture_output=True,
                       text=True, timeout=120, stdin=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONPATH": str(REPO), "CAPSTONE_STORE": str(store.path)})
    assert r.stdout.splitlines() == [line for line in block.splitlines() if not line.startswith("$ ")], r.stdout


@pytest.mark.parametrize("user, missing", [("-1", "user -1"), ("nosuchuser", "user nosuchuser"),
                                           ("app:nosuchgroup", "group nosuchgroup")])
def test_cli_run_unknown_user_names_the_user_and_the_image_not_the_store(store, user, missing):
    """As podman: the user spec and the image, in one line; never the container's directory in
    the store (where its passwd file happens to be on this host). Nothing of it is kept."""
    before = sorted((store.path / "containers").iterdir()) if (store.path / "containers").exists() else []
    r = capstone(store.path, "run", "-u", user, "--network", "none", APP, "true")
    assert r.returncode == 125
    file = "group" if missing.startswith("group") else "passwd"
    assert r.stderr.strip() == f"capstone: run {APP}: unable to find {missing}: no matching entries in {file} file", r.stderr
    assert str(store.path) not in r.stderr
    assert sorted((store.path / "containers").iterdir()) == before


def test_cli_run_with_a_terminal(store):
    """-t: the command's stdio is a pty from the container's own devpts, and TERM is set."""
    inner = (f"{sys.executable} -m capstone --store {store.path} run --rm -t -i --network none {BUSYBOX} "
             "sh -c 'tty; echo $TERM; echo $HOSTNAME'")
    r = subprocess.run(["script", "-qec", inner, "/dev/null"], cwd=REPO, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    lines = r.stdout.replace("\r", "").splitlines()
    assert r.returncode == 0, r.stdout + r.stderr
    assert lines[:2] == ["/dev/pts/0", "xterm"]
    assert len(lines[2]) == 12  # the short container id is the hostname


def test_a_container_that_cannot_start_is_not_kept(store, tmp_path):
    before = set((store.path / "containers").glob("*")) if (store.path / "containers").exists() else set()
    with pytest.raises(Exception, match="no-such-program"):
        run_captured(store, BUSYBOX, tmp_path, command=["no-such-program"], rm=False)
    assert set((store.path / "containers").glob("*")) == before
