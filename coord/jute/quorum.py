"""ZooKeeper 3.8's own peer wire (not coord's Zab format): what a coord observer of a ZooKeeper
ensemble reads and writes.

Two links, two framings, as in ZooKeeper:
  election port   QuorumCnxManager: the dialer sends InitialMessage (protocol version long -65536
                  or -65535, sid long, address length int + "host:port"), then both sides exchange
                  frames of (length int, payload) with payload a FastLeaderElection notification:
                  state int, leader long, zxid long, electionEpoch long, peerEpoch long, version int
                  (2), config length int, config bytes. Frames are bounded by PACKETMAXSIZE (512 KiB).
  quorum port     Learner <-> LearnerHandler: QuorumPacket records back to back with no framing
                  (type int, zxid long, data buffer, authinfo vector<Id>); a SNAP packet is followed
                  on the same stream by the serialised tree (coord.core.zkpeer.wiresnap).
`PacketStream` takes bytes as they arrive and hands out whole packets; every length is bounded, so
garbage ends in QuorumWireError, never in unbounded buffering.
"""
from __future__ import annotations

import struct

from coord.jute.codec import record

# org.apache.zookeeper.server.quorum.Leader packet types
REQUEST, PROPOSAL, ACK, COMMIT, PING, REVALIDATE, SYNC, INFORM = 1, 2, 3, 4, 5, 6, 7, 8
COMMITANDACTIVATE, NEWLEADER, FOLLOWERINFO, UPTODATE, DIFF, TRUNC, SNAP = 9, 10, 11, 12, 13, 14, 15
OBSERVERINFO, LEADERINFO, ACKEPOCH, INFORMANDACTIVATE = 16, 17, 18, 19
PACKET_NAMES = {v: k for k, v in dict(
    REQUEST=1, PROPOSAL=2, ACK=3, COMMIT=4, PING=5, REVALIDATE=6, SYNC=7, INFORM=8, COMMITANDACTIVATE=9,
    NEWLEADER=10, FOLLOWERINFO=11, UPTODATE=12, DIFF=13, TRUNC=14, SNAP=15, OBSERVERINFO=16,
    LEADERINFO=17, ACKEPOCH=18, INFORMANDACTIVATE=19).items()}

LEARNER_PROTOCOL = 0x10000          # what LearnerInfo and LEADERINFO carry in 3.4+
PROTOCOL_VERSION_V1 = -65536        # QuorumCnxManager's InitialMessage versions
PROTOCOL_VERSION_V2 = -65535
INITIAL_MAX_ADDR = 2048             # QuorumCnxManager.maxBuffer
PACKETMAXSIZE = 512 * 1024          # election frames
NOTIFICATION_VERSION = 2

# QuorumPeer.ServerState ordinals, as notifications carry them
LOOKING, FOLLOWING, LEADING, OBSERVING = 0, 1, 2, 3
STATE_NAMES = {0: "LOOKING", 1: "FOLLOWING", 2: "LEADING", 3: "OBSERVING"}

LearnerInfo = record("LearnerInfo", [("serverid", "long"), ("protocolVersion", "int"), ("configVersion", "long")])

_I = struct.Struct(">i")
_Q = struct.Struct(">q")
_HDR = struct.Struct(">iq")
_NOTE = struct.Struct(">iqqqqii")
_INITIAL = struct.Struct(">qqi")


class QuorumWireError(ValueError):
    """Bytes from a ZooKeeper peer that are not its protocol: the link must close."""


