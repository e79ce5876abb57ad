"""Prometheus metrics (coord.aio.metrics) through a real Prometheus, coord beside real ZooKeeper 3.8.

The same harness runs a 3-server ensemble of coord and of real ZooKeeper 3.8 with ZooKeeper's own
PrometheusMetricsProvider, each scraped every second by a real Prometheus server: under a small load
every query of the shipped Grafana dashboard (docs/grafana/zookeeper-coord.json, dashboard 10465's
queries) is run through Prometheus' HTTP API, the leader is killed and the change must show in
Prometheus, mntr must carry /metrics' values, and coord's metric families (names and types, per
role) must be ZooKeeper's.
"""
from __future__ import annotations

import threading
import time

import pytest

from tests.ops.prom import PROMETHEUS, PROVIDER, Prometheus, dashboard_queries, families, get, need, samples, \
    zk_prometheus_jars
from tests.support import real_zk
from tests.support.ensemble import Ensemble
from tests.support.real_zk import free_port

pytestmark = [pytest.mark.realzk]

# ZooKeeper's labelled per-key summaries in the dashboard. coord answers them all; ZooKeeper samples
# ack_latency only for every 1000th zxid (zookeeper.leader.ackLoggingFrequency), so a short run may
# leave some of them without series there.
PER_KEY = {"write_per_namespace_sum", "read_per_namespace_sum", "learner_handler_qp_size_sum", "ack_latency_sum"}
# Dashboard 10465's JVM row: only a JVM has these (client_java's hotspot exports). coord's dashboard
# replaces the row with the Python runtime's and coord's own metrics; on ZooKeeper they must answer.
JVM_QUERIES = ["jvm_classes_loaded", "jvm_threads_current", "jvm_threads_deadlocked",
               "rate(jvm_gc_collection_seconds_sum[5m])", "jvm_threads_state", "jvm_memory_pool_bytes_used"]
SEEN: dict[str, dict] = {}   # kind -> {role: {family: type}}, for test_families_are_zookeepers


def _metric_names(expr: str) -> set[str]:
    import re
    return set(re.findall(r"([a-z_]+)\{instance", expr))


def _load(hosts: str, seconds: float, stop: threading.Event) -> dict:
    """Creates (some ephemeral), watched reads, sets and deletes, from one kazoo session."""
    from kazoo.client import KazooClient
    from kazoo.exceptions import ConnectionLoss
    zk = KazooClient(hosts=hosts, timeout=20)
    zk.start(timeout=30)
    done = {"ops": 0, "connection_losses": 0}
    try:
        zk.retry(zk.ensure_path, "/ops-load")
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end and not stop.is_set():
            p = f"/ops-load/n{i}"
            i += 1
            try:
                zk.create(p, b"x" * 100, ephemeral=(i % 4 == 1))
                zk.get(p, watch=lambda e: None)
                zk.get_children("/ops-load", watch=lambda e: None) if i % 50 == 1 else None
                zk.set(p, b"y" * 200)
                if i % 2 == 0:
                    zk.delete(p)
            except ConnectionLoss:   # kazoo reconnects (a loaded machine drops a link now and then); go on
                done["connection_losses"] += 1
                continue
            done["ops"] += 5
    finally:
        zk.stop()
        zk.close()
    return done


def _start_ensemble(kind: str, tmp_path):
    if kind == "zookeeper":
        need(real_zk.available(), "real ZooKeeper 3.8")
        jars = zk_prometheus_jars()
        need(bool(jars), "ZooKeeper's PrometheusMetricsProvider jars (.cache/zk-prometheus-*)")
    else:
        jars = []
    ports = {sid: free_port() for sid in (1, 2, 3)}
    ens = Ensemble(tmp_path / kind, 3, kind=kind, force_sync=True, classpath=jars,
                   extra_cfg={"metricsProvider.className": PROVIDER, "metricsProvider.httpHost": "127.0.0.1",
                              "snapCount": "300"},
                   member_cfg={sid: {"metricsProvider.httpPort": str(p)} for sid, p in ports.items()})
    ens.metrics_ports = ports
    ens.start()
    return ens


