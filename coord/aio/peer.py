"""Peer links: one framed, checksummed, bounded TCP connection per pair of servers.

The Zab peer's messages are opaque bytes here; this module only keeps one link per peer pair alive
and moves whole messages over it.

Who dials. As in ZooKeeper's QuorumCnxManager, only one side of a pair owns the connection so that
two servers dialling each other at once never end up with two links: the server with the *higher*
sid dials the lower one's quorum port, and keeps re-dialling with capped exponential backoff while
the link is down. The lower sid never holds a link it dialled itself: when it wants one (a `connect`
effect, or at start) it *pokes* the higher server through that server's election port — a one-frame
connection that says "dial me" — and the higher server dials back at once. A newer link from the
same peer replaces an older one (the old one was half-open: the peer restarted, or a partition ate
the FIN), and the replaced link is reported disconnected before the new one is reported connected.

Frames. `[version u8][kind u8][reserved u16][length u32][crc32 u32]` then `length` payload bytes;
the checksum covers the payload. A link starts with HELLO both ways (sid, membership digest, flags)
and is *established* only when the acceptor's HELLO comes back, so a black-holed connection never
looks alive. Then DATA frames (one Zab message each) and PING frames; a link that receives nothing
for `idle_timeout_ms` is closed (pings go out every `ping_interval_ms` when idle), which is how a
silent partition turns into `peer_disconnected` without the Zab peer asking.

Bounds and hostile bytes. A frame over `max_frame_bytes`, a bad version, kind or checksum, a HELLO
from an unknown sid, from ourselves or from another ensemble (different membership digest), or
anything before HELLO: that connection is aborted and logged; nothing else is affected. Each link's
unsent bytes are bounded by `max_queue_bytes`: a peer that stops reading is cut off rather than
allowed to grow our memory (the Zab peer resynchronises it when it comes back).

TLS. With quorum TLS (coord.aio.quorum_tls) every connection, both ports and both directions, is
wrapped before this module sees it: a dialled link's HELLO waits in `pending` until the TLS
handshake is done, and a handshake that fails ends the dial like a refused connection.
"""
from __future__ import annotations

import asyncio
import logging
import random
import struct
import zlib
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger("coord.peer")

VERSION = 1
HELLO, DATA, PING = 1, 2, 3
_HDR = struct.Struct(">BBHII")
HDR_SIZE = _HDR.size
_HELLO = struct.Struct(">qIB")
F_POKE = 1            # "I am the lower sid: dial me back"; the connection is closed after it

DEFAULT_MAX_FRAME = 512 * 1024 * 1024
DEFAULT_MAX_QUEUE = 1024 * 1024 * 1024


class FrameError(Exception):
    pass


def encode_frame(kind: int, payload: bytes = b"") -> bytes:
    return _HDR.pack(VERSION, kind, 0, len(payload), zlib.crc32(payload)) + payload


def encode_hello(sid: int, digest: int, flags: int = 0) -> bytes:
    return encode_frame(HELLO, _HELLO.pack(sid, digest, flags))


def membership_digest(voters, observers) -> int:
    """Who is in the ensemble and as what; addresses are left out (a proxy may stand in between)."""
    text = ",".join(f"{s}:p" for s in sorted(voters)) + ";" + ",".join(f"{s}:o" for s in sorted(observers))
    return zlib.crc32(text.encode())


_KINDS = frozenset((HELLO, DATA, PING))


