"""The replicated state: znodes, their Stat, ephemerals by owner, containers, TTL nodes, sessions.

apply(hdr, txn) is the state machine's only transition for replicated changes; it is deterministic
(time and zxid come inside the txn header) so every server that applies the same txns in zxid order
holds the same tree, which `digest` summarises (a sum of per-node CRCs, updated incrementally).
A changed node's CRC is recomputed lazily: the node is marked dirty and the sum settled when it is
read or when enough nodes are dirty, so a parent that gains many children in one batch of commits
is hashed once, not once per child. `Node.digest` is the node's share of the sum as last settled.

Like ZooKeeper, a node stores `cversion` as the count of child creations (it names sequential
children) and reports Stat.cversion as 2*cversion - numChildren, i.e. creations plus deletions.
"""
from __future__ import annotations

import re
import struct
import zlib

from coord.core import acl as aclmod
from coord.core.javaorder import hashset_clone_order
from coord.core.paths import CONFIG, PROC, QUOTA, ROOT, basename, parent_of
from coord.core.watches import WatchManager
from coord.jute import records as R
from coord.jute.codec import decode, freeze_vector
from coord.jute.protocol import Err, OpCode

CONTAINER_OWNER = -(1 << 63)
_EXTENDED_MASK = -(1 << 56)  # 0xff00000000000000 as a signed long
TTL_MAX = (1 << 40) - 1
_DIGEST_STAT = struct.Struct(">qqqqiiiq")
_MASK64 = (1 << 64) - 1
_STAT = struct.Struct(">qqqqiiiqiiq")
# Nodes whose digest share may be stale before the sum is settled. Settling costs ~1-2.5 µs a node
# in one go, inside the write that fills the batch: 4096 made every 4096th write a 4-10 ms loop turn,
# which was the "busy" cause of ~40% of the requests over p99 in the open-loop setData run (the stall
# sampler, docs/benchmarks.md "Session 7"). 256 bounds it at ~0.5 ms, for the same CPU per write.
_DIRTY_MAX = 256


def ttl_owner(ttl: int) -> int:
    return _EXTENDED_MASK | ttl


def is_ttl_owner(owner: int) -> bool:
    return owner != CONTAINER_OWNER and (owner & _EXTENDED_MASK) == _EXTENDED_MASK


def ttl_of(owner: int) -> int:
    return owner & TTL_MAX


def is_session_owner(owner: int) -> bool:
    return owner != 0 and owner != CONTAINER_OWNER and not is_ttl_owner(owner)


class Node:
    """A znode. `top` is the top-level znode it is under (itself for a top-level znode, None for the
    root or where not known): ZooKeeper's namespace (PathUtils.getTopNamespace) as an object, so the
    per-namespace accounting of reads and writes tests a pointer, not a path's prefix
    (coord.core.requeststats). Nodes that share a `top` share a namespace; a node that replaces one
    at the same path keeps its `top`, so a namespace keeps one."""
    __slots__ = ("data", "acl", "czxid", "mzxid", "ctime", "mtime", "version", "cversion",
                 "aversion", "owner", "pzxid", "children", "digest", "top")

    def __init__(self, data, acl, zxid, time, owner):
        self.top = None
        self.data = data
        self.acl = acl
        self.czxid = self.mzxid = self.pzxid = zxid
        self.ctime = self.mtime = time
        self.version = self.cversion = self.aversion = 0
        self.owner = owner
        self.children = None
        self.digest = 0

    def stat_values(self) -> tuple:
        """The Stat a client sees, as the tuple of its fields in wire order."""
        n = len(self.children) if self.children else 0
        d = self.data
        owner = self.owner
        if owner < 0 and (owner == CONTAINER_OWNER or owner & _EXTENDED_MASK == _EXTENDED_MASK):
            owner = 0  # clients see 0 for containers and TTL nodes (DataNode.getClientEphemeralOwner)
        return (self.czxid, self.mzxid, self.ctime, self.mtime, self.version,
                2 * self.cversion - n, self.aversion, owner,
                len(d) if d else 0, n, self.pzxid)

    def stat(self) -> R.Stat:
        return R.Stat(*self.stat_values())

    def stat_bytes(self) -> bytes:
        """stat().encode() in one struct call (replies on the hot path)."""
        return _STAT.pack(*self.stat_values())

    def stat_persisted(self) -> R.StatPersisted:
        return R.StatPersisted(self.czxid, self.mzxid, self.ctime, self.mtime, self.version,
                               self.cversion, self.aversion, self.owner, self.pzxid)


