"""broker_meta: Kafka's ZooKeeper-mode cluster metadata (2.8 - 3.9) as a Python library, CLI and stream
controller. It talks to any ZooKeeper-compatible server through kazoo and imports nothing from coord.
See docs/broker_meta.md."""
from .aio import AsyncBrokerMeta, run_broker
from .broker_node import BrokerNode, BrokerNodeConfig
from .configs import ConfigChangeListener, alter_entity_config, get_entity_config, set_entity_config
from .controller import ControllerElection, FencedWriter, get_controller, get_controller_epoch
from .errors import ControllerMovedError, NodeExistsOwnerMismatch, TopicExistsError, UnknownTopicError
from .metadata_cache import ClusterView, MetadataCache
from .model import (BrokerRegistration, ControllerRegistration, EndPoint, LiveBroker, PartitionState,
                    TopicAssignment, TopicPartition)
from .registry import BrokerRegistry, BrokerWatch, live_brokers
from .stream_controller import ControllerConfig, StreamController
from .topics import add_partitions, create_topic, delete_topic, describe_topics, get_partition_states, list_topics
from .zkclient import ZkClient

__all__ = [
    "AsyncBrokerMeta", "run_broker", "BrokerNode", "BrokerNodeConfig", "ConfigChangeListener", "alter_entity_config",
    "get_entity_config", "set_entity_config", "ControllerElection", "FencedWriter", "get_controller",
    "get_controller_epoch", "ControllerMovedError", "NodeExistsOwnerMismatch", "TopicExistsError",
    "UnknownTopicError", "ClusterView", "MetadataCache", "BrokerRegistration", "ControllerRegistration", "EndPoint",
    "LiveBroker", "PartitionState", "TopicAssignment", "TopicPartition", "BrokerRegistry", "BrokerWatch",
    "live_brokers", "ControllerConfig", "StreamController", "add_partitions", "create_topic", "delete_topic",
    "describe_topics", "get_partition_states", "list_topics", "ZkClient",
]
