"""Real Kafka 3.9 brokers on a 3-server ensemble, coord or Apache ZooKeeper 3.8, same harness.

One cluster per backend for the whole package (brokers take seconds to start; 2 cores are shared;
under xdist, per worker):
the ensemble is tests/support/ensemble.py's, the brokers coord/kafka's, with a SASL/SCRAM listener
and the ZooKeeper-backed AclAuthorizer so that users and ACLs written straight into ZooKeeper can be
seen to take effect.
"""
from __future__ import annotations

import os
from contextlib import contextmanager

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


@contextmanager
def kafka_cluster_on(backend: str, work, *, proxied: bool = False, security: bool = True, sync_limit: int = 10):
    """A 3-server ensemble of that backend and 3 brokers on it; security: the SCRAM listener and the
    AclAuthorizer; proxied: every peer link through tests/support/faultproxy.py."""
    ens = Ensemble(work / "ensemble", 3, kind=backend, tick_ms=TICK_MS, force_sync=False, proxied=proxied,
                   sync_limit=sync_limit)
    cluster = KafkaCluster(work / "kafka", ens.connect_string(), 3, session_timeout_ms=SESSION_TIMEOUT_MS,
                           sasl=security, authorizer=security)
    try:
        ens.start()
        cluster.start(wait=240)
        yield KafkaEnv(backend, ens, cluster, work)
    finally:
        cluster.stop(kill=True)  # the cluster is thrown away: no controlled shutdown to wait for
        ens.stop()


BACKENDS = ["coord", pytest.param("zookeeper", marks=pytest.mark.realzk)]


@pytest.fixture(scope="package", params=BACKENDS)
def kafka_env(request, tmp_path_factory):
    with kafka_cluster_on(request.param, tmp_path_factory.mktemp(f"kafka-{request.param}")) as env:
        yield env


@pytest.fixture
def kafka(kafka_env):
    kafka_env.ensure_running()
    return kafka_env
