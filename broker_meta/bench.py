"""Benchmark of Kafka ZooKeeper-mode metadata work on a ZooKeeper-compatible server.

Per target, in a fresh chroot:
1. topic creation: the admin path writes every topic (config + assignment znode) and the active
   stream controller creates every partition znode and state (fenced) -> time until all exist;
2. controller failover: the active controller's session is closed; time until the successor has
   been elected, loaded every partition state and can act (`ready`);
3. leadership movement: a broker leading N partitions dies (session closed); time until the
   controller has written a new leader for every one of them (fenced conditional updates).

Brokers 1..B are plain registrations (one session each) that host the replicas; two extra Python
brokers (ids 10001, 10002) are the controller candidates, so failover measures loading and
taking charge, not moving the old controller's own leaderships.
"""
from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from .assignment import BrokerMetadata, assign_replicas_to_brokers
from .broker_node import BrokerNode, BrokerNodeConfig
from .controller import get_controller
from .model import BrokerRegistration, EndPoint, TopicPartition
from .registry import BrokerRegistry
from .stream_controller import ControllerConfig
from .topics import create_topic, get_partition_states
from .zkclient import ConnectString, DeleteOp, ZkClient

CANDIDATES = (10001, 10002)


@dataclass
class BenchConfig:
    brokers: int = 20
    partitions: int = 4000
    partitions_per_topic: int = 50
    replication_factor: int = 3
    leaders_on_dead_broker: int | None = None
    admin_threads: int = 8  # concurrent CreateTopics callers; kazoo's per-request latency dominates otherwise

    @classmethod
    def full_scale(cls) -> "BenchConfig":
        return cls(brokers=100, partitions=200_000, partitions_per_topic=100, replication_factor=3,
                   leaders_on_dead_broker=2000)


@dataclass
class BenchResult:
    target: str
    brokers: int
    topics: int
    partitions: int
    create_admin_s: float
    create_total_s: float
    failover_s: float
    successor_load_s: float
    leaders_moved: int
    leader_move_s: float


def _wait(pred: Callable[[], bool], timeout: float, what: str, interval: float = 0.002) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"benchmark: timed out waiting for {what}")
        time.sleep(interval)


def _active(nodes: list[BrokerNode]) -> BrokerNode | None:
    for n in nodes:
        if n.is_controller and n.controller.ready.is_set():
            return n
    return None


def _progress(node: BrokerNode) -> threading.Event:
    """Set on every progress event of the node's controller (created, failover, states, ...)."""
    ev = threading.Event()
    node.controller.listeners.append(lambda what, detail: ev.set())
    return ev


def delete_tree(zk: ZkClient, root: str) -> None:
    """Pipelined bottom-up delete of a whole subtree (benchmark chroots are large)."""
    levels = [[root]]
    while levels[-1]:
        kids = zk.get_children_many(levels[-1])
        levels.append([f"{p}/{c}" if p != "/" else f"/{c}" for p, cs in kids if cs for c in cs])
    for level in reversed(levels):
        if level:
            zk.multi_many([[DeleteOp(p)] for p in level])


