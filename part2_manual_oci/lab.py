"""Part 2's lab: write the writers of an OCI image (``python -m part2_manual_oci lab start DIR``).

The student gets ``busybox.py`` and ``layout.py`` with six holes: the layer tar (diff_id), the
gzip blob (digest), the config, the manifest, ``put_blob`` and ``add_manifest``. Each check
tests the function on its own, then builds a whole image with it (the other steps are the
course's, or the student's own once done) and runs ``validate_layout`` on the result.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path

from part1_overview import Lab, LabContext, Task, replace

from . import mediatypes as mt
from .models import Descriptor, ImageConfig, Manifest, Platform
from .validate import validate_layout

EPOCH = 1700000000
CREATED = "2023-11-14T22:13:20Z"

#: the lab's small root filesystem: (path, kind, mode, content or link target)
TREE = (
    ("bin", "dir", 0o755, None),
    ("bin/hello", "file", 0o755, "#!/bin/sh\necho hello from a layer\n"),
    ("bin/sh", "symlink", 0o777, "/bin/busybox"),
    ("etc", "dir", 0o755, None),
    ("etc/group", "file", 0o644, "root:x:0:\n"),
    ("etc/passwd", "file", 0o644, "root:x:0:0:root:/root:/bin/sh\n"),
    ("proc", "dir", 0o755, None),
    ("root", "dir", 0o700, None),
    ("tmp", "dir", 0o1777, None),
    ("usr", "dir", 0o755, None),
    ("usr/bin", "dir", 0o755, None),
    ("usr/bin/env", "symlink", 0o777, "../../bin/hello"),
)


def make_tree(root: Path, *, reverse: bool = False) -> Path:
    """The lab's tree under ``root``; ``reverse`` creates the entries in the opposite order."""
    root.mkdir(parents=True)
    os.chmod(root, 0o755)
    for rel, kind, mode, content in (reversed(TREE) if reverse else TREE):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "dir":
            path.mkdir(exist_ok=True)
            os.chmod(path, mode)
        elif kind == "file":
            path.write_text(content)
            os.chmod(path, mode)
        else:
            os.symlink(content, path)
    return root


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return "sha256:" + h.hexdigest()


def build_image(ctx: LabContext, out: Path, tree: Path, tag: str = "latest") -> Descriptor:
    """A whole one-layer image in the layout ``out``, made by the code under test, step by
    step as ``build_busybox_image`` does; returns the index entry."""
    b = ctx.busybox
    work = ctx.tmp / f"work-{tag}"
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "layer.tar", "wb") as f:
        diff_id, _ = b.tar_rootfs(tree, f, mtime=EPOCH)
    with open(work / "layer.tar", "rb") as src, open(work / "layer.tar.gz", "wb") as dst:
        digest, _ = b.compress_layer(src, dst)
    layout = ctx.layout.OCILayout.create(out)
    with open(work / "layer.tar.gz", "rb") as f:
        layer = layout.put_blob(f, mt.OCI_LAYER_GZIP, expected_digest=digest)
    config = b.busybox_config(diff_id, created=CREATED, busybox_version="lab", plat=Platform("amd64", "linux"))
    config_desc = layout.put_json(config, mt.OCI_CONFIG)
    manifest = b.busybox_manifest(config_desc, layer)
    manifest_desc = layout.put_json(manifest, mt.OCI_MANIFEST)
    return layout.add_manifest(manifest_desc, ref_name=tag)


def assert_valid(out: Path, what: str) -> None:
    problems = validate_layout(out)
    assert not problems, f"the image made with {what} is not valid: {problems[0]}"


# -- task 1: the layer tar -----------------------------------------------------------------------


