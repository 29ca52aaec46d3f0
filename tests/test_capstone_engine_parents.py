"""capstone.engine ``COPY --parents`` as BuildKit 1.20 does it: source paths kept below the
destination, the ``/./`` pivot (rsync ``--relative`` style), ``**`` for any depth, parent
directories copied with their own metadata, from the context and from a stage."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import built_rootfs, make_context

from capstone.errors import DockerfileError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds need root (namespaces, overlay mounts)")


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) + ("/" if p.is_dir() else "") for p in root.rglob("*"))


def test_pivot_keeps_only_the_path_after_it(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM scratch
COPY --parents ./a/./b/c.txt /dst/
COPY --parents a/./b /whole/
COPY --parents ./a/b/c.txt /nopivot/
""", {"a/b/c.txt": "c", "a/b/d/e.txt": "e", "a/top.txt": "t"})
    root = built_rootfs(store, ctx, tmp_path / "rootfs", tag="parentstest")
    assert tree(root / "dst") == ["b/", "b/c.txt"]
    assert (root / "dst/b/c.txt").read_text() == "c"
    assert tree(root / "whole") == ["b/", "b/c.txt", "b/d/", "b/d/e.txt"]
    assert tree(root / "nopivot") == ["a/", "a/b/", "a/b/c.txt"]


def test_parent_directories_keep_their_mode_and_mtime(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY --parents a/b/c.txt /keep/\n", {"a/b/c.txt": "c"})
    os.chmod(ctx / "a/b", 0o750)
    os.utime(ctx / "a/b", (1_000_000_000, 1_000_000_000))
    os.utime(ctx / "a", (1_100_000_000, 1_100_000_000))
    root = built_rootfs(store, ctx, tmp_path / "rootfs", tag="parentstest")
    st = os.stat(root / "keep/a/b")
    assert st.st_mode & 0o7777 == 0o750 and int(st.st_mtime) == 1_000_000_000
    assert int(os.stat(root / "keep/a").st_mtime) == 1_100_000_000
    assert (root / "keep/a/b/c.txt").read_text() == "c"


def test_double_star_matches_at_any_depth_with_and_without_pivot(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM scratch
COPY --parents src/**/*.go /g/
COPY --parents src/./**/*.h /inc/
COPY --parents --exclude=**/skip.go **/*.go /ex/
""", {"src/x.go": "x", "src/p/q/y.go": "y", "src/p/readme.md": "r", "src/empty/z.txt": "z",
      "src/h/a.h": "a", "src/h/deep/b.h": "b", "top.go": "t", "src/p/skip.go": "s"})
    root = built_rootfs(store, ctx, tmp_path / "rootfs", tag="parentstest")
    assert tree(root / "g") == ["src/", "src/p/", "src/p/q/", "src/p/q/y.go", "src/p/skip.go", "src/x.go"]
    assert tree(root / "inc") == ["h/", "h/a.h", "h/deep/", "h/deep/b.h"]
    assert tree(root / "ex") == ["src/", "src/p/", "src/p/q/", "src/p/q/y.go", "src/x.go", "top.go"]


def test_parents_from_a_stage(store, tmp_path):
    ctx = make_context(tmp_path / "ctx", """\
FROM capstone/busybox AS lib
RUN mkdir -p /opt/pkg/lib/sub && echo one > /opt/pkg/lib/one.so && echo two > /opt/pkg/lib/sub/two.so \\
    && echo no > /opt/pkg/lib/notes.txt
FROM scratch
COPY --from=lib --parents /opt/pkg/./lib/**/*.so /usr/
""")
    root = built_rootfs(store, ctx, tmp_path / "rootfs", tag="parentstest")
    assert tree(root / "usr") == ["lib/", "lib/one.so", "lib/sub/", "lib/sub/two.so"]
    assert (root / "usr/lib/sub/two.so").read_text() == "two\n"


def test_parents_source_that_does_not_exist_is_an_error_a_pattern_may_match_nothing(store, tmp_path):
    # BuildKit's frontend requires a --parents source to exist only when neither the pivot nor
    # the pattern has a wildcard (its RequiredPaths); a pattern that matches nothing adds nothing
    ctx = make_context(tmp_path / "ctx", "FROM scratch\nCOPY --parents ./a/./nothing/x.c /dst/\n",
                       {"a/x.txt": "x"})
    with pytest.raises(DockerfileError, match=r"Dockerfile:2: COPY failed: \./a/\./nothing/x\.c"):
        built_rootfs(store, ctx, tmp_path / "rootfs", tag="parentstest")
    make_context(ctx, "FROM scratch\nCOPY --parents ./a/./nothing/*.c a/*.txt /dst/\n")
    root = built_rootfs(store, ctx, tmp_path / "rootfs", tag="parentstest")
    assert tree(root / "dst") == ["a/", "a/x.txt"]