class QuorumPacket:
    __slots__ = ("type", "zxid", "data", "authinfo")

    def __init__(self, type_: int, zxid: int, data: bytes | None = None, authinfo=None):
        self.type = type_
        self.zxid = zxid
        self.data = data
        self.authinfo = authinfo    # [(scheme, id)] or None

    def encode(self) -> bytes:
        out = bytearray(_HDR.pack(self.type, self.zxid))
        if self.data is None:
            out += _I.pack(-1)
        else:
            out += _I.pack(len(self.data)) + self.data
        if self.authinfo is None:
            out += _I.pack(-1)
        else:
            out += _I.pack(len(self.authinfo))
            for scheme, ident in self.authinfo:
                for s in (scheme, ident):
                    b = s.encode()
                    out += _I.pack(len(b)) + b
        return bytes(out)

    def __repr__(self):
        name = PACKET_NAMES.get(self.type, str(self.type))
        return f"QuorumPacket({name}, 0x{self.zxid & 0xFFFFFFFFFFFFFFFF:x}, {len(self.data or b'')} bytes)"


class NeedMore(Exception):
    """Not enough bytes yet; the reader rewinds to its mark."""


class PacketStream:
    """Bytes in, whole QuorumPackets out. `read_*` consume from the buffer and raise NeedMore when
    it is short; a caller that reads a multi-field item marks first and rewinds on NeedMore."""

    def __init__(self, max_buffer: int):
        self.max_buffer = max_buffer     # jute.maxbuffer: the bound on any one length
        self.buf = bytearray()           # bytes pos..end are unread; the rest is room, reused
        self.pos = 0
        self.end = 0
        self.mark_pos = 0

    def feed(self, data) -> None:
        """Copy `data` in after what is unread. The buffer keeps its size (the unread bytes move to
        its front when the room at its end runs out) and doubles only when too small: on PyPy, a
        bytearray appended to and cut at its front gets new storage each time, and that garbage (1.3x
        the bytes fed) is freed only at the next major collection: a 188 MB SNAP peaked ~120 MB higher."""
        n = len(data)
        end = self.make_room(n)
        self.buf[end:end + n] = data
        self.end = end + n

    def make_room(self, n: int) -> int:
        """Room for n more bytes at `end` (returned): the unread bytes move to the front, or the
        buffer doubles. A reader that receives into the buffer itself (`room`, `filled`) makes no
        bytes objects at all."""
        buf, pos, end = self.buf, self.pos, self.end
        if end + n > len(buf):
            live = end - pos     # a mark is only rewound to before more bytes come, as before
            if live + n > len(buf):
                grown = bytearray(max(2 * len(buf), live + n, 1 << 16))
                grown[:live] = buf[pos:end]
                self.buf = grown
            elif live:
                buf[:live] = buf[pos:end]
            self.pos, self.mark_pos, self.end = 0, self.mark_pos - pos, live
        return self.end

    def room(self, n: int) -> memoryview:
        """A writable view of n bytes after what is unread; `filled(k)` once k of them are written."""
        end = self.make_room(n)
        return memoryview(self.buf)[end:end + n]

    def filled(self, k: int) -> None:
        self.end += k

    def unread(self) -> int:
        return self.end - self.pos

    def mark(self) -> None:
        self.mark_pos = self.pos

    def rewind(self) -> None:
        self.pos = self.mark_pos

    def _take(self, n: int) -> int:
        p = self.pos
        if p + n > self.end:
            raise NeedMore
        self.pos = p + n
        return p

    def read_int(self) -> int:
        return _I.unpack_from(self.buf, self._take(4))[0]

    def read_long(self) -> int:
        return _Q.unpack_from(self.buf, self._take(8))[0]

    def read_buffer(self, what: str) -> bytes | None:
        n = self.read_int()
        if n == -1:
            return None
        if n < 0 or n > self.max_buffer:
            raise QuorumWireError(f"{what}: length {n} outside 0..{self.max_buffer}")
        p = self._take(n)
        return bytes(self.buf[p:p + n])

    def read_string(self, what: str) -> str | None:
        b = self.read_buffer(what)
        return None if b is None else b.decode("utf-8", "replace")

    def next_packet(self) -> QuorumPacket | None:
        """The next whole packet, or None until more bytes arrive."""
        self.mark()
        try:
            p = self._take(12)
            type_, zxid = _HDR.unpack_from(self.buf, p)
            if type_ not in PACKET_NAMES:
                raise QuorumWireError(f"unknown quorum packet type {type_} (not ZooKeeper 3.8's peer protocol)")
            data = self.read_buffer("packet data")
            n = self.read_int()
            auth = None
            if n >= 0:
                if n > 64:
                    raise QuorumWireError(f"packet authinfo has {n} entries")
                auth = [(self.read_string("auth scheme") or "", self.read_string("auth id") or "") for _ in range(n)]
            return QuorumPacket(type_, zxid, data, auth)
        except NeedMore:
            self.rewind()
            return None