def run_bench(target: str, cfg: BenchConfig, log: Callable[[str], None] = lambda m: None,
              cleanup: bool = True) -> BenchResult:
    cs = ConnectString.parse(target)
    chroot = cs.chroot or f"/bench-{uuid.uuid4().hex[:8]}"
    connect = cs.hosts + chroot
    timeout = max(120.0, cfg.partitions / 200)
    ctl_cfg = ControllerConfig(auto_leader_rebalance=False)
    sessions: list[ZkClient] = []
    nodes: list[BrokerNode] = []
    admin = ZkClient(connect, session_timeout_ms=30000, max_in_flight=2000, name="bench-admin").start()
    try:
        log(f"{cs.hosts}: registering {cfg.brokers} brokers")
        for b in range(1, cfg.brokers + 1):
            zk = ZkClient(connect, session_timeout_ms=30000, create_chroot=False, name=f"bench-broker-{b}").start()
            zk.make_sure_persistent_path_exists("/brokers/ids")
            BrokerRegistry(zk).register(BrokerRegistration(
                b, (EndPoint("PLAINTEXT", "127.0.0.1", 9000 + b, "PLAINTEXT"),), int(time.time() * 1000)))
            sessions.append(zk)
        for c in CANDIDATES:
            nodes.append(BrokerNode(connect, BrokerNodeConfig(c, port=c, session_timeout_ms=30000,
                                                              controller=ctl_cfg)).start())
        _wait(lambda: _active(nodes) is not None, 60, "first controller")

        n_topics = max(1, cfg.partitions // cfg.partitions_per_topic)
        metas = [BrokerMetadata(b) for b in range(1, cfg.brokers + 1)]
        log(f"{cs.hosts}: creating {n_topics} topics x {cfg.partitions_per_topic} partitions")
        jobs = []
        all_tps: list[TopicPartition] = []
        for i in range(n_topics):
            name = f"bench-{i:06d}"
            jobs.append((name, assign_replicas_to_brokers(metas, cfg.partitions_per_topic, cfg.replication_factor,
                                                          fixed_start_index=i % cfg.brokers)))
            all_tps.extend(TopicPartition(name, p) for p in range(cfg.partitions_per_topic))
        active = _active(nodes)
        # Waits are woken by the controllers' own progress events and look at sizes only (copying
        # 200,000 states every few ms would hold the GIL the measured controller needs).
        created = _progress(active)

        def all_created() -> bool:
            created.wait(0.05)
            created.clear()
            ctx = active.controller.ctx
            return ctx is not None and len(ctx.states) >= len(all_tps)
        t0 = time.monotonic()
        with ThreadPoolExecutor(cfg.admin_threads) as pool:
            list(pool.map(lambda job: create_topic(admin, job[0], assignment=job[1]), jobs))
        t_admin = time.monotonic() - t0
        _wait(all_created, timeout, "all partition states", 0)
        t_total = time.monotonic() - t0
        states = get_partition_states(admin, all_tps)
        missing = [tp for tp, st in states.items() if st is None]
        if missing:
            raise RuntimeError(f"{len(missing)} partitions without state after creation")

        log(f"{cs.hosts}: controller failover")
        successor = next(n for n in nodes if n is not active)
        became = _progress(successor)

        def successor_ready() -> bool:
            became.wait(0.05)
            became.clear()
            return successor.is_controller and successor.controller.ready.is_set()
        t0 = time.monotonic()
        active.stop()
        nodes.remove(active)
        _wait(successor_ready, timeout, "successor ready", 0)
        t_failover = time.monotonic() - t0
        load_s = successor.controller.failover_seconds
        assert len(successor.controller.snapshot()) == len(all_tps)

        snap = successor.controller.snapshot()
        counts: dict[int, list[TopicPartition]] = {}
        for tp, st in snap.items():
            counts.setdefault(st.leader, []).append(tp)
        victim = max(counts, key=lambda b: len(counts[b]))
        led = counts[victim]
        if cfg.leaders_on_dead_broker is not None and len(led) < cfg.leaders_on_dead_broker:
            log(f"note: broker {victim} leads {len(led)} partitions (asked for {cfg.leaders_on_dead_broker})")
        log(f"{cs.hosts}: killing broker {victim} (leader of {len(led)} partitions)")
        ctx_states = successor.controller.ctx.states
        progressed = became

        def moved() -> bool:
            # woken by the controller's own progress events, so the check does not compete for the GIL
            progressed.wait(0.05)
            progressed.clear()
            return all(ctx_states[tp].leader != victim for tp in led)
        t0 = time.monotonic()
        sessions[victim - 1].close()
        _wait(moved, timeout, "leaders moved", 0)
        t_move = time.monotonic() - t0
        after = get_partition_states(admin, led)
        if any(st is None or st.leader == victim or st.leader < 0 for st in after.values()):
            raise RuntimeError("some partitions of the dead broker did not get a live leader")
        return BenchResult(cs.hosts, cfg.brokers, n_topics, len(all_tps), round(t_admin, 3), round(t_total, 3),
                           round(t_failover, 3), round(load_s, 3), len(led), round(t_move, 3))
    finally:
        for n in nodes:
            n.stop()
        for s in sessions:
            s.close()
        if cleanup and not cs.chroot:
            try:
                root = ZkClient(cs.hosts, session_timeout_ms=30000, max_in_flight=2000, name="bench-cleanup").start()
                try:
                    delete_tree(root, chroot)
                finally:
                    root.close()
            except Exception as e:  # cleanup is best effort
                log(f"cleanup of {chroot} failed: {e}")
        admin.close()


def format_table(results: list[BenchResult]):
    from rich.table import Table
    t = Table(title="broker-meta bench")
    t.add_column("metric")
    for r in results:
        t.add_column(r.target)
    if len(results) > 1:
        t.add_column(f"ratio {results[1].target} / {results[0].target}")
    rows = [("brokers", "brokers"), ("topics", "topics"), ("partitions", "partitions"),
            ("create topics: admin writes (s)", "create_admin_s"),
            ("create topics: until every state exists (s)", "create_total_s"),
            ("controller failover until ready (s)", "failover_s"), ("  of which successor load (s)", "successor_load_s"),
            ("leaders on the dead broker", "leaders_moved"), ("move leadership off dead broker (s)", "leader_move_s")]
    for label, attr in rows:
        vals = [getattr(r, attr) for r in results]
        cells = [str(v) for v in vals]
        if len(results) > 1:
            a, b = vals[0], vals[1]
            cells.append(f"{b / a:.2f}" if isinstance(a, float) and a else "")
        t.add_row(label, *cells)
    return t
