"""coord.core.requeststats: ZooKeeper's namespace of a path, and the read/latency bookkeeping. (The
byte counts themselves are held to ZooKeeper's in tests/ops/test_metrics.py, on both servers.)"""
from hypothesis import given, settings
from hypothesis import strategies as st

from coord.core.requeststats import LatencySamples, RequestStats, top_namespace


def test_top_namespace_is_pathutils():
    assert top_namespace("/a/b/c") == "a"
    assert top_namespace("/a") == "a"
    assert top_namespace("/") is None
    assert top_namespace(None) is None
    assert top_namespace("") is None


def test_failed_reads_are_not_counted():
    rs = RequestStats()
    nonode = (16).to_bytes(4, "big") + (7).to_bytes(4, "big") + (5).to_bytes(8, "big") + (-101).to_bytes(4, "big", signed=True)
    rs.read(4, "/a/b", nonode)
    assert rs.reads == {}


def test_latency_keeps_a_bounded_window_and_exact_totals():
    s = LatencySamples(keep=3)
    for v in (1, 2, 3, 4, 5):
        s.add(v)
    assert (s.count, s.total) == (5, 15)
    assert sorted(s.samples) == [3, 4, 5]


class _Read:
    """A node as the accounting sees it: only its Node.top."""
    def __init__(self, top):
        self.top = top


def _reference(ops) -> tuple[dict, dict]:
    """Bytes per namespace as ZooKeeper counts them, without NamespaceTable's last-row cache: what
    the accounting was before the cache, and must stay."""
    reads, writes = {}, {}
    for kind, path, n in ops:
        ns = top_namespace(path)
        if ns is not None:
            row = (reads if kind == "r" else writes).setdefault(ns, [0, 0])
            row[0] += 1
            row[1] += n
    return reads, writes


SEGMENTS = st.sampled_from(["a", "ab", "b", "zookeeper", "config", ""])
PATHS = st.one_of(st.none(), st.just("/"), st.lists(SEGMENTS, min_size=1, max_size=4).map(lambda s: "/" + "/".join(s)))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("rw"), PATHS, st.integers(0, 1000), st.sampled_from([None, 0, 1])), max_size=40))
def test_namespace_cache_counts_as_zookeeper(ops):
    """The last-namespace cache of NamespaceTable gives the same counts as top_namespace per request,
    for namespaces that are prefixes of each other ("/a" and "/ab"), a namespace's own node ("/a"),
    the root, "//" and no path, in any order; by path (add) or by a node's top (add_node, two tops
    per namespace as a replaced top-level znode leaves, None for the root and "//...")."""
    rs = RequestStats()
    tops: dict = {}
    for kind, path, n, variant in ops:
        table = rs.read_table if kind == "r" else rs.write_table
        if variant is None or path is None:
            table.add(path, n)
        else:
            ns = top_namespace(path)
            table.add_node(None if ns is None else tops.setdefault((ns, variant), object()), path, n)
    assert (rs.reads, rs.writes) == _reference([op[:3] for op in ops])


def test_read_and_write_bytes_through_the_cache():
    """read() and write() of the same paths, twice (the second time through the cached row)."""
    rs = RequestStats()
    ok = lambda body: (len(body) + 20).to_bytes(4, "big") + bytes(16) + body  # noqa: E731 - err 0
    ns = _Read(object())                                      # a node of /ns, by its top
    for _ in range(2):
        rs.write(ns, "/ns/a", b"x" * 10)                     # 5 + 10
        rs.write(ns, "/ns", None)                            # 3 (a delete)
        rs.read(4, "/ns/a", ok((10).to_bytes(4, "big") + b"x" * 10 + bytes(68)))   # 5 + 10 + 68
        rs.read(3, "/nsb/c", ok(bytes(68)))                  # 6 + 68
    rs.settle()
    assert rs.writes == {"ns": [4, 36]}
    assert rs.reads == {"ns": [2, 2 * (5 + 10 + 68)], "nsb": [2, 2 * 74]}


def test_latency_window_wraps_in_order():
    s = LatencySamples(keep=3)
    for v in range(1, 8):
        s.add(v)
    assert s.samples == [7, 5, 6] and s.i == 1 and (s.count, s.total) == (7, 28)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.lists(st.one_of(st.just(0), st.integers(1, 9), st.just("settle")), max_size=60))
