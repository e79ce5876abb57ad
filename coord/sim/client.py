"""A simulated ZooKeeper client: real wire frames into a server's ServerCore, and its own checks.

It keeps a session across reconnects (id, password, lastZxidSeen) the way the Java client does,
pings at a third of its timeout, gives up on a silent server after two thirds of it and tries
another, and issues a mix of creates (persistent, ephemeral, sequential), conditional setData
(versions as a compare-and-set register), deletes, reads with watches, sync, multi and closeSession.
A client may die (its connection drops, or it just stops: SIGSTOP) so that its session must expire.

What it checks on every frame: replies come in request order; reply zxids never go back; a write
reply means the write is in the committed sequence (checker.write_acked); every watch event answers
a watch this connection set and has not yet fired (once), and no reply reflecting a change arrives
before the event for that change (in order).
"""
from __future__ import annotations

import struct
from collections import deque

from coord.jute import records as R
from coord.jute.codec import decode

_LEN = struct.Struct(">i")
OPEN_ACL = [R.ACL(31, R.Id("world", "anyone"))]
WRITE_NAMES = {1: "create", 2: "delete", 5: "setData", 14: "multi", -11: "closeSession"}


class SimClient:
    def __init__(self, world, cid: int, rng, timeout_ms: int):
        self.world = world
        self.cid = cid
        self.rng = rng
        self.timeout_ms = timeout_ms
        self.session_id = 0
        self.passwd = b"\0" * 16
        self.negotiated = timeout_ms
        self.last_zxid = 0
        self.state = "disconnected"
        self.node = None
        self.conn = None
        self.inc = 0
        self.xid = 0
        self.inflight: deque = deque()
        self.buf = b""
        self.watch_data: dict[str, int] = {}
        self.watch_child: dict[str, int] = {}
        self.versions: dict[str, int] = {}
        self.eph = 0
        self.max_inflight = rng.choice([1, 1, 2, 4])
        self.last_sent = 0
        self.connect_started = 0
        self.dead_at: int | None = None
        self.hung = False
        self.sessions_made: list[int] = []
        self.ops_ok = 0
        self.expired_sessions = 0
        self.paused = False
        self.workload = True
        self.send_at = 0

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        self.world.after(self.rng.randint(0, 50), self.act)

    def die(self, hang: bool) -> None:
        """The client process stops (hang: SIGSTOP, its connection stays open) or exits."""
        if self.dead_at is not None:
            return
        self.dead_at = self.world.now
        self.hung = hang
        if not hang and self.conn is not None and self.node is not None:
            self.node.client_close(self.inc, self.conn)
            self.conn = None
        self.state = "dead"

    def act(self) -> None:
        if self.state == "dead":
            return
        w = self.world
        now = w.now
        if self.state == "disconnected":
            if not self.paused:
                self.connect()
        elif self.state == "connecting":
            if now - self.connect_started > self.negotiated * 2 // 3:
                self.drop_connection()
        elif self.state == "connected":
            if self.inflight and now - self.inflight[0][3] > self.negotiated * 2 // 3:
                self.drop_connection()
            elif self.workload and not self.paused and len(self.inflight) < self.max_inflight \
                    and self.rng.random() < 0.5:
                self.issue()
            elif now - self.last_sent >= self.negotiated // 3:
                self.request(-2, 11, b"", None)
        w.after(self.rng.randint(5, 40), self.act)

    def connect(self) -> None:
        w = self.world
        nodes = [n for n in w.nodes.values()]
        node = self.rng.choice(nodes)
        conn = node.client_connect(self)
        if conn is None:
            return
        self.node = node
        self.conn = conn
        self.inc = node.incarnation
        self.buf = b""
        self.state = "connecting"
        self.connect_started = w.now
        req = R.ConnectRequest(0, self.last_zxid, self.timeout_ms, self.session_id, self.passwd)
        self._send(req.encode())

    def drop_connection(self) -> None:
        if self.conn is not None and self.node is not None:
            self.node.client_close(self.inc, self.conn)
        self._lost()

    def closed(self, conn: int) -> None:
        if conn == self.conn:
            self._lost()

    def _lost(self) -> None:
        self.conn = None
        self.node = None
        self.inflight.clear()
        self.watch_data.clear()
        self.watch_child.clear()
        if self.state != "dead":
            self.state = "disconnected"

    def _send(self, payload: bytes) -> None:
        w = self.world
        self.last_sent = w.now
        self.send_at = max(w.now + self.rng.randint(1, 3), self.send_at)     # TCP: in order
        w.at(self.send_at, self.node.client_frame, self.inc, self.conn, payload)

    def request(self, xid: int, op: int, body: bytes, info) -> None:
        self.inflight.append((xid, op, info, self.world.now))
        self._send(R.RequestHeader(xid, op).encode() + body)

    # -- the workload ---------------------------------------------------------------------------------
    def issue(self) -> None:
        r = self.rng
        self.xid += 1
        x = self.xid
        k = f"/k{r.randrange(8)}"
        roll = r.random()
        data = f"{self.cid}:{x}".encode()
        if roll < 0.16:
            self.request(x, 1, R.CreateRequest(k, data, OPEN_ACL, 0).encode(), k)
        elif roll < 0.24:
            self.eph += 1
            p = f"/e{self.cid}x{self.eph}"
            self.request(x, 1, R.CreateRequest(p, data, OPEN_ACL, 1).encode(), p)
        elif roll < 0.30:
            self.request(x, 1, R.CreateRequest("/s", b"", OPEN_ACL, 0).encode(), "/s")
        elif roll < 0.36:
            self.request(x, 1, R.CreateRequest("/s/q-", data, OPEN_ACL, 2 | (r.random() < 0.5)).encode(), "/s/q-")
        elif roll < 0.52:
            v = self.versions.get(k, -1) if r.random() < 0.8 else -1
            self.request(x, 5, R.SetDataRequest(k, data, v).encode(), k)
        elif roll < 0.58:
            self.request(x, 2, R.DeleteRequest(k, -1).encode(), k)
        elif roll < 0.76:
            w = r.random() < 0.5
            self.request(x, 4, R.GetDataRequest(k, w).encode(), (k, w))
        elif roll < 0.82:
            w = r.random() < 0.5
            self.request(x, 3, R.ExistsRequest(k, w).encode(), (k, w))
        elif roll < 0.87:
            w = r.random() < 0.3
            self.request(x, 8, R.GetChildrenRequest("/", w).encode(), ("/", w))
        elif roll < 0.92:
            self.request(x, 9, R.SyncRequest("/").encode(), "/")
        elif roll < 0.985:
            m = f"/m{r.randrange(4)}"
            body = (R.MultiHeader(1, False, -1).encode() + R.CreateRequest(m, data, OPEN_ACL, 0).encode()
                    + R.MultiHeader(5, False, -1).encode() + R.SetDataRequest(k, data, -1).encode()
                    + R.MultiHeader(-1, True, -1).encode())
            self.request(x, 14, body, m)
        else:
            self.request(x, -11, b"", None)

    # -- replies ----------------------------------------------------------------------------------------
    def receive(self, conn: int, data: bytes) -> None:
        if conn != self.conn or self.state == "dead" and self.hung:
            return
        buf = self.buf + data
        p = 0
        while len(buf) - p >= 4:
            n = _LEN.unpack_from(buf, p)[0]
            if len(buf) - p - 4 < n:
                break
            frame = buf[p + 4:p + 4 + n]
            p += 4 + n
            self.frame(frame)
            if conn != self.conn:
                return
        self.buf = buf[p:]

    def fail(self, msg: str) -> None:
        self.world.checker.fail(f"client {self.cid} (session 0x{self.session_id:x}): {msg}")

    def frame(self, frame: bytes) -> None:
        if self.state == "connecting":
            resp = decode(R.ConnectResponse, frame)[0]
            if resp.sessionId == 0 or resp.timeOut <= 0:
                if self.session_id:
                    self.expired_sessions += 1
                self.session_id = 0
                self.passwd = b"\0" * 16
                self.drop_connection()
                return
            if self.session_id and resp.sessionId != self.session_id:
                self.fail(f"reconnect gave session 0x{resp.sessionId:x}")
            if not self.session_id:
                self.sessions_made.append(resp.sessionId)
            self.session_id = resp.sessionId
            self.passwd = resp.passwd
            self.negotiated = resp.timeOut
            self.state = "connected"
            return
        hdr, p = decode(R.ReplyHeader, frame)
        if hdr.xid == -1:
            ev = decode(R.WatcherEvent, frame, p)[0]
            self.event(ev.type, ev.path)
            return
        if not self.inflight:
            self.fail(f"reply xid {hdr.xid} with nothing in flight")
        xid, op, info, _t = self.inflight.popleft()
        if hdr.xid != xid:
            self.fail(f"reply xid {hdr.xid} where {xid} was next: out of order")
        z = hdr.zxid
        if z < self.last_zxid:
            self.fail(f"reply zxid 0x{z:x} went back from 0x{self.last_zxid:x} (op {op})")
        self.last_zxid = z
        chk = self.world.checker
        for path, reg in self.watch_data.items():
            c = chk.first_change(path, reg, False)
            if c is not None and c <= z:
                self.fail(f"reply at 0x{z:x} before the data watch event on {path} for 0x{c:x}")
        for path, reg in self.watch_child.items():
            c = chk.first_change(path, reg, True)
            if c is not None and c <= z:
                self.fail(f"reply at 0x{z:x} before the child watch event on {path} for 0x{c:x}")
        err = hdr.err
        if op in WRITE_NAMES and err == 0:
            chk.write_acked(self.session_id, xid, z, WRITE_NAMES[op])
            self.ops_ok += 1
        if op == 4 and err == 0:
            body = frame[p:]
            ln = struct.unpack_from(">i", body, 0)[0]
            stat = decode(R.Stat, body, 4 + max(ln, 0))[0]
            self.versions[info[0]] = stat.version
            if info[1]:
                self.watch_data.setdefault(info[0], z)
        elif op == 3 and err in (0, -101):
            if info[1]:
                self.watch_data.setdefault(info[0], z)
        elif op == 8 and err == 0 and info[1]:
            self.watch_child.setdefault(info[0], z)
        elif op == 5:
            if err == 0:
                self.versions[info] = decode(R.Stat, frame, p)[0].version
            else:
                self.versions.pop(info, None)
        elif op == -11 and err == 0:
            self.session_id = 0
            self.passwd = b"\0" * 16
            self.drop_connection()

    def event(self, etype: int, path: str) -> None:
        chk = self.world.checker
        if etype == 4:
            reg = self.watch_child.pop(path, None)
            if reg is None:
                self.fail(f"child event on {path} without a pending child watch (fired twice?)")
            c = chk.first_change(path, reg, True)
        elif etype == 2:
            reg_d = self.watch_data.pop(path, None)
            reg_c = self.watch_child.pop(path, None)
            if reg_d is None and reg_c is None:
                self.fail(f"delete event on {path} without a pending watch (fired twice?)")
            reg = min(r for r in (reg_d, reg_c) if r is not None)
            c = chk.first_change(path, reg, reg_d is None)
        else:
            reg = self.watch_data.pop(path, None)
            if reg is None:
                self.fail(f"event {etype} on {path} without a pending watch (fired twice?)")
            c = chk.first_change(path, reg, False)
        if c is None:
            self.fail(f"event {etype} on {path}, but nothing changed it after 0x{reg:x}")
