"""python -m coord.sim --seed N [--swarm] [--steps K] [--nodes 1|3|5] [--observers M] [--seeds A-B]
[--reconfig [--spares S]]

python -m coord.sim --sweep A-B [--steps K] [--jobs N]: every seed in a configuration of its own
(coord/sim/sweep.py), a summary per configuration and every failing seed's replay command."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from coord.sim.run import run_seed
from coord.sim.world import SimOptions


def _run(opts: SimOptions):
    return run_seed(opts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m coord.sim", description=__doc__)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--seeds", default=None, help="a sweep: A-B (inclusive) or A,B,C")
    ap.add_argument("--sweep", default=None, metavar="A-B",
                    help="a mixed sweep: each seed in its own configuration (shape, observers, reconfig, swarm)")
    ap.add_argument("--steps", type=int, default=None,
                    help="events in the safety phase (default 20000; 6000 for --sweep, as CI runs them)")
    ap.add_argument("--nodes", type=int, default=3, choices=(1, 3, 5))
    ap.add_argument("--observers", type=int, default=0)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--swarm", action="store_true", help="each seed picks its own subset of faults")
    ap.add_argument("--no-faults", action="store_true")
    ap.add_argument("--reconfig", action="store_true", help="grow, shrink and swap members as it runs")
    ap.add_argument("--graceful", action="store_true", help="planned stops of the leader (handoff) among the faults")
    ap.add_argument("--zk-peer", action="store_true",
                    help="coord observers of a modelled ZooKeeper ensemble (--nodes voters, --observers observers)")
    ap.add_argument("--takeover", action="store_true", help="--zk-peer: then stop ZooKeeper and take over")
    ap.add_argument("--spares", type=int, default=2, help="servers outside the ensemble at first (--reconfig)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("-v", "--verbose", action="store_true", help="print every server's log")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.sweep:
        fixed = [f for f in ("zk_peer", "takeover", "reconfig", "graceful", "swarm", "no_faults") if getattr(a, f)]
        if fixed:   # a sweep draws each seed's configuration from its mix (coord.sim.sweep)
            ap.error(f"--sweep picks each seed's configuration itself; for --{fixed[0].replace('_', '-')} "
                     "runs use --seeds A-B")
        return _sweep(a)
    if a.steps is None:
        a.steps = 20000
    if a.seeds:
        if "-" in a.seeds:
            lo, hi = (int(x) for x in a.seeds.split("-", 1))
            seeds = list(range(lo, hi + 1))
        else:
            seeds = [int(x) for x in a.seeds.split(",")]
    else:
        seeds = [a.seed if a.seed is not None else int(time.time()) % 1000000]

    def opts(seed):
        return SimOptions(seed=seed, nodes=a.nodes, observers=a.observers, steps=a.steps, clients=a.clients,
                          reconfig=a.reconfig, spares=a.spares, graceful=a.graceful,
                          zk_peer=a.zk_peer, takeover=a.takeover,
                          swarm=a.swarm, faults=not a.no_faults, verbose=a.verbose and len(seeds) == 1)

    t0 = time.perf_counter()
    failures = 0
    if len(seeds) > 1 and a.jobs > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(a.jobs) as ex:
            results = ex.map(_run, [opts(s) for s in seeds], chunksize=4)
            for r in results:
                failures += _report(r, opts(r.seed), a.json, len(seeds) == 1)
    else:
        for s in seeds:
            failures += _report(run_seed(opts(s)), opts(s), a.json, len(seeds) == 1)
    if len(seeds) > 1:
        print(f"{len(seeds) - failures}/{len(seeds)} seeds passed in {time.perf_counter() - t0:.1f}s")
    return 1 if failures else 0


def _sweep(a) -> int:
    from coord.sim.sweep import sweep
    lo, hi = (int(x) for x in a.sweep.split("-", 1))
    every = max(1, (hi - lo + 1) // 20)

    def progress(done: int, total: int) -> None:
        if done % every == 0 or done == total:
            print(f"  {done}/{total}", file=sys.stderr, flush=True)

    report = sweep(range(lo, hi + 1), steps=a.steps or 6000, jobs=a.jobs,
                   progress=progress)
    print(report.render())
    return 1 if report.failures else 0


def _report(r, o: SimOptions, as_json: bool, single: bool) -> int:
    if as_json:
        print(json.dumps({"seed": r.seed, "ok": r.ok, "message": r.message, "stats": r.stats}))
    elif r.ok:
        s = r.stats
        print(f"seed {r.seed}: ok  {s['virtual_ms']} virtual ms, {s['events']} events, {s['txns']} txns, "
              f"{s['acked_writes']} acked, {s['epochs']} epochs, {s['restarts']} restarts "
              f"({r.wall_s:.2f}s)")
        if single:
            print("  " + json.dumps(s))
    else:
        print(f"seed {r.seed}: FAILED at {r.virtual_ms} virtual ms: {r.message}")
        for line in r.tail[-40:]:
            print("   ", line)
        print(f"  replay: {o.replay()} -v")
    return 0 if r.ok else 1


if __name__ == "__main__":
    sys.exit(main())