class FrameReader:
    """Incremental frame parser with a size bound; raises FrameError on anything malformed.

    A partial frame waits in `buf` until `need` bytes are there, so a large frame arriving in many
    chunks is copied once, not once per chunk."""

    __slots__ = ("buf", "max_frame", "need")

    def __init__(self, max_frame: int):
        self.buf = bytearray()
        self.max_frame = max_frame
        self.need = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self.buf
        if buf:
            buf += data
            if len(buf) < self.need:
                return []
            src = bytes(buf)
            buf.clear()
        else:
            src = data
        out = []
        pos = 0
        n = len(src)
        unpack = _HDR.unpack_from
        crc32 = zlib.crc32
        max_frame = self.max_frame
        need = 0
        while n - pos >= HDR_SIZE:
            version, kind, reserved, length, crc = unpack(src, pos)
            if version != VERSION:
                raise FrameError(f"unsupported peer protocol version {version}")
            if kind not in _KINDS or reserved != 0:
                raise FrameError(f"bad frame kind {kind}/{reserved}")
            if length > max_frame:
                raise FrameError(f"frame of {length} bytes exceeds the bound of {max_frame}")
            end = pos + HDR_SIZE + length
            if end > n:
                need = HDR_SIZE + length
                break
            payload = src[pos + HDR_SIZE:end]
            if crc32(payload) != crc:
                raise FrameError("frame checksum mismatch")
            out.append((kind, payload))
            pos = end
        if pos < n:
            buf += src[pos:] if pos else src
            self.need = need or HDR_SIZE
        else:
            self.need = 0
        return out


@dataclass
class PeerAddr:
    sid: int
    host: str
    quorum_port: int
    election_port: int


