"""A lean pipelined ZooKeeper load client on raw sockets.

Why not kazoo or an asyncio client: one future (or one Python object graph) per request caps a
client near 50k ops/s on a 2-core machine, below what ZooKeeper serves, so the client would be what
gets measured. Here every request of a phase is encoded with coord.jute *before* the clock starts,
into one byte string per connection, so keeping D requests in flight is one slice and one send();
replies are parsed only as far as their 16-byte header (one struct call per reply: length, xid,
zxid, err). One epoll loop per process drives all of that process's connections; more processes
(see phases.py) spread connections over cores.
"""
from __future__ import annotations

import select
import socket
import struct
import time

from coord.jute import records as R

_LEN = struct.Struct(">i")
_REPLY = struct.Struct(">iiqi")        # frame length, xid, zxid, err
_REQ_HDR = struct.Struct(">iii")       # frame length, xid, type
OPEN_ACL = [R.ACL(31, R.Id("world", "anyone"))]

OPS = {"create": 1, "delete": 2, "exists": 3, "getData": 4, "setData": 5}


class BenchError(RuntimeError):
    pass


def parse_target(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"target must be HOST:PORT, got {s!r}")
    return host.strip("[]"), int(port)


def request_body(op: str, path: str, data: bytes) -> bytes:
    if op == "create":
        return R.CreateRequest(path, data, OPEN_ACL, 0).encode()
    if op == "getData":
        return R.GetDataRequest(path, False).encode()
    if op == "exists":
        return R.ExistsRequest(path, False).encode()
    if op == "setData":
        return R.SetDataRequest(path, data, -1).encode()
    if op == "delete":
        return R.DeleteRequest(path, -1).encode()
    raise ValueError(f"unknown op {op}")


def encode_batch(op: str, paths: list[str], data: bytes, first_xid: int) -> tuple[bytes, list[int]]:
    """All requests of one connection for one phase: (bytes, offsets) with offsets[i] where request i
    starts and offsets[-1] == len(bytes). Paths of equal length share one encoded template."""
    code = OPS[op]
    parts = []
    offsets = [0]
    pos = 0
    template = None
    for i, path in enumerate(paths):
        pb = path.encode()
        if template is None or len(pb) != template[1]:
            body = request_body(op, path, data)
            at = body.find(pb)
            template = (body[:at], len(pb), body[at + len(pb):], len(body))
        head, _, tail, blen = template
        frame = b"".join((_REQ_HDR.pack(8 + blen, first_xid + i, code), head, pb, tail))
        parts.append(frame)
        pos += len(frame)
        offsets.append(pos)
    return b"".join(parts), offsets


class Session:
    """One ZooKeeper session on a raw socket: handshake blocking, then driven by a Driver."""

    __slots__ = ("sock", "fd", "session_id", "timeout_ms", "xid", "blob", "offsets", "sent", "done",
                 "total", "rbuf", "expect_xid", "errors", "first_err", "outbuf", "t_end")

    def __init__(self, host: str, port: int, timeout_ms: int = 30000, connect_timeout: float = 10.0):
        sock = socket.create_connection((host, port), timeout=connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = R.ConnectRequest(0, 0, timeout_ms, 0, bytes(16)).encode() + b"\x00"
        sock.sendall(_LEN.pack(len(body)) + body)
        resp = recv_frame(sock)
        rsp, p = R.ConnectResponse._read(resp, 0)
        if rsp.sessionId == 0 or rsp.timeOut <= 0:
            sock.close()
            raise BenchError(f"{host}:{port} refused the session")
        self.sock = sock
        self.fd = sock.fileno()
        self.session_id = rsp.sessionId
        self.timeout_ms = rsp.timeOut
        self.xid = 1
        self.blob = b""
        self.offsets = [0]
        self.sent = self.done = self.total = 0
        self.rbuf = bytearray()
        self.expect_xid = 1
        self.errors = 0
        self.first_err = 0
        self.outbuf = b""
        self.t_end = 0.0

    # -- blocking single requests (set-up and latency) -----------------------------------------
    def call(self, op: str, path: str, data: bytes = b"") -> tuple[int, bytes]:
        """One request, wait for its reply; returns (err, reply frame)."""
        xid = self.xid
        self.xid += 1
        body = request_body(op, path, data)
        self.sock.sendall(_REQ_HDR.pack(8 + len(body), xid, OPS[op]) + body)
        while True:
            frame = recv_frame(self.sock)
            rxid, _, err = struct.unpack_from(">iqi", frame, 0)
            if rxid == xid:
                return err, frame
            if rxid not in (-1, -2):
                raise BenchError(f"reply xid {rxid}, expected {xid}")

    def latency(self, op: str, paths: list[str], data: bytes) -> list[int]:
        """Each request alone on the wire; returns per-request round trips in ns."""
        blob, offs = encode_batch(op, paths, data, self.xid)
        self.xid += len(paths)
        sock = self.sock
        clock = time.perf_counter_ns
        unpack = _REPLY.unpack_from
        out = []
        errors = 0
        buf = bytearray()
        for i in range(len(paths)):
            req = blob[offs[i]:offs[i + 1]]
            t0 = clock()
            sock.sendall(req)
            while True:
                if len(buf) >= 20:
                    ln = unpack(buf, 0)[0]
                    if len(buf) >= ln + 4:
                        break
                chunk = sock.recv(65536)
                if not chunk:
                    raise BenchError("connection closed by the server")
                buf += chunk
            t1 = clock()
            ln, xid, _, err = unpack(buf, 0)
            del buf[:ln + 4]
            if err:
                errors += 1
            out.append(t1 - t0)
        if errors:
            raise BenchError(f"{errors} of {len(paths)} {op} requests failed")
        return out

    # -- pipelined phases ------------------------------------------------------------------------
    def load(self, blob: bytes, offsets: list[int]) -> None:
        self.blob = blob
        self.offsets = offsets
        self.total = len(offsets) - 1
        self.sent = self.done = 0
        self.expect_xid = self.xid
        self.xid += self.total
        self.errors = 0
        self.first_err = 0

    def close(self) -> None:
        try:
            body = _REQ_HDR.pack(8, self.xid, -11)
            self.sock.setblocking(True)
            self.sock.settimeout(2.0)
            self.sock.sendall(body)
            recv_frame(self.sock)
        except OSError:
            pass
        finally:
            self.sock.close()


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise BenchError("connection closed by the server")
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket) -> bytes:
    (n,) = _LEN.unpack(recv_exact(sock, 4))
    return recv_exact(sock, n)


