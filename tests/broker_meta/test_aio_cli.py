"""The asyncio interface and the `broker-meta` CLI, against the real servers."""
from __future__ import annotations

import asyncio
import json

from click.testing import CliRunner

from broker_meta import paths
from broker_meta.aio import AsyncBrokerMeta, run_broker
from broker_meta.broker_node import BrokerNodeConfig
from broker_meta.cli import main
from broker_meta.model import BrokerRegistration, EndPoint, TopicPartition
from broker_meta.stream_controller import ControllerConfig

from .conftest import SESSION_TIMEOUT_MS, wait_until


def test_async_interface(zk_clients):
    async def scenario():
        async with AsyncBrokerMeta(zk_clients.connect, session_timeout_ms=SESSION_TIMEOUT_MS) as bm:
            await bm.create_top_level_paths()
            cid = await bm.cluster_id(create=True)
            assert cid == await bm.cluster_id()
            updates = bm.watch_brokers()
            assert [b.broker_id for b in await updates.__anext__()] == []
            node = await run_broker(zk_clients.connect, BrokerNodeConfig(
                7, session_timeout_ms=SESSION_TIMEOUT_MS, controller=ControllerConfig(leader_imbalance_check_interval_s=3600)))
            try:
                seen = await asyncio.wait_for(updates.__anext__(), 10)
                assert [b.broker_id for b in seen] == [7]
                await updates.aclose()
                await bm.create_topic("aio", 2, 1)
                assert await bm.list_topics() == ["aio"]
                views = bm.watch_cluster()
                while True:
                    view = await asyncio.wait_for(views.__anext__(), 10)
                    if len(view.states) == 2 and all(s is not None and s.leader == 7 for s in view.states.values()):
                        break
                await views.aclose()
                assert (await bm.controller()).broker_id == 7
                states = await bm.partition_states([TopicPartition("aio", 0)])
                assert states[TopicPartition("aio", 0)].isr == (7,)
                assert await bm.alter_config("topics", "aio", add={"retention.ms": "1"}) == {"retention.ms": "1"}
            finally:
                await asyncio.to_thread(node.stop)

    asyncio.run(scenario())


def run(zk_clients, *args, ok=True):
    result = CliRunner().invoke(main, [*args[:2], "--zookeeper", zk_clients.connect, *args[2:]], catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result.output


def test_cli_end_to_end(zk_clients):
    from broker_meta.broker_node import BrokerNode
    nodes = [BrokerNode(zk_clients.connect, BrokerNodeConfig(b, port=9100 + b, session_timeout_ms=SESSION_TIMEOUT_MS,
                                                            rack=f"r{b % 2}",
                                                            controller=ControllerConfig(leader_imbalance_check_interval_s=3600))).start()
             for b in (1, 2, 3)]
    try:
        brokers = json.loads(run(zk_clients, "brokers", "list", "--json"))
        assert [b["id"] for b in brokers] == [1, 2, 3] and brokers[0]["endpoints"] == ["PLAINTEXT://127.0.0.1:9101"]
        assert "Brokers" in run(zk_clients, "brokers", "list")
        ctl = json.loads(run(zk_clients, "controller", "show", "--json"))
        assert ctl["controller"] in (1, 2, 3) and ctl["controller_epoch"] == 1
        created = json.loads(run(zk_clients, "topics", "create", "--topic", "clicks", "--partitions", "6",
                                 "--replication-factor", "2", "--config", "retention.ms=1000", "--json"))
        assert len(created["partitions"]) == 6
        for replicas in created["partitions"].values():  # rack-aware: two racks, one replica each
            assert len({b % 2 for b in replicas}) == 2
        assert "Created topic manual." in run(zk_clients, "topics", "create", "--topic", "manual",
                                              "--replica-assignment", "1:2,2:3,3:1")
        run(zk_clients, "topics", "create", "--topic", "manual", "--replica-assignment", "1:2", ok=False)
        assert json.loads(run(zk_clients, "topics", "list", "--json")) == ["clicks", "manual"]
        wait_until(lambda: all(p["leader"] >= 0 for t in json.loads(run(zk_clients, "topics", "describe", "--json"))
                               for p in t["partitions"]), what="leaders")
        desc = json.loads(run(zk_clients, "topics", "describe", "--topic", "manual", "--json"))[0]
        assert [p["replicas"] for p in desc["partitions"]] == [[1, 2], [2, 3], [3, 1]]
        assert [p["leader"] for p in desc["partitions"]] == [1, 2, 3]
        assert "manual" in run(zk_clients, "topics", "describe")
        altered = json.loads(run(zk_clients, "topics", "alter", "--topic", "manual", "--partitions", "4", "--json"))
        assert len(altered["partitions"]) == 4
        assert json.loads(run(zk_clients, "configs", "get", "--entity-type", "topics", "--entity-name", "clicks",
                              "--json")) == {"retention.ms": "1000"}
        run(zk_clients, "configs", "set", "--entity-type", "topics", "--entity-name", "clicks",
            "--add-config", "cleanup.policy=compact,min.insync.replicas=2", "--delete-config", "retention.ms")
        assert json.loads(run(zk_clients, "configs", "get", "--entity-type", "topics", "--entity-name", "clicks",
                              "--json")) == {"cleanup.policy": "compact", "min.insync.replicas": "2"}
        # reassign manual-0 to [3,1], then elect the preferred leader (3)
        run(zk_clients, "partitions", "reassign", "--topic", "manual", "--partition", "0", "--replicas", "3,1")
        wait_until(lambda: json.loads(run(zk_clients, "partitions", "show", "--topic", "manual", "--json"))[0]["replicas"] == [3, 1],
                   what="reassigned")
        run(zk_clients, "partitions", "elect-preferred", "--topic", "manual", "--partition", "0")
        wait_until(lambda: json.loads(run(zk_clients, "partitions", "show", "--topic", "manual", "--json"))[0]["leader"] == 3,
                   what="preferred leader")
        assert json.loads(run(zk_clients, "partitions", "show", "--unavailable", "--json")) == []
        assert "Partitions" in run(zk_clients, "partitions", "show")
        cid = json.loads(run(zk_clients, "cluster", "id", "--json"))["cluster_id"]
        assert cid == nodes[0].cluster_id
        view = json.loads(run(zk_clients, "watch", "--once", "--json"))
        assert view["controller"] == ctl["controller"] and len(view["partitions"]) == 10
        assert "Partition leaders" in run(zk_clients, "watch", "--once")
        run(zk_clients, "topics", "delete", "--topic", "clicks")
        wait_until(lambda: json.loads(run(zk_clients, "topics", "list", "--json")) == ["manual"], what="deleted")
        run(zk_clients, "topics", "delete", "--topic", "clicks", ok=False)
    finally:
        for n in nodes:
            n.stop()


def test_cli_reports_connection_failure():
    result = CliRunner().invoke(main, ["brokers", "list", "--zookeeper", "127.0.0.1:1", "--session-timeout-ms", "1000"])
    assert result.exit_code != 0 and "cannot connect" in result.output
