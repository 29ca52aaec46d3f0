"""A Dockerfile and a build context are hostile: the build's writes stay in its store.

Each test points symlinks (from the context, from another stage, from an ADDed archive, from
the image) at canary files outside the context and the store, or names a heredoc with ``..``,
then builds. Afterwards the canaries must be exactly as they were, and an inotify watch on them
must have seen nothing at all (no open, no read, no write): ``support.Canaries``. Where the
build succeeds, the snapshot made from a COPY's files (in the build's own process, or in the
child process a large COPY forks) must equal what extracting its layer gives.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from support import Canaries, check_copy_snapshots, image_rootfs, make_context, quiet_build, spy_on_snapshot_children, tar_of

from capstone.engine import BuildError
from capstone.errors import DockerfileError, IgnoreFileError
from capstone.store import Store

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds need root (namespaces, overlay mounts)")

#: over the size at which a COPY's snapshot is made by a forked child (executor.py)
LARGE = 1100


@pytest.fixture
def canaries(tmp_path) -> Canaries:
    c = Canaries(tmp_path / "outside")
    yield c
    c.check()


def no_temporary_snapshots(store: Store) -> None:
    assert not [p for p in store.snapshots_dir.iterdir() if p.name.startswith(".")]


def source_dir(ctx: Path, size: str) -> Path:
    """``ctx/dir``: empty, or ``LARGE`` files (its COPY's snapshot is then made by a child)."""
    d = ctx / "dir"
    d.mkdir(parents=True)
    for i in range(LARGE if size == "large" else 0):
        (d / f"f{i:04d}").write_text(f"{i}\n")
    return d


# -- COPY: a heredoc written through a symlink the same COPY brings ---------------------------------
@pytest.mark.parametrize("size", ["small", "large"])
def test_heredoc_through_a_context_symlink_to_the_host_stays_in_the_image(store, tmp_path, canaries, size,
                                                                         monkeypatch):
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox
COPY dir <<l/victim /dest/
pwned
l/victim
RUN cat /dest/l/victim > /seen
""")
    source_dir(ctx, size)
    os.symlink(str(canaries.dir), ctx / "dir/l")
    forked = spy_on_snapshot_children(monkeypatch)
    result = quiet_build(store, ctx, no_cache=True, tags=[f"hostile-heredoc-{size}"])
    assert [job is not None for job in forked] == [size == "large"], "a large COPY's snapshot is made by a child"
    assert check_copy_snapshots(store, result.steps, tmp_path)
    # inside the image, the absolute link means the image's own path
    image = image_rootfs(store, f"hostile-heredoc-{size}", tmp_path / "image")
    assert (image / "seen").read_text() == "pwned\n"
    assert (image / str(canaries.dir).lstrip("/") / "victim").read_text() == "pwned\n"
    no_temporary_snapshots(store)


@pytest.mark.parametrize("size", ["small", "large"])
def test_a_heredoc_named_with_dotdot_is_refused_before_anything_is_written(store, tmp_path, canaries, size):
    # aimed from the snapshot's destination directory at the canary itself
    target = os.path.relpath(canaries.dir / "victim", store.snapshots_dir / ".tmp-copy-x" / "dest")
    ctx = make_context(tmp_path / "ctx", f"""\
FROM capstone/busybox
COPY dir <<{target} /dest/
pwned
{target}
RUN true
""")
    source_dir(ctx, size)
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: COPY failed: .*'\.\.' would escape the root"):
        quiet_build(store, ctx, no_cache=True)
    no_temporary_snapshots(store)


def test_an_absolute_heredoc_name_is_refused(store, tmp_path, canaries):
    ctx = make_context(tmp_path / "ctx", f"""\
FROM capstone/busybox
COPY <<{canaries.dir}/victim /dest/
pwned
{canaries.dir}/victim
""")
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: COPY failed: .*absolute"):
        quiet_build(store, ctx, no_cache=True)


def test_heredoc_through_a_symlink_from_another_stage(store, tmp_path, canaries):
    ctx = make_context(tmp_path / "ctx", f"""\
FROM capstone/busybox AS a
RUN mkdir /d && ln -s {canaries.dir} /d/l && ln -s ../../../../../../../../../.. /d/up
FROM capstone/busybox
COPY --from=a /d/ <<l/victim <<up/escaped /dest/
pwned
l/victim
out
up/escaped
RUN cat /dest/l/victim > /seen
""")
    result = quiet_build(store, ctx, no_cache=True, tags=["hostile-from"])
    assert check_copy_snapshots(store, result.steps, tmp_path)


def test_heredoc_through_a_symlink_from_an_added_archive(store, tmp_path, canaries):
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox
ADD t.tar <<l/victim <<r/sub/secret /dest/
pwned
l/victim
pwned too
r/sub/secret
RUN cat /dest/l/victim /dest/r/sub/secret > /seen
""")
    with tarfile.open(ctx / "t.tar", "w") as t:
        for name, target in (("l", str(canaries.dir)), ("r", os.path.relpath(canaries.dir, "/" + "x/" * 12))):
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname = tarfile.SYMTYPE, target
            t.addfile(ti)
        data = b"through the archive\n"
        ti = tarfile.TarInfo("l/link")
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    result = quiet_build(store, ctx, no_cache=True, tags=["hostile-add"])
    assert check_copy_snapshots(store, result.steps, tmp_path)


