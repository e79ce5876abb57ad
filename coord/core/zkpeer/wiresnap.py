"""The tree a ZooKeeper leader streams after a SNAP packet (SerializeUtils.serializeSnapshot, then
the string "BenWasHere"), read incrementally as bytes arrive.

Layout (jute, no framing, no checksum): session count int, then (id long, timeout int) each; the ACL
cache as count int + (id long, vector<ACL>) each; nodes as (path ustring, data buffer, acl long,
StatPersisted) parents first, the root as "", "/" ending the list; then the signature. Nothing seals
it, so a node whose parent has not arrived, an ACL id not in the cache or a wrong signature fails the
sync; the txns the leader informs afterwards are checked against its digests (coord.core.zkpeer.digest).
The leader serialises a live tree: txns applied while it wrote may already be in what we read, and are
informed again (ZooKeeper's fuzzy snapshot; the observer applies them with ZooKeeper's replay rules).
"""
from __future__ import annotations

import struct
import zlib

from coord.core import acl as aclmod
from coord.core.datatree import CONTAINER_OWNER, DataTree, Node, is_ttl_owner
from coord.core.paths import ROOT, parent_of
from coord.core.zkpeer.digest import node_digest
from coord.jute.quorum import NeedMore, PacketStream, QuorumWireError

SIGNATURE = "BenWasHere"
_ACL_STAT = struct.Struct(">qqqqqiiiqq")         # a node's ACL id, then its StatPersisted
_DIGEST_STAT = struct.Struct(">qqqqqiiiq")       # the fields ZooKeeper's node digest covers, in its order
_COORD_STAT = struct.Struct(">qqqqiiiq")         # and coord's (DataTree._node_digest), in its order
_I = struct.Struct(">i")
_MASK64 = (1 << 64) - 1
MAX_ACL_ENTRIES = 1 << 16


def zk_node(data, acl: tuple, st) -> Node:
    """A Node from ZooKeeper's StatPersisted fields (czxid, mzxid, ctime, mtime, version, cversion,
    aversion, ephemeralOwner, pzxid): ZooKeeper's stored cversion is coord's (creations). For the
    snapshot file importer (coord.zkimport); the SNAP reader below does the same inline, per node of
    a million-node stream, as it does digest.node_digest's sum: calling this and a shared digest
    function from that loop measured +0.8 s of CPU and +42 MB peak on the 1M join (PyPy, medians of 3)."""
    czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, pzxid = st
    n = Node(data, acl, czxid, ctime, owner)
    n.mzxid = mzxid
    n.mtime = mtime
    n.pzxid = pzxid
    n.version = version
    n.cversion = cversion
    n.aversion = aversion
    return n


def fuzzy_create(tree: DataTree, hdr, txn) -> None:
    """A create replayed over a fuzzy snapshot that already holds its node still sets the parent's
    cversion and pzxid, as ZooKeeper's DataTree.processTxn does (its result stays NODEEXISTS)."""
    pp = parent_of(txn.path)
    parent = tree.nodes.get(pp)
    if parent is not None:
        cv = txn.parentCVersion if txn.parentCVersion != -1 else parent.cversion + 1
        if cv > parent.cversion:
            parent.cversion = cv
            parent.pzxid = hdr.zxid
            tree._update_digest(pp, parent)


