"""Process main: pick the node kind from the config — standalone, or an ensemble member with Zab."""
from __future__ import annotations

import asyncio
import logging
import os

from coord.aio import gcpacer, heapcensus, jitsettle, stalls, warmup
from coord.aio.server import CoordServer
from coord.aio.zoocfg import ServerConfig
from coord.runtime import describe, jit_params_later, set_jit_params, tune_gc, tune_jit, tune_threads


def _set_jit_later(params: str) -> None:
    ok = set_jit_params(params)
    logging.getLogger("coord.server").info("JIT parameters %s %s", params,
                                           "applied" if ok else "not applied (no PyPy JIT, or not a parameter string)")


async def run_node(cfg: ServerConfig) -> None:
    tune_gc()
    tune_threads()
    jit = tune_jit()
    later = jit_params_later()
    if later is not None:
        asyncio.get_running_loop().call_later(later[0], _set_jit_later, later[1])
    jitsettle.install_from_env(asyncio.get_running_loop())  # PyPy: decay=200 once the compile storm is over
    if os.environ.get("COORD_STALL_MONITOR", "1") != "0":  # loop turns over 2 ms, with their cause
        stalls.monitor().install(asyncio.get_running_loop())
        gcpacer.install_from_env(stalls.monitor(), asyncio.get_running_loop())  # PyPy: major-GC steps when idle
    warmup.start_in_background()                           # PyPy: compile the request path now
    heapcensus.start_from_env()                            # debug aid, off unless COORD_HEAP_CENSUS
    logging.getLogger("coord.server").info("runtime: %s%s", describe(), f"; JIT {jit}" if jit else "")
    if cfg.peer_protocol == "zookeeper":
        from coord.aio.zkobserver import run_observer
        await run_observer(cfg)
        return
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