def check_tar(ctx: LabContext) -> None:
    tree = make_tree(ctx.tmp / "rootfs")
    tar_path = ctx.tmp / "layer.tar"
    with open(tar_path, "wb") as f:
        result = ctx.busybox.tar_rootfs(tree, f, mtime=EPOCH)
    assert isinstance(result, tuple) and len(result) == 2, f"tar_rootfs must return (diff_id, size), not {result!r:.80}"
    diff_id, size = result
    data = tar_path.read_bytes()
    assert size == len(data), f"tar_rootfs returned size {size}, but it wrote {len(data)} bytes"
    assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest(), (
        "the diff_id you returned is not the sha256 of the bytes you wrote (it must be \"sha256:\" + the hex digest of the tar)"
    )
    try:
        members = tarfile.open(fileobj=io.BytesIO(data), mode="r:").getmembers()
    except tarfile.TarError as e:
        raise AssertionError(f"what tar_rootfs wrote is not a tar archive ({e})") from None
    names = [m.name.rstrip("/") for m in members]
    for m in members:
        assert not m.name.startswith(("/", "./")), f"entry {m.name!r}: names must be relative to the root ('bin/sh', not '/bin/sh' or './bin/sh')"
    expected = {rel for rel, *_ in TREE}
    missing = sorted(expected - set(names))
    assert not missing, f"the tar has no entry for {missing[0]} (every directory, file and symlink of the tree, not the root itself)"
    extra = sorted(set(names) - expected)
    assert not extra, f"the tar has an entry {extra[0]!r} that is not in the tree"
    assert names == sorted(names), "entries must be sorted by name: the same tree must always give the same bytes"
    by_name = {m.name.rstrip("/"): m for m in members}
    for rel, kind, mode, content in TREE:
        m = by_name[rel]
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", ""), f"{rel}: owner must be 0:0 with no user or group names (got {m.uid}:{m.gid} {m.uname!r} {m.gname!r})"
        assert m.mtime == EPOCH, f"{rel}: mtime {m.mtime}, expected the mtime argument ({EPOCH})"
        if kind == "symlink":
            assert m.issym(), f"{rel} is a symlink: store it as one (type SYMTYPE), never follow it"
            assert m.linkname == content, f"{rel}: link target {m.linkname!r}, expected {content!r} (os.readlink)"
            continue
        assert stat.S_IMODE(m.mode) == mode, f"{rel}: mode {stat.S_IMODE(m.mode):04o}, expected {mode:04o} (the file's own mode, lstat)"
        if kind == "dir":
            assert m.isdir(), f"{rel} is a directory: store it as one (type DIRTYPE)"
        else:
            assert m.isfile(), f"{rel} is a regular file: store it as one (type REGTYPE)"
            got = tarfile.open(fileobj=io.BytesIO(data), mode="r:").extractfile(rel).read()
            assert got == content.encode(), f"{rel}: the tar holds other bytes than the file"
    again = make_tree(ctx.tmp / "rootfs-again", reverse=True)
    os.utime(again / "etc/passwd", (EPOCH + 99, EPOCH + 99))
    with open(ctx.tmp / "again.tar", "wb") as f:
        diff_id_again, _ = ctx.busybox.tar_rootfs(again, f, mtime=EPOCH)
    assert diff_id_again == diff_id, "the same tree, made in another order and at another time, gave another diff_id: the tar must not depend on that"
    build_image(ctx, ctx.tmp / "image", tree)
    assert_valid(ctx.tmp / "image", "your tar_rootfs")


# -- task 2: the gzip blob -----------------------------------------------------------------------


def check_gzip(ctx: LabContext) -> None:
    tree = make_tree(ctx.tmp / "rootfs")
    with open(ctx.tmp / "layer.tar", "wb") as f:
        ctx.reference["busybox"].tar_rootfs(tree, f, mtime=EPOCH)
    tar_bytes = (ctx.tmp / "layer.tar").read_bytes()
    gz_path = ctx.tmp / "layer.tar.gz"
    with open(ctx.tmp / "layer.tar", "rb") as src, open(gz_path, "wb") as dst:
        result = ctx.busybox.compress_layer(src, dst)
    assert isinstance(result, tuple) and len(result) == 2, f"compress_layer must return (digest, size), not {result!r:.80}"
    digest, size = result
    blob = gz_path.read_bytes()
    assert blob[:2] == b"\x1f\x8b", f"the blob does not start with gzip's magic bytes 1f 8b (it starts with {blob[:4].hex() or 'nothing'})"
    assert size == len(blob), f"compress_layer returned size {size}, but it wrote {len(blob)} bytes"
    assert digest == "sha256:" + hashlib.sha256(blob).hexdigest(), (
        "the digest you returned is not the sha256 of the compressed bytes you wrote"
    )
    assert not blob[3] & 0x08, "the gzip header carries a file name: leave it out (gzip -n), it would change the digest"
    assert blob[4:8] == b"\0\0\0\0", "the gzip header carries a time stamp: set it to 0 (gzip -n), or every run gives a new digest"
    try:
        back = gzip.decompress(blob)
    except (OSError, EOFError) as e:
        raise AssertionError(f"the blob does not decompress ({e})") from None
    assert back == tar_bytes, "the blob decompresses to other bytes than the tar you were given"
    with open(ctx.tmp / "layer.tar", "rb") as src, open(ctx.tmp / "again.gz", "wb") as dst:
        digest_again, _ = ctx.busybox.compress_layer(src, dst)
    assert digest_again == digest, "compressing the same tar twice gave two digests: the blob must be reproducible"
    build_image(ctx, ctx.tmp / "image", tree)
    assert_valid(ctx.tmp / "image", "your compress_layer")


