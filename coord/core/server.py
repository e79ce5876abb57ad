"""The per-server request machine: frames from client connections in; replies, events and effects out.

Theory. Each connection's replies leave in request order (the Java client drops the connection on an
out-of-order xid). A connection therefore owns a FIFO of Pending entries: a reply already made, a
write waiting for its txn to commit, or a read deferred until everything before it has completed (so
a session reads its own writes). Reads with nothing queued ahead are answered at once.

Every write request becomes exactly one txn, an error txn included, as in ZooKeeper: the sequencer
(this server in standalone, the Zab leader in an ensemble) prepares it against the tree plus the
outstanding changes, stamps zxid and time, and hands it to replication. Durability arrives as an
input: commit() is called only for a txn that is on disk on a quorum, and it is commit() that applies
the txn, fires watches and completes the Pending entry of the connection that asked, wherever it is.

Effects leave through three outboxes that the shell (or the simulator) drains after every input:
`out` (bytes per connection), `closing` (connections to close once their bytes are written), and the
sequencer's own (txns to log). No socket, file or clock is touched here: time is set by the caller
through `now_ms` (wall, for txn stamps) and `mono_ms` (for expiry).
"""
from __future__ import annotations

import struct
from collections import deque

from coord.core import acl as aclmod
from coord.core.config import CoreConfig
from coord.core.datatree import DataTree, TxnResult, acl_records, is_session_owner
from coord.core.javaorder import hashset_clone_order
from coord.core.paths import ROOT
from coord.core.prep import MULTI_OPS, Prep, PrepError
from coord.core.quota import QuotaEnforcer
from coord.core.reqthrottle import RequestThrottler
from coord.core.throttle import BlueThrottle
from coord.core.sasl import SaslExchange
from coord.core.sessions import SessionTracker, session_password
from coord.core.watches import WatchManager
from coord.jute import records as R
from coord.jute.codec import JuteError, decode, read_bool
from coord.jute.protocol import Err, KeeperState, OpCode, Perms, WatcherType

_REPLY = struct.Struct(">iiqi")         # frame length, xid, zxid, err
_GETDATA_HDR = struct.Struct(">iiqii")  # frame length, xid, zxid, err, data length
_CREATE_HDR = _GETDATA_HDR              # ... path length
_HEADER = struct.Struct(">ii").unpack_from
_READ = int(Perms.READ)
_LEN = struct.Struct(">i")
_ZXID_AT = struct.Struct(">q")
_MULTI_END = R.MultiHeader(-1, True, -1).encode()
# A multi reply's per-op headers: the successful ones are constants; a failed op is its header
# (type -1, done false, err) and then the error code again as its ErrorResponse.
_MULTI_OK = {t: R.MultiHeader(t, False, 0).encode() for t in (1, 2, 5, 13, 15)}
_MULTI_ERR = struct.Struct(">i?ii")
_SYNC_CONNECTED = int(KeeperState.SyncConnected)
_UNTHROTTLED = frozenset(struct.pack(">i", op) for op in (100, 102))   # auth, sasl: never held

# Pending entry states
READY, WAIT_COMMIT, DEFERRED = 0, 1, 2
# The request record of a write whose body did not decode (it becomes a MARSHALLINGERROR error txn),
# and of a client's deleteContainer (BADARGUMENTS).
MALFORMED = R.ErrorTxn(int(Err.MARSHALLINGERROR))
REFUSED = R.ErrorTxn(int(Err.BADARGUMENTS))

WRITE_OPS = frozenset(int(o) for o in (
    OpCode.create, OpCode.delete, OpCode.setData, OpCode.setACL, OpCode.check, OpCode.multi,
    OpCode.create2, OpCode.createContainer, OpCode.createTTL, OpCode.deleteContainer,
    OpCode.reconfig, OpCode.closeSession))

REQUEST_RECORD = {
    1: R.CreateRequest, 2: R.DeleteRequest, 3: R.ExistsRequest, 4: R.GetDataRequest,
    5: R.SetDataRequest, 6: R.GetACLRequest, 7: R.SetACLRequest, 8: R.GetChildrenRequest,
    9: R.SyncRequest, 12: R.GetChildren2Request, 13: R.CheckVersionRequest, 15: R.CreateRequest,
    16: R.ReconfigRequest, 17: R.CheckWatchesRequest, 18: R.RemoveWatchesRequest,
    19: R.CreateRequest, 21: R.CreateTTLRequest, 101: R.SetWatches, 103: R.GetEphemeralsRequest,
    104: R.GetAllChildrenNumberRequest, 105: R.SetWatches2, 106: R.AddWatchRequest,
}
KNOWN_OPS = frozenset(int(o) for o in OpCode) - {0, -1, -10}
# Writes whose body is exactly one request record (decoded without _decode_write's dispatch).
_ONE_RECORD_WRITES = {op: REQUEST_RECORD[op] for op in WRITE_OPS if op in REQUEST_RECORD}


class Pending:
    __slots__ = ("xid", "state", "reply", "op", "req", "t0")

    def __init__(self, xid, state, reply=None, op=0, req=None, t0=0):
        self.xid = xid
        self.state = state
        self.reply = reply
        self.op = op
        self.req = req
        self.t0 = t0


class Connection:
    __slots__ = ("conn_id", "remote", "session_id", "auth", "queue", "established", "closing",
                 "client_read_only", "packets_received", "packets_sent", "last_op", "last_zxid",
                 "last_latency", "min_latency", "max_latency", "total_latency", "completed",
                 "connected_at", "last_cxid", "close_requested", "last_response", "sasl", "held")

    def __init__(self, conn_id: int, remote: str, now: int):
        self.conn_id = conn_id
        self.remote = remote
        self.session_id = 0
        ip = remote.rsplit(":", 1)[0].strip("[]") if remote else ""
        self.auth: tuple = (("ip", ip),) if ip else ()
        self.queue: deque[Pending] = deque()
        self.established = False
        self.closing = False
        self.close_requested = False
        self.client_read_only = None
        self.packets_received = 0
        self.packets_sent = 0
        self.last_op = "NA"
        self.last_zxid = 0
        self.last_latency = 0
        self.min_latency = -1
        self.max_latency = 0
        self.total_latency = 0
        self.completed = 0
        self.connected_at = now
        self.last_cxid = 0
        self.last_response = now
        self.sasl = None   # the connection's SaslExchange, from its first SASL packet
        self.held: list[bytes] | None = None   # frames pipelined behind a ConnectRequest in progress


class Request:
    """A write on its way to the sequencer: who asked, what, with which identities."""

    __slots__ = ("session_id", "cxid", "type", "req", "auth", "origin", "frame")

    def __init__(self, session_id, cxid, type_, req, auth, origin=None, frame=None):
        self.session_id = session_id
        self.cxid = cxid
        self.type = type_
        self.req = req
        self.auth = auth
        self.origin = origin
        # The client's whole frame when req is exactly its body (from byte 8), or is a multi the
        # body decodes to: a learner forwards those bytes to the leader instead of encoding req again.
        self.frame = frame


class ServerStats:
    __slots__ = ("packets_received", "packets_sent", "min_latency", "max_latency", "total_latency",
                 "completed", "outstanding")

    def __init__(self):
        self.reset()

    def reset(self):
        self.packets_received = 0
        self.packets_sent = 0
        self.min_latency = -1
        self.max_latency = 0
        self.total_latency = 0
        self.completed = 0
        self.outstanding = 0


