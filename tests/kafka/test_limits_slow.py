"""Issue 13, "bad input and limits": a real broker against an ensemble that is too big to list in one
megabyte, pointed at the wrong chroot, refused by maxClientCnxns, or started before a quorum exists.
Each ends with the broker's ordinary behaviour (a retry until it gets through, or a clean exit with
Kafka's own message, never a stuck broker) and, where the server sees something wrong, a clear line in
its log; coord and ZooKeeper 3.8 with the same harness, each on a fresh 3-server ensemble.
"""
from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from kazoo.client import KazooClient

from coord.kafka.cluster import CHROOT, KafkaCluster
from tests.kafka.conftest import BACKENDS, TICK_MS
from tests.support.ensemble import Ensemble

pytestmark = pytest.mark.slow

TOPICS = 20_000
ONE_MIB = 1 << 20
# What the server logs when it turns a client away (coord's line; ZooKeeper 3.8's own words).
TOO_MANY = {"coord": "too many connections from 127.0.0.1 (max {n})",
            "zookeeper": "Too many connections from /127.0.0.1 - max is {n}"}
NOT_SERVING = {"coord": "not serving: no quorum", "zookeeper": "ZooKeeperServer not running"}


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def ensemble(backend: str, work, **kw) -> Ensemble:
    return Ensemble(work / "ensemble", 3, kind=backend, tick_ms=TICK_MS, force_sync=False, **kw)


def one_broker(work, hosts: str, chroot: str = CHROOT, **extra) -> KafkaCluster:
    return KafkaCluster(work / "kafka", hosts, 1, chroot=chroot, session_timeout_ms=10000,
                        extra={k.replace("_", "."): str(v) for k, v in extra.items()})


def connection_attempts(broker) -> int:
    """How often the broker's ZooKeeper client opened a socket (its retries, in its own words)."""
    return broker.log_text(this_run=True).count("Opening socket connection to server")


def wait_exit(broker, wait: float) -> int:
    try:
        return broker.proc.wait(wait)
    except Exception:
        raise AssertionError(f"broker still running after {wait}s; its log ends:\n"
                             + broker.log_text(this_run=True)[-3000:]) from None


def topic_name(i: int) -> str:
    return f"many-topics-{i:05d}-{'x' * 40}"   # 58 bytes: 20,000 names are a 1.2 MiB getChildren reply


def write_topics(zk: KazooClient, n: int, offline_broker: int = 99, batch: int = 100) -> None:
    """n one-partition topics in Kafka's own znode format (TopicZNode v3 with a topic id, a partition
    state), their only replica a broker that never runs: the controller loads them all at start-up
    and puts them in the brokers' metadata as offline, and no broker opens 20,000 logs."""
    zk.ensure_path(f"{CHROOT}/brokers/topics")
    state = json.dumps({"controller_epoch": 1, "leader": -1, "version": 1, "leader_epoch": 0,
                        "isr": [offline_broker]}).encode()
    for start in range(0, n, batch):
        tx = zk.transaction()
        for i in range(start, min(n, start + batch)):
            path = f"{CHROOT}/brokers/topics/{topic_name(i)}"
            topic_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            tx.create(path, json.dumps({"version": 3, "topic_id": topic_id,
                                        "partitions": {"0": [offline_broker]},
                                        "adding_replicas": {}, "removing_replicas": {}}).encode())
            tx.create(f"{path}/partitions")
            tx.create(f"{path}/partitions/0")
            tx.create(f"{path}/partitions/0/state", state)
        results = tx.commit()
        bad = [r for r in results if isinstance(r, Exception)]
        assert not bad, bad[:3]


def test_twenty_thousand_topics_a_getchildren_over_one_mib_reaches_the_broker(backend, tmp_path):
    with ensemble(backend, tmp_path) as ens:
        zk = KazooClient(hosts=ens.connect_string(), timeout=30.0)
        zk.start(timeout=30)
        try:
            t0 = time.monotonic()
            write_topics(zk, TOPICS)
            written = time.monotonic() - t0
            names = zk.get_children(f"{CHROOT}/brokers/topics")
        finally:
            zk.stop()
            zk.close()
        reply = 4 + sum(4 + len(n.encode()) for n in names)   # the vector in GetChildrenResponse
        assert len(names) == TOPICS and reply > ONE_MIB, (len(names), reply)
        cluster = one_broker(tmp_path, ens.connect_string())
        try:
            t0 = time.monotonic()
            cluster.start(wait=300)
            # The controller's getChildren of /brokers/topics (over 1 MiB) went through: it loaded
            # every topic and told the brokers, so the AdminClient's metadata lists all of them.
            admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})

            def listing():
                try:
                    got = {t for t in admin.list_topics(timeout=60).topics if t.startswith("many-topics-")}
                except KafkaException as e:   # e.g. _PARTIAL while the controller is still loading
                    return None, str(e)
                return (got if len(got) == TOPICS else None), len(got)
            listed = cluster.wait_for(lambda: listing()[0], 240, interval=2.0,
                                      describe=f"{TOPICS} topics in the metadata")
            loaded = time.monotonic() - t0
            assert listed == set(names)
            # Nothing on the server turned the reply away (coord: no "closing ... jute.maxbuffer").
            assert not [ln for ln in "".join(m.log_text() for m in ens.members.values()).splitlines()
                        if "maxbuffer" in ln.lower() or "Packet len" in ln], "a server refused the large reply"
        finally:
            cluster.stop(kill=True)
    print(f"{backend}: {TOPICS} topics written in {written:.1f}s; getChildren reply {reply / ONE_MIB:.2f} MiB; "
          f"broker up and all topics in its metadata {loaded:.1f}s after its start")


