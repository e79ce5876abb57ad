"""`coord bench-sessions`: many concurrent sessions on a 3-node ensemble, coord against ZooKeeper 3.8.

Each of `sessions` sessions (a few worker processes, thousands of raw-socket connections each,
spread round-robin over every member) sets an exists watch on its own znode and a data watch on one
shared znode, then pings every third of its negotiated timeout (as ZooKeeper's clients do) for
`hold_s` seconds. Measured: the connect rate (sessions established per second, all workers
together), server memory per session (RSS of all members after, minus before, over the sessions),
sessions the server closed or expired although the client kept pinging (false expiries: must be
0), and the fan-out: one setData of the shared znode, and the time until the last of the
`sessions` notifications has arrived.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import select
import shutil
import socket
import struct
import tempfile
import time
from collections import deque
from pathlib import Path

import click

from coord.bench.client import _LEN, _REQ_HDR, BenchError, Session, close_sockets, worker_failed
from coord.bench.launch import rss_mib
from coord.jute import records as R

_HDR = struct.Struct(">iiqi")
_EVENT = struct.Struct(">ii")   # WatcherEvent type, state
NODE_DATA_CHANGED = 3


class _S:
    __slots__ = ("sock", "fd", "session_id", "timeout_ms")

    def __init__(self, sock, session_id: int, timeout_ms: int):
        self.sock, self.fd, self.session_id, self.timeout_ms = sock, sock.fileno(), session_id, timeout_ms


PING = _REQ_HDR.pack(8, -2, 11)
LOOPBACK_SOURCES = 16   # 127.0.0.1-16: with 100,000 sessions one source address runs out of ports


def raise_fd_limit(needed: int) -> int:
    """Raise this process's open-file limit (and so the servers' started after it) to `needed` where
    allowed (root may raise the hard limit up to fs.nr_open); returns the soft limit now."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    try:
        with open("/proc/sys/fs/nr_open") as f:
            cap = int(f.read())
    except (OSError, ValueError):
        cap = hard
    want = min(needed, cap)
    for limits in ((want, max(hard, want)), (min(want, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
            return limits[0]
        except (ValueError, OSError):
            continue
    return soft


def _ping_due(due: deque, interval: float) -> int:
    """Ping every session whose turn has come (due: (time, session) in time order); returns pings sent."""
    now = time.monotonic()
    n = 0
    while due and due[0][0] <= now:
        _, s = due.popleft()
        try:
            s.sock.send(PING)
            n += 1
        except OSError:
            continue
        due.append((now + interval, s))
    return n


def connect_many(targets: list[tuple[str, int]], timeout_ms: int, due: deque, interval: float,
                 window: int = 256) -> tuple[list[_S], int]:
    """Handshakes with up to `window` in flight (a connect rate, not one round trip after another);
    sessions already made are pinged meanwhile. Returns (sessions, failures)."""
    body = R.ConnectRequest(0, 0, timeout_ms, 0, bytes(16)).encode() + b"\x00"
    hello = _LEN.pack(len(body)) + body
    ep = select.epoll()
    pending: dict[int, list] = {}
    done: list[_S] = []
    failed = 0
    i = 0
    try:
        while i < len(targets) or pending:
            while i < len(targets) and len(pending) < window:
                sock = socket.socket()
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if targets[i][0] == "127.0.0.1":   # ~28k ephemeral ports per source address and target
                    sock.bind((f"127.0.0.{1 + i % LOOPBACK_SOURCES}", 0))
                try:
                    sock.connect(targets[i])
                except BlockingIOError:
                    pass
                pending[sock.fileno()] = [sock, bytearray(), False]
                ep.register(sock.fileno(), select.EPOLLOUT | select.EPOLLIN)
                i += 1
            for fd, ev in ep.poll(0.2):
                ent = pending[fd]
                sock, buf = ent[0], ent[1]
                ok = not ev & (select.EPOLLERR | select.EPOLLHUP) or ev & select.EPOLLIN
                if ok and not ent[2] and ev & select.EPOLLOUT:
                    ok = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 and sock.send(hello) == len(hello)
                    ent[2] = True
                    ep.modify(fd, select.EPOLLIN)
                elif ok and ev & select.EPOLLIN:
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    buf += data
                    ok = bool(data)
                    if ok and len(buf) >= 4 and len(buf) >= 4 + _LEN.unpack_from(buf, 0)[0]:
                        rsp, _ = R.ConnectResponse._read(bytes(buf[4:]), 0)
                        ep.unregister(fd)
                        del pending[fd]
                        if rsp.sessionId and rsp.timeOut > 0:
                            s = _S(sock, rsp.sessionId, rsp.timeOut)
                            done.append(s)
                            due.append((time.monotonic() + interval, s))
                        else:
                            failed += 1
                            sock.close()
                        continue
                if not ok:
                    ep.unregister(fd)
                    del pending[fd]
                    failed += 1
                    sock.close()
            _ping_due(due, interval)
    finally:
        ep.close()
    return done, failed


def _worker(pipe, targets: list[tuple[str, int]], timeout_ms: int, root: str, first_id: int) -> None:
    sessions: list[_S] = []
    try:
        t0 = time.monotonic()
        due: deque = deque()
        interval = max(0.2, timeout_ms / 3000.0)   # re-set from the negotiated timeout below
        sessions, failed = connect_many(targets, timeout_ms, due, interval)
        t1 = time.monotonic()
        pipe.send(("connected", t0, t1, len(sessions), failed))
        by_fd = {s.fd: s for s in sessions}
        ep = select.epoll()
        for s in sessions:
            s.sock.setblocking(False)
            ep.register(s.fd, select.EPOLLIN)
        ep.register(pipe.fileno(), select.EPOLLIN)
        pending = {}
        for i, s in enumerate(sessions):   # an exists watch of its own, a data watch on the shared znode
            own = R.ExistsRequest(f"{root}/s{first_id + i:06d}", True).encode()
            hot = R.GetDataRequest(f"{root}/hot", True).encode()
            s.sock.sendall(_REQ_HDR.pack(8 + len(own), 1, 3) + own + _REQ_HDR.pack(8 + len(hot), 2, 4) + hot)
            pending[s.fd] = 2
        bufs = {fd: bytearray() for fd in by_fd}
        if sessions:
            interval = max(0.2, min(s.timeout_ms for s in sessions) / 3000.0)
        closed = 0
        watched = 0
        notified = 0
        last_notice = 0.0
        watch_errors = 0
        pings = 0
        reported_watched = False
        while True:
            pings += _ping_due(due, interval)
            if not reported_watched and watched + watch_errors >= 2 * len(sessions) - 2 * closed:
                reported_watched = True
                pipe.send(("watched", watched, watch_errors))
            for fd, _ev in ep.poll(0.05):
                if fd == pipe.fileno():
                    cmd = pipe.recv()
                    if cmd[0] == "status":
                        pipe.send(("status", closed, notified, last_notice, pings))
                        continue
                    pipe.send(("stopped", closed, notified, last_notice, pings))
                    return
                s = by_fd[fd]
                try:
                    data = s.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    closed += 1
                    ep.unregister(fd)
                    continue
                buf = bufs[fd]
                buf += data
                pos = 0
                while len(buf) - pos >= 20:
                    ln, xid, _zxid, err = _HDR.unpack_from(buf, pos)
                    if len(buf) - pos - 4 < ln:
                        break
                    if xid == -1:
                        etype, _state = _EVENT.unpack_from(buf, pos + 20)
                        if etype == NODE_DATA_CHANGED:
                            notified += 1
                            last_notice = time.monotonic()
                    elif xid in (1, 2):
                        if (xid == 1 and err in (0, -101)) or (xid == 2 and err == 0):
                            watched += 1
                        else:
                            watch_errors += 1
                    pos += 4 + ln
                del buf[:pos]
    except BaseException as e:  # report, do not hang the parent
        worker_failed(pipe, e)
    finally:
        close_sockets(sessions)


def _recv(pipe, kind: str, timeout: float):
    if not pipe.poll(timeout):
        raise BenchError(f"a session worker did not answer {kind!r} within {timeout:.0f}s")
    msg = pipe.recv()
    if msg[0] == "error":
        raise BenchError(f"session worker: {msg[1]}")
    if msg[0] != kind:
        raise BenchError(f"session worker answered {msg[0]!r}, expected {kind!r}")
    return msg


def measure(targets: list[tuple[str, int]], pids: list[int], sessions: int, procs: int, timeout_ms: int,
            hold_s: float, log) -> dict:
    """The scenario against running servers (targets: every member's client address)."""
    host, port = targets[0]
    admin = Session(host, port)
    root = f"/coord-sessions-{os.getpid()}-{int(time.time())}"
    try:
        for path, data in ((root, b""), (f"{root}/hot", b"0")):
            err, _ = admin.call("create", path, data)
            if err:
                raise BenchError(f"cannot create {path}: error {err}")
    finally:
        admin.close()
    rss0 = rss_mib(pids)
    ctx = mp.get_context("fork")
    conns = [targets[i % len(targets)] for i in range(sessions)]
    procs = max(1, min(procs, sessions))
    chunks = [(conns[i::procs], i) for i in range(procs)]
    workers, pipes = [], []
    first = 0
    try:
        for tg, _i in chunks:
            a, b = ctx.Pipe()
            w = ctx.Process(target=_worker, args=(b, tg, timeout_ms, root, first), daemon=True)
            first += len(tg)
            w.start()
            b.close()
            workers.append(w)
            pipes.append(a)
        conn = [_recv(p, "connected", 600) for p in pipes]
        t_first, t_last = min(c[1] for c in conn), max(c[2] for c in conn)
        n = sum(c[3] for c in conn)
        connect_failed = sum(c[4] for c in conn)
        log(f"{n} sessions in {t_last - t_first:.2f} s ({n / (t_last - t_first):,.0f}/s), {connect_failed} failed")
        watch = [_recv(p, "watched", 600) for p in pipes]
        rss1 = rss_mib(pids)
        log(f"watches set: {sum(w[1] for w in watch)} ({sum(w[2] for w in watch)} errors); RSS {rss0:.0f} -> "
            f"{rss1:.0f} MiB over {len(pids)} server(s); holding {hold_s:.0f} s")
        time.sleep(hold_s)
        for p in pipes:
            p.send(("status",))
        held = [_recv(p, "status", 60) for p in pipes]
        closed_hold = sum(h[1] for h in held)
        s = Session(host, port)
        try:
            t_set = time.monotonic()
            err, _ = s.call("setData", f"{root}/hot", b"1")
            if err:
                raise BenchError(f"setData of the shared znode failed: error {err}")
            alive = n - closed_hold
            deadline = time.monotonic() + 120
            while True:
                for p in pipes:
                    p.send(("status",))
                st = [_recv(p, "status", 60) for p in pipes]
                got = sum(x[2] for x in st)
                if got >= alive or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            s.call("delete", f"{root}/hot")
            s.call("delete", root)
        finally:
            s.close()
        fanout = max(x[3] for x in st) - t_set if got else None
        for p in pipes:
            p.send(("stop",))
        fin = [_recv(p, "stopped", 60) for p in pipes]
        return {"sessions": n, "connect_failed": connect_failed, "connect_s": round(t_last - t_first, 3),
                "connect_per_s": round(n / (t_last - t_first)) if t_last > t_first else None,
                "rss_before_mib": round(rss0), "rss_after_mib": round(rss1),
                "kib_per_session": round((rss1 - rss0) * 1024 / n, 1) if n else None,
                "watches": sum(w[1] for w in watch), "watch_errors": sum(w[2] for w in watch),
                "closed_while_pinging": closed_hold, "pings": sum(f[4] for f in fin),
                "notified": got, "fanout_ms": None if fanout is None else round(fanout * 1000, 1),
                "loadavg": os.getloadavg()[0]}
    finally:
        for w in workers:
            w.join(10)
            if w.is_alive():
                w.kill()
                w.join()


def run(systems: tuple[str, ...], sessions: int, procs: int, timeout_ms: int, hold_s: float, members: int,
        workdir: str | None, log) -> dict:
    from coord.bench.ensemble import LocalEnsemble
    from coord.bench.launch import zookeeper_available
    if "zookeeper" in systems and not zookeeper_available():
        raise RuntimeError("Apache ZooKeeper is not installed (apt-get install zookeeper)")
    limit = raise_fd_limit(sessions + 4096)   # each member may hold all sessions' sockets
    if limit < sessions // max(1, procs) + 256:
        raise RuntimeError(f"open-file limit {limit} is too low for {sessions} sessions over {procs} processes")
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="coord-sessions-"))
    out = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "members": members,
           "timeout_ms": timeout_ms, "hold_s": hold_s, "results": {}}
    try:
        for name in systems:
            ens = LocalEnsemble(base / name, members, name, force_sync=True)
            try:
                ens.start_all()
                targets = [("127.0.0.1", s.client_port) for s in ens.servers.values()]
                log(f"{name}: {members} member(s) serving")
                out["results"][name] = measure(targets, ens.pids(), sessions, procs, timeout_ms, hold_s, log)
                log(f"{name}: {out['results'][name]}")
            finally:
                ens.stop()
    finally:
        if not workdir:
            shutil.rmtree(base, ignore_errors=True)
    return out


