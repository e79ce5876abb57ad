"""Fuzz target: bytes on a peer link become a FrameError/DecodeError, or exactly the message sent.

Input: a flags byte, then the byte stream of one peer link, in fuzz-chosen pieces, read twice: by a
bare coord.aio.peer.FrameReader (every DATA payload to coord.core.zab.messages.decode), and by a
link (coord.aio.peer._Conn of a PeerTransport, sid 2 of {1, 2, 3}, on a stand-in loop and
transport) that is accepted on the quorum port, accepted on the election port, dialled to sid 1,
or accepted with reconfigEnabled (flag bits 4-5), which checks the HELLO handshake and delivers
DATA to the Zab peer. Flag bit 0 re-seals the checksums (the link frame's and the message
envelope's) after the fuzzer's changes, so that the parsers behind them are reached; bits 1-3
choose the piece size. Checked:
- FrameReader raises only FrameError, and only ever returns frames of a known kind within its bound;
- the link never raises (bad bytes abort the connection), and hands the Zab peer messages only
  while it is established, open and the peer's current link;
- decode never raises; what it accepts re-encodes to exactly the bytes it was given, and every txn
  it carries, encoded from what was parsed, parses back to the same (what a follower applies is
  what it reads back from its log).
"""
from __future__ import annotations

import struct
import zlib

from coord.aio.peer import (DATA, F_POKE, HDR_SIZE, HELLO, PING, FrameError, FrameReader, PeerAddr, PeerTransport,
                            _Conn, encode_frame, encode_hello, membership_digest)
from coord.core.zab import messages as M
from coord.fuzz import files, history

MAX_FRAME = 1 << 20
PIECES = (1 << 30, 1, 5, 12, 16, 100, 333, 4096)
_HDR = struct.Struct(">BBHII")
_HELLO = struct.Struct(">qIB")


class Broken(AssertionError):
    """An invariant of the peer link broke."""


def reseal(stream: bytes) -> bytes:
    """Fix the link frame checksums, and the message envelope checksum inside each DATA frame."""
    b = bytearray(stream)
    pos = 0
    while pos + HDR_SIZE <= len(b):
        version, kind, reserved, length, _crc = _HDR.unpack_from(b, pos)
        end = pos + HDR_SIZE + length
        if end > len(b):
            break
        start = pos + HDR_SIZE
        if kind == DATA and length >= M.ENVELOPE_SIZE:
            crc = zlib.crc32(b[start:start + 12], zlib.crc32(b[start + M.ENVELOPE_SIZE:end]))
            b[start + 12:start + 16] = struct.pack(">I", crc)
        _HDR.pack_into(b, pos, version, kind, reserved, length, zlib.crc32(b[start:end]))
        pos = end
    return bytes(b)


def _check_message(payload: bytes) -> None:
    got = M.decode(payload, MAX_FRAME)
    if isinstance(got, M.DecodeError):
        return
    seq, msg = got
    again = M.encode(msg, seq)
    if again != payload:
        raise Broken(f"{M.name_of(msg)} seq {seq} decoded from {payload.hex()} re-encodes as {again.hex()}")
    for e in getattr(msg, "entries", ()):
        # A blob need not be canonical (a ustring that is not UTF-8 decodes with replacement, as in
        # Java), but what was parsed must survive encoding: the txn applied is the txn re-read.
        canonical = M.Entry(e.hdr, e.txn).blob
        if M.Entry(*_parsed(canonical)).blob != canonical:
            raise Broken(f"{M.name_of(msg)}: txn 0x{e.zxid:x} parsed from {e.blob.hex()} does not survive "
                         "encoding and parsing again")


def _parsed(blob: bytes) -> tuple:
    e = M.entry_from_blob(blob)
    return e.hdr, e.txn


PEERS = {s: PeerAddr(s, "127.0.0.1", 2880 + s, 3880 + s) for s in (1, 2, 3)}
DIGEST = membership_digest([1, 2, 3], [])
MY_SID = 2
# (outbound sid, port, dynamic) of the link the stream arrives on
LINKS = ((None, "quorum", False), (None, "election", False), (1, "quorum", False), (None, "quorum", True))


class _Handle:
    def cancel(self) -> None:
        pass

    def done(self) -> bool:
        return False


class _Loop:
    """What PeerTransport asks of its event loop, without one: time stands still, nothing runs later."""

    def time(self) -> float:
        return 1000.0

    def call_later(self, delay, fn, *args) -> _Handle:
        return _Handle()

    def create_task(self, coro) -> _Handle:
        coro.close()
        return _Handle()


class _Transport:
    def __init__(self):
        self.closed = False

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default

    def write(self, data) -> None:
        if self.closed:
            raise Broken("the link wrote to a closed transport")

    def abort(self) -> None:
        self.closed = True

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


