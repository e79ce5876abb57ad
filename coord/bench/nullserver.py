"""A do-nothing ZooKeeper server: the bench client's self-check.

It accepts the session handshake and answers every request with a bare success header (same xid,
zxid 0, err 0) and no body, doing no other work. Whatever throughput the bench client reaches
against it is the client's own ceiling on this machine; it must sit well above what the real
servers do, or the bench would be measuring itself. Raw sockets and epoll, one process per
SO_REUSEPORT listener.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import select
import signal
import socket
import struct

from coord.jute import records as R

_LEN = struct.Struct(">i")
_XID = struct.Struct(">i")
_ZERO12 = bytes(12)
_HDR16 = _LEN.pack(16)


def _connect_reply(req: bytes) -> bytes:
    body = R.ConnectResponse(0, 30000, 0x1234567, bytes(16)).encode()
    if len(req) > 44:  # trailing read-only flag present
        body += b"\x00"
    return _LEN.pack(len(body)) + body


def _serve(sock: socket.socket) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ep = select.epoll()
    ep.register(sock.fileno(), select.EPOLLIN)
    conns: dict[int, list] = {}  # fd -> [socket, buffer, handshaken]
    unpack = _LEN.unpack_from
    while True:
        for fd, ev in ep.poll():
            if fd == sock.fileno():
                try:
                    c, _ = sock.accept()
                except BlockingIOError:
                    continue
                c.setblocking(False)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conns[c.fileno()] = [c, bytearray(), False]
                ep.register(c.fileno(), select.EPOLLIN)
                continue
            st = conns.get(fd)
            if st is None:
                continue
            c, buf = st[0], st[1]
            try:
                data = c.recv(1 << 20)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                ep.unregister(fd)
                c.close()
                del conns[fd]
                continue
            buf += data
            n = len(buf)
            pos = 0
            out = []
            while n - pos >= 4:
                (ln,) = unpack(buf, pos)
                end = pos + 4 + ln
                if end > n:
                    break
                if not st[2]:
                    st[2] = True
                    out.append(_connect_reply(bytes(buf[pos + 4:end])))
                else:
                    out.append(_HDR16)
                    out.append(buf[pos + 4:pos + 8])
                    out.append(_ZERO12)
                pos = end
            if pos:
                del buf[:pos]
            if out:
                try:
                    c.sendall(b"".join(out))
                except BlockingIOError:
                    c.setblocking(True)
                    c.sendall(b"".join(out))
                    c.setblocking(False)
                except OSError:
                    pass


class NullServer:
    """Start `procs` do-nothing server processes on one port (127.0.0.1, SO_REUSEPORT)."""

    def __init__(self, procs: int = 1, port: int = 0):
        self.procs = max(1, procs)
        self.port = port
        self._children: list[mp.Process] = []

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "NullServer":
        ctx = mp.get_context("fork")
        socks = []
        for i in range(self.procs):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(("127.0.0.1", self.port))
            self.port = s.getsockname()[1]
            s.listen(1024)
            s.setblocking(False)
            socks.append(s)
        for s in socks:
            p = ctx.Process(target=_serve, args=(s,), daemon=True)
            p.start()
            self._children.append(p)
        for s in socks:
            s.close()
        return self

    def pids(self) -> list[int]:
        return [p.pid for p in self._children]

    def stop(self) -> None:
        for p in self._children:
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)
        for p in self._children:
            p.join(5)
        self._children = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
