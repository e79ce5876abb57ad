"""Fuzz target: bytes on a peer link become a FrameError/DecodeError, or exactly the message sent.

Input: a flags byte, then the byte stream of one peer link, read by coord.aio.peer.FrameReader in
fuzz-chosen pieces; HELLO payloads are checked as the link checks them, DATA payloads go to
coord.core.zab.messages.decode. Flag bit 0 re-seals the checksums (the link frame's and the
message envelope's) after the fuzzer's changes, so that the message parsers behind them are
reached; bits 1-3 choose the piece size. Checked:
- FrameReader raises only FrameError, and only ever returns frames of a known kind within its bound;
- decode never raises; what it accepts re-encodes to exactly the bytes it was given, and every txn
  it carries, encoded from what was parsed, parses back to the same (what a follower applies is
  what it reads back from its log).
"""
from __future__ import annotations

import struct
import zlib

from coord.aio.peer import DATA, HDR_SIZE, HELLO, PING, FrameError, FrameReader, encode_frame, encode_hello
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


def test_one_input(data: bytes) -> None:
    if not data:
        return
    flags = data[0]
    stream = data[1:]
    if flags & 1:
        stream = reseal(stream)
    reader = FrameReader(MAX_FRAME)
    piece = PIECES[(flags >> 1) & 7]
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
    hello = encode_hello(3, 0x12345678)
    out = {"hello-ping": bytes([0]) + hello + encode_frame(PING)}
    for seq, m in enumerate(msgs):
        out[f"{seq:02d}-{M.name_of(m).lower()}"] = bytes([0]) + encode_frame(DATA, M.encode(m, seq))
    link = hello + b"".join(encode_frame(DATA, M.encode(m, seq)) for seq, m in enumerate(msgs))
    out["whole-link"] = bytes([0]) + link
    out["whole-link-in-pieces"] = bytes([3 << 1]) + link
    out["resealed-truncated-diff"] = bytes([1]) + encode_frame(DATA, M.encode(msgs[5], 0)[:-7])
    return out
