"""Kafka's ZooKeeper layout (ZkData.scala): every path broker_meta reads or writes, in one place.

Paths are relative to the connect string's chroot; the client adds the chroot.
"""
from __future__ import annotations

CONTROLLER = "/controller"
CONTROLLER_EPOCH = "/controller_epoch"
BROKERS = "/brokers"
BROKER_IDS = "/brokers/ids"
TOPICS = "/brokers/topics"
BROKER_SEQID = "/brokers/seqid"
CONFIG = "/config"
CONFIG_CHANGES = "/config/changes"
CONFIG_CHANGE_PREFIX = "config_change_"
ADMIN = "/admin"
DELETE_TOPICS = "/admin/delete_topics"
REASSIGN_PARTITIONS = "/admin/reassign_partitions"
PREFERRED_REPLICA_ELECTION = "/admin/preferred_replica_election"
ISR_CHANGE_NOTIFICATION = "/isr_change_notification"
ISR_CHANGE_PREFIX = "isr_change_"
LOG_DIR_EVENT_NOTIFICATION = "/log_dir_event_notification"
LOG_DIR_EVENT_PREFIX = "log_dir_event_"
CLUSTER = "/cluster"
CLUSTER_ID = "/cluster/id"
FEATURE = "/feature"
LATEST_PRODUCER_ID_BLOCK = "/latest_producer_id_block"
MIGRATION = "/migration"
CONSUMERS = "/consumers"
KAFKA_ACL = "/kafka-acl"
KAFKA_ACL_EXTENDED = "/kafka-acl-extended"
KAFKA_ACL_CHANGES = "/kafka-acl-changes"
KAFKA_ACL_EXTENDED_CHANGES = "/kafka-acl-extended-changes"
ACL_CHANGES_PREFIX = "acl_changes_"
DELEGATION_TOKEN = "/delegation_token"
DELEGATION_TOKENS = "/delegation_token/tokens"
DELEGATION_TOKEN_CHANGES = "/delegation_token/token_changes"
TOKEN_CHANGE_PREFIX = "token_change_"

CONFIG_TYPES = ("topics", "clients", "users", "brokers", "ips")
DEFAULT_ENTITY = "<default>"

# ZkData.PersistentZkPaths: created (NodeExists tolerated) on every broker start.
PERSISTENT_PATHS = (
    CONSUMERS,
    BROKER_IDS,
    TOPICS,
    CONFIG_CHANGES,
    DELETE_TOPICS,
    BROKER_SEQID,
    ISR_CHANGE_NOTIFICATION,
    LATEST_PRODUCER_ID_BLOCK,
    LOG_DIR_EVENT_NOTIFICATION,
) + tuple(f"{CONFIG}/{t}" for t in CONFIG_TYPES)


def broker(broker_id: int) -> str:
    return f"{BROKER_IDS}/{broker_id}"


def topic(name: str) -> str:
    return f"{TOPICS}/{name}"


def topic_partitions(name: str) -> str:
    return f"{TOPICS}/{name}/partitions"


def topic_partition(name: str, partition: int) -> str:
    return f"{TOPICS}/{name}/partitions/{partition}"


def partition_state(name: str, partition: int) -> str:
    return f"{TOPICS}/{name}/partitions/{partition}/state"


def delete_topic(name: str) -> str:
    return f"{DELETE_TOPICS}/{name}"


def config_entity_type(entity_type: str) -> str:
    return f"{CONFIG}/{entity_type}"


def config_entity(entity_type: str, entity_name: str) -> str:
    return f"{CONFIG}/{entity_type}/{entity_name}"


def topic_config(name: str) -> str:
    return config_entity("topics", name)


def acl(resource_type: str, name: str, pattern_type: str = "LITERAL") -> str:
    """Literal patterns live under /kafka-acl; others under /kafka-acl-extended/<pattern>."""
    if pattern_type.upper() == "LITERAL":
        return f"{KAFKA_ACL}/{resource_type}/{name}"
    return f"{KAFKA_ACL_EXTENDED}/{pattern_type.lower()}/{resource_type}/{name}"


def delegation_token(token_id: str) -> str:
    return f"{DELEGATION_TOKENS}/{token_id}"


def sequence_number(child: str, prefix: str) -> int:
    """Numeric suffix of a sequential child (`config_change_0000000042` -> 42)."""
    return int(child[child.rindex(prefix) + len(prefix):])


def consumer_offset(group: str, topic_name: str, partition: int) -> str:
    return f"{CONSUMERS}/{group}/offsets/{topic_name}/{partition}"