def test_zeros_counted_late_give_the_same_ring(keep, values):
    """add_zeros + settle (the fast path's latency 0) leaves the ring, its position, count and sum
    exactly as add(0) would, whatever the runs of zeros (longer than the ring, several laps)."""
    plain, late = LatencySamples(keep), LatencySamples(keep)
    for v in values:
        if v == "settle":
            late.settle()
            continue
        plain.add(v)
        late.add_zeros(1) if v == 0 else late.add(v)
    late.settle()
    assert (late.samples, late.i, late.count, late.total, late.zeros) == \
        (plain.samples, plain.i, plain.count, plain.total, 0)


def test_read_at_once_counts_as_read_and_latency_zero():
    """The fast path's read_at_once is read() + latency(False, 0), for getData, exists and an error
    (no node), the namespace told by the node's top."""
    ok = lambda body: (len(body) + 20).to_bytes(4, "big") + bytes(16) + body  # noqa: E731 - err 0
    nonode = (20).to_bytes(4, "big") + bytes(12) + (-101).to_bytes(4, "big", signed=True)
    ns, other = object(), object()
    cases = [(4, "/ns/a", ok((3).to_bytes(4, "big") + b"abc" + bytes(68)), 24, ns),
             (3, "/ns/b", ok(bytes(68)), 20, ns), (3, "/other", ok(bytes(68)), 20, other), (4, "/ns/c", nonode, 24, None)]
    slow, fast = RequestStats(), RequestStats()
    for op, path, reply, head, top in cases * 3:
        slow.read(op, path, reply)
        slow.latency(False, 0)
        fast.read_at_once(None if top is None else _Read(top), path, reply, head)
    fast.settle()
    slow.settle()
    assert fast.reads == slow.reads == {"ns": [6, 3 * ((5 + 3 + 68) + (5 + 68))], "other": [3, 3 * (6 + 68)]}
    assert (fast.read_latency.count, fast.read_latency.samples) == (slow.read_latency.count, slow.read_latency.samples)


def _ok_exists(_path):
    return (88).to_bytes(4, "big") + bytes(16) + bytes(68)


_READ_PATHS = st.lists(st.sampled_from(["a", "ab", "b", ""]), min_size=1, max_size=3).map(lambda s: "/" + "/".join(s))
_FAST_STEPS = st.one_of(
    st.tuples(st.just("fast"), _READ_PATHS, st.booleans(), st.integers(0, 1)),
    st.tuples(st.just("read"), _READ_PATHS, st.booleans(), st.none()),
    st.tuples(st.just("lat"), st.booleans(), st.integers(0, 9), st.none()),
    st.tuples(st.just("settle"), st.none(), st.none(), st.none()))


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 5), st.lists(_FAST_STEPS, max_size=60))
def test_pending_fast_path_counts_settle_to_the_plain_accounting(keep, steps):
    """read_at_once's pending counts (the hot namespace's reads, the zero latencies), mixed in any
    order with read(), latency() and settle(), give after a settle() exactly the rows and rings that
    counting each request at once gives: ZooKeeper's namespaces and add() per latency. A node's top
    is one of two objects per namespace (a replaced top-level znode's children keep the old one: one
    namespace, two tops) and None for the root and for "//..." (no namespace); no two namespaces
    share a top, as in a DataTree."""
    nonode = (20).to_bytes(4, "big") + bytes(12) + (-101).to_bytes(4, "big", signed=True)
    rs = RequestStats(keep)
    ref_reads: dict = {}
    ref_read_lat, ref_update_lat = LatencySamples(keep), LatencySamples(keep)
    tops: dict = {}
    for kind, a, b, variant in steps:
        if kind == "settle":
            rs.settle()
            continue
        if kind == "lat":
            rs.latency(a, b)
            (ref_update_lat if a else ref_read_lat).add(b)
            continue
        reply = _ok_exists(a) if b else nonode
        if kind == "fast":
            ns = top_namespace(a)
            top = None if ns is None else tops.setdefault((ns, variant), object())
            rs.read_at_once(_Read(top) if b else None, a, reply, 20)
            ref_read_lat.add(0)
        else:
            rs.read(3, a, reply)
        ns = top_namespace(a)
        if b and ns is not None:
            row = ref_reads.setdefault(ns, [0, 0])
            row[0] += 1
            row[1] += len(a) + 68
    rs.settle()
    assert rs.reads == ref_reads
    for got, want in ((rs.read_latency, ref_read_lat), (rs.update_latency, ref_update_lat)):
        assert (got.samples, got.i, got.count, got.total) == (want.samples, want.i, want.count, want.total)
