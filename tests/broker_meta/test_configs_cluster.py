"""Entity configs, change notifications and their purge, cluster id, broker id generation,
producer-id blocks, the feature znode, top-level paths (spec §3.1, §3.8, §3.10)."""
from __future__ import annotations

import threading

from broker_meta import cluster, codec, paths
from broker_meta.configs import (ConfigChangeListener, alter_entity_config, get_entity_config, list_entities,
                                 sanitize, set_entity_config)
from broker_meta.model import FeatureZNode, TopicPartition
from broker_meta.notifications import (create_isr_change_notification, create_log_dir_event_notification,
                                       NotificationListener)

from .conftest import wait_until


def test_top_level_paths_have_null_data(zk):
    cluster.create_top_level_paths(zk)
    cluster.create_top_level_paths(zk)  # NodeExists tolerated
    for p in paths.PERSISTENT_PATHS:
        data, _ = zk.get_data(p)
        assert data is None, p


def test_chroot_is_created_with_null_data(zk_clients):
    """createChrootIfNecessary uses makeSurePersistentPathExists: every level null, not empty."""
    zk_clients.chroot += "/nested/chroot"
    zk_clients.connect = zk_clients.target.connect_string + zk_clients.chroot
    zk_clients.new()
    raw = zk_clients.raw(chroot=False)
    parts = zk_clients.chroot.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        assert raw.get("/" + "/".join(parts[:i]))[0] is None, parts[:i]


def test_config_change_writes_entity_and_notification(zk):
    cluster.create_top_level_paths(zk)
    note = set_entity_config(zk, "topics", "t1", {"retention.ms": "86400000"})
    assert note.startswith("/config/changes/config_change_") and len(note.rsplit("_", 1)[1]) == 10
    assert zk.get_data(paths.topic_config("t1"))[0] == b'{"version":1,"config":{"retention.ms":"86400000"}}'
    assert zk.get_data(note)[0] == b'{"version":2,"entity_path":"topics/t1"}'
    merged = alter_entity_config(zk, "topics", "t1", add={"cleanup.policy": "compact"}, delete=["retention.ms"])
    assert merged == {"cleanup.policy": "compact"} == get_entity_config(zk, "topics", "t1")
    set_entity_config(zk, "users", "alice@example.com", {"producer_byte_rate": "1024"})
    assert sanitize("alice@example.com") == "alice%40example.com"
    assert zk.exists("/config/users/alice%40example.com") is not None
    assert list_entities(zk, "users") == ["alice@example.com"]
    assert sanitize("<default>") == "<default>" and sanitize("a b*") == "a%20b%2A"


def test_config_listener_processes_and_purges(zk_clients):
    writer, reader = zk_clients.new(), zk_clients.new()
    cluster.create_top_level_paths(writer)
    set_entity_config(writer, "topics", "early", {})  # before the listener starts: processed on start
    seen = []
    lock = threading.Lock()

    def on_change(t, n):
        with lock:
            seen.append((t, n))

    listener = ConfigChangeListener(reader, on_change).start()
    set_entity_config(writer, "topics", "t2", {"a": "b"})
    set_entity_config(writer, "clients", "c1", {"x": "y"})
    wait_until(lambda: seen == [("topics", "early"), ("topics", "t2"), ("clients", "c1")], what="changes")
    listener.close()
    # 16 minutes later every notification is obsolete and gets purged by ctime
    later = NotificationListener(reader, paths.CONFIG_CHANGES, paths.CONFIG_CHANGE_PREFIX, lambda b: None,
                                 clock_ms=lambda: __import__("time").time() * 1000 + 16 * 60 * 1000)
    later.process_notifications()
    assert len(later.purged) == 3 and reader.get_children(paths.CONFIG_CHANGES)[0] == []


def test_sequence_names_keep_increasing_after_deletes(zk):
    cluster.create_top_level_paths(zk)
    a = create_isr_change_notification(zk, [TopicPartition("t1", 0)])
    zk.delete(a)
    b = create_isr_change_notification(zk, [TopicPartition("t1", 1)])
    c = create_log_dir_event_notification(zk, 2)
    assert int(b.rsplit("_", 1)[1]) > int(a.rsplit("_", 1)[1])
    assert zk.get_data(c)[0] == b'{"version":1,"broker":2,"event":1}'
    assert codec.decode_isr_change(zk.get_data(b)[0]).partitions == (TopicPartition("t1", 1),)


def test_cluster_id_is_created_once(zk_clients):
    clients = [zk_clients.new() for _ in range(4)]
    ids = []
    threads = [threading.Thread(target=lambda c=c: ids.append(cluster.get_or_create_cluster_id(c))) for c in clients]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(set(ids)) == 1 and len(ids[0]) == 22
    raw = clients[0].get_data(paths.CLUSTER_ID)[0]
    assert raw == ('{"version":"1","id":"%s"}' % ids[0]).encode()


def test_broker_id_generation_uses_seqid_version(zk):
    cluster.create_top_level_paths(zk)
    assert [cluster.generate_broker_id(zk) for _ in range(3)] == [1001, 1002, 1003]


def test_producer_id_blocks_are_disjoint_under_contention(zk_clients):
    clients = [zk_clients.new() for _ in range(4)]
    cluster.create_top_level_paths(clients[0])
    assert cluster.get_producer_id_block(clients[0])[0] is None  # null data at first
    blocks = []
    lock = threading.Lock()

    def take(c, n):
        for _ in range(n):
            b = cluster.allocate_producer_id_block(c, broker_id=clients.index(c))
            with lock:
                blocks.append(b)

    threads = [threading.Thread(target=take, args=(c, 5)) for c in clients]
    [t.start() for t in threads]
    [t.join() for t in threads]
    starts = sorted(b.block_start for b in blocks)
    assert starts == [i * 1000 for i in range(20)]
    raw = clients[0].get_data(paths.LATEST_PRODUCER_ID_BLOCK)[0]
    assert b'"block_start":"19000","block_end":"19999"' in raw


def test_feature_znode(zk):
    assert cluster.get_feature(zk) is None
    assert cluster.set_feature(zk, FeatureZNode(1, {"metadata.version": 7})) == 0
    assert cluster.set_feature(zk, FeatureZNode(1, {"metadata.version": 8})) == 1
    f = cluster.get_feature(zk)
    assert f.features == {"metadata.version": 8} and f.zk_version == 1
    assert zk.get_data(paths.FEATURE)[0] == b'{"features":{"metadata.version":{"max_version_level":8}},"version":2,"status":1}'