# -- WORKDIR and mount points through the image's symlinks -------------------------------------
def test_workdir_through_an_image_symlink_to_the_host(store, tmp_path, canaries):
    ctx = make_context(tmp_path / "ctx", f"""\
FROM capstone/busybox
RUN ln -s {canaries.dir}/sub /w
WORKDIR /w/new/deeper
RUN pwd > /seen
""")
    quiet_build(store, ctx, no_cache=True, tags=["hostile-workdir"])
    image = image_rootfs(store, "hostile-workdir", tmp_path / "image")
    inside = str(canaries.dir).lstrip("/") + "/sub/new/deeper"
    assert (image / inside).is_dir()
    assert (image / "seen").read_text() in ("/w/new/deeper\n", f"/{inside}\n")


def test_mount_points_through_image_symlinks_to_the_host(store, tmp_path, canaries):
    # the image's /etc/hosts and /etc/hostname, and a mount target's parent, lead to the host's
    # canaries when read from the host: the runtime's bind targets and mount points
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox
COPY etc/ /etc/
COPY mnt/ /mnt/
RUN --mount=type=tmpfs,target=/mnt/t/cache cat /etc/hosts > /seen && echo x > /mnt/t/cache/x
""")
    (ctx / "etc").mkdir()
    (ctx / "mnt").mkdir()
    os.symlink(f"{canaries.dir}/victim", ctx / "etc/hosts")
    os.symlink(f"{canaries.dir}/sub/new", ctx / "etc/hostname")
    os.symlink(str(canaries.dir), ctx / "mnt/t")
    quiet_build(store, ctx, no_cache=True, tags=["hostile-mountpoints"])
    image = image_rootfs(store, "hostile-mountpoints", tmp_path / "image")
    assert "localhost" in (image / "seen").read_text()
    # the RUN left no mount point behind in its layer
    assert not (image / str(canaries.dir).lstrip("/")).exists()


# -- the snapshot writer itself refuses, in this process and in the forked child -------------------
def hostile_plan(ctx: Path, dest: str, count: int):
    from capstone.engine.copystep import CopyEntry, CopyPlan

    src = ctx / "f"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text("pwned\n")
    st = os.lstat(src)
    entries = [CopyEntry(f"d/f{i}", str(src), st, 0, 0, 0o644) for i in range(count)]
    entries.append(CopyEntry(dest, str(src), st, 0, 0, 0o644))
    plan = CopyPlan()
    for e in entries:
        plan.add(e)
    return plan.finish()


def test_materialize_refuses_a_dotdot_name_before_writing_it(tmp_path, canaries):
    from capstone.engine.copystep import materialize
    from part4_tar import UnsafePathError

    snap = tmp_path / "snap"
    dest = os.path.relpath(canaries.dir / "victim", snap)
    with pytest.raises(UnsafePathError, match="would escape the root"):
        materialize(hostile_plan(tmp_path / "ctx", dest, 3), snap)


def test_the_forked_snapshot_child_refuses_a_dotdot_name(store, tmp_path, canaries):
    from types import SimpleNamespace

    import capstone.engine.executor as executor

    scratch = tmp_path / "scratch"  # the build's scratch directory, where the child makes its tree
    scratch.mkdir()
    builder = SimpleNamespace(secrets=None, store=store, source_date_epoch=None, scratch=scratch)
    # aimed from the child's directory (its name is only known after the fork: one level down)
    plan = hostile_plan(tmp_path / "ctx", "d/" + os.path.relpath(canaries.dir / "victim", scratch / "x" / "d"),
                        executor.PARALLEL_SNAPSHOT_ENTRIES)
    job = executor.Builder._fork_snapshot(builder, plan)
    assert job is not None, "a plan this big is snapshotted by a child"
    pid, tmp = job
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1  # it failed, and removed what it made
    assert not tmp.exists()


# -- a source's path through a chain of links in the context ---------------------------------------
@pytest.mark.parametrize("second", ["absolute", "dotdot", "ignored"])
def test_a_chain_of_context_links_never_leads_out_of_the_context(store, tmp_path, canaries, second):
    """``l1 -> hop/l2``: the first link is an innocent one in the context, the second points
    at the host (absolute, or ``..`` past the root), or is one .dockerignore excludes. Every
    link on the way is followed inside the context and must be one it has: the source is not
    found, and the host's files are neither read nor copied."""
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY l1/victim /x/\n",
                       {".dockerignore": "hop/l2\n" if second == "ignored" else "nothing\n"})
    (ctx / "hop").mkdir()
    depth = "../" * (len(ctx.parts) + 2)
    target = {"absolute": str(canaries.dir), "dotdot": depth + str(canaries.dir).lstrip("/"),
              "ignored": "../inside"}[second]
    os.symlink(target, ctx / "hop/l2")
    os.symlink("hop/l2", ctx / "l1")
    (ctx / "inside").mkdir()
    (ctx / "inside/victim").write_text("in the context, but only through an excluded link\n")
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: COPY failed: file not found in build context"):
        quiet_build(store, ctx, no_cache=True)
    nowhere_in_store(store, b"original\n")


