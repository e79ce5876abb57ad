"""JIT warm-up: drive a scratch ServerCore through the request path so that PyPy compiles it before
clients need it.

Why: on PyPy a fresh server runs the request path interpreted until its loops get hot; the first
~20,000 writes cost 2-2.5x the CPU of later ones (coord.bench.core: create 10.8 vs 4.3 us), and each
compilation is a pause of the event loop (docs/benchmarks.md: `jit` stalls). The compiled code
belongs to the functions, not to a core, so a throwaway ServerCore with its own tree (nothing shared
with the serving one: the core is pure) warms the serving one up: after 20,000 scratch ops its first
creates cost 4.5 us.

It runs in a daemon thread started once the server serves, so start-up is not delayed; while it runs
it shares the interpreter lock with the loop (PyPy switches every 5 ms). Only on PyPy (CPython has
no JIT to warm). Opt-in: COORD_JIT_WARMUP_OPS=<n> scratch ops (e.g. 60000; unset or 0: none). Not on
by default because it is not yet shown to pay on a real server: the warm-up's own driver loop gets
traces the server's loop cannot use (only the core's inner loops are shared), and on the loaded
machine an A/B of a fresh server's first 20,000 creates was within noise (docs/benchmarks.md).
"""
from __future__ import annotations

import logging
import os
import platform
import struct
import threading
import time

from coord.core.scratch import connected_core, logged
from coord.jute import records as R

log = logging.getLogger("coord.server")

DEFAULT_OPS = 0
_ACL = [R.ACL(31, R.Id("world", "anyone"))]
_HDR = struct.Struct(">ii")   # xid, type (the frame splitter has taken the length off)
_REPLY = struct.Struct(">iiqi")


def _frames(i0: int, op: str, paths: list[str], data: bytes) -> list[bytes]:
    out = []
    for i, p in enumerate(paths):
        if op == "create":
            code, body = 1, R.CreateRequest(p, data, _ACL, 0).encode()
        elif op == "getData":
            code, body = 4, R.GetDataRequest(p, False).encode()
        elif op == "exists":
            code, body = 3, R.ExistsRequest(p, False).encode()
        elif op == "setData":
            code, body = 5, R.SetDataRequest(p, data, -1).encode()
        elif op == "multi":
            # Kafka's controller write: check a version, then set data (a write multi may not hold
            # reads: exists here would fail the whole request before prep and warm nothing up)
            code, body = 14, b"".join((R.MultiHeader(13, False, -1).encode(), R.CheckVersionRequest(p, -1).encode(),
                                       R.MultiHeader(5, False, -1).encode(), R.SetDataRequest(p, data, -1).encode(),
                                       R.MultiHeader(-1, True, -1).encode()))
        else:
            code, body = 2, R.DeleteRequest(p, -1).encode()
        out.append(_HDR.pack(i0 + i, code) + body)
    return out


def warm_up(ops: int = 60_000, connections: int = 8, depth: int = 32) -> tuple[int, int]:
    """Run ~ops requests (create, getData, setData, exists, multi, delete over ops/5 znodes) through a
    scratch core, the txns made durable at once as the shell would after its fsync. Returns (replies,
    failed replies): a failed one ran an error path, not the path the warm-up is for."""
    core = connected_core(connections, int(time.time() * 1000))
    conns = list(range(1, connections + 1))
    core.frame(1, _HDR.pack(1, 1) + R.CreateRequest("/warm", b"", _ACL, 0).encode())
    logged(core)
    core.drain()
    per = max(1, ops // 6 // connections)
    data = b"x" * 100
    replies = failed = 0
    xid = 2
    for op in ("create", "getData", "setData", "exists", "multi", "delete"):
        frames = {c: _frames(xid, op, [f"/warm/c{c:03d}n{j:07d}" for j in range(per)], data) for c in conns}
        xid += per
        for base in range(0, per, depth):
            for c in conns:
                for f in frames[c][base:base + depth]:
                    core.frame(c, f)
            logged(core)
            out, _closing = core.drain()
            for chunks in out.values():
                n, bad = _count(b"".join(chunks))
                replies += n
                failed += bad
    return replies, failed


def _count(stream: bytes) -> tuple[int, int]:
    """(replies, replies with an error code) in a connection's output: frames of length, xid, zxid, err."""
    n = bad = pos = 0
    while pos < len(stream):
        ln, xid, _zxid, err = _REPLY.unpack_from(stream, pos)
        pos += 4 + ln
        if xid >= 0:
            n += 1
            bad += err != 0
    return n, bad


def start_in_background() -> threading.Thread | None:
    """On PyPy with COORD_JIT_WARMUP_OPS > 0, warm the JIT up in a daemon thread; else None."""
    if platform.python_implementation() != "PyPy":
        return None
    try:
        ops = int(os.environ.get("COORD_JIT_WARMUP_OPS", DEFAULT_OPS))
    except ValueError:
        log.warning("COORD_JIT_WARMUP_OPS=%r is not a number; no JIT warm-up", os.environ["COORD_JIT_WARMUP_OPS"])
        ops = 0
    if ops <= 0:
        return None

    def run() -> None:
        t0 = time.monotonic()
        try:
            n, failed = warm_up(ops)
        except Exception:  # noqa: BLE001 - a warm-up must never take the server down
            log.exception("JIT warm-up failed (the server serves as before, compiling as it goes)")
            return
        log.info("JIT warm-up: %d scratch requests in %.2fs (%d failed)", n, time.monotonic() - t0, failed)
    t = threading.Thread(target=run, name="jit-warm-up", daemon=True)
    t.start()
    return t
