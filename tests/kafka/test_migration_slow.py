"""Issue item 5, slow: the KIP-866 migration of the ZooKeeper-mode cluster to KRaft under continuous
produce/consume. A KRaft controller with zookeeper.metadata.migration.enable, the brokers rolled into
migration mode, "Completed migration of metadata from ZooKeeper to KRaft", then dual write: a topic
created through the KRaft controller appears in ZooKeeper. On its own cluster (it cannot go back)."""
from __future__ import annotations

import json

import pytest

from coord.kafka import tools
from coord.kafka.broker import Broker
from coord.kafka.cluster import free_ports
from coord.kafka.migration import COMPLETED, KRaftControllerSpec, broker_migration_overrides, format_controller
from tests.kafka.conftest import BACKENDS, SESSION_TIMEOUT_MS, kafka_cluster_on
from tests.kafka.load import under_load
from tests.kafka.test_faults import create_topic
from tests.kafka.test_tools_slow import produce_consume

pytestmark = pytest.mark.slow


@pytest.fixture(params=BACKENDS)
def fresh_kafka(request, tmp_path):
    with kafka_cluster_on(request.param, tmp_path, security=False) as env:
        yield env


def test_kip866_migration_to_kraft_with_dual_write(fresh_kafka):
    kafka = fresh_kafka
    c = kafka.cluster
    spec = KRaftControllerSpec(3000, free_ports(1)[0], c.zk_connect, kafka.workdir / "kraft-controller",
                               session_timeout_ms=SESSION_TIMEOUT_MS)
    controller = Broker(spec)
    topic = create_topic(kafka)
    try:
        with under_load(kafka.bootstrap, topic) as load:
            format_controller(spec, c, kafka.workdir)
            controller.start()
            c.wait_for(controller.started, 120, describe="KRaft controller started")
            for i, b in c.brokers.items():       # a rolling restart into migration mode
                b.spec.extra.update(broker_migration_overrides(spec))
                b.stop()
                b.start()
                c.wait_ready(180, ids=[i])
                load.still_flowing(20)
            c.wait_for(lambda: COMPLETED in controller.log_text(), 120, describe="migration completed")

            # The KRaft controller owns /controller now: persistent, with its epoch; /migration records it.
            data, stat = c.zk.get("/kafka/controller")
            owner = json.loads(data)
            assert owner["brokerid"] == 3000 and owner["kraftControllerEpoch"] > 0 and stat.ephemeralOwner == 0
            migration = json.loads(c.zk.get("/kafka/migration")[0])
            assert migration["kraft_controller_id"] == 3000

            # Dual write: a topic created after the migration goes through KRaft and lands in ZooKeeper.
            after = create_topic(kafka, 2)
            assignment = c.wait_for(lambda: c.zk.exists(f"/kafka/brokers/topics/{after}")
                                    and json.loads(c.zk.get(f"/kafka/brokers/topics/{after}")[0]), 60,
                                    describe=f"{after} written into ZooKeeper by the KRaft controller")
            assert sorted(assignment["partitions"]) == ["0", "1"]
            c.wait_for(lambda: all(c.zk.exists(f"/kafka/brokers/topics/{after}/partitions/{p}/state")
                                   for p in range(2)), 60, describe=f"partition states of {after} in ZooKeeper")
            produce_consume(kafka, after)
            load.still_flowing()
    finally:
        controller.kill()
    checked = load.check()
    print(f"{kafka.backend}: migrated to KRaft (controller epoch {owner['kraftControllerEpoch']}, metadata offset "
          f"{migration['kraft_metadata_offset']}); {checked} acked messages consumed once in order; "
          f"longest gap between acks {load.max_ack_gap():.2f}s")
    assert kafka.tool(tools.TOPICS, "--bootstrap-server", kafka.bootstrap, "--list").stdout.split().count(after) == 1
