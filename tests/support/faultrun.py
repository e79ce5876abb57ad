"""Run a fault scenario under the concurrent kazoo workload and check what the clients saw.

Shared by the partition and disk-fault suites (tests/ensemble/test_partitions.py,
test_disk_faults.py), for coord and real ZooKeeper alike: the workload (tests/support/history.py,
sequential appends included) runs around `scenario(leader, followers, notes)`, then the final state
is read from a fresh session and the history checked. One `RESULT` line per run (kind, acknowledged
writes and appends, and whatever the scenario put in `notes`, e.g. seconds to recover).
"""
from __future__ import annotations

import time

from tests.support.ensemble import Ensemble
from tests.support.history import Workload, check


def run_checked(ens: Ensemble, name: str, scenario, *, on_leader: int = 0, clients: int = 6, seed: int = 1,
                min_acked: int = 30, min_appends: int = 5, append_ratio: float = 0.15):
    """`on_leader` of the clients prefer the leader, the rest the followers in turn."""
    leader = ens.wait_serving()
    followers = [s for s in ens.members if s != leader]
    prefs = [leader] * on_leader + [followers[i % len(followers)] for i in range(clients - on_leader)]
    wl = Workload([ens.prefer(s) for s in prefs], [f"/k{i}" for i in range(4)], seed=seed,
                  append_ratio=append_ratio).start()
    t0 = time.monotonic()
    notes: dict = {}
    try:
        scenario(leader, followers, notes)
        time.sleep(1.0)                  # some traffic on the healed ensemble
    except BaseException:
        wl.finish()
        print(ens.dump_logs())
        raise
    wl.finish()
    ens.wait_serving(wait=60)
    final = wl.final_reads(ens.connect_string())
    appended = wl.final_appended(ens.connect_string())
    rep = check(wl.history, final, appended=appended)
    extra = " ".join(f"{k}={v}" for k, v in notes.items())
    print(f"RESULT {name} kind={ens.kind} ok={rep.ok} acked_writes={wl.acknowledged_writes()} "
          f"acked_appends={wl.acknowledged_appends()} {extra} wall_s={time.monotonic() - t0:.1f}\n"
          f"  {rep.summary()}")
    if not rep.ok or wl.errors:
        print(ens.dump_logs())
    assert not wl.errors, wl.errors[:5]
    assert rep.ok, rep.summary() + "\n" + "\n".join(rep.anomalies()[:8])
    assert wl.acknowledged_writes() >= min_acked, rep.summary()
    assert wl.acknowledged_appends() >= min_appends, rep.summary()
    return wl, rep
