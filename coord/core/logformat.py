"""Txn log records: [length u32][crc32 u32][zxid i64][TxnHeader][txn], checksummed end to end.

Pure bytes in, records out; the shell does the files (and the simulator its simulated disk). A
reader stops at the first record that is short, has a bad length, or fails its checksum: everything
before it is the durable prefix. What follows decides what it is (`scan`): only zero bytes up to
the end of the file are the unused part of a preallocated file, the normal end of a log; otherwise,
if no intact record with a higher zxid follows, it is a torn tail (a write cut short by a crash) and
is truncated; if one does, the log has a hole in its middle, and acknowledged txns would be lost by
truncating, so recovery refuses instead. A log is never skipped over.

A file is named log.<first zxid in hex>; its 16-byte header is magic "CDLG", version, dbid.
"""
from __future__ import annotations

import re
import struct
import zlib

from coord.core.datatree import decode_txn
from coord.jute import records as R
from coord.jute.codec import JuteError, decode

FILE_MAGIC = b"CDLG"
FILE_VERSION = 1
_FILE_HDR = struct.Struct(">4sIq")   # magic, version, dbid
_REC_HDR = struct.Struct(">IIq")     # length of (zxid+body), crc32 of (zxid+body), zxid
_ZXID = struct.Struct(">q")
MAX_RECORD = 64 * 1024 * 1024
FILE_HEADER_SIZE = _FILE_HDR.size


def file_header(dbid: int = 0) -> bytes:
    return _FILE_HDR.pack(FILE_MAGIC, FILE_VERSION, dbid)


def check_file_header(data: bytes) -> None:
    if len(data) < _FILE_HDR.size:
        raise ValueError("log file shorter than its header")
    magic, version, _ = _FILE_HDR.unpack_from(data, 0)
    if magic != FILE_MAGIC:
        raise ValueError(f"not a coord txn log (magic {magic!r})")
    if version != FILE_VERSION:
        raise ValueError(f"unsupported txn log version {version}")


_REC_HEAD = struct.Struct(">qqiqqi")  # zxid, then TxnHeader: clientId, cxid, zxid, time, type
_LEN_CRC = struct.Struct(">II")


def encode_record(hdr: R.TxnHeader, txn) -> bytes:
    zxid = hdr.zxid
    head = _REC_HEAD.pack(zxid, hdr.clientId, hdr.cxid, zxid, hdr.time, hdr.type)
    if txn is None:
        body = head
    else:
        body = bytearray(head)
        txn._write_into(body, txn)
    return _LEN_CRC.pack(len(body), zlib.crc32(body)) + body


def encode_blob(zxid: int, blob) -> bytes:
    """encode_record for a txn whose TxnHeader + txn are already encoded (a Zab entry's blob)."""
    body = _ZXID.pack(zxid) + blob
    return _LEN_CRC.pack(len(body), zlib.crc32(body)) + body


def iter_records(data, pos: int = FILE_HEADER_SIZE):
    """Yield (hdr, txn, end_pos) for each intact record from pos; stop at the first damaged one."""
    n = len(data)
    while pos + 8 <= n:
        length, crc = struct.unpack_from(">II", data, pos)
        if length < 8 + 36 or length > MAX_RECORD or pos + 8 + length > n:
            return
        body = data[pos + 8:pos + 8 + length]
        if zlib.crc32(body) != crc:
            return
        try:
            hdr, p = decode(R.TxnHeader, body, 8)
            txn = decode_txn(hdr.type, bytes(body[p:]))
        except (JuteError, ValueError):
            return
        if _ZXID.unpack_from(body, 0)[0] != hdr.zxid:
            return
        pos += 8 + length
        yield hdr, txn, pos


# A record candidate: a length below 16 MiB and not zero, then the crc, then a non-zero zxid that
# the TxnHeader (clientId i64, cxid i32, zxid i64) repeats 20 bytes later.
_CANDIDATE = re.compile(rb"(?s)(?=\x00(?!\x00\x00\x00).{7}(?!\x00{8})(.{8}).{12}\1)")


def find_intact_after(data, pos: int, after_zxid: int, endpos: int | None = None):
    """(offset, zxid) of the first intact record starting in (pos, endpos) with zxid > after_zxid."""
    for m in _CANDIDATE.finditer(data, pos + 1, len(data) if endpos is None else endpos):
        off = m.start()
        for hdr, _txn, _end in iter_records(data, off):
            if hdr.zxid > after_zxid:
                return off, hdr.zxid
            break
    return None


class LogScan:
    """What one log file holds: its intact records, where they end, and what follows them."""

    __slots__ = ("records", "end", "size", "first_zxid", "last_zxid", "hole", "content_end")

    def __init__(self, records, end, size, hole, content_end=None):
        self.records = records            # [(TxnHeader, txn, end offset)]
        self.end = end                    # offset just past the last intact record
        self.size = size
        self.first_zxid = records[0][0].zxid if records else None
        self.last_zxid = records[-1][0].zxid if records else None
        self.hole = hole                  # None, or (offset, zxid) of an intact record past damage
        # past the last non-zero byte after end: end itself when only preallocated zeros follow
        self.content_end = size if content_end is None else content_end

    @property
    def damaged(self) -> bool:
        """Bytes other than preallocated zeros follow the intact records."""
        return self.content_end > self.end

    @property
    def padding(self) -> int:
        """Zero bytes after the intact records: the unused preallocated part of the file."""
        return self.size - self.end if not self.damaged else 0


def scan(data) -> LogScan:
    """Check the header (ValueError if bad) and read every intact record of one log file."""
    check_file_header(data)
    records = list(iter_records(data))
    end = records[-1][2] if records else FILE_HEADER_SIZE
    hole = None
    content_end = end
    if end < len(data):
        content_end = max(end, len(bytes(data[end:]).rstrip(b"\0")) + end)
        if content_end > end:  # not just preallocated zeros: look for intact records past the damage
            last = records[-1][0].zxid if records else -1
            hole = find_intact_after(data, end, last, min(len(data), content_end + 32))
    return LogScan(records, end, len(data), hole, content_end)


def zxid_follows(prev: int, zxid: int) -> bool:
    """True if zxid may directly follow prev: the next counter, or counter 1 of a later epoch."""
    return zxid == prev + 1 or ((zxid >> 32) > (prev >> 32) and zxid & 0xFFFFFFFF == 1)


def log_name(first_zxid: int) -> str:
    return f"log.{first_zxid:x}"


def zxid_of_name(name: str, prefix: str) -> int | None:
    """The hex zxid of `prefix.<hex>[.suffix]` names (ZooKeeper's Util.getZxidFromName), else None."""
    parts = name.split(".")
    if len(parts) < 2 or parts[0] != prefix:
        return None
    try:
        return int(parts[1], 16)
    except ValueError:
        return None
