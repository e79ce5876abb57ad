"""The stream controller on Python broker nodes: failover, leadership movement, ISR, rebalance,
deletion and admin znodes, all fenced (spec §3.3 - §3.10)."""
from __future__ import annotations

import pytest

from broker_meta import codec, paths
from broker_meta.broker_node import BrokerNode, BrokerNodeConfig
from broker_meta.controller import get_controller, get_controller_epoch
from broker_meta.model import (NO_LEADER, PartitionReassignment, PreferredReplicaElection, TopicPartition)
from broker_meta.notifications import create_isr_change_notification, create_log_dir_event_notification
from broker_meta.stream_controller import ControllerConfig
from broker_meta.topics import create_topic, delete_topic, get_partition_states, conditional_update_state

from .conftest import SESSION_TIMEOUT_MS, Clients, wait_until


class Cluster:
    def __init__(self, zk_clients, config: ControllerConfig | None = None):
        self.zk_clients = zk_clients
        self.config = config or ControllerConfig(leader_imbalance_check_interval_s=3600)
        self.nodes: dict[int, BrokerNode] = {}
        self.admin = zk_clients.new()

    def start(self, broker_id: int) -> BrokerNode:
        node = BrokerNode(self.zk_clients.connect, BrokerNodeConfig(
            broker_id, port=9000 + broker_id, session_timeout_ms=SESSION_TIMEOUT_MS, controller=self.config)).start()
        self.nodes[broker_id] = node
        return node

    def controller(self) -> BrokerNode:
        def active():
            reg = get_controller(self.admin)
            n = self.nodes.get(reg.broker_id) if reg else None
            return n if n is not None and n.is_controller and n.controller.ready.is_set() else None
        return wait_until(active, what="an active, loaded controller")

    def stop(self, broker_id: int) -> None:
        self.nodes.pop(broker_id).stop()

    def states(self, topic: str, n: int):
        return get_partition_states(self.admin, [TopicPartition(topic, p) for p in range(n)])

    def settle(self):
        for node in self.nodes.values():
            node.events.wait_idle(20)

    def close(self):
        for n in list(self.nodes.values()):
            n.stop()


@pytest.fixture
def cluster(zk_clients):
    c = Cluster(zk_clients)
    yield c
    c.close()


def all_led_by_live(states, live):
    return all(s is not None and s.leader in live and s.leader in s.isr for s in states.values())


def test_new_topic_gets_states_and_failover_moves_leaders(cluster):
    for b in (1, 2, 3):
        cluster.start(b)
    ctl = cluster.controller()
    create_topic(cluster.admin, "events", 6, 3)
    wait_until(lambda: all(s is not None for s in cluster.states("events", 6).values()), what="states created")
    states = cluster.states("events", 6)
    epoch = get_controller_epoch(cluster.admin)[0]
    for p, s in states.items():
        replicas = codec.decode_topic("events", cluster.admin.get_data(paths.topic("events"))[0]).replicas(p.partition)
        assert s.leader == replicas[0] and tuple(s.isr) == tuple(replicas) and s.leader_epoch == 0
        assert s.controller_epoch == epoch
    victim = next(b for b in (1, 2, 3) if b != ctl.broker_id)
    led = [tp for tp, s in states.items() if s.leader == victim]
    assert led
    cluster.stop(victim)
    live = {b for b in (1, 2, 3) if b != victim}
    wait_until(lambda: all_led_by_live(cluster.states("events", 6), live) and
               all(victim not in s.isr for s in cluster.states("events", 6).values()), what="leaders moved off")
    after = cluster.states("events", 6)
    for tp in led:
        assert after[tp].leader_epoch == states[tp].leader_epoch + 1
        assert after[tp].partition_epoch > states[tp].partition_epoch
    # the broker returns: it rejoins the ISRs and gets its preferred leadership back
    cluster.start(victim)
    wait_until(lambda: all(cluster.states("events", 6)[tp].leader == victim for tp in led), what="preferred restored")
    assert all(victim in s.isr for s in cluster.states("events", 6).values())


