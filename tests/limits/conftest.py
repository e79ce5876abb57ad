"""Fixtures for the limits suite: real ZooKeeper 3.8 and coord started from the same zoo.cfg keys.

The limits are ZooKeeper system properties; ZooKeeper turns a zoo.cfg key it does not parse into
`zookeeper.<key>`, so operators set them in zoo.cfg, and both servers here read them from there.
With `metrics`, each also serves Prometheus /metrics (ZooKeeper's provider jars, as tests/ops).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.compat.conftest import Pair
from tests.ops.prom import PROVIDER, need, zk_prometheus_jars
from tests.support.coord_server import CoordProcess
from tests.support.real_zk import RealZooKeeper, free_port

pytestmark = pytest.mark.realzk


def start_limits_pair(workdir: Path, cfg: dict, *, metrics: bool = False) -> Pair:
    zk_cfg, coord_cfg, jars = dict(cfg), dict(cfg), []
    if metrics:
        jars = zk_prometheus_jars()
        need(bool(jars), "ZooKeeper's PrometheusMetricsProvider jars (.cache/zk-prometheus-*)")
        for c in (zk_cfg, coord_cfg):
            c.update({"metricsProvider.className": PROVIDER, "metricsProvider.httpHost": "127.0.0.1",
                      "metricsProvider.httpPort": str(free_port())})
    zk = RealZooKeeper(Path(workdir) / "zk", extra_cfg=zk_cfg, classpath=jars)
    coord = CoordProcess(Path(workdir) / "coord", extra_cfg=coord_cfg)
    zk.metrics_port = int(zk_cfg.get("metricsProvider.httpPort", 0))
    coord.metrics_port = int(coord_cfg.get("metricsProvider.httpPort", 0))
    try:
        zk.start()
        coord.start()
    except Exception:
        Pair(zk, coord).stop()
        raise
    return Pair(zk, coord)


@pytest.fixture(scope="module")
def quota_pair(tmp_path_factory):
    p = start_limits_pair(tmp_path_factory.mktemp("quota"), {"enforceQuota": "true"}, metrics=True)
    yield p
    p.stop()