class StandaloneSequencer:
    """Prepare and stamp txns locally; they commit once the shell reports them durable."""

    def __init__(self, server: "ServerCore"):
        self.server = server
        self.to_log: list[tuple[R.TxnHeader, object]] = []
        self.unsynced: deque[tuple[R.TxnHeader, object]] = deque()

    def submit(self, request: Request) -> None:
        hdr, txn = self.server.prepare(request)
        self.to_log.append((hdr, txn))
        self.unsynced.append((hdr, txn))

    def on_logged(self, zxid: int) -> None:
        """The log is durable up to zxid: commit everything up to it, in order."""
        q = self.unsynced
        while q and q[0][0].zxid <= zxid:
            hdr, txn = q.popleft()
            self.server.commit(hdr, txn)

    def drain_log(self) -> list:
        out = self.to_log
        self.to_log = []
        return out

    def unlogged(self) -> bool:
        """Txns prepared since the last drain_log (e.g. admitted by the request throttler when a
        commit finished a request): the shell logs them on its next turn, not its next tick."""
        return bool(self.to_log)

    def on_log_failed(self, err: int = -1) -> None:
        """The log could not make the unsynced txns durable (disk full, I/O error): none happened."""
        failed = list(self.unsynced)
        self.unsynced.clear()
        self.to_log = []
        self.server.abort_txns(failed, err)

    def sync(self, conn: Connection, pending: Pending) -> None:
        pending.state = DEFERRED


