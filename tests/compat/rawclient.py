"""A small blocking ZooKeeper client built on coord.jute records and frames.

For what kazoo does not expose (TTL and container creates, addWatch, removeWatches/checkWatches,
multiRead, getEphemerals, getAllChildrenNumber, whoAmI, setWatches/setWatches2 with a chosen
relativeZxid, raw ConnectRequests) and for exact error codes and reply-header zxids. One request at a
time unless `submit`/`wait` are used; watch notifications that arrive meanwhile are kept, in arrival
order, in `events`. It speaks to real ZooKeeper and to coord alike, which is the point.
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

from coord.jute import records as R
from coord.jute.codec import decode
from coord.jute.protocol import OpCode

_LEN = struct.Struct(">i")
_HDR = struct.Struct(">iqi")

OPEN_ACL = [R.ACL(31, R.Id("world", "anyone"))]
READ_ACL = [R.ACL(1, R.Id("world", "anyone"))]

XID_WATCH, XID_PING, XID_AUTH, XID_SET_WATCHES = -1, -2, -4, -8


class ConnectionClosed(Exception):
    pass


@dataclass
class Reply:
    xid: int
    zxid: int
    err: int
    body: bytes
    value: object = None


@dataclass
class Event:
    type: int
    state: int
    path: str

    def key(self):
        return (self.type, self.path)


@dataclass
class RawClient:
    host: str
    port: int
    timeout_ms: int = 30000
    session_id: int = 0
    passwd: bytes = b"\0" * 16
    last_zxid: int = 0
    read_only_byte: bool = True
    sock_timeout: float = 10.0
    events: list = field(default_factory=list)

    def __post_init__(self):
        self.sock: socket.socket | None = None
        self.xid = 0
        self.buf = bytearray()
        self.negotiated_timeout = None
        self.pending: dict[int, Reply] = {}

    # -- transport ----------------------------------------------------------------------------
    def open(self) -> "RawClient":
        self.sock = socket.create_connection((self.host, self.port), timeout=self.sock_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    def close_socket(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
        self.buf.clear()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, payload: bytes) -> None:
        self.sock.sendall(_LEN.pack(len(payload)) + payload)

    def recv_frame(self) -> bytes:
        while True:
            if len(self.buf) >= 4:
                (n,) = _LEN.unpack_from(self.buf, 0)
                if n < 0 or n > 64 << 20:
                    raise ValueError(f"bad frame length {n}")
                if len(self.buf) >= 4 + n:
                    payload = bytes(self.buf[4:4 + n])
                    del self.buf[:4 + n]
                    return payload
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionClosed()
            self.buf += chunk

    def is_closed_by_peer(self, wait: float = 2.0) -> bool:
        """True if the server closes the connection (EOF or reset) within `wait` seconds."""
        self.sock.settimeout(wait)
        try:
            while True:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except OSError:
            return True
        finally:
            if self.sock is not None:
                self.sock.settimeout(self.sock_timeout)

    # -- session ------------------------------------------------------------------------------
    def connect_request_bytes(self) -> bytes:
        body = R.ConnectRequest(0, self.last_zxid, self.timeout_ms, self.session_id, self.passwd).encode()
        if self.read_only_byte:
            body += b"\x00"
        return body

    def connect(self) -> R.ConnectResponse:
        """Open a socket and send ConnectRequest; returns the ConnectResponse (timeOut 0 = refused)."""
        if self.sock is None:
            self.open()
        self.send_frame(self.connect_request_bytes())
        payload = self.recv_frame()
        resp, _ = decode(R.ConnectResponse, payload)
        self.negotiated_timeout = resp.timeOut
        if resp.timeOut > 0:
            self.session_id = resp.sessionId
            self.passwd = resp.passwd
        return resp

    # -- requests -----------------------------------------------------------------------------
    def next_xid(self) -> int:
        self.xid += 1
        return self.xid

    def submit(self, op: int, body: bytes = b"", xid: int | None = None) -> int:
        if xid is None:
            xid = self.next_xid()
        self.send_frame(struct.pack(">ii", xid, op) + body)
        return xid

    def _read_reply(self) -> Reply:
        while True:
            payload = self.recv_frame()
            xid, zxid, err = _HDR.unpack_from(payload, 0)
            if xid == XID_WATCH:
                ev, _ = decode(R.WatcherEvent, payload, 16)
                self.events.append(Event(ev.type, ev.state, ev.path))
                continue
            if zxid > 0:
                self.last_zxid = max(self.last_zxid, zxid)
            return Reply(xid, zxid, err, payload[16:])

    def wait(self, xid: int) -> Reply:
        if xid in self.pending:
            return self.pending.pop(xid)
        while True:
            r = self._read_reply()
            if r.xid == xid:
                return r
            self.pending[r.xid] = r

    def call(self, op: int, body: bytes = b"", xid: int | None = None) -> Reply:
        return self.wait(self.submit(op, body, xid))

    def _typed(self, op: int, rec, resp_cls=None, xid=None) -> Reply:
        r = self.call(op, rec.encode() if rec is not None else b"", xid)
        if r.err == 0 and resp_cls is not None:
            r.value = decode(resp_cls, r.body)[0]
        return r

    # -- the API ------------------------------------------------------------------------------
    def create(self, path, data=b"", acl=None, flags=0, *, op=OpCode.create, ttl=None) -> Reply:
        acl = OPEN_ACL if acl is None else acl
        if op == OpCode.createTTL:
            rec = R.CreateTTLRequest(path, data, acl, flags, -1 if ttl is None else ttl)
        else:
            rec = R.CreateRequest(path, data, acl, flags)
        resp = R.CreateResponse if op == OpCode.create else R.Create2Response
        return self._typed(int(op), rec, resp)

    def delete(self, path, version=-1) -> Reply:
        return self._typed(2, R.DeleteRequest(path, version))

    def exists(self, path, watch=False) -> Reply:
        return self._typed(3, R.ExistsRequest(path, watch), R.Stat)

    def get_data(self, path, watch=False) -> Reply:
        return self._typed(4, R.GetDataRequest(path, watch), R.GetDataResponse)

    def set_data(self, path, data, version=-1) -> Reply:
        return self._typed(5, R.SetDataRequest(path, data, version), R.Stat)

    def get_acl(self, path) -> Reply:
        return self._typed(6, R.GetACLRequest(path), R.GetACLResponse)

    def set_acl(self, path, acl, version=-1) -> Reply:
        return self._typed(7, R.SetACLRequest(path, acl, version), R.Stat)

    def get_children(self, path, watch=False) -> Reply:
        return self._typed(8, R.GetChildrenRequest(path, watch), R.GetChildrenResponse)

    def get_children2(self, path, watch=False) -> Reply:
        return self._typed(12, R.GetChildren2Request(path, watch), R.GetChildren2Response)

    def sync(self, path) -> Reply:
        return self._typed(9, R.SyncRequest(path), R.SyncResponse)

    def ping(self) -> Reply:
        return self.call(11, b"", XID_PING)

    def add_auth(self, scheme, auth: bytes) -> Reply:
        return self._typed(100, R.AuthPacket(0, scheme, auth), xid=XID_AUTH)

    def close_session(self) -> Reply:
        return self.call(-11)

    def set_watches(self, rel_zxid, data=(), exist=(), child=()) -> Reply:
        return self._typed(101, R.SetWatches(rel_zxid, list(data), list(exist), list(child)),
                           xid=XID_SET_WATCHES)

    def set_watches2(self, rel_zxid, data=(), exist=(), child=(), persistent=(), recursive=()) -> Reply:
        return self._typed(105, R.SetWatches2(rel_zxid, list(data), list(exist), list(child),
                                              list(persistent), list(recursive)), xid=XID_SET_WATCHES)

    def add_watch(self, path, mode) -> Reply:
        return self._typed(106, R.AddWatchRequest(path, mode))

    def remove_watches(self, path, wtype) -> Reply:
        return self._typed(18, R.RemoveWatchesRequest(path, wtype))

    def check_watches(self, path, wtype) -> Reply:
        return self._typed(17, R.CheckWatchesRequest(path, wtype))

    def get_ephemerals(self, prefix) -> Reply:
        return self._typed(103, R.GetEphemeralsRequest(prefix), R.GetEphemeralsResponse)

    def get_all_children_number(self, path) -> Reply:
        return self._typed(104, R.GetAllChildrenNumberRequest(path), R.GetAllChildrenNumberResponse)

    def whoami(self) -> Reply:
        return self._typed(107, None, R.WhoAmIResponse)

    # -- multi ---------------------------------------------------------------------------------
    @staticmethod
    def encode_ops(ops) -> bytes:
        """ops: [(opcode, record)] -> multi body."""
        out = bytearray()
        for op, rec in ops:
            out += R.MultiHeader(int(op), False, -1).encode()
            out += rec.encode()
        out += R.MultiHeader(-1, True, -1).encode()
        return bytes(out)

    @staticmethod
    def decode_multi(body: bytes) -> list[tuple[int, int, object]]:
        """multi / multiRead response body -> [(type, err, value)]."""
        out = []
        p = 0
        while True:
            h, p = decode(R.MultiHeader, body, p)
            if h.done:
                return out
            if h.type == -1:
                e, p = decode(R.ErrorResponse, body, p)
                out.append((-1, e.err, None))
                continue
            cls = {1: R.CreateResponse, 15: R.Create2Response, 19: R.Create2Response,
                   21: R.Create2Response, 5: R.Stat, 4: R.GetDataResponse,
                   8: R.GetChildrenResponse}.get(h.type)
            val = None
            if cls is not None:
                val, p = decode(cls, body, p)
            out.append((h.type, h.err, val))

    def multi(self, ops) -> Reply:
        r = self.call(14, self.encode_ops(ops))
        if r.err == 0:
            r.value = self.decode_multi(r.body)
        return r

    def multi_read(self, ops) -> Reply:
        r = self.call(22, self.encode_ops(ops))
        if r.err == 0:
            r.value = self.decode_multi(r.body)
        return r

    # -- helpers --------------------------------------------------------------------------------
    def start(self) -> "RawClient":
        resp = self.connect()
        if resp.timeOut <= 0:
            raise ConnectionClosed(f"session refused: {resp}")
        return self

    def stop(self) -> None:
        if self.sock is not None:
            try:
                self.close_session()
            except (OSError, ConnectionClosed):
                pass
            self.close_socket()

    def drain_events(self) -> list[Event]:
        """Everything notified up to now: a ping's reply follows every earlier notification."""
        self.ping()
        ev, self.events = self.events, []
        return ev


def parse_hostport(s: str) -> tuple[str, int]:
    host, port = s.rsplit(":", 1)
    return host, int(port)
