"""``capstone build`` and ``capstone run`` as an ordinary user (the CI's, tests/ci_user.py).

The builds run for real as root of a user namespace of the user's own (the subordinate range
mapped by newuidmap), extract their bases with every owner, use overlays with userxattr, run
RUN steps in containers, and keep the store in the user's XDG data directory. Under
SOURCE_DATE_EPOCH each image is identical, digest for digest, to the same build made by root;
each image then runs as the user.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
from ci_user import REPO, subid_start
from support import Terminal, in_child, make_context

from part2_manual_oci import digest_hex
from part5_namespaces import MountFlags, mount

EPOCH = "1700000000"

CONTEXTS = {
    "multistage": ("""\
FROM capstone/busybox AS build
WORKDIR /src
# the files' times go into the tar: fixed, so that the build is reproducible
RUN for i in 1 2 3; do echo "artifact $i" > a$i.txt; done && touch -d '2020-01-01 00:00:00' a*.txt && \\
    tar -cf /src/bundle.tar a1.txt a2.txt a3.txt

FROM capstone/busybox
COPY --from=build /src/bundle.tar /opt/
RUN tar -tf /opt/bundle.tar > /opt/listing
CMD ["cat", "/opt/listing"]
""", {}, "a1.txt\na2.txt\na3.txt\n"),
    "run-chown": ("""\
FROM capstone/busybox
RUN mkdir -p /data/sub && echo x > /data/sub/f && chown -R 1000:1000 /data && chown 33:44 /data/sub/f
CMD ["sh", "-c", "stat -c '%u:%g %n' /data /data/sub /data/sub/f"]
""", {}, "1000:1000 /data\n1000:1000 /data/sub\n33:44 /data/sub/f\n"),
    "run-delete": ("""\
FROM capstone/busybox
RUN rm /etc/group /bin/vi && rm -r /home
CMD ["sh", "-c", "ls /etc/group /bin/vi /home 2>&1 | sed 's/.*: //'; test -f /etc/passwd && echo passwd kept"]
""", {}, "No such file or directory\nNo such file or directory\nNo such file or directory\npasswd kept\n"),
    "copy-chown": ("""\
