"""Item 4 (partition reassignment) and item 6 (broker_meta on a real Kafka cluster), slow: CI runs them
with `./scripts/test -m slow tests/kafka`; coord and ZooKeeper with the same harness."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from coord.kafka import tools
from tests.kafka.load import under_load
from tests.kafka.test_faults import non_controller

pytestmark = pytest.mark.slow
BROKER_META = Path(sys.executable).with_name("broker-meta")


def broker_meta(kafka, *args):
    proc = subprocess.run([str(BROKER_META), *args, "--zookeeper", kafka.zk_connect, "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"broker-meta {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout)


def topic_command_describe(kafka, topic: str) -> dict[int, dict]:
    """TopicCommand --describe, parsed: partition -> leader, replicas, isr."""
    out = kafka.tool(tools.TOPICS, "--bootstrap-server", kafka.bootstrap, "--describe", "--topic", topic).stdout
    parts = {}
    for m in re.finditer(r"Partition:\s*(\d+)\s+Leader:\s*(-?\d+)\s+Replicas:\s*([\d,]+)\s+Isr:\s*([\d,]*)", out):
        parts[int(m.group(1))] = {"leader": int(m.group(2)), "replicas": [int(x) for x in m.group(3).split(",")],
                                  "isr": sorted(int(x) for x in m.group(4).split(",") if x)}
    assert parts, out
    return parts


def produce_consume(kafka, topic: str, n: int = 20) -> None:
    p = Producer({"bootstrap.servers": kafka.bootstrap, "acks": "all", "enable.idempotence": True})
    errors = []
    for i in range(n):
        p.produce(topic, str(i).encode(), on_delivery=lambda err, msg: err and errors.append(err))
    assert p.flush(60) == 0 and not errors, errors
    c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got, deadline = [], time.monotonic() + 60
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(int(m.value()))
    c.close()
    assert sorted(got) == list(range(n))


def test_reassign_partitions_under_load(kafka):
    topic = f"ra-{uuid.uuid4().hex[:8]}"
    c = kafka.cluster
    kafka.tool(tools.TOPICS, "--bootstrap-server", kafka.bootstrap, "--create", "--topic", topic,
               "--replica-assignment", "1:2,2:3")
    target = {0: [3, 1], 1: [1, 2]}
    plan = kafka.workdir / f"reassign-{topic}.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": topic, "partition": p, "replicas": r}
                                                             for p, r in target.items()]}))
    with under_load(kafka.bootstrap, topic, 2) as load:
        kafka.tool(tools.REASSIGN, "--bootstrap-server", kafka.bootstrap, "--reassignment-json-file", plan,
                   "--execute")

        def done():
            out = kafka.tool(tools.REASSIGN, "--bootstrap-server", kafka.bootstrap, "--reassignment-json-file",
                             plan, "--verify", check=False).stdout
            return all(f"Reassignment of partition {topic}-{p} is completed" in out for p in target) and out
        c.wait_for(done, 120, interval=2, describe="reassignment completed (--verify)")
        assignment = json.loads(c.zk.get(f"/kafka/brokers/topics/{topic}")[0])["partitions"]
        assert {int(p): r for p, r in assignment.items()} == target
        for p, replicas in target.items():
            state = c.wait_for(lambda: sorted((s := c.partition_state(topic, p))["isr"]) == sorted(replicas) and s,
                               60, describe=f"ISR of {topic}-{p} = {replicas}")
            assert state["leader"] in replicas
        assert not c.zk.exists("/kafka/admin/reassign_partitions")
        load.still_flowing()
    print(f"{kafka.backend}: reassigned {topic} to {target}; {load.check()} acked messages consumed once in order")


def test_broker_meta_reads_and_drives_a_real_kafka_cluster(kafka):
    c = kafka.cluster
    # brokers list: the real brokers, epochs = czxids of their registrations.
    rows = broker_meta(kafka, "brokers", "list")
    assert {r["id"]: r["epoch"] for r in rows} == c.broker_epochs()
    for r in rows:
        assert f"PLAINTEXT://127.0.0.1:{c.brokers[r['id']].spec.port}" in r["endpoints"]

    # topics describe agrees with TopicCommand (replicas in order, leader, ISR as a set).
    topic = f"bm-{uuid.uuid4().hex[:8]}"
    kafka.tool(tools.TOPICS, "--bootstrap-server", kafka.bootstrap, "--create", "--topic", topic,
               "--partitions", "3", "--replication-factor", "3")
    c.wait_for(lambda: all(c.zk.exists(f"/kafka/brokers/topics/{topic}/partitions/{p}/state") for p in range(3)),
               60, describe="partition states")
    [desc] = broker_meta(kafka, "topics", "describe", "--topic", topic)
    ours = {p["partition"]: {"leader": p["leader"], "replicas": p["replicas"], "isr": sorted(p["isr"])}
            for p in desc["partitions"]}
    assert ours == topic_command_describe(kafka, topic)

    # topics create by broker_meta: the real controller elects leaders, the brokers serve it.
    created = f"bmc-{uuid.uuid4().hex[:8]}"
    broker_meta(kafka, "topics", "create", "--topic", created, "--partitions", "2", "--replication-factor", "3")
    c.wait_for(lambda: all(s["leader"] >= 0 for s in
                           (json.loads(c.zk.get(f"/kafka/brokers/topics/{created}/partitions/{p}/state")[0])
                            for p in range(2))) if c.zk.exists(f"/kafka/brokers/topics/{created}/partitions/1/state")
               else False, 60, describe=f"leaders for {created}")
    produce_consume(kafka, created)

    # configs set: the brokers learn it from the change notification.
    broker_meta(kafka, "configs", "set", "--entity-type", "topics", "--entity-name", created,
                "--add-config", "retention.ms=777000")
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, created)
    c.wait_for(lambda: admin.describe_configs([res])[res].result(30)["retention.ms"].value == "777000", 60,
               describe="retention.ms=777000 seen by the brokers")

    # partitions elect-preferred: carried out by Kafka's controller. A controlled shutdown and return of
    # a non-controller broker leaves its partitions led by others first.
    victim = non_controller(c)
    assignment = json.loads(c.zk.get(f"/kafka/brokers/topics/{topic}")[0])["partitions"]
    preferred = {int(p): r[0] for p, r in assignment.items()}
    c.brokers[victim].stop()
    c.brokers[victim].start()
    c.wait_ready(180, ids=[victim])
    c.wait_for(lambda: all(sorted(c.partition_state(topic, p)["isr"]) == [1, 2, 3] for p in range(3)), 90,
               describe=f"broker {victim} back in every ISR of {topic}")
    displaced = [p for p in range(3) if c.partition_state(topic, p)["leader"] != preferred[p]]
    assert displaced, f"broker {victim}'s controlled shutdown moved its leadership away"
    out = broker_meta(kafka, "partitions", "elect-preferred", "--topic", topic)
    assert len(out["requested"]) == 3
    c.wait_for(lambda: all(c.partition_state(topic, p)["leader"] == preferred[p] for p in range(3)), 60,
               describe="preferred leaders elected by Kafka's controller")
    c.wait_for(lambda: not c.zk.exists("/kafka/admin/preferred_replica_election"), 60,
               describe="the controller removed /admin/preferred_replica_election")
