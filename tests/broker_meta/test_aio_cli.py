"""The asyncio interface and the `broker-meta` CLI, against the real servers."""
from __future__ import annotations

import asyncio
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

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


def test_cli_creates_a_topic_on_an_empty_cluster(zk_clients):
    """A fresh cluster has no /brokers/topics yet (no broker ever started): an explicit assignment
    creates the parents, as Kafka's createRecursive does, instead of a NoNode traceback."""
    zk_clients.raw(chroot=False).ensure_path(zk_clients.chroot)
    assert "Created topic early." in run(zk_clients, "topics", "create", "--topic", "early", "--replica-assignment", "1:2,2:3")
    assert json.loads(run(zk_clients, "topics", "list", "--json")) == ["early"]
    desc = json.loads(run(zk_clients, "topics", "describe", "--topic", "early", "--json"))[0]
    assert [p["replicas"] for p in desc["partitions"]] == [[1, 2], [2, 3]]
    out = run(zk_clients, "topics", "create", "--topic", "early", "--replica-assignment", "1:2", ok=False)
    assert "already exists" in out


def test_cli_reports_connection_failure():
    result = CliRunner().invoke(main, ["brokers", "list", "--zookeeper", "127.0.0.1:1", "--session-timeout-ms", "1000"])
    assert result.exit_code != 0 and "cannot connect" in result.output


def test_cli_watch_streams_a_view_per_change(zk_clients):
    """`broker-meta watch --json`, run as an operator runs it (its own process): the current view,
    then a new one after every change of brokers, controller or partition leaders."""
    from broker_meta.broker_node import BrokerNode
    exe = Path(sys.executable).parent / "broker-meta"
    zk_clients.new()  # creates the chroot, as a broker would
    proc = subprocess.Popen([str(exe), "watch", "--zookeeper", zk_clients.connect, "--json", "--duration", "180"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    printed: list[str] = []

    def view_where(pred, what: str) -> dict:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            printed.append(line)
            if line.startswith("{") and pred(view := json.loads(line)):
                return view
        raise AssertionError(f"watch printed no view with {what}: {printed[-5:]}")

    cfg = ControllerConfig(leader_imbalance_check_interval_s=3600)
    nodes = {}
    try:
        view_where(lambda v: v["brokers"] == [] and v["controller"] is None, "an empty cluster")
        for b in (1, 2):
            nodes[b] = BrokerNode(zk_clients.connect, BrokerNodeConfig(b, port=9200 + b, session_timeout_ms=SESSION_TIMEOUT_MS,
                                                                      controller=cfg)).start()
        first = view_where(lambda v: [b["id"] for b in v["brokers"]] == [1, 2] and v["controller"] in (1, 2),
                           "brokers 1 and 2 and a controller")
        from broker_meta.topics import create_topic
        create_topic(zk_clients.new(), "watched", assignment={0: [1, 2], 1: [2, 1]})
        view_where(lambda v: [(p["partition"], p["leader"]) for p in v["partitions"]] == [(0, 1), (1, 2)],
                   "both partitions at their preferred leaders")
        victim = 3 - first["controller"]
        nodes.pop(victim).stop()
        survivor = first["controller"]
        view_where(lambda v: [b["id"] for b in v["brokers"]] == [survivor] and
                   all(p["leader"] == survivor and p["isr"] == [survivor] for p in v["partitions"]),
                   f"broker {victim} gone and {survivor} leading both partitions")
        assert proc.poll() is None, "watch exited early"
    finally:
        for n in nodes.values():
            n.stop()
        proc.terminate()
        proc.wait(30)
