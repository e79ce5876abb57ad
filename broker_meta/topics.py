"""Topics and partitions in Kafka's layout: the admin path (AdminZkClient: create, add partitions,
mark for deletion) and the controller's fenced partition znodes (KafkaZkClient: partition node and
state creates, conditional state updates where the node version is the partition epoch).

Retries after a connection loss: the topic znode create is checked by re-reading it (our own bytes
mean our earlier attempt landed); state updates are conditional on the partition epoch, so a
repeated write that already landed comes back BADVERSION and the controller re-reads (spec §3.6).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from . import codec, paths
from .assignment import (AssignmentError, BrokerMetadata, add_partitions_assignment, assign_replicas_to_brokers)
from .cluster import random_uuid_base64
from .configs import set_entity_config, get_entity_config
from .controller import FencedResult, FencedWriter
from .errors import (InvalidPartitionsError, InvalidReplicaAssignmentError, InvalidTopicError, KeeperError,
                     TopicAlreadyMarkedForDeletionError, TopicExistsError, UnknownTopicError)
from .model import (PartitionState, ReplicaAssignment, TopicAssignment, TopicPartition, unify_collision_chars,
                    validate_topic_name)
from .registry import live_brokers
from .zkclient import NO_NODE, NODE_EXISTS, OK, CreateOp, SetDataOp, ZkClient

RACK_AWARE_ENFORCED = "enforced"
RACK_AWARE_DISABLED = "disabled"
RACK_AWARE_SAFE = "safe"


def broker_metadatas(zk: ZkClient, rack_aware_mode: str = RACK_AWARE_ENFORCED,
                     broker_ids: Iterable[int] | None = None) -> list[BrokerMetadata]:
    """AdminZkClient.getBrokerMetadatas: live brokers sorted by id, racks per the mode."""
    brokers = [b for b in live_brokers(zk) if b.registration is not None]
    if broker_ids is not None:
        wanted = set(broker_ids)
        brokers = [b for b in brokers if b.broker_id in wanted]
    with_rack = [b for b in brokers if b.registration.rack is not None]
    if rack_aware_mode == RACK_AWARE_ENFORCED and with_rack and len(with_rack) < len(brokers):
        raise AssignmentError("Not all brokers have rack information. Add --disable-rack-aware in command line"
                              " to make replica assignment without rack information.")
    use_racks = rack_aware_mode == RACK_AWARE_ENFORCED or (
        rack_aware_mode == RACK_AWARE_SAFE and len(with_rack) == len(brokers))
    return sorted((BrokerMetadata(b.broker_id, b.registration.rack if use_racks else None) for b in brokers),
                  key=lambda m: m.id)


def list_topics(zk: ZkClient) -> list[str]:
    kids = zk.get_children(paths.TOPICS)
    return sorted(kids[0]) if kids else []


def get_topic(zk: ZkClient, topic: str) -> TopicAssignment | None:
    got = zk.get_data(paths.topic(topic))
    return None if got is None else codec.decode_topic(topic, got[0], got[1].version)


def topics_marked_for_deletion(zk: ZkClient) -> list[str]:
    kids = zk.get_children(paths.DELETE_TOPICS)
    return sorted(kids[0]) if kids else []


def _validate_assignment(topic: str, assignment: dict[int, Sequence[int]]) -> None:
    if not assignment:
        raise InvalidPartitionsError("number of partitions must be larger than 0")
    if sorted(assignment) != list(range(len(assignment))):
        raise InvalidReplicaAssignmentError("partitions should be a consecutive 0-based integer sequence")
    sizes = {len(r) for r in assignment.values()}
    if len(sizes) != 1:
        raise InvalidReplicaAssignmentError("All partitions should have the same number of replicas")
    for p, replicas in assignment.items():
        if len(set(replicas)) != len(replicas):
            raise InvalidReplicaAssignmentError(f"Duplicate replica assignment for partition {topic}-{p}: {list(replicas)}")
        if not replicas:
            raise InvalidReplicaAssignmentError("replication factor must be larger than 0")


def create_topic(zk: ZkClient, topic: str, partitions: int | None = None, replication_factor: int | None = None, *,
                 config: dict[str, str] | None = None, assignment: dict[int, Sequence[int]] | None = None,
                 rack_aware_mode: str = RACK_AWARE_ENFORCED, uses_topic_id: bool = True,
                 validate_only: bool = False, rng: random.Random | None = None) -> TopicAssignment:
    """AdminZkClient.createTopic / createTopicWithAssignment."""
    validate_topic_name(topic)
    if assignment is None:
        if partitions is None or replication_factor is None:
            raise ValueError("give partitions and replication_factor, or an explicit assignment")
        brokers = broker_metadatas(zk, rack_aware_mode)
        try:
            assignment = assign_replicas_to_brokers(brokers, partitions, replication_factor, rng=rng)
        except AssignmentError as e:
            raise InvalidReplicaAssignmentError(str(e)) from e
    assignment = {int(p): list(r) for p, r in assignment.items()}
    _validate_assignment(topic, assignment)
    if zk.exists(paths.delete_topic(topic)) is not None:
        raise TopicExistsError(f"Topic '{topic}' is marked for deletion.")
    if zk.exists(paths.topic(topic)) is not None:
        raise TopicExistsError(f"Topic '{topic}' already exists.")
    if "." in topic or "_" in topic:
        unified = unify_collision_chars(topic)
        clash = [t for t in list_topics(zk) if unify_collision_chars(t) == unified and t != topic]
        if clash:
            raise InvalidTopicError(f"Topic '{topic}' collides with existing topics: {', '.join(clash)}")
    result = TopicAssignment(topic, {p: ReplicaAssignment(tuple(r)) for p, r in sorted(assignment.items())},
                             random_uuid_base64() if uses_topic_id else None)
    if validate_only:
        return result
    # Config first, not atomic with the assignment (as Kafka): written even when empty.
    set_entity_config(zk, "topics", topic, dict(config or {}), notify=False)
    data = codec.encode_topic(result)
    try:  # createRecursive as Kafka's createTopicAssignment: a fresh cluster has no /brokers/topics yet
        zk.create_recursive(paths.topic(topic), data, throw_if_exists=True)
    except NodeExistsError:
        got = zk.get_data(paths.topic(topic))
        if got is None or got[0] != data:  # not our own write re-sent after a connection loss
            raise TopicExistsError(f"Topic '{topic}' already exists.")
    stat = zk.exists(paths.topic(topic))
    return TopicAssignment(topic, result.partitions, result.topic_id, result.version, stat.version if stat else -1)


def add_partitions(zk: ZkClient, topic: str, total_partitions: int,
                   assignment: dict[int, Sequence[int]] | None = None,
                   rack_aware_mode: str = RACK_AWARE_ENFORCED) -> TopicAssignment:
    """AdminZkClient.addPartitions: extend the topic znode; the controller's data watch does the rest."""
    while True:
        current = get_topic(zk, topic)
        if current is None:
            raise UnknownTopicError(f"The topic {topic} does not exist")
        existing = {p: list(ra.replicas) for p, ra in current.partitions.items()}
        if assignment is None:
            try:
                new = add_partitions_assignment(broker_metadatas(zk, rack_aware_mode), existing, total_partitions)
            except AssignmentError as e:
                raise InvalidPartitionsError(str(e)) from e
        else:
            new = {int(p): list(r) for p, r in assignment.items()}
            if total_partitions <= len(existing):
                raise InvalidPartitionsError(f"Topic currently has {len(existing)} partitions, "
                                             f"{total_partitions} would not be an increase.")
            if sorted(new) != list(range(len(existing), total_partitions)):
                raise InvalidReplicaAssignmentError("assignment must cover exactly the new partitions")
            rf = len(existing[0])
            if any(len(r) != rf for r in new.values()):
                raise InvalidReplicaAssignmentError(
                    f"Inconsistent replication factor between partitions, partition 0 has {rf}")
        partitions = dict(current.partitions)
        partitions.update({p: ReplicaAssignment(tuple(r)) for p, r in new.items()})
        updated = TopicAssignment(topic, partitions, current.topic_id, 3)
        try:
            stat = zk.set_data(paths.topic(topic), codec.encode_topic(updated), current.zk_version)
            return TopicAssignment(topic, partitions, current.topic_id, 3, stat.version)
        except BadVersionError:
            again = get_topic(zk, topic)
            if again is not None and again.partitions == partitions:
                return again  # our write landed before a connection loss
            continue  # someone else changed it: recompute


