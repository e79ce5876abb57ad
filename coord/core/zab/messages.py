"""Peer messages: coord's own versioned, checksummed, sequence-numbered, bounded binary format.

Every message is one envelope

    version u8 | type u8 | flags u16 | seq u64 | crc32 u32 | body

where the crc32 covers the body and then the first 12 bytes (so a body sent on several links is
checksummed once). `seq` numbers the messages a sender put on
one link since it came up (0, 1, 2, ...): the receiver drops a replay (seq below the next expected)
and treats a gap (seq above it: a message lost or reordered) as a broken link, because Zab needs
FIFO links. Bodies are fixed fields (big-endian) and length-prefixed variable fields; every count is
checked against both an explicit bound and the bytes that remain, so no input can make the decoder
allocate more than the message it was given.

`decode` never raises: bad bytes become a `DecodeError` value, which the peer answers by closing the
link. Txns travel as "blobs" (TxnHeader then the txn record, exactly as zookeeper.jute encodes them)
that are fully decoded at the boundary, so a txn that reaches the log or the tree has already parsed.
"""
from __future__ import annotations

import struct
import zlib

from coord.core.datatree import decode_txn
from coord.jute import records as R
from coord.jute.codec import JuteError, decode as jute_decode

VERSION = 1
_ENV = struct.Struct(">BBHQ")
_CRC = struct.Struct(">I")
ENVELOPE_SIZE = _ENV.size + _CRC.size     # 16
DEFAULT_MAX_MESSAGE = 64 << 20
MAX_TXNS = 1 << 20
MAX_AUTH = 64
MAX_SESSIONS = 1 << 22
PROTOCOL = 1                              # Zab protocol revision carried in FOLLOWERINFO/LEADERINFO

_Q = struct.Struct(">q")
_U64 = struct.Struct(">Q")
_I = struct.Struct(">i")
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_B = struct.Struct(">B")

# peer states in notifications
LOOKING, FOLLOWING, LEADING, OBSERVING = 0, 1, 2, 3
STATE_NAMES = {LOOKING: "looking", FOLLOWING: "following", LEADING: "leading", OBSERVING: "observing"}


class DecodeError:
    """Why some bytes are not a message. A value, never raised."""
    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason

    def __repr__(self):
        return f"DecodeError({self.reason!r})"

    def __bool__(self):
        return False


class Entry:
    """One txn as it travels and as the peer keeps it in its in-memory history."""
    __slots__ = ("hdr", "txn", "blob")

    def __init__(self, hdr: R.TxnHeader, txn, blob: bytes | None = None):
        self.hdr = hdr
        self.txn = txn
        if blob is None:
            out = bytearray()
            hdr._write_into(out, hdr)
            if txn is not None:
                txn._write_into(out, txn)
            blob = bytes(out)
        self.blob = blob

    @property
    def zxid(self) -> int:
        return self.hdr.zxid

    def __repr__(self):
        return f"Entry(0x{self.hdr.zxid:x} type={self.hdr.type})"


def entry_from_blob(blob: bytes) -> Entry:
    """Parse a txn blob; raises ValueError (JuteError is one) on anything malformed."""
    if blob.__class__ is not bytes:
        blob = bytes(blob)
    hdr, p = jute_decode(R.TxnHeader, blob, 0)
    return Entry(hdr, decode_txn(hdr.type, blob[p:]), blob)


class _Reader:
    __slots__ = ("b", "p", "end")

    def __init__(self, b, p, end):
        self.b = b
        self.p = p
        self.end = end

    def take(self, s: struct.Struct):
        p = self.p
        if p + s.size > self.end:
            raise ValueError("truncated")
        self.p = p + s.size
        return s.unpack_from(self.b, p)[0]

    def raw(self, n: int) -> bytes:
        p = self.p
        if n < 0 or p + n > self.end:
            raise ValueError("length beyond the message")
        self.p = p + n
        return bytes(self.b[p:p + n])

    def count(self, bound: int, min_elem: int) -> int:
        n = self.take(_U32)
        if n > bound or n * min_elem > self.end - self.p:
            raise ValueError(f"count {n} over its bound")
        return n


def _w_bytes(out: bytearray, v: bytes) -> None:
    out += _U32.pack(len(v))
    out += v


def _r_bytes(r: _Reader) -> bytes:
    return r.raw(r.take(_U32))


def _w_str(out: bytearray, s: str) -> None:
    _w_bytes(out, s.encode("utf-8"))


def _r_str(r: _Reader) -> str:
    return _r_bytes(r).decode("utf-8")


