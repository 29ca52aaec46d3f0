"""Part 7's lab: an overlay upper directory as an OCI layer (``python -m part7_union lab start DIR``).

The student gets ``changes.py`` with two holes: the walk that reads an upper directory as a
list of changes (a 0/0 character device is a deletion, ``overlay.opaque=y`` an opaque directory,
a copy-up a change, the rest additions) and the writer that packs a list of changes as a layer
(``.wh.NAME`` for a deletion, ``.wh..wh..opq`` after an opaque directory, the parents of every
change first). The checks mount a real overlay (in a mount namespace of their own), make the
chapter's changes in it, and compare: the change list, the layer's entries, and the proof that
base layers + the new layer, applied by part 4, give the merged view back.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from part1_overview import Lab, LabContext, Task
from part4_tar import apply_layers, open_decompressed
from part5_namespaces import CloneFlags, IdMap, MountFlags, NamespaceError, call_in_namespaces, mount

from .changes import upper_changes as course_upper_changes
from .changes import write_change_list as course_write_change_list
from .chapter import build_layers, make_changes
from .lower import extract_lower
from .overlay import OverlayMount
from .snapshot import CopySnapshotter
from .tree import describe_tree
from .whiteouts import is_opaque


def as_container_root(check, ctx: LabContext) -> None:
    """``check(ctx)`` as root: here, or for an ordinary user as root of a user namespace of
    its own (its uid mapped to 0), where it may mount an overlay (with ``userxattr``) and the
    files it makes, packs and applies all have owners that namespace maps."""
    if os.geteuid() == 0:
        return check(ctx)
    maps = (IdMap(0, os.geteuid(), 1),), (IdMap(0, os.getegid(), 1),)
    try:
        return call_in_namespaces(lambda: check(ctx), CloneFlags.NEWUSER, uid_maps=maps[0], gid_maps=maps[1])
    except NamespaceError as e:
        _, sep, message = str(e).partition(": AssertionError: ")
        if sep:
            raise AssertionError(message) from None
        raise


def union_step(work: Path) -> tuple[list[Path], list[Path], Path, dict]:
    """The chapter's step, for real: two layers as overlay lowers, an overlay, the chapter's
    changes in it. Returns (layer blobs bottom first, lowers top first, the upper dir, the
    merged view as ``describe_tree`` gives it)."""
    blobs = build_layers(work)
    userns = Path("/proc/self/uid_map").read_text().split() != ["0", "0", "4294967295"]
    lowers = [extract_lower(b, work / "lowers" / name, userxattr=userns) for b, name in zip(blobs, ("base", "app"))][::-1]
    upper, workdir, merged = work / "upper", work / "work", work / "merged"

    def body() -> dict:
        mount(None, "/", None, MountFlags.REC | MountFlags.PRIVATE)
        with OverlayMount(lowers, upper, workdir, merged, userxattr=userns):
            make_changes(merged)
            view = describe_tree(merged)
        view.pop(".", None)
        return view

    return blobs, lowers, upper, call_in_namespaces(body, CloneFlags.NEWNS)


def _explain(upper: Path, path: str) -> str:
    p = upper / path
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return "not in the upper dir"
    if os.path.isdir(p):
        return "a directory" + (", opaque (overlay.opaque=y)" if is_opaque(p) else "")
    if (st.st_mode & 0o170000) == 0o020000 and st.st_rdev == 0:
        return "a whiteout: a character device 0/0"
    return "a file"


def _compare(got, want, upper: Path, what: str) -> None:
    got_text = [str(c) for c in got] if isinstance(got, list) else None
    assert got_text is not None, f"{what} must return a list of Change, not {type(got).__name__}"
    want_text = [str(c) for c in want]
    for i, expected in enumerate(want_text):
        if i >= len(got_text):
            raise AssertionError(f"{what}: the list ends after {len(got_text)} changes; next expected '{expected}' "
                                 f"({expected.split(' ', 1)[1]} is {_explain(upper, expected.split(' ', 1)[1])})")
        if got_text[i] != expected:
            path = expected.split(" ", 1)[1]
            raise AssertionError(f"{what}: change {i + 1} is '{got_text[i]}', expected '{expected}' ({path} is {_explain(upper, path)}; "
                                 "changes come in walk order, names sorted, a directory before what is in it)")
    assert len(got_text) == len(want_text), f"{what}: {len(got_text) - len(want_text)} change(s) too many, starting with '{got_text[len(want_text)]}'"


def _check_upper_changes(ctx: LabContext) -> None:
    _, lowers, upper, _ = union_step(ctx.tmp)
    got = ctx.changes.upper_changes(upper)
    _compare(got, course_upper_changes(upper), upper, "upper_changes(upper) without lowers")
    got = ctx.changes.upper_changes(upper, lowers)
    _compare(got, course_upper_changes(upper, lowers), upper, "upper_changes(upper, lowers)")


def _entries(blob: Path) -> list[tuple[str, str, int]]:
    with open(blob, "rb") as f, tarfile.open(fileobj=open_decompressed(f), mode="r|") as tar:
        return [(m.name.rstrip("/"), m.type.decode(), m.size) for m in tar]


def _check_layer(ctx: LabContext, changes, course_changes, root: Path, blobs: list[Path], view: dict, name: str) -> str:
    """Pack ``changes`` read from ``root`` with the code under test and check the layer
    against the course's; returns its digest."""
    layer = ctx.tmp / f"{name}.tar.gz"
    with open(layer, "wb") as f:
        info = ctx.changes.write_change_list(changes, root, f, source_date_epoch=0)
    assert hasattr(info, "diff_id") and hasattr(info, "digest"), f"write_change_list must return part 4's LayerInfo, not {type(info).__name__}"
    want_blob = ctx.tmp / f"course-{name}.tar.gz"
    with open(want_blob, "wb") as f:
        course_write_change_list(course_changes, root, f, source_date_epoch=0)
    got, want = _entries(layer), _entries(want_blob)
    names = [n for n, _, _ in got]
    assert len(names) == len(set(names)), f"the layer has the entry {next(n for n in names if names.count(n) > 1)!r} twice: write each entry once"
    devices = [n for n, t, _ in got if t in ("3", "4")]
    assert not devices, f"the layer holds the device {devices[0]!r}: a whiteout device must become an empty file .wh.NAME"
    for entry, typeflag, _ in want:
        assert entry in names, f"the layer has no entry {entry!r}" + (
            " (an opaque directory is the directory, then DIR/.wh..wh..opq)" if entry.endswith(".wh..wh..opq") else
            " (a deletion is written as DIR/.wh.NAME)" if "/.wh." in entry or entry.startswith(".wh.") else
            " (the parents of every change come first, unchanged parents too)" if typeflag == "5" else "")
    extra = [n for n in names if n not in {w for w, _, _ in want}]
    assert not extra, f"the layer has an entry {extra[0]!r} that is no change"
    for i, entry in enumerate(names):
        parent = entry.rpartition("/")[0]
        if parent:
            assert parent in names[:i], f"{entry!r} comes before its directory {parent!r}: parents first"
    rootfs = ctx.tmp / f"applied-{name}"

    apply_layers([*blobs, layer], rootfs)
    applied = describe_tree(rootfs)
    applied.pop(".", None)
    differ = sorted(set(applied) ^ set(view)) or sorted(k for k in view if applied.get(k) != view[k])
    assert not differ, f"base layers + your layer, applied by part 4, differ from the merged view at {differ[0]!r}"
    with open(ctx.tmp / f"again-{name}.tar.gz", "wb") as f:
        again = ctx.changes.write_change_list(changes, root, f, source_date_epoch=0)
    assert again.digest == info.digest, "the same changes packed twice gave two digests"
    return info.digest


