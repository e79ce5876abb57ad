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

from coord.core import acl as aclmod
from coord.core.datatree import DataTree, Node
from coord.core.paths import ROOT, parent_of
from coord.jute.quorum import NeedMore, PacketStream, QuorumWireError

SIGNATURE = "BenWasHere"
_STAT = struct.Struct(">qqqqiiiqq")
MAX_ACL_ENTRIES = 1 << 16


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
                    path = s.read_string("snapshot path")
                    if path == "/":
                        self.phase = "signature"
                        continue
                    if path is None:
                        raise QuorumWireError("snapshot: null path")
                    data = s.read_buffer("node data")
                    acl_id = s.read_long()
                    p = s._take(_STAT.size)
                    self._node(path or ROOT, data, acl_id, _STAT.unpack_from(s.buf, p))
                else:
                    sig = s.read_string("signature")
                    if sig != SIGNATURE:
                        raise QuorumWireError(f"snapshot: missing signature (got {sig!r})")
                    self.tree.last_zxid = self.zxid
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

    def _node(self, path: str, data, acl_id: int, st) -> None:
        czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, pzxid = st
        acl = self.acls.get(acl_id)
        if acl is None:
            raise QuorumWireError(f"snapshot: {path} refers to ACL {acl_id}, not in the snapshot")
        if path != ROOT and (not path.startswith("/") or parent_of(path) not in self.tree.nodes):
            raise QuorumWireError(f"snapshot: {path} arrives before its parent")
        n = Node(data, acl, czxid, ctime, owner)
        n.mzxid = mzxid
        n.mtime = mtime
        n.pzxid = pzxid
        n.version = version
        n.cversion = cversion
        n.aversion = aversion
        self.tree.load_node(path, n)
        self.nodes += 1