def test_controller_session_expiry_hands_over_and_successor_continues(cluster):
    for b in (1, 2, 3):
        cluster.start(b)
    old = cluster.controller()
    old_epoch = get_controller_epoch(cluster.admin)[0]
    create_topic(cluster.admin, "t", 3, 2)
    wait_until(lambda: all(s is not None for s in cluster.states("t", 3).values()), what="states")
    cluster.zk_clients.expire(old.zk)
    new = wait_until(lambda: (c := cluster.controller()) and get_controller_epoch(cluster.admin)[0] > old_epoch and c,
                     what="successor")
    assert get_controller_epoch(cluster.admin)[0] >= old_epoch + 1
    assert len(new.controller.snapshot()) == 3  # loaded the persisted states
    # the old controller's broker registered again under its new session
    wait_until(lambda: old.registry.registered.is_set(), what="re-registration")
    victim = next(b for b in cluster.nodes if b != new.broker_id)
    cluster.stop(victim)
    live = set(cluster.nodes)
    wait_until(lambda: all_led_by_live(cluster.states("t", 3), live), what="successor moved leaders")


def test_offline_partition_waits_for_isr_member_unless_unclean(zk_clients):
    for unclean in (False, True):
        c = Cluster(zk_clients, ControllerConfig(unclean_leader_election=unclean, leader_imbalance_check_interval_s=3600))
        try:
            for b in (1, 2, 3):
                c.start(b)
            ctl = c.controller()
            others = [b for b in (1, 2, 3) if b != ctl.broker_id]
            topic = f"u{int(unclean)}"
            create_topic(c.admin, topic, assignment={0: [others[0], others[1]]})
            wait_until(lambda: c.states(topic, 1)[TopicPartition(topic, 0)] is not None, what="state")
            tp = TopicPartition(topic, 0)
            # shrink the ISR to the leader (as the leader itself would, IBP < 2.7), then kill it
            st = c.states(topic, 1)[tp]
            conditional_update_state(c.admin, tp, st.new_leader_and_isr(others[0], (others[0],)))
            create_isr_change_notification(c.admin, [tp])
            wait_until(lambda: tuple(ctl.controller.snapshot()[tp].isr) == (others[0],), what="isr change seen")
            wait_until(lambda: c.admin.get_children(paths.ISR_CHANGE_NOTIFICATION)[0] == [], what="notification gone")
            c.stop(others[0])
            if unclean:
                wait_until(lambda: c.states(topic, 1)[tp].leader == others[1], what="unclean leader")
                assert tuple(c.states(topic, 1)[tp].isr) == (others[1],)
            else:
                wait_until(lambda: c.states(topic, 1)[tp].leader == NO_LEADER, what="offline")
                assert tuple(c.states(topic, 1)[tp].isr) == (others[0],)  # last ISR member kept
                c.start(others[0])
                wait_until(lambda: c.states(topic, 1)[tp].leader == others[0], what="clean election on return")
        finally:
            c.close()


def test_deletion_preferred_election_reassignment_and_log_dir_events(cluster):
    for b in (1, 2, 3):
        cluster.start(b)
    ctl = cluster.controller()
    create_topic(cluster.admin, "gone", 2, 2)
    create_topic(cluster.admin, "keep", assignment={0: [1, 2], 1: [2, 3]})
    wait_until(lambda: all(s is not None for s in cluster.states("keep", 2).values()), what="states")
    delete_topic(cluster.admin, "gone")
    wait_until(lambda: cluster.admin.exists(paths.topic("gone")) is None and
               cluster.admin.exists(paths.delete_topic("gone")) is None and
               cluster.admin.exists(paths.topic_config("gone")) is None, what="topic deleted")
    # move leadership of keep-0 away from its preferred replica, then ask for a preferred election
    tp = TopicPartition("keep", 0)
    cluster.admin.create(paths.REASSIGN_PARTITIONS, codec.encode_reassignment(
        PartitionReassignment(((tp, (3, 1)),))))
    wait_until(lambda: cluster.admin.exists(paths.REASSIGN_PARTITIONS) is None, what="reassignment done")
    a = codec.decode_topic("keep", cluster.admin.get_data(paths.topic("keep"))[0])
    assert a.replicas(0) == (3, 1)
    st = cluster.states("keep", 2)[tp]
    assert set(st.isr) == {1, 3} and st.leader == 1  # leader kept: still a target replica
    cluster.admin.create(paths.PREFERRED_REPLICA_ELECTION,
                         codec.encode_preferred_replica_election(PreferredReplicaElection((tp,))))
    wait_until(lambda: cluster.states("keep", 2)[tp].leader == 3, what="preferred leader 3")
    wait_until(lambda: cluster.admin.exists(paths.PREFERRED_REPLICA_ELECTION) is None, what="znode removed")
    create_log_dir_event_notification(cluster.admin, 2)
    wait_until(lambda: 2 in ctl.controller.ctx.log_dir_failures, what="log dir event")
    wait_until(lambda: cluster.admin.get_children(paths.LOG_DIR_EVENT_NOTIFICATION)[0] == [], what="consumed")


