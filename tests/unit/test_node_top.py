"""Node.top, the top-level znode a node is under (coord.core.datatree): however a tree is built
(creates, coord's snapshot loader, the ZooKeeper SNAP reader, load_node over existing nodes, copies
for a snapshot), nodes share a top exactly when they share ZooKeeper's namespace, and the root has
none. The read accounting's hot-namespace test (coord.core.requeststats) is a pointer comparison
that is only exact while this holds."""
from hypothesis import given, settings
from hypothesis import strategies as st

from coord.core import snapformat
from coord.core.datatree import DataTree
from coord.core.requeststats import top_namespace
from coord.jute import records as R

OPEN = [R.ACL(31, R.Id("world", "anyone"))]


def assert_tops(tree: DataTree) -> None:
    assert tree.nodes["/"].top is None
    by_ns: dict = {}
    for path, node in tree.nodes.items():
        if path == "/":
            continue
        assert node.top is not None, path
        by_ns.setdefault(top_namespace(path), set()).add(id(node.top))
    for ns, tops in by_ns.items():
        assert len(tops) == 1, (ns, len(tops))             # one top per namespace
    every = [t for tops in by_ns.values() for t in tops]
    assert len(every) == len(set(every))                   # no top shared by two namespaces
    for ns in by_ns:                                       # the top is the live "/ns" (nothing replaced here)
        assert id(tree.nodes["/" + ns]) in by_ns[ns], ns


def _grow(tree: DataTree, paths) -> None:
    zxid = tree.last_zxid
    for p in paths:
        parent = p.rsplit("/", 1)[0] or "/"
        if p in tree.nodes or parent not in tree.nodes:
            continue
        zxid += 1
        tree.apply(R.TxnHeader(1, 1, zxid, 1000, 1), R.CreateTxn(p, b"d", OPEN, False, -1))


PATHS = st.lists(st.lists(st.sampled_from(["a", "b", "zookeeper", "c"]), min_size=1, max_size=3)
                 .map(lambda s: "/" + "/".join(s)), max_size=30)


@settings(max_examples=60, deadline=None)
@given(PATHS)
def test_tops_through_creates_and_coords_snapshot(paths):
    tree = DataTree()
    _grow(tree, sorted(paths, key=len))
    assert_tops(tree)
    loaded, _ = snapformat.load_bytes(snapformat.encode_tree(tree))
    assert_tops(loaded)
    for path, node in tree.nodes.items():                   # a snapshot's copy keeps the top
        assert snapformat.copy_node(node).top is node.top


def test_tops_through_zookeepers_snap_and_load_node():
    """The SNAP reader installs the tree's own nodes and /zookeeper/... through load_node (which
    replaces a node at the same path) and the rest itself: the replaced /zookeeper keeps its top."""
    from coord.core.zkpeer.wiresnap import WireSnapshotReader
    from coord.jute import quorum as Q
    from tests.zkpeer.test_observer_core import wire_snapshot
    leader = DataTree()
    _grow(leader, ["/a", "/a/b", "/a/b/c", "/e", "/zookeeper/x", "/zookeeper/x/y", "/f"])
    r = WireSnapshotReader(leader.last_zxid)
    s = Q.PacketStream(1 << 20)
    s.feed(wire_snapshot(leader, {}))
    assert r.step(s)
    tree = r.tree
    by_ns: dict = {}
    for path, node in tree.nodes.items():
        if path != "/":
            by_ns.setdefault(top_namespace(path), set()).add(id(node.top))
    assert tree.nodes["/"].top is None
    assert all(len(t) == 1 for t in by_ns.values()), by_ns
    assert len({t for ts in by_ns.values() for t in ts}) == len(by_ns)
    assert tree.nodes["/a/b/c"].top is tree.nodes["/a"] and tree.nodes["/e"].top is tree.nodes["/e"]
