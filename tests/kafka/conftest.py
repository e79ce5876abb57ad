"""Real Kafka 3.9 brokers on a 3-server ensemble, coord or Apache ZooKeeper 3.8, same harness.

One cluster per backend for the whole package (brokers take seconds to start; 2 cores are shared;
under xdist, per worker):
the ensemble is tests/support/ensemble.py's, the brokers coord/kafka's, with a SASL/SCRAM listener
and the ZooKeeper-backed AclAuthorizer so that users and ACLs written straight into ZooKeeper can be
seen to take effect.
"""
from __future__ import annotations

import os

import pytest

from coord.kafka import libs
from coord.kafka.cluster import KafkaCluster
from coord.kafka.tools import run_tool
from tests.support.ensemble import Ensemble

SESSION_TIMEOUT_MS = 10000   # brokers' zookeeper.session.timeout.ms: a dead broker is noticed in ~10 s
TICK_MS = 1000               # ensembles accept sessions of 2-20 s (2 and 20 ticks)


def pytest_collection_modifyitems(config, items):
    mine = [it for it in items if "tests/kafka/" in it.nodeid]
    reason = libs.missing_reason()
    for item in mine:
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))
    if reason and mine and os.environ.get("CI"):
        raise pytest.UsageError(f"CI run without Kafka: {reason}")


class KafkaEnv:
    """The ensemble, the brokers on it, and Kafka's tools pointed at them."""

    def __init__(self, backend: str, ensemble: Ensemble, cluster: KafkaCluster, workdir):
        self.backend = backend
        self.ensemble = ensemble
        self.cluster = cluster
        self.workdir = workdir

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap_servers

    @property
    def zk_connect(self) -> str:
        return self.cluster.zk_connect

    def tool(self, main_class: str, *args, **kw):
        return run_tool(main_class, list(args), self.workdir, **kw)

    def sasl_port(self, broker_id: int) -> int:
        return self.cluster.brokers[broker_id].spec.sasl_port

    def ensure_running(self) -> None:
        """Bring back servers and brokers an earlier test killed, so tests do not depend on order."""
        for m in self.ensemble.members.values():
            if not m.alive:
                m.start()
        self.ensemble.wait_serving(wait=90)
        for b in self.cluster.brokers.values():
            if b.paused:
                b.resume()
            if not b.alive:
                b.start()
        self.cluster.wait_ready(240, ids=list(self.cluster.brokers))


@pytest.fixture(scope="package", params=["coord", pytest.param("zookeeper", marks=pytest.mark.realzk)])
def kafka_env(request, tmp_path_factory):
    backend = request.param
    work = tmp_path_factory.mktemp(f"kafka-{backend}")
    ens = Ensemble(work / "ensemble", 3, kind=backend, tick_ms=TICK_MS, force_sync=False)
    ens.start()
    cluster = KafkaCluster(work / "kafka", ens.connect_string(), 3, session_timeout_ms=SESSION_TIMEOUT_MS,
                           sasl=True, authorizer=True)
    env = KafkaEnv(backend, ens, cluster, work)
    try:
        cluster.start(wait=240)
        yield env
    finally:
        cluster.stop(kill=True)  # the cluster is thrown away: no controlled shutdown to wait for
        ens.stop()


@pytest.fixture
def kafka(kafka_env):
    kafka_env.ensure_running()
    return kafka_env
