"""Compression: detection by magic bytes (also on tiny streams), decompression, layer_info."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import subprocess

import pytest
import zstandard
from support import tar_of

from part4_tar import LayerError, detect_compression, extract_layer, layer_info, open_decompressed, recompress_layer, write_layer


class Trickle(io.RawIOBase):
    """A pipe-like stream: no seek, no peek, one byte per read."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def readable(self):
        return True

    def readinto(self, b):
        if not self._data or not len(b):
            return 0
        b[0] = self._data[0]
        self._data = self._data[1:]
        return 1


@pytest.mark.parametrize("head, expected", [
    (b"\x1f\x8b\x08\x00", "gzip"),
    (b"\x28\xb5\x2f\xfd\x04", "zstd"),
    (b"BZh91AY", "bzip2"),
    (b"\xfd7zXZ\x00\x00", "xz"),
    (b"etc/\x00\x00", "none"),
    (b"", "none"),
    (b"\x1f", "none"),
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f", "none"),
    (b"\xfd7zXZ", "none"),
])
def test_detect_compression_by_magic_bytes(head, expected):
    assert detect_compression(head) == expected


@pytest.mark.parametrize("data", [b"", b"a", b"\x1f", b"ab\n", b"123456789"])
def test_streams_shorter_than_ten_bytes_read_back_unchanged(data):
    assert open_decompressed(io.BytesIO(data)).read() == data
    assert open_decompressed(Trickle(data)).read() == data


@pytest.mark.parametrize("compress", [gzip.compress, zstandard.compress, bz2.compress, lzma.compress],
                         ids=["gzip", "zstd", "bzip2", "xz"])
@pytest.mark.parametrize("data", [b"", b"tiny", b"x" * 100_000])
def test_open_decompressed_reads_every_compression_even_from_a_trickle(compress, data):
    blob = compress(data)
    assert open_decompressed(io.BytesIO(blob)).read() == data
    assert open_decompressed(Trickle(blob)).read() == data


def test_multi_member_gzip_is_read_whole():
    blob = gzip.compress(b"first ") + gzip.compress(b"second")
    assert open_decompressed(io.BytesIO(blob)).read() == b"first second"


@pytest.fixture
def src(tmp_path):
    d = tmp_path / "src"
    (d / "etc").mkdir(parents=True)
    (d / "etc/hostname").write_text("layer\n")
    (d / "big").write_bytes(b"0123456789abcdef" * 50_000)
    return d


@pytest.mark.parametrize("compression, tool", [("gzip", ["gzip", "-dc"]), ("zstd", ["zstd", "-dc"]), ("none", ["cat"])])
def test_layer_info_of_blobs_matches_standard_tools(src, tmp_path, compression, tool):
    blob = tmp_path / f"layer.{compression}"
    with open(blob, "wb") as f:
        written = write_layer(src, f, compression)
    with open(blob, "rb") as f:
        info = layer_info(f)
    assert info == written
    assert info.digest == "sha256:" + subprocess.run(["sha256sum", str(blob)], capture_output=True, text=True, check=True).stdout.split()[0]
    tar = subprocess.run(tool + [str(blob)], capture_output=True, check=True).stdout
    assert info.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert info.size == blob.stat().st_size
    # what the standard tools compress is read too
    dst = tmp_path / "out"
    with open(blob, "rb") as f:
        extract_layer(f, dst)
    assert (dst / "etc/hostname").read_text() == "layer\n"


def test_layer_info_reads_through_a_trickle_and_counts_every_byte(src):
    out = io.BytesIO()
    written = write_layer(src, out, "gzip")
    assert layer_info(Trickle(out.getvalue())) == written


def test_layer_info_refuses_a_media_type_that_contradicts_the_bytes(src):
    out = io.BytesIO()
    write_layer(src, out, "zstd")
    with pytest.raises(LayerError, match="says gzip, but the blob's bytes are zstd"):
        layer_info(io.BytesIO(out.getvalue()), "application/vnd.oci.image.layer.v1.tar+gzip")


def test_layer_info_accepts_docker_media_types(src):
    out = io.BytesIO()
    written = write_layer(src, out, "gzip")
    docker = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    info = layer_info(io.BytesIO(out.getvalue()), docker)
    assert (info.media_type, info.diff_id) == (docker, written.diff_id)


def test_corrupt_gzip_layer_is_a_clear_error(src):
    out = io.BytesIO()
    write_layer(src, out, "gzip")
    data = bytearray(out.getvalue())
    data[40:60] = b"\xff" * 20
    with pytest.raises(LayerError, match="corrupt"):
        layer_info(io.BytesIO(bytes(data)))