def _w_txns(out: bytearray, entries) -> None:
    out += _U32.pack(len(entries))
    for e in entries:
        _w_bytes(out, e.blob)


def _r_txns(r: _Reader) -> list:
    n = r.count(MAX_TXNS, 4 + 24)
    b, p, end = r.b, r.p, r.end
    unpack = _U32.unpack_from
    out = []
    last = None
    for _ in range(n):   # _r_bytes inlined: a follower parses every txn of every proposal
        if p + 4 > end:
            raise ValueError("truncated")
        e_end = p + 4 + unpack(b, p)[0]
        if e_end > end:
            raise ValueError("length beyond the message")
        e = entry_from_blob(b[p + 4:e_end])
        p = e_end
        z = e.hdr.zxid
        if last is not None and z <= last:
            raise ValueError("txns not in increasing zxid order")
        last = z
        out.append(e)
    r.p = p
    return out


class Message:
    __slots__ = ("_wire",)     # the encoded body and its crc32, made once however many links it goes to
    TYPE = 0
    FIXED: struct.Struct | None = None
    FIELDS: tuple = ()

    def fields(self) -> tuple[str, ...]:
        return tuple(f for c in reversed(type(self).__mro__) for f in getattr(c, "__slots__", ())
                     if f[0] != "_")

    def __repr__(self):
        inner = ", ".join(f"{f}={_fmt(getattr(self, f))}" for f in self.fields())
        return f"{type(self).__name__.upper()}({inner})"

    def __eq__(self, other):
        return type(other) is type(self) and all(getattr(self, f) == getattr(other, f) for f in self.fields())

    __hash__ = None  # type: ignore[assignment]

    def _body(self, out: bytearray) -> None:
        out += self.FIXED.pack(*(getattr(self, f) for f in self.__slots__))

    @classmethod
    def _parse(cls, r: _Reader):
        vals = cls.FIXED.unpack_from(r.b, r.p) if r.p + cls.FIXED.size <= r.end else None
        if vals is None:
            raise ValueError("truncated")
        r.p += cls.FIXED.size
        return cls(*vals)


def _fmt(v):
    if isinstance(v, int) and v > 0xFFFFFFFF:
        return f"0x{v:x}"
    if isinstance(v, (bytes, bytearray)):
        return f"<{len(v)} bytes>"
    if isinstance(v, list) and v and isinstance(v[0], Entry):
        return "[" + ", ".join(f"0x{e.zxid:x}" for e in v) + "]"
    return repr(v)


def _fixed(name: str, type_: int, fmt: str, fields: tuple[str, ...]):
    s = struct.Struct(">" + fmt)

    def __init__(self, *args):
        self._wire = None
        for f, v in zip(fields, args):
            setattr(self, f, v)
    return type(name, (Message,), {"__slots__": fields, "TYPE": type_, "FIXED": s, "__init__": __init__})


Notification = _fixed("Notification", 1, "BqqqqB",
                      ("state", "leader", "zxid", "election_epoch", "peer_epoch", "flags"))
FollowerInfo = _fixed("FollowerInfo", 2, "qqqqBI",
                      ("accepted_epoch", "current_epoch", "last_zxid", "tree_zxid", "observer", "protocol"))
LeaderInfo = _fixed("LeaderInfo", 3, "qI", ("epoch", "protocol"))
AckEpoch = _fixed("AckEpoch", 4, "qqqB", ("epoch", "current_epoch", "last_zxid", "fresh"))
Trunc = _fixed("Trunc", 5, "q", ("zxid",))
NewLeader = _fixed("NewLeader", 8, "qq", ("epoch", "zxid"))
AckNewLeader = _fixed("AckNewLeader", 9, "qq", ("epoch", "zxid"))
UpToDate = _fixed("UpToDate", 10, "qq", ("epoch", "commit_zxid"))
Ack = _fixed("Ack", 12, "q", ("zxid",))
Commit = _fixed("Commit", 13, "q", ("zxid",))
Ping = _fixed("Ping", 16, "q", ("commit_zxid",))
SyncReq = _fixed("SyncReq", 18, "Q", ("req_id",))
SyncReply = _fixed("SyncReply", 19, "Qq", ("req_id", "zxid"))
# a leader asked to stop: everything up to zxid is committed; `successor` (which holds all of it) leads next
Handoff = _fixed("Handoff", 21, "qqq", ("epoch", "zxid", "successor"))

NF_NON_VOTING = 1     # notification flag: the sender is an observer (or otherwise may not vote)


