"""A small, real write history for the fuzz targets, and ways to compare and check trees.

The txns come from the real request path (client frames into a standalone ServerCore, prepared by
its sequencer), so the log records and snapshots the targets damage are exactly what a server
writes. `reference_states` replays them one at a time, giving what a recovery that stops after any
zxid must have loaded: a damaged file may only ever produce one of these states.
"""
from __future__ import annotations

from functools import lru_cache

from coord.core.config import CoreConfig
from coord.core.datatree import DataTree
from coord.core.paths import ROOT
from coord.core.server import ServerCore
from coord.core.sessions import session_password
from coord.jute import records as R

NOW_MS = 1_700_000_000_000
OPEN = [R.ACL(31, R.Id("world", "anyone"))]
READ_ONLY = [R.ACL(1, R.Id("world", "anyone"))]
EPHEMERAL, SEQUENTIAL = 1, 2


def request(xid: int, op: int, rec=None) -> bytes:
    """A client request frame's payload, as a ZooKeeper client encodes it."""
    return R.RequestHeader(xid, op).encode() + (rec.encode() if rec is not None else b"")


def connect(session_id: int = 0, passwd: bytes = bytes(16), timeout_ms: int = 30000) -> bytes:
    return R.ConnectRequest(0, 0, timeout_ms, session_id, passwd).encode() + b"\0"


def multi(*ops) -> bytes:
    out = b""
    for op, rec in ops:
        out += R.MultiHeader(op, False, -1).encode() + rec.encode()
    return out + R.MultiHeader(-1, True, -1).encode()


def _multi_request() -> bytes:
    return R.RequestHeader(7, 14).encode() + multi(
        (1, R.CreateRequest("/app/cfg", b"a", OPEN, 0)),
        (5, R.SetDataRequest("/app", b"config v3", -1)),
        (13, R.CheckVersionRequest("/app", 2)))


def client_requests() -> list[bytes]:
    """The requests of one session's life, each a frame payload (the seed corpora use them too)."""
    return [
        request(1, 1, R.CreateRequest("/app", b"config v1", OPEN, 0)),
        request(2, 1, R.CreateRequest("/app/lock-", b"", OPEN, EPHEMERAL | SEQUENTIAL)),
        request(3, 15, R.CreateRequest("/app/q", b"\x00\x01" * 40, OPEN, SEQUENTIAL)),
        request(4, 5, R.SetDataRequest("/app", b"config v2", 0)),
        request(5, 4, R.GetDataRequest("/app", True)),
        request(6, 12, R.GetChildren2Request("/app", True)),
        _multi_request(),
        request(8, 7, R.SetACLRequest("/app/cfg", READ_ONLY, -1)),
        request(9, 13, R.CheckVersionRequest("/app", 1)),
        request(10, 2, R.DeleteRequest("/app/q0000000001", -1)),
        request(11, 5, R.SetDataRequest("/missing", b"x", -1)),    # an error txn
        request(12, 9, R.SyncRequest("/app")),
        request(13, 3, R.ExistsRequest("/app/none", True)),
        request(-2, 11),
        request(14, 1, R.CreateRequest("/app/e", b"ephemeral", OPEN, EPHEMERAL)),
    ]


class _Core:
    """A standalone ServerCore driven in memory: frames in, txns out, every txn made durable."""

    def __init__(self):
        self.core = ServerCore(CoreConfig())
        self.core.start(NOW_MS, NOW_MS)
        self.txns: list[tuple] = []
        self.next_conn = 1

    def open(self) -> int:
        cid = self.next_conn
        self.next_conn += 1
        self.core.connection_made(cid, "127.0.0.1:40000")
        self.send(cid, connect())
        return cid

    def send(self, cid: int, payload: bytes) -> None:
        self.core.frame(cid, payload)
        self.sync()

    def sync(self) -> None:
        seq = self.core.sequencer
        batch = seq.drain_log()
        self.txns.extend(batch)
        if batch:
            seq.on_logged(batch[-1][0].zxid)
        _out, closing = self.core.drain()
        for cid in closing:
            self.core.connection_lost(cid)


@lru_cache(maxsize=1)
def txns() -> tuple:
    """((TxnHeader, txn), ...) of a few sessions' writes: creates of every mode, sets, a multi, an
    ACL change, deletes, error txns, a session that expires, and a closeSession."""
    c = _Core()
    a = c.open()
    b = c.open()
    for p in client_requests():
        c.send(a, p)
    for i in range(6):
        c.send(b, request(100 + i, 1, R.CreateRequest(f"/app/n{i}", bytes([i]) * (7 * i), OPEN, 0)))
    c.send(b, request(200, 2, R.DeleteRequest("/app/n0", -1)))
    c.send(b, request(201, -11))                               # closeSession
    c.core.set_time(NOW_MS + 120_000, NOW_MS + 120_000)        # session a expires with its ephemerals
    c.core.tick()
    c.sync()
    return tuple(c.txns)


def tree_state(tree: DataTree) -> tuple:
    """Everything a recovered tree holds, comparable with ==."""
    nodes = tuple(sorted(
        (path, bytes(n.data) if n.data is not None else None, n.stat_values(), n.acl,
         tuple(sorted(n.children or ())))
        for path, n in tree.nodes.items()))
    return nodes, tuple(sorted(tree.sessions.items())), tree.digest


@lru_cache(maxsize=1)
def reference_states() -> dict:
    """zxid -> tree_state after applying the history through that zxid (0: the empty tree)."""
    tree = DataTree()
    out = {0: tree_state(tree)}
    for hdr, txn in txns():
        tree.apply(hdr, txn)
        out[hdr.zxid] = tree_state(tree)
    return out


def tree_after(zxid: int) -> DataTree:
    tree = DataTree()
    for hdr, txn in txns():
        if hdr.zxid > zxid:
            break
        tree.apply(hdr, txn)
    tree.last_zxid = zxid
    return tree


def tree_problems(tree: DataTree) -> list[str]:
    """Broken structural invariants of a tree (parent and child links, owner indexes)."""
    bad = []
    nodes = tree.nodes
    if ROOT not in nodes:
        return ["no root"]
    for path, n in nodes.items():
        for c in n.children or ():
            child = ("/" if path == ROOT else path + "/") + c
            if child not in nodes:
                bad.append(f"{path} lists child {c!r} that is not in the tree")
        if path == ROOT:
            continue
        i = path.rfind("/")
        parent = nodes.get(path[:i] or ROOT)
        if parent is None:
            bad.append(f"{path}: parent missing")
        elif path[i + 1:] not in (parent.children or ()):
            bad.append(f"{path}: not among its parent's children")
    for owner, paths in tree.ephemerals.items():
        for p in paths:
            if p not in nodes or nodes[p].owner != owner:
                bad.append(f"ephemeral index: {p} not owned by 0x{owner:x}")
    return bad


def session_passwd(session_id: int) -> bytes:
    return session_password(session_id)
