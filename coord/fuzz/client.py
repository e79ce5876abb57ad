"""Fuzz target: bytes from a client become replies, or a protocol error and a closed connection.

Input: a flags byte, then the byte stream of one client connection, which goes through the shell's
FrameSplitter into a standalone ServerCore exactly as coord.aio.server feeds it, in fuzz-chosen
pieces; after each piece the log is made durable and the clock moves. Flag bits: 0 the harness
opens a session first (so the stream's frames are requests, not a ConnectRequest), 1 a second,
well-behaved session is open too (watches and ephemerals for the first one's writes to trigger),
2 read-only server, 3-5 the piece size. Checked:
- nothing raises (FrameTooLarge is the splitter's way to say "close": the shell closes);
- every byte the core sends is whole length-prefixed frames, none over the frame bound, and nothing
  is sent to a connection after the core asked to close it;
- in a session, replies come in request order, one per request (a prefix of the requests, as the
  connection may close): the Java client drops a connection on an out-of-order xid;
- the tree stays consistent: its running digest equals a recomputation, parent and child links and
  the ephemeral index agree, and every session that owns an ephemeral exists.
"""
from __future__ import annotations

import struct

from coord.core.config import CoreConfig
from coord.core.server import ServerCore
from coord.fuzz import history
from coord.jute import records as R
from coord.jute.frames import FrameSplitter, FrameTooLarge

MAX_FRAME = 1 << 16
PIECES = (1 << 30, 1, 3, 7, 16, 64, 251, 1000)
FUZZ_CONN, WITNESS_CONN = 1, 2


class Broken(AssertionError):
    """An invariant of the client port broke."""


class _Port:
    def __init__(self, read_only: bool):
        self.core = ServerCore(CoreConfig(max_buffer=MAX_FRAME, read_only=read_only))
        self.now = history.NOW_MS
        self.core.start(self.now, self.now)
        self.closed: set[int] = set()
        self.ordered: set[int] = set()             # connections whose reply order is checked
        self.asked: dict[int, list[int]] = {}      # the xids their replies must carry, in order
        self.answered: dict[int, list[int]] = {}

    def open(self, cid: int) -> None:
        self.core.connection_made(cid, f"127.0.0.{cid}:4000{cid}")

    def frame(self, cid: int, payload: bytes) -> None:
        conn = self.core.conns.get(cid)
        if cid in self.closed or conn is None:
            return
        if cid in self.ordered and not conn.closing and len(payload) >= 8:
            xid, op = struct.unpack_from(">ii", payload)
            if op == 11:                           # a ping is answered with xid -2, whatever its own
                self.asked[cid].append(-2)
            elif xid != -1:                        # -1 is a notification's xid
                self.asked[cid].append(xid)
        self.core.frame(cid, payload)

    def check_order(self, cid: int) -> None:
        asked, got = self.asked.get(cid, []), self.answered.get(cid, [])
        if got != asked[:len(got)]:
            raise Broken(f"replies {got[:20]} to requests {asked[:20]}: not one per request in order")

    def settle(self, advance_ms: int = 0) -> None:
        core = self.core
        if advance_ms:
            self.now += advance_ms
            core.set_time(self.now, self.now)
            core.tick()
        seq = core.sequencer
        batch = seq.drain_log()
        if batch:
            seq.on_logged(batch[-1][0].zxid)
        out, closing = core.drain()
        for cid, chunks in out.items():
            if cid in self.closed:
                raise Broken(f"bytes sent to connection {cid} after it was closed")
            xids = _check_frames(b"".join(chunks))
            if cid in self.ordered:
                self.answered.setdefault(cid, []).extend(x for x in xids if x != -1)
        for cid in closing:
            self.closed.add(cid)
            core.connection_lost(cid)


