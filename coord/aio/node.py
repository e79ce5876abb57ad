"""Process main: pick the node kind from the config (standalone now; ensemble member with Zab)."""
from __future__ import annotations

import asyncio

from coord.aio.server import CoordServer
from coord.aio.zoocfg import ServerConfig


async def run_node(cfg: ServerConfig) -> None:
    srv = CoordServer(cfg)
    await srv.start()
    try:
        await asyncio.Event().wait()
    finally:
        await srv.stop()