# -- task 3: the config --------------------------------------------------------------------------


def check_config(ctx: LabContext) -> None:
    diff_id = "sha256:" + "5" * 64
    plat = Platform("arm64", "linux", variant="v8")
    config = ctx.busybox.busybox_config(diff_id, created=CREATED, busybox_version="v1.35.0", plat=plat)
    assert isinstance(config, ImageConfig), f"busybox_config must return an ImageConfig (part2_manual_oci.ImageConfig), not {type(config).__name__}"
    assert config.rootfs_diff_ids == (diff_id,), f"rootfs.diff_ids must list the one layer's diff_id, got {config.rootfs_diff_ids!r}"
    assert (config.architecture, config.os, config.variant) == ("arm64", "linux", "v8"), (
        f"the platform must be the plat argument (arm64/linux/v8), got {config.architecture}/{config.os}/{config.variant}"
    )
    assert config.created == CREATED, f"created must be the created argument, got {config.created!r}"
    assert config.config.cmd == ("sh",), f"Cmd must be ('sh',): a busybox shell, got {config.config.cmd!r}"
    env = config.config.env_dict()
    assert "PATH" in env and "/bin" in env["PATH"].split(":"), "Env must set a PATH that holds /bin (where busybox's applets are)"
    assert len(config.history) == 1, f"history must have one entry, for the one layer (got {len(config.history)})"
    assert config.history[0].created == CREATED and not config.history[0].empty_layer, (
        "the history entry is the layer's: created at the created argument, not an empty_layer entry"
    )
    build_image(ctx, ctx.tmp / "image", make_tree(ctx.tmp / "rootfs"))
    assert_valid(ctx.tmp / "image", "your busybox_config")


# -- task 4: the manifest ------------------------------------------------------------------------


def check_manifest(ctx: LabContext) -> None:
    config = Descriptor(mt.OCI_CONFIG, "sha256:" + "c" * 64, 490)
    layer = Descriptor(mt.OCI_LAYER_GZIP, "sha256:" + "a" * 64, 1031697)
    manifest = ctx.busybox.busybox_manifest(config, layer)
    assert isinstance(manifest, Manifest), f"busybox_manifest must return a Manifest (part2_manual_oci.Manifest), not {type(manifest).__name__}"
    assert manifest.config == config, "the manifest's config descriptor must be the config argument, unchanged"
    assert manifest.layers == (layer,), f"the manifest must list exactly the one layer descriptor, got {len(manifest.layers)}"
    assert manifest.media_type == mt.OCI_MANIFEST, f"media type {manifest.media_type!r}, expected {mt.OCI_MANIFEST}"
    data = json.loads(json.dumps(manifest.to_json()))
    assert data["schemaVersion"] == 2, "schemaVersion must be 2"
    build_image(ctx, ctx.tmp / "image", make_tree(ctx.tmp / "rootfs"))
    assert_valid(ctx.tmp / "image", "your busybox_manifest")


# -- task 5: put_blob ----------------------------------------------------------------------------


