"""ZooKeeper 3.8's leader digests a created node with the owner its create flags ask for, while every
server applies the owner the txn type says (PrepRequestProcessor vs DataTree.processTxn): the
observer's digest check verifies such a txn with that owner instead of dropping its copy. The same
case against real ZooKeeper: tests/zkpeer/test_observer_differential.py (seeds 1-3)."""

from coord.core.datatree import CONTAINER_OWNER, DataTree
from coord.core.zkpeer.digest import ZkDigest, explained, node_digest, owner_quirks
from coord.jute import records as R

MASK = (1 << 64) - 1
SESSION = 0x1234
OPEN = [R.ACL(31, R.Id("world", "anyone"))]


def _apply(tree, digest, type_, txn, zxid):
    hdr = R.TxnHeader(SESSION, 1, zxid, 1000, type_)
    paths = digest.before(tree, hdr, txn)
    assert tree.apply(hdr, txn).err == 0
    return hdr, digest.after(tree, paths)


def _leader_digest(ours, tree, path, owner):
    """What a 3.8 leader sends: our digest with the node's share as if it had `owner`."""
    node = tree.nodes[path]
    applied = node.owner
    before = node_digest(path, node)
    node.owner = owner
    after = node_digest(path, node)
    node.owner = applied
    return (ours - before + after) & MASK


def test_create_container_digested_as_persistent_or_ephemeral_is_explained():
    tree = DataTree()
    d = ZkDigest(tree)
    hdr, ours = _apply(tree, d, 19, R.CreateContainerTxn("/c", b"x", OPEN, 1), 0x100000001)
    assert tree.nodes["/c"].owner == CONTAINER_OWNER
    quirks = owner_quirks(tree, hdr, R.CreateContainerTxn("/c", b"x", OPEN, 1))
    assert len(quirks) == 1 and len(quirks[0]) == 2
    for flags_owner in (0, SESSION):
        theirs = _leader_digest(ours, tree, "/c", flags_owner)
        assert theirs != ours
        assert explained((theirs - ours) & MASK, 0, quirks)
    assert not explained(12345, 0, quirks)                  # anything else is a real mismatch


def test_create_with_the_container_flag_and_the_chain_that_carries_it():
    tree = DataTree()
    d = ZkDigest(tree)
    txn = R.CreateTxn("/p", b"x", OPEN, False, 1)
    hdr, ours = _apply(tree, d, 1, txn, 0x100000001)
    dev = (_leader_digest(ours, tree, "/p", CONTAINER_OWNER) - ours) & MASK
    assert explained(dev, 0, owner_quirks(tree, hdr, txn))
    # a setData prepared while that create was still outstanding on the leader carries the deviation
    set_txn = R.SetDataTxn("/p", b"y", 1)
    hdr2, ours2 = _apply(tree, d, 5, set_txn, 0x100000002)
    assert owner_quirks(tree, hdr2, set_txn) == []
    assert explained(dev, dev, [])
    assert not explained(dev, 0, [])                        # without a quirk before it: a mismatch
    # an ephemeral create and a plain one digested with their own owner have no quirk
    eph = R.CreateTxn("/e", b"", OPEN, True, 2)
    hdr3, _ = _apply(tree, d, 1, eph, 0x100000003)
    assert owner_quirks(tree, hdr3, eph) == []


def test_a_multi_with_such_creates_is_explained_per_node():
    tree = DataTree()
    d = ZkDigest(tree)
    subs = [R.CreateContainerTxn("/m1", b"", OPEN, 1),
            R.CreateTxn("/m2", b"", OPEN, False, 2)]
    multi = R.MultiTxn([R.Txn(19, subs[0].encode()), R.Txn(1, subs[1].encode())])
    hdr, ours = _apply(tree, d, 14, multi, 0x100000001)
    quirks = owner_quirks(tree, hdr, multi)
    assert len(quirks) == 2
    theirs = _leader_digest(_leader_digest(ours, tree, "/m1", 0), tree, "/m2", CONTAINER_OWNER)
    assert explained((theirs - ours) & MASK, 0, quirks)
    only_one = _leader_digest(ours, tree, "/m2", CONTAINER_OWNER)
    assert explained((only_one - ours) & MASK, 0, quirks)
