"""The observer's link to a ZooKeeper leader's quorum port, received straight into the observer's
PacketStream.

Why not an asyncio StreamReader: a SNAP is the leader's whole tree on this link (188 MB for 1M
znodes), and each StreamReader.read makes a bytes object, after copying the bytes through the
reader's own bytearray (appended to, cut at its front). On PyPy those are large objects, freed
only at the next major collection: ~3x the stream in garbage, which the join then paid for in
memory or in full collections. As a BufferedProtocol the socket is read with recv_into into the
PacketStream's reused buffer (coord.jute.quorum.PacketStream.room): no bytes object per read.

It also stands in for the StreamReader/StreamWriter pair where the driver needs one: readexactly
(quorum SASL's exchange before the first packet), write, drain, close.
"""
from __future__ import annotations

import asyncio

from coord.jute.quorum import PacketStream

READ_SIZE = 1 << 18          # bytes offered to each recv_into
HIGH_WATER = 8 << 20         # unread bytes at which reading pauses until the observer has read them


class LeaderLink(asyncio.BufferedProtocol):
    def __init__(self, max_buffer: int):
        self.stream = PacketStream(max_buffer)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.error: Exception | None = None
        self.arrived = 0               # bytes received since the last `wait`
        self._waiter: asyncio.Future | None = None
        self._paused = False

    # -- asyncio's side -------------------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int):
        return self.stream.room(max(sizehint, READ_SIZE))

    def buffer_updated(self, nbytes: int) -> None:
        self.stream.filled(nbytes)
        self.arrived += nbytes
        if not self._paused and self.stream.unread() >= HIGH_WATER:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.error = exc
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    # -- the driver's side ----------------------------------------------------------------------------
    def adopt(self, stream: PacketStream) -> None:
        """Receive into `stream` from now on (the observer's, made at link_up); what arrived and is
        unread moves with it."""
        old = self.stream
        if old is not stream:
            if old.unread():
                stream.feed(old.buf[old.pos:old.end])
            self.stream = stream

    async def wait(self, timeout: float | None) -> int:
        """Bytes received since the last call, once there are any; 0 once the link is closed.
        asyncio.TimeoutError after `timeout` seconds of silence."""
        if self._paused:
            self._paused = False
            self.transport.resume_reading()
        if not self.arrived and not self.closed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._waiter, timeout)
            finally:
                self._waiter = None
        n, self.arrived = self.arrived, 0
        return n

    async def readexactly(self, n: int) -> bytes:
        s = self.stream
        while s.unread() < n:
            if self.closed:
                raise asyncio.IncompleteReadError(bytes(s.buf[s.pos:s.end]), n)
            await self.wait(None)
        p = s.pos
        s.pos = p + n
        return bytes(s.buf[p:p + n])

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    async def drain(self) -> None:
        """Nothing to wait for: what the observer writes is small (acks, pings, forwarded requests)."""

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def close(self) -> None:
        self.transport.close()
