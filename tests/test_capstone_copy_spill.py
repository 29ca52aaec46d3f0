"""A COPY of one directory's contents is planned into a spill file, not a list in memory
(capstone.engine.copystep: a context of 200,000 files): the same entries in the same order,
so the same layer (pinned: the digests the in-memory plan gave before the spill existed), the
same snapshot, the same content digest; .dockerignore and --exclude as before. Every other kind
(several sources, --parents, ADD archives) is spilled the same way, and gives the layer the map
in memory gave."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from support import tree_listing

from capstone.context import PatternMatcher
from capstone.dockerfile import parse
from capstone.engine.contenthash import FileDigests
from capstone.engine.copystep import _pack, materialize, plan_copy, write_copy
from capstone.engine.rootfs import RootfsView
from capstone.engine.sources import ContextSource
from part4_tar import LayerWriter

#: what the in-memory plan of ``COPY data /srv/app`` over :func:`make_data` gave before plans
#: were spilled (the content digest, and the layer's diff_id under SOURCE_DATE_EPOCH)
PINNED = ("sha256:4699c06700aab9b1e0463497b52dca01e3b0878d21fe4e5124b9aa6529fa173f",
          "sha256:b4a49cdcf9af72af4ba1a404479263d85d5b501c75df98dc88016f3eb60e24f0")


def make_data(root: Path) -> None:
    files = {"a.txt": b"alpha\n", "b/c.txt": b"gamma" * 300, "b/d/e": b"", "z z/\xc3\xa9": b"accent\n",
             "b.txt": b"bee\n"}
    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    os.symlink("../a.txt", root / "b/link")
    os.link(root / "a.txt", root / "b/hard")
    (root / "empty").mkdir()
    os.chmod(root / "b/c.txt", 0o751)
    # nanosecond mtimes near a second's end: a layer's mtime is the floor of st_mtime, kept exactly
    for i, p in enumerate(sorted(root.rglob("*"), key=lambda p: -len(p.parts))):
        os.utime(p, ns=(1_500_000_000_999_999_999 - i, 1_600_000_000_999_999_999 - i * 77_777_777),
                 follow_symlinks=False)


def plan_of(tmp: Path, dockerfile: str, *, spill: bool, ignore: list[str] | None = None):
    ins = next(i for i in parse(dockerfile.encode()).instructions if i.keyword in ("COPY", "ADD"))
    matcher = PatternMatcher(ignore) if ignore else None
    staging = tmp / ("spilled" if spill else "listed")
    staging.mkdir()
    return plan_copy(ins, ContextSource(tmp / "ctx", matcher), RootfsView([]), "/", digests=FileDigests(),
                     staging=staging / "h", made_mtime=1_700_000_000.0, spill=staging / "plan" if spill else None)


def kept(e) -> tuple:
    """An entry as a plan keeps it, but the access time (hashing the files reads them)."""
    dest, src, st, *rest = _pack(e)
    return (dest, src, st and st[:7] + st[8:], *rest)


def layer_of(plan, tmp: Path) -> str:
    with LayerWriter(io.BytesIO(), "gzip", source_date_epoch=1_650_000_000) as w:
        write_copy(plan, w, tmp / "stage", RootfsView([]))
    return w.info.diff_id


def test_a_spilled_plan_gives_the_layer_and_snapshot_the_listed_plan_gave(tmp_path):
    make_data(tmp_path / "ctx" / "data")
    spilled = plan_of(tmp_path, "FROM scratch\nCOPY data /srv/app\n", spill=True)
    listed = plan_of(tmp_path, "FROM scratch\nCOPY data /srv/app\n", spill=False)
    assert spilled.path is not None and spilled.path.stat().st_size > 0 and listed.path is None
    assert list(map(kept, spilled)) == list(map(kept, listed)) and len(spilled) == len(listed) == 13
    assert list(map(kept, spilled)) == list(map(kept, spilled))  # read again, the same
    assert (spilled.files, spilled.bytes) == (listed.files, listed.bytes) == (6, 1523)
    assert (spilled.digest, layer_of(spilled, tmp_path / "s")) == PINNED
    assert (listed.digest, layer_of(listed, tmp_path / "l")) == PINNED
    materialize(spilled, tmp_path / "snap-spilled", source_date_epoch=1_650_000_000)
    materialize(listed, tmp_path / "snap-listed", source_date_epoch=1_650_000_000)
    a, b = tree_listing(tmp_path / "snap-spilled"), tree_listing(tmp_path / "snap-listed")
    assert a == b and "srv/app/b/link" in a
    mtimes = {p: os.lstat(tmp_path / "snap-spilled" / p).st_mtime_ns for p in a}
    assert mtimes == {p: os.lstat(tmp_path / "snap-listed" / p).st_mtime_ns for p in b}


def test_dockerignore_and_exclude_apply_to_a_spilled_plan(tmp_path):
    make_data(tmp_path / "ctx" / "data")
    for dockerfile, ignore in (("FROM scratch\nCOPY --exclude=b/d --exclude=*.txt data /x/\n", None),
                               ("FROM scratch\nCOPY data /x/\n", ["data/b", "!data/b/d", "data/z*"])):
        for sub in ("spilled", "listed"):
            (tmp_path / sub).exists() and os.system(f"rm -rf '{tmp_path / sub}'")
        spilled = plan_of(tmp_path, dockerfile, spill=True, ignore=ignore)
        listed = plan_of(tmp_path, dockerfile, spill=False, ignore=ignore)
        dests = [e.dest for e in spilled]
        assert dests == [e.dest for e in listed] and spilled.path is not None
        if ignore:
            assert dests == ["x", "x/a.txt", "x/b", "x/b/d", "x/b/d/e", "x/b.txt", "x/empty"]
        else:
            assert dests == ["x", "x/b", "x/b/c.txt", "x/b/hard", "x/b/link", "x/empty", "x/z z", "x/z z/\xc3\xa9"]


def tar_bytes(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime = len(data), 1_600_000_000
            t.addfile(ti, io.BytesIO(data))
    return out.getvalue()


def make_kinds(ctx: Path) -> None:
    """Two directories of the same names, a file, an archive (a name of both)."""
    make_data(ctx / "data")
    make_data(ctx / "other")
    (ctx / "other/extra").write_text("x\n")
    (ctx / "top.txt").write_text("top\n")
    (ctx / "arch.tar").write_bytes(tar_bytes({"a.txt": b"from tar\n", "n/m": b"m\n"}))
    for name in ("other/extra", "top.txt", "arch.tar"):
        os.utime(ctx / name, ns=(1, 1_600_000_000_000_000_000))


#: what the in-memory map of destination -> entry gave for each kind before every kind was
#: spilled (the layer's diff_id under SOURCE_DATE_EPOCH, the entries in order), and the files
#: and bytes the layer takes
KINDS = {
    "COPY top.txt data /x/": ("sha256:49ce3e0926080005692f857b3d7f4c7ba4e5db4bbd912ecdb009781d381e0640", 13, 7, 1527),
    "COPY data other /x/": ("sha256:acc0c61989aeec506272a676b20b19c4046b5671791a1e0f52306dcc496caae5", 13, 7, 1525),
    "COPY data data /x/": ("sha256:73f127a21f15ffd02a4c793b01505b8822b4ca0540b61b264438a317010ca407", 12, 6, 1523),
    "COPY --parents data/**/*.txt data/./b other/./b /p/": (
        "sha256:5ec705944a426364f74b6a00dad51f19da51ee7615de96252d898b8e0bde9b41", 12, 6, 3016),
    "COPY --parents data/b /p/": ("sha256:007006e8d97f5bf46327ff8b54fe7d4f3b9fbbc75037fcffd71aef218c1cb86f", 8, 3, 1506),
    "ADD arch.tar data /x/": ("sha256:1d421756544a7ed1579106679cad411ec0a96752ce3ff9dbb4d000d34a52e12f", 15, 7, 11763),
    "ADD data arch.tar /x/": ("sha256:cc3b184e16493250fda5d7c6537bc7f6ec4cf97e90d1ee8d273401b7dc47fe8a", 15, 7, 11763),
}


@pytest.mark.parametrize("line", list(KINDS))
def test_every_kind_of_copy_is_spilled_and_gives_the_layer_a_map_gave(tmp_path, monkeypatch, line):
    """Several sources, --parents words, archives: spilled as they are planned, the entries a
    later one supersedes found by a sort on disk (runs of 4 records here, so the merge of
    several runs is what runs), and the same layer, byte for byte, as the map in memory gave."""
    import capstone.engine.spill as spill

    monkeypatch.setattr(spill, "RUN_ROWS", 4)
    monkeypatch.setattr(spill, "CHUNK_RECORDS", 3)
    make_kinds(tmp_path / "ctx")
    plan = plan_of(tmp_path, f"FROM scratch\n{line}\n", spill=True)
    assert plan.path.stat().st_size > 0
    layer = layer_of(plan, tmp_path / "s")
    assert (layer, len(plan), plan.files, plan.bytes) == KINDS[line]
    if plan.writers > 1:  # the dedup sorted its keys in several runs on disk
        assert len(list(plan.path.parent.glob("plan.*dedup-keys-*"))) > 1
    listed = plan_of(tmp_path, f"FROM scratch\n{line}\n", spill=False)
    assert layer_of(listed, tmp_path / "l") == layer
    materialize(plan, tmp_path / "snap", source_date_epoch=1_650_000_000)
    materialize(listed, tmp_path / "snap-l", source_date_epoch=1_650_000_000)
    assert tree_listing(tmp_path / "snap") == tree_listing(tmp_path / "snap-l")


def test_a_later_source_wins_in_its_own_place(tmp_path):
    make_kinds(tmp_path / "ctx")
    (tmp_path / "ctx/other/a.txt").write_text("other's\n")
    plan = plan_of(tmp_path, "FROM scratch\nCOPY data top.txt other /x/\n", spill=True)
    dests = [e.dest for e in plan]
    assert len(dests) == len(set(dests)) and dests.index("x/top.txt") < dests.index("x/a.txt")
    assert next(e.src for e in plan if e.dest == "x/a.txt").endswith("other/a.txt")


def plan_peak(tmp: Path, count: int) -> int:
    """The most memory planning ``COPY one two /x/`` takes (tracemalloc), each of ``count``
    files in directories of 100, names shared by the two (so half the entries are superseded)."""
    import tracemalloc

    for top in ("one", "two"):
        for i in range(count):
            p = tmp / "ctx" / top / f"d{i // 100:03d}" / f"file-{i:06d}"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"x")
    staging = tmp / "staging"
    staging.mkdir()
    ins = next(i for i in parse(b"FROM scratch\nCOPY one two /x/\n").instructions if i.keyword == "COPY")
    tracemalloc.start()
    try:
        plan = plan_copy(ins, ContextSource(tmp / "ctx"), RootfsView([]), "/", digests=None, staging=staging / "h",
                         made_mtime=1_700_000_000.0, spill=staging / "plan")
        assert len(plan) == sum(1 for _ in plan) == count + count // 100 + 1
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_planning_two_directories_takes_memory_that_does_not_grow_with_their_files(tmp_path, monkeypatch):
    """The plan is on disk, its dedup's sort in runs on disk: ten times the files, the same
    peak (the map in memory this replaced held every entry: about 1 KiB each)."""
    import capstone.engine.spill as spill

    monkeypatch.setattr(spill, "RUN_ROWS", 1024)
    monkeypatch.setattr(spill, "CHUNK_RECORDS", 64)
    small = plan_peak(tmp_path / "small", 500)
    large = plan_peak(tmp_path / "large", 5_000)
    assert large < 1.3 * small, (small, large)
