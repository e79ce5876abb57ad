"""Process main: pick the node kind from the config — standalone, or an ensemble member with Zab."""
from __future__ import annotations

import asyncio

from coord.aio.server import CoordServer
from coord.aio.zoocfg import ServerConfig


async def run_node(cfg: ServerConfig) -> None:
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