# -- the build's own files: the Dockerfile and the .dockerignore, read inside the context ----------
def test_a_dockerfile_linked_out_of_the_context_is_never_read(store, tmp_path, canaries):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    os.symlink(str(canaries.dir / "victim"), ctx / "Dockerfile")  # /proc/self/environ, /etc/shadow...
    with pytest.raises(BuildError, match=r"^cannot read the Dockerfile .*/ctx/Dockerfile: a symbolic link that leads "
                                         r"out of the build context .*/ctx$"):
        quiet_build(store, ctx, no_cache=True)


def test_a_dockerignore_linked_out_of_the_context_is_never_read_nor_skipped(store, tmp_path, canaries):
    ctx = make_context(tmp_path / "ctx", "FROM capstone/busybox\nCOPY . /c/\n", {"app.txt": "app\n"})
    os.symlink(str(canaries.dir / "victim"), ctx / ".dockerignore")
    with pytest.raises(IgnoreFileError, match=r"\.dockerignore: a symbolic link that leads out of the build context"):
        quiet_build(store, ctx, no_cache=True)


def test_build_files_that_are_fifos_fail_at_once(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM capstone/busybox\n")
    os.mkfifo(ctx / ".dockerignore")
    with pytest.raises(IgnoreFileError, match=r"\.dockerignore: not a regular file"):
        quiet_build(store, ctx, no_cache=True)
    os.unlink(ctx / ".dockerignore")
    os.unlink(ctx / "Dockerfile")
    os.mkfifo(ctx / "Dockerfile")
    with pytest.raises(BuildError, match=r"Dockerfile: not a regular file"):
        quiet_build(store, ctx, no_cache=True)


def test_links_inside_the_context_and_a_dockerfile_given_outside_it_are_read(store, tmp_path, canaries):
    ctx = make_context(tmp_path / "ctx", "FROM capstone/busybox\nRUN false\n", {
        "ci/real.Dockerfile": "FROM capstone/busybox\nCOPY . /c/\n", "ci/ignore": "secret.txt\n", "secret.txt": "s\n"})
    # followed as if the context were "/": "../../.." stops at the context
    os.unlink(ctx / "Dockerfile")
    os.symlink("../../../../../../../../../ci/real.Dockerfile", ctx / "Dockerfile")
    os.symlink("/ci/ignore", ctx / ".dockerignore")
    result = quiet_build(store, ctx, no_cache=True, tags=["hostile-buildfiles"])
    image = image_rootfs(store, "hostile-buildfiles", tmp_path / "image")
    assert (image / "c/ci/real.Dockerfile").is_file() and not (image / "c/secret.txt").exists()
    # -f naming a file outside the context is the caller's own: its links are followed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "real").write_text("FROM capstone/busybox\n")
    os.symlink(elsewhere / "real", elsewhere / "Dockerfile")
    assert quiet_build(store, ctx, no_cache=True, dockerfile_path=elsewhere / "Dockerfile").image_id != result.image_id


# -- an export to a directory: nothing there gives privileges to whoever reaches it -------------
def test_a_local_export_holds_no_setid_file_capability_or_device_node(store, tmp_path):
    """As root, extracting an image writes what it says: a setuid-root shell, a program with
    ``cap_setuid``, a 0666 node of the host's disk. In ``-o DIR`` (a directory other users may
    reach, unlike the private store) that would be root for all of them; the tar keeps them."""
    import struct

    disk = os.stat(Path(__file__)).st_dev
    cap_setuid = struct.pack("<IIIII", 0x02000001, 1 << 7, 0, 0, 0)  # vfs_cap_data v2, permitted+effective
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, mode in (("suid", 0o4755), ("sgid", 0o2755), ("capped", 0o755)):
            ti = tarfile.TarInfo(name)
            ti.mode, ti.size = mode, 3
            if name == "capped":
                ti.pax_headers = {"SCHILY.xattr.security.capability": cap_setuid.decode("utf-8", "surrogateescape")}
            t.addfile(ti, io.BytesIO(b"sh\n"))
        for name, kind, dev in (("disk", tarfile.BLKTYPE, (os.major(disk), os.minor(disk))), ("mem", tarfile.CHRTYPE, (1, 1)),
                                ("fifo", tarfile.FIFOTYPE, (0, 0))):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, (ti.devmajor, ti.devminor) = kind, 0o666, dev
            t.addfile(ti)
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nADD nodes.tar /x/\n", {"nodes.tar": archive.getvalue()})
    out, tar = tmp_path / "out", tmp_path / "fs.tar"
    quiet_build(store, ctx, no_cache=True, outputs=[f"type=local,dest={out}", f"type=tar,dest={tar}"])
    assert sorted(p.name for p in (out / "x").iterdir()) == ["capped", "fifo", "sgid", "suid"]
    assert {p.name: p.lstat().st_mode & 0o7777 for p in (out / "x").iterdir()} == \
        {"capped": 0o755, "fifo": 0o666, "sgid": 0o755, "suid": 0o755}
    assert "security.capability" not in os.listxattr(out / "x/capped")
    with tarfile.open(tar) as t:
        members = {m.name: m for m in t.getmembers()}
    assert members["x/suid"].mode == 0o4755 and members["x/sgid"].mode == 0o2755
    assert members["x/disk"].isblk() and members["x/mem"].ischr()
    assert "SCHILY.xattr.security.capability" in members["x/capped"].pax_headers


# -- a context changed between planning and copying ------------------------------------------------
@pytest.mark.parametrize("size", ["small", "large"])
@pytest.mark.parametrize("chmod", ["", "--chmod=600 "])
def test_a_directory_swapped_for_a_host_link_after_planning_is_not_copied(store, tmp_path, monkeypatch, size, chmod):
    """The context's owner races the build (a student's context, a lab server's root builder):
    once the COPY is planned, ``dir`` becomes a link to a host directory holding files of the
    same names. Every reader checks that it reads the file planning saw (the layer writer, the
    staged copy a ``--chmod`` needs, the snapshot in this process or the forked child): the
    step fails, and the host's bytes are nowhere in the store."""
    import capstone.engine.executor as executor

    ctx = make_context(tmp_path / "ctx", f"FROM capstone/busybox\nCOPY {chmod}dir/ /x/\n")
    src = source_dir(ctx, size)
    (src / "victim").write_text("context\n")
    host = tmp_path / "host"
    host.mkdir()
    for p in src.iterdir():
        (host / p.name).write_text("HOST-BYTES\n")
    planned = executor.plan_copy

    def plan_then_swap(*args, **kw):
        plan = planned(*args, **kw)
        os.rename(src, ctx / "dir.planned")
        os.symlink(host, src)
        return plan

    monkeypatch.setattr(executor, "plan_copy", plan_then_swap)
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: .*replaced while"):
        quiet_build(store, ctx, no_cache=True)
    no_temporary_snapshots(store)
    nowhere_in_store(store, b"HOST-BYTES")


def test_a_file_swapped_before_it_is_hashed_is_not_remembered(tmp_path):
    """The cache key's digests are taken after the walk's lstat: a file reached through a
    directory swapped for a link since is another file, whose digest is never remembered."""
    from capstone.engine.contenthash import FileDigests

    (tmp_path / "dir").mkdir()
    (tmp_path / "dir/f").write_text("context\n")
    st = os.lstat(tmp_path / "dir/f")
    (tmp_path / "host").mkdir()
    (tmp_path / "host/f").write_text("HOST-BYTES\n")
    os.rename(tmp_path / "dir", tmp_path / "dir.walked")
    os.symlink(tmp_path / "host", tmp_path / "dir")
    digests = FileDigests()
    with pytest.raises(ValueError, match="replaced while it was read"):
        digests.digest(str(tmp_path / "dir/f"), st)
    assert list(digests.rows()) == [] and digests.read_bytes == 0


def nowhere_in_store(store: Store, value: bytes) -> None:
    import gzip

    for path in Path(store.path).rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            assert value not in (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data), path


def test_an_archive_swapped_after_planning_is_not_unpacked(store, tmp_path, monkeypatch):
    import capstone.engine.executor as executor

    ctx = make_context(tmp_path / "ctx", "FROM capstone/busybox\nADD dir/t.tar /x/\n", {"dir/t.tar": tar_of(b"context\n")})
    host = tmp_path / "host"
    host.mkdir()
    (host / "t.tar").write_bytes(tar_of(b"HOST-BYTES\n"))
    planned = executor.plan_copy

    def plan_then_swap(*args, **kw):
        plan = planned(*args, **kw)
        os.rename(ctx / "dir", ctx / "dir.planned")
        os.symlink(host, ctx / "dir")
        return plan

    monkeypatch.setattr(executor, "plan_copy", plan_then_swap)
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: .*replaced while"):
        quiet_build(store, ctx, no_cache=True)
    nowhere_in_store(store, b"HOST-BYTES")


def test_tmpfs_mounts_of_a_run_are_bounded(store, tmp_path):
    """``RUN --mount=type=tmpfs``: a size is the most it holds (bytes, as BuildKit reads
    ``size=``), one with no size gets a share of half the host's memory rather than the kernel's
    default for each mount, and an expanded size that is not one (a comma in it would have been a
    second mount option) or that the host cannot give fails in one line naming the line."""
    from capstone.engine.runstep import tmpfs_budget

    ctx = make_context(tmp_path / "ctx", (
        "FROM capstone/busybox\n"
        "RUN --mount=type=tmpfs,target=/small,size=1m --mount=type=tmpfs,target=/a --mount=type=tmpfs,target=/b "
        "sh -c 'grep -E \" /(small|a|b) \" /proc/self/mountinfo > /sizes; "
        "dd if=/dev/zero of=/small/f bs=1024 count=2048 2>/dev/null && echo filled > /small-result || echo full > /small-result'\n"))
    quiet_build(store, ctx, no_cache=True, tags=["tmpfs-sizes"])
    image = image_rootfs(store, "tmpfs-sizes", tmp_path / "image")
    assert (image / "small-result").read_text() == "full\n"
    sizes = {line.split()[4]: line.rsplit("size=", 1)[1].split(",")[0].split()[0]
             for line in (image / "sizes").read_text().splitlines()}
    page = os.sysconf("SC_PAGE_SIZE")
    share_kib = -(-((tmpfs_budget() - (1 << 20)) // 2) // page) * page // 1024  # the kernel rounds up to pages
    assert sizes == {"/small": "1024k", "/a": f"{share_kib}k", "/b": f"{share_kib}k"}, sizes
    for value, why in (("lots", "invalid value for size: lots"),
                       ("1m,nr_inodes=0", "invalid value for size: 1m,nr_inodes=0"),
                       ("100000000g", "more than the .* bytes \\(half of this host's memory\\)")):
        bad = make_context(tmp_path / f"bad-{value.replace(',', '-')}",
                           "FROM capstone/busybox\nARG S\nRUN --mount=type=tmpfs,target=/t,size=$S true\n")
        with pytest.raises(DockerfileError, match=f"^Dockerfile:3: .*{why}") as info:
            quiet_build(store, bad, no_cache=True, build_args={"S": value})
        assert "\n" not in str(info.value)