def test_broker_with_a_wrong_chroot_exits_with_kafkas_message_and_rejoins(backend, tmp_path):
    with ensemble(backend, tmp_path) as ens:
        cluster = one_broker(tmp_path, ens.connect_string())
        try:
            cluster.start(wait=240)
            cluster_id = cluster.zk.get(f"{CHROOT}/cluster/id")[0]
            broker = cluster.brokers[1]
            broker.stop()
            # The same broker (its meta.properties holds the cluster id) pointed at another chroot:
            # Kafka creates that chroot and a new cluster id there, then refuses to join it.
            broker.spec.zk_connect = f"{ens.connect_string()}/kafka-wrong"
            broker.start()
            code = wait_exit(broker, 120)
            log = broker.log_text(this_run=True)
            wrong_id = json.loads(cluster.zk.get("/kafka-wrong/cluster/id")[0])["id"]
            old_id = json.loads(cluster_id)["id"]
            assert code != 0
            assert f"Invalid cluster.id in: {broker.spec.dir.resolve() / 'data' / 'meta.properties'}. " \
                   f"Expected {wrong_id}, but read {old_id}" in log, log[-3000:]
            assert cluster.zk.get(f"{CHROOT}/cluster/id")[0] == cluster_id
            assert cluster.registered() == []
            broker.spec.zk_connect = cluster.zk_connect
            broker.start()
            cluster.wait_ready(240)
            assert cluster.registered() == [1]
        finally:
            cluster.stop(kill=True)
    print(f"{backend}: wrong chroot: broker exited {code} (Invalid cluster.id: expected {wrong_id}, read {old_id}); "
          f"back on {CHROOT}")


def test_maxclientcnxns_refusal_broker_retries_until_a_slot_frees(backend, tmp_path):
    limit = 3
    with ensemble(backend, tmp_path, member_cfg={1: {"maxClientCnxns": str(limit)}}) as ens:
        s1 = ens.members[1]
        fillers = []
        cluster = one_broker(tmp_path, s1.connect_string)   # the broker may only use server 1
        try:
            for _ in range(limit):
                k = KazooClient(hosts=s1.connect_string, timeout=10.0)
                k.start(timeout=30)
                fillers.append(k)
            broker = cluster.brokers[1].start()
            cluster.wait_for(lambda: connection_attempts(broker) >= 3, 60, describe="the broker retrying")
            assert broker.alive and "Connected." not in broker.log_text(this_run=True)
            for k in fillers:
                k.stop()
                k.close()
            fillers = []
            cluster.wait_ready(240)
            attempts = connection_attempts(broker)
            refused = s1.log_text().count(TOO_MANY[backend].format(n=limit))
            assert refused >= 2, ens.dump_logs()
        finally:
            for k in fillers:
                k.stop()
                k.close()
            cluster.stop(kill=True)
    print(f"{backend}: maxClientCnxns={limit}: {refused} refusals logged by server 1; the broker opened "
          f"{attempts} connections, then registered")


def test_brokers_started_before_the_ensemble_has_a_quorum(backend, tmp_path):
    ens = ensemble(backend, tmp_path)
    patient = one_broker(tmp_path / "patient", ens.connect_string())
    hasty = one_broker(tmp_path / "hasty", ens.connect_string(), zookeeper_connection_timeout_ms=8000)
    try:
        ens.members[1].start()                   # one server of three: no quorum
        t0 = time.monotonic()
        broker, short = patient.brokers[1].start(), hasty.brokers[1].start()
        # Without a quorum a broker waits zookeeper.connection.timeout.ms, retrying, then exits.
        code = wait_exit(short, 120)
        log = short.log_text(this_run=True)
        assert code != 0 and "Timed out waiting for connection while in state: CONNECTING" in log, log[-3000:]
        assert connection_attempts(short) >= 2
        assert broker.alive and connection_attempts(broker) >= 2
        turned_away = ens.members[1].log_text().count(NOT_SERVING[backend])
        assert turned_away >= 2, ens.dump_logs()
        ens.members[2].start()                   # a quorum: the patient broker gets through
        ens.wait_serving(wait=90)
        patient.wait_ready(240)
        waited = time.monotonic() - t0
        assert patient.registered() == [1]
        ens.members[3].start()
        ens.wait_serving(wait=90)
    finally:
        patient.stop(kill=True)
        hasty.stop(kill=True)
        ens.stop()
    print(f"{backend}: no quorum: the 8 s broker exited {code} (timed out); {turned_away} connections turned "
          f"away by server 1 ('{NOT_SERVING[backend]}'); the 30 s broker registered {waited:.1f}s after its start")
