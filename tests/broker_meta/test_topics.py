"""Admin-path topic flows and the controller's fenced partition znodes (spec §3.5, §3.6, §3.9)."""
from __future__ import annotations

import json
import random

import pytest

from broker_meta import codec, paths
from broker_meta.assignment import BrokerMetadata, add_partitions_assignment, assign_replicas_to_brokers
from broker_meta.controller import FencedWriter, register_controller_and_increment_epoch
from broker_meta.errors import (InvalidTopicError, TopicAlreadyMarkedForDeletionError, TopicExistsError,
                                UnknownTopicError, InvalidReplicaAssignmentError)
from broker_meta.model import PartitionState, TopicPartition
from broker_meta.registry import BrokerRegistry
from broker_meta.topics import (add_partitions, conditional_update_state, create_partition_states, create_topic,
                                delete_topic, describe_topics, get_partition_states, get_topic, list_topics,
                                update_partition_states)
from broker_meta import cluster
from broker_meta.zkclient import BAD_VERSION, NODE_EXISTS, OK

from .test_registry import info


def register(zk_clients, ids, racks=None):
    clients = []
    for i in ids:
        c = zk_clients.new()
        c.make_sure_persistent_path_exists(paths.BROKER_IDS)
        BrokerRegistry(c).register(info(i, rack=(racks or {}).get(i)))
        clients.append(c)
    return clients


def test_create_topic_uses_kafka_assignment(zk_clients):
    zk = zk_clients.new()
    cluster.create_top_level_paths(zk)
    register(zk_clients, [1, 2, 3, 4])
    created = create_topic(zk, "orders", 8, 3, config={"retention.ms": "1000"}, rng=random.Random(42))
    expected = assign_replicas_to_brokers([BrokerMetadata(i) for i in (1, 2, 3, 4)], 8, 3, rng=random.Random(42))
    assert {p: list(ra.replicas) for p, ra in created.partitions.items()} == expected
    raw, stat = zk.get_data(paths.topic("orders"))
    assert raw == codec.encode_topic(created) and json.loads(raw)["version"] == 3
    assert len(created.topic_id) == 22 and stat.version == 0
    assert zk.get_data(paths.topic_config("orders"))[0] == b'{"version":1,"config":{"retention.ms":"1000"}}'
    assert list_topics(zk) == ["orders"]
    assert get_topic(zk, "orders").partitions == created.partitions


def test_create_topic_rack_aware(zk_clients):
    zk = zk_clients.new()
    cluster.create_top_level_paths(zk)
    racks = {0: "rack1", 1: "rack3", 2: "rack3", 3: "rack2", 4: "rack2", 5: "rack1"}
    register(zk_clients, sorted(racks), racks)
    created = create_topic(zk, "racked", 7, 3, rng=random.Random(1))
    expected = assign_replicas_to_brokers([BrokerMetadata(i, r) for i, r in sorted(racks.items())], 7, 3,
                                          rng=random.Random(1))
    assert {p: list(ra.replicas) for p, ra in created.partitions.items()} == expected
    for ra in created.partitions.values():
        assert len({racks[b] for b in ra.replicas}) == 3


def test_create_topic_rejections(zk_clients):
    zk = zk_clients.new()
    cluster.create_top_level_paths(zk)
    register(zk_clients, [1])
    create_topic(zk, "a.b", 1, 1)
    with pytest.raises(TopicExistsError):
        create_topic(zk, "a.b", 1, 1)
    with pytest.raises(InvalidTopicError):
        create_topic(zk, "a_b", 1, 1)
    with pytest.raises(ValueError):
        create_topic(zk, "bad/name", 1, 1)
    with pytest.raises(InvalidReplicaAssignmentError):
        create_topic(zk, "t", 1, 2)  # replication factor above the broker count
    with pytest.raises(InvalidReplicaAssignmentError):
        create_topic(zk, "t", assignment={0: [1, 1]})
    delete_topic(zk, "a.b")
    with pytest.raises(TopicExistsError):  # marked for deletion
        create_topic(zk, "a.b", assignment={0: [1]})


def test_add_partitions_and_delete_marker(zk_clients):
    zk = zk_clients.new()
    cluster.create_top_level_paths(zk)
    register(zk_clients, [1, 2, 3])
    created = create_topic(zk, "grow", assignment={0: [2, 3], 1: [3, 1], 2: [1, 2]})
    grown = add_partitions(zk, "grow", 5)
    existing = {p: list(ra.replicas) for p, ra in created.partitions.items()}
    expected_new = add_partitions_assignment([BrokerMetadata(i) for i in (1, 2, 3)], existing, 5)
    assert {p: list(grown.partitions[p].replicas) for p in (3, 4)} == expected_new == {3: [2, 3], 4: [3, 1]}
    assert grown.topic_id == created.topic_id and grown.zk_version == 1
    with pytest.raises(Exception):
        add_partitions(zk, "grow", 5)
    delete_topic(zk, "grow")
    data, stat = zk.get_data(paths.delete_topic("grow"))
    assert data is None  # Kafka creates the marker with null data
    with pytest.raises(TopicAlreadyMarkedForDeletionError):
        delete_topic(zk, "grow")
    with pytest.raises(UnknownTopicError):
        delete_topic(zk, "nope")
    assert describe_topics(zk, ["grow"])[0].marked_for_deletion


def test_fenced_partition_states(zk_clients):
    zk = zk_clients.new()
    cluster.create_top_level_paths(zk)
    epoch, version = register_controller_and_increment_epoch(zk, 1)
    fenced = FencedWriter(zk, version)
    register(zk_clients, [1, 2])
    create_topic(zk, "t", assignment={0: [1, 2], 1: [1, 2], 2: [1, 2]})
    tps = [TopicPartition("t", p) for p in range(3)]
    states = {tp: PartitionState(1, 0, (1, 2), epoch) for tp in tps}
    assert all(r.code == OK for r in create_partition_states(fenced, states).values())
    assert zk.get_data(paths.topic_partitions("t"))[0] is None  # null data, as Kafka
    assert zk.get_data(paths.partition_state("t", 0))[0] == b'{"controller_epoch":1,"leader":1,"version":1,"leader_epoch":0,"isr":[1,2]}'
    assert create_partition_states(fenced, {tps[0]: states[tps[0]]})[tps[0]].code == NODE_EXISTS
    read = get_partition_states(zk, tps + [TopicPartition("t", 9)])
    assert read[TopicPartition("t", 9)] is None and read[tps[1]].partition_epoch == 0
    moved = {tps[0]: read[tps[0]].new_leader_and_isr(2, (2,))}
    r = update_partition_states(fenced, moved)[tps[0]]
    assert r.code == OK and r.result.version == 1
    # the same write again carries a stale partition epoch
    assert update_partition_states(fenced, moved)[tps[0]].code == BAD_VERSION
    # a leader's own conditional write (IBP < 2.7) accepts its landed write on BADVERSION
    own = read[tps[1]].new_leader_and_isr(1, (1,))
    first = conditional_update_state(zk, tps[1], own)
    assert first is not None and first.partition_epoch == 1
    assert conditional_update_state(zk, tps[1], own).partition_epoch == 1
    other = read[tps[1]].new_leader_and_isr(2, (2,))
    assert conditional_update_state(zk, tps[1], other) is None