FROM capstone/busybox
COPY --chown=1000:1000 app.txt /srv/app.txt
COPY --chown=33:33 --chmod=640 app.txt /srv/www/app.txt
USER 1000
RUN cat /srv/app.txt > /tmp/seen-by-1000 && id -u >> /tmp/seen-by-1000
CMD ["sh", "-c", "stat -c '%u:%g %a %n' /srv/app.txt /srv/www/app.txt /tmp/seen-by-1000; cat /tmp/seen-by-1000"]
""", {"app.txt": "from the context\n"},
        "1000:1000 644 /srv/app.txt\n33:33 640 /srv/www/app.txt\n1000:0 644 /tmp/seen-by-1000\nfrom the context\n1000\n"),
}


@pytest.fixture(scope="module", autouse=True)
def reproducible_bases(user):
    """Every build of this module (and the embedded base it makes on first use, which takes
    its dates from the environment) under the same SOURCE_DATE_EPOCH, whatever runs first."""
    user.extra_env["SOURCE_DATE_EPOCH"] = EPOCH


@pytest.fixture(scope="module")
def root_store(tmp_path_factory):
    return tmp_path_factory.mktemp("root-store")


def ok(proc) -> str:
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def context(user, name: str) -> Path:
    if name == "hello":
        return REPO / "examples" / "hello"
    dockerfile, files, _ = CONTEXTS[name]
    return user.give(make_context(user.base / "contexts" / name, dockerfile, files))


def manifest_digest(store: Path, tag: str) -> str:
    index = json.loads((store / "oci" / "index.json").read_text())
    ref = f"docker.io/library/{tag}:latest"
    found = [m["digest"] for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref]
    assert len(found) == 1, index
    return found[0]


def build_as_root(store: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "capstone", "--store", str(store), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH})


def base_archive(user, root_store: Path, source: Path, name: str) -> Path:
    """A base image root makes (``capstone import`` of a tar or a directory), as an oci-archive
    the user may read: what a build of a registry image would start from."""
    ok(build_as_root(root_store, "import", str(source), name))
    archive = user.base / f"{name}.oci.tar"
    ok(build_as_root(root_store, "save", name, f"oci-archive:{archive}"))
    return user.give(archive)


def reproducible(user, name: str, *extra: str) -> tuple[str, ...]:
    return ("build", "--no-cache", "--network", "none", "--build-arg", f"SOURCE_DATE_EPOCH={EPOCH}", *extra,
            "-t", f"rl-{name}", str(context(user, name)))


@pytest.mark.parametrize("name", ["hello", *CONTEXTS])
def test_rootless_build_equals_roots_digest_for_digest_and_runs(user, root_store, name):
    ok(user.capstone(*reproducible(user, name), env={"SOURCE_DATE_EPOCH": EPOCH}))
    ok(build_as_root(root_store, *reproducible(user, name)))
    assert manifest_digest(user.store, f"rl-{name}") == manifest_digest(root_store, f"rl-{name}")
    expected = "hello from the capstone\nbuilt on x86_64\n" if name == "hello" else CONTEXTS[name][2]
    assert ok(user.capstone("run", "--rm", "--network", "none", f"rl-{name}")) == expected
    assert user.leftovers() == [] and os.listdir(user.store / "tmp") == []


def test_the_store_is_the_users_and_owners_are_exact_through_the_mapping(user):
    """The default store is in the user's XDG data directory and belongs to the user; a file
    the build gave uid 1000 is uid 1000 in the layer, and its subordinate uid on the host."""
    ok(user.capstone(*reproducible(user, "run-chown")))
    assert user.store == user.home / ".local/share/capstone"
    assert {p.stat().st_uid for p in (user.store, user.store / "oci", user.store / "snapshots")} == {user.uid}
    manifest = json.loads((user.store / "oci/blobs/sha256" / digest_hex(manifest_digest(user.store, "rl-run-chown"))).read_text())
    layer = manifest["layers"][-1]["digest"]
    with tarfile.open(user.store / "oci/blobs/sha256" / digest_hex(layer)) as tar:
        owners = {m.name: (m.uid, m.gid) for m in tar.getmembers()}
    assert owners == {"data": (1000, 1000), "data/sub": (1000, 1000), "data/sub/f": (33, 44)}
    config = json.loads((user.store / "oci/blobs/sha256" / digest_hex(manifest["config"]["digest"])).read_text())
    snapshot = user.store / "snapshots" / digest_hex(config["rootfs"]["diff_ids"][-1])
    start = subid_start(user.entry)
    assert (snapshot / "data/sub").stat().st_uid == start + 999
    assert (os.stat(snapshot / "data/sub/f").st_uid, os.stat(snapshot / "data/sub/f").st_gid) == (start + 32, start + 43)


def test_xdg_data_home_places_the_store(user):
    xdg = user.home / "xdg-data"
    ok(user.capstone("build", "-q", "--network", "none", str(context(user, "run-delete")), env={"XDG_DATA_HOME": str(xdg)}))
    assert (xdg / "capstone/oci/index.json").is_file() and (xdg / "capstone").stat().st_uid == user.uid



def test_prune_frees_snapshots_of_other_owners(user):
    """A RUN step's snapshot holds files of subordinate ids (uid 1000 inside), which the user
    may not remove from outside its user namespace: prune runs inside it and frees them all."""
    ctx = user.give(make_context(user.base / "contexts" / "prune", """\
