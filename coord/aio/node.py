"""Process main: pick the node kind from the config — standalone, or an ensemble member with Zab."""
from __future__ import annotations

import asyncio
import gc

from coord.aio.server import CoordServer
from coord.aio.zoocfg import ServerConfig


# The cycle collector's full collections walk every tracked object, the whole tree included, each
# time the survivors of younger collections reach a quarter of it: while a tree grows (creates),
# that is a pause of tens of ms per 25% growth and ~5% of the CPU of a create, for nothing, since
# znodes form no cycles and the request path's short-lived cycles die in the young generations
# (measured: every collected object was found by generation 0). Younger collections run as before;
# the oldest generation is examined a hundredth as often. (Recovery freezes the loaded tree too.)
GC_THRESHOLDS = (1000, 20, 1000)


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


async def run_node(cfg: ServerConfig) -> None:
    tune_gc()
    if not cfg.standalone:
        from coord.aio.ensemble_node import run_member
        await run_member(cfg)
        return
    srv = CoordServer(cfg)
    await srv.start()
    try:
        await asyncio.Event().wait()
    finally:
        await srv.stop()