class _ChunkedOnly(io.RawIOBase):
    """A stream that refuses to be read whole, and checks the blob is not there too early."""

    def __init__(self, data: bytes, final: Path) -> None:
        super().__init__()
        self.data = memoryview(data)
        self.pos = 0
        self.final = final

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        assert n is not None and n >= 0, "put_blob read the whole stream at once: read it in chunks (src.read(CHUNK)) so a big layer never sits in memory"
        assert not self.final.exists(), (
            "the blob appeared under its name before it was complete: write a temporary file, then rename it"
        )
        chunk = bytes(self.data[self.pos:self.pos + n])
        self.pos += len(chunk)
        return chunk

    def readinto(self, buffer) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def _leftovers(layout) -> list[str]:
    return sorted(p.name for p in layout.blobs_dir.iterdir() if not (len(p.name) == 64 and all(c in "0123456789abcdef" for c in p.name)))


def check_put_blob(ctx: LabContext) -> None:
    layout = ctx.layout.OCILayout.create(ctx.tmp / "layout")
    small = b'{"hello": "blob"}'
    desc = layout.put_blob(small, mt.OCI_CONFIG)
    want = "sha256:" + hashlib.sha256(small).hexdigest()
    assert isinstance(desc, Descriptor), f"put_blob must return a Descriptor, not {type(desc).__name__}"
    assert (desc.media_type, desc.digest, desc.size) == (mt.OCI_CONFIG, want, len(small)), (
        f"put_blob(bytes) returned ({desc.media_type}, {desc.digest}, {desc.size}), expected ({mt.OCI_CONFIG}, {want}, {len(small)})"
    )
    path = layout.path / "blobs" / "sha256" / want.split(":")[1]
    assert path.is_file() and path.read_bytes() == small, "the blob must be stored as blobs/sha256/<hex of its sha256>, with exactly its bytes"
    again = layout.put_blob(small, mt.OCI_CONFIG)
    assert again.digest == want, "storing the same bytes again must give the same descriptor"

    big = os.urandom(3 << 20) + b"x" * (2 << 20)
    big_digest = "sha256:" + hashlib.sha256(big).hexdigest()
    final = layout.path / "blobs" / "sha256" / big_digest.split(":")[1]
    desc = layout.put_blob(_ChunkedOnly(big, final), mt.OCI_LAYER_GZIP, annotations={"lab": "5"})
    assert (desc.digest, desc.size) == (big_digest, len(big)), "put_blob(stream) returned the wrong digest or size"
    assert desc.annotations == {"lab": "5"}, "put_blob must put the annotations it was given into the descriptor"
    assert final.is_file() and _sha256_file(final) == big_digest, "the streamed blob is not stored under its digest with its bytes"

    try:
        layout.put_blob(b"not what you think", mt.OCI_CONFIG, expected_digest=want)
    except ctx.reference["layout"].BlobCorrupt:
        pass
    else:
        raise AssertionError("put_blob stored bytes that do not match expected_digest: it must raise BlobCorrupt")
    bad = "sha256:" + hashlib.sha256(b"not what you think").hexdigest()
    assert not (layout.path / "blobs" / "sha256" / bad.split(":")[1]).exists(), "a blob that did not match expected_digest was stored anyway"
    left = _leftovers(layout)
    assert not left, f"put_blob left {left[0]} behind in blobs/sha256 (temporary files must be renamed or removed)"
    build_image(ctx, ctx.tmp / "image", make_tree(ctx.tmp / "rootfs"))
    assert_valid(ctx.tmp / "image", "your put_blob")


# -- task 6: add_manifest ------------------------------------------------------------------------