FROM capstone/busybox
RUN mkdir -p /d/sub && echo x > /d/sub/f && chown -R 1000:1000 /d && chmod 700 /d/sub
"""))
    ok(user.capstone("build", "-q", "--network", "none", "-t", "rl-prune", str(ctx)))
    snapshots = set(os.listdir(user.store / "snapshots"))
    assert ok(user.capstone("rmi", "rl-prune")).splitlines()[0] == "Untagged: rl-prune:latest"
    assert ok(user.capstone("prune", "-a")).startswith("Deleted blobs: ")
    left = set(os.listdir(user.store / "snapshots"))
    assert left < snapshots and not any((user.store / "snapshots" / name / "d").exists() for name in left)
    assert user.leftovers() == [] and os.listdir(user.store / "tmp") == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_rootless_build_leaves_the_store_as_it_was(user, sig):
    """^C (or a kill) reaches the capstone outside the user namespace; the build inside it
    stops its RUN (its process is gone), removes its scratch directories and tags nothing;
    nothing is left in the user's TMPDIR."""
    seconds = 600_000 + int.from_bytes(os.urandom(3), "big")  # this test's sleep, told from any other
    ctx = user.give(make_context(user.base / "contexts" / f"interrupted-{sig.name}",
                                 f"FROM capstone/busybox\nRUN touch /started && sleep {seconds}\n"))
    ok(user.capstone("build", "-q", "--network", "none", str(context(user, "run-delete"))))  # the store exists
    images = (user.store / "oci/index.json").read_text()
    argv = user.argv([sys.executable, "-m", "capstone", "build", "--no-cache", "--network", "none", "-t", "rl-interrupted", str(ctx)])
    proc = subprocess.Popen(argv, env=user.env(), cwd=REPO, text=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not list((user.store / "tmp").glob("build-*/*-run/container/upper/started")):  # the RUN's container is up
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() is not None else "no RUN"
            time.sleep(0.05)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    assert err.splitlines()[-1].startswith(f"Dockerfile:2: RUN touch /started && sleep {seconds}") and f"killed by signal {int(sig)}" in err
    assert "Traceback" not in err
    assert (user.store / "oci/index.json").read_text() == images
    assert os.listdir(user.store / "tmp") == [] and user.leftovers() == []
    assert not [p for p in Path("/proc").glob("[0-9]*/cmdline") if str(seconds) in _read(p)]  # the RUN's processes are gone


def test_a_rootless_run_stops_at_the_first_ctrl_c_and_is_killed_at_the_second(user):
    """On a terminal, as the user: ^C reaches the capstone outside the user namespace, the one
    inside it and its helper, all of the terminal's foreground group, but no process of the
    container; it is one stop request (PID 1 ignores TERM, and has 120 s; its ``sleep`` would
    die of a SIGINT), and the second ^C kills the container at once."""
    seconds = 600_000 + int.from_bytes(os.urandom(3), "big")
    ok(user.capstone("run", "--rm", "--network", "none", "capstone/busybox", "true"))  # the store and its base
    term = Terminal(user.argv([sys.executable, "-m", "capstone", "run", "--rm", "--network", "none", "--stop-timeout",
                               "120", "capstone/busybox", "sh", "-c", f"trap : INT; trap '' TERM; sleep {seconds}"]),
                    env=user.env())

    def running() -> bool:  # the container's command itself, not a command line that names it
        return any(_read(p) == f"sleep\0{seconds}\0" for p in Path("/proc").glob("[0-9]*/cmdline"))

    deadline = time.monotonic() + 60
    while not running() and time.monotonic() < deadline:
        term.read_until(b"\0", 0.05)
    assert running(), term.seen.decode(errors="replace")
    term.type(b"\x03")
    term.read_until(b"\0", 1.5)
    assert running(), "one ^C killed the container: it has 120 s to stop"
    t0 = time.monotonic()
    term.type(b"\x03")
    assert term.wait(60) == 137, term.seen.decode(errors="replace")
    assert time.monotonic() - t0 < 30
    assert not running()
    assert os.listdir(user.store / "tmp") == [] and user.leftovers() == []
    assert not (user.store / "containers").exists() or os.listdir(user.store / "containers") == []


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:  # a process that ended meanwhile
        return ""


def test_a_local_output_belongs_to_the_user(user):
    """``-o type=local`` as an ordinary user: every file is the user's (as BuildKit's client
    writes them), so the user may change and remove them; ``type=tar`` keeps the owners."""
    out = user.home / "rootfs-out"
    ctx = context(user, "run-chown")
    ok(user.capstone("build", "-q", "--network", "none", "-o", f"type=local,dest={out}", str(ctx)))
    assert (out / "data/sub/f").read_text() == "x\n" and (out / "bin/busybox").is_file()
    assert {(p.lstat().st_uid, p.lstat().st_gid) for p in [out, *out.rglob("*")]} == {(user.uid, user.entry.pw_gid)}
    ok(user.capstone("build", "-q", "--network", "none", "-o", f"type=tar,dest={user.home / 'rootfs.tar'}", str(ctx)))
    with tarfile.open(user.home / "rootfs.tar") as t:
        assert (t.getmember("data/sub/f").uid, t.getmember("data/sub/f").gid) == (33, 44)
    ok(user.run(["rm", "-r", str(out), str(user.home / "rootfs.tar")]))
    assert not out.exists()
    assert user.leftovers() == []

# -- the network -----------------------------------------------------------------------------------


def test_private_network_without_dev_net_tun_is_one_line_with_the_way_out(user):
    if os.access("/dev/net/tun", os.R_OK | os.W_OK) and stat.S_IMODE(os.stat("/dev/net/tun").st_mode) & 0o006:
        pytest.fail("/dev/net/tun is open to every user on this host: this test expects the machine kind's 0600")
    proc = user.capstone("build", "-q", str(context(user, "run-chown")))  # the default network: private
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == (
        "Dockerfile:2: RUN: setup step 'network' failed: network 'private' needs /dev/net/tun for slirp4netns, "
        f"which uid {user.uid} may not open (crw------- here): use --network none or --network host")
    assert "Traceback" not in proc.stderr
    assert user.leftovers() == [] and os.listdir(user.store / "tmp") == []
    # --debug shows where it came from: the runtime's setup step, and its cause
    debug = user.capstone("--debug", "build", "-q", str(context(user, "run-chown")))
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "NetworkError: network 'private' needs /dev/net/tun" in debug.stderr
    assert "RuntimeSetupError" in debug.stderr


def test_host_network_works_rootless(user):
    """A RUN with the host's network reaches a service on the host's 127.0.0.1."""
    token = os.urandom(8).hex()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(120)

    def answer_once():
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.sendall(token.encode())

    thread = threading.Thread(target=answer_once, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        ctx = user.give(make_context(user.base / "contexts" / "host-net", f"""\
FROM capstone/busybox
RUN nc 127.0.0.1 {port} > /token
CMD ["cat", "/token"]
"""))
        ok(user.capstone("build", "-q", "--network", "host", "-t", "rl-host-net", str(ctx)))
    finally:
        listener.close()
        thread.join(timeout=5)
    assert ok(user.capstone("run", "--rm", "--network", "none", "rl-host-net")) == token


# -- what the kernel refuses -----------------------------------------------------------------------


def test_device_nodes_of_a_base_become_one_note(user, root_store, tmp_path):
    """A base layer with device nodes (as debootstrap's /dev has): root of a user namespace may
    not mknod them, so they are left out with one note; the build goes on, equal to root's."""
    tar = tmp_path / "devbase.tar"
    with tarfile.open(tar, "w") as t:
        for name in ("dev", "bin"):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            t.addfile(ti)
        for name, minor in (("dev/null", 3), ("dev/zero", 5)):
            ti = tarfile.TarInfo(name)
            ti.type, ti.devmajor, ti.devminor, ti.mode = tarfile.CHRTYPE, 1, minor, 0o666
            t.addfile(ti)
        ti = tarfile.TarInfo("bin/busybox")
        ti.size, ti.mode = os.path.getsize("/bin/busybox"), 0o755
        with open("/bin/busybox", "rb") as f:
            t.addfile(ti, f)
        ti = tarfile.TarInfo("bin/sh")
        ti.type, ti.linkname = tarfile.SYMTYPE, "busybox"
        t.addfile(ti)
    archive = base_archive(user, root_store, tar, "devbase")
    dockerfile = f"FROM oci-archive:{archive}\nRUN [\"/bin/busybox\", \"mkdir\", \"/made\"]\n"
    ctx = user.give(make_context(user.base / "contexts" / "devbase", dockerfile))
    proc = user.capstone("build", "--network", "none", "--build-arg", f"SOURCE_DATE_EPOCH={EPOCH}", "-t", "rl-devbase", str(ctx),
                         env={"SOURCE_DATE_EPOCH": EPOCH})
    ok(proc)
    notes = [line for line in proc.stderr.splitlines() if line.startswith("capstone: note:")]
    assert len(notes) == 1, proc.stderr
    assert "2 device node(s) not created (dev/null, dev/zero): mknod(2) of a device is refused" in notes[0]
    ok(build_as_root(root_store, "build", "--network", "none", "--build-arg", f"SOURCE_DATE_EPOCH={EPOCH}", "-t", "rl-devbase", str(ctx)))
    assert manifest_digest(user.store, "rl-devbase") == manifest_digest(root_store, "rl-devbase")


def test_xattrs_of_a_base_survive_a_rootless_build(user, root_store, tmp_path):
    """user.* and security.capability xattrs are extracted, and a RUN that changes such a file
    packs them as root's build does."""
    rootfs = tmp_path / "xattr-rootfs"
    (rootfs / "bin").mkdir(parents=True)
    for name in ("busybox", "tool"):
        with open("/bin/busybox", "rb") as src, open(rootfs / "bin" / name, "wb") as dst:
            dst.write(src.read())
        os.chmod(rootfs / "bin" / name, 0o755)
    os.symlink("busybox", rootfs / "bin/sh")
    os.setxattr(rootfs / "bin/tool", "user.origin", b"course")
    # cap_net_bind_service=ep, as setcap writes it (VFS_CAP_REVISION_2)
    os.setxattr(rootfs / "bin/tool", "security.capability", bytes.fromhex("0100000200040000000000000000000000000000"))
    archive = base_archive(user, root_store, rootfs, "xattrbase")
    dockerfile = f"FROM oci-archive:{archive}\nRUN [\"/bin/busybox\", \"chmod\", \"750\", \"/bin/tool\"]\n"
    ctx = user.give(make_context(user.base / "contexts" / "xattrbase", dockerfile))
    args = ("build", "--network", "none", "--build-arg", f"SOURCE_DATE_EPOCH={EPOCH}", "-t", "rl-xattr", str(ctx))
    ok(user.capstone(*args, env={"SOURCE_DATE_EPOCH": EPOCH}))
    ok(build_as_root(root_store, *args))
    assert manifest_digest(user.store, "rl-xattr") == manifest_digest(root_store, "rl-xattr")
    manifest = json.loads((user.store / "oci/blobs/sha256" / digest_hex(manifest_digest(user.store, "rl-xattr"))).read_text())
    with tarfile.open(user.store / "oci/blobs/sha256" / digest_hex(manifest["layers"][-1]["digest"])) as t:
        tool = t.getmember("bin/tool")
    assert tool.mode == 0o750
    assert tool.pax_headers["SCHILY.xattr.user.origin"] == "course"
    assert tool.pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") == \
        bytes.fromhex("0100000200040000000000000000000000000000")


def test_copy_snapshotter_where_the_kernel_refuses_an_overlay(user, tmp_path):
    """A store on an overlay mount: overlayfs refuses another overlay's directory as its upper,
    so RUN steps fall back to part 7's copy snapshotter; the image is the same."""
    ok(user.capstone(*reproducible(user, "run-chown"), env={"SOURCE_DATE_EPOCH": EPOCH}))
    expected = manifest_digest(user.store, "rl-run-chown")
    stack = user.base / "stack"
    for d in ("lower", "upper", "work", "merged"):
        (stack / d).mkdir(parents=True)
    user.give(stack)

    def build_on_an_overlay(snapshotter: str):
        mount("overlay", str(stack / "merged"), "overlay", MountFlags.NONE,
              f"lowerdir={stack}/lower,upperdir={stack}/upper,workdir={stack}/work")
        argv = user.argv([sys.executable, "-m", "capstone", "--store", str(stack / "merged/store"),
                          "--snapshotter", snapshotter, *reproducible(user, "run-chown")])
        return subprocess.run(argv, env=user.env({"SOURCE_DATE_EPOCH": EPOCH}), cwd=REPO, capture_output=True,
                              text=True, timeout=300, stdin=subprocess.DEVNULL)

    # in a mount namespace of its own, so the overlay goes away with the child
    refused = in_child(lambda: build_on_an_overlay("overlay"))
    assert refused.returncode == 1 and "Invalid argument" in refused.stderr.splitlines()[-1], refused.stderr
    ok(in_child(lambda: build_on_an_overlay("auto")))
    assert manifest_digest(stack / "upper/store", "rl-run-chown") == expected
    # asked for explicitly, the copy snapshotter gives the same image too
    copy_store = user.home / "copy-store"
    ok(user.capstone("--store", str(copy_store), "--snapshotter", "copy", *reproducible(user, "run-chown"),
                     env={"SOURCE_DATE_EPOCH": EPOCH}))
    assert manifest_digest(copy_store, "rl-run-chown") == expected
    assert user.leftovers() == []


# -- errors ------------------------------------------------------------------------------------------


def test_without_a_range_the_error_names_the_usermod_fix(nobody):
    ctx = nobody.give(make_context(nobody.base / "ctx", CONTEXTS["run-chown"][0]))
    proc = nobody.capstone("build", "--network", "none", str(ctx))
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("capstone: warning: no subordinate ids for nobody in /etc/subuid and /etc/subgid: "
                               f"only uid {nobody.uid} is mapped (as root)")
    assert lines[-1].startswith("Dockerfile:2: RUN mkdir -p /data/sub")
    assert " returned 1; only uid 65534 is mapped, as root (no subordinate ids for nobody in /etc/subuid and /etc/subgid): " \
           "add a range with `sudo usermod --add-subuids " in lines[-1]
    assert "Traceback" not in proc.stderr
    assert nobody.leftovers() == [] and os.listdir(nobody.store / "tmp") == []
    # what needs no other owner works with the single mapping
    ok(nobody.capstone("build", "-q", "--network", "none", str(nobody.give(make_context(nobody.base / "ctx2", CONTEXTS["run-delete"][0])))))
