"""The fault tooling and the history checker against a real ZooKeeper 3.8 ensemble.

Real ZooKeeper is the reference: under the same faults we inflict on coord (kill -9 of the leader,
a partition through the proxy, a SIGSTOP'd follower) its history must check clean. If it did not, the
checker or the tooling would be wrong, not ZooKeeper.
"""
from __future__ import annotations

import time

import pytest

from tests.support.ensemble import Ensemble
from tests.support.history import Workload, check

pytestmark = pytest.mark.realzk


def _run(ens: Ensemble, scenario, clients: int = 6, keys: int = 4, seed: int = 1):
    leader = ens.wait_serving()
    followers = [s for s in ens.members if s != leader]
    wl = Workload([ens.prefer(followers[i % len(followers)]) for i in range(clients)],
                  [f"/k{i}" for i in range(keys)], seed=seed).start()
    try:
        scenario(ens, leader, followers)
    finally:
        wl.finish()
    final = wl.final_reads(ens.connect_string())
    rep = check(wl.history, final)
    assert not wl.errors, wl.errors[:5]
    assert rep.ok, rep.summary() + "\n" + "\n".join(rep.anomalies()[:5])
    assert wl.acknowledged_writes() > 100, rep.summary()
    return rep


def test_real_zookeeper_history_is_clean_under_leader_kill_and_partition(tmp_path):
    ens = Ensemble(tmp_path, 3, kind="zookeeper", proxied=True)
    try:
        ens.start()

        def scenario(ens, leader, followers):
            time.sleep(1.5)
            ens.members[leader].kill()
            new = ens.wait_serving(wait=30)
            time.sleep(1.0)
            other = next(s for s in ens.members if s not in (leader, new))
            ens.proxy.partition(new, other)       # no quorum left: writes stall, nothing is lost
            time.sleep(1.5)
            ens.proxy.heal()
            ens.members[leader].start()
            ens.wait_serving(wait=30)
            ens.members[other].pause()
            time.sleep(1.0)
            ens.members[other].resume()
            time.sleep(1.0)
        _run(ens, scenario)
    finally:
        ens.stop()