@pytest.mark.parametrize("kind", ["coord", "zookeeper"])
def test_dashboard_through_prometheus(kind, tmp_path):
    need(bool(PROMETHEUS) and __import__("os").path.exists(PROMETHEUS), "Prometheus (Debian package prometheus)")
    ens = _start_ensemble(kind, tmp_path)
    ports = ens.metrics_ports
    inst = {sid: f"127.0.0.1:{p}" for sid, p in ports.items()}
    prom = Prometheus(tmp_path / "prometheus", list(inst.values())).start()
    stop = threading.Event()
    try:
        prom.wait_for('up{job="zookeeper"} == 1', lambda r: len(r) == 3, 60)
        done = _load(ens.connect_string(), 10.0, stop)
        assert done["ops"] > 100
        time.sleep(3)   # a few more scrapes after the load

        # every dashboard query answers through Prometheus
        empty = []
        for row, title, expr in dashboard_queries(prom.job):
            if not prom.query(expr):
                empty.append(expr)
        empty_names = set().union(*(_metric_names(e) for e in empty)) if empty else set()
        if kind == "coord":
            assert not empty, f"dashboard queries without data on coord: {empty}"
        else:
            # ZooKeeper has no coord_* or python runtime metrics; everything else must answer
            assert all(n.startswith("coord_") for n in empty_names - PER_KEY), empty
            for expr in JVM_QUERIES:
                assert prom.query(expr), f"{expr}: no data on ZooKeeper"

        # what the load did is in the numbers, as ZooKeeper's
        leader = ens.leader()
        lead = inst[leader.sid]
        def one(expr):
            r = prom.query(expr)
            assert r, expr
            return float(r[0]["value"][1])
        assert one(f'packets_received{{instance="{lead}"}}') + sum(
            one(f'packets_received{{instance="{inst[s]}"}}') for s in ports if s != leader.sid) > 0
        assert one(f'commit_count{{instance="{lead}"}}') > 0
        assert one(f'proposal_count{{instance="{lead}"}}') > 0
        assert one('sum(fsynctime_count)') > 0
        assert one('sum(sync_processor_batch_size_count)') > 0
        assert one('sum(election_time_count)') > 0
        assert one('max(znode_count)') > 4
        assert one(f'max(quorum_size{{instance="{lead}"}})') == 3
        # leader-only gauges: only the leader has them
        assert {r["metric"]["instance"] for r in prom.query("leader_uptime")} == {lead}
        assert {r["metric"]["instance"] for r in prom.query("synced_followers")} == {lead}

        _namespace_bytes_as_zookeeper_counts(ens, inst)
        lead_page = samples(get(f"http://{lead}/metrics").decode())
        assert lead_page["quorum_ack_latency_count"] > 0
        pages = [samples(get(f"http://{i}/metrics").decode()) for i in inst.values()]
        assert sum(p["updatelatency_count"] for p in pages) > 0   # where the clients' sessions are
        assert sum(p["readlatency_count"] for p in pages) > 0
        if kind == "coord":   # every follower's acks are timed (ZooKeeper: only every 1000th zxid's)
            acked = {k for k, v in lead_page.items() if k.startswith("ack_latency_count") and v > 0}
            assert acked == {f'ack_latency_count{{key="{s}",}}' for s in ports if s != leader.sid}, acked

        # mntr carries /metrics' values (quiet ensemble: read one after the other)
        for sid, m in ens.members.items():
            page = get(f"http://{inst[sid]}/metrics").decode()
            mntr = m.mntr()
            page2 = get(f"http://{inst[sid]}/metrics").decode()
            s1, s2 = samples(page), samples(page2)
            stable = {k for k in s1 if s1[k] == s2.get(k)}
            compared = 0
            for name in ("znode_count", "ephemerals_count", "watch_count", "approximate_data_size",
                         "global_sessions", "quorum_size", "commit_count", "proposal_count",
                         "fsynctime_count", "election_time_count", "synced_followers", "learners"):
                if name in stable and "zk_" + name in mntr:
                    assert float(mntr["zk_" + name]) == s1[name], (kind, sid, name, mntr["zk_" + name], s1[name])
                    compared += 1
            assert compared >= 4, (kind, sid, sorted(mntr))
            SEEN.setdefault(kind, {})[m.mode()] = families(page)

        # a leader change shows in Prometheus: leader_uptime moves, the survivors count an election
        elections = {s: one(f'election_time_count{{instance="{inst[s]}"}}') for s in ports if s != leader.sid}
        leader.kill()
        new = ens.wait_serving(sids=[s for s in ports if s != leader.sid], wait=60)
        prom.wait_for("leader_uptime", lambda r: {x["metric"]["instance"] for x in r} == {inst[new]}, 60)
        prom.wait_for(f'election_time_count{{instance="{inst[new]}"}}',
                      lambda r: r and float(r[0]["value"][1]) > elections[new], 30)
        prom.wait_for(f'up{{instance="{lead}"}}', lambda r: r and r[0]["value"][1] == "0", 30)
    finally:
        stop.set()
        prom.stop()
        ens.stop()


