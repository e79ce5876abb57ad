"""Kafka's replica assignment (AdminUtils.assignReplicasToBrokers), rack-unaware and rack-aware.

Same outputs as Kafka for the same inputs and the same start index / replica shift. Kafka draws both
from `Random.nextInt(brokers)` unless a fixed start index is given (addPartitions passes one); we
take an optional `random.Random` so callers can make the draw reproducible.

Rack-unaware: the first replica of partition p goes to broker (p + startIndex) mod n; the others
follow at an increasing shift, so replicas of one broker's partitions spread over the others.
Rack-aware: the same walk over a rack-alternated broker list, skipping brokers whose rack (or the
broker itself) already holds a replica while some rack (broker) still holds none.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence


class AssignmentError(ValueError):
    """InvalidPartitions / InvalidReplicationFactor / AdminOperation in Kafka."""


@dataclass(frozen=True)
class BrokerMetadata:
    id: int
    rack: str | None = None


def assign_replicas_to_brokers(brokers: Sequence[BrokerMetadata], n_partitions: int, replication_factor: int,
                               fixed_start_index: int = -1, start_partition_id: int = -1,
                               rng: random.Random | None = None) -> dict[int, list[int]]:
    """Partition id -> replica list, exactly as AdminUtils.assignReplicasToBrokers."""
    if n_partitions <= 0:
        raise AssignmentError("Number of partitions must be larger than 0.")
    if replication_factor <= 0:
        raise AssignmentError("Replication factor must be larger than 0.")
    if replication_factor > len(brokers):
        raise AssignmentError(f"Replication factor: {replication_factor} larger than available brokers: {len(brokers)}.")
    rng = rng or random.Random()
    if all(b.rack is None for b in brokers):
        return _rack_unaware(n_partitions, replication_factor, [b.id for b in brokers], fixed_start_index,
                             start_partition_id, rng)
    if any(b.rack is None for b in brokers):
        raise AssignmentError("Not all brokers have rack information for replica rack aware assignment.")
    return _rack_aware(n_partitions, replication_factor, {b.id: b.rack for b in brokers}, fixed_start_index,
                       start_partition_id, rng)


def _replica_index(first_replica_index: int, second_replica_shift: int, replica_index: int, n_brokers: int) -> int:
    shift = 1 + (second_replica_shift + replica_index) % (n_brokers - 1)
    return (first_replica_index + shift) % n_brokers


def _rack_unaware(n_partitions: int, rf: int, broker_list: list[int], fixed_start_index: int,
                  start_partition_id: int, rng: random.Random) -> dict[int, list[int]]:
    n = len(broker_list)
    start_index = fixed_start_index if fixed_start_index >= 0 else rng.randrange(n)
    current = max(0, start_partition_id)
    next_replica_shift = fixed_start_index if fixed_start_index >= 0 else rng.randrange(n)
    out: dict[int, list[int]] = {}
    for _ in range(n_partitions):
        if current > 0 and current % n == 0:
            next_replica_shift += 1
        first = (current + start_index) % n
        replicas = [broker_list[first]]
        for j in range(rf - 1):
            replicas.append(broker_list[_replica_index(first, next_replica_shift, j, n)])
        out[current] = replicas
        current += 1
    return out


def rack_alternated_broker_list(broker_rack: dict[int, str]) -> list[int]:
    """Racks in sorted order, brokers in id order within a rack, taken one per rack in turn."""
    by_rack: dict[str, list[int]] = {}
    for broker_id, rack in broker_rack.items():
        by_rack.setdefault(rack, []).append(broker_id)
    iters = {rack: iter(sorted(ids)) for rack, ids in by_rack.items()}
    racks = sorted(iters)
    result: list[int] = []
    rack_index = 0
    while len(result) < len(broker_rack):
        nxt = next(iters[racks[rack_index]], None)
        if nxt is not None:
            result.append(nxt)
        rack_index = (rack_index + 1) % len(racks)
    return result


def _rack_aware(n_partitions: int, rf: int, broker_rack: dict[int, str], fixed_start_index: int,
                start_partition_id: int, rng: random.Random) -> dict[int, list[int]]:
    num_racks = len(set(broker_rack.values()))
    arranged = rack_alternated_broker_list(broker_rack)
    num_brokers = len(arranged)
    start_index = fixed_start_index if fixed_start_index >= 0 else rng.randrange(num_brokers)
    current = max(0, start_partition_id)
    next_replica_shift = fixed_start_index if fixed_start_index >= 0 else rng.randrange(num_brokers)
    out: dict[int, list[int]] = {}
    for _ in range(n_partitions):
        if current > 0 and current % num_brokers == 0:
            next_replica_shift += 1
        first = (current + start_index) % num_brokers
        leader = arranged[first]
        replicas = [leader]
        racks_with_replicas = {broker_rack[leader]}
        brokers_with_replicas = {leader}
        k = 0
        for _ in range(rf - 1):
            while True:
                broker = arranged[_replica_index(first, next_replica_shift * num_racks, k, num_brokers)]
                rack = broker_rack[broker]
                k += 1
                if ((rack not in racks_with_replicas or len(racks_with_replicas) == num_racks)
                        and (broker not in brokers_with_replicas or len(brokers_with_replicas) == num_brokers)):
                    replicas.append(broker)
                    racks_with_replicas.add(rack)
                    brokers_with_replicas.add(broker)
                    break
        out[current] = replicas
        current += 1
    return out


def add_partitions_assignment(brokers: Sequence[BrokerMetadata], existing: dict[int, Sequence[int]],
                              total_partitions: int) -> dict[int, list[int]]:
    """New partitions for AdminZkClient.addPartitions: start at the broker of partition 0's first replica."""
    if 0 not in existing:
        raise AssignmentError("the topic does not have partition with id 0, it should never happen")
    to_add = total_partitions - len(existing)
    if to_add <= 0:
        raise AssignmentError(f"The number of partitions for a topic can only be increased. "
                              f"Topic currently has {len(existing)} partitions, {total_partitions} would not be an increase.")
    p0 = list(existing[0])
    ordered = sorted(brokers, key=lambda b: b.id)
    start_index = next((i for i, b in enumerate(ordered) if b.id >= p0[0]), -1)
    return assign_replicas_to_brokers(ordered, to_add, len(p0), max(0, start_index), len(existing))
