"""Failover scenarios with real processes: kill -9 the controller, kill a broker, a broker paused past
its session timeout (session expiry), and the loss of the ZooKeeper ensemble's leader. Every partition
must end with a live leader, no state may carry a stale controller epoch after a newer one, and the
final metadata is the deterministic one (preferred leaders, full ISRs) on every target."""
from __future__ import annotations

import time

import pytest

from broker_meta import codec, paths
from broker_meta.broker_node import BrokerNode, BrokerNodeConfig
from broker_meta.controller import get_controller, get_controller_epoch
from broker_meta.model import TopicPartition
from broker_meta.registry import live_brokers
from broker_meta.stream_controller import ControllerConfig
from broker_meta.topics import create_topic, get_partition_states, get_topic
from broker_meta.zkclient import ZkClient
from tests.support import real_zk

from .conftest import SESSION_TIMEOUT_MS, wait_until
from .procs import BrokerProcess

N = 12
ASSIGNMENT = {p: [(p + k) % 3 + 1 for k in range(3)] for p in range(N)}  # preferred leaders 1,2,3,1,2,3...


class History:
    """Every partition state seen, to check epochs never go backwards."""

    def __init__(self):
        self.seen: dict[TopicPartition, list] = {}

    def record(self, states):
        for tp, st in states.items():
            if st is not None:
                self.seen.setdefault(tp, []).append(st)

    def check(self):
        for tp, sts in self.seen.items():
            for a, b in zip(sts, sts[1:]):
                assert b.partition_epoch >= a.partition_epoch, tp
                if b.partition_epoch > a.partition_epoch:
                    assert b.controller_epoch >= a.controller_epoch, (tp, a, b)
                    assert b.leader_epoch >= a.leader_epoch, (tp, a, b)


def snapshot(admin, topic="stream"):
    return get_partition_states(admin, [TopicPartition(topic, p) for p in range(N)])


def all_led_by_live(admin, hist=None):
    live = {b.broker_id for b in live_brokers(admin)}
    states = snapshot(admin)
    if hist is not None:
        hist.record(states)
    return all(s is not None and s.leader in live and s.leader in s.isr and set(s.isr) <= live for s in states.values())


def final_is_preferred(admin, hist):
    states = snapshot(admin)
    hist.record(states)
    return all(s is not None and s.leader == ASSIGNMENT[tp.partition][0] and sorted(s.isr) == [1, 2, 3]
               for tp, s in states.items())


def controller_process(procs: dict[int, BrokerProcess], admin) -> int:
    reg = wait_until(lambda: get_controller(admin), what="controller")
    return reg.broker_id


def test_process_failover(zk_clients, tmp_path):
    admin = zk_clients.new()
    hist = History()
    procs = {b: BrokerProcess(zk_clients.connect, [b], tmp_path, SESSION_TIMEOUT_MS) for b in (1, 2, 3)}
    try:
        wait_until(lambda: {b.broker_id for b in live_brokers(admin)} == {1, 2, 3}, timeout=30, what="3 brokers")
        create_topic(admin, "stream", assignment=ASSIGNMENT)
        wait_until(lambda: all_led_by_live(admin, hist), timeout=30, what="states created")

        # kill -9 the controller process: its session expires, a survivor is elected and moves leaders
        victim = controller_process(procs, admin)
        epoch = get_controller_epoch(admin)[0]
        procs[victim].kill()
        wait_until(lambda: get_controller_epoch(admin)[0] > epoch and victim not in {b.broker_id for b in live_brokers(admin)},
                   timeout=30, what="new controller after kill -9")
        wait_until(lambda: all_led_by_live(admin, hist), timeout=30, what="leaders off the dead controller")
        procs[victim] = BrokerProcess(zk_clients.connect, [victim], tmp_path, SESSION_TIMEOUT_MS)
        wait_until(lambda: final_is_preferred(admin, hist), timeout=30, what="restarted broker back as preferred leader")

        # pause a non-controller broker past its session timeout: expiry, then it re-registers on resume
        ctl = controller_process(procs, admin)
        paused = next(b for b in (1, 2, 3) if b != ctl)
        old_epoch = {b.broker_id: b.broker_epoch for b in live_brokers(admin)}[paused]
        procs[paused].pause()
        wait_until(lambda: paused not in {b.broker_id for b in live_brokers(admin)}, timeout=30, what="session expired")
        wait_until(lambda: all_led_by_live(admin, hist), timeout=30, what="leaders off the paused broker")
        procs[paused].resume()
        wait_until(lambda: {b.broker_id: b.broker_epoch for b in live_brokers(admin)}.get(paused, -1) > old_epoch,
                   timeout=30, what="re-registered with a larger epoch")
        wait_until(lambda: final_is_preferred(admin, hist), timeout=30, what="preferred leaders after resume")

        # kill -9 another non-controller broker
        ctl = controller_process(procs, admin)
        other = next(b for b in (1, 2, 3) if b not in (ctl, paused))
        procs[other].kill()
        wait_until(lambda: other not in {b.broker_id for b in live_brokers(admin)}, timeout=30, what="broker gone")
        wait_until(lambda: all_led_by_live(admin, hist), timeout=30, what="leaders off the killed broker")
        procs[other] = BrokerProcess(zk_clients.connect, [other], tmp_path, SESSION_TIMEOUT_MS)
        wait_until(lambda: final_is_preferred(admin, hist), timeout=30, what="final preferred state")
        hist.check()
        final_epoch = get_controller_epoch(admin)[0]
        assert all(s.controller_epoch <= final_epoch for s in snapshot(admin).values())
        assert {p: list(ra.replicas) for p, ra in get_topic(admin, "stream").partitions.items()} == ASSIGNMENT
    finally:
        for p in procs.values():
            p.stop()


