"""Cluster-wide znodes a broker touches at startup: top-level paths, cluster id, broker id
generation, the feature znode, producer-id blocks, the migration znode (spec §3.1, §3.10)."""
from __future__ import annotations

import base64
import uuid

from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from . import codec, paths
from .model import ClusterId, FeatureZNode, MigrationState, PRODUCER_ID_BLOCK_SIZE, ProducerIdBlock
from .zkclient import ZkClient

RESERVED_BROKER_MAX_ID = 1000


def random_uuid_base64() -> str:
    """Kafka's Uuid.randomUuid().toString(): URL-safe base64 of 16 bytes without padding, never
    starting with '-' (Kafka redraws those, they look like command-line flags)."""
    while True:
        s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not s.startswith("-") and s != "AAAAAAAAAAAAAAAAAAAAAA":
            return s


def create_top_level_paths(zk: ZkClient) -> None:
    """KafkaZkClient.createTopLevelPaths: every persistent path, NodeExists tolerated, null data."""
    for p in paths.PERSISTENT_PATHS:
        zk.make_sure_persistent_path_exists(p)


def get_cluster_id(zk: ZkClient) -> str | None:
    got = zk.get_data(paths.CLUSTER_ID)
    return None if got is None else codec.decode_cluster_id(got[0]).id


def get_or_create_cluster_id(zk: ZkClient, proposed: str | None = None) -> str:
    """KafkaServer.getOrGenerateClusterId: read; on NoNode create (recursive); on NodeExists re-read."""
    existing = get_cluster_id(zk)
    if existing is not None:
        return existing
    cid = proposed or random_uuid_base64()
    try:
        zk.create_recursive(paths.CLUSTER_ID, codec.encode_cluster_id(ClusterId(cid)), throw_if_exists=True)
        return cid
    except NodeExistsError:
        got = get_cluster_id(zk)
        if got is None:
            raise
        return got


def generate_broker_id(zk: ZkClient, reserved_max_id: int = RESERVED_BROKER_MAX_ID) -> int:
    """broker.id generation: setData(/brokers/seqid, empty, -1) -> version + reserved.broker.max.id."""
    try:
        stat = zk.set_data(paths.BROKER_SEQID, b"", -1)
    except NoNodeError:
        zk.make_sure_persistent_path_exists(paths.BROKER_SEQID)
        stat = zk.set_data(paths.BROKER_SEQID, b"", -1)
    return stat.version + reserved_max_id


def get_feature(zk: ZkClient) -> FeatureZNode | None:
    got = zk.get_data(paths.FEATURE)
    if got is None or got[0] is None:
        return None
    return codec.decode_feature(got[0], got[1].version)


def set_feature(zk: ZkClient, feature: FeatureZNode) -> int:
    """Controller's write: create, or setData(-1) if present (not fenced); returns the feature epoch."""
    data = codec.encode_feature(feature)
    try:
        zk.create(paths.FEATURE, data)
        return 0
    except NodeExistsError:
        return zk.set_data(paths.FEATURE, data, -1).version


def get_producer_id_block(zk: ZkClient) -> tuple[ProducerIdBlock | None, int]:
    got = zk.get_data(paths.LATEST_PRODUCER_ID_BLOCK)
    if got is None:
        return None, -1
    return codec.decode_producer_id_block(got[0]), got[1].version


def allocate_producer_id_block(zk: ZkClient, broker_id: int, block_size: int = PRODUCER_ID_BLOCK_SIZE) -> ProducerIdBlock:
    """ProducerIdManager (ZK): read block + version V, setData(next block, V); BADVERSION -> loop.
    The conditional write is the checker: a retried write that already landed reads as BADVERSION
    and we simply take the next block."""
    while True:
        current, version = get_producer_id_block(zk)
        if version < 0:
            zk.make_sure_persistent_path_exists(paths.LATEST_PRODUCER_ID_BLOCK)
            continue
        start = 0 if current is None else current.block_end + 1
        if start > (1 << 63) - 1 - block_size:
            raise OverflowError("producer ids exhausted")
        block = ProducerIdBlock(broker_id, start, start + block_size - 1)
        try:
            zk.set_data(paths.LATEST_PRODUCER_ID_BLOCK, codec.encode_producer_id_block(block), version)
            return block
        except BadVersionError:
            continue


def get_migration(zk: ZkClient) -> tuple[MigrationState | None, int]:
    got = zk.get_data(paths.MIGRATION)
    if got is None or got[0] is None:
        return None, -1
    return codec.decode_migration(got[0]), got[1].version