class WireSnapshotReader:
    """Feed it the stream after SNAP; `step` returns True once the tree and signature are in."""

    def __init__(self, zxid: int, max_sessions: int = 1 << 24):
        self.zxid = zxid
        self.tree = DataTree()
        self.phase = "sessions"
        self.left = -1
        self.acls: dict[int, tuple] = {-1: aclmod.OPEN_ACL_UNSAFE}
        self.nodes = 0
        self.max_sessions = max_sessions
        self.zk_digest = 0          # ZooKeeper's digest of the nodes read so far (coord.core.zkpeer.digest)
        self.coord_digest = 0       # coord's digest shares of the nodes the loop installed itself
        self.data_bytes = 0         # and their data bytes
        self.last_ppath: str | None = None   # the last parent looked up (siblings arrive together)
        self.parent: Node | None = None
        self._initial = dict(self.tree.nodes)

    def step(self, s: PacketStream) -> bool:
        try:
            while True:
                s.mark()
                if self.phase == "sessions":
                    if self.left < 0:
                        self.left = self._count(s, "session count", self.max_sessions)
                    while self.left > 0:
                        s.mark()
                        sid = s.read_long()
                        self.tree.sessions[sid] = s.read_int()
                        self.left -= 1
                    self.phase, self.left = "acls", -1
                elif self.phase == "acls":
                    if self.left < 0:
                        self.left = self._count(s, "ACL cache size", 1 << 24)
                    while self.left > 0:
                        s.mark()
                        key = s.read_long()
                        n = s.read_int()
                        if n > MAX_ACL_ENTRIES:
                            raise QuorumWireError(f"snapshot: ACL {key} with {n} entries")
                        entries = []
                        for _ in range(max(n, 0)):
                            perms = s.read_int()
                            entries.append((perms, s.read_string("acl scheme"), s.read_string("acl id")))
                        self.acls[key] = aclmod.intern(tuple(entries))
                        self.left -= 1
                    self.phase = "nodes"
                elif self.phase == "nodes":
                    if self._nodes(s):
                        self.phase = "signature"
                        continue
                    return False
                else:
                    sig = s.read_string("signature")
                    if sig != SIGNATURE:
                        raise QuorumWireError(f"snapshot: missing signature (got {sig!r})")
                    tree = self.tree
                    tree.last_zxid = self.zxid
                    tree.digest = (tree.digest + self.coord_digest) & _MASK64   # load_node's shares settled, plus ours
                    tree.data_bytes += self.data_bytes
                    for path, node in self._initial.items():    # a DataTree's own nodes the stream left
                        if self.tree.nodes.get(path) is node:
                            self.zk_digest = (self.zk_digest + node_digest(path, node)) & _MASK64
                    return True
        except NeedMore:
            s.rewind()
            return False

    @staticmethod
    def _count(s: PacketStream, what: str, bound: int) -> int:
        n = s.read_int()
        if n < 0 or n > bound:
            raise QuorumWireError(f"snapshot: {what} {n}")
        return n

    def _nodes(self, s: PacketStream) -> bool:
        """Every whole node in the buffer, in one tight loop (1M nodes arrive in seconds); True at the
        "/" that ends the list, False when the buffer ends mid-node (read again with more).

        A node new to the tree (all but the few a fresh DataTree starts with, and those under
        /zookeeper/) is installed here as DataTree.load_node would, with its share of coord's digest
        summed as ZooKeeper's is, and the sum handed to the tree at the end (`_finish`), as
        coord's own snapshot loader (snapformat.TreeBuilder) does: load_node's lazy digest
        settling was a quarter of the 1M join's CPU. The rest go through load_node."""
        buf, pos, end = s.buf, s.pos, s.end
        limit = s.max_buffer
        unpack_len, unpack_tail = _I.unpack_from, _ACL_STAT.unpack_from
        load = self.tree.load_node
        tree = self.tree
        nodes = tree.nodes
        acls = self.acls
        crc = zlib.crc32
        pack_digest = _DIGEST_STAT.pack
        pack_coord = _COORD_STAT.pack
        new = Node.__new__
        total = self.zk_digest
        coord_total = self.coord_digest
        data_bytes = self.data_bytes
        last_ppath, parent = self.last_ppath, self.parent
        count = self.nodes
        try:
            while True:
                if pos + 4 > end:
                    return False
                n = unpack_len(buf, pos)[0]
                if n < 0 or n > limit:
                    raise QuorumWireError("snapshot: null path" if n == -1 else f"snapshot path: length {n}")
                p1 = pos + 4 + n
                if p1 > end:
                    return False
                raw = buf[pos + 4:p1]
                if raw == b"/":
                    pos = p1
                    return True
                if p1 + 4 > end:
                    return False
                n = unpack_len(buf, p1)[0]
                if n == -1:
                    data, p2 = None, p1 + 4
                elif 0 <= n <= limit:
                    p2 = p1 + 4 + n
                    if p2 > end:
                        return False
                    data = bytes(buf[p1 + 4:p2])
                else:
                    raise QuorumWireError(f"node data: length {n} outside 0..{limit}")
                if p2 + _ACL_STAT.size > end:
                    return False
                acl_id, czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, pzxid = unpack_tail(buf, p2)
                pos = p2 + _ACL_STAT.size
                acl = acls.get(acl_id)
                count += 1
                try:
                    path = raw.decode() if raw else ROOT
                    plain = bool(raw)
                except UnicodeDecodeError:
                    path = raw.decode("utf-8", "replace")
                    plain = False        # load_node: coord's share from the str path
                if acl is None:
                    raise QuorumWireError(f"snapshot: {path} refers to ACL {acl_id}, not in the snapshot")
                if path[0] != "/":
                    raise QuorumWireError(f"snapshot: {path} is not an absolute path")
                zk = not raw.startswith(b"/zookeeper/")       # ZooKeeper's digest leaves those out
                if zk:
                    c0 = crc(raw)
                    c = c0 if data is None else crc(data, c0)
                    total += crc(pack_digest(czxid, mzxid, pzxid, ctime, mtime, version, cversion, aversion, owner), c)
                # ZooKeeper's StatPersisted: its stored cversion (creations) is coord's too
                node = new(Node)
                node.data = data
                node.acl = acl
                node.czxid = czxid
                node.mzxid = mzxid if mzxid != czxid else czxid    # one int object, not two (PyPy boxes them)
                node.pzxid = pzxid if pzxid != czxid else czxid
                node.ctime = ctime
                node.mtime = mtime if mtime != ctime else ctime
                node.version = version if version else 0          # the shared constant
                node.cversion = cversion if cversion else 0
                node.aversion = aversion if aversion else 0
                node.owner = owner if owner else 0
                node.children = None
                node.top = None                  # load() sets it, or below once the parent is known
                if not zk or not plain or path in nodes:     # the tree's own nodes, /zookeeper/..., odd paths
                    node.digest = 0
                    try:
                        load(path, node)          # looks the parent up first: nothing changes without it
                    except KeyError:
                        raise QuorumWireError(f"snapshot: {path} arrives before its parent") from None
                    last_ppath = None
                    continue
                i = path.rfind("/")
                ppath = path[:i] or ROOT
                if ppath != last_ppath:
                    parent = nodes.get(ppath)
                    if parent is None:
                        raise QuorumWireError(f"snapshot: {path} arrives before its parent")
                    last_ppath = ppath
                pc = parent.children
                if pc is None:
                    parent.children = {path[i + 1:]}
                else:
                    pc.add(path[i + 1:])
                node.top = parent.top or node
                c = crc(pack_coord(czxid, mzxid, ctime, mtime, version, cversion, aversion, owner), c0)
                if data:
                    c = crc(data, c)
                    data_bytes += len(data)
                c |= (pzxid & 0xFFFFFFFF) << 32
                node.digest = c
                coord_total += c
                nodes[path] = node
                if owner:
                    if owner == CONTAINER_OWNER:
                        tree.containers.add(path)
                    elif is_ttl_owner(owner):
                        tree.ttls.add(path)
                    else:
                        tree.ephemerals.setdefault(owner, set()).add(path)
        finally:
            s.pos = pos
            self.zk_digest = total & _MASK64
            self.coord_digest = coord_total & _MASK64
            self.data_bytes = data_bytes
            self.last_ppath, self.parent = last_ppath, parent
            self.nodes = count
