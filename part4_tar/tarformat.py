"""Tar headers, written by hand: ustar blocks, and PAX extended headers where ustar falls short.

A tar stream is a sequence of 512-byte blocks: a header block per entry, the entry's data padded
to a whole block, and two zero blocks at the end. The ustar header has fixed-width fields (a name
of 100 bytes, sizes in 11 octal digits, so at most 8 GiB - 1); POSIX.1-2001 (PAX) adds an
extended header entry (type ``x``) before the entry, holding ``length key=value\\n`` records
that override those fields: ``path``, ``linkpath``, ``size``, ``uid``, ``gid``, ``mtime``, and
``SCHILY.xattr.NAME`` for extended attributes (the key GNU tar, Go and BuildKit use).

Only what decides the layer's bytes is written: no user or group names, no atime or ctime, so
the same tree gives the same stream on every machine.
"""

from __future__ import annotations

BLOCK = 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)

REGTYPE = b"0"
LNKTYPE = b"1"
SYMTYPE = b"2"
CHRTYPE = b"3"
BLKTYPE = b"4"
DIRTYPE = b"5"
FIFOTYPE = b"6"
PAXTYPE = b"x"

#: the name of PAX extended header entries (the one Python's tarfile writes too)
PAX_NAME = b"././@PaxHeader"
XATTR_PREFIX = "SCHILY.xattr."

_MAX_OCTAL = {8: 0o7777777, 12: 0o77777777777}


def padding(size: int) -> bytes:
    """The zero bytes that pad ``size`` bytes of data to a whole block."""
    return b"\0" * (-size % BLOCK)


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _base256(value: int, width: int) -> bytes:
    # GNU's encoding for numbers too large for octal: high bit set, big-endian binary
    return bytes([0x80]) + value.to_bytes(width - 1, "big")


def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(b"%d" % n) + len(body) != n:
        n = len(b"%d" % n) + len(body)
    return b"%d" % n + body


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _ustar(name: bytes, typeflag: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
           linkname: bytes, devmajor: int, devminor: int) -> bytes:
    dev = [_octal(v, 8) if v <= _MAX_OCTAL[8] else _base256(v, 8) for v in (devmajor, devminor)]
    fields = [
        name[:100].ljust(100, b"\0"),
        _octal(mode & 0o7777, 8),
        _octal(uid, 8),
        _octal(gid, 8),
        _octal(size, 12),
        _octal(mtime, 12),
        b" " * 8,  # checksum, computed over the block with these 8 spaces
        typeflag,
        linkname[:100].ljust(100, b"\0"),
        b"ustar\x0000",
        b"\0" * 32,  # uname: left empty, the numeric ids are what counts
        b"\0" * 32,  # gname
        dev[0],
        dev[1],
        b"\0" * 155,  # prefix: unused, long names go in a PAX record
    ]
    block = bytearray(b"".join(fields).ljust(BLOCK, b"\0"))
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def header(name: bytes, typeflag: bytes, *, mode: int = 0o644, uid: int = 0, gid: int = 0,
           size: int = 0, mtime: int = 0, linkname: bytes = b"", devmajor: int = 0,
           devminor: int = 0, xattrs: dict[str, bytes] | None = None) -> bytes:
    """The header block(s) of one entry: a PAX extended header first when one is needed.

    ``name`` and ``linkname`` are raw bytes (file names need not be UTF-8). ``mtime`` is whole
    seconds.
    """
    pax: list[tuple[bytes, bytes]] = []
    binary = False
    for key, value, limit in ((b"path", name, 100), (b"linkpath", linkname, 100)):
        if len(value) > limit or not value.isascii():
            pax.append((key, value))
            binary = binary or not _is_utf8(value)
    if size > _MAX_OCTAL[12]:
        pax.append((b"size", b"%d" % size))
        size = 0
    for key, value in ((b"uid", uid), (b"gid", gid)):
        if value > _MAX_OCTAL[8] or value < 0:
            pax.append((key, b"%d" % value))
    if uid > _MAX_OCTAL[8] or uid < 0:
        uid = 0
    if gid > _MAX_OCTAL[8] or gid < 0:
        gid = 0
    if mtime > _MAX_OCTAL[12] or mtime < 0:
        pax.append((b"mtime", b"%d" % mtime))
        mtime = 0
    for key in sorted(xattrs or ()):
        pax.append(((XATTR_PREFIX + key).encode("utf-8", "surrogateescape"), xattrs[key]))
    out = b""
    if pax:
        if binary:
            # names that are not UTF-8 are kept as raw bytes, and the header says so
            pax.insert(0, (b"hdrcharset", b"BINARY"))
        records = b"".join(_pax_record(k, v) for k, v in pax)
        out = _ustar(PAX_NAME, PAXTYPE, 0o644, 0, 0, len(records), 0, b"", 0, 0) + records + padding(len(records))
    return out + _ustar(name, typeflag, mode, uid, gid, size, mtime, linkname, devmajor, devminor)
