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

from coord.core.datatree import CONTAINER_OWNER, TXN_RECORD, DataTree, Node
from coord.core.paths import parent_of
from coord.jute.codec import decode

DIGEST_VERSION = 2
_STAT = struct.Struct(">qqqqqiiiq")
_MASK64 = (1 << 64) - 1
_PATH_TXNS = frozenset({1, 2, 5, 7, 15, 19, 20, 21})    # create*, delete*, setData, setACL
_CREATE_TXNS = frozenset({1, 15, 19})                    # create, create2, createContainer


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


def _ops(type_: int, txn, wanted: frozenset):
    """(type, txn) of the txn itself, or of each of a multi's txns, whose type is `wanted`."""
    if txn is None:
        return
    if type_ in wanted:
        yield type_, txn
    elif type_ == 14:
        for sub in txn.txns:
            cls = TXN_RECORD.get(sub.type)
            if cls is not None and sub.type in wanted:
                yield sub.type, decode(cls, sub.data)[0]


def _paths(type_: int, txn, out: set) -> None:
    for t, op in _ops(type_, txn, _PATH_TXNS):
        out.add(op.path)
        if t != 5 and t != 7:
            out.add(parent_of(op.path))


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


def owner_quirks(tree: DataTree, hdr, txn) -> list[list[int]]:
    """For each node this txn created whose owner ZooKeeper's leader may have digested differently,
    the digest deltas (leader's minus ours) of the owners it may have used. Why: a 3.8 leader
    digests a new node with the owner its create *flags* ask for (PrepRequestProcessor), while every
    server applies the owner the txn's *type* says (DataTree.processTxn): a createContainer sent with
    flags 0 or 1 is applied as a container but digested as persistent or ephemeral, a create with the
    container flag is applied as persistent but digested as a container. Real ZooKeeper then logs
    "Digests are not matching" on every server and goes on; these deltas let the observer verify
    such a txn exactly instead of dropping its copy."""
    out = []
    for type_, t in _ops(hdr.type, txn, _CREATE_TXNS):
        node = tree.nodes.get(t.path)
        if node is None:
            continue
        if type_ == 19 and node.owner == CONTAINER_OWNER:
            alts = (0, hdr.clientId)                 # flags persistent or ephemeral
        elif type_ != 19 and not t.ephemeral and node.owner == 0:
            alts = (CONTAINER_OWNER,)                # the container flag on create / create2
        else:
            continue
        mine = node_digest(t.path, node)
        deltas = []
        for alt in alts:
            node.owner, applied = alt, node.owner
            try:
                deltas.append((node_digest(t.path, node) - mine) & _MASK64)
            finally:
                node.owner = applied
        out.append(deltas)
    return out


def explained(deviation: int, carried: int, quirks: list[list[int]]) -> bool:
    """Whether the leader's digest minus ours (`deviation`) is what the owner quirks of this txn,
    on top of the deviation its leader's digest chain already `carried` or not, add up to. A leader
    digests a txn from its last outstanding change when one is pending, so a quirk's delta rides on
    the txns prepared after it until its chain starts again from the applied tree."""
    sums = {0}
    for deltas in quirks[:6]:                       # a multi with more such creates: not explained
        sums = {(x + d) & _MASK64 for x in sums for d in (0, *deltas)}
    return any((base + x) & _MASK64 == deviation for base in {0, carried} for x in sums)


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
