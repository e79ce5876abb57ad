"""The simulator's ZooKeeper-peer mode (coord/sim/zkworld.py): coord observers of a modelled
ZooKeeper ensemble under seeded faults, then the take-over as a coord ensemble. Fixed seeds for CI;
more in the mixed sweep (`python -m coord.sim --sweep A-B`, about 6% of its seeds) or:

    python -m coord.sim --seeds 1-500 --zk-peer --observers 2 [--takeover] [--nodes 5] --jobs 2
"""
from __future__ import annotations

import pytest

from coord.core.zkpeer.observer import ZkObserver
from coord.sim.run import run_seed
from coord.sim.world import SimOptions

STEPS = 4000
SETS = [
    ("n3+2obs", 100, 10, dict(nodes=3, observers=2)),
    ("n5+1obs", 200, 4, dict(nodes=5, observers=1)),
    ("takeover", 300, 6, dict(nodes=3, observers=2, takeover=True)),
]
CASES = [(label, start, count, opts) for label, start, count, opts in SETS]


def _opts(seed, **kw) -> SimOptions:
    kw.setdefault("steps", STEPS)
    return SimOptions(seed=seed, zk_peer=True, **kw)


@pytest.mark.parametrize("label, first, count, opts", CASES, ids=[c[0] for c in CASES])
def test_zk_peer_seeds(label, first, count, opts):
    failed = []
    for seed in range(first, first + count):
        o = _opts(seed, **opts)
        r = run_seed(o)
        if not r.ok:
            failed.append(f"seed {seed}: {r.message}\n  replay: {o.replay()} -v")
    assert not failed, "\n".join(failed)


def test_faults_syncs_and_forwarded_writes_happen():
    """The seeds above must actually exercise what they claim: leader changes, observer crashes,
    partitions, both kinds of sync, writes through the observers, the take-over's own txns."""
    total: dict = {}
    for seed in range(100, 106):
        r = run_seed(_opts(seed, nodes=3, observers=2, takeover=seed % 2 == 0))
        assert r.ok, r.message
        for k, v in r.stats.items():
            if isinstance(v, int):
                total[k] = total.get(k, 0) + v
        for k, v in r.stats["syncs"].items():
            total["sync_" + k] = total.get("sync_" + k, 0) + v
    for k in ("leader_crashes", "observer_crashes", "partitions", "observer_client_txns", "sync_DIFF",
              "sync_SNAP", "takeover_txns", "takeover_sessions"):
        assert total.get(k, 0) > 0, (k, total)
    assert total["epochs"] > 6


def test_a_seed_replays_exactly():
    a = run_seed(_opts(7, nodes=3, observers=2, steps=2000))
    b = run_seed(_opts(7, nodes=3, observers=2, steps=2000))
    assert a.ok and (a.stats, a.tail) == (b.stats, b.tail)


def test_an_observer_that_stops_reporting_touches_is_caught(monkeypatch):
    """The session invariant bites: an observer whose PING replies drop its clients' touches lets
    the ZooKeeper leader expire sessions those clients kept alive."""
    real = ZkObserver._on_ping

    def silent(self, qp):
        real(self, qp)
        if self.out:
            from coord.jute import quorum as Q
            self.out[-1] = Q.QuorumPacket(Q.PING, qp.zxid, b"", qp.authinfo).encode()

    monkeypatch.setattr(ZkObserver, "_on_ping", silent)
    msgs = [run_seed(_opts(s, nodes=3, observers=2, steps=3000, faults=False)).message for s in range(1, 4)]
    assert any("expired session" in m and "touched it on a serving observer" in m for m in msgs), msgs


def test_an_observer_that_applies_a_txn_twice_is_caught(monkeypatch):
    """The order invariant bites: an observer that applies an INFORM twice (as a replay over a
    fuzzy snapshot would, without the zxid guard) is stopped by the prefix checker."""
    real = ZkObserver._on_inform

    def twice(self, qp):
        real(self, qp)
        self.fuzzy = True            # past the observer's own 'not after' guard
        real(self, qp)

    monkeypatch.setattr(ZkObserver, "_on_inform", twice)
    r = run_seed(_opts(1, nodes=3, observers=2, steps=3000))
    assert not r.ok and "again" in r.message, r.message