def _check_write_changes(ctx: LabContext) -> None:
    blobs, lowers, upper, view = union_step(ctx.tmp)
    # the changes as the code under test's own Change values (its module defines the class)
    changes = ctx.changes.upper_changes(upper, lowers)
    _check_layer(ctx, changes, course_upper_changes(upper, lowers), upper, blobs, view, "upper")
    # the copy snapshotter's changes name no unchanged parent ("D bin/old-tool" without "C bin")
    with CopySnapshotter().prepare(lowers, ctx.tmp / "copy") as snap:
        make_changes(snap.root)
        course = snap.changes()
        mine = [ctx.changes.Change(ctx.changes.ChangeKind(c.kind.value), c.path) for c in course]
        _check_layer(ctx, mine, course, snap.root, blobs, view, "copy")


def check_upper_changes(ctx: LabContext) -> None:
    as_container_root(_check_upper_changes, ctx)


def check_write_changes(ctx: LabContext) -> None:
    as_container_root(_check_write_changes, ctx)


LAB = Lab(
    package="part7_union",
    title="Part 7, union mounts: the upper directory as a layer",
    intro="""
Two hours. After a RUN step the overlay's upper directory holds exactly what the step changed,
in overlayfs's spelling: new and copied-up files, 0/0 character devices for deletions, an
`overlay.opaque` xattr on a directory that was replaced. You translate it into the OCI's
spelling: first the list of changes (as `docker diff` prints them), then the layer. Start with
`python -m part7_union --workdir /tmp/part7`: steps 4 and 5 show the upper directory your code
reads and the layer it must write; the checks make the very same changes in a real overlay.
""",
    modules=("changes.py",),
    tasks=(
        Task(1, "read the upper directory as changes", ("changes.py:_upper_walk",),
             """`_upper_walk(d, rel, lowers, lower, out)` walks the directory `d` (at `rel` in the upper
dir), names sorted by their bytes, and appends one `Change` per entry to `out`, in walk order (a
directory before its content): a whiteout (`is_whiteout(st)`) is a DELETE; any other entry is an
ADD, or a MODIFY when the merged lowers have that name (a copy-up); a directory with
`overlay.opaque=y` (`is_opaque`) is followed by an OPAQUE change for it, and its content is then
compared with nothing below. Without lowers (`lowers is None`) every whiteout is a DELETE and
every opaque directory an OPAQUE; with lowers, a whiteout of a name no lower has is dropped.""",
             ("Concepts",),
             ("`lowers.children(node)` maps names to the lower `Node`s of a directory (`node.is_dir`); start from the `lower` given.",
              "`upper_changes` (given) calls `_upper_walk(upper, \"\", lowers, lowers.root(), out)`.",
              "Recurse into directories with the lower node of the same name, or None below an opaque directory."),
             "the change lists, with and without the lowers, of the chapter's step made in a real overlay: a copy-up, a deletion "
             "(whiteout device), a directory deleted and made again (opaque), a new file.",
             check_upper_changes),
        Task(2, "write the changes as a layer", ("changes.py:write_change_list",),
             """`write_change_list(changes, root, out, compression, source_date_epoch=...)` packs the
changes with part 4's `LayerWriter` and returns its `LayerInfo`. Added and changed entries are
read from `root` (`_add(w, root, rel)`); a DELETE is `w.add_whiteout(path)` (DIR/.wh.NAME); an
OPAQUE is the directory itself, then `w.add_opaque(path)` (DIR/.wh..wh..opq). The parents of every
change come before it, each entry once (unchanged parents too, as Docker and BuildKit write them).""",
             ("Concepts", "Run it"),
             ("`_parents(path)` yields `a`, `a/b` for `a/b/c`.",
              "A set of the entries written so far keeps each parent to one entry."),
             "the layers your function writes for the chapter's changes, as the overlay's upper dir lists them and as the copy "
             "snapshotter's diff lists them (no unchanged parents there): no device, every whiteout and opaque marker, parents "
             "first, each entry once; base layers + your layer applied by part 4 equal the merged view; the same digest twice.",
             check_write_changes),
    ),
    timeout=180,
)
