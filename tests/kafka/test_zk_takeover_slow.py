"""Issue 18, slow: a 3-broker Kafka cluster on a real 3-server ZooKeeper 3.8 ensemble is moved onto
coord with no downtime: three coord observers join the ensemble, the brokers run against them, the
ZooKeeper servers are stopped and `coord migrate take-over` makes the observers coord's own
ensemble, all under continuous acks=all produce. No acknowledged message is lost, no broker
re-registers (the broker epochs, czxids of /brokers/ids/N, are unchanged), the controller and its
epoch stay; then a coord leader failover afterwards works as usual."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from coord.kafka.cluster import KafkaCluster
from tests.kafka.conftest import SESSION_TIMEOUT_MS
from tests.kafka.load import under_load
from tests.kafka.test_faults import broker_sessions, create_topic
from tests.support.coord_server import ROOT
from tests.support.real_zk import four_letter
from tests.support.zk_observer import ObservedEnsemble

pytestmark = [pytest.mark.slow, pytest.mark.realzk]


class _Env:
    """What tests.kafka.test_faults' helpers expect of a Kafka environment."""

    def __init__(self, cluster: KafkaCluster, workdir):
        self.cluster = cluster
        self.workdir = workdir
        self.bootstrap = cluster.bootstrap_servers

    def tool(self, main_class: str, *args, **kw):
        from coord.kafka.tools import run_tool
        return run_tool(main_class, list(args), self.workdir, **kw)


def mode(port: int) -> str:
    try:
        text = four_letter("127.0.0.1", port, "srvr", 1.0)
    except OSError as e:
        return str(e)
    return next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("Mode:")), "?")


def test_kafka_moves_from_zookeeper_to_coord_under_load(tmp_path):
    obs = ObservedEnsemble(tmp_path / "ensemble", "coord", observers=3)
    cluster = KafkaCluster(tmp_path / "kafka", obs.observer_connects, 3, session_timeout_ms=SESSION_TIMEOUT_MS)
    try:
        obs.start()
        for i in range(3):
            obs.start_observer(i=i)
        cluster.start(wait=240)
        env = _Env(cluster, tmp_path)
        topic = create_topic(env)
        cfg = obs.observers[0].workdir / "zoo.cfg"
        with under_load(env.bootstrap, topic) as load:
            before = broker_sessions(env)
            assert sorted(before["broker_epochs"]) == [1, 2, 3]
            # The operator starts the take-over first (it waits for the voters to go), then stops
            # the ZooKeeper servers: the switch follows their stop, whatever the CLI's own start costs.
            p = subprocess.Popen([sys.executable, "-m", "coord.cli", "migrate", "take-over", "--config", str(cfg),
                                  "--wait", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
            assert "waiting up to" in p.stdout.readline()
            for m in obs.voters.members:
                m.stop()
            t0 = time.monotonic()
            out, err = p.communicate(timeout=180)
            assert p.returncode == 0, out + err
            assert out.count("clients kept") == 3, out
            deadline = time.monotonic() + 60
            while sorted(mode(p) for _, _, p in obs.ports) != ["follower", "follower", "leader"]:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            took = time.monotonic() - t0
            # outlive the brokers' session timeout: a session lost in the switch would be expired by now
            time.sleep(SESSION_TIMEOUT_MS / 1000 + 2)
            load.still_flowing()
            assert broker_sessions(env) == before
            leader = next(i for i, (_, _, p) in enumerate(obs.ports) if mode(p) == "leader")
            obs.observers[leader].stop(kill=True)      # coord's own failover afterwards
            time.sleep(SESSION_TIMEOUT_MS / 1000 + 2)
            load.still_flowing()
            assert broker_sessions(env) == before
        checked = load.check()
        print(f"kafka on ZooKeeper -> coord: coord ensemble serving {took:.2f}s after the ZooKeeper servers were stopped; "
              f"{checked} acked messages consumed once in order; longest gap between acks {load.max_ack_gap():.2f}s")
    finally:
        cluster.stop(kill=True)
        obs.stop()
