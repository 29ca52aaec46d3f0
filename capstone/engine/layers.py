"""Writing a new layer straight into the store's blob directory.

A layer is produced in one streaming pass (part 4: tar -> sha256 for the diff_id -> compressor
-> sha256 and size for the digest -> file) into a temp file on the store's file system (the
build's leased scratch directory, so a killed build's half-written layer goes with it), then
renamed into ``blobs/sha256`` under its digest. The store's ``commit`` finds the blob
already there and neither copies nor hashes it again: a 512 MiB layer is read once, written
once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from part3_go_style_builder import Layer

if TYPE_CHECKING:  # part 4 is imported when a layer is written (never on a cache hit)
    from part4_tar import LayerInfo, LayerWriter

    from ..store import BuildStore



def write_blob(store: BuildStore, produce: Callable[[BinaryIO], LayerInfo], *, tmp_dir=None) -> Layer:
    """Run ``produce(file)`` (it writes a layer and returns its LayerInfo) into the store's
    blob directory; the :class:`Layer` it made, stored under its digest. ``tmp_dir``: where the
    temp file is written (on the store's file system; default: the blob directory)."""
    return store.write_layer(produce, tmp_dir=tmp_dir)


def write_entries_layer(store: BuildStore, fill: Callable[[LayerWriter], None], *, compression: str = "gzip",
                        source_date_epoch: int | None = None, tmp_dir=None,
                        meter: Callable[[int], None] | None = None) -> Layer:
    """A layer whose entries ``fill(writer)`` adds with part 4's ``LayerWriter``; ``meter``
    hears the file content as it goes in (a large COPY's progress)."""

    from part4_tar import LayerWriter

    def produce(f: BinaryIO) -> LayerInfo:
        with LayerWriter(f, compression, source_date_epoch=source_date_epoch, meter=meter) as w:
            fill(w)
        return w.close()

    return write_blob(store, produce, tmp_dir=tmp_dir)


__all__ = ["write_blob", "write_entries_layer"]
