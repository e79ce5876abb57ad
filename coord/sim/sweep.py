"""Seed sweeps over a mix of ensemble shapes: the habit that finds what a fixed CI set cannot.

A bug that shows once in a few thousand seeds (seed 92717 was one in 4,900) is out of reach of a fixed
set of a few hundred. A sweep runs a range of seeds, each in a configuration drawn from the seed
itself (so a seed always means the same run), across every shape the simulator knows: 3 and 5 voters,
observers, membership changes, fixed and swarm fault mixes, single servers, planned stops (handoff), coord observers of a modelled ZooKeeper ensemble and
their take-over (about 6% of seeds). Each seed also draws Zab's
bounds (history window, zxid counter limit and so on: world.py), so counter rolls come in every shape.

    python -m coord.sim --sweep 100000-109999 [--steps 6000] [--jobs N]

prints one line per configuration (seeds run, failed, CPU per seed) and, for every failing seed, its
violation and its replay command. `ci_range` gives CI a range of its own for each commit.
"""
from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field

from coord.sim.run import run_seed
from coord.sim.world import SimOptions, SimResult

# (label, weight, options): the weights favour the shapes that have found the most bugs (swarm).
MIX: list[tuple[str, int, dict]] = [
    ("n3", 14, dict(nodes=3)),
    ("n3-swarm", 22, dict(nodes=3, swarm=True)),
    ("n5", 6, dict(nodes=5)),
    ("n5-swarm", 12, dict(nodes=5, swarm=True)),
    ("n3+obs", 5, dict(nodes=3, observers=1)),
    ("n3+obs-swarm", 8, dict(nodes=3, observers=1, swarm=True)),
    ("n5+obs2-swarm", 4, dict(nodes=5, observers=2, swarm=True)),
    ("reconfig-n3", 12, dict(nodes=3, reconfig=True)),
    ("reconfig-n5", 6, dict(nodes=5, reconfig=True)),
    ("reconfig-n3-swarm", 6, dict(nodes=3, reconfig=True, swarm=True)),
    ("n1", 5, dict(nodes=1, clients=2)),
    # planned stops: the leader hands over (peer.handoff) amid the other faults
    ("n3-graceful", 8, dict(nodes=3, graceful=True)),
    ("n5-graceful-swarm", 4, dict(nodes=5, swarm=True, graceful=True)),
    ("n3+obs-graceful", 3, dict(nodes=3, observers=1, graceful=True)),
    ("reconfig-n3-graceful", 4, dict(nodes=3, reconfig=True, graceful=True)),
    ("n3-graceful-calm", 3, dict(nodes=3, graceful=True, faults=False)),   # handoffs, nothing else
]
_PICK_SALT = 0x5EED5
# coord observers of a modelled ZooKeeper ensemble (zkworld.py), drawn first with a salt of their own
# so that every other seed keeps the configuration it always had
ZK_PEER: list[tuple[str, int, dict]] = [
    ("zk-peer", 3, dict(nodes=3, observers=2, zk_peer=True)),
    ("zk-peer-n5", 1, dict(nodes=5, observers=1, zk_peer=True)),
    ("zk-peer-takeover", 2, dict(nodes=3, observers=2, zk_peer=True, takeover=True)),
]
_ZK_SALT = 0x2C0FFEE
ZK_PEER_SHARE = 0.06


def config_for(seed: int) -> tuple[str, dict]:
    """The configuration a seed runs in: drawn from the seed alone, so a replay needs only the seed."""
    z = random.Random(seed ^ _ZK_SALT)
    if z.random() < ZK_PEER_SHARE:
        label, _w, opts = z.choices(ZK_PEER, weights=[m[1] for m in ZK_PEER])[0]
        return label, dict(opts)
    r = random.Random(seed ^ _PICK_SALT)
    label, _w, opts = r.choices(MIX, weights=[m[1] for m in MIX])[0]
    return label, dict(opts)


def options_for(seed: int, steps: int) -> SimOptions:
    return SimOptions(seed=seed, steps=steps, **config_for(seed)[1])


def ci_range(count: int, commit: str | None) -> range:
    """A seed range of `count` for one commit: different for every commit (so CI explores), the same
    for every run of that commit (so a red CI can be replayed). Far from the fixed CI sets (< 10,000)."""
    key = int(commit[:12], 16) if commit else int(time.time()) // 86400
    start = 1_000_000 + (key % 100_000_000) * 10
    return range(start, start + count)


@dataclass
class Row:
    seeds: int = 0
    failed: int = 0
    cpu_s: float = 0.0


@dataclass
class SweepReport:
    rows: dict = field(default_factory=dict)          # label -> Row
    failures: list = field(default_factory=list)      # (label, SimResult, SimOptions)
    wall_s: float = 0.0

    @property
    def seeds(self) -> int:
        return sum(r.seeds for r in self.rows.values())

    def add(self, label: str, res: SimResult, opts: SimOptions) -> None:
        row = self.rows.setdefault(label, Row())
        row.seeds += 1
        row.cpu_s += res.wall_s
        if not res.ok:
            row.failed += 1
            self.failures.append((label, res, opts))

    def render(self) -> str:
        lines = [f"{'configuration':<20} {'seeds':>6} {'failed':>6} {'s/seed':>7}"]
        for label, _w, _o in MIX + ZK_PEER:
            row = self.rows.get(label)
            if row:
                lines.append(f"{label:<20} {row.seeds:>6} {row.failed:>6} {row.cpu_s / row.seeds:>7.2f}")
        n, bad = self.seeds, len(self.failures)
        lines.append(f"{n - bad}/{n} seeds passed in {self.wall_s:.1f}s")
        for label, res, opts in self.failures:
            lines.append(f"FAILED seed {res.seed} ({label}) at {res.virtual_ms} virtual ms: {res.message}")
            lines.append(f"  replay: {opts.replay()} -v")
        return "\n".join(lines)


def _run(args: tuple[int, int]) -> tuple[int, SimResult]:
    seed, steps = args
    return seed, run_seed(options_for(seed, steps))


def sweep(seeds, steps: int = 6000, jobs: int | None = None, progress=None) -> SweepReport:
    """Run every seed in its own configuration; `progress(done, total)` is called as results come."""
    seeds = list(seeds)
    jobs = jobs or os.cpu_count() or 1
    report = SweepReport()
    t0 = time.perf_counter()
    work = [(s, steps) for s in seeds]
    if jobs > 1 and len(seeds) > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(jobs) as ex:
            results = ex.map(_run, work, chunksize=8)
            for i, (seed, res) in enumerate(results, 1):
                report.add(config_for(seed)[0], res, options_for(seed, steps))
                if progress:
                    progress(i, len(seeds))
    else:
        for i, w in enumerate(work, 1):
            seed, res = _run(w)
            report.add(config_for(seed)[0], res, options_for(seed, steps))
            if progress:
                progress(i, len(seeds))
    report.wall_s = time.perf_counter() - t0
    return report