@pytest.mark.parametrize("compress", [bz2.compress, lzma.compress], ids=["bzip2", "xz"])
def test_legacy_bzip2_and_xz_layers_extract(tmp_path, compress):
    extract_layer(io.BytesIO(compress(tar_of(b"hello\n", "hello.txt"))), tmp_path / "root")
    assert (tmp_path / "root/hello.txt").read_bytes() == b"hello\n"


def test_unknown_compression_is_refused(src):
    with pytest.raises(LayerError, match="unknown layer compression 'lz4'"):
        write_layer(src, io.BytesIO(), "lz4")


@pytest.mark.parametrize("cut", [1, 5, "half"])
def test_truncated_zstd_layer_is_an_error_not_a_shorter_layer(tmp_path, cut):
    """zstandard's stream reader ends quietly inside a cut-off frame; we do not."""
    tar = tar_of(bytes(range(256)) * 4000 + hashlib.sha256(b"seed").digest() * 4000)
    blob = zstandard.ZstdCompressor().compress(tar)
    short = blob[: len(blob) // 2] if cut == "half" else blob[:-cut]
    with pytest.raises(LayerError, match="truncated zstd stream: it ends inside a frame"):
        layer_info(io.BytesIO(short))
    with pytest.raises(LayerError, match="truncated zstd stream"):
        extract_layer(io.BytesIO(short), tmp_path / "root")
    with pytest.raises(LayerError, match="truncated zstd stream"):
        open_decompressed(Trickle(short)).read()


def test_zstd_stream_of_several_frames_and_skippable_frames_reads_whole():
    tar = tar_of(b"frames " * 30_000)
    skippable = (0x184D2A53).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"skip!"
    checked = zstandard.ZstdCompressor(write_checksum=True)
    # (detection looks for the frame magic first: the stream starts with a real frame)
    blob = checked.compress(tar[:7000]) + skippable + zstandard.compress(tar[7000:20000]) + skippable + checked.compress(tar[20000:])
    assert open_decompressed(io.BytesIO(blob)).read() == tar
    assert layer_info(io.BytesIO(blob)).diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()


@pytest.mark.parametrize("compress, name", [(gzip.compress, "gzip"), (bz2.compress, "bzip2"), (lzma.compress, "xz"),
                                            (zstandard.ZstdCompressor(write_checksum=True).compress, "zstd")])
def test_corrupt_compressed_layers_of_every_kind_are_a_layer_error(tmp_path, compress, name):
    blob = bytearray(compress(tar_of(hashlib.sha256(b"x").digest() * 20_000)))
    mid = len(blob) // 2
    blob[mid:mid + 8] = bytes(b ^ 0xA5 for b in blob[mid:mid + 8])
    with pytest.raises(LayerError, match=f"corrupt {name} stream|not a valid tar stream"):
        extract_layer(io.BytesIO(bytes(blob)), tmp_path / "root")


def test_gzip_falls_back_to_zlib_when_isal_is_missing(src, tmp_path):
    """Without ISA-L the stdlib's zlib packs and reads gzip: a valid blob, the same tar (so the
    same diff_id), and it reads ISA-L's blobs too."""
    with_isal = tmp_path / "isal.tar.gz"
    with open(with_isal, "wb") as f:
        expected = write_layer(src, f, "gzip", source_date_epoch=0)
    code = (
        "import sys, json\n"
        "sys.modules['isal'] = sys.modules['isal.isal_zlib'] = sys.modules['isal.igzip'] = None  # not installed\n"
        "from part4_tar import write_layer, layer_info, extract_layer\n"
        "from part4_tar.compression import gzip_backend\n"
        "with open(sys.argv[2], 'wb') as f:\n"
        "    info = write_layer(sys.argv[1], f, 'gzip', source_date_epoch=0)\n"
        "again = layer_info(open(sys.argv[3], 'rb'))\n"
        "extract_layer(open(sys.argv[3], 'rb'), sys.argv[4])\n"
        "print(json.dumps([gzip_backend(), info.digest, info.diff_id, again.diff_id]))\n"
    )
    import json
    import sys

    zlib_blob = tmp_path / "zlib.tar.gz"
    proc = subprocess.run([sys.executable, "-c", code, str(src), str(zlib_blob), str(with_isal), str(tmp_path / "root")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    backend, digest, diff_id, isal_diff_id = json.loads(proc.stdout)
    assert backend == "zlib"
    assert digest == "sha256:" + hashlib.sha256(zlib_blob.read_bytes()).hexdigest()
    assert diff_id == isal_diff_id == expected.diff_id
    subprocess.run(["gzip", "-t", str(zlib_blob)], check=True)
    assert (tmp_path / "root/etc/hostname").read_text() == "layer\n"


@pytest.mark.parametrize("source", ["gzip", "zstd", "none"])
@pytest.mark.parametrize("target", ["gzip", "zstd", "none"])
def test_recompress_layer_keeps_the_diff_id(tmp_path, source, target):
    """A layer in another compression is the same uncompressed tar: same diff_id, new digest,
    and layer_info of the result agrees with what recompress_layer reported."""
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_bytes(b"payload " * 10000)
    blob = io.BytesIO()
    original = write_layer(root, blob, source)
    out = io.BytesIO()
    info = recompress_layer(io.BytesIO(blob.getvalue()), out, target)
    assert info.diff_id == original.diff_id and info.compression == target
    data = out.getvalue()
    assert info.digest == "sha256:" + hashlib.sha256(data).hexdigest() and info.size == len(data)
    assert detect_compression(data[:8]) == target
    again = layer_info(io.BytesIO(data))
    assert (again.digest, again.diff_id, again.media_type) == (info.digest, info.diff_id, info.media_type)


def test_recompress_layer_refuses_a_corrupt_blob():
    broken = gzip.compress(b"x" * 4096)[:-12] + b"garbage!!!!!"
    with pytest.raises(LayerError, match="corrupt"):
        recompress_layer(io.BytesIO(broken), io.BytesIO(), "zstd")
    with pytest.raises(LayerError, match="unknown layer compression"):
        recompress_layer(io.BytesIO(gzip.compress(b"")), io.BytesIO(), "brotli")


# -- compression on every core ------------------------------------------------------------------


def _blocks_of_mixed_data(n: int) -> bytes:
    """n MiB, half random, half repetitive: what layers hold."""
    import random

    r = random.Random(n)
    return b"".join(r.randbytes(1 << 19) + bytes([i]) * (1 << 19) for i in range(n))


@pytest.mark.parametrize("backend", ["isal", "zlib"])
def test_parallel_gzip_is_one_member_with_the_same_bytes_on_any_number_of_threads(backend, monkeypatch):
    """Blocks compressed on 1, 2 or 5 threads give the same bytes: one gzip member (no second
    header, nothing after its trailer) that gzip and zlib read back, whose blocks were
    compressed by worker threads when there are several."""
    import threading
    import zlib

    from part4_tar import pgzip

    if backend == "zlib":
        monkeypatch.setattr(pgzip, "_backend", lambda: (zlib.compressobj, zlib.crc32, None, zlib.Z_SYNC_FLUSH,
                                                        zlib.Z_FINISH, 9, zlib.DEFLATED))
    data = _blocks_of_mixed_data(6) + b"tail"  # six full blocks and a short last one
    seen: set[str] = set()
    outs = []
    for threads in (1, 2, 5):
        g = pgzip.ParallelGzip(1, threads)
        out = b"".join(g.compress(data[i:i + 300_000]) for i in range(0, len(data), 300_000))
        seen |= {t.name for t in threading.enumerate() if t.name.startswith("gzip-")}
        outs.append(out + g.flush())
    assert outs[0] == outs[1] == outs[2]
    assert {"gzip-0", "gzip-1"} <= seen  # the blocks were compressed by worker threads
    assert not [t for t in threading.enumerate() if t.name.startswith("gzip-")]  # and they ended
    reader = zlib.decompressobj(31)
    assert reader.decompress(outs[0]) == data and reader.eof and reader.unused_data == b""
    assert gzip.decompress(outs[0]) == data
    assert subprocess.run(["gzip", "-dc"], input=outs[0], capture_output=True, check=True).stdout == data


def test_parallel_gzip_of_nothing_and_of_less_than_a_block():
    from part4_tar.pgzip import ParallelGzip

    for data in (b"", b"x", b"y" * 1000):
        g = ParallelGzip(1, 4)
        blob = g.compress(data) + g.flush()
        assert gzip.decompress(blob) == data
        assert subprocess.run(["gzip", "-t"], input=blob).returncode == 0


def test_zstd_layers_are_the_same_on_any_number_of_threads():
    from part4_tar.compression import make_compressor

    data = _blocks_of_mixed_data(6)
    outs = []
    for threads in (1, 2, 3):
        c = make_compressor("zstd", threads=threads)
        outs.append(b"".join(c.compress(data[i:i + 1_000_000]) for i in range(0, len(data), 1_000_000)) + c.flush())
    assert outs[0] == outs[1] == outs[2]
    assert zstandard.ZstdDecompressor().decompressobj().decompress(outs[0]) == data


def _slow_gzip(monkeypatch, delay: float = 0.004) -> None:
    """pgzip's blocks each take ``delay`` seconds more: compression far slower than reading the
    file, which is when read blocks would pile up if nothing held the reader back."""
    import time

    from part4_tar import pgzip

    real = pgzip._backend()

    def slow_compressobj(*args):
        time.sleep(delay)
        return real[0](*args)

    monkeypatch.setattr(pgzip, "_backend", lambda: (slow_compressobj, *real[1:]))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_parallel_gzip_keeps_at_most_a_few_blocks_in_flight(monkeypatch, threads):
    """However far compression lags behind the caller, ``compress`` returns with at most
    AHEAD blocks per thread in flight and one being filled: it waits for the oldest block
    instead of taking more input (a backlog that grew with the layer's size once held 275 MiB
    of a 4 GiB file)."""
    from part4_tar import pgzip

    _slow_gzip(monkeypatch, 0.005)
    data = _blocks_of_mixed_data(16)
    limit = pgzip.AHEAD * threads + 1
    g = pgzip.ParallelGzip(1, threads)
    out = []
    for i in range(0, len(data), 4 << 20):
        out.append(g.compress(data[i:i + (4 << 20)]))
        assert len(g._jobs) <= limit
    blob = b"".join(out) + g.flush()
    assert g.buffers.made <= limit
    assert gzip.decompress(blob) == data


def test_a_layer_takes_the_same_memory_whatever_the_size_of_its_file(tmp_path, monkeypatch):
    """The tar bytes go round a fixed set of buffers (the pipeline's, then pgzip's blocks and
    what each compresses to), so packing a file of 12 or 48 MiB stays within the same budget
    (Python's own allocations, traced), even when compression lags far behind reading."""
    import os
    import random
    import tracemalloc

    from part4_tar import LayerWriter, pgzip
    from part4_tar.pipeline import BUFFER, QUEUE_DEPTH

    _slow_gzip(monkeypatch)
    rng = random.Random(7)
    blocks = pgzip.AHEAD * (os.cpu_count() or 1) + 1
    budget = (QUEUE_DEPTH + 2) * BUFFER + 3 * blocks * pgzip.BLOCK + (8 << 20)  # blocks in, out, joined; slack
    for mib in (12, 48):
        root = tmp_path / f"tree{mib}"
        root.mkdir()
        with open(root / "big", "wb") as f:
            for _ in range(mib):
                f.write(rng.randbytes(1 << 20))  # incompressible: every block is a full block out
        tracemalloc.start()
        try:
            with open(os.devnull, "wb") as out, LayerWriter(out, "gzip") as w:
                w.add_tree(root)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < budget, (mib, peak, budget)
@pytest.mark.parametrize("threads", [1, 2, 4])
def test_the_pipeline_and_its_gzip_reuse_a_bounded_set_of_buffers(monkeypatch, threads):
    """Whatever the layer's size and however slow its compression, the pipeline makes at most
    QUEUE_DEPTH + 2 buffers and pgzip at most AHEAD blocks per thread and one being filled,
    and the blob is the same as one made on one thread."""
    from part4_tar import pgzip
    from part4_tar.pipeline import BUFFER, QUEUE_DEPTH, BlobPipeline

    _slow_gzip(monkeypatch, 0.001)
    data = _blocks_of_mixed_data(24)
    blobs = []
    for use_threads in (False, True):
        out = io.BytesIO()
        pipe = BlobPipeline(out, "gzip", threads=use_threads)
        if use_threads:
            pipe._compressor = pgzip.ParallelGzip(1, threads)
        for i in range(0, len(data), 300_000):
            pipe.write(data[i:i + 300_000])  # pieces that straddle the buffers
        blobs.append((pipe.finish(), out.getvalue()))
        assert pipe.buffers.made <= QUEUE_DEPTH + 2 and pipe.buffers.size == BUFFER
        assert pipe._compressor.buffers.made <= pgzip.AHEAD * pipe._compressor._threads + 1
    assert blobs[0] == blobs[1]
    assert gzip.decompress(blobs[1][1]) == data