class ServerCore:
    def __init__(self, config: CoreConfig | None = None, tree: DataTree | None = None):
        self.config = config or CoreConfig()
        self.watches = WatchManager()
        self.tree = tree or DataTree()
        self.tree.watches = self.watches
        self.adopt_newest_config(self.tree)
        self.quota = QuotaEnforcer(self.tree) if self.config.enforce_quota else None
        if self.quota is not None:
            self.quota.log = self.log
        self.prep = self.new_prep(self.tree)
        rt = self.config.request_throttle
        self.req_throttle = RequestThrottler(*rt, self.config.max_queued_per_connection) if rt else None
        self._releasing = False
        ct = self.config.connection_throttle
        self.conn_throttle = BlueThrottle(ct, 0) if ct is not None and ct.tokens else None
        self.now_ms = 0
        self.mono_ms = 0
        self.sessions = SessionTracker(self.config.tick_ms, self.config.server_id)
        self.conns: dict[int, Connection] = {}
        self.session_conn: dict[int, int] = {}
        self.waiting: dict[tuple[int, int], tuple[int, Pending]] = {}
        self.connecting: dict[int, tuple[int, bool, int]] = {}
        self.out: dict[int, list[bytes]] = {}
        self.closing: set[int] = set()
        self.next_zxid_counter = 0
        self.sequencer = StandaloneSequencer(self)
        self.stats = ServerStats()
        self.next_container_check = 0
        self.serving = True
        self.mode = "standalone"
        self.log_lines: list[str] = []
        # Sessions known only to this server (ZooKeeper's local sessions, and every session a
        # read-only server makes): no createSession txn, expired here, never seen by the leader.
        self.local_sessions: set[int] = set()
        self.reconfig_pending = 0
        self.request_stats = None   # coord.core.requeststats.RequestStats, while metrics are on
        self._init_sessions_from_tree()

    def adopt_newest_config(self, tree: DataTree) -> None:
        """/zookeeper/config in `tree` becomes the newer of its own and ours (config_data): a tree
        from a snapshot may carry a reconfig committed after the configuration we started from."""
        if not self.config.config_data:
            return
        from coord.core import reconfig as rc
        node = tree.nodes["/zookeeper/config"]
        if node.data and rc.version_of(node.data) > rc.version_of(self.config.config_data):
            self.config.config_data = node.data
            return
        node.data = self.config.config_data
        node.version = -1     # ZooKeeper sets it with DataTree.setData(..., version -1, ...)

    def set_config(self, data: bytes) -> None:
        """A committed configuration newer than the one in /zookeeper/config (the Zab peer learnt it
        other than by applying its reconfig txn)."""
        from coord.core import reconfig as rc
        if rc.version_of(data) > rc.version_of(self.config.config_data or self.tree.nodes["/zookeeper/config"].data):
            self.config.config_data = data
            self.tree.nodes["/zookeeper/config"].data = data

    # -- time and identity --------------------------------------------------------------------
    def collect_request_stats(self, stats) -> None:
        """Count bytes per namespace and read/update latencies into stats (None: stop)."""
        self.request_stats = stats
        self.tree.write_stats = stats

    def set_time(self, now_ms: int, mono_ms: int) -> None:
        self.now_ms = now_ms
        self.mono_ms = mono_ms

    def _init_sessions_from_tree(self) -> None:
        """Sessions restored from disk get a fresh full timeout, as ZooKeeper does on load."""
        for sid, timeout in self.tree.sessions.items():
            self.sessions.add(sid, timeout, self.mono_ms)
        self.next_zxid_counter = self.tree.last_zxid

    def replace_tree(self, tree: DataTree, why: str) -> None:
        """Install a whole new tree on a standalone server (3.9's AdminServer `restore`): sessions it
        does not hold end (their connections close; the clients find them expired), the others get
        a fresh full timeout, as after a load. Watches stay registered."""
        tree.watches = self.watches
        self.adopt_newest_config(tree)
        self.tree = tree
        self.prep = Prep(tree, extended_types=self.config.extended_types)
        live = tree.sessions
        for sid in [sid for sid in self.sessions.sessions if sid not in live]:
            self.sessions.remove(sid)
        for sid, timeout in live.items():
            self.sessions.add(sid, timeout, self.mono_ms)
        self.next_zxid_counter = tree.last_zxid
        for conn in list(self.conns.values()):
            if conn.established and conn.session_id not in live and not conn.closing:
                self._close(conn, why)

    def start(self, now_ms: int, mono_ms: int) -> None:
        """The first input: seeds session ids from the clock, re-arms restored sessions' timeouts."""
        self.set_time(now_ms, mono_ms)
        self.sessions = SessionTracker(self.config.tick_ms, self.config.server_id, now_ms)
        for sid, timeout in self.tree.sessions.items():
            self.sessions.add(sid, timeout, mono_ms)
        self.next_container_check = mono_ms + self.config.container_check_interval_ms
        if self.conn_throttle is not None:
            self.conn_throttle.last_ms = self.conn_throttle.last_freeze_ms = mono_ms

    def new_prep(self, tree: DataTree) -> Prep:
        """A Prep over tree (a new one after SNAP replaced the tree), with this server's checks."""
        if self.quota is not None:
            self.quota.tree = tree
        return Prep(tree, extended_types=self.config.extended_types, quota=self.quota)

    def next_zxid(self) -> int:
        self.next_zxid_counter += 1
        return self.next_zxid_counter

    def log(self, msg: str) -> None:
        self.log_lines.append(msg)

    # -- outboxes -----------------------------------------------------------------------------
    def drain(self) -> tuple[dict[int, list[bytes]], set[int]]:
        out, closing = self.out, self.closing
        self.out = {}
        self.closing = set()
        return out, closing

    def _send(self, conn: Connection, data: bytes) -> None:
        chunks = self.out.get(conn.conn_id)
        if chunks is None:
            self.out[conn.conn_id] = [data]
        else:
            chunks.append(data)
        conn.packets_sent += 1
        self.stats.packets_sent += 1

    def _close(self, conn: Connection, why: str | None = None) -> None:
        if why:
            self.log(f"closing connection {conn.conn_id} ({conn.remote}): {why}")
        conn.closing = True
        self.closing.add(conn.conn_id)

    # -- connections ----------------------------------------------------------------------------
    def connection_made(self, conn_id: int, remote: str, identities: tuple = ()) -> None:
        """`identities`: what the transport proved (a TLS client certificate: x509, super)."""
        conn = self.conns[conn_id] = Connection(conn_id, remote, self.mono_ms)
        if identities:
            conn.auth = conn.auth + tuple(identities)

    def connection_lost(self, conn_id: int) -> None:
        conn = self.conns.pop(conn_id, None)
        self.out.pop(conn_id, None)
        self.closing.discard(conn_id)
        if conn is None:
            return
        self.watches.remove_watcher(conn_id)
        if conn.session_id and self.session_conn.get(conn.session_id) == conn_id:
            del self.session_conn[conn.session_id]
        for key in [k for k, (cid, _) in self.waiting.items() if cid == conn_id]:
            del self.waiting[key]
            self.stats.outstanding -= 1

    def frame(self, conn_id: int, payload: bytes) -> None:
        """One whole frame from a connection."""
        conn = self.conns.get(conn_id)
        if conn is None or conn.closing:
            return
        conn.packets_received += 1
        self.stats.packets_received += 1
        try:
            if not conn.established:
                if conn.session_id == 0:
                    self._connect(conn, payload)
                elif conn.session_id in self.connecting or conn.held is not None:
                    # The Netty Java client sends requests right behind its ConnectRequest; ZooKeeper
                    # stops reading (disableRecv) until the session exists, then serves them.
                    conn.held = (conn.held or []) + [payload]
                    if len(conn.held) > self.config.max_queued_per_connection:
                        self._close(conn, "too many requests before the session was established")
                else:
                    self._close(conn, "request before the session was established")
                return
            rt = self.req_throttle
            if (rt is not None and payload[4:8] not in _UNTHROTTLED
                    and rt.hold(conn_id, payload, self.stats.outstanding, self.mono_ms)):
                return
            self._request(conn, payload)
        except JuteError as e:
            self._close(conn, f"malformed request: {e}")
        except OverflowError as e:
            self._close(conn, str(e))

    def queued(self, conn: Connection) -> int:
        """Requests of conn not answered yet: its queue, and its frames the request throttler holds."""
        rt = self.req_throttle
        return len(conn.queue) + (rt.held.get(conn.conn_id, 0) if rt is not None else 0)

    def _release_throttled(self) -> None:
        """Let requests the throttler holds enter, in arrival order (coord.core.reqthrottle)."""
        if self._releasing:
            return
        self._releasing = True
        conns = self.conns
        try:
            for conn_id, payload, throttled in self.req_throttle.release(
                    lambda: self.stats.outstanding, lambda c: c in conns and not conns[c].closing, self.mono_ms):
                conn = conns[conn_id]
                if throttled:
                    xid, op = _HEADER(payload, 0)
                    self._enqueue(conn, Pending(xid, READY, self._reply(xid, Err.THROTTLEDOP), op=op,
                                                t0=self.mono_ms))
                    continue
                try:
                    self._request(conn, payload)
                except JuteError as e:
                    self._close(conn, f"malformed request: {e}")
        finally:
            self._releasing = False

    # -- session establishment -------------------------------------------------------------------
    def _connect(self, conn: Connection, payload: bytes) -> None:
        req, p = decode(R.ConnectRequest, payload)
        ct = self.conn_throttle
        if ct is not None and not ct.check_limit(ct.need(req.sessionId, self.config.local_sessions),
                                                 self.mono_ms, self.config.random()):
            self._close(conn, "connection throttled (connection_throttle_tokens)")
            return
        if p < len(payload):
            conn.client_read_only, p = read_bool(payload, p)
        else:
            conn.client_read_only = None
        if self.config.read_only and not conn.client_read_only:
            # ZooKeeperServer.processConnectRequest on a ReadOnlyZooKeeperServer
            self._close(conn, f"Refusing session request for not-read-only client {conn.remote}")
            return
        if req.lastZxidSeen > self.tree.last_zxid:
            self._close(conn, f"client has seen zxid 0x{req.lastZxidSeen:x}, our last is "
                              f"0x{self.tree.last_zxid:x}; client must try another server")
            return
        if not self.serving:
            self._close(conn, "not serving: no quorum (the ensemble is electing or syncing a leader)")
            return
        timeout = min(max(req.timeOut, self.config.min_timeout), self.config.max_timeout)
        if req.sessionId == 0:
            if self.config.read_only or (self.config.local_sessions and self.config.quorum):
                # A local session: known to this server only, established without a txn.
                sid = self.sessions.new_session_id()
                self.sessions.add(sid, timeout, self.mono_ms)
                self.local_sessions.add(sid)
                self._establish(conn, sid, timeout)
                return
            sid = self.sessions.new_session_id()
            conn.session_id = sid
            self.connecting[sid] = (conn.conn_id, conn.client_read_only is not None, timeout)
            hdr_req = Request(sid, 0, int(OpCode.createSession), R.CreateSessionTxn(timeout), conn.auth)
            self.sequencer.submit(hdr_req)
            return
        sid = req.sessionId
        # ZooKeeper closes the session's current connection before it checks the password
        # (ZooKeeperServer.processConnectRequest, then reopenSession).
        old = self.session_conn.get(sid)
        if old is not None and old != conn.conn_id and old in self.conns:
            self._close(self.conns[old], f"session 0x{sid:x} moved to another connection")
            self.watches.remove_watcher(old)
        s = self.sessions.get(sid)
        valid = (s is not None and not s.closing and req.passwd == session_password(sid))
        if not valid:
            conn.session_id = -1
            self.log(f"invalid session 0x{sid:x} for client {conn.remote}, probably expired")
            self._connect_reply(conn, 0, 0, bytes(16))
            self._close(conn)
            return
        revalidate = getattr(self.sequencer, "revalidate", None)
        if revalidate is not None and sid not in self.local_sessions:
            # A learner of a ZooKeeper ensemble asks the leader (REVALIDATE) before it takes the
            # session on: finish_revalidation comes back with the answer.
            conn.session_id = sid
            conn.held = []
            revalidate(conn, sid, timeout)
            return
        self.finish_revalidation(conn.conn_id, sid, timeout, True)

    def finish_revalidation(self, conn_id: int, sid: int, timeout: int, valid: bool) -> None:
        """The reconnect of an existing session is accepted (or refused) on `conn_id`."""
        conn = self.conns.get(conn_id)
        if conn is None or conn.closing:
            return
        s = self.sessions.get(sid)
        if not valid or s is None:
            conn.session_id = -1
            self.log(f"invalid session 0x{sid:x} for client {conn.remote}, probably expired")
            self._connect_reply(conn, 0, 0, bytes(16))
            self._close(conn)
            return
        # As ZooKeeper: the timeout negotiated on this connection governs the session from now on
        # (every touch uses the connection's timeout); the one in the tree stays the created one.
        s.timeout_ms = timeout
        self.sessions.touch(sid, self.mono_ms)
        conn.session_id = sid
        self._establish(conn, sid, timeout)

    def _establish(self, conn: Connection, sid: int, timeout: int) -> None:
        conn.established = True
        conn.session_id = sid
        self.session_conn[sid] = conn.conn_id
        self._connect_reply(conn, timeout, sid, session_password(sid))
        held, conn.held = conn.held, None
        for payload in held or ():
            if conn.closing:
                break
            try:
                self._request(conn, payload)
            except JuteError as e:
                self._close(conn, f"malformed request: {e}")

    def _connect_reply(self, conn: Connection, timeout: int, sid: int, passwd: bytes) -> None:
        body = R.ConnectResponse(0, timeout, sid, passwd).encode()
        if conn.client_read_only is not None:
            body += b"\x01" if self.config.read_only else b"\x00"
        self._send(conn, _LEN.pack(len(body)) + body)

    # -- requests ----------------------------------------------------------------------------------
    def _request(self, conn: Connection, payload: bytes) -> None:
        if len(payload) < 8:
            raise JuteError("request shorter than its header")
        if conn.close_requested:
            return  # ZooKeeper closes the connection right after the closeSession reply
        xid, op = _HEADER(payload, 0)
        sid = conn.session_id
        s = self.sessions.get(sid)
        t0 = self.mono_ms
        if s is not None and s.touched_ms != t0:  # touched again in the same ms: same deadline
            self.sessions.touch(sid, t0)
        if self.config.enforce_auth and op != 100 and op != 102 and not self._authenticated(conn):
            return self._refuse_unauthenticated(conn, xid)
        if op == 11:  # ping
            self._enqueue(conn, Pending(xid, DEFERRED, op=op, t0=t0))
            return
        if op == 100:  # auth
            self._auth(conn, xid, payload)
            return
        if op == 102:  # sasl (coord.core.sasl)
            return self._sasl(conn, xid, payload)
        if op not in KNOWN_OPS:
            self._enqueue(conn, Pending(xid, READY, self._reply(xid, Err.UNIMPLEMENTED), op=op, t0=t0))
            return
        if s is None or s.closing:
            self._enqueue(conn, Pending(xid, READY, self._reply(xid, Err.SESSIONEXPIRED), op=op, t0=t0))
            return
        conn.last_cxid = xid
        if op == -11 and sid in self.local_sessions:
            # A local session closes here, without a txn.
            self._enqueue(conn, Pending(xid, READY, self._reply(xid, 0), op=op, t0=t0))
            self.close_local_session(sid, "closed by the client")
            return
        if self.config.read_only and (op in WRITE_OPS or op == 9):
            # ReadOnlyRequestProcessor: writes, sync and global closeSession get NOTREADONLY.
            self._enqueue(conn, Pending(xid, READY, self._reply(xid, Err.NOTREADONLY), op=op, t0=t0))
            return
        if op in WRITE_OPS:
            if (sid, xid) in self.waiting:
                # A commit finds whom to answer by (session, xid): a second write under an xid still
                # outstanding would take the first one's result (a client never reuses one).
                raise JuteError(f"xid {xid} reused while a write with it is outstanding")
            cls = _ONE_RECORD_WRITES.get(op)
            whole = None
            try:
                if cls is not None:
                    req, end = cls._read(payload, 8)
                    if end == len(payload):
                        whole = payload
                else:
                    req = self._decode_write(op, payload)
                    if op == 14:
                        # A learner forwards the client's bytes (as ZooKeeper's Learner.request does),
                        # not a re-encoding: the leader's decode gives the same ops, as this one did.
                        whole = payload
            except (JuteError, struct.error):
                req = MALFORMED
            if sid in self.local_sessions and req is not MALFORMED and _creates_ephemeral(op, req):
                # QuorumZooKeeperServer.checkUpgradeSession: an ephemeral needs a global session.
                if not self.config.local_sessions_upgrading:
                    self._enqueue(conn, Pending(xid, READY, self._reply(xid, Err.EPHEMERALONLOCALSESSION),
                                                op=op, t0=t0))
                    return
                self.local_sessions.discard(sid)
                self.log(f"upgrading session 0x{sid & 0xFFFFFFFFFFFFFFFF:x} to global")
                self.sequencer.submit(Request(sid, 0, int(OpCode.createSession),
                                              R.CreateSessionTxn(s.timeout_ms), conn.auth))
            if req is MALFORMED or req is REFUSED:
                if (op == 16 and req is MALFORMED) or not self.is_sequencer():
                    self._enqueue(conn, Pending(xid, READY, self._reply(xid, req.err), op=op, t0=t0))
                    return
                # ZooKeeper's PrepRequestProcessor stamps a zxid before it decodes the body, so an
                # undecodable (or refused) write still becomes an error txn that uses a zxid.
            if op == -11:
                conn.close_requested = True
            pending = Pending(xid, WAIT_COMMIT, None, op, None, t0)
            conn.queue.append(pending)
            self.waiting[(sid, xid)] = (conn.conn_id, pending)
            self.stats.outstanding += 1
            self.sequencer.submit(Request(sid, xid, op, req, conn.auth, None, whole))
            return
        if (op == 4 or op == 3) and not conn.queue:
            try:
                req = decode(R.GetDataRequest if op == 4 else R.ExistsRequest, payload, 8)[0]
            except JuteError:
                pass  # the general path answers it
            else:
                reply, node = self._node_read(conn, op, xid, req)
                self._send(conn, reply)
                rs = self.request_stats
                if rs is not None:
                    rs.read_at_once(node, req.path, reply, 24 if op == 4 else 20)   # latency 0 too
                self._count(conn, op, 0)
                return
        cls = REQUEST_RECORD.get(op)
        if cls is not None:
            try:
                req, p = decode(cls, payload, 8)
            except JuteError:
                self._enqueue(conn, Pending(xid, READY, self._reply(xid, Err.MARSHALLINGERROR), op=op, t0=t0))
                return
        else:
            req = payload[8:] if op == 22 else None
        pending = Pending(xid, DEFERRED, op=op, req=req, t0=t0)
        if op == 9:
            self._enqueue_sync(conn, pending)
        else:
            self._enqueue(conn, pending)

    def _enqueue(self, conn: Connection, pending: Pending) -> None:
        q = conn.queue
        if not q and pending.state != WAIT_COMMIT:
            self._complete(conn, pending)
            return
        q.append(pending)

    def _enqueue_sync(self, conn: Connection, pending: Pending) -> None:
        conn.queue.append(pending)
        self.sequencer.sync(conn, pending)
        self._flush(conn)

    def _flush(self, conn: Connection) -> None:
        q = conn.queue
        while q:
            head = q[0]
            if head.state == WAIT_COMMIT:
                return
            q.popleft()
            self._complete(conn, head)

    def _complete(self, conn: Connection, p: Pending) -> None:
        if p.state == DEFERRED:
            p.reply = self._read(conn, p)
            if self.request_stats is not None:
                self.request_stats.read(p.op, getattr(p.req, "path", None), p.reply)
        elif p.reply is not None and self.tree.last_zxid > _ZXID_AT.unpack_from(p.reply, 8)[0] > 0:
            # Made earlier (at commit, or as an immediate error) but sent only now, after replies
            # ahead of it in the queue: stamp it with the zxid we are at, or the client would see
            # its zxid go back (as ZooKeeper's FinalRequestProcessor, in order, never does).
            p.reply = p.reply[:8] + _ZXID_AT.pack(self.tree.last_zxid) + p.reply[16:]
        if p.reply is not None:
            self._send(conn, p.reply)
        self._account(conn, p.op, self.mono_ms - p.t0)

    def _account(self, conn: Connection, op: int, lat: int) -> None:
        """A request done: the metrics' latency (while they are on), then _count."""
        if self.request_stats is not None:
            self.request_stats.latency(op in WRITE_OPS, lat)
        self._count(conn, op, lat)

    def _count(self, conn: Connection, op: int, lat: int) -> None:
        """The connection's and the server's latency counters (stat, cons, mntr)."""
        conn.last_latency = lat
        conn.total_latency += lat
        conn.completed += 1
        if conn.min_latency < 0 or lat < conn.min_latency:
            conn.min_latency = lat
        if lat > conn.max_latency:
            conn.max_latency = lat
        st = self.stats
        st.total_latency += lat
        st.completed += 1
        if st.min_latency < 0 or lat < st.min_latency:
            st.min_latency = lat
        if lat > st.max_latency:
            st.max_latency = lat
        conn.last_zxid = self.tree.last_zxid
        conn.last_op = _OP_NAMES.get(op, "NA")
        conn.last_response = self.mono_ms

    def _reply(self, xid: int, err: int, body: bytes = b"") -> bytes:
        return _REPLY.pack(16 + len(body), xid, self.tree.last_zxid, int(err)) + body

    # -- auth ---------------------------------------------------------------------------------------
    def _auth(self, conn: Connection, xid: int, payload: bytes) -> None:
        pkt, _ = decode(R.AuthPacket, payload, 8)
        ids = self._authenticate(conn, pkt.scheme, pkt.auth or b"")
        if ids is None:
            self._enqueue(conn, Pending(xid, READY, _REPLY.pack(16, xid, 0, int(Err.AUTHFAILED)), op=100,
                                        t0=self.mono_ms))
            self._close(conn, f"authentication failed for scheme {pkt.scheme!r}")
            return
        self._grant(conn, ids)
        self._enqueue(conn, Pending(xid, READY, _REPLY.pack(16, xid, 0, 0), op=100, t0=self.mono_ms))

    def _grant(self, conn: Connection, ids) -> None:
        """The connection (and its session's later requests) gains these identities."""
        for i in ids:
            if i not in conn.auth:
                conn.auth = conn.auth + (i,)
        s = self.sessions.get(conn.session_id)
        if s is not None:
            s.auth = conn.auth

    def _authenticated(self, conn: Connection) -> bool:
        """AuthenticationHelper.hasCnxSuccessfullyAuthenticated: an id of an enforced scheme."""
        enforced = self.config.enforce_auth
        return any(s in enforced for s, _ in conn.auth)

    def _refuse_unauthenticated(self, conn: Connection, xid: int) -> None:
        """enforce.auth: SESSIONCLOSEDREQUIRESASLAUTH with no body, zxid 0, then the close."""
        reply = _REPLY.pack(16, xid, 0, int(Err.SESSIONCLOSEDREQUIRESASLAUTH))
        self._enqueue(conn, Pending(xid, READY, reply, op=0, t0=self.mono_ms))
        self._close(conn, "client is not authenticated with any of the enforced schemes "
                          f"({', '.join(sorted(self.config.enforce_auth))})")

    def _sasl(self, conn: Connection, xid: int, payload: bytes) -> None:
        """processSasl: the token through the connection's exchange; the reply's zxid is 0 and its
        body a SetSASLResponse even on failure (the Java client reads a null token as failure)."""
        token = decode(R.GetSASLRequest, payload, 8)[0].token
        if token is None:
            raise JuteError("null SASL token")
        if conn.sasl is None:
            conn.sasl = SaslExchange(self.config.sasl)
        r = conn.sasl.respond(token)
        if r.log:
            self.log(f"session 0x{conn.session_id & 0xFFFFFFFFFFFFFFFF:x} ({conn.remote}): {r.log}")
        if not r.reply:
            self._close(conn)
            return
        self._grant(conn, r.ids)
        body = R.SetSASLResponse(r.token).encode()
        self._enqueue(conn, Pending(xid, READY, _REPLY.pack(16 + len(body), xid, 0, r.err) + body, op=102,
                                    t0=self.mono_ms))
        if r.close:
            self._close(conn)

    def _authenticate(self, conn: Connection, scheme: str, auth: bytes):
        """The identities ZooKeeper's provider for `scheme` adds, or None (AUTHFAILED: no provider)."""
        if scheme == "digest":
            # DigestAuthenticationProvider takes any text (no ':' needed); super comes first.
            ident = aclmod.digest_id(auth.decode("utf-8", errors="replace"))
            if self.config.super_digest and ident == self.config.super_digest:
                return [aclmod.SUPER, ("digest", ident)]
            return [("digest", ident)]
        if scheme == "ip":
            # IPAuthenticationProvider ignores the payload and adds the connection's address.
            return [i for i in conn.auth if i[0] == "ip"][:1] or None
        return None

    # -- writes -----------------------------------------------------------------------------------
    def _decode_write(self, op: int, payload: bytes):
        if op == 14:
            return self._decode_multi(payload, 8)
        if op == -11:
            return None
        if op == 20:
            # The server's own cleanup op. ZooKeeper reads its path from the whole packet buffer,
            # request header included, so from a client it always fails BADARGUMENTS.
            return REFUSED
        return decode(REQUEST_RECORD[op], payload, 8)[0]

    @staticmethod
    def _decode_multi(payload: bytes, p: int):
        """A multi body as ZooKeeper's MultiOperationRecord reads it: the create mode can change an
        op's type (CONTAINER -> createContainer; createTTL without a TTL mode -> create), a TTL mode
        without createTTL or a flag outside 0..6 on create ops fails the whole request (JuteError ->
        MARSHALLINGERROR), and so do read ops or unknown types."""
        ops = []
        while True:
            h, p = decode(R.MultiHeader, payload, p)
            if h.done:
                return ops
            t = h.type
            cls = MULTI_OPS.get(t)
            if cls is None:
                raise JuteError(f"invalid op type {t} in multi")
            rec, p = decode(cls, payload, p)
            if t in (1, 15, 19):
                f = rec.flags
                if not 0 <= f <= 4:
                    raise JuteError(f"invalid create mode {f} in multi")
                if f == 4:
                    t = 19
            elif t == 21:
                f = rec.flags
                mode = f if 0 <= f <= 6 else 0
                if mode < 5:
                    t = 19 if mode == 4 else 1
                    rec = R.CreateRequest(rec.path, rec.data, rec.acl, f)
                elif mode != f:
                    rec = R.CreateTTLRequest(rec.path, rec.data, rec.acl, mode, rec.ttl)
            ops.append((t, rec))
            if len(ops) > 100000:
                raise JuteError("too many ops in multi")

    def prepare(self, request: Request) -> tuple[R.TxnHeader, object]:
        """Sequencer half: the request becomes one txn (an error txn if it cannot apply)."""
        self.next_zxid_counter = zxid = self.next_zxid_counter + 1
        now = self.now_ms
        t = request.type
        sid = request.session_id
        if request.req is MALFORMED or request.req is REFUSED:
            return R.TxnHeader(sid, request.cxid, zxid, now, -1), request.req
        if t == -10:
            return R.TxnHeader(sid, 0, zxid, now, t), request.req
        if t == -11:
            s = self.sessions.get(sid)
            if s is not None:
                s.closing = True   # nothing prepared after the close may act for this session
            return R.TxnHeader(sid, request.cxid, zxid, now, t), self.prep.close_session(sid, zxid)
        if t == 14:
            try:
                txn = self.prep.multi(request.req, sid, request.auth, zxid, now)
            except PrepError as e:  # an op ZooKeeper fails with a runtime exception, not per op
                return R.TxnHeader(sid, request.cxid, zxid, now, -1), R.ErrorTxn(int(e.err))
            return R.TxnHeader(sid, request.cxid, zxid, now, t), txn
        try:
            if t == 16:
                return R.TxnHeader(sid, request.cxid, zxid, now, t), self._reconfig(request, zxid)
            txn = self.prep.op(t, request.req, sid, request.auth, zxid, now)
            return R.TxnHeader(sid, request.cxid, zxid, now, t), txn
        except PrepError as e:
            return R.TxnHeader(sid, request.cxid, zxid, now, -1), R.ErrorTxn(int(e.err))

    def _reconfig(self, request: Request, zxid: int) -> R.SetDataTxn:
        """PrepRequestProcessor's `case OpCode.reconfig`, in its order of checks (coord.core.reconfig).
        The txn carries the whole next configuration; the Zab peer makes it the running membership
        when it commits (coord.core.zab.membership)."""
        from coord.core import reconfig as rc
        cfg = self.config
        if not cfg.reconfig_enabled:
            raise PrepError(Err.RECONFIGDISABLED)
        if not cfg.quorum:
            raise PrepError(Err.UNIMPLEMENTED)      # standalone: ZooKeeper does not reconfigure
        if self.reconfig_pending > self.tree.last_zxid:
            raise PrepError(Err.RECONFIGINPROGRESS)
        node = self.tree.nodes.get("/zookeeper/config")
        current, version = rc.parse(node.data if node is not None else b"")
        req = request.req
        if req.curConfigId != -1 and req.curConfigId != version:
            raise PrepError(Err.BADVERSION)
        try:
            new = rc.next_members(current, req.joiningServers, req.leavingServers, req.newMembers)
        except rc.ReconfigError as e:
            self.log(f"reconfig from session 0x{request.session_id & 0xFFFFFFFFFFFFFFFF:x} refused: {e}")
            raise PrepError(e.err) from None
        voters = rc.voters(new)
        if len(voters) < (2 if cfg.standalone_enabled else 1):
            raise PrepError(Err.BADARGUMENTS)
        leader = getattr(self.sequencer, "leader", None)
        synced = {cfg.server_id}
        if leader is not None:
            synced |= {h.sid for h in leader.handles.values() if h.uptodate}
        if 2 * len(voters & synced) <= len(voters):
            raise PrepError(Err.NEWCONFIGNOQUORUM)
        if node is None or not aclmod.check(node.acl, Perms.WRITE, request.auth):
            raise PrepError(Err.NOAUTH)
        self.reconfig_pending = zxid
        return R.SetDataTxn("/zookeeper/config", rc.render(new, zxid), -1)

    def commit(self, hdr: R.TxnHeader, txn) -> TxnResult:
        """A txn is durable on a quorum: apply it, fire watches, complete whoever waits for it."""
        res = self.tree.apply(hdr, txn)
        zxid = hdr.zxid
        self.prep.applied(zxid)
        if zxid > self.next_zxid_counter:
            self.next_zxid_counter = zxid
        if self.watches.fired:
            self._deliver_events()
        sid = hdr.clientId
        t = hdr.type
        if t == -10:
            self.sessions.add(sid, txn.timeOut, self.mono_ms)
            waiting = self.connecting.pop(sid, None)
            if waiting is not None:
                conn = self.conns.get(waiting[0])
                if conn is not None:
                    self._establish(conn, sid, waiting[2])
            return res
        if t == -11:
            self.sessions.remove(sid)
        elif t == 16:
            self.config.config_data = txn.data   # survives a SNAP's replace_tree
        w = self.waiting.pop((sid, hdr.cxid), None)
        if w is not None:
            self.stats.outstanding -= 1
            if self.req_throttle is not None and self.req_throttle.fifo:
                self._release_throttled()
            conn = self.conns.get(w[0])
            pending = w[1]
            if conn is not None:
                reply = self._write_reply(pending.xid, pending.op, res)
                q = conn.queue
                if q and q[0] is pending:
                    # Nothing ahead of it (the usual case): it leaves now, stamped with the zxid we
                    # are at, then whatever waited behind it.
                    q.popleft()
                    self._send(conn, reply)
                    self._account(conn, pending.op, self.mono_ms - pending.t0)
                    if q:
                        self._flush(conn)
                else:
                    pending.reply = reply
                    pending.state = READY
                    self._release_syncs_before(q, pending)
                    self._flush(conn)
        if t == -11:
            cid = self.session_conn.pop(sid, None)
            if cid is not None and cid in self.conns:
                conn = self.conns[cid]
                if conn.queue:              # closed by expiry with sync()s waiting: answer them now
                    self._release_syncs_before(conn.queue, None)
                    self._flush(conn)
                self._close(conn, f"session 0x{sid:x} closed")
        return res

    @staticmethod
    def _release_syncs_before(q: deque, pending: Pending | None) -> None:
        """A txn of this session has committed (one of its writes, or its closeSession) while
        sync()s it sent earlier still wait: they are satisfied (each waits for the proposals the
        leader had when it arrived, and this txn was proposed after them), so they answer now, at
        this zxid, in order. Left waiting for their own completion (the end of a commit batch, or a
        SyncReply that follows it), they would answer at a later zxid; once the session is closed,
        that is after changes whose watch events its closing connection never gets (seed 92717;
        tests/zab/scripts/sync_answered_before_its_session_closes.txt)."""
        for p in q:
            if p is pending:
                return
            if p.state == WAIT_COMMIT and p.op == 9:
                p.state = DEFERRED

    def abort_txns(self, txns, err: int) -> None:
        """Prepared txns that will never commit: forget their changes, reuse their zxids, and answer
        whoever waits for them with err (never an ack: they are not durable)."""
        self.prep.reset()
        self.next_zxid_counter = self.tree.last_zxid
        for hdr, _txn in txns:
            sid = hdr.clientId
            if hdr.type == -10:
                waiting = self.connecting.pop(sid, None)
                if waiting is not None and waiting[0] in self.conns:
                    self._close(self.conns[waiting[0]], f"session 0x{sid:x} could not be logged")
                continue
            if hdr.type == -11:
                s = self.sessions.get(sid)
                if s is not None and s.closing:  # an expiry: try again after another timeout
                    s.closing = False
                    self.sessions.touch(sid, self.mono_ms)
            w = self.waiting.pop((sid, hdr.cxid), None)
            if w is not None:
                self.stats.outstanding -= 1
                conn = self.conns.get(w[0])
                if conn is not None:
                    pending = w[1]
                    pending.reply = self._reply(pending.xid, err)
                    pending.state = READY
                    self._flush(conn)

    def _write_reply(self, xid: int, op: int, res: TxnResult) -> bytes:
        if res.type == -1:
            return self._reply(xid, res.err)
        if res.err:
            return self._reply(xid, res.err)
        if op == 1:
            p = res.path.encode()
            return _CREATE_HDR.pack(20 + len(p), xid, self.tree.last_zxid, 0, len(p)) + p
        if op in (15, 19, 21):
            return self._reply(xid, 0, R.Create2Response(res.path, res.node.stat()).encode())
        if op == 5 or op == 7:
            return _REPLY.pack(84, xid, self.tree.last_zxid, 0) + res.node.stat_bytes()
        if op == 14:
            return self._reply(xid, 0, self._multi_body(res.multi))
        if op == 16:   # FinalRequestProcessor: a GetDataResponse with the new config
            d = res.node.data or b""
            return self._reply(xid, 0, _LEN.pack(len(d)) + d + res.node.stat().encode())
        return self._reply(xid, 0)

    @staticmethod
    def _multi_body(results) -> bytes:
        out = bytearray()
        for r in results:
            t = r.type
            if t == -1 or r.err:
                err = r.err
                out += _MULTI_ERR.pack(-1, False, err, err)
            elif t == 1:
                out += _MULTI_OK[1]
                out += R.CreateResponse(r.path).encode()
            elif t in (15, 19, 21):
                # OpResult.CreateResult with a Stat is always typed create2 on the wire; Java
                # clients reject any other type in a multi response.
                out += _MULTI_OK[15]
                out += R.Create2Response(r.path, r.stat).encode()
            elif t == 5:
                out += _MULTI_OK[5]
                r.stat._write_into(out, r.stat)
            else:  # delete, check
                out += _MULTI_OK.get(t) or R.MultiHeader(t, False, 0).encode()
        out += _MULTI_END
        return bytes(out)

    def _deliver_events(self) -> None:
        fired = self.watches.fired
        if not fired:
            return
        self.watches.fired = []
        open_acl = aclmod.OPEN_ACL_UNSAFE
        for watcher, etype, path, acl in fired:
            conn = self.conns.get(watcher)
            if conn is None or conn.closing:
                continue
            # NIOServerCnxn.process: an event is delivered only to a watcher that may READ the node.
            if acl and acl is not open_acl and not aclmod.check(acl, Perms.READ, conn.auth):
                continue
            self._send(conn, self._notification(etype, path))

    @staticmethod
    def _notification(etype: int, path: str) -> bytes:
        body = R.WatcherEvent(etype, _SYNC_CONNECTED, path).encode()
        return _REPLY.pack(16 + len(body), -1, -1, 0) + body

    # -- reads ------------------------------------------------------------------------------------
    def _read(self, conn: Connection, p: Pending) -> bytes:
        return self._read_op(conn, p.op, p.xid, p.req)

    def _node_read(self, conn: Connection, op: int, xid: int, req) -> tuple:
        """A getData (4) or exists (3): (the reply, the node it read), the node None when the reply
        is an error (the read fast path's accounting counts the node's namespace by its Node.top)."""
        tree = self.tree
        path = req.path
        if op == 4:
            node = tree.nodes.get(path)
            if node is None:
                node = self._alias(path)
                if node is None:
                    return self._reply(xid, Err.NONODE if path is not None else Err.MARSHALLINGERROR), None
            if node.acl is not aclmod.OPEN_ACL_UNSAFE and not aclmod.check(node.acl, _READ, conn.auth):
                return self._reply(xid, Err.NOAUTH), None
            if req.watch:
                self.watches.data.add(path, conn.conn_id)
            d = node.data
            if d is None:
                return _GETDATA_HDR.pack(88, xid, tree.last_zxid, 0, -1) + node.stat_bytes(), node
            return b"".join((_GETDATA_HDR.pack(88 + len(d), xid, tree.last_zxid, 0, len(d)), d,
                             node.stat_bytes())), node
        if path is None:
            return self._reply(xid, Err.MARSHALLINGERROR), None
        if "\0" in path:
            return self._reply(xid, Err.BADARGUMENTS), None
        node = tree.nodes.get(path) or self._alias(path)
        if node is not None and node.acl is not aclmod.OPEN_ACL_UNSAFE \
                and not aclmod.check(node.acl, _READ, conn.auth):
            return self._reply(xid, Err.NOAUTH), None
        if req.watch:
            self.watches.data.add(path, conn.conn_id)
        if node is None:
            return self._reply(xid, Err.NONODE), None
        return _REPLY.pack(84, xid, tree.last_zxid, 0) + node.stat_bytes(), node

    def _read_op(self, conn: Connection, op: int, xid: int, req) -> bytes:
        tree = self.tree
        auth = conn.auth
        w = conn.conn_id
        if op == 4 or op == 3:
            return self._node_read(conn, op, xid, req)[0]
        if op == 8 or op == 12:
            path = req.path
            node = tree.nodes.get(path)
            if node is None:
                node = self._alias(path)
                if node is None:
                    return self._reply(xid, Err.NONODE if path is not None else Err.MARSHALLINGERROR)
            if node.acl is not aclmod.OPEN_ACL_UNSAFE and not aclmod.check(node.acl, Perms.READ, auth):
                return self._reply(xid, Err.NOAUTH)
            if req.watch:
                self.watches.child.add(path, w)
            children = list(node.children) if node.children else []
            if op == 8:
                return self._reply(xid, 0, R.GetChildrenResponse(children).encode())
            return self._reply(xid, 0, R.GetChildren2Response(children, node.stat()).encode())
        if op == 11:
            return _REPLY.pack(16, -2, tree.last_zxid, 0)
        if op == 9:
            return self._reply(xid, 0, R.SyncResponse(req.path).encode())
        if op == 6:
            node = tree.nodes.get(req.path) or self._alias(req.path)
            if node is None:
                return self._reply(xid, Err.NONODE if req.path is not None else Err.MARSHALLINGERROR)
            if not aclmod.check(node.acl, Perms.READ | Perms.ADMIN, auth):
                return self._reply(xid, Err.NOAUTH)
            acl = node.acl
            if not aclmod.check(acl, Perms.ADMIN, auth):
                acl = aclmod.redact_digests(acl)
            return self._reply(xid, 0, R.GetACLResponse(acl_records(acl), node.stat()).encode())
        if op == 101 or op == 105:
            return self._reply(xid, self._set_watches(conn, req, op == 105))
        if op == 106:
            # ZooKeeper validates neither the path nor the mode here; an unknown mode fails inside its
            # FinalRequestProcessor, which answers MARSHALLINGERROR.
            if req.mode not in (0, 1) or req.path is None:
                return self._reply(xid, Err.MARSHALLINGERROR)
            self.watches.add_persistent(req.path, w, req.mode == 1)
            return self._reply(xid, 0, R.ErrorResponse(0).encode())
        if op == 17 or op == 18:
            return self._check_or_remove_watches(conn, xid, op, req)
        if op == 103:
            nodes = tree.nodes
            eph = hashset_clone_order((p, nodes[p].czxid) for p in tree.ephemerals.get(conn.session_id, ())
                                      if p in nodes)
            prefix = req.prefixPath
            if prefix is None or prefix.strip() in ("", "/"):
                found = eph
            else:
                found = [p for p in eph if p.startswith(prefix)]
            return self._reply(xid, 0, R.GetEphemeralsResponse(found).encode())
        if op == 104:
            path = req.path
            node = tree.nodes.get(path) or self._alias(path)
            if node is None:
                return self._reply(xid, Err.NONODE if path is not None else Err.MARSHALLINGERROR)
            if not aclmod.check(node.acl, Perms.READ, auth):
                return self._reply(xid, Err.NOAUTH)
            # ZooKeeper counts the keys under path + "/" of a map that also holds "" (root's alias).
            n = tree.all_children_number(path) if path else tree.all_children_number(ROOT) + 1
            return self._reply(xid, 0, R.GetAllChildrenNumberResponse(n).encode())
        if op == 107:
            infos = [R.ClientInfo(s, aclmod.user_name(s, i)) for s, i in aclmod.auth_order(auth)]
            return self._reply(xid, 0, R.WhoAmIResponse(infos).encode())
        if op == 22:
            return self._multi_read(conn, xid, req)
        return self._reply(xid, Err.UNIMPLEMENTED)

    def _alias(self, path):
        """ZooKeeper's DataTree keeps the root under "" as well as "/": reads of "" see the root."""
        return self.tree.nodes.get(ROOT) if path == "" else None

    def _multi_read(self, conn: Connection, xid: int, payload: bytes) -> bytes:
        try:
            ops = []
            p = 0
            while True:
                h, p = decode(R.MultiHeader, payload, p)
                if h.done:
                    break
                if h.type == 8:
                    rec, p = decode(R.GetChildrenRequest, payload, p)
                elif h.type == 4:
                    rec, p = decode(R.GetDataRequest, payload, p)
                else:
                    return self._reply(xid, Err.MARSHALLINGERROR)
                ops.append((h.type, rec))
        except JuteError:
            return self._reply(xid, Err.MARSHALLINGERROR)
        out = bytearray()
        for t, rec in ops:
            r = self._read(conn, Pending(0, DEFERRED, op=t, req=rec))
            err = struct.unpack_from(">i", r, 16)[0]
            if err:
                out += R.MultiHeader(-1, False, err).encode() + _LEN.pack(err)
            else:
                out += R.MultiHeader(t, False, 0).encode() + r[20:]
        out += _MULTI_END
        return self._reply(xid, 0, bytes(out))

    def _check_or_remove_watches(self, conn: Connection, xid: int, op: int, req) -> bytes:
        path, wtype, w = req.path, req.type, conn.conn_id
        tables = []
        if wtype in (WatcherType.Data, WatcherType.Any):
            tables.append(self.watches.data)
        if wtype in (WatcherType.Children, WatcherType.Any):
            tables.append(self.watches.child)
        if not tables:
            return self._reply(xid, Err.MARSHALLINGERROR)  # WatcherType.fromInt throws in ZooKeeper
        if op == 17:
            if path is None or (path and "/" not in path):
                # its PathParentIterator cuts the path at its last '/' before it looks at anything
                return self._reply(xid, Err.MARSHALLINGERROR)
            # ZooKeeper 3.8's WatchManager.containsWatcher answers whether ANY connection watches the
            # path in that table, not only the caller; clients check locally first, so we match it.
            # (and for "" its iterator yields nothing: never found)
            found = bool(path) and any(bool(t.table.get(path)) for t in tables)
        else:
            found = False
            for t in tables:
                if t.remove(path, w):
                    found = True
        return self._reply(xid, 0 if found else Err.NOWATCHER)

    def _set_watches(self, conn: Connection, req, v2: bool) -> int:
        """DataTree.setWatches: replay by relativeZxid, list by list; a null list or path stops it
        where ZooKeeper's loop would throw (MARSHALLINGERROR), keeping what was done before."""
        nodes = self.tree.nodes
        rz = req.relativeZxid
        w = conn.conn_id
        events = []
        err = 0
        lists = [req.dataWatches, req.existWatches, req.childWatches]
        if v2:
            lists += [req.persistentWatches, req.persistentRecursiveWatches]
        for kind, paths in enumerate(lists):
            if paths is None:
                err = int(Err.MARSHALLINGERROR)
                break
            for path in paths:
                if path is None:
                    err = int(Err.MARSHALLINGERROR)
                    break
                node = nodes.get(path) or self._alias(path)
                if kind == 0:
                    if node is None:
                        events.append((2, path))
                    elif node.mzxid > rz:
                        events.append((3, path))
                    else:
                        self.watches.data.add(path, w)
                elif kind == 1:
                    if node is not None:
                        events.append((1, path))
                    else:
                        self.watches.data.add(path, w)
                elif kind == 2:
                    if node is None:
                        events.append((2, path))
                    elif node.pzxid > rz:
                        events.append((4, path))
                    else:
                        self.watches.child.add(path, w)
                else:
                    self.watches.add_persistent(path, w, kind == 4)
            if err:
                break
        for etype, path in events:
            self._send(conn, self._notification(etype, path))
        return err

    # -- time-driven work ----------------------------------------------------------------------
    def close_local_session(self, sid: int, why: str) -> None:
        self.local_sessions.discard(sid)
        self.sessions.remove(sid)
        self.log(f"local session 0x{sid & 0xFFFFFFFFFFFFFFFF:x} {why}")
        cid = self.session_conn.pop(sid, None)
        if cid is not None and cid in self.conns:
            self._close(self.conns[cid], f"session 0x{sid & 0xFFFFFFFFFFFFFFFF:x} {why}")

    def drop_local_sessions(self) -> None:
        """Leaving read-only (or any) service: local sessions die with it."""
        for sid in list(self.local_sessions):
            self.close_local_session(sid, "dropped")

    def tick(self) -> None:
        """Expire sessions and clean containers/TTLs; called by the shell every few ms."""
        if self.req_throttle is not None and self.req_throttle.fifo:
            self._release_throttled()
        if self.local_sessions:
            self._expire_local()
        if not self.is_sequencer():
            return
        for sid in self.sessions.expired(self.mono_ms):
            if sid in self.local_sessions:
                self.close_local_session(sid, "expired")
                continue
            s = self.sessions.get(sid)
            # the age of the last touch (own client or a learner's PING report) tells a silent
            # client from touches that arrived late
            self.log(f"expiring session 0x{sid:x}: timeout {s.timeout_ms} ms, last touched "
                     f"{self.mono_ms - s.touched_ms} ms ago" if s is not None else f"expiring session 0x{sid:x}")
            self.sequencer.submit(Request(sid, 0, -11, None, ()))
        if self.mono_ms >= self.next_container_check:
            self.next_container_check = self.mono_ms + self.config.container_check_interval_ms
            self._clean_containers()

    def holds_throttled(self) -> bool:
        """The request throttler holds requests: tick() releases them, so the driver ticks promptly."""
        return self.req_throttle is not None and bool(self.req_throttle.fifo)

    def is_sequencer(self) -> bool:
        """Whether this server decides session expiry: standalone always; in an ensemble, the leader
        (its sequencer says so with `decides_expiry`)."""
        return getattr(self.sequencer, "decides_expiry", True)

    def _clean_containers(self) -> None:
        tree = self.tree
        now = self.now_ms
        doomed = []
        for path in tree.containers:
            n = tree.nodes.get(path)
            if n is not None and not n.children and n.cversion > 0:
                doomed.append(path)
        if self.config.extended_types:
            from coord.core.datatree import ttl_of
            for path in tree.ttls:
                n = tree.nodes.get(path)
                if n is not None and not n.children and now - n.mtime > ttl_of(n.owner):
                    doomed.append(path)
        for path in sorted(doomed):
            self.sequencer.submit(Request(0, 0, 20, R.DeleteRequest(path, -1), (aclmod.SUPER,)))

    # -- introspection for four-letter words and metrics ---------------------------------------
    def foreign_local_session(self, sid: int) -> bool:
        """LeaderSessionTracker.checkSession: with local sessions on, a session the leader does not
        know may be another server's local session (its id carries that server's id)."""
        return self.config.local_sessions and sid != 0 and \
            ((sid >> 56) & 0xFF) != (self.config.server_id & 0xFF)

    def _expire_local(self) -> None:
        now = self.mono_ms
        sessions = self.sessions
        for sid in [s for s in self.local_sessions
                    if (x := sessions.get(s)) is None or (x.deadline and x.deadline <= now)]:
            self.close_local_session(sid, "expired")

    def session_count(self) -> int:
        return len(self.sessions.sessions) - len(self.local_sessions)

    def local_session_count(self) -> int:
        return len(self.local_sessions)

    def ephemeral_owner_sessions(self) -> dict[int, set[str]]:
        return {k: v for k, v in self.tree.ephemerals.items() if is_session_owner(k)}


def _creates_ephemeral(op: int, req) -> bool:
    if op in (1, 15):
        return getattr(req, "flags", 0) in (1, 3)
    if op == 14 and isinstance(req, list):
        return any(t in (1, 15) and getattr(r, "flags", 0) in (1, 3) for t, r in req)
    return False


_OP_NAMES = {1: "CREA", 2: "DELE", 3: "EXIS", 4: "GETD", 5: "SETD", 6: "GETA", 7: "SETA", 8: "GETC",
             9: "SYNC", 11: "PING", 12: "GETC", 13: "CHEC", 14: "MULT", 15: "CREA", 17: "CHKW",
             18: "REMW", 19: "CREA", 21: "CREA", 22: "MLTR", 100: "AUTH", 101: "SETW", 103: "GETE",
             104: "GETACN", 105: "STW2", 106: "ADDW", 107: "HOMI", -11: "CLOS"}

__all__ = ["ServerCore", "Connection", "Request", "StandaloneSequencer", "ROOT"]