class TxnResult:
    __slots__ = ("err", "type", "path", "node", "multi", "stat")

    def __init__(self, type_, err=0, path=None, node=None, multi=None):
        self.type = type_
        self.err = err
        self.path = path
        self.node = node
        self.multi = multi
        self.stat = None   # inside a multi: the node's Stat right after this op (later ops change it)


class ApplyError(Exception):
    def __init__(self, err: Err):
        self.err = err


_TXN_RECORD = {
    OpCode.create: R.CreateTxn, OpCode.create2: R.CreateTxn, OpCode.createTTL: R.CreateTTLTxn,
    OpCode.createContainer: R.CreateContainerTxn, OpCode.delete: R.DeleteTxn,
    OpCode.deleteContainer: R.DeleteTxn, OpCode.setData: R.SetDataTxn, OpCode.reconfig: R.SetDataTxn,
    OpCode.setACL: R.SetACLTxn, OpCode.check: R.CheckVersionTxn, OpCode.error: R.ErrorTxn,
    OpCode.multi: R.MultiTxn, OpCode.createSession: R.CreateSessionTxn,
    OpCode.closeSession: R.CloseSessionTxn,
}
TXN_RECORD = {int(k): v for k, v in _TXN_RECORD.items()}


def decode_txn(type_: int, data: bytes):
    cls = TXN_RECORD.get(type_)
    if cls is None:
        raise ValueError(f"unknown txn type {type_}")
    if type_ == OpCode.closeSession and not data:
        return None
    return decode(cls, data, exact=True)[0]


