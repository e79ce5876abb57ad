"""Scenario 1: topics, configs and ACLs through Kafka's own tools, on coord and on ZooKeeper.

What goes straight into ZooKeeper (a SCRAM user by ConfigCommand --zookeeper, ACLs by AclCommand's
AclAuthorizer) reaches every broker only through change notifications and child watches; so each
broker is asked separately.
"""
from __future__ import annotations

import json
import re
import uuid

from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, ConfigResource

from coord.kafka import tools
from coord.kafka.libs import versions


def test_brokers_run_with_the_zookeeper_38_client(kafka):
    embedded = versions()["zookeeper_client"]
    print(f"Kafka {versions()['kafka']} embeds ZooKeeper client {embedded}")
    assert embedded and embedded.startswith("3.8."), embedded
    for b in kafka.cluster.brokers.values():
        m = re.search(r"Client environment:zookeeper\.version=(\S+)", b.log_text())
        assert m and m.group(1).startswith(embedded), f"broker {b.broker_id}: {m and m.group(0)}"


def describe(kafka, topic: str) -> str:
    return kafka.tool(tools.TOPICS, "--bootstrap-server", kafka.bootstrap, "--describe", "--topic", topic).stdout


def test_topic_create_describe_alter_delete(kafka):
    topic = f"t-{uuid.uuid4().hex[:8]}"
    bs = kafka.bootstrap
    kafka.tool(tools.TOPICS, "--bootstrap-server", bs, "--create", "--topic", topic, "--partitions", "2",
               "--replication-factor", "3")
    out = describe(kafka, topic)
    assert re.search(r"PartitionCount:\s*2\s+ReplicationFactor:\s*3", out), out
    # The controller wrote the assignment into ZooKeeper, Kafka's own layout.
    zk = kafka.cluster.zk
    assignment = json.loads(zk.get(f"/kafka/brokers/topics/{topic}")[0])["partitions"]
    assert sorted(assignment) == ["0", "1"] and all(sorted(r) == [1, 2, 3] for r in assignment.values())
    # Every partition has a leader in its ISR, as each broker reports it.
    for line in (ln for ln in out.splitlines() if "Partition:" in ln):
        leader = int(re.search(r"Leader:\s*(\d+)", line).group(1))
        isr = [int(x) for x in re.search(r"Isr:\s*([\d,]+)", line).group(1).split(",")]
        assert leader in isr and sorted(isr) == [1, 2, 3], line

    kafka.tool(tools.TOPICS, "--bootstrap-server", bs, "--alter", "--topic", topic, "--partitions", "4")
    kafka.cluster.wait_for(lambda: "PartitionCount: 4" in describe(kafka, topic), 60,
                           describe="4 partitions after --alter")
    assert len(json.loads(zk.get(f"/kafka/brokers/topics/{topic}")[0])["partitions"]) == 4
    kafka.cluster.wait_for(lambda: zk.exists(f"/kafka/brokers/topics/{topic}/partitions/3/state"), 60,
                           describe="state of the new partition")

    kafka.tool(tools.TOPICS, "--bootstrap-server", bs, "--delete", "--topic", topic)
    kafka.cluster.wait_for(lambda: not zk.exists(f"/kafka/brokers/topics/{topic}")
                           and not zk.get_children("/kafka/admin/delete_topics"), 90,
                           describe="topic deleted from ZooKeeper")
    listed = kafka.tool(tools.TOPICS, "--bootstrap-server", bs, "--list").stdout.split()
    assert topic not in listed


def broker_config(kafka, broker_id: int, name: str):
    """A broker's config entry as that broker itself reports it."""
    admin = AdminClient({"bootstrap.servers": kafka.cluster.brokers[broker_id].bootstrap})
    res = ConfigResource(ConfigResource.Type.BROKER, str(broker_id))
    return admin.describe_configs([res])[res].result(30)[name]


