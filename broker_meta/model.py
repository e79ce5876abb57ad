"""Typed values for every znode kind in Kafka's ZooKeeper layout (spec §2, ZkData.scala).

The dataclasses hold decoded content only; znode metadata that Kafka uses as data (the dataVersion
as partition epoch, czxid as broker epoch) travels in explicit fields named as Kafka names them.
Codec details (JSON versions, key order, string-typed numbers) live in codec.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

NO_LEADER = -1
LEADER_RECOVERED = 0
LEADER_RECOVERING = 1
FEATURE_DISABLED = 0
FEATURE_ENABLED = 1
LOG_DIR_FAILURE_EVENT = 1
PRODUCER_ID_BLOCK_SIZE = 1000
INITIAL_CONTROLLER_EPOCH = 0
INITIAL_CONTROLLER_EPOCH_ZK_VERSION = 0

_LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]+$")
MAX_TOPIC_NAME_LENGTH = 249


def validate_topic_name(name: str) -> None:
    """Kafka's Topic.validate: legal characters, length, not `.` / `..`."""
    if not name:
        raise ValueError("topic name is illegal, it can't be empty")
    if name in (".", ".."):
        raise ValueError("topic name cannot be \".\" or \"..\"")
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise ValueError(f"topic name is longer than {MAX_TOPIC_NAME_LENGTH} characters")
    if not _LEGAL_TOPIC.match(name):
        raise ValueError(f"topic name {name!r} contains characters other than ASCII alphanumerics, '.', '_' and '-'")


def unify_collision_chars(name: str) -> str:
    """`.` and `_` collide in metric names, so Kafka refuses topics differing only there."""
    return name.replace(".", "_")


@dataclass(frozen=True, order=True)
class TopicPartition:
    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"


@dataclass(frozen=True)
class ControllerRegistration:
    """/controller: which broker (or KRaft controller) leads; v1 lacks kraftControllerEpoch."""
    broker_id: int
    timestamp: int
    kraft_controller_epoch: int | None = -1
    version: int = 2
    zk_version: int = -1  # dataVersion of /controller (setOrCreateEntityConfigs guard)

    @property
    def is_kraft(self) -> bool:
        return self.kraft_controller_epoch is not None and self.kraft_controller_epoch > 0


@dataclass(frozen=True)
class EndPoint:
    listener_name: str
    host: str | None
    port: int
    security_protocol: str

    @property
    def connection_string(self) -> str:
        host = self.host or ""
        if ":" in host:  # Utils.formatAddress brackets IPv6 literals
            host = f"[{host}]"
        return f"{self.listener_name}://{host}:{self.port}"


@dataclass(frozen=True)
class SupportedVersionRange:
    min_version: int
    max_version: int


@dataclass(frozen=True)
class BrokerRegistration:
    """/brokers/ids/<id> (BrokerInfo). `broker_epoch` is the node's czxid, not part of the JSON."""
    broker_id: int
    endpoints: tuple[EndPoint, ...]
    timestamp: int
    rack: str | None = None
    features: dict[str, SupportedVersionRange] = field(default_factory=dict)
    jmx_port: int = -1
    version: int = 5
    broker_epoch: int = -1

    def plaintext_endpoint(self) -> EndPoint | None:
        for ep in self.endpoints:
            if ep.security_protocol == "PLAINTEXT":
                return ep
        return None

    def listener_security_protocol_map(self) -> dict[str, str]:
        return {ep.listener_name: ep.security_protocol for ep in self.endpoints}


@dataclass(frozen=True)
class ReplicaAssignment:
    replicas: tuple[int, ...]
    adding_replicas: tuple[int, ...] = ()
    removing_replicas: tuple[int, ...] = ()

    @property
    def target_replicas(self) -> tuple[int, ...]:
        return tuple(r for r in self.replicas if r not in self.removing_replicas)


@dataclass(frozen=True)
class TopicAssignment:
    """/brokers/topics/<t>: replica assignment (v1-v3) and, from IBP 2.8, the topic id."""
    topic: str
    partitions: dict[int, ReplicaAssignment]
    topic_id: str | None = None
    version: int = 3
    zk_version: int = -1

    def replicas(self, partition: int) -> tuple[int, ...]:
        return self.partitions[partition].replicas