def _check_frames(buf: bytes) -> list[int]:
    """The xid of each frame (its first 4 bytes) once the frames check."""
    p = 0
    xids = []
    while p < len(buf):
        if p + 4 > len(buf):
            raise Broken(f"a reply cut short: {len(buf) - p} bytes of a length prefix")
        (n,) = struct.unpack_from(">i", buf, p)
        if n < 0 or n > MAX_FRAME + 1024 or p + 4 + n > len(buf):
            raise Broken(f"a reply frame of length {n} at {p} in {len(buf)} bytes sent")
        if n >= 4:
            xids.append(struct.unpack_from(">i", buf, p + 4)[0])
        p += 4 + n
    return xids


def _check_tree(core: ServerCore) -> None:
    tree = core.tree
    if tree.digest != tree.recompute_digest():
        raise Broken("the tree's running digest differs from a recomputation")
    bad = history.tree_problems(tree)
    if bad:
        raise Broken(f"inconsistent tree: {bad[:3]}")
    for owner in tree.ephemerals:
        if owner not in tree.sessions:
            raise Broken(f"ephemerals owned by 0x{owner:x}, which is not a session in the tree")


def _establish(port: _Port, cid: int) -> None:
    port.open(cid)
    port.frame(cid, history.connect())
    port.settle()


def test_one_input(data: bytes) -> None:
    if not data:
        return
    flags = data[0]
    stream = data[1:]
    port = _Port(read_only=bool(flags & 4))
    if flags & 2:
        _establish(port, WITNESS_CONN)
        for i, req in enumerate(history.client_requests()[:6]):
            port.frame(WITNESS_CONN, req)
        port.frame(WITNESS_CONN, history.request(90, 4, R.GetDataRequest("/app/e", True)))
        port.settle()
    if flags & 1:
        _establish(port, FUZZ_CONN)
        port.ordered.add(FUZZ_CONN)
        port.asked[FUZZ_CONN] = []
    else:
        port.open(FUZZ_CONN)
    splitter = FrameSplitter(MAX_FRAME)
    piece = PIECES[(flags >> 3) & 7]
    for pos in range(0, len(stream), piece):
        try:
            frames = splitter.feed(stream[pos:pos + piece])
        except FrameTooLarge:
            port.core.connection_lost(FUZZ_CONN)      # the shell aborts the connection
            port.closed.add(FUZZ_CONN)
            break
        for payload in frames:
            port.frame(FUZZ_CONN, payload)
        port.settle(advance_ms=97)
        if FUZZ_CONN in port.closed:
            break
    port.settle(advance_ms=60_000)   # expire what the client left: its ephemerals and watches go
    port.check_order(FUZZ_CONN)
    _check_tree(port.core)


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def seeds() -> dict[str, bytes]:
    """A session's requests as a client sends them, whole and in pieces; hostile classics."""
    reqs = history.client_requests()
    whole = b"".join(_frame(p) for p in reqs)
    out = {
        "connect-then-requests": bytes([0]) + _frame(history.connect()) + whole,
        "requests-in-session": bytes([1]) + whole,
        "requests-in-pieces": bytes([1 | 2 << 3]) + whole,
        "with-witness": bytes([1 | 2]) + whole,
        "read-only": bytes([1 | 4]) + whole,
        "frame-too-large": bytes([1]) + struct.pack(">i", 1 << 20) + b"x" * 8,
        "negative-length": bytes([1]) + struct.pack(">i", -4),
        "reconnect-with-wrong-password": bytes([0]) + _frame(history.connect(session_id=1 << 40 | 5)),
        "auth-digest": bytes([1]) + _frame(history.request(-4, 100, R.AuthPacket(0, "digest", b"u:p"))),
        "set-watches": bytes([1]) + _frame(history.request(-8, 101, R.SetWatches(0, ["/app"], ["/x"], ["/"]))),
        "close-session": bytes([1 | 2]) + _frame(history.request(1, -11)) + whole,
        "short-header": bytes([1]) + _frame(b"\x00\x00\x00"),
        "unknown-op": bytes([1]) + _frame(history.request(3, 999)),
        "sasl": bytes([1]) + _frame(history.request(5, 102, R.GetSASLRequest(b"token"))),
    }
    for i, p in enumerate(reqs):
        out[f"request-{i:02d}-op{struct.unpack_from('>i', p, 4)[0]}"] = bytes([1]) + _frame(p)
    return out