class _TxnsMessage(Message):
    __slots__ = ("entries",)

    def __init__(self, entries):
        self._wire = None
        self.entries = entries

    def _body(self, out):
        _w_txns(out, self.entries)

    @classmethod
    def _parse(cls, r):
        return cls(_r_txns(r))


class Diff(_TxnsMessage):
    """Part of a learner's sync: txns after its last zxid (or after a TRUNC/SNAP point)."""
    __slots__ = ()
    TYPE = 6


class Proposal(_TxnsMessage):
    __slots__ = ()
    TYPE = 11


class Inform(_TxnsMessage):
    """Committed txns for observers (they neither log ahead nor ack)."""
    __slots__ = ()
    TYPE = 14


class Snap(Message):
    """One chunk of a snapshot (coord.core.snapformat bytes) consistent with zxid. The leader streams
    them as it encodes: `total` is 0 until the last chunk, which carries the whole length."""
    __slots__ = ("zxid", "total", "offset", "data")
    TYPE = 7
    _H = struct.Struct(">qQQ")

    def __init__(self, zxid, total, offset, data):
        self._wire = None
        self.zxid = zxid
        self.total = total
        self.offset = offset
        self.data = data

    def _body(self, out):
        out += self._H.pack(self.zxid, self.total, self.offset)
        _w_bytes(out, self.data)

    @classmethod
    def _parse(cls, r):
        z, total, off = r.take(_Q), r.take(_U64), r.take(_U64)
        data = _r_bytes(r)
        if total and off + len(data) > total:
            raise ValueError("snapshot chunk beyond its total")
        return cls(z, total, off, data)


class Request(Message):
    """A client write forwarded by a learner to the leader (createSession and closeSession included)."""
    __slots__ = ("session_id", "cxid", "type", "body", "auth")
    TYPE = 15
    _H = struct.Struct(">qiiI")      # session id, cxid, type, body length

    def __init__(self, session_id, cxid, type, body, auth):
        self._wire = None
        self.session_id = session_id
        self.cxid = cxid
        self.type = type
        self.body = body
        self.auth = auth

    def _body(self, out):
        out += self._H.pack(self.session_id, self.cxid, self.type, len(self.body))
        out += self.body
        out += _auth_bytes(self.auth)

    @classmethod
    def _parse(cls, r):
        b, p = r.b, r.p
        h = cls._H
        if p + h.size > r.end:
            raise ValueError("truncated")
        sid, cxid, t, n = h.unpack_from(b, p)
        p += h.size
        if p + n > r.end:
            raise ValueError("length beyond the message")
        body = b[p:p + n]
        if body.__class__ is not bytes:
            body = bytes(body)
        r.p = p + n
        return cls(sid, cxid, t, body, _read_auth(r))


# A connection's identities are the same on each of its writes (usually one: its ip): their
# encoding is made once each way, both on the learner that forwards and on the leader that reads.
_AUTH_BYTES: dict[tuple, bytes] = {}
_AUTH_OF: dict[bytes, tuple] = {}
_AUTH_MEMO_MAX = 4096


def _auth_bytes(auth) -> bytes:
    got = _AUTH_BYTES.get(auth)
    if got is None:
        out = bytearray(_U32.pack(len(auth)))
        for scheme, ident in auth:
            _w_str(out, scheme)
            _w_str(out, ident)
        got = bytes(out)
        if len(_AUTH_BYTES) < _AUTH_MEMO_MAX and isinstance(auth, tuple):
            _AUTH_BYTES[auth] = got
    return got


def _read_auth(r: _Reader) -> tuple:
    b, start = r.b, r.p
    n = r.count(MAX_AUTH, 8)
    p, end = r.p, r.end
    for _ in range(2 * n):      # find the entries' end without decoding them
        if p + 4 > end:
            raise ValueError("truncated")
        p += 4 + _U32.unpack_from(b, p)[0]
        if p > end:
            raise ValueError("length beyond the message")
    raw = b[start:p]
    if raw.__class__ is not bytes:
        raw = bytes(raw)
    auth = _AUTH_OF.get(raw)
    if auth is None:
        auth = tuple((_r_str(r), _r_str(r)) for _ in range(n))
        if len(_AUTH_OF) < _AUTH_MEMO_MAX:
            _AUTH_OF[raw] = auth
    r.p = p
    return auth


class Pong(Message):
    """A learner's answer to PING: the sessions its clients touched since the last one."""
    __slots__ = ("sessions",)
    TYPE = 17

    def __init__(self, sessions):
        self._wire = None
        self.sessions = sessions

    def _body(self, out):
        out += _U32.pack(len(self.sessions))
        out += struct.pack(f">{len(self.sessions)}q", *self.sessions)

    @classmethod
    def _parse(cls, r):
        n = r.count(MAX_SESSIONS, 8)
        raw = r.raw(8 * n)
        return cls(list(struct.unpack(f">{n}q", raw)))


