"""A pipelined side channel for bulk reads and fenced writes (the controller's failover load and its
thousands of per-partition multis).

kazoo sends one request per turn of its connection loop and hands every reply across threads, which
caps a session at a few thousand requests a second. Kafka's controller pipelines its batches; this
channel does the same with kazoo's own wire records: one extra session, no watches and no ephemerals,
requests written back to back in one buffer, replies read in order on the calling thread.

Why a second session is safe here: it only carries requests whose outcome does not depend on the
session — reads, and writes fenced by the /controller_epoch version check (or conditional on a
version). It connects to the server the main session is on and presents the main session's last
zxid, so it never reads older state than the main session has already seen. A connection loss
re-sends the unanswered requests after reconnecting (callers own the duplicate checks, as with
kazoo); the session itself holds nothing, so its expiry only means a new one.
"""
from __future__ import annotations

import random
import socket
import struct
import time
from typing import Any, Callable, Sequence

from kazoo.exceptions import ConnectionLoss
from kazoo.protocol.serialization import Connect, Ping, ReplyHeader, Transaction

_INT = struct.Struct("!i")
_REPLY = struct.Struct("!iqi")
PING_XID = -2
WATCH_XID = -1


class BulkChannel:
    def __init__(self, hosts: str, chroot: str, session_timeout_ms: int, connect_timeout_s: float = 10.0,
                 window: int = 5000, preferred: Callable[[], tuple[str, int] | None] | None = None,
                 last_zxid: Callable[[], int] | None = None):
        self.hosts = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1]) if ":" in h else 2181)
                      for h in hosts.split(",") if h]
        self.chroot = chroot
        self.session_timeout_ms = session_timeout_ms
        self.connect_timeout_s = connect_timeout_s
        self.window = window
        self.preferred = preferred
        self.last_zxid = last_zxid or (lambda: 0)
        self._sock: socket.socket | None = None
        self._peer: tuple[str, int] | None = None
        self._buf = bytearray()
        self._xid = 0
        self._last_io = 0.0
        self._negotiated_ms = session_timeout_ms
        self.zxid = 0

    # connection ---------------------------------------------------------------------------------

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def _candidates(self) -> list[tuple[str, int]]:
        hosts = list(self.hosts)
        random.shuffle(hosts)
        pref = self.preferred() if self.preferred else None
        if pref is not None:
            hosts.sort(key=lambda h: 0 if (h[1] == pref[1] and socket.gethostbyname(h[0]) == pref[0]) else 1)
        return hosts

    def _connect(self) -> None:
        deadline = time.monotonic() + self.connect_timeout_s
        last_err: Exception | None = None
        while time.monotonic() < deadline:
            for host, port in self._candidates():
                try:
                    s = socket.create_connection((host, port), timeout=self.connect_timeout_s)
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    req = Connect(0, max(self.zxid, self.last_zxid()), self.session_timeout_ms, 0, b"\x00" * 16, False)
                    body = req.serialize()
                    s.sendall(_INT.pack(len(body)) + body)
                    self._sock = s
                    self._peer = s.getpeername()[:2]
                    self._buf = bytearray()
                    frame = self._read_frame()
                    resp, _ = Connect.deserialize(frame, 0)
                    if resp.time_out <= 0:
                        raise ConnectionLoss("server refused the session (behind our zxid?)")
                    self._negotiated_ms = resp.time_out
                    self._last_io = time.monotonic()
                    return
                except (OSError, ConnectionLoss, struct.error) as e:
                    last_err = e
                    self.close()
            time.sleep(0.1)
        raise ConnectionLoss(f"bulk channel could not connect: {last_err}")

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self._sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise ConnectionLoss("connection closed by server")
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _read_frame(self) -> bytes:
        (n,) = _INT.unpack(self._read_exact(4))
        return self._read_exact(n)

    def _ensure(self) -> None:
        if self._sock is not None and self.preferred is not None:
            pref = self.preferred()
            if pref is not None and pref != self._peer:
                self.close()  # the main session moved to another server: follow it
        if self._sock is None:
            self._connect()
        elif (time.monotonic() - self._last_io) * 1000 > self._negotiated_ms / 3:
            # Idle past a ping interval: the session may be gone; a ping tells us cheaply.
            try:
                self._sock.settimeout(self._negotiated_ms / 1000)
                self._sock.sendall(_INT.pack(8) + _INT.pack(PING_XID) + _INT.pack(Ping.type))
                while True:
                    frame = self._read_frame()
                    xid, _, _ = _REPLY.unpack_from(frame, 0)
                    if xid == PING_XID:
                        break
            except (OSError, ConnectionLoss):
                self.close()
                self._connect()

    # requests -----------------------------------------------------------------------------------

    def _strip(self, path: str) -> str:
        if self.chroot and path.startswith(self.chroot):
            return path[len(self.chroot):] or "/"
        return path

    def run(self, requests: Sequence[Any]) -> list[tuple[int, Any]]:
        """Send kazoo request records (full server paths, chroot included); return (err, response)
        per request in order, paths in responses relative to the chroot. err 0 = success; a failed
        multi is err 0 with per-op exceptions, as kazoo reports it."""
        results: list[tuple[int, Any] | None] = [None] * len(requests)
        pending = list(range(len(requests)))
        attempts = 0
        while pending:
            try:
                self._ensure()
                self._sock.settimeout(self._negotiated_ms / 1000 * 2 / 3)
                done = self._pipeline(requests, pending, results)
                pending = pending[done:]
            except (OSError, ConnectionLoss, struct.error):
                self.close()
                attempts += 1
                if attempts > 20:
                    raise ConnectionLoss("bulk channel kept losing its connection")
                pending = [i for i in pending if results[i] is None]
        return results  # type: ignore[return-value]

    def _pipeline(self, requests: Sequence[Any], pending: list[int], results: list) -> int:
        done = 0
        for start in range(0, len(pending), self.window):
            window = pending[start:start + self.window]
            out = bytearray()
            xids = {}
            for i in window:
                self._xid = (self._xid % 2_000_000_000) + 1
                xids[self._xid] = i
                body = _INT.pack(self._xid) + _INT.pack(requests[i].type) + self._serialize(requests[i])
                out += _INT.pack(len(body)) + body
            self._sock.sendall(out)
            got = 0
            while got < len(window):
                frame = self._read_frame()
                xid, zxid, err = _REPLY.unpack_from(frame, 0)
                if xid in (PING_XID, WATCH_XID):
                    continue
                i = xids[xid]
                if zxid > 0:
                    self.zxid = zxid
                if err == 0:
                    resp = requests[i].deserialize(frame, _REPLY.size)
                    results[i] = (0, self._unchroot(requests[i], resp))
                else:
                    results[i] = (err, None)
                got += 1
            self._last_io = time.monotonic()
            done += len(window)
        return done

    def _serialize(self, request: Any) -> bytes:
        return bytes(request.serialize())

    def _unchroot(self, request: Any, resp: Any) -> Any:
        if isinstance(request, Transaction):
            out = []
            for r in resp:
                out.append(self._strip(r) if isinstance(r, str) else r)
            return out
        if isinstance(resp, str):
            return self._strip(resp)
        return resp
