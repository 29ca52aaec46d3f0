"""capstone.engine COPY/ADD rules, checked on the built images' files: .dockerignore, --chown
and --chmod, wildcards and destinations, ADD's archive unpacking and URLs, symlinks on the way
to the destination, --exclude."""

from __future__ import annotations

import http.server
import io
import os
import tarfile
import threading

import pytest
from support import built_rootfs, check_copy_snapshots, image_rootfs, make_context, quiet_build, spy_on_snapshot_children

from capstone.errors import DockerfileError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds need root (namespaces, overlay mounts)")


def test_dockerignore_is_respected_with_exceptions(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY . /app/\n", {
        ".dockerignore": "*.log\nsecret/\nnode_modules\n!node_modules/keep.js\n",
        "a.txt": "a", "debug.log": "x", "secret/key": "k", "sub/inner.log": "kept: only top-level *.log",
        "node_modules/drop.js": "d", "node_modules/keep.js": "k",
    })
    root = built_rootfs(store, ctx, tmp_path / "rootfs", tag="copytest")
    got = sorted(str(p.relative_to(root / "app")) for p in (root / "app").rglob("*"))
    assert got == [".dockerignore", "Dockerfile", "a.txt", "node_modules", "node_modules/keep.js", "sub",
                   "sub/inner.log"]


def test_a_copied_fifo_gets_the_owner_and_mode_asked(store, tmp_path):
    """A fifo (or device) is the one source the layer writer cannot take with other metadata:
    it is made again in staging with --chown's owner and --chmod's mode, or kept as it is."""
    import stat

    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY --chown=5:6 --chmod=0640 pipe /p\nCOPY pipe /q\n")
    os.mkfifo(ctx / "pipe", 0o600)
    root = built_rootfs(store, ctx, tmp_path / "rootfs", tag="copytest")
    p, q = os.lstat(root / "p"), os.lstat(root / "q")
    assert stat.S_ISFIFO(p.st_mode) and (p.st_uid, p.st_gid, stat.S_IMODE(p.st_mode)) == (5, 6, 0o640)
    assert stat.S_ISFIFO(q.st_mode) and (q.st_uid, q.st_gid, stat.S_IMODE(q.st_mode)) == (0, 0, 0o600)


def test_chown_names_from_the_image_and_chmod(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox
RUN echo 'app:x:1234:2345::/home/app:/bin/sh' >> /etc/passwd && echo 'grp:x:3456:' >> /etc/group
COPY --chown=app:grp --chmod=640 f.txt /data/f.txt
COPY --chown=1000 d /numeric/
COPY --chmod=u=rwx,go=rX d /sym/
""", {"f.txt": "f", "d/x.sh": "#!/bin/sh\n", "d/sub/y": "y"})
    os.chmod(ctx / "d/x.sh", 0o600)
    root = built_rootfs(store, ctx, tmp_path / "rootfs", tag="copytest")
    st = (root / "data/f.txt").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1234, 3456, 0o640)
    st = (root / "data").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1234, 3456, 0o755)  # a made parent
    st = (root / "numeric/sub/y").stat()
    assert (st.st_uid, st.st_gid) == (1000, 1000)
    assert (root / "sym/x.sh").stat().st_mode & 0o777 == 0o755
    assert (root / "sym/sub").stat().st_mode & 0o777 == 0o755
    assert (root / "sym/sub/y").stat().st_mode & 0o777 == 0o755  # X sees the u+x just given, as chmod(1)


def test_chown_of_an_unknown_user_fails_at_its_line(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM capstone/busybox\nCOPY --chown=nobody-here f /f\n", {"f": "f"})
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: .*nobody-here"):
        built_rootfs(store, ctx, tmp_path / "rootfs", tag="copytest")


def test_wildcards_destinations_and_workdir(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox
WORKDIR /w
COPY *.js lib/ ./
COPY one.txt renamed.txt
COPY one.txt /etc
COPY sub/ /bin/copied/
""", {"a.js": "a", "b.js": "b", "c.txt": "c", "lib/l.js": "l", "one.txt": "1", "sub/s": "s"})
    root = built_rootfs(store, ctx, tmp_path / "rootfs", tag="copytest")
    assert sorted(os.listdir(root / "w")) == ["a.js", "b.js", "l.js", "renamed.txt"]
    assert (root / "etc/one.txt").read_text() == "1"  # an existing directory takes the file
    assert (root / "bin/copied/s").read_text() == "s"


def test_symlink_on_the_way_to_the_destination_is_followed_inside_the_image(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox
RUN mkdir -p /real && ln -s /real /link && ln -s ../../.. /real/escape
COPY f /link/
COPY g /link/escape/tmp/
""", {"f": "f", "g": "g"})
    root = built_rootfs(store, ctx, tmp_path / "rootfs", tag="copytest")
    assert (root / "real/f").read_text() == "f"
    assert os.path.islink(root / "link")
    assert (root / "tmp/g").read_text() == "g"  # ../../.. stays inside the root


def test_several_sources_need_a_directory_destination(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY a b /file\n", {"a": "a", "b": "b"})
    with pytest.raises(DockerfileError, match="^Dockerfile:2: When using COPY with more than one source"):
        built_rootfs(store, ctx, tmp_path / "rootfs", tag="copytest")


def test_missing_source_is_an_error_naming_it(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY nothere /x\n", {".dockerignore": "ignored\n", "ignored": "i"})
    with pytest.raises(DockerfileError, match="^Dockerfile:2: COPY failed: .*nothere"):
        built_rootfs(store, ctx, tmp_path / "rootfs", tag="copytest")
    make_context(ctx, "FROM scratch\nCOPY ignored /x\n")
    with pytest.raises(DockerfileError, match="excluded by .dockerignore"):
        built_rootfs(store, ctx, tmp_path / "rootfs", tag="copytest")


def _tar_bytes(files: dict[str, str], compression: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}") as tf:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            info.mode = 0o640
            info.uid = 42
            tf.addfile(info, io.BytesIO(text.encode()))
    return buf.getvalue()


def test_add_unpacks_local_archives_by_content_and_copy_does_not(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox
ADD plain.tar /x/
ADD packed.bin /y
COPY plain.tar /z/
ADD --exclude=*.md docs /docs/
""", {"plain.tar": _tar_bytes({"p/one.txt": "one"}), "packed.bin": _tar_bytes({"two.txt": "two"}, "gz"),
      "docs/a.md": "a", "docs/b.txt": "b"})
    root = built_rootfs(store, ctx, tmp_path / "rootfs", tag="copytest")
    assert (root / "x/p/one.txt").read_text() == "one"
    st = (root / "x/p/one.txt").stat()
    assert (st.st_uid, st.st_mode & 0o777) == (42, 0o640)  # like tar -x as root
    assert (root / "y/two.txt").read_text() == "two"
    assert (root / "z/plain.tar").is_file()
    assert sorted(os.listdir(root / "docs")) == ["b.txt"]