class ConfigInfo(Message):
    """A settled server's active (committed) configuration, told to a looking one that may have
    missed a reconfig (ZooKeeper sends it inside its election notifications): /zookeeper/config
    data and its version."""
    __slots__ = ("version", "data")
    TYPE = 20

    def __init__(self, version, data):
        self._wire = None
        self.version = version
        self.data = data

    def _body(self, out):
        out += _Q.pack(self.version)
        _w_bytes(out, self.data)

    @classmethod
    def _parse(cls, r):
        return cls(r.take(_Q), _r_bytes(r))


class Restore(Message):
    """A learner forwards an AdminServer `restore` to the leader: one chunk of the snapshot bytes as
    POSTed (`total` is the whole length; the leader restores the whole ensemble from them;
    docs/zab.md, "Restore")."""
    __slots__ = ("req_id", "total", "offset", "data")
    TYPE = 22
    _H = struct.Struct(">QQQ")

    def __init__(self, req_id, total, offset, data):
        self._wire = None
        self.req_id = req_id
        self.total = total
        self.offset = offset
        self.data = data

    def _body(self, out):
        out += self._H.pack(self.req_id, self.total, self.offset)
        _w_bytes(out, self.data)

    @classmethod
    def _parse(cls, r):
        rid, total, off = r.take(_U64), r.take(_U64), r.take(_U64)
        data = _r_bytes(r)
        if off + len(data) > total:
            raise ValueError("restore chunk beyond its total")
        return cls(rid, total, off, data)


class Restored(Message):
    """The leader's answer to RESTORE: the restored tree's zxid, or why it was not restored ("")."""
    __slots__ = ("req_id", "zxid", "error")
    TYPE = 23

    def __init__(self, req_id, zxid, error):
        self._wire = None
        self.req_id = req_id
        self.zxid = zxid
        self.error = error

    def _body(self, out):
        out += _U64.pack(self.req_id)
        out += _Q.pack(self.zxid)
        _w_str(out, self.error)

    @classmethod
    def _parse(cls, r):
        return cls(r.take(_U64), r.take(_Q), _r_str(r))


TYPES: dict[int, type[Message]] = {c.TYPE: c for c in (
    Notification, FollowerInfo, LeaderInfo, AckEpoch, Trunc, Diff, Snap, NewLeader, AckNewLeader,
    UpToDate, Proposal, Ack, Commit, Inform, Request, Ping, Pong, SyncReq, SyncReply, ConfigInfo, Handoff,
    Restore, Restored)}


def encode(msg: Message, seq: int) -> bytes:
    wire = msg._wire   # None until encoded once (every __init__ sets it)
    if wire is None:
        out = bytearray()
        msg._body(out)
        body = bytes(out)
        wire = msg._wire = (body, zlib.crc32(body))
    body, body_crc = wire
    head = _ENV.pack(VERSION, msg.TYPE, 0, seq)
    return head + _CRC.pack(zlib.crc32(head, body_crc)) + body


def decode(data: bytes, max_bytes: int = DEFAULT_MAX_MESSAGE):
    """(seq, message) or a DecodeError."""
    n = len(data)
    if n > max_bytes:
        return DecodeError(f"message of {n} bytes over the bound of {max_bytes}")
    if n < ENVELOPE_SIZE:
        return DecodeError("shorter than the envelope")
    version, type_, flags, seq = _ENV.unpack_from(data, 0)
    if version != VERSION:
        return DecodeError(f"unsupported message version {version}")
    cls = TYPES.get(type_)
    if cls is None:
        return DecodeError(f"unknown message type {type_}")
    if flags:
        return DecodeError(f"unknown flags 0x{flags:x}")
    mv = memoryview(data)
    crc = zlib.crc32(mv[:12], zlib.crc32(mv[ENVELOPE_SIZE:]))
    if crc != _CRC.unpack_from(data, 12)[0]:
        return DecodeError("checksum mismatch")
    r = _Reader(data, ENVELOPE_SIZE, n)
    try:
        msg = cls._parse(r)
    except (ValueError, JuteError, struct.error, UnicodeDecodeError, OverflowError, MemoryError) as e:
        return DecodeError(f"{cls.__name__}: {e}")
    if r.p != n:
        return DecodeError(f"{cls.__name__}: {n - r.p} trailing bytes")
    return seq, msg


def name_of(msg) -> str:
    return type(msg).__name__.upper()