class DataTree:
    def __init__(self, watches: WatchManager | None = None):
        self.watches = watches
        self.nodes: dict[str, Node] = {}
        self.ephemerals: dict[int, set[str]] = {}
        self.containers: set[str] = set()
        self.ttls: set[str] = set()
        self.sessions: dict[int, int] = {}  # session id -> timeout ms
        self.last_zxid = 0
        self._digest = 0
        self._dirty: dict[str, Node] = {}   # path -> node whose digest share must be recomputed
        self.data_bytes = 0
        self.quota_paths: set[str] = set()   # subtrees with a zookeeper_limits node (ZooKeeper's pTrie)
        # Called with (hdr, txn) before each apply; a snapshot in progress uses it to keep the
        # state it captured (coord.core.snapformat.TreeCapture; several may run at once: a periodic
        # snapshot and a SNAP sync stream).
        self.before_apply = None
        # coord.core.requeststats.RequestStats while metrics are on: bytes written per namespace.
        self.write_stats = None
        root = Node(b"", aclmod.OPEN_ACL_UNSAFE, 0, 0, 0)
        self.nodes[ROOT] = root
        self._add_digest(ROOT, root)
        proc = Node(b"", aclmod.OPEN_ACL_UNSAFE, 0, 0, 0)
        self._attach(ROOT, PROC, proc)
        self._attach(PROC, QUOTA, Node(b"", aclmod.OPEN_ACL_UNSAFE, 0, 0, 0))
        config = Node(b"", aclmod.READ_ACL_UNSAFE, 0, 0, 0)
        config.aversion = -1
        self._attach(PROC, CONFIG, config)

    def _attach(self, parent: str, path: str, node: Node) -> None:
        p = self.nodes[parent]
        if p.children is None:
            p.children = set()
        p.children.add(basename(path))
        node.top = p.top or node
        self.nodes[path] = node
        self._add_digest(path, node)

    # -- digest ---------------------------------------------------------------------------------
    @staticmethod
    def _node_digest(path: str, node: Node) -> int:
        if path == CONFIG:
            return 0  # the config node differs per member in an ensemble until reconfig commits
        d = node.data
        s = _DIGEST_STAT.pack(node.czxid, node.mzxid, node.ctime, node.mtime, node.version,
                              node.cversion, node.aversion, node.owner)
        c = zlib.crc32(path.encode(), 0)
        c = zlib.crc32(s, c)
        if d:
            c = zlib.crc32(d, c)
        return c | (node.pzxid & 0xFFFFFFFF) << 32

    @property
    def digest(self) -> int:
        """The sum of every node's CRC (mod 2^64); equal trees at equal zxids have equal digests."""
        if self._dirty:
            self._settle()
        return self._digest

    @property
    def digest_settled(self) -> bool:
        """Reading `digest` costs nothing now (no node's share waits to be recomputed; settling up
        to _DIRTY_MAX of them takes ~0.5 ms)."""
        return not self._dirty

    @digest.setter
    def digest(self, value: int) -> None:
        """Loaders that fill `nodes` directly set the sum (and every node's share) themselves."""
        self._dirty.clear()
        self._digest = value

    def _settle(self) -> None:
        """Recompute the share of every dirty node still in the tree."""
        nodes = self.nodes
        node_digest = self._node_digest
        total = self._digest
        for path, node in self._dirty.items():
            if nodes.get(path) is node:
                d = node_digest(path, node)
                total += d - node.digest
                node.digest = d
        self._dirty.clear()
        self._digest = total & _MASK64

    def _add_digest(self, path: str, node: Node) -> None:
        node.digest = 0
        self._update_digest(path, node)

    def _update_digest(self, path: str, node: Node) -> None:
        dirty = self._dirty
        dirty[path] = node
        if len(dirty) >= _DIRTY_MAX or self.before_apply is not None:
            # while a snapshot captures the tree, every share stays current (as before laziness), so
            # a node the capture failed to copy shows up as a digest mismatch, not as a stale share
            self._settle()

    def _remove_digest(self, node: Node) -> None:
        self._digest = (self._digest - node.digest) & _MASK64

    # -- reads ----------------------------------------------------------------------------------
    def get(self, path: str) -> Node | None:
        return self.nodes.get(path)

    def node_count(self) -> int:
        return len(self.nodes)

    def ephemeral_count(self) -> int:
        return sum(len(v) for v in self.ephemerals.values())

    def all_children_number(self, path: str) -> int:
        """Number of descendants of path (ZooKeeper counts by prefix over all nodes)."""
        if path == ROOT:
            return len(self.nodes) - 1
        prefix = path + "/"
        return sum(1 for p in self.nodes if p.startswith(prefix))

    # -- transitions ----------------------------------------------------------------------------
    def create_node(self, path: str, data, acl, owner: int, parent_cversion: int, zxid: int,
                    time: int) -> Node:
        i = path.rfind("/")
        parent_path = path[:i] or ROOT
        nodes = self.nodes
        parent = nodes.get(parent_path)
        if parent is None:
            raise ApplyError(Err.NONODE)
        name = path[i + 1:]
        children = parent.children
        if children is None:
            children = parent.children = set()
        elif name in children:
            raise ApplyError(Err.NODEEXISTS)
        if parent_cversion == -1:
            parent_cversion = parent.cversion + 1
        if parent_cversion > parent.cversion:
            parent.cversion = parent_cversion
            parent.pzxid = zxid
        children.add(name)
        node = Node(data, aclmod.intern(acl), zxid, time, owner)
        node.top = parent.top or node
        nodes[path] = node
        dirty = self._dirty
        dirty[parent_path] = parent
        self._update_digest(path, node)
        if data:
            self.data_bytes += len(data)
        if owner:
            if owner == CONTAINER_OWNER:
                self.containers.add(path)
            elif is_ttl_owner(owner):
                self.ttls.add(path)
            else:
                eph = self.ephemerals.get(owner)
                if eph is None:
                    eph = self.ephemerals[owner] = set()
                eph.add(path)
        if parent_path.startswith(QUOTA):
            self._quota_node_created(parent_path, name)
        if self.quota_paths:
            self._quota_update(path, len(data) if data else 0, 1)
        if self.write_stats is not None:
            self.write_stats.write(node, path, data)
        watches = self.watches
        if watches is not None and watches.armed():
            watches.node_created(path, parent_path, node.acl, parent.acl)
        return node

    def delete_node(self, path: str, zxid: int) -> None:
        i = path.rfind("/")
        parent_path = path[:i] or ROOT
        nodes = self.nodes
        parent = nodes.get(parent_path)
        node = nodes.get(path)
        if parent is None or node is None:
            raise ApplyError(Err.NONODE)
        parent.children.discard(path[i + 1:])
        if zxid > parent.pzxid:
            parent.pzxid = zxid
        del nodes[path]
        self._digest = (self._digest - node.digest) & _MASK64
        self._update_digest(parent_path, parent)
        if node.data:
            self.data_bytes -= len(node.data)
        owner = node.owner
        if owner:
            if owner == CONTAINER_OWNER:
                self.containers.discard(path)
            elif is_ttl_owner(owner):
                self.ttls.discard(path)
            else:
                eph = self.ephemerals.get(owner)
                if eph is not None:
                    eph.discard(path)
                    if not eph:
                        del self.ephemerals[owner]
        if self.quota_paths:
            if basename(path) == _QUOTA_LIMIT and parent_path.startswith(PROC):
                self.quota_paths.discard(parent_path[len(QUOTA):])
            self._quota_update(path, -len(node.data) if node.data else 0, -1)
        if self.write_stats is not None:
            self.write_stats.write(node, path, None)
        watches = self.watches
        if watches is not None and watches.armed():
            watches.node_deleted(path, parent_path, node.acl, parent.acl)

    def set_data(self, path: str, data, version: int, zxid: int, time: int) -> Node:
        node = self.nodes.get(path)
        if node is None:
            raise ApplyError(Err.NONODE)
        old = node.data
        node.data = data
        node.version = version
        node.mzxid = zxid
        node.mtime = time
        self.data_bytes += (len(data) if data else 0) - (len(old) if old else 0)
        self._update_digest(path, node)
        if self.quota_paths:
            self._quota_update(path, (len(data) if data else 0) - (len(old) if old else 0), 0)
        if self.write_stats is not None:
            self.write_stats.write(node, path, data)
        watches = self.watches
        if watches is not None and watches.armed():
            watches.node_data_changed(path, node.acl)
        return node

    def set_acl(self, path: str, acl, version: int) -> Node:
        node = self.nodes.get(path)
        if node is None:
            raise ApplyError(Err.NONODE)
        node.acl = aclmod.intern(acl)
        node.aversion = version
        self._update_digest(path, node)
        return node

    def kill_session(self, session_id: int, zxid: int, paths=None) -> None:
        self.sessions.pop(session_id, None)
        owned = self.ephemerals.pop(session_id, None) or set()
        # The txn's list first, in its order (the order ZooKeeper deletes and fires watches in), then
        # anything else the session still owns (DataTree.killSession).
        targets = list(paths or ())
        listed = set(targets)
        targets += hashset_clone_order((p, self.nodes[p].czxid) for p in owned
                                       if p not in listed and p in self.nodes)
        for p in targets:
            n = self.nodes.get(p)
            if n is not None and n.owner == session_id:
                self.delete_node(p, zxid)

    # -- the state machine ------------------------------------------------------------------
    def apply(self, hdr: R.TxnHeader, txn) -> TxnResult:
        """Apply one committed txn; errors are results (a replayed log can hold failed txns)."""
        if self.before_apply is not None:
            self.before_apply(hdr, txn)
        t = hdr.type
        res = TxnResult(t)
        try:
            self._apply(hdr, t, txn, res)
        except ApplyError as e:
            res.err = int(e.err)
        if hdr.zxid > self.last_zxid:
            self.last_zxid = hdr.zxid
        return res

    def _apply(self, hdr, t: int, txn, res: TxnResult) -> None:
        zxid = hdr.zxid
        if t == 1 or t == 15:  # create, create2
            res.path = txn.path
            res.node = self.create_node(txn.path, txn.data, _acl_tuple(txn.acl),
                                        hdr.clientId if txn.ephemeral else 0,
                                        txn.parentCVersion, zxid, hdr.time)
        elif t == 5:  # setData
            res.path = txn.path
            res.node = self.set_data(txn.path, txn.data, txn.version, zxid, hdr.time)
        elif t == 2 or t == 20:  # delete, deleteContainer
            res.path = txn.path
            self.delete_node(txn.path, zxid)
        elif t == 14:  # multi
            self._apply_multi(hdr, txn, res)
        elif t == -10:  # createSession
            self.sessions[hdr.clientId] = txn.timeOut
        elif t == -11:  # closeSession
            self.kill_session(hdr.clientId, zxid, txn.paths2Delete if txn is not None else None)
        elif t == 21:  # createTTL
            res.path = txn.path
            res.node = self.create_node(txn.path, txn.data, _acl_tuple(txn.acl), ttl_owner(txn.ttl),
                                        txn.parentCVersion, zxid, hdr.time)
        elif t == 19:  # createContainer
            res.path = txn.path
            res.node = self.create_node(txn.path, txn.data, _acl_tuple(txn.acl), CONTAINER_OWNER,
                                        txn.parentCVersion, zxid, hdr.time)
        elif t == 7:  # setACL
            res.path = txn.path
            res.node = self.set_acl(txn.path, _acl_tuple(txn.acl), txn.version)
        elif t == 16:  # reconfig: the new config lands in /zookeeper/config
            res.path = txn.path
            res.node = self.set_data(txn.path, txn.data, txn.version, zxid, hdr.time)
        elif t == 13:  # check
            res.path = txn.path
        elif t == -1:  # error
            res.err = txn.err
        else:
            raise ValueError(f"unknown txn type {t}")

    def _apply_multi(self, hdr, txn, res: TxnResult) -> None:
        subs = []
        decoded = []
        failed = False
        for sub in txn.txns:
            rec = decode_txn(sub.type, sub.data)
            decoded.append((sub.type, rec))
            if sub.type == -1:
                failed = True
        post_failed = False
        for typ, rec in decoded:
            if failed:
                if typ == -1:
                    post_failed = True
                    subs.append(TxnResult(-1, rec.err))
                else:
                    subs.append(TxnResult(-1, int(Err.RUNTIMEINCONSISTENCY) if post_failed else 0))
                continue
            sub_hdr = R.TxnHeader(hdr.clientId, hdr.cxid, hdr.zxid, hdr.time, typ)
            r = TxnResult(typ)
            try:
                self._apply(sub_hdr, typ, rec, r)
            except ApplyError as e:
                r.err = int(e.err)
            if r.node is not None:
                r.stat = r.node.stat()
            subs.append(r)
            if r.err and not res.err:
                res.err = r.err
        res.multi = subs

    # -- snapshots ------------------------------------------------------------------------------
    def iter_nodes(self):
        """(path, node) parents before children: the order a snapshot must be written in."""
        stack = [ROOT]
        nodes = self.nodes
        while stack:
            path = stack.pop()
            node = nodes[path]
            yield path, node
            if node.children:
                prefix = "/" if path == ROOT else path + "/"
                stack.extend(prefix + c for c in node.children)

    def load_node(self, path: str, node: Node) -> None:
        """Install a node read from a snapshot (parents first); indexes owners, keeps the digest."""
        if path != ROOT:
            parent = self.nodes[parent_of(path)]
            if parent.children is None:
                parent.children = set()
            parent.children.add(basename(path))
        old = self.nodes.get(path)
        if old is not None:
            self._remove_digest(old)
            node.children = old.children
            node.top = old.top
        elif path != ROOT:
            node.top = parent.top or node
        self.nodes[path] = node
        self._add_digest(path, node)
        if node.data:
            self.data_bytes += len(node.data)
        owner = node.owner
        if owner:
            if owner == CONTAINER_OWNER:
                self.containers.add(path)
            elif is_ttl_owner(owner):
                self.ttls.add(path)
            else:
                self.ephemerals.setdefault(owner, set()).add(path)
        if basename(path) == _QUOTA_LIMIT and path.startswith(QUOTA + "/"):
            self.quota_paths.add(parent_of(path)[len(QUOTA):])

    # -- quotas (ZooKeeper's DataTree: stats kept in /zookeeper/quota<path>/zookeeper_stats) -------
    def _quota_node_created(self, parent_path: str, name: str) -> None:
        if name == _QUOTA_LIMIT:
            self.quota_paths.add(parent_path[len(QUOTA):])
        elif name == _QUOTA_STATS:
            # updateQuotaForPath: count the subtree (itself included) and its bytes
            top = parent_path[len(QUOTA):]
            count = nbytes = 0
            stack = [top]
            while stack:
                p = stack.pop()
                n = self.nodes.get(p)
                if n is None:
                    continue
                count += 1
                nbytes += len(n.data) if n.data else 0
                if n.children:
                    stack.extend((p if p != ROOT else "") + "/" + c for c in n.children)
            self._set_quota_stats(top, lambda st: st.update(count=count, bytes=nbytes))

    def _quota_root(self, path: str) -> str | None:
        """The deepest quota root above path (or path itself); the root never counts."""
        qp = self.quota_paths
        p = path
        while p not in qp:
            if p == ROOT or not p:
                return None
            p = parent_of(p)
        return None if p == ROOT else p

    def quota_stats_path(self, path: str) -> str | None:
        """The zookeeper_stats node a change at path updates (snapshot captures must keep it too)."""
        if not self.quota_paths:
            return None
        top = self._quota_root(path)
        return None if top is None else f"{QUOTA}{top}/{_QUOTA_STATS}"

    def _quota_update(self, path: str, bytes_diff: int, count_diff: int) -> None:
        """updateQuotaStat for the deepest quota root above path (the root itself never counts)."""
        top = self._quota_root(path)
        if top is None:
            return

        def change(st):
            st["count"] = st.get("count", -1) + count_diff
            st["bytes"] = st.get("bytes", -1) + bytes_diff
        self._set_quota_stats(top, change)

    def _set_quota_stats(self, top: str, change) -> None:
        path = f"{QUOTA}{top}/{_QUOTA_STATS}"
        node = self.nodes.get(path)
        if node is None:
            return
        st = parse_stats_track(node.data)
        if st is None:
            return
        change(st)
        old = node.data
        node.data = format_stats_track(st)
        self.data_bytes += len(node.data) - (len(old) if old else 0)
        self._update_digest(path, node)

    def recompute_digest(self) -> int:
        total = 0
        for path, node in self.nodes.items():
            total = (total + self._node_digest(path, node)) & _MASK64
        return total


