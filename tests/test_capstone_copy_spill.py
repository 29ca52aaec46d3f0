"""A COPY of one directory's contents is planned into a spill file, not a list in memory
(capstone.engine.copystep: a context of 200,000 files): the same entries in the same order,
so the same layer (pinned: the digests the in-memory plan gave before the spill existed), the
same snapshot, the same content digest; .dockerignore and --exclude as before; any other copy
(several sources, --parents) stays in memory."""

from __future__ import annotations

import io
import os
from pathlib import Path

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
    assert spilled.spill is not None and spilled.entries == [] and listed.spill is None
    assert list(map(kept, spilled)) == list(map(kept, listed.entries)) and len(spilled) == len(listed) == 13
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
        assert dests == [e.dest for e in listed.entries] and spilled.spill is not None
        if ignore:
            assert dests == ["x", "x/a.txt", "x/b", "x/b/d", "x/b/d/e", "x/b.txt", "x/empty"]
        else:
            assert dests == ["x", "x/b", "x/b/c.txt", "x/b/hard", "x/b/link", "x/empty", "x/z z", "x/z z/\xc3\xa9"]


def test_several_sources_are_planned_in_memory(tmp_path):
    make_data(tmp_path / "ctx" / "data")
    (tmp_path / "ctx" / "top.txt").write_text("top\n")
    plan = plan_of(tmp_path, "FROM scratch\nCOPY top.txt data /x/\n", spill=True)
    assert plan.spill is None and [e.dest for e in plan.entries][:3] == ["x", "x/top.txt", "x/a.txt"]