def delete_topic(zk: ZkClient, topic: str) -> None:
    """Mark for deletion: the controller deletes the topic's znodes (spec §3.9)."""
    if zk.exists(paths.topic(topic)) is None:
        raise UnknownTopicError(f"Topic {topic} does not exist")
    try:
        zk.create(paths.delete_topic(topic), None)
    except NodeExistsError:
        raise TopicAlreadyMarkedForDeletionError(f"Topic {topic} is already marked for deletion")
    except NoNodeError:  # /admin/delete_topics missing: create it, as createRecursive would
        zk.make_sure_persistent_path_exists(paths.DELETE_TOPICS)
        delete_topic(zk, topic)


def get_partition_states(zk: ZkClient, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, PartitionState | None]:
    """Pipelined getData of every state znode (getTopicPartitionStatesRaw); missing -> None."""
    responses = zk.get_data_many([paths.partition_state(tp.topic, tp.partition) for tp in partitions])
    out: dict[TopicPartition, PartitionState | None] = {}
    for tp, r in zip(partitions, responses):
        out[tp] = codec.decode_partition_state(r.data, r.stat.version) if r.code == OK else None
    return out


@dataclass
class PartitionDescription:
    partition: int
    replicas: tuple[int, ...]
    state: PartitionState | None
    adding_replicas: tuple[int, ...] = ()
    removing_replicas: tuple[int, ...] = ()

    @property
    def leader(self) -> int:
        return self.state.leader if self.state else -1

    @property
    def isr(self) -> tuple[int, ...]:
        return self.state.isr if self.state else ()