def check_add_manifest(ctx: LabContext) -> None:
    out = ctx.tmp / "image"
    tree = make_tree(ctx.tmp / "rootfs")
    entry = build_image(ctx, out, tree, "latest")
    assert isinstance(entry, Descriptor), f"add_manifest must return the descriptor it wrote, not {type(entry).__name__}"
    assert entry.ref_name == "latest", "the returned descriptor must carry the ref name annotation (org.opencontainers.image.ref.name)"
    index = json.loads((out / "index.json").read_text())
    entries = index.get("manifests", [])
    assert len(entries) == 1, f"index.json must name the one manifest, it has {len(entries)} entries"
    assert entries[0].get("annotations", {}).get(mt.ANNOTATION_REF_NAME) == "latest", (
        f"index.json's entry must carry the annotation {mt.ANNOTATION_REF_NAME}: latest"
    )
    assert_valid(out, "your add_manifest")

    layout = ctx.layout.OCILayout.open(out)
    first = layout.read_manifest(entries[0]["digest"])
    other = layout.put_json(replace(first, annotations={"lab": "another manifest"}), mt.OCI_MANIFEST)
    layout.add_manifest(other, ref_name="v1")
    names = [m.get("annotations", {}).get(mt.ANNOTATION_REF_NAME) for m in json.loads((out / "index.json").read_text())["manifests"]]
    assert sorted(names) == ["latest", "v1"], f"after adding the tag v1, index.json must name latest and v1, it names {names}"
    layout.add_manifest(other, ref_name="latest")
    manifests = json.loads((out / "index.json").read_text())["manifests"]
    latest = [m for m in manifests if m.get("annotations", {}).get(mt.ANNOTATION_REF_NAME) == "latest"]
    assert len(latest) == 1, f"naming another manifest 'latest' must replace the old entry, index.json has {len(latest)} named latest"
    assert latest[0]["digest"] == other.digest, "the entry named latest must now point at the new manifest"
    assert len(manifests) == 2, f"index.json must still have 2 entries (latest and v1), it has {len(manifests)}"
    missing = Descriptor(mt.OCI_MANIFEST, "sha256:" + "e" * 64, 10)
    try:
        layout.add_manifest(missing, ref_name="ghost")
    except ctx.reference["layout"].BlobNotFound:
        pass
    else:
        raise AssertionError("add_manifest named a manifest whose blob is not stored: it must raise BlobNotFound (index.json is written last)")
    assert "ghost" not in (out / "index.json").read_text(), "index.json names a manifest whose blob is not there"
    left = [p.name for p in out.iterdir() if p.name not in ("blobs", "index.json", "oci-layout")]
    assert not left, f"add_manifest left {left[0]} in the layout (write index.json through a temporary file and rename it)"
    assert_valid(out, "your add_manifest")


_READ_LAYER = ("Concepts", "Run it")

