"""coord.core.requeststats: ZooKeeper's namespace of a path, and the read/latency bookkeeping. (The
byte counts themselves are held to ZooKeeper's in tests/ops/test_metrics.py, on both servers.)"""
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