def _link(flags: int):
    outbound, via, dynamic = LINKS[(flags >> 4) & 3]
    holder = []

    def on_message(sid: int, payload: bytes) -> None:
        c = holder[0]
        if not c.established or c.closed or mgr.links.get(sid) is not c or sid != c.sid:
            raise Broken(f"a message from sid {sid} delivered on a link that is not its established one")
        _check_message(payload)

    mgr = PeerTransport(MY_SID, dict(PEERS), digest=DIGEST, on_connected=lambda sid: None,
                        on_disconnected=lambda sid: None, on_message=on_message, max_frame_bytes=MAX_FRAME,
                        dynamic=dynamic)
    mgr.loop = _Loop()
    mgr.running = True
    c = _Conn(mgr, outbound, via)
    holder.append(c)
    if outbound is not None:
        mgr.links[outbound] = c
    c.connection_made(_Transport())
    return c


def test_one_input(data: bytes) -> None:
    if not data:
        return
    flags = data[0]
    stream = data[1:]
    if flags & 1:
        stream = reseal(stream)
    piece = PIECES[(flags >> 1) & 7]
    with files.quiet():
        link = _link(flags)
        for pos in range(0, len(stream), piece):
            link.data_received(stream[pos:pos + piece])
    reader = FrameReader(MAX_FRAME)
    for pos in range(0, len(stream), piece):
        try:
            got = reader.feed(stream[pos:pos + piece])
        except FrameError:
            return
        for kind, payload in got:
            if kind not in (HELLO, DATA, PING) or len(payload) > MAX_FRAME:
                raise Broken(f"FrameReader returned a frame of kind {kind}, {len(payload)} bytes")
            if kind == HELLO and len(payload) == _HELLO.size:
                _HELLO.unpack(payload)
            elif kind == DATA:
                _check_message(payload)


def sample_messages() -> list:
    """One of every message type, with real txns and a real snapshot chunk."""
    entries = [M.Entry(h, t) for h, t in history.txns()]
    snap = files.snapshot(9, True)
    return [
        M.Notification(M.LOOKING, 2, 0x100000005, 3, 1, 0),
        M.FollowerInfo(1, 1, 0x100000005, 0x100000004, 0, M.PROTOCOL),
        M.LeaderInfo(2, M.PROTOCOL),
        M.AckEpoch(2, 1, 0x100000005, 0),
        M.Trunc(0x100000003),
        M.Diff(entries[:6]),
        M.Snap(9, 0, 0, snap[:100]),
        M.Snap(9, len(snap), 100, snap[100:]),
        M.NewLeader(2, 0x200000000),
        M.AckNewLeader(2, 0x200000000),
        M.UpToDate(2, 0x200000000),
        M.Proposal(entries[6:9]),
        M.Ack(0x200000001),
        M.Commit(0x200000001),
        M.Inform(entries[9:12]),
        M.Request(0x1000000000005, 7, 1, history.client_requests()[0][8:], (("ip", "127.0.0.1"),)),
        M.Ping(0x200000001),
        M.Pong([0x1000000000005, 0x1000000000006]),
        M.SyncReq(7),
        M.SyncReply(7, 0x200000001),
        M.ConfigInfo(0x100000000, b"server.1=127.0.0.1:2888:3888:participant;2181\nversion=100000000"),
    ]


def seeds() -> dict[str, bytes]:
    msgs = sample_messages()
    data = b"".join(encode_frame(DATA, M.encode(m, seq)) for seq, m in enumerate(msgs))
    out = {
        "hello-ping": bytes([0]) + encode_hello(3, DIGEST) + encode_frame(PING),
        "hello-other-ensemble": bytes([0]) + encode_hello(3, DIGEST ^ 1),
        "hello-lower-sid-dials": bytes([0]) + encode_hello(1, DIGEST),
        "poke-on-election-port": bytes([1 << 4]) + encode_hello(1, DIGEST, F_POKE),
        "dialled-answer-and-data": bytes([2 << 4]) + encode_hello(1, DIGEST) + data[:2000],
        "dynamic-joiner": bytes([3 << 4]) + encode_hello(7, 0) + encode_frame(PING),
        "data-before-hello": bytes([0]) + data[:300],
        "second-hello": bytes([0]) + encode_hello(3, DIGEST) * 2,
    }
    for seq, m in enumerate(msgs):
        out[f"{seq:02d}-{M.name_of(m).lower()}"] = bytes([0]) + encode_hello(3, DIGEST) + encode_frame(
            DATA, M.encode(m, seq))
    out["whole-link"] = bytes([0]) + encode_hello(3, DIGEST) + data
    out["whole-link-in-pieces"] = bytes([3 << 1]) + encode_hello(3, DIGEST) + data
    out["resealed-truncated-diff"] = bytes([1]) + encode_frame(DATA, M.encode(msgs[5], 0)[:-7])
    return out
