"""`coord bench` end to end, briefly: against a coord server, and the null-server self-check.

A smoke test, not a timed one: it asserts the numbers are sane (every op acknowledged, no errors,
nonzero rates and latencies), never that they are fast.
"""
import pytest
from click.testing import CliRunner

from coord.bench import phases as ph
from coord.bench.nullserver import NullServer
from coord.cli import main
from tests.support.real_zk import RealZooKeeper

CFG = dict(connections=4, depth=8, ops=2000, data_size=100, procs=2, latency_ops=100)


def _check(res: ph.RunResult, cfg: ph.BenchConfig) -> None:
    per_conn = cfg.ops // cfg.connections
    assert set(res.phases) == set(ph.THROUGHPUT_PHASES)
    for op, p in res.phases.items():
        assert p.errors == 0, (op, p.first_err)
        assert p.ops == per_conn * cfg.connections, op
        assert p.seconds > 0 and p.ops_per_s > 0, op
    for op in ph.LATENCY_PHASES:
        lat = res.latency[op]
        assert len(lat.samples_ns) == cfg.latency_ops
        assert 0 < lat.p50_ms <= lat.p99_ms


def test_bench_against_coord(coord_server):
    cfg = ph.BenchConfig(**CFG)
    res = ph.run(coord_server.connect_string, cfg)
    _check(res, cfg)
    # the bench cleans up after itself: nothing but /zookeeper is left under the root
    from kazoo.client import KazooClient
    zk = KazooClient(hosts=coord_server.connect_string)
    zk.start(timeout=10)
    try:
        assert zk.get_children("/") == ["zookeeper"]
    finally:
        zk.stop()


def test_null_server_self_check():
    cfg = ph.BenchConfig(**CFG)
    with NullServer(1) as ns:
        res = ph.run(ns.target, cfg, ph.proc_cpu_probe(ns.pids()[0]))
    _check(res, cfg)
    assert all(p.server_cpu_s is not None for p in res.phases.values())


def test_cli_compare_json(coord_server):
    t = coord_server.connect_string
    r = CliRunner().invoke(main, ["bench", "--target", t, "--compare", t, "--ops", "800",
                                  "--connections", "2", "--depth", "4", "--latency-ops", "20", "--json"])
    assert r.exit_code == 0, r.output
    import json
    out = json.loads(r.stdout)
    for op, ratio in out["ratios"]["throughput"].items():
        assert ratio > 0, op
    assert out["targets"][t]["summary"]["errors"] == 0


def test_core_bench_runs():
    from coord.bench import core
    res = core.run(ops=800, connections=4, depth=8, out=lambda *_: None)
    assert set(res) == set(core.PHASES) and all(v > 0 for v in res.values())


def test_core_bench_multi_on_a_preloaded_tree():
    """--phases multi --preload N: the multis (create + setData + delete) are all answered (run()
    checks one reply per request) and every one succeeded: the tree holds the preload and the root."""
    from coord.bench import core
    seen = []
    res = core.run(ops=400, connections=4, depth=8, out=seen.append, phases=("multi",), preload=3000)
    assert set(res) == {"multi"} and res["multi"] > 0
    assert any("preloaded 3,000 znodes" in line for line in seen)


def test_core_bench_multi_ops_succeed():
    """The multi frame the core bench sends is one the core accepts: every op of it applies."""
    from coord.bench.core import _durable, _frame
    from coord.core.scratch import connected_core
    from coord.jute import records as R
    import struct
    core = connected_core(1, 1_700_000_000_000)
    core.frame(1, struct.pack(">ii", 1, 1) + R.CreateRequest("/b", b"", [R.ACL(31, R.Id("world", "anyone"))], 0).encode())
    _durable(core)
    core.drain()
    core.frame(1, _frame("multi", "/b/m1", b"x", 2))
    _durable(core)
    out, _ = core.drain()
    reply = b"".join(out[1])
    xid, zxid, err = struct.unpack_from(">iqi", reply, 4)
    assert (xid, err) == (2, 0) and zxid > 0
    assert "/b/m1" not in core.tree.nodes   # created, set and deleted in one txn


def _namespace_run(connect: str) -> None:
    """BenchConfig.namespace (metrics_ab --namespace) runs the phases under /NAME, twice (the second
    run finds /NAME there), and leaves only /NAME behind."""
    cfg = ph.BenchConfig(**{**CFG, "latency": False, "phases": ("create", "getData", "delete"), "namespace": "brokers"})
    for _ in range(2):
        res = ph.run(connect, cfg)
        assert all(p.errors == 0 and p.ops == cfg.ops for p in res.phases.values()), res.phases
    from kazoo.client import KazooClient
    zk = KazooClient(hosts=connect)
    zk.start(timeout=10)
    try:
        assert sorted(zk.get_children("/")) == ["brokers", "zookeeper"]
        assert zk.get_children("/brokers") == []
        assert zk.exists("/brokers").cversion == 4     # each run's root created and deleted there
    finally:
        zk.stop()


def test_bench_namespace_on_coord(coord_server):
    _namespace_run(coord_server.connect_string)


@pytest.mark.realzk
def test_bench_namespace_on_zookeeper(tmp_path):
    with RealZooKeeper(tmp_path / "zk") as zk:
        _namespace_run(zk.connect_string)