# acl_records() hands out one shared record list per ACL (most nodes share a handful of ACLs), and
# _acl_tuple() maps such a list straight back. Lists stay alive in the cache, so their ids are stable.
_ACL_RECORDS: dict[tuple, list] = {}
_ACL_BY_LIST: dict[int, tuple] = {}
_ACL_CACHE_MAX = 4096


_QUOTA_LIMIT = "zookeeper_limits"
_QUOTA_STATS = "zookeeper_stats"


def parse_stats_track(data) -> dict | None:
    """org.apache.zookeeper.StatsTrack's text form: key=long pairs split on ',' or ';'."""
    out: dict[str, int] = {}
    try:
        text = (data or b"").decode("utf-8", "replace")
        for pair in re.split("[,;]+", text):
            if not pair:
                continue
            kv = [x for x in pair.split("=")]
            while kv and kv[-1] == "":
                kv.pop()
            out[kv[0]] = int(kv[1]) if len(kv) > 1 and kv[1] else -1
    except (ValueError, IndexError):
        return None
    return out


def format_stats_track(st: dict) -> bytes:
    """StatsTrack.toString: count and bytes first, then '=' and the other keys sorted, ';'-separated."""
    text = f"count={st.get('count', -1)},bytes={st.get('bytes', -1)}"
    rest = sorted(k for k in st if k not in ("count", "bytes"))
    if rest:
        text += "=" + "".join(f";{k}={st[k]}" for k in rest)
    return text.encode()


def _acl_tuple(acl_records) -> tuple:
    if acl_records is None:
        return ()
    t = _ACL_BY_LIST.get(id(acl_records))
    if t is not None:
        return t
    if len(acl_records) == 1:   # a decoded txn's usual ACL (the generator below costs 3x as much)
        a = acl_records[0]
        i = a.id
        return ((a.perms, i.scheme, i.id),)
    return tuple((a.perms, a.id.scheme, a.id.id) for a in acl_records)


def acl_records(acl: tuple) -> list:
    """The ACL records of an ACL tuple; shared between callers, so never mutate the list."""
    recs = _ACL_RECORDS.get(acl)
    if recs is None:
        recs = [R.ACL(p, R.Id(s, i)) for p, s, i in acl]
        if len(_ACL_RECORDS) < _ACL_CACHE_MAX:
            _ACL_RECORDS[acl] = recs
            _ACL_BY_LIST[id(recs)] = acl
            freeze_vector(recs)   # encoded once: txns and replies copy its bytes
    return recs