def test_add_url_downloads_with_mode_0600(store, tmp_path):
    served = tmp_path / "www"
    served.mkdir()
    (served / "file.txt").write_text("downloaded\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(served), **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/file.txt"
        ctx = make_context(tmp_path / "ctx", f"FROM scratch\nADD {url} /dl/\n")
        root = built_rootfs(store, ctx, tmp_path / "rootfs", tag="copytest")
    finally:
        server.shutdown()
        server.server_close()
    assert (root / "dl/file.txt").read_text() == "downloaded\n"
    assert (root / "dl/file.txt").stat().st_mode & 0o777 == 0o600


def test_copy_parents_keeps_source_paths_and_heredoc_to_workdir(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM scratch
WORKDIR /w
COPY --parents src/*/main.c docs /out/
COPY <<EOF notes.txt
note
EOF
""", {"src/a/main.c": "a", "src/b/main.c": "b", "src/b/other.c": "o", "docs/d.md": "d"})
    root = built_rootfs(store, ctx, tmp_path / "rootfs", tag="copytest")
    got = sorted(str(p.relative_to(root / "out")) for p in (root / "out").rglob("*") if p.is_file())
    assert got == ["docs/d.md", "src/a/main.c", "src/b/main.c"]
    assert (root / "w/notes.txt").read_text() == "note\n"


def test_large_copy_snapshot_made_beside_the_layer_matches_it(store, tmp_path, monkeypatch):
    # 1,200 entries: over the threshold at which the snapshot of a COPY is made by a child
    # process while the layer is written; the RUN after it mounts that snapshot as a lower.
    files = {f"tree/d{i // 100:02d}/f{i:04d}.txt": f"file {i}\n" for i in range(1200)}
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox
COPY tree/ /data/
RUN find /data -type f | wc -l > /count && cat /data/d11/f1199.txt >> /count
COPY tree/ /again/
RUN test -f /again/d11/f1199.txt
""", files)
    children = spy_on_snapshot_children(monkeypatch)
    result = quiet_build(store, ctx, tags=["bigcopy"])
    monkeypatch.undo()
    assert len(children) == 2 and all(job is not None for job in children), \
        "each large COPY's snapshot is made by a child process"
    dest = image_rootfs(store, "bigcopy", tmp_path / "rootfs")
    assert (dest / "count").read_text().split() == ["1200", "file", "1199"]
    assert len(list((dest / "again").rglob("*.txt"))) == 1200
    # each COPY layer's snapshot (the last one adopted when the build ended) equals the layer
    assert check_copy_snapshots(store, result.steps, tmp_path) == 2
    # no snapshot helper left behind: no temporary dirs, no unreaped children
    assert not [p for p in store.snapshots_dir.iterdir() if p.name.startswith(".")]
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_a_large_copy_that_nothing_reads_afterwards_gets_no_snapshot(store, tmp_path, monkeypatch):
    """A big COPY followed only by config changes (bigfile's shape): no step of the build reads
    its files, so no child copies them a second time; a later build that runs on the image
    extracts the layer when it needs it."""
    files = {f"tree/f{i:04d}.txt": f"file {i}\n" for i in range(1200)}
    ctx = make_context(tmp_path / "ctx", "FROM capstone/busybox\nCOPY tree/ /data/\nENV X=1\nCMD [\"ls\"]\n", files)
    children = spy_on_snapshot_children(monkeypatch)
    result = quiet_build(store, ctx, tags=["lastcopy"], no_cache=True)
    monkeypatch.undo()
    assert children == []
    copied = next(s for s in result.steps if s.kind == "COPY")
    assert not store.has_snapshot(copied.diff_id)
    # a stage that another stage copies from is read later: its big COPY is snapshotted as before
    ctx2 = make_context(tmp_path / "ctx2", ("FROM capstone/busybox AS a\nCOPY tree/ /data/\n"
                                            "FROM capstone/busybox\nCOPY --from=a /data/f0001.txt /one\n"), files)
    children = spy_on_snapshot_children(monkeypatch)
    quiet_build(store, ctx2, no_cache=True)
    monkeypatch.undo()
    assert len(children) == 1 and children[0] is not None
    # and the image without a snapshot runs: the layer is extracted for the RUN on top of it
    ctx3 = make_context(tmp_path / "ctx3", "FROM lastcopy\nRUN test -f /data/f1199.txt\n")
    quiet_build(store, ctx3, no_cache=True)
    assert store.has_snapshot(copied.diff_id)