@dataclass(frozen=True)
class PartitionState:
    """.../partitions/<p>/state (LeaderIsrAndControllerEpoch); partition_epoch = node dataVersion."""
    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    controller_epoch: int
    leader_recovery_state: int = LEADER_RECOVERED
    partition_epoch: int = -1
    version: int = 1

    def new_leader_and_isr(self, leader: int, isr: tuple[int, ...] | list[int]) -> "PartitionState":
        """A new leader or ISR chosen by the controller bumps the leader epoch (LeaderAndIsr.newLeaderAndIsr)."""
        return PartitionState(leader, self.leader_epoch + 1, tuple(isr), self.controller_epoch,
                              self.leader_recovery_state, self.partition_epoch)


@dataclass(frozen=True)
class EntityConfig:
    """/config/<type>/<name>: `{"version":1,"config":{...}}`; key order is the Properties' insertion order."""
    config: dict[str, str]
    version: int = 1


@dataclass(frozen=True)
class ConfigChangeNotification:
    """/config/changes/config_change_<seq>; v1 (entity_type + entity_name) is read as its v2 path."""
    entity_path: str
    version: int = 2

    @property
    def entity_type(self) -> str:
        return self.entity_path.split("/", 1)[0]

    @property
    def entity_name(self) -> str:
        return self.entity_path.split("/", 1)[1]


@dataclass(frozen=True)
class IsrChangeNotification:
    partitions: tuple[TopicPartition, ...]
    version: int = 1


@dataclass(frozen=True)
class LogDirEventNotification:
    broker: int
    event: int = LOG_DIR_FAILURE_EVENT
    version: int = 1


@dataclass(frozen=True)
class PreferredReplicaElection:
    partitions: tuple[TopicPartition, ...]
    version: int = 1


@dataclass(frozen=True)
class PartitionReassignment:
    """/admin/reassign_partitions (legacy, still honoured by the controller)."""
    partitions: tuple[tuple[TopicPartition, tuple[int, ...]], ...]
    version: int = 1


@dataclass(frozen=True)
class ClusterId:
    id: str
    version: str = "1"


@dataclass(frozen=True)
class FeatureZNode:
    """/feature: finalized max version levels; v1 also carried min levels (kept for round trips)."""
    status: int
    features: dict[str, int]
    version: int = 2
    min_version_levels: dict[str, int] = field(default_factory=dict)
    zk_version: int = -1  # Kafka's "feature epoch"


@dataclass(frozen=True)
class ProducerIdBlock:
    """/latest_producer_id_block: the last block handed out; numbers are strings in the JSON."""
    broker: int
    block_start: int
    block_end: int
    version: int = 1

    @property
    def block_size(self) -> int:
        return self.block_end - self.block_start + 1


@dataclass(frozen=True)
class MigrationState:
    """/migration (ZK -> KRaft migration, 3.4+)."""
    kraft_controller_id: int
    kraft_controller_epoch: int
    kraft_metadata_offset: int
    kraft_metadata_epoch: int
    version: int = 0


@dataclass(frozen=True)
class AclEntry:
    principal: str
    permission_type: str
    operation: str
    host: str


@dataclass(frozen=True)
class AclNode:
    """/kafka-acl/<Type>/<name> and /kafka-acl-extended/<pattern>/<Type>/<name>."""
    acls: tuple[AclEntry, ...]
    version: int = 1


@dataclass(frozen=True)
class ExtendedAclChange:
    """/kafka-acl-extended-changes/acl_changes_<seq> (JSON); literal changes are raw `Type:name`."""
    resource_type: str
    name: str
    pattern_type: str
    version: int = 1


@dataclass(frozen=True)
class LiteralAclChange:
    resource_type: str
    name: str


@dataclass(frozen=True)
class DelegationTokenInfo:
    """/delegation_token/tokens/<id> (v3); owner and requester are URL-sanitised principals."""
    owner: str
    token_requester: str
    renewers: tuple[str, ...]
    issue_timestamp: int
    max_timestamp: int
    expiry_timestamp: int
    token_id: str
    version: int = 3


@dataclass(frozen=True)
class LiveBroker:
    """A registered broker with its epoch (czxid of its ephemeral node)."""
    broker_id: int
    broker_epoch: int
    registration: BrokerRegistration | None
    ephemeral_owner: int = 0
