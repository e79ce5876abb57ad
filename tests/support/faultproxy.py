"""A fault-injecting TCP proxy for peer links, so tests can cut, slow or pause them without root.

Each *route* is one listening port that stands for "server `src` dialling server `dst`": give `src`
a zoo.cfg in which `dst`'s quorum and election addresses are route ports, and every byte between
the two passes through here. Faults are set per *direction* (src -> dst), so a route's two byte
streams are governed separately: the dialler's bytes by (src -> dst), the answers by (dst -> src).

Faults, as a real network has them:
- `partition(a, b)` / `partition_one_way(src, dst)`: bytes in a blocked direction stop flowing.
  Mode "hold" (default) is TCP over a dead path: bytes wait (bounded; reading from the sender pauses,
  as TCP flow control would) and flow again, in order, when healed; new connections across a blocked
  direction hang. Mode "drop" discards them, and every connection that lost bytes is reset on heal.
- `delay(src, dst, ms)`: every chunk in that direction is held back ms (order kept).
- `reset(a, b)`: abort the current connections between a and b (they may reconnect at once).
- `isolate(x)`: partition x from everyone; `heal()` removes every fault.

The proxy runs its own event loop in a daemon thread; the control methods are thread-safe and
return when the change is in force.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

log = logging.getLogger("faultproxy")

HOLD_BOUND = 64 * 1024 * 1024


@dataclass
class Direction:
    blocked: bool = False
    mode: str = "hold"
    delay_ms: float = 0.0
    bytes: int = 0
    dropped: int = 0
    changed: asyncio.Event | None = None


@dataclass
class Route:
    src: object
    dst: object
    target: tuple[str, int]
    name: str
    port: int = 0
    server: object = None
    conns: set = field(default_factory=set)


class _Pump:
    """One direction of one proxied connection: queue chunks, deliver them when the fault allows."""

    def __init__(self, proxy: "FaultProxy", direction: tuple, conn: "_Proxied"):
        self.proxy = proxy
        self.key = direction
        self.conn = conn
        self.q: deque[tuple[float, bytes]] = deque()
        self.qbytes = 0
        self.ready = asyncio.Event()
        self.out: asyncio.Transport | None = None
        self.source: asyncio.Transport | None = None
        self.paused = False
        self.tainted = False
        self.task = proxy.loop.create_task(self.run())

    def push(self, data: bytes) -> None:
        d = self.proxy._dir(self.key)
        if d.blocked and d.mode == "drop":
            d.dropped += len(data)
            self.tainted = True
            return
        self.q.append((time.monotonic(), data))
        self.qbytes += len(data)
        self.ready.set()
        if self.qbytes > HOLD_BOUND and self.source is not None and not self.paused:
            self.paused = True
            self.source.pause_reading()

    async def run(self) -> None:
        try:
            while True:
                while not self.q:
                    self.ready.clear()
                    await self.ready.wait()
                d = self.proxy._dir(self.key)
                while d.blocked or self.out is None:
                    d.changed.clear()
                    try:
                        await asyncio.wait_for(d.changed.wait(), 0.05)
                    except asyncio.TimeoutError:
                        pass
                t, data = self.q[0]
                if d.delay_ms:
                    wait = t + d.delay_ms / 1000 - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                        continue  # faults may have changed meanwhile
                self.q.popleft()
                self.qbytes -= len(data)
                d.bytes += len(data)
                self.out.write(data)
                if self.paused and self.qbytes < HOLD_BOUND // 2:
                    self.paused = False
                    self.source.resume_reading()
        except (asyncio.CancelledError, ConnectionError, RuntimeError):
            pass


class _Side(asyncio.Protocol):
    def __init__(self, conn: "_Proxied", upstream: bool):
        self.conn = conn
        self.upstream = upstream
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        (self.conn.down if self.upstream else self.conn.up).push(data)

    def eof_received(self):
        self.conn.close()
        return False

    def connection_lost(self, exc) -> None:
        self.conn.close()


class _Proxied:
    """One accepted connection and its upstream connection."""

    def __init__(self, proxy: "FaultProxy", route: Route):
        self.proxy = proxy
        self.route = route
        self.client = _Side(self, upstream=False)
        self.server = _Side(self, upstream=True)
        self.up = _Pump(proxy, (route.src, route.dst), self)     # dialler's bytes
        self.down = _Pump(proxy, (route.dst, route.src), self)   # answers
        self.closed = False
        route.conns.add(self)
        proxy.loop.create_task(self.connect_upstream())

    async def connect_upstream(self) -> None:
        # a blocked path in either direction means the TCP handshake cannot complete
        while self.proxy._blocked_either(self.route.src, self.route.dst):
            if self.closed:
                return
            await asyncio.sleep(0.02)
        if self.closed:
            return
        try:
            await self.proxy.loop.create_connection(lambda: self.server, *self.route.target)
        except OSError:
            self.close()
            return
        if self.closed:
            self.server.transport.abort()
            return
        self.up.out, self.up.source = self.server.transport, self.client.transport
        self.down.out, self.down.source = self.client.transport, self.server.transport
        self.up.ready.set()
        for p in (self.up, self.down):
            self.proxy._dir(p.key).changed.set()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.route.conns.discard(self)
        for side in (self.client, self.server):
            if side.transport is not None:
                side.transport.abort()
        for p in (self.up, self.down):
            p.task.cancel()


class FaultProxy:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.routes: list[Route] = []
        self.dirs: dict[tuple, Direction] = {}
        self.thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _call(self, fn, *args):
        async def wrap():
            r = fn(*args)
            if asyncio.iscoroutine(r):
                r = await r
            return r
        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(30)

    def _dir(self, key: tuple) -> Direction:
        d = self.dirs.get(key)
        if d is None:
            d = self.dirs[key] = Direction(changed=asyncio.Event())
        return d

    def _blocked_either(self, a, b) -> bool:
        return self._dir((a, b)).blocked or self._dir((b, a)).blocked

    # -- routes -------------------------------------------------------------------------------------
    def route(self, src, dst, target_port: int, target_host: str = "127.0.0.1", name: str = "",
              listen_port: int = 0) -> int:
        """A port that, dialled by src, reaches dst's target_port. Returns the listening port."""
        r = Route(src, dst, (target_host, target_port), name)

        async def make():
            srv = await self.loop.create_server(lambda: self._accept(r).client, "127.0.0.1",
                                                listen_port, reuse_address=True)
            r.server = srv
            r.port = srv.sockets[0].getsockname()[1]
            self.routes.append(r)
            return r.port
        return self._call(make)

    def _accept(self, r: Route) -> _Proxied:
        return _Proxied(self, r)

    # -- faults -------------------------------------------------------------------------------------
    def _set(self, src, dst, **kw) -> None:
        def do():
            d = self._dir((src, dst))
            was_blocked = d.blocked
            for k, v in kw.items():
                setattr(d, k, v)
            if was_blocked and not d.blocked:
                self._reset_tainted(src, dst)
            d.changed.set()
        self._call(do)

    def _reset_tainted(self, src, dst) -> None:
        for r in self.routes:
            for c in list(r.conns):
                if (c.up.key == (src, dst) and c.up.tainted) or (c.down.key == (src, dst) and c.down.tainted):
                    c.close()

    def partition_one_way(self, src, dst, mode: str = "hold") -> None:
        """Bytes from src to dst stop; dst to src still flow."""
        self._set(src, dst, blocked=True, mode=mode)

    def partition(self, a, b, mode: str = "hold") -> None:
        self.partition_one_way(a, b, mode)
        self.partition_one_way(b, a, mode)

    def isolate(self, x, others, mode: str = "hold") -> None:
        for o in others:
            if o != x:
                self.partition(x, o, mode)

    def split(self, side_a, side_b, mode: str = "hold") -> None:
        for a in side_a:
            for b in side_b:
                self.partition(a, b, mode)

    def delay(self, src, dst, ms: float) -> None:
        self._set(src, dst, delay_ms=ms)

    def heal(self, a=None, b=None) -> None:
        """Heal the link a<->b, or every fault when called without arguments."""
        keys = [k for k in list(self.dirs) if a is None or set(k) == {a, b}]
        for k in keys:
            self._set(*k, blocked=False, delay_ms=0.0)

    def reset(self, a, b) -> None:
        def do():
            for r in self.routes:
                if {r.src, r.dst} == {a, b}:
                    for c in list(r.conns):
                        c.close()
        self._call(do)

    def reset_all(self) -> None:
        def do():
            for r in self.routes:
                for c in list(r.conns):
                    c.close()
        self._call(do)

    def bytes_forwarded(self, src, dst) -> int:
        return self._dir((src, dst)).bytes if (src, dst) in self.dirs else 0

    def open_connections(self) -> int:
        return sum(len(r.conns) for r in self.routes)

    def close(self) -> None:
        def do():
            for r in self.routes:
                r.server.close()
                for c in list(r.conns):
                    c.close()
        try:
            self._call(do)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
