"""Scenario 3 (the default-run part): faults under continuous produce/consume, each ending with every
acknowledged message consumed exactly once, in order per partition (tests/kafka/load.py).

- kill -9 of the ensemble leader, twice (a second server after the first is back): the brokers' ZooKeeper
  sessions live in the ensemble, so no broker re-registers (same czxid of /kafka/brokers/ids/N, which
  is the broker epoch), the controller and its epoch stay, and the brokers' logs show no new
  registration and no expired session.
- kill -9 of the controller broker: once its session expires a new controller is elected (controller
  epoch + 1) and the partitions it led get new leaders.
"""
from __future__ import annotations

import time
import uuid

from coord.kafka import tools
from tests.kafka.conftest import SESSION_TIMEOUT_MS
from tests.kafka.load import under_load


def create_topic(kafka, partitions: int = 3) -> str:
    topic = f"load-{uuid.uuid4().hex[:8]}"
    kafka.tool(tools.TOPICS, "--bootstrap-server", kafka.bootstrap, "--create", "--topic", topic,
               "--partitions", str(partitions), "--replication-factor", "3")
    return topic


def non_controller(cluster) -> int:
    return next(i for i in sorted(cluster.brokers) if i != cluster.controller())


def broker_sessions(kafka) -> dict:
    """What a lost broker session would change: the registrations, the controller, the logs' counts."""
    c = kafka.cluster
    logs = {i: b.log_text() for i, b in c.brokers.items()}
    return {
        "broker_epochs": c.broker_epochs(),
        "controller": c.controller(),
        "controller_epoch": c.controller_epoch(),
        "registrations_logged": {i: t.count("Registered broker") for i, t in logs.items()},
        "expiries_logged": {i: t.count("has expired") for i, t in logs.items()},
    }


def test_ensemble_leader_killed_twice_brokers_keep_their_sessions(kafka):
    topic = create_topic(kafka)
    with under_load(kafka.bootstrap, topic) as load:
        before = broker_sessions(kafka)
        assert sorted(before["broker_epochs"]) == [1, 2, 3]
        killed = []
        for _ in range(2):
            leader = kafka.ensemble.leader()
            assert leader.sid not in killed
            leader.kill()
            killed.append(leader.sid)
            t0 = time.monotonic()
            kafka.ensemble.wait_serving(wait=60)
            # Outlive the brokers' session timeout: a session the ensemble lost would be expired by now.
            time.sleep(max(0.0, SESSION_TIMEOUT_MS / 1000 + 2 - (time.monotonic() - t0)))
            load.still_flowing()
            assert broker_sessions(kafka) == before
            leader.start()
            kafka.ensemble.wait_serving(wait=90)
    checked = load.check()
    print(f"{kafka.backend}: servers {killed} killed in turn; {checked} acked messages consumed once in order; "
          f"longest gap between acks {load.max_ack_gap():.2f}s")
    assert broker_sessions(kafka) == before


def test_controller_broker_killed_new_controller_and_leaders(kafka):
    topic = create_topic(kafka)
    c = kafka.cluster
    with under_load(kafka.bootstrap, topic) as load:
        old, old_epoch = c.controller(), c.controller_epoch()
        led = [p for p in range(3) if c.partition_state(topic, p)["leader"] == old]
        assert led, "round-robin assignment gives every broker a partition to lead"
        c.brokers[old].kill()
        t0 = time.monotonic()
        new = c.wait_for(lambda: (x := c.controller()) not in (None, old) and x, 60,
                         describe="a new controller")
        elected = time.monotonic() - t0
        assert c.controller_epoch() > old_epoch
        assert old not in c.registered()

        def moved():
            states = [c.partition_state(topic, p) for p in led]
            return all(s["leader"] not in (old, -1) and old not in s["isr"] for s in states) and states
        states = c.wait_for(moved, 60, describe="new leaders for the partitions the dead controller led")
        moved_after = time.monotonic() - t0
        load.still_flowing()
    checked = load.check()
    print(f"{kafka.backend}: controller {old} killed; broker {new} controller after {elected:.1f}s, partitions "
          f"{led} led by {[s['leader'] for s in states]} after {moved_after:.1f}s; {checked} acked messages "
          f"consumed once in order; longest gap between acks {load.max_ack_gap():.2f}s")