@click.command("bench-sessions")
@click.option("--sessions", default=10_000, show_default=True)
@click.option("--procs", default=4, show_default=True, help="Client processes the sessions are spread over.")
@click.option("--timeout-ms", default=10_000, show_default=True, help="Session timeout asked for.")
@click.option("--hold", default=60.0, show_default=True, help="Seconds the sessions are held, pinging.")
@click.option("--members", default=3, show_default=True, help="Ensemble size (1: standalone-like single member).")
@click.option("--only", type=click.Choice(["coord", "zookeeper", "both"]), default="both", show_default=True)
@click.option("--workdir", default=None, type=click.Path(file_okay=False))
def sessions_command(sessions, procs, timeout_ms, hold, members, only, workdir) -> None:
    """Many sessions with a watch each and pings, then one znode watched by all: coord vs ZooKeeper 3.8."""
    if sessions < 1 or procs < 1:
        raise click.BadParameter("--sessions and --procs must be at least 1")
    systems = ("coord", "zookeeper") if only == "both" else (only,)
    try:
        out = run(systems, sessions, procs, timeout_ms, hold, members, workdir, lambda m: click.echo(m, err=True))
    except (BenchError, OSError, RuntimeError, TimeoutError) as e:
        raise click.ClickException(str(e))
    click.echo(json.dumps(out, indent=2))
