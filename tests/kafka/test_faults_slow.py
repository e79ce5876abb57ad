"""Scenario 3, the slow part (CI runs it: `./scripts/test -m slow tests/kafka`): more faults under
continuous produce/consume, each ending with every acknowledged message consumed exactly once, in
order per partition; coord and ZooKeeper with the same harness."""
from __future__ import annotations

import json
import re

import pytest

from coord.kafka import tools
from tests.kafka.conftest import SESSION_TIMEOUT_MS
from tests.kafka.load import under_load
from tests.kafka.test_faults import broker_sessions, create_topic, non_controller

pytestmark = pytest.mark.slow


def test_rolling_restart_of_every_ensemble_server_keeps_broker_sessions(kafka):
    topic = create_topic(kafka)
    with under_load(kafka.bootstrap, topic) as load:
        before = broker_sessions(kafka)
        for sid, member in kafka.ensemble.members.items():
            member.stop()
            kafka.ensemble.wait_serving(wait=60)
            member.start()
            kafka.ensemble.wait_serving(wait=90)
            load.still_flowing(30)
        assert broker_sessions(kafka) == before
    print(f"{kafka.backend}: rolling restart; {load.check()} acked messages consumed once in order; "
          f"longest gap between acks {load.max_ack_gap():.2f}s")


def test_non_controller_broker_killed_and_back_isr_and_preferred_leaders(kafka):
    topic = create_topic(kafka)
    c = kafka.cluster
    with under_load(kafka.bootstrap, topic) as load:
        victim = non_controller(c)
        c.brokers[victim].kill()
        def without_victim():
            states = [c.partition_state(topic, p) for p in range(3)]
            return all(victim not in s["isr"] and s["leader"] != victim for s in states) and states
        states = c.wait_for(without_victim, 60, describe=f"broker {victim} out of every ISR")
        assert all(len(s["isr"]) == 2 for s in states)
        c.brokers[victim].start()
        c.wait_ready(180, ids=[victim])
        c.wait_for(lambda: all(sorted(c.partition_state(topic, p)["isr"]) == [1, 2, 3] for p in range(3)), 90,
                   describe=f"broker {victim} back in every ISR")
        assignment = kafka.cluster.zk.get(f"/kafka/brokers/topics/{topic}")[0]
        preferred = {int(p): r[0] for p, r in json.loads(assignment)["partitions"].items()}
        moved = [p for p in range(3) if c.partition_state(topic, p)["leader"] != preferred[p]]
        assert moved, f"broker {victim} led a partition before it died; it should not lead one now"
        election = kafka.workdir / f"elect-{topic}.json"
        election.write_text(json.dumps({"partitions": [{"topic": topic, "partition": p} for p in range(3)]}))
        out = kafka.tool(tools.LEADER_ELECTION, "--bootstrap-server", kafka.bootstrap, "--election-type",
                         "preferred", "--path-to-json-file", election).stdout
        assert all(f"{topic}-{p}" in out for p in moved), out
        c.wait_for(lambda: all(c.partition_state(topic, p)["leader"] == preferred[p] for p in range(3)), 60,
                   describe="preferred leaders restored")
        load.still_flowing()
    print(f"{kafka.backend}: broker {victim} killed and back; {load.check()} acked messages consumed once "
          f"in order; preferred leaders of {moved} restored by LeaderElectionCommand; longest gap between acks "
          f"{load.max_ack_gap():.2f}s")


def log_since(broker, offset: int) -> str:
    with open(broker.log_path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def log_size(broker) -> int:
    return broker.log_path.stat().st_size


def test_broker_paused_past_its_session_reregisters_with_a_new_epoch_and_is_fenced(kafka):
    """Kafka 3.9 (ZooKeeper mode) fences a broker whose session expired in two ways, both checked here:
    the controller drops its old registration (broker epoch = the czxid) and bumps the leader epoch of
    every partition it was in, so its requests under the old epochs are refused (followers' fetches:
    FENCED_LEADER_EPOCH, logged by the paused broker as "has an older epoch"; the controller answers
    AlterPartition/LeaderAndIsr under a stale broker epoch with STALE_BROKER_EPOCH); on resuming it
    registers again with a new epoch and the controller treats it as a new broker, sending it the
    partitions' state at the new leader epochs."""
    topic = create_topic(kafka)
    c = kafka.cluster
    victim = non_controller(c)
    controller = c.brokers[c.controller()]
    with under_load(kafka.bootstrap, topic) as load:
        before = broker_sessions(kafka)
        epochs_before = {p: c.partition_state(topic, p)["leader_epoch"] for p in range(3)}
        controller_mark = log_size(controller)
        c.brokers[victim].pause()
        c.wait_for(lambda: victim not in c.registered(), SESSION_TIMEOUT_MS / 1000 + 30,
                   describe=f"broker {victim}'s session expired")
        c.wait_for(lambda: all(victim not in c.partition_state(topic, p)["isr"] for p in range(3)), 60,
                   describe=f"broker {victim} out of every ISR")
        fenced_epochs = {p: c.partition_state(topic, p)["leader_epoch"] for p in range(3)}
        victim_mark = log_size(c.brokers[victim])
        c.brokers[victim].resume()   # (Broker.kill in a failing test's clean-up resumes it too)
        epochs = c.wait_for(lambda: victim in (e := c.broker_epochs()) and e, 90,
                            describe=f"broker {victim} registered again")
        after = broker_sessions(kafka)
        assert epochs[victim] > before["broker_epochs"][victim]
        assert after["registrations_logged"][victim] == before["registrations_logged"][victim] + 1
        assert after["expiries_logged"][victim] > before["expiries_logged"][victim]
        others = [i for i in c.brokers if i != victim]
        assert {i: epochs[i] for i in others} == {i: before["broker_epochs"][i] for i in others}
        c.wait_for(lambda: all(victim in c.partition_state(topic, p)["isr"] for p in range(3)), 90,
                   describe=f"broker {victim} back in every ISR")
        load.still_flowing()
    # The controller dropped the old registration, then took the new one as a new broker (not a bounce).
    ctl = log_since(controller, controller_mark)
    failed = ctl.find(f"Broker failure callback for {victim}")
    started = ctl.find(f"New broker startup callback for {victim}")
    assert 0 <= failed < started, ctl[-3000:]
    # Every partition it was in got a new leader epoch while it was paused ...
    assert all(fenced_epochs[p] > epochs_before[p] for p in range(3)), (epochs_before, fenced_epochs)
    resumed = log_since(c.brokers[victim], victim_mark)
    assert (f"Registered broker {victim} at path /brokers/ids/{victim}" in resumed
            and f"czxid (broker epoch): {epochs[victim]}" in resumed), resumed[-3000:]
    # ... and after resuming it only acted on the controller's state at those new epochs.
    for p in range(3):
        started_at = [int(e) for e in re.findall(rf"{re.escape(topic)}-{p} .*?starts at leader epoch (\d+)", resumed)]
        assert started_at and min(started_at) >= fenced_epochs[p], (p, started_at, fenced_epochs)
    refused_fetches = resumed.count("than the current leader. Will await the new LeaderAndIsr state")
    stale = len(re.findall(r"stale broker epoch|smaller than the current broker epoch",
                           ctl + resumed, re.I))
    print(f"{kafka.backend}: broker {victim} paused past its session: broker epoch {before['broker_epochs'][victim]} "
          f"-> {epochs[victim]}; leader epochs {epochs_before} -> {fenced_epochs}; {refused_fetches} of its fetches "
          f"refused as of an older leader epoch; {stale} stale-broker-epoch requests; {load.check()} acked "
          f"messages consumed once in order")