LAB = Lab(
    package="part2_manual_oci",
    title="Part 2, an OCI image by hand: the writers",
    intro="""
Two hours. You write, in Python, every piece of the image the chapter builds: the layer tar
(its sha256 is the diff_id), the gzip blob (its sha256 is the digest), the config, the
manifest, the blob store, and index.json. Start by running the chapter
(`python -m part2_manual_oci --out /tmp/busybox-oci --workdir /tmp/busybox-work`) and reading
its output: it shows what each of your functions has to produce. Every check ends by building
a whole image with your function and running `validate_layout` on it.
""",
    modules=("busybox.py", "layout.py"),
    tasks=(
        Task(1, "tar the root filesystem: the diff_id", ("busybox.py:tar_rootfs",),
             """`tar_rootfs(root, out, mtime=...)` writes every directory, file and symlink under `root`
(not `root` itself) as a tar stream to `out` and returns `(diff_id, size)`: the sha256 of the
bytes it wrote ("sha256:" + hex) and their number. The tar must be deterministic: names relative
and sorted, owner 0:0 with no user or group names, every mtime set to `mtime`, each entry's own
mode; symlinks stored as symlinks (never followed); file bodies for regular files only.""",
             _READ_LAYER,
             ("`_tree(root)` (already in busybox.py) lists (name, path) pairs sorted by name.",
              "`tarfile.open(fileobj=..., mode=\"w|\", format=tarfile.PAX_FORMAT)` writes a stream; `tarfile.TarInfo(name)` is one header.",
              "Wrap `out` in `HashingWriter(out)` (part2_manual_oci.digest): it hashes and counts what passes through.",
              "`os.lstat`, `stat.S_ISDIR`/`S_ISLNK`/`S_ISREG`, `os.readlink`."),
             "your tar is read back with Python's tarfile: names, order, types, owners, modes, mtimes, link targets, contents; "
             "the same tree made in reverse order must give the same diff_id; the image made with it must pass validate_layout.",
             check_tar),
        Task(2, "gzip the tar: the digest", ("busybox.py:compress_layer",),
             """`compress_layer(tar, out, level=9)` gzips the stream `tar` into `out` and returns
`(digest, size)` of the compressed bytes. Like `gzip -n`: no file name and time stamp 0 in the
gzip header, so the same tar always gives the same digest.""",
             ("Concepts",),
             ("`gzip.GzipFile(filename=\"\", mode=\"wb\", fileobj=..., compresslevel=level, mtime=0)`.",
              "`shutil.copyfileobj` copies in chunks; hash on the way out with `HashingWriter`."),
             "the gzip header (no FNAME flag, mtime 0), the digest and size against the bytes written, decompression back to the tar, "
             "the same digest twice, and a valid image made with it.",
             check_gzip),
        Task(3, "the image config", ("busybox.py:busybox_config",),
             """`busybox_config(diff_id, created=..., busybox_version=..., plat=...)` returns the
`ImageConfig`: the platform of `plat`, `created`, a container config that runs `sh` with a
PATH in Env, `rootfs.diff_ids` with the one layer's diff_id, and one history entry for the layer.""",
             ("Concepts", "Run it"),
             ("Look at step 6 of the chapter's output: that is the JSON of the config you build.",
              "`ImageConfig`, `ContainerConfig` and `History` are in part2_manual_oci.models; `DEFAULT_PATH` is in busybox.py."),
             "the fields of your config (platform, created, Cmd, PATH, diff_ids, history), and a valid image made with it.",
             check_config),
        Task(4, "the manifest", ("busybox.py:busybox_manifest",),
             """`busybox_manifest(config, layer)` returns the `Manifest` that points at the config
descriptor and the one layer descriptor.""",
             ("Concepts",),
             ("Step 7 of the chapter's output shows the manifest's JSON.", "Descriptors are used as they are: the manifest copies them."),
             "the config and layer descriptors and the media type of your manifest, and a valid image made with it.",
             check_manifest),
        Task(5, "store a blob by its digest", ("layout.py:OCILayout.put_blob",),
             """`OCILayout.put_blob(src, media_type, expected_digest=None, annotations=None)` stores
bytes or a binary stream as `blobs/sha256/<hex>` and returns its `Descriptor`. A blob file must
be complete or absent: write it through `atomic_file` (a temporary file in `blobs/sha256`, written
while hashing, fsynced, then renamed to its digest). A stream is read in chunks, never whole. With `expected_digest`, a mismatch raises
`BlobCorrupt` and stores nothing. Storing bytes that are already there is fine.""",
             ("Concepts",),
             ("`with atomic_file(None, temp_dir=self.blobs_dir) as out:` writes to `out.file`; set `out.target` (the blob's "
              "path, once the digest is known) before the block ends, or `out.discard()` when it is stored already.",
              "`HashingWriter(f)` gives `.digest` and `.size` of what was written; `CHUNK` is a good read size.",
              "`atomic_file` removes the temporary file when anything goes wrong: raise inside the block."),
             "bytes and a 5 MiB stream that refuses to be read whole and checks that the final name appears only when the blob is complete; "
             "a wrong expected_digest (BlobCorrupt, nothing stored); no temporary files left; a valid image stored with it.",
             check_put_blob),
        Task(6, "name the image in index.json", ("layout.py:OCILayout.add_manifest",),
             """`OCILayout.add_manifest(descriptor, ref_name=None)` adds the manifest's descriptor to
index.json, with the annotation `org.opencontainers.image.ref.name` = `ref_name` when given,
and returns the descriptor as written. An entry with the same ref name is replaced (a tag
names one image); a manifest whose blob is not stored is refused with `BlobNotFound`
(index.json is written last and never names a missing blob). index.json is rewritten
atomically, under the layout's lock.""",
             ("Concepts", "Experiments"),
             ("`self.update_index(change)` calls `change(index)` under the layout's lock and writes what it returns atomically.",
              "`replace(descriptor, annotations=...)` and `replace(index, manifests=...)` (`from part1_overview import replace`) make changed copies.",
              "`mediatypes.ANNOTATION_REF_NAME` is the annotation's name."),
             "index.json after naming latest, adding v1, re-pointing latest, and a manifest whose blob is missing; no files left beside "
             "index.json; validate_layout on the result.",
             check_add_manifest),
    ),
    timeout=120,
)