def _namespace_bytes_as_zookeeper_counts(ens, inst) -> None:
    """A fixed sequence under /nsx through one member: read_per_namespace / write_per_namespace count
    what ZooKeeper's DataTree counts (path + data written; path + data or child names + a 68-byte
    Stat read, only when the node exists). The expected numbers are ZooKeeper's formula, so both
    kinds are held to the same values."""
    from kazoo.client import KazooClient
    sid = sorted(ens.members)[0]
    zk = KazooClient(hosts=ens.members[sid].connect_string, timeout=20)
    zk.start(timeout=30)
    try:
        zk.create("/nsx", b"")                    # write 4
        zk.create("/nsx/a", b"x" * 10)            # write 6 + 10
        zk.create("/nsx/bb", b"")                 # write 7
        zk.set("/nsx/a", b"y" * 20)               # write 6 + 20
        zk.get("/nsx/a")                          # read 6 + 20 + 68
        zk.exists("/nsx/bb")                      # read 7 + 68
        assert zk.exists("/nsx/zz") is None       # not counted: no node
        zk.get_children("/nsx")                   # read 4 + 3 + 68
        zk.get_children("/nsx", include_data=True)  # getChildren2: read 4 + 3 + 68
        zk.delete("/nsx/bb")                      # write 7
        zk.sync("/nsx")
    finally:
        zk.stop()
        zk.close()
    page = samples(get(f"http://{inst[sid]}/metrics").decode())
    got = {k: page.get(f'{k}{{key="nsx",}}') for k in
           ("write_per_namespace_count", "write_per_namespace_sum", "read_per_namespace_count",
            "read_per_namespace_sum")}
    assert got == {"write_per_namespace_count": 5, "write_per_namespace_sum": 60,
                   "read_per_namespace_count": 4, "read_per_namespace_sum": 319}, got


def _scrape_roles(kind: str, tmp_path) -> dict:
    """{role: families} of a fresh ensemble, scraped directly (when the dashboard test of this kind
    ran on another xdist worker)."""
    ens = _start_ensemble(kind, tmp_path)
    try:
        out = {}
        for sid, m in ens.members.items():
            out[m.mode()] = families(get(f"http://127.0.0.1:{ens.metrics_ports[sid]}/metrics").decode())
        return out
    finally:
        ens.stop()


def test_families_are_zookeepers(tmp_path_factory):
    """Names and types of every family, leader and follower, as real ZooKeeper 3.8 exports them
    (client_java's jvm_*/process_* and coord's coord_*/python_* aside)."""
    for kind in ("zookeeper", "coord"):
        if kind not in SEEN:
            SEEN[kind] = _scrape_roles(kind, tmp_path_factory.mktemp(f"families-{kind}"))
    for role in ("leader", "follower"):
        def zk_fams(kind):
            return {n: t for n, t in SEEN[kind][role].items()
                    if not n.startswith(("jvm_", "process_", "coord_", "python_"))}
        z, c = zk_fams("zookeeper"), zk_fams("coord")
        assert c == z, (role, {"only in coord": sorted(set(c) - set(z)), "only in ZooKeeper": sorted(set(z) - set(c)),
                               "types": {n: (c[n], z[n]) for n in set(c) & set(z) if c[n] != z[n]}})


def test_exposition_format(tmp_path):
    """Counters without _total, summaries with quantile labels in client_java 0.9's form, help = name."""
    from tests.support.coord_server import CoordProcess
    port = free_port()
    srv = CoordProcess(tmp_path / "c", extra_cfg={"metricsProvider.className": PROVIDER,
                                                  "metricsProvider.httpHost": "127.0.0.1",
                                                  "metricsProvider.httpPort": str(port)})
    srv.start()
    try:
        text = get(f"http://127.0.0.1:{port}/metrics").decode()
        fams = families(text)
        assert fams["packets_received"] == "gauge" and fams["commit_count"] == "counter"
        assert "\ncommit_count 0.0\n" in text and "commit_count_total" not in text
        assert '\nfsynctime{quantile="0.5",} NaN\n' in text
        assert '\nreadlatency{quantile="0.99",} NaN\n' in text
        assert "# HELP znode_count znode_count\n" in text
        assert "leader_uptime" not in fams and "quorum_size" not in fams   # standalone
        with pytest.raises(Exception) as e:
            get(f"http://127.0.0.1:{port}/nothing")
        assert "404" in str(e.value)
    finally:
        srv.stop()
