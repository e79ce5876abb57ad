"""Drive a pure ServerCore in memory: frames in, replies/events out, durability on demand."""
from __future__ import annotations

import struct

from coord.core.config import CoreConfig
from coord.core.server import ServerCore
from coord.jute import records as R
from coord.jute.codec import decode

OPEN = [R.ACL(31, R.Id("world", "anyone"))]


class Reply:
    def __init__(self, xid, zxid, err, body):
        self.xid, self.zxid, self.err, self.body = xid, zxid, err, body

    def record(self, cls):
        return decode(cls, self.body, exact=True)[0]

    def __repr__(self):
        return f"Reply(xid={self.xid}, zxid={self.zxid}, err={self.err}, {len(self.body)}B)"


class Harness:
    def __init__(self, config: CoreConfig | None = None, now: int = 1_000_000):
        self.core = ServerCore(config or CoreConfig())
        self.now = now
        self.core.start(now, now)
        self.next_conn = 1
        self.inbox: dict[int, list] = {}
        self.closed: set[int] = set()

    def advance(self, ms: int) -> None:
        self.now += ms
        self.core.set_time(self.now, self.now)
        self.core.tick()
        self.pump()

    def durable(self) -> None:
        """Report everything prepared so far as fsynced."""
        self.core.sequencer.drain_log()
        self.core.sequencer.on_logged(1 << 62)
        self.pump()

    def pump(self) -> None:
        out, closing = self.core.drain()
        for cid, chunks in out.items():
            buf = b"".join(chunks)
            p = 0
            while p < len(buf):
                (n,) = struct.unpack_from(">i", buf, p)
                self.inbox.setdefault(cid, []).append(buf[p + 4:p + 4 + n])
                p += 4 + n
        for cid in closing:
            self.closed.add(cid)
            self.core.connection_lost(cid)

    def connect(self, timeout=30000, session_id=0, passwd=bytes(16), last_zxid=0, durable=True):
        cid = self.next_conn
        self.next_conn += 1
        self.core.connection_made(cid, "127.0.0.1:40000")
        self.core.frame(cid, R.ConnectRequest(0, last_zxid, timeout, session_id, passwd).encode() + b"\0")
        self.pump()
        if durable:
            self.durable()
        return Client(self, cid)


class Client:
    def __init__(self, h: Harness, cid: int):
        self.h = h
        self.cid = cid
        self.xid = 0
        raw = h.inbox.get(cid, [])
        self.connect_response = decode(R.ConnectResponse, raw.pop(0))[0] if raw else None

    @property
    def session_id(self):
        return self.connect_response.sessionId

    def send(self, op: int, rec=None, raw: bytes = b"", xid=None) -> int:
        if xid is None:
            self.xid += 1
            xid = self.xid
        body = rec.encode() if rec is not None else raw
        self.h.core.frame(self.cid, R.RequestHeader(xid, op).encode() + body)
        self.h.pump()
        return xid

    def received(self) -> list:
        msgs = self.h.inbox.pop(self.cid, [])
        out = []
        for m in msgs:
            xid, zxid, err = struct.unpack_from(">iqi", m, 0)
            out.append(Reply(xid, zxid, err, m[16:]))
        return out

    def call(self, op: int, rec=None, raw: bytes = b"") -> Reply:
        xid = self.send(op, rec, raw)
        self.h.durable()
        replies = [r for r in self.received() if r.xid == xid]
        assert len(replies) == 1, replies
        return replies[0]

    def ping(self) -> Reply:
        self.send(11, xid=-2)
        got = [r for r in self.received() if r.xid == -2]
        assert len(got) == 1, got
        return got[0]

    def create(self, path, data=b"", flags=0, acl=None):
        return self.call(1, R.CreateRequest(path, data, OPEN if acl is None else acl, flags))

    def create2(self, path, data=b"", flags=0):
        return self.call(15, R.CreateRequest(path, data, OPEN, flags))

    def get(self, path, watch=False):
        return self.call(4, R.GetDataRequest(path, watch))

    def stat(self, path) -> R.Stat | None:
        r = self.call(3, R.ExistsRequest(path, False))
        return r.record(R.Stat) if r.err == 0 else None

    def set(self, path, data, version=-1):
        return self.call(5, R.SetDataRequest(path, data, version))

    def delete(self, path, version=-1):
        return self.call(2, R.DeleteRequest(path, version))

    def children(self, path, watch=False):
        r = self.call(8, R.GetChildrenRequest(path, watch))
        return sorted(r.record(R.GetChildrenResponse).children) if r.err == 0 else r.err


def events(replies):
    out = []
    for r in replies:
        if r.xid == -1:
            e = r.record(R.WatcherEvent)
            out.append((e.type, e.path))
    return out