# -- election port ------------------------------------------------------------------------------------
def initial_message(sid: int, election_addr: str) -> bytes:
    a = election_addr.encode()
    return _INITIAL.pack(PROTOCOL_VERSION_V1, sid, len(a)) + a


def parse_initial(b: bytes) -> tuple[int, str, int] | None:
    """(sid, address, bytes used) of a dialer's InitialMessage, or None if incomplete."""
    if len(b) < 8:
        return None
    version = _Q.unpack_from(b, 0)[0]
    if version not in (PROTOCOL_VERSION_V1, PROTOCOL_VERSION_V2):
        raise QuorumWireError(f"election link: protocol version {version}, expected {PROTOCOL_VERSION_V1} "
                              f"or {PROTOCOL_VERSION_V2} (ZooKeeper 3.5+)")
    if len(b) < _INITIAL.size:
        return None
    _, sid, n = _INITIAL.unpack_from(b, 0)
    if n <= 0 or n > INITIAL_MAX_ADDR:
        raise QuorumWireError(f"election link: unreasonable address length {n}")
    if len(b) < _INITIAL.size + n:
        return None
    return sid, b[_INITIAL.size:_INITIAL.size + n].decode("utf-8", "replace"), _INITIAL.size + n


class Notification:
    __slots__ = ("state", "leader", "zxid", "election_epoch", "peer_epoch", "version", "config")

    def __init__(self, state, leader, zxid, election_epoch, peer_epoch, version=NOTIFICATION_VERSION,
                 config=b""):
        self.state = state
        self.leader = leader
        self.zxid = zxid
        self.election_epoch = election_epoch
        self.peer_epoch = peer_epoch
        self.version = version
        self.config = config

    def encode(self) -> bytes:
        body = _NOTE.pack(self.state, self.leader, self.zxid, self.election_epoch, self.peer_epoch,
                          self.version, len(self.config)) + self.config
        return _I.pack(len(body)) + body

    def __repr__(self):
        return (f"Notification({STATE_NAMES.get(self.state, self.state)}, leader={self.leader}, "
                f"zxid=0x{self.zxid:x}, round={self.election_epoch}, peer_epoch={self.peer_epoch})")


def parse_notification(payload: bytes) -> Notification:
    """One election frame's payload, as FastLeaderElection's WorkerReceiver reads it (28/40-byte
    forms of older servers included)."""
    n = len(payload)
    if n < 28:
        raise QuorumWireError(f"election message of {n} bytes (at least 28 expected)")
    state, leader, zxid, ee = struct.unpack_from(">iqqq", payload, 0)
    if n == 28:
        return Notification(state, leader, zxid, ee, zxid >> 32, 0)
    if n < 36:
        raise QuorumWireError(f"election message of {n} bytes")
    peer_epoch = _Q.unpack_from(payload, 28)[0]
    version = _I.unpack_from(payload, 36)[0] if n >= 40 else 0
    config = b""
    if version > 1:
        if n < 44:
            raise QuorumWireError("election message announces a config but has no length")
        cl = _I.unpack_from(payload, 40)[0]
        if cl < 0 or 44 + cl > n:
            raise QuorumWireError(f"election message config length {cl} outside the {n}-byte message")
        config = bytes(payload[44:44 + cl])
    if state not in STATE_NAMES:
        raise QuorumWireError(f"election message with unknown server state {state}")
    return Notification(state, leader, zxid, ee, peer_epoch, version, config)
