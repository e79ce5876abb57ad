"""A scratch ServerCore with sessions already connected: what the in-process benchmark
(coord.bench.core) and the JIT warm-up (coord.aio.warmup) drive requests through, with no shell."""
from __future__ import annotations

from coord.core.config import CoreConfig
from coord.core.server import ServerCore
from coord.jute import records as R


def logged(core: ServerCore) -> list:
    """Report every txn the core asked to log as durable at once (as the shell does after its
    fsync); returns the records."""
    recs = core.sequencer.drain_log()
    if recs:
        core.sequencer.on_logged(recs[-1][0].zxid)
    return recs


def connected_core(connections: int, now_ms: int, mono_ms: int = 1000) -> ServerCore:
    """A standalone core with sessions on connections 1..N established and their output drained."""
    core = ServerCore(CoreConfig())
    core.start(now_ms, mono_ms)
    for c in range(1, connections + 1):
        core.connection_made(c, f"127.0.0.1:{5000 + c}")
        core.frame(c, R.ConnectRequest(0, 0, 30000, 0, bytes(16)).encode() + b"\x00")
    logged(core)
    core.drain()
    return core
