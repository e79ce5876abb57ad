"""Replica assignment: hand-derived cases following AdminUtils.assignReplicasToBrokers step by step,
Kafka's own documented examples, and the invariants the algorithm promises."""
from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker_meta.assignment import (AssignmentError, BrokerMetadata, add_partitions_assignment,
                                    assign_replicas_to_brokers, rack_alternated_broker_list)


def plain(*ids):
    return [BrokerMetadata(i) for i in ids]


def racked(mapping):
    return [BrokerMetadata(i, r) for i, r in sorted(mapping.items())]


SIX_RACKED = {0: "rack1", 1: "rack3", 2: "rack3", 3: "rack2", 4: "rack2", 5: "rack1"}

CASES = [
    # (id, brokers, partitions, rf, fixed start index, start partition id, expected)
    ("javadoc 5 brokers rf3 start0", plain(0, 1, 2, 3, 4), 10, 3, 0, -1,
     {0: [0, 1, 2], 1: [1, 2, 3], 2: [2, 3, 4], 3: [3, 4, 0], 4: [4, 0, 1],
      5: [0, 2, 3], 6: [1, 3, 4], 7: [2, 4, 0], 8: [3, 0, 1], 9: [4, 1, 2]}),
    ("ids from 1, start2 rf2", plain(1, 2, 3, 4), 6, 2, 2, -1,
     {0: [3, 2], 1: [4, 3], 2: [1, 4], 3: [2, 1], 4: [3, 4], 5: [4, 1]}),
    ("ids from 1, start2 rf3", plain(1, 2, 3, 4), 1, 3, 2, -1, {0: [3, 2, 4]}),
    ("rf1 round robin start1", plain(10, 20, 30), 4, 1, 1, -1, {0: [20], 1: [30], 2: [10], 3: [20]}),
    ("add partitions from p3", plain(1, 2, 3), 2, 2, 1, 3, {3: [2, 3], 4: [3, 1]}),
    ("javadoc rack aware 7 partitions", racked(SIX_RACKED), 7, 3, 0, 0,
     {0: [0, 3, 1], 1: [3, 1, 5], 2: [1, 5, 4], 3: [5, 4, 2], 4: [4, 2, 0], 5: [2, 0, 3], 6: [0, 4, 2]}),
    ("uneven racks rf2", racked({0: "a", 1: "a", 2: "b"}), 3, 2, 0, -1, {0: [0, 2], 1: [2, 1], 2: [1, 2]}),
    ("uneven racks rf3", racked({0: "a", 1: "a", 2: "b"}), 1, 3, 0, -1, {0: [0, 2, 1]}),
]


@pytest.mark.parametrize("name,brokers,n,rf,start,start_pid,expected", CASES, ids=[c[0] for c in CASES])
def test_assignment_table(name, brokers, n, rf, start, start_pid, expected):
    assert assign_replicas_to_brokers(brokers, n, rf, start, start_pid) == expected


def test_rack_alternated_list_matches_kafka_doc():
    assert rack_alternated_broker_list(SIX_RACKED) == [0, 3, 1, 5, 4, 2]
    without5 = {k: v for k, v in SIX_RACKED.items() if k != 5}
    assert rack_alternated_broker_list(without5) == [0, 3, 1, 4, 2]
    nine = {b: f"rack{b // 3 + 1}" for b in range(9)}
    assert rack_alternated_broker_list(nine) == [0, 3, 6, 1, 4, 7, 2, 5, 8]


def test_add_partitions_starts_at_partition_zero_leader():
    existing = {0: [2, 3], 1: [3, 1], 2: [1, 2]}
    assert add_partitions_assignment(plain(3, 1, 2), existing, 5) == {3: [2, 3], 4: [3, 1]}
    with pytest.raises(AssignmentError):
        add_partitions_assignment(plain(1, 2, 3), existing, 3)


@pytest.mark.parametrize("brokers,n,rf", [(plain(1, 2), 1, 3), (plain(1), 0, 1), (plain(1), 1, 0),
                                          ([BrokerMetadata(1, "a"), BrokerMetadata(2)], 1, 1)])
def test_invalid_requests(brokers, n, rf):
    with pytest.raises(AssignmentError):
        assign_replicas_to_brokers(brokers, n, rf, 0)


def test_random_start_is_drawn_like_kafka():
    # Kafka draws the start index, then the replica shift, each from nextInt(#brokers).
    out = assign_replicas_to_brokers(plain(0, 1, 2, 3, 4), 5, 2, rng=random.Random(7))
    rng = random.Random(7)
    start, shift = rng.randrange(5), rng.randrange(5)
    for p in range(5):
        first = (p + start) % 5
        assert out[p] == [first, (first + 1 + shift % 4) % 5]


@settings(max_examples=200, deadline=None)
@given(n_brokers=st.integers(1, 12), n=st.integers(1, 60), data=st.data())
def test_unaware_invariants(n_brokers, n, data):
    rf = data.draw(st.integers(1, n_brokers))
    start = data.draw(st.integers(0, n_brokers - 1))
    out = assign_replicas_to_brokers(plain(*range(n_brokers)), n, rf, start)
    assert sorted(out) == list(range(n))
    assert all(len(set(r)) == rf for r in out.values())
    leaders = Counter(r[0] for r in out.values())
    assert max(leaders.values()) - min(leaders.values(), default=0) <= 1 or len(leaders) < n_brokers


@settings(max_examples=200, deadline=None)
@given(racks=st.lists(st.sampled_from("abcd"), min_size=1, max_size=10), n=st.integers(1, 40), data=st.data())
def test_rack_aware_invariants(racks, n, data):
    brokers = [BrokerMetadata(i, r) for i, r in enumerate(racks)]
    rf = data.draw(st.integers(1, len(brokers)))
    out = assign_replicas_to_brokers(brokers, n, rf, data.draw(st.integers(0, len(brokers) - 1)))
    num_racks = len(set(racks))
    for replicas in out.values():
        assert len(set(replicas)) == rf
        used = {racks[b] for b in replicas}
        assert len(used) == min(rf, num_racks)  # every rack gets one before any gets two
