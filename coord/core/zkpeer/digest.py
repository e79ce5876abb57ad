"""ZooKeeper's tree digest (DigestCalculator, version 2), kept incrementally beside coord's own.

ZooKeeper sums, over every node not under /zookeeper/, crc32(path, data, czxid, mzxid, pzxid, ctime,
mtime, version, cversion, aversion, ephemeralOwner) mod 2^64, and a 3.6+ leader stamps each txn with
the digest the tree has after it (TxnDigest). Comparing that stamp with ours after applying the same
txn proves the observer's copy is exact, txn by txn. coord's DataTree keeps a digest of its own
format; this one only needs the nodes a txn can touch, which `touched` names before it applies.
"""
from __future__ import annotations

import struct
import zlib

from coord.core.datatree import TXN_RECORD, DataTree, Node
from coord.core.paths import parent_of
from coord.jute.codec import decode

DIGEST_VERSION = 2
_STAT = struct.Struct(">qqqqqiiiq")
_MASK64 = (1 << 64) - 1
_PATH_TXNS = frozenset({1, 2, 5, 7, 15, 19, 20, 21})    # create*, delete*, setData, setACL


def node_digest(path: str, node: Node) -> int:
    if path.startswith("/zookeeper/"):
        return 0
    c = zlib.crc32(b"" if path == "/" else path.encode())
    if node.data is not None:
        c = zlib.crc32(node.data, c)
    return zlib.crc32(_STAT.pack(node.czxid, node.mzxid, node.pzxid, node.ctime, node.mtime,
                                 node.version, node.cversion, node.aversion, node.owner), c)


def tree_digest(tree: DataTree) -> int:
    return sum(node_digest(p, n) for p, n in tree.nodes.items()) & _MASK64


def _paths(type_: int, txn, out: set) -> None:
    if type_ in _PATH_TXNS and txn is not None:
        out.add(txn.path)
        if type_ != 5 and type_ != 7:
            out.add(parent_of(txn.path))
    elif type_ == 14 and txn is not None:
        for sub in txn.txns:
            cls = TXN_RECORD.get(sub.type)
            if cls is not None and sub.type in _PATH_TXNS:
                _paths(sub.type, decode(cls, sub.data)[0], out)


def touched(tree: DataTree, hdr, txn) -> set[str]:
    """Every path whose digest share the txn may change (its nodes and their parents; a closed
    session's ephemerals and theirs)."""
    out: set[str] = set()
    if hdr.type == -11:
        for p in tree.ephemerals.get(hdr.clientId, ()):
            out.add(p)
            out.add(parent_of(p))
    else:
        _paths(hdr.type, txn, out)
    return out


class ZkDigest:
    """The running ZooKeeper digest of one DataTree: `before` and `after` bracket each apply."""

    def __init__(self, tree: DataTree, value: int | None = None):
        """value: the tree's digest when already known (summed as a SNAP's nodes arrived)."""
        self.value = tree_digest(tree) if value is None else value

    def before(self, tree: DataTree, hdr, txn) -> list[str]:
        paths = list(touched(tree, hdr, txn))
        nodes = tree.nodes
        for p in paths:
            n = nodes.get(p)
            if n is not None:
                self.value -= node_digest(p, n)
        return paths

    def after(self, tree: DataTree, paths: list[str]) -> int:
        nodes = tree.nodes
        v = self.value
        for p in paths:
            n = nodes.get(p)
            if n is not None:
                v += node_digest(p, n)
        self.value = v & _MASK64
        return self.value
