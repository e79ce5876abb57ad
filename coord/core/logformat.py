"""Txn log records: [length u32][crc32 u32][zxid i64][TxnHeader][txn], checksummed end to end.

Pure bytes in, records out; the shell does the files. A reader stops at the first record that is
short, has a bad length, or fails its checksum: everything before it is the durable prefix and the
rest is a torn tail to truncate (never skipped over: a hole in a log is data loss).
"""
from __future__ import annotations

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


def encode_record(hdr: R.TxnHeader, txn) -> bytes:
    body = bytearray(_ZXID.pack(hdr.zxid))
    hdr._write_into(body, hdr)
    if txn is not None:
        txn._write_into(body, txn)
    return struct.pack(">II", len(body), zlib.crc32(body)) + bytes(body)


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
