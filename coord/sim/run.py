"""One seed's run, whichever world it needs: coord's own ensemble (coord.sim.world) or coord
observers of a modelled ZooKeeper ensemble (coord.sim.zkworld, which builds on world: so the choice
lives here, not in world, to keep the import direction one way)."""
from __future__ import annotations

from coord.sim.world import SimOptions, SimResult, World
from coord.sim.zkworld import run_zkpeer_seed


def run_seed(opts: SimOptions) -> SimResult:
    if opts.zk_peer:
        return run_zkpeer_seed(opts)
    return World(opts).run()