class _Conn(asyncio.BufferedProtocol):
    """One TCP connection, dialled (outbound) or accepted (inbound). Buffered, reading into its
    transport manager's one buffer: a plain Protocol's transport allocates recv(256 KiB) for every
    read, which on PyPy drives major collections (coord.aio.server.ClientProtocol)."""

    def __init__(self, mgr: "PeerTransport", outbound_sid: int | None, via: str):
        self.mgr = mgr
        self.outbound_sid = outbound_sid
        self.via = via
        self.transport: asyncio.Transport | None = None
        self.reader = FrameReader(mgr.max_frame)
        self.sid: int | None = outbound_sid
        self.established = False
        self.closed = False
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.last_recv_ms = 0
        self.last_send_ms = 0
        self.remote = "?"
        self.handshake_timer: asyncio.TimerHandle | None = None
        self.raw: asyncio.Transport | None = None   # the TCP transport under TLS, while handshaking

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.remote = f"{peer[0]}:{peer[1]}"
        now = self.mgr.now_ms()
        self.last_recv_ms = self.last_send_ms = now
        self.mgr.conns.add(self)
        self.handshake_timer = self.mgr.loop.call_later(self.mgr.handshake_timeout_ms / 1000,
                                                        self._handshake_timeout)
        if self.pending:   # a HELLO written while TLS was still shaking hands
            self.flush()

    def _handshake_timeout(self) -> None:
        if not self.established and not self.closed:
            self.abort(f"no HELLO within {self.mgr.handshake_timeout_ms} ms")

    def get_buffer(self, sizehint: int):
        return self.mgr.read_view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self.mgr.read_view[:nbytes]))   # frames keep slices of it

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        mgr = self.mgr
        self.last_recv_ms = mgr.now_ms()
        mgr.bytes_received += len(data)
        try:
            frames = self.reader.feed(data)
            if not frames:
                return
            if self.established and mgr.links.get(self.sid) is self:
                deliver = mgr.on_message
                sid = self.sid
                for kind, payload in frames:
                    if self.closed:
                        break
                    if kind == DATA:
                        mgr.messages_received += 1
                        deliver(sid, payload)
                    elif kind == HELLO:
                        raise FrameError("second HELLO")
                if mgr.on_read_done is not None:
                    mgr.on_read_done()
                return
            for kind, payload in frames:
                if self.closed:
                    return
                if kind == DATA:
                    if not self.established:
                        raise FrameError("DATA before HELLO")
                    mgr.messages_received += 1
                    mgr._deliver(self, payload)
                elif kind == HELLO:
                    self._on_hello(payload)
                elif kind == PING:
                    if not self.established:
                        raise FrameError("PING before HELLO")
            if mgr.on_read_done is not None:
                mgr.on_read_done()
        except FrameError as e:
            mgr.garbage_disconnects += 1
            self.abort(f"protocol error: {e}")

    def _on_hello(self, payload: bytes) -> None:
        if self.established:
            raise FrameError("second HELLO")
        if len(payload) != _HELLO.size:
            raise FrameError(f"HELLO of {len(payload)} bytes")
        sid, digest, flags = _HELLO.unpack(payload)
        self.mgr._on_hello(self, sid, digest, flags)

    def connection_lost(self, exc) -> None:
        self._closed()

    def eof_received(self):
        return False

    # ours
    def write(self, data: bytes) -> None:
        self.pending.append(data)
        self.pending_bytes += len(data)

    def flush(self) -> None:
        if self.closed or not self.pending or self.transport is None:
            return
        data = b"".join(self.pending) if len(self.pending) > 1 else self.pending[0]
        self.pending.clear()
        self.pending_bytes = 0
        self.transport.write(data)
        self.last_send_ms = self.mgr.now_ms()
        if self.transport.get_write_buffer_size() > self.mgr.max_queue:
            self.mgr.overflow_disconnects += 1
            self.abort(f"send queue over {self.mgr.max_queue} bytes (peer not reading)")

    def abort(self, why: str) -> None:
        if self.closed:
            return
        log.warning("peer link %s (sid %s, %s): closing: %s", self.remote, self.sid, self.via, why)
        t = self.transport if self.transport is not None else self.raw
        if t is not None:
            t.abort()
        self._closed()

    def close_after_write(self) -> None:
        self.flush()
        if self.transport is not None:
            self.transport.close()

    def _closed(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.handshake_timer is not None:
            self.handshake_timer.cancel()
        self.mgr._on_closed(self)


class _Poke(asyncio.Protocol):
    """A one-frame connection: our HELLO with F_POKE, then close."""

    def __init__(self, hello: bytes, ended):
        self.hello = hello
        self.ended = ended

    def connection_made(self, transport) -> None:
        transport.write(self.hello)
        transport.close()
        self.ended(True)

    def connection_lost(self, exc) -> None:
        self.ended(False)


class PeerTransport:
    """All peer links of one server. Callbacks run on the event loop:
    on_connected(sid), on_disconnected(sid), on_message(sid, data)."""

    def __init__(self, my_sid: int, peers: dict[int, PeerAddr], *, digest: int,
                 on_connected: Callable[[int], None], on_disconnected: Callable[[int], None],
                 on_message: Callable[[int, bytes], None],
                 listen_host: str | None = None,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME, max_queue_bytes: int = DEFAULT_MAX_QUEUE,
                 idle_timeout_ms: int = 4000, ping_interval_ms: int = 250,
                 handshake_timeout_ms: int = 2000, backoff_min_ms: int = 5, backoff_max_ms: int = 500,
                 dynamic: bool = False, tls=None, on_read_done: Callable[[], None] | None = None,
                 driver_flushes: bool = False):
        if my_sid not in peers:
            raise ValueError(f"sid {my_sid} is not among the peers")
        self.sid = my_sid
        self.read_view = memoryview(bytearray(256 * 1024))   # every _Conn reads into it (get_buffer)
        self.peers = peers
        self.digest = digest
        # reconfigEnabled: servers join and leave at run time, so a peer we do not know yet (a
        # joiner, which dials us: new servers take higher ids) or whose membership digest differs
        # (its configuration is older or newer than ours) is taken on; the Zab peer decides.
        self.dynamic = dynamic
        self.tls = tls   # coord.aio.quorum_tls.QuorumTls, or None: plain TCP
        self.on_connected = on_connected
        self.on_disconnected = on_disconnected
        self.on_message = on_message
        # on_read_done(): after the messages of one read were delivered (the driver flushes then, once)
        self.on_read_done = on_read_done
        # driver_flushes: every send() comes from a driver that calls flush() itself before it
        # returns to the loop, so a send schedules no flush of its own (an empty turn per hop)
        self.driver_flushes = driver_flushes
        self.listen_host = listen_host
        self.max_frame = max_frame_bytes
        self.max_queue = max_queue_bytes
        self.idle_timeout_ms = idle_timeout_ms
        self.ping_interval_ms = ping_interval_ms
        self.handshake_timeout_ms = handshake_timeout_ms
        self.backoff_min_ms = backoff_min_ms
        self.backoff_max_ms = backoff_max_ms
        self.loop: asyncio.AbstractEventLoop | None = None
        self.links: dict[int, _Conn] = {}
        self.conns: set[_Conn] = set()
        self.servers: list[asyncio.base_events.Server] = []
        self.dialers: dict[int, asyncio.Task] = {}
        self.wake: dict[int, asyncio.Event] = {}
        self.flush_scheduled = False
        self.dirty: set[_Conn] = set()
        self.housekeeper: asyncio.Task | None = None
        self.running = False
        # counters (mntr, tests)
        self.messages_sent = 0
        self.messages_received = 0
        self.messages_dropped = 0
        self.bytes_received = 0
        self.garbage_disconnects = 0
        self.overflow_disconnects = 0
        self.links_made = 0
        self.pokes_sent = 0

    def now_ms(self) -> int:
        return int(self.loop.time() * 1000)

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.running = True
        me = self.peers[self.sid]
        host = self.listen_host if self.listen_host is not None else me.host
        for port, via in ((me.quorum_port, "quorum"), (me.election_port, "election")):
            factory = lambda via=via: _Conn(self, None, via)  # noqa: E731
            if self.tls is not None:
                factory = self.tls.accept(factory)
            srv = await self.loop.create_server(factory, host=host, port=port, reuse_address=True, backlog=64)
            self.servers.append(srv)
        for sid in self.peers:
            if sid < self.sid:
                self._ensure_dialer(sid)
        self.housekeeper = self.loop.create_task(self._housekeeping())
        for sid in self.peers:
            if sid > self.sid:
                self.loop.create_task(self._poke(sid))

    async def stop(self) -> None:
        self.running = False
        for t in list(self.dialers.values()):
            t.cancel()
        if self.housekeeper:
            self.housekeeper.cancel()
        for s in self.servers:
            s.close()
        for c in list(self.conns):
            t = c.transport if c.transport is not None else c.raw
            if t is not None:
                t.abort()
        self.links.clear()
        self.conns.clear()

    # -- the driver's side ------------------------------------------------------------------------
    def connected(self, sid: int) -> bool:
        c = self.links.get(sid)
        return c is not None and c.established and not c.closed

    def backlog(self, sid: int) -> int:
        """Bytes queued for sid that the kernel has not taken yet (ours and the transport's)."""
        c = self.links.get(sid)
        if c is None or c.closed:
            return 0
        return c.pending_bytes + (c.transport.get_write_buffer_size() if c.transport is not None else 0)

    def send(self, sid: int, data: bytes) -> bool:
        """Queue one message; False (and dropped) if there is no established link to sid."""
        c = self.links.get(sid)
        if c is None or not c.established or c.closed:
            self.messages_dropped += 1
            return False
        n = len(data)
        if n > self.max_frame:
            raise ValueError(f"message of {n} bytes exceeds the peer frame bound {self.max_frame}")
        pending = c.pending
        pending.append(_HDR.pack(VERSION, DATA, 0, n, zlib.crc32(data)))
        pending.append(data)
        c.pending_bytes += n + HDR_SIZE
        self.messages_sent += 1
        if c not in self.dirty:
            self.dirty.add(c)
            if not self.flush_scheduled and not self.driver_flushes:
                self.flush_scheduled = True
                self.loop.call_soon(self.flush)
        return True

    def connect(self, sid: int) -> None:
        """The Zab peer wants a link to sid: re-dial at once (higher sid) or poke it (lower sid)."""
        if sid == self.sid or sid not in self.peers or not self.running or self.connected(sid):
            return
        if sid < self.sid:
            self._ensure_dialer(sid)
            self.wake[sid].set()
        else:
            self.loop.create_task(self._poke(sid))

    def disconnect(self, sid: int, why: str = "closed by the Zab peer") -> None:
        """Close the link to sid (on_disconnected follows, from the event loop, not from here)."""
        c = self.links.get(sid)
        if c is not None and not c.closed:
            self.loop.call_soon(c.abort, why)

    def _mark(self, c: _Conn) -> None:
        self.dirty.add(c)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    async def drain(self, timeout_s: float) -> None:
        """Before a planned exit: wait (at most timeout_s) until every queued message is with the
        kernel, so that the last ones (a leader's HANDOFF) are not lost when the links are torn down."""
        self.flush()
        deadline = self.loop.time() + timeout_s
        while self.loop.time() < deadline:
            busy = [c for c in self.conns if not c.closed and c.transport is not None
                    and (c.pending or c.transport.get_write_buffer_size())]
            if not busy:
                return
            await asyncio.sleep(0.005)

    def flush(self) -> None:
        self.flush_scheduled = False
        dirty = self.dirty
        self.dirty = set()
        for c in dirty:
            c.flush()

    # -- dialling ---------------------------------------------------------------------------------
    def _ensure_dialer(self, sid: int) -> None:
        t = self.dialers.get(sid)
        if t is None or t.done():
            self.wake.setdefault(sid, asyncio.Event())
            self.dialers[sid] = self.loop.create_task(self._dial_loop(sid))

    async def _dial_loop(self, sid: int) -> None:
        """Keep a link to a lower sid; back off between failures, wake early when poked."""
        backoff = self.backoff_min_ms
        ev = self.wake[sid]
        addr = self.peers[sid]
        while self.running:
            c = self.links.get(sid)
            if c is not None and not c.closed:
                ev.clear()
                await ev.wait()
                backoff = self.backoff_min_ms
                continue
            ev.clear()
            conn = _Conn(self, sid, "quorum")
            try:
                conn.raw, _ = await asyncio.wait_for(
                    self.loop.create_connection(self._dial_factory(lambda: conn, sid, conn._closed),
                                                addr.host, addr.quorum_port),
                    self.handshake_timeout_ms / 1000)
            except (OSError, asyncio.TimeoutError) as e:
                log.debug("dial sid %d at %s:%d failed: %s", sid, addr.host, addr.quorum_port, e)
                try:
                    await asyncio.wait_for(ev.wait(), backoff * random.uniform(0.5, 1.0) / 1000)
                    backoff = self.backoff_min_ms
                except asyncio.TimeoutError:
                    backoff = min(self.backoff_max_ms, backoff * 2)
                continue
            self.conns.add(conn)
            self.links[sid] = conn
            conn.write(encode_hello(self.sid, self.digest))
            conn.flush()
            # wait until this connection dies, then go round again (after a short pause if it
            # never got established: the other side is not accepting us yet)
            while not conn.closed and self.running:
                ev.clear()
                try:
                    await asyncio.wait_for(ev.wait(), 0.5)
                except asyncio.TimeoutError:
                    pass
            if not conn.established or self.now_ms() - conn.last_recv_ms > 1000:
                try:
                    await asyncio.wait_for(ev.wait(), backoff * random.uniform(0.5, 1.0) / 1000)
                    backoff = self.backoff_min_ms
                except asyncio.TimeoutError:
                    backoff = min(self.backoff_max_ms, backoff * 2)
            else:
                backoff = self.backoff_min_ms

    def _dial_factory(self, make, sid: int, on_lost):
        return make if self.tls is None else self.tls.dial(make, self.peers[sid].host, on_lost, sid)

    async def _poke(self, sid: int) -> None:
        """Ask a higher sid to dial us (through its election port)."""
        addr = self.peers[sid]
        done = self.loop.create_future()

        def ended(ok: bool = False) -> None:
            if not done.done():
                done.set_result(ok)
        hello = encode_hello(self.sid, self.digest, F_POKE)
        try:
            raw, _ = await asyncio.wait_for(
                self.loop.create_connection(self._dial_factory(lambda: _Poke(hello, ended), sid, ended),
                                            addr.host, addr.election_port),
                self.handshake_timeout_ms / 1000)
        except (OSError, asyncio.TimeoutError):
            return
        try:
            if await asyncio.wait_for(done, self.handshake_timeout_ms / 1000):
                self.pokes_sent += 1
        except asyncio.TimeoutError:
            raw.abort()

    # -- events from connections ------------------------------------------------------------------
    def update_peers(self, peers: dict[int, PeerAddr]) -> None:
        """A new configuration: servers it names can be dialled; links to servers it dropped close."""
        for sid in list(self.peers):
            if sid != self.sid and sid not in peers:
                del self.peers[sid]
                t = self.dialers.pop(sid, None)
                if t is not None:
                    t.cancel()
                self.disconnect(sid, "no longer in the configuration")
        for sid, a in peers.items():
            if sid != self.sid:
                self.peers[sid] = a

    def _on_hello(self, c: _Conn, sid: int, digest: int, flags: int) -> None:
        if sid == self.sid or (sid not in self.peers and not self.dynamic):
            raise FrameError(f"HELLO from unknown sid {sid}")
        if digest != self.digest and not self.dynamic:
            raise FrameError(f"HELLO from sid {sid} of another ensemble (membership digest "
                             f"{digest:08x}, ours {self.digest:08x})")
        if c.outbound_sid is not None:
            # the acceptor's answer on a link we dialled
            if sid != c.outbound_sid or flags:
                raise FrameError(f"dialled sid {c.outbound_sid} but sid {sid} answered")
            self._establish(c, sid)
            return
        if flags & F_POKE:
            if sid < self.sid and sid in self.peers:
                c.sid = sid
                if not self.connected(sid):
                    self._ensure_dialer(sid)
                    self.wake[sid].set()
            c.close_after_write()
            c.closed = True
            self.conns.discard(c)
            if c.handshake_timer is not None:
                c.handshake_timer.cancel()
            return
        if sid < self.sid:
            raise FrameError(f"sid {sid} dialled us, but the higher sid dials (rule broken)")
        if c.via != "quorum":
            raise FrameError("a link must be made on the quorum port")
        c.sid = sid
        old = self.links.get(sid)
        if old is not None and old is not c:
            old.abort("replaced by a newer link from the same peer")
        self.links[sid] = c
        c.write(encode_hello(self.sid, self.digest))
        self._establish(c, sid)
        c.flush()

    def _establish(self, c: _Conn, sid: int) -> None:
        c.established = True
        c.sid = sid
        if c.handshake_timer is not None:
            c.handshake_timer.cancel()
        self.links_made += 1
        log.info("peer link to sid %d up (%s)", sid, c.remote)
        self.on_connected(sid)

    def _deliver(self, c: _Conn, payload: bytes) -> None:
        if self.links.get(c.sid) is c:
            self.on_message(c.sid, payload)

    def _on_closed(self, c: _Conn) -> None:
        self.conns.discard(c)
        self.dirty.discard(c)
        sid = c.sid
        if sid is not None and self.links.get(sid) is c:
            del self.links[sid]
            if c.established:
                log.info("peer link to sid %d down", sid)
                if self.running:
                    self.on_disconnected(sid)
            if sid < self.sid and sid in self.wake:
                self.wake[sid].set()

    # -- pings and idle links ---------------------------------------------------------------------
    async def _housekeeping(self) -> None:
        ping = encode_frame(PING)
        while self.running:
            await asyncio.sleep(self.ping_interval_ms / 1000)
            now = self.now_ms()
            for c in list(self.links.values()):
                if not c.established or c.closed:
                    continue
                if now - c.last_recv_ms > self.idle_timeout_ms:
                    c.abort(f"nothing received for {now - c.last_recv_ms} ms")
                    continue
                if now - c.last_send_ms >= self.ping_interval_ms:
                    c.write(ping)
                    self._mark(c)

    def stats(self) -> dict:
        return {"links": sorted(s for s in self.links if self.connected(s)),
                "messages_sent": self.messages_sent, "messages_received": self.messages_received,
                "messages_dropped": self.messages_dropped, "garbage_disconnects": self.garbage_disconnects,
                "overflow_disconnects": self.overflow_disconnects, "links_made": self.links_made}