@dataclass
class TopicDescription:
    name: str
    topic_id: str | None
    partitions: list[PartitionDescription]
    config: dict[str, str] = field(default_factory=dict)
    marked_for_deletion: bool = False


def describe_topics(zk: ZkClient, topics: Sequence[str] | None = None) -> list[TopicDescription]:
    names = list(topics) if topics is not None else list_topics(zk)
    marked = set(topics_marked_for_deletion(zk))
    out = []
    assignments = [(n, get_topic(zk, n)) for n in names]
    tps = [TopicPartition(n, p) for n, a in assignments if a for p in sorted(a.partitions)]
    states = get_partition_states(zk, tps)
    for name, a in assignments:
        if a is None:
            raise UnknownTopicError(f"Topic {name} does not exist")
        parts = [PartitionDescription(p, ra.replicas, states[TopicPartition(name, p)], ra.adding_replicas,
                                      ra.removing_replicas) for p, ra in sorted(a.partitions.items())]
        out.append(TopicDescription(name, a.topic_id, parts, get_entity_config(zk, "topics", name), name in marked))
    return out


# controller side: fenced partition znodes --------------------------------------------------------

def create_partition_states(fenced: FencedWriter, states: dict[TopicPartition, PartitionState]) -> dict[TopicPartition, FencedResult]:
    """createTopicPartitionStatesRaw: fenced creates of partitions/, partitions/<p> (NodeExists
    ignored), then partitions/<p>/state. A NodeExists on the state of a retried create is resolved
    by the caller re-reading it."""
    topics = sorted({tp.topic for tp in states})
    fenced.write_many([CreateOp(paths.topic_partitions(t)) for t in topics])
    fenced.write_many([CreateOp(paths.topic_partition(tp.topic, tp.partition)) for tp in states])
    tps = list(states)
    results = fenced.write_many([CreateOp(paths.partition_state(tp.topic, tp.partition),
                                          codec.encode_partition_state(states[tp])) for tp in tps])
    return dict(zip(tps, results))


def update_partition_states(fenced: FencedWriter, states: dict[TopicPartition, PartitionState]) -> dict[TopicPartition, FencedResult]:
    """setTopicPartitionStatesRaw: fenced setData conditional on each partition epoch."""
    tps = list(states)
    results = fenced.write_many([SetDataOp(paths.partition_state(tp.topic, tp.partition),
                                           codec.encode_partition_state(states[tp]), states[tp].partition_epoch)
                                 for tp in tps])
    return dict(zip(tps, results))


def same_state(a: PartitionState | None, b: PartitionState | None) -> bool:
    """Equal content, ignoring the partition epoch (the checker for re-sent conditional writes)."""
    if a is None or b is None:
        return a is b
    return (a.leader, a.leader_epoch, tuple(a.isr), a.controller_epoch, a.leader_recovery_state) == \
        (b.leader, b.leader_epoch, tuple(b.isr), b.controller_epoch, b.leader_recovery_state)


def conditional_update_state(zk: ZkClient, tp: TopicPartition, state: PartitionState) -> PartitionState | None:
    """A leader's own unfenced write (IBP < 2.7, ZkAlterPartitionManager / conditionalUpdatePath):
    setData at the known partition epoch; on BADVERSION re-read and accept if the content is ours."""
    path = paths.partition_state(tp.topic, tp.partition)
    try:
        stat = zk.set_data(path, codec.encode_partition_state(state), state.partition_epoch)
        return PartitionState(state.leader, state.leader_epoch, state.isr, state.controller_epoch,
                              state.leader_recovery_state, stat.version)
    except BadVersionError:
        got = zk.get_data(path)
        if got is None:
            return None
        current = codec.decode_partition_state(got[0], got[1].version)
        return current if same_state(current, state) else None


def write_topic_assignment(fenced: FencedWriter, assignment: TopicAssignment, expected_version: int = -1) -> FencedResult:
    """Controller's fenced setData of /brokers/topics/<t> (topic id backfill, reassignment)."""
    return fenced.set_data(paths.topic(assignment.topic), codec.encode_topic(assignment), expected_version)


__all__ = [
    "broker_metadatas", "list_topics", "get_topic", "create_topic", "add_partitions", "delete_topic",
    "get_partition_states", "describe_topics", "create_partition_states", "update_partition_states",
    "conditional_update_state", "write_topic_assignment", "topics_marked_for_deletion", "same_state",
    "TopicDescription", "PartitionDescription", "NODE_EXISTS", "NO_NODE", "KeeperError",
]