def test_fenced_controller_resigns(cluster):
    for b in (1, 2):
        cluster.start(b)
    ctl = cluster.controller()
    other = next(n for b, n in cluster.nodes.items() if b != ctl.broker_id)
    create_topic(cluster.admin, "f", 2, 2)
    wait_until(lambda: all(s is not None for s in cluster.states("f", 2).values()), what="states")
    # a newer controller epoch appears behind the controller's back (e.g. a KRaft migration claim)
    epoch, version = get_controller_epoch(cluster.admin)
    cluster.admin.set_data(paths.CONTROLLER_EPOCH, str(epoch + 1).encode(), version)
    before = cluster.states("f", 2)
    cluster.stop(other.broker_id)  # the controller must act, and its fenced write must fail
    wait_until(lambda: get_controller_epoch(cluster.admin)[0] == epoch + 2, what="re-election after resigning")
    # it gave up /controller, so the survivors elect again at the current epoch and act
    successor = cluster.controller()
    assert get_controller_epoch(cluster.admin)[0] == epoch + 2
    wait_until(lambda: all_led_by_live(cluster.states("f", 2), {successor.broker_id}), what="leaders moved")
    moved = cluster.states("f", 2)
    assert all(s.controller_epoch == epoch + 2 for tp, s in moved.items() if s != before[tp])


def test_periodic_rebalance_follows_the_imbalance_threshold(zk_clients):
    """Kafka's auto leader rebalance on its own timer (no rebalance on broker join): broker a prefers
    4 partitions and does not lead one of them (25 %); with leader.imbalance.per.broker.percentage 10
    the next check elects a there, with 50 it leaves the leadership where it is."""
    for pct, rebalanced in ((10, True), (50, False)):
        clients = Clients(zk_clients.target, f"{zk_clients.chroot}-{pct}")  # nothing left from the other run
        c = Cluster(clients, ControllerConfig(rebalance_on_broker_join=False, leader_imbalance_check_interval_s=0.5,
                                                 leader_imbalance_per_broker_percentage=pct))
        try:
            for b in (1, 2, 3):
                c.start(b)
            ctl = c.controller()
            a, b = 1, 2
            topic = f"bal{pct}"
            create_topic(c.admin, topic, assignment={0: [b, a], 1: [a, b], 2: [a, b], 3: [a, b]})
            tp0 = TopicPartition(topic, 0)
            wait_until(lambda: all(s is not None and s.leader == s.isr[0] for s in c.states(topic, 4).values()),
                       what="states at their preferred leaders")
            assert c.states(topic, 4)[tp0].leader == b
            events: list[tuple[str, dict]] = []
            ctl.controller.listeners.append(lambda what, detail: events.append((what, detail)))
            # a now prefers partition 0 too, but the reassignment keeps b, a live target, as its leader
            c.admin.create(paths.REASSIGN_PARTITIONS, codec.encode_reassignment(PartitionReassignment(((tp0, (a, b)),))))
            wait_until(lambda: any(w == "reassigned" for w, _ in events), what="reassignment done")
            assert c.states(topic, 4)[tp0].leader == b
            after = next(i for i, (w, _) in enumerate(events) if w == "reassigned")
            # two full imbalance checks after the reassignment: at least one ran on the new assignment
            wait_until(lambda: sum(w == "imbalance_check" for w, _ in events[after:]) >= 2, timeout=30,
                       what="two periodic imbalance checks")
            st = c.states(topic, 4)[tp0]
            moved = [d for w, d in events[after:] if w == "states" and d["reason"] == "leader rebalance"]
            if rebalanced:
                assert st.leader == a and moved == [{"reason": "leader rebalance", "count": 1}], (st, events)
            else:
                assert st.leader == b and not moved, (st, events)
            assert {s.leader for t, s in c.states(topic, 4).items() if t != tp0} == {a}
        finally:
            c.close()
            clients.close_all()
