"""ZooKeeper 3.x on-disk formats, read-only (written from the format, not from ZooKeeper's code).

Snapshot (snapshot.<zxid hex>[.gz|.snappy], compression per snapshot.compression.method): a stream
whose uncompressed bytes are jute: FileHeader(magic "ZKSN", version 2, dbid); the sessions as
count + (id long, timeout int); the ACL cache as count + (id long, vector<ACL>); then nodes as
(path ustring, data buffer, acl id long, StatPersisted) in depth-first order, root as "" and "/" ending
the list; then the seal: an Adler32 of every byte before it (long) and "/". Since 3.6 a ZxidDigest
(zxid long, digest version int, digest long) and a second seal may follow. The zxid in the name is the
last one applied when the snapshot began: snapshots are fuzzy, and replaying the log from there
repairs them.

Txn log (log.<first zxid hex>): FileHeader(magic "ZKLG", version 2, dbid), then entries of
(Adler32 long, buffer of TxnHeader + txn [+ TxnDigest], byte 0x42), zero-padded after the last;
a zero length ends the log and a short or mis-checksummed entry is a torn tail.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

from coord.core.zkpeer.txnentry import TxnEntryError, decode_txn_entry
from coord.jute.codec import JuteError

SNAP_MAGIC = b"ZKSN"
LOG_MAGIC = b"ZKLG"
_I = struct.Struct(">i")
_Q = struct.Struct(">q")
_STAT = struct.Struct(">qqqqiiiqq")


class ZkFormatError(ValueError):
    pass


def zxid_from_name(name: str, prefix: str) -> int | None:
    parts = name.split(".")
    if len(parts) < 2 or parts[0] != prefix:
        return None
    try:
        return int(parts[1], 16)
    except ValueError:
        return None


def list_files(d: Path, prefix: str) -> list[tuple[int, Path]]:
    out = []
    for name in os.listdir(d):
        z = zxid_from_name(name, prefix)
        if z is not None:
            out.append((z, Path(d) / name))
    out.sort()
    return out


def _stream_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ZkFormatError(f"{path}: gzip stream broken: {e}") from None
    if path.name.endswith(".snappy"):
        return _snappy_stream(path, raw)
    return raw


_SNAPPY_MAGIC = b"\x82SNAPPY\x00"


def _snappy_stream(path: Path, raw: bytes) -> bytes:
    """snappy-java's SnappyOutputStream (ZooKeeper's snappy method): the magic, two version ints,
    then blocks of (length int, raw snappy block)."""
    try:
        from cramjam import DecompressionError, snappy
    except ImportError:
        raise ZkFormatError(f"{path}: reading snappy-compressed ZooKeeper snapshots needs the cramjam "
                            "package (pip install cramjam), or set snapshot.compression.method to gz "
                            "or none in ZooKeeper and let it write a new snapshot") from None
    if not raw.startswith(_SNAPPY_MAGIC) or len(raw) < 16:
        raise ZkFormatError(f"{path}: not a snappy-java stream (no SNAPPY header)")
    out = []
    p = 16
    n = len(raw)
    try:
        while p < n:
            (ln,) = struct.unpack_from(">i", raw, p)
            if ln <= 0 or p + 4 + ln > n:
                raise ZkFormatError(f"{path}: snappy stream broken at offset {p} (block length {ln})")
            out.append(bytes(snappy.decompress_raw(raw[p + 4:p + 4 + ln])))
            p += 4 + ln
    except DecompressionError as e:
        raise ZkFormatError(f"{path}: snappy block at offset {p} does not decompress: {e}") from None
    return b"".join(out)


class Reader:
    __slots__ = ("b", "p", "name")

    def __init__(self, b: bytes, name: str):
        self.b = b
        self.p = 0
        self.name = name

    def need(self, n: int) -> None:
        if self.p + n > len(self.b):
            raise ZkFormatError(f"{self.name}: truncated at offset {self.p}")

    def int(self) -> int:
        self.need(4)
        v = _I.unpack_from(self.b, self.p)[0]
        self.p += 4
        return v

    def long(self) -> int:
        self.need(8)
        v = _Q.unpack_from(self.b, self.p)[0]
        self.p += 8
        return v

    def buffer(self):
        n = self.int()
        if n < 0:
            return None
        self.need(n)
        v = self.b[self.p:self.p + n]
        self.p += n
        return v

    def string(self):
        v = self.buffer()
        if v is None:
            return None
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            raise ZkFormatError(f"{self.name}: string at offset {self.p} is not UTF-8") from None


class ZkSnapshot:
    def __init__(self, path, zxid, sessions, acls, nodes, digest):
        self.path = path
        self.zxid = zxid            # from the name: the last txn applied when it began
        self.sessions = sessions    # {id: timeout}
        self.acls = acls            # {acl id: [(perms, scheme, id)]}
        self.nodes = nodes          # [(path, data, acl id, (czxid, mzxid, ctime, mtime, version,
                                    #   cversion, aversion, ephemeralOwner, pzxid))], parents first
        self.digest = digest        # (zxid, digest version, digest) or None


def read_snapshot(path: Path) -> ZkSnapshot:
    """Parse and verify one ZooKeeper snapshot file completely (ZkFormatError if damaged)."""
    path = Path(path)
    zxid = zxid_from_name(path.name, "snapshot")
    if zxid is None:
        raise ZkFormatError(f"{path}: not named snapshot.<zxid>")
    b = _stream_bytes(path)
    r = Reader(b, str(path))
    r.need(16)
    if b[:4] != SNAP_MAGIC:
        raise ZkFormatError(f"{path}: not a ZooKeeper snapshot (magic {b[:4]!r})")
    r.p = 4
    version = r.int()
    r.long()  # dbid
    if version != 2:
        raise ZkFormatError(f"{path}: unsupported snapshot version {version}")
    sessions = {}
    for _ in range(r.int()):
        sid = r.long()
        sessions[sid] = r.int()
    acls = {}
    n = r.int()
    for _ in range(n):
        key = r.long()
        count = r.int()
        entries = []
        for _ in range(max(count, 0)):
            perms = r.int()
            entries.append((perms, r.string(), r.string()))
        acls[key] = entries
    nodes = []
    append = nodes.append
    unpack = _STAT.unpack_from
    while True:
        p = r.string()
        if p == "/":
            break
        if p is None:
            raise ZkFormatError(f"{path}: null path at offset {r.p}")
        data = r.buffer()
        acl = r.long()
        r.need(_STAT.size)
        st = unpack(b, r.p)
        r.p += _STAT.size
        append((p or "/", data, acl, st))
    _check_seal(r, b, path)
    digest = None
    if r.p < len(b):
        dz = r.long()
        dv = r.int()
        if dv < 2:
            s = r.string()
            dval = int(s, 16) if s else 0
        else:
            dval = r.long()
        _check_seal(r, b, path)
        digest = (dz, dv, dval)
    if r.p != len(b):
        raise ZkFormatError(f"{path}: {len(b) - r.p} unexpected bytes after the seal")
    return ZkSnapshot(path, zxid, sessions, acls, nodes, digest)


def _check_seal(r: Reader, b: bytes, path) -> None:
    expect = zlib.adler32(b[:r.p])
    got = r.long()
    slash = r.string()
    if got != expect or slash != "/":
        raise ZkFormatError(f"{path}: checksum mismatch (Adler32 0x{expect:x}, sealed 0x{got & 0xFFFFFFFFFFFFFFFF:x})")


class ZkLogEntry:
    __slots__ = ("hdr", "txn", "digest")

    def __init__(self, hdr, txn, digest):
        self.hdr = hdr
        self.txn = txn
        self.digest = digest  # (version, tree digest) or None


def decode_entry(buf: bytes) -> ZkLogEntry:
    try:
        return ZkLogEntry(*decode_txn_entry(buf))
    except TxnEntryError as e:
        raise ZkFormatError(str(e)) from None


class ZkLog:
    def __init__(self, path, entries, end, size, torn):
        self.path = path
        self.entries = entries
        self.end = end
        self.size = size
        self.torn = torn  # why reading stopped before the end of the data, or None


def read_log(path: Path) -> ZkLog:
    """Every intact entry of one ZooKeeper txn log (stops at padding or a torn/damaged entry)."""
    path = Path(path)
    b = path.read_bytes()
    if len(b) < 16 or b[:4] != LOG_MAGIC:
        raise ZkFormatError(f"{path}: not a ZooKeeper txn log (header {b[:4]!r})")
    version = _I.unpack_from(b, 4)[0]
    if version != 2:
        raise ZkFormatError(f"{path}: unsupported txn log version {version}")
    p = 16
    entries = []
    torn = None
    n = len(b)
    while p + 12 <= n:
        crc = _Q.unpack_from(b, p)[0]
        ln = _I.unpack_from(b, p + 8)[0]
        if ln == 0:
            break  # preallocated padding: the end
        if ln < 0 or p + 12 + ln + 1 > n:
            torn = f"entry at offset {p} cut short"
            break
        buf = b[p + 12:p + 12 + ln]
        if b[p + 12 + ln] != 0x42:
            torn = f"entry at offset {p} has no end marker"
            break
        if zlib.adler32(buf) != crc & 0xFFFFFFFF or crc >> 32:
            torn = f"entry at offset {p} fails its checksum"
            break
        try:
            entries.append(decode_entry(buf))
        except (JuteError, ZkFormatError, struct.error) as e:
            torn = f"entry at offset {p} does not decode: {e}"
            break
        p += 12 + ln + 1
    return ZkLog(path, entries, p, n, torn)