def drive(sessions: list[Session], depth: int) -> tuple[float, float]:
    """Run every session's loaded requests with `depth` in flight each; returns (start, end) on the
    monotonic clock. Counts errors and xid mismatches per session."""
    ep = select.epoll()
    by_fd = {}
    for s in sessions:
        s.sock.setblocking(False)
        by_fd[s.fd] = s
        ep.register(s.fd, select.EPOLLIN)
    active = 0
    unpack = _REPLY.unpack_from
    start = time.monotonic()
    for s in sessions:
        if s.total:
            active += 1
            k = min(depth, s.total)
            _send(s, k, ep)
    try:
        while active:
            for fd, ev in ep.poll():
                s = by_fd[fd]
                if ev & select.EPOLLOUT:
                    _flush(s, ep)
                if not ev & (select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP):
                    continue
                try:
                    data = s.sock.recv(1 << 20)
                except BlockingIOError:
                    continue
                if not data:
                    raise BenchError(f"server closed session 0x{s.session_id:x} after {s.done} replies")
                buf = s.rbuf
                buf += data
                n = len(buf)
                pos = 0
                got = 0
                exp = s.expect_xid
                while n - pos >= 20:
                    ln, xid, _, err = unpack(buf, pos)
                    end = pos + 4 + ln
                    if end > n:
                        break
                    if xid != exp:
                        if xid == -1 or xid == -2:  # a notification or a ping reply
                            pos = end
                            continue
                        raise BenchError(f"reply xid {xid}, expected {exp} (out of order)")
                    if err:
                        s.errors += 1
                        if not s.first_err:
                            s.first_err = err
                    exp += 1
                    got += 1
                    pos = end
                if pos:
                    del buf[:pos]
                s.expect_xid = exp
                if got:
                    s.done += got
                    if s.done >= s.total:
                        s.t_end = time.monotonic()
                        active -= 1
                    else:
                        k = s.total - s.sent
                        if k > got:
                            k = got
                        if k:
                            _send(s, k, ep)
        end = time.monotonic()
    finally:
        ep.close()
        for s in sessions:
            s.sock.setblocking(True)
    return start, end


def _send(s: Session, k: int, ep) -> None:
    a = s.sent
    s.sent = a + k
    data = s.blob[s.offsets[a]:s.offsets[a + k]]
    if s.outbuf:
        s.outbuf += data
        return
    try:
        n = s.sock.send(data)
    except BlockingIOError:
        n = 0
    if n < len(data):
        s.outbuf = data[n:]
        ep.modify(s.fd, select.EPOLLIN | select.EPOLLOUT)


def _flush(s: Session, ep) -> None:
    if s.outbuf:
        try:
            n = s.sock.send(s.outbuf)
        except BlockingIOError:
            return
        s.outbuf = s.outbuf[n:]
    if not s.outbuf:
        ep.modify(s.fd, select.EPOLLIN)


# -- worker processes (phases.Workers, openloop's pool, the session bench) -----------------------------
def worker_failed(pipe, e: BaseException) -> None:
    """A worker's last word: the error, so the parent reports it instead of hanging on the pipe."""
    try:
        pipe.send(("error", f"{type(e).__name__}: {e}"))
    except OSError:
        pass


def close_sockets(sessions) -> None:
    for s in sessions:
        try:
            s.sock.close()
        except OSError:
            pass


def close_workers(pipes, procs) -> None:
    """Ask every worker to close, wait a little for each answer, then reap (or kill) the processes."""
    for pipe in pipes:
        try:
            pipe.send(("close",))
        except OSError:
            pass
    for pipe in pipes:
        try:
            if pipe.poll(10):
                pipe.recv()
        except (OSError, EOFError):
            pass
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.kill()
            p.join()