def test_configs_through_the_brokers_reach_every_broker(kafka):
    topic = f"cfg-{uuid.uuid4().hex[:8]}"
    bs = kafka.bootstrap
    kafka.tool(tools.TOPICS, "--bootstrap-server", bs, "--create", "--topic", topic, "--partitions", "1",
               "--replication-factor", "3")
    kafka.tool(tools.CONFIGS, "--bootstrap-server", bs, "--alter", "--entity-type", "topics",
               "--entity-name", topic, "--add-config", "retention.ms=4242000")
    stored = json.loads(kafka.cluster.zk.get(f"/kafka/config/topics/{topic}")[0])
    assert stored["config"]["retention.ms"] == "4242000"
    admin = AdminClient({"bootstrap.servers": bs})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    assert admin.describe_configs([res])[res].result(30)["retention.ms"].value == "4242000"

    # A cluster-wide dynamic broker default: stored in ZooKeeper, announced in /config/changes.
    value = str(1_000_000 + uuid.uuid4().int % 1000)
    kafka.tool(tools.CONFIGS, "--bootstrap-server", bs, "--alter", "--entity-type", "brokers",
               "--entity-default", "--add-config", f"message.max.bytes={value}")
    for i in kafka.cluster.brokers:
        kafka.cluster.wait_for(lambda: broker_config(kafka, i, "message.max.bytes").value == value, 60,
                               describe=f"broker {i} sees message.max.bytes={value}")


def scram_client(kafka, broker_id: int, user: str, password: str) -> dict:
    return {"bootstrap.servers": f"127.0.0.1:{kafka.sasl_port(broker_id)}", "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": user, "sasl.password": password,
            "log_level": 0}


def topic_error(kafka, broker_id: int, user: str, password: str, topic: str):
    """The metadata error the broker gives this SCRAM user for the topic (None: authorized)."""
    admin = AdminClient(scram_client(kafka, broker_id, user, password))
    md = admin.list_topics(topic=topic, timeout=20)
    if md.orig_broker_id != broker_id:
        return f"answered by broker {md.orig_broker_id}"
    err = md.topics[topic].error
    return None if err is None else err.code()


def test_scram_user_and_acls_written_into_zookeeper_take_effect_on_every_broker(kafka):
    user, password = f"alice{uuid.uuid4().hex[:6]}", "alice-secret"
    topic = f"acl-{uuid.uuid4().hex[:8]}"
    kafka.tool(tools.TOPICS, "--bootstrap-server", kafka.bootstrap, "--create", "--topic", topic,
               "--partitions", "1", "--replication-factor", "3")
    # The user straight into ZooKeeper (deprecated but supported in 3.9 for SCRAM credentials).
    kafka.tool(tools.CONFIGS, "--zookeeper", kafka.zk_connect, "--alter", "--entity-type", "users",
               "--entity-name", user, "--add-config", f"SCRAM-SHA-256=[iterations=4096,password={password}]")
    assert kafka.cluster.zk.exists(f"/kafka/config/users/{user}")
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    creds = admin.describe_user_scram_credentials([user])[user].result(30)
    assert [(c.mechanism.name, c.iterations) for c in creds.scram_credential_infos] == [("SCRAM_SHA_256", 4096)]

    # Every broker authenticates the user (its credential cache was updated) and denies the topic.
    denied = KafkaError.TOPIC_AUTHORIZATION_FAILED
    for i in kafka.cluster.brokers:
        kafka.cluster.wait_for(lambda: topic_error(kafka, i, user, password, topic) == denied, 60,
                               describe=f"broker {i} authenticates {user} and denies {topic}")

    acl = ["--authorizer-properties", f"zookeeper.connect={kafka.zk_connect}", "--topic", topic,
           "--allow-principal", f"User:{user}", "--operation", "Describe", "--operation", "Write"]
    kafka.tool(tools.ACLS, "--add", *acl)
    assert kafka.cluster.zk.exists(f"/kafka/kafka-acl/Topic/{topic}")
    for i in kafka.cluster.brokers:
        kafka.cluster.wait_for(lambda: topic_error(kafka, i, user, password, topic) is None, 60,
                               describe=f"broker {i} applies the new ACL")
    from confluent_kafka import Producer
    p = Producer({**scram_client(kafka, 1, user, password), "acks": "all"})
    acked = []
    p.produce(topic, b"allowed", on_delivery=lambda err, msg: acked.append(err))
    p.flush(30)
    assert acked == [None]

    kafka.tool(tools.ACLS, "--remove", "--force", *acl)
    for i in kafka.cluster.brokers:
        kafka.cluster.wait_for(lambda: topic_error(kafka, i, user, password, topic) == denied, 60,
                               describe=f"broker {i} applies the ACL removal")
