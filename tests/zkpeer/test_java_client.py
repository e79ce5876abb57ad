"""ZooKeeper's own Java client (zkCli.sh, Debian's `zookeeper`) connected to an observer of a live
ZooKeeper 3.8 ensemble: reads, writes, an ephemeral and watches, coord's observer and ZooKeeper's
observer alike; then, coord only (ZooKeeper has no counterpart), across `coord migrate take-over`:
the Java client's connection, session, ephemeral and watches stay in place."""
from __future__ import annotations

import asyncio

import pytest
from kazoo.client import KazooClient

from coord.aio.zoocfg import parse as parse_cfg
from coord.migrate import take_over
from tests.compat.zkcli import ZkCli
from tests.support.kazoo_clients import stop_all
from tests.support.zk_observer import KINDS, ObservedEnsemble

pytestmark = [pytest.mark.realzk, pytest.mark.slow]


def kazoo(hosts: str) -> KazooClient:
    c = KazooClient(hosts=hosts, timeout=10)
    c.start(timeout=30)
    return c


@pytest.mark.parametrize("kind", KINDS)
def test_java_client_through_an_observer(kind, tmp_path):
    obs = ObservedEnsemble(tmp_path, kind)
    obs.start()
    cli = None
    clients: list[KazooClient] = []
    try:
        obs.start_observer()
        voter = kazoo(obs.voters.connect_string)
        clients.append(voter)
        cli = ZkCli(obs.observer_connect)
        cli.send("create /j v1")
        assert cli.wait_for("Created /j", 60), cli.output()
        cli.send("create -e /j/eph owned")
        assert cli.wait_for("Created /j/eph", 30), cli.output()
        voter.sync("/j")
        assert voter.get("/j")[0] == b"v1"
        eph = voter.exists("/j/eph")
        assert eph is not None and eph.ephemeralOwner != 0
        voter.create("/j/from-voter", b"v2")
        cli.send("sync /j")
        cli.send("get /j/from-voter")
        assert cli.wait_for("v2", 30), cli.output()                     # a read through the observer
        cli.send("get -w /j")
        cli.send("ls -w /j")
        assert cli.wait_for("[eph, from-voter]", 30), cli.output()
        voter.set("/j", b"changed-at-a-voter")
        assert cli.wait_for("type:NodeDataChanged path:/j", 30), cli.output()
        voter.create("/j/kid", b"")
        assert cli.wait_for("type:NodeChildrenChanged path:/j", 30), cli.output()
        if kind != "coord":
            return
        # coord only: the ZooKeeper servers stop, the observer takes over; the Java client never
        # notices (no Disconnected event), its ephemeral and watches stay and fire on later changes.
        cli.send("get -w /j")
        cli.send("stat -w /j/later")
        assert cli.wait_for("changed-at-a-voter", 30), cli.output()
        disconnected = sum("Disconnected" in ln for ln in cli.output())
        voter.stop()
        for m in obs.voters.members:
            m.stop()
        cfg = obs.observer.workdir / "zoo.cfg"
        ok, lines = asyncio.run(take_over(parse_cfg(cfg.read_text(), str(cfg))))
        assert ok and "clients kept" in lines[0], lines
        after = kazoo(obs.observer_connect)
        clients.append(after)
        assert after.exists("/j/eph").ephemeralOwner == eph.ephemeralOwner
        after.set("/j", b"after-take-over")
        assert cli.wait_for("type:NodeDataChanged path:/j", 30, count=2), cli.output()
        after.create("/j/later", b"")
        assert cli.wait_for("type:NodeCreated path:/j/later", 30), cli.output()
        cli.send("set /j from-java")
        cli.send("get /j")
        assert cli.wait_for("from-java", 30), cli.output()
        after.sync("/j")
        assert after.get("/j")[0] == b"from-java"
        assert sum("Disconnected" in ln for ln in cli.output()) == disconnected, cli.output()
    finally:
        if cli is not None:
            cli.close()
        stop_all(clients)
        obs.stop()