# ---- ensemble ---------------------------------------------------------------------------------

def _ensembles():
    kinds = ["zookeeper"]
    try:
        from tests.support import coord_server
        if hasattr(coord_server, "start_coord_ensemble"):
            kinds.append("coord")
    except ImportError:
        pass
    return kinds


@pytest.mark.parametrize("kind", _ensembles())
def test_ensemble_leader_loss(kind, tmp_path):
    if kind == "zookeeper":
        if not real_zk.available():
            pytest.skip("real ZooKeeper not installed")
        ens = real_zk.RealZooKeeperEnsemble(tmp_path / "ens", 3, extra_cfg={"tickTime": "1000"}).start()
        members = ens.members
        leader_of = ens.leader
    else:
        from tests.support import coord_server
        ens = coord_server.start_coord_ensemble(tmp_path / "ens", 3)
        members = ens.members
        leader_of = ens.leader
    connect = ens.connect_string + "/ensemble-test"
    timeout_ms = 15000  # survives the ensemble's leader election
    nodes: dict[int, BrokerNode] = {}
    admin = None
    try:
        admin = ZkClient(connect, session_timeout_ms=timeout_ms, connection_timeout_ms=30000).start()
        hist = History()
        for b in (1, 2, 3):
            nodes[b] = BrokerNode(connect, BrokerNodeConfig(b, port=9000 + b, session_timeout_ms=timeout_ms,
                                                            controller=ControllerConfig(leader_imbalance_check_interval_s=3600))).start()
        create_topic(admin, "stream", assignment=ASSIGNMENT)
        wait_until(lambda: all_led_by_live(admin, hist), timeout=30, what="states")
        epochs = {b.broker_id: b.broker_epoch for b in live_brokers(admin)}
        leader = leader_of()
        leader.stop(kill=True)
        wait_until(lambda: any(m.proc is not None and _serving(m) for m in members if m is not leader), timeout=60,
                   what="a new ensemble leader")
        # sessions survive the leader change: same brokers, same epochs
        wait_until(lambda: {b.broker_id: b.broker_epoch for b in live_brokers(admin)} == epochs, timeout=60,
                   what="sessions survived")
        ctl = get_controller(admin).broker_id
        victim = next(b for b in (1, 2, 3) if b != ctl)
        nodes.pop(victim).stop()
        wait_until(lambda: all_led_by_live(admin, hist), timeout=30, what="leaders moved with 2 of 3 servers")
        nodes[victim] = BrokerNode(connect, BrokerNodeConfig(victim, port=9000 + victim, session_timeout_ms=timeout_ms,
                                                             controller=ControllerConfig(leader_imbalance_check_interval_s=3600))).start()
        wait_until(lambda: final_is_preferred(admin, hist), timeout=30, what="final preferred state")
        hist.check()
    finally:
        for n in nodes.values():
            n.stop()
        if admin is not None:
            admin.close()
        ens.stop()


def _serving(member) -> bool:
    try:
        return member.mode() in ("leader", "follower")
    except OSError:
        return False
