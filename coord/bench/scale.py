"""`coord bench-scale`: coord and real ZooKeeper 3.8 ensembles (3 nodes unless --members) at scale, one
system at a time, same run, same machine, same client (issue 17, "Scale").

Three measurements:
- sessions: N sessions spread over all members by a few client processes (each holds thousands of
  raw-protocol connections on one asyncio loop; kazoo is too heavy per session), each with one
  data watch on a shared znode, pinging at 1/3 of the negotiated session timeout, held for a while.
  Counted: false expiries (a session the client kept alive that the server closed or expired),
  connect rate, server RSS per session (sum over members, after minus before, / N);
- fan-out: one setData on that znode; the time until the last of the N notifications arrives, and
  every session's notification count (must be exactly 1). A ZooKeeper session holds one data watch
  per path, so W watches on one znode means W sessions: the fan-out runs with --watches sessions.
  Each process (a member, a client holder) holds at most its hard open-file limit of sockets, so
  100,000 sessions need enough members (--members) and holders (--procs): checked before starting;
- SNAP: Z znodes, then a follower is stopped, its dataDir wiped (myid kept) and started again; the
  time until it serves with the leader's zxid, the leader's p99 for a light one-at-a-time setData
  load before and during that sync, and the synced follower's znode count against the leader's.
"""
from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import random
import resource
import shutil
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from coord.bench import phases as ph
from coord.bench.client import _REQ_HDR, OPS, BenchError, Session, request_body
from coord.bench.ensemble import LocalEnsemble, four_letter, srvr
from coord.jute import records as R

_LEN = struct.Struct(">i")
_HDR = struct.Struct(">iqi")           # xid, zxid, err (after the length)
PING = _REQ_HDR.pack(8, -2, 11)
NODE_DATA_CHANGED = 3
SYSTEMS = ("coord", "zookeeper")


@dataclass
class ScaleConfig:
    sessions: int = 10_000
    members: int = 3
    watches: int = 100_000
    znodes: int = 1_000_000
    hold_s: float = 60.0
    timeout_ms: int = 30_000
    procs: int = 4
    connect_concurrency: int = 512
    holder_nice: int = -5       # the holders ahead of the servers: a late ping is then not the client's
    light_rate: float = 200.0
    zk_heap_mb: int = 3072
    parts: tuple[str, ...] = ("sessions", "fanout", "snap")
    systems: tuple[str, ...] = SYSTEMS
    force_sync: bool = True
    server_log_level: str = "warning"


# -- the session holders (client processes) ---------------------------------------------------

class _Conn(asyncio.Protocol):
    """One session: handshake, one exists-watch on the hot znode, pings, notifications counted."""

    def __init__(self, w: "_Holder", done: asyncio.Future, member: int):
        self.w, self.done, self.member = w, done, member
        self.t_start = time.monotonic()  # the connect began; t_resp: its ConnectResponse; t_lost: closed
        self.t_resp = self.t_ready = self.t_first_ping = self.t_lost = 0.0
        self.tr = None
        self.buf = bytearray()
        self.sid = 0
        self.timeout_ms = 0
        self.stage = 0            # 0 handshake, 1 watch set, 2 check sent, 3 check answered
        self.notes = 0
        self.t_note = 0.0
        self.next_ping = 0.0
        self.last_ping = 0.0
        self.max_gap = 0.0
        self.pings = 0
        self.lost = False
        self.check_err = None

    def connection_made(self, tr):
        self.tr = tr
        body = R.ConnectRequest(0, 0, self.w.timeout_ms, 0, bytes(16)).encode() + b"\x00"
        tr.write(_LEN.pack(len(body)) + body)

    def data_received(self, data):
        buf = self.buf
        buf += data
        pos = 0
        while len(buf) - pos >= 4:
            (n,) = _LEN.unpack_from(buf, pos)
            if len(buf) - pos - 4 < n:
                break
            self._frame(bytes(buf[pos + 4:pos + 4 + n]))
            pos += 4 + n
        if pos:
            del buf[:pos]

    def _frame(self, f: bytes):
        if self.stage == 0:
            rsp, _ = R.ConnectResponse._read(f, 0)
            if rsp.sessionId == 0 or rsp.timeOut <= 0:
                self._fail("session refused")
                return
            self.sid, self.timeout_ms = rsp.sessionId, rsp.timeOut
            self.t_resp = time.monotonic()
            body = request_body("exists", self.w.path, b"")
            body = body[:-1] + b"\x01"                        # watch=true
            self.tr.write(_REQ_HDR.pack(8 + len(body), 1, OPS["exists"]) + body)
            # The client's last word to the server is this request, not its reply: the gaps that
            # keep a session alive run from send to send (a holder late to ping after the reply
            # was counted as a false expiry when measured from the reply)
            self.last_ping = self.t_resp
            self.stage = 1
            return
        xid, _, err = _HDR.unpack_from(f, 0)
        now = time.monotonic()
        if xid == -1:
            ev, _ = R.WatcherEvent._read(f, 16)
            if ev.type == NODE_DATA_CHANGED and ev.path == self.w.path:
                self.notes += 1
                self.t_note = now
        elif xid == 1:
            if err:
                self._fail(f"exists-watch error {err}")
                return
            self.t_ready = now
            self.next_ping = now + random.uniform(0, self.timeout_ms / 3000)
            if not self.done.done():
                self.done.set_result(True)
        elif xid == 2:
            self.check_err = err
            self.stage = 3
            self.w.checked()

    def _fail(self, why: str):
        if not self.done.done():
            self.done.set_exception(BenchError(why))
        if self.tr:
            self.tr.close()

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_exception(BenchError(f"connection lost in handshake: {exc}"))
        elif not self.w.closing:
            self.lost = True        # a close long after the last ping is the client's fault, not a false expiry
            self.t_lost = time.monotonic()
            self.max_gap = max(self.max_gap, self.t_lost - self.last_ping)
            self.w.checked()


class _Holder:
    def __init__(self, path: str, timeout_ms: int):
        self.path, self.timeout_ms = path, timeout_ms
        self.conns: list[_Conn] = []
        self.closing = False
        self.pending = 0
        self.max_turn_gap = self.max_turn_gap_cpu = self.max_turn_gap_at = 0.0
        self.all_checked: asyncio.Event | None = None

    def checked(self):
        self.pending -= 1
        if self.pending <= 0 and self.all_checked is not None:
            self.all_checked.set()

    async def connect(self, ports: list[int], n: int, first: int, concurrency: int) -> dict:
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(concurrency)
        errors: list[str] = []

        async def one(i):
            async with sem:
                done = loop.create_future()
                try:
                    m = (first + i) % len(ports)
                    _, c = await loop.create_connection(lambda: _Conn(self, done, m), "127.0.0.1", ports[m])
                    await asyncio.wait_for(done, 60)
                    self.conns.append(c)
                except (OSError, BenchError, asyncio.TimeoutError) as e:
                    errors.append(f"{type(e).__name__}: {e}")

        t0, cpu0 = time.monotonic(), time.process_time()
        await asyncio.gather(*(one(i) for i in range(n)))
        return {"t0": t0, "t1": time.monotonic(), "cpu_s": time.process_time() - cpu0,
                "ok": len(self.conns), "errors": len(errors),
                "first_error": errors[0] if errors else "", "lost": sum(c.lost for c in self.conns)}

    async def ping_loop(self, stop: asyncio.Event):
        prev, prev_cpu = time.monotonic(), time.process_time()
        while not stop.is_set():
            now, cpu = time.monotonic(), time.process_time()
            # the holder's own lateness: its turns are 0.1 s apart unless its loop (CPU spent in the
            # gap) or the OS (no CPU spent: runnable but not run, or blocked) held it
            if now - prev > self.max_turn_gap:
                self.max_turn_gap, self.max_turn_gap_cpu, self.max_turn_gap_at = now - prev, cpu - prev_cpu, now
            prev, prev_cpu = now, cpu
            for c in self.conns:
                if c.lost or now < c.next_ping:
                    continue
                gap = now - c.last_ping
                if gap > c.max_gap:
                    c.max_gap = gap
                c.tr.write(PING)
                if not c.pings:
                    c.t_first_ping = now
                c.pings += 1
                c.last_ping = now
                c.next_ping = now + c.timeout_ms / 3000
            try:
                await asyncio.wait_for(stop.wait(), 0.1)
            except asyncio.TimeoutError:
                pass

    async def check(self, timeout: float) -> None:
        """An exists on every live session: a session the server expired answers an error or nothing."""
        self.all_checked = asyncio.Event()
        body = request_body("exists", self.path, b"")
        req = _REQ_HDR.pack(8 + len(body), 2, OPS["exists"]) + body
        live = [c for c in self.conns if not c.lost]
        self.pending = len(live)
        for c in live:
            c.stage = 2
            c.tr.write(req)
        if self.pending:
            try:
                await asyncio.wait_for(self.all_checked.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    def report(self, timeout_ms: int) -> dict:
        cs = self.conns
        notes = [c.t_note for c in cs if c.notes]
        alive = [c.max_gap * 1000 < (c.timeout_ms or timeout_ms) for c in cs]   # the client kept it alive
        gone = [c.lost or c.stage != 3 or bool(c.check_err) for c in cs]
        false = [c for c, a, g in zip(cs, alive, gone) if a and g]
        lost = [c for c in cs if c.lost]
        hs = sorted(c.t_resp - c.t_start for c in cs if c.t_resp)
        members = max((c.member for c in cs), default=-1) + 1
        return {
            # Why a session was lost, from the client's side: how long its handshake took (the
            # server's clock runs from the createSession commit, before the ConnectResponse), when
            # it was lost after its last ping, whether it had pinged at all, which member held it.
            "handshake_s": [hs[int(q * (len(hs) - 1))] for q in (0.5, 0.99, 1.0)] if hs else [],
            "lost_before_first_ping": sum(1 for c in lost if c.pings == 0),
            "lost_by_member": [sum(1 for c in lost if c.member == m) for m in range(members)],
            "false_by_member": [sum(1 for c in false if c.member == m) for m in range(members)],
            "false_since_last_ping_s": sorted(round(c.t_lost - c.last_ping, 2) for c in false if c.lost)[-20:],
            "false_handshake_s": sorted(round(c.t_resp - c.t_start, 2) for c in false)[-20:],
            "false_pings": sorted(c.pings for c in false)[:20],
            # up to 10 lost sessions' timelines, seconds before the loss: connect began, ConnectResponse,
            # watch set, first ping, last ping; and the ping count
            "lost_timelines": [[round(c.t_lost - t, 2) if t else None for t in
                                (c.t_start, c.t_resp, c.t_ready, c.t_first_ping, c.last_ping)] + [c.pings]
                               for c in lost[:10]],
            "lost": sum(c.lost for c in cs),
            "check_failed": sum(1 for c in cs if not c.lost and (c.stage != 3 or c.check_err)),
            "kept_alive": sum(alive),
            "false_expiries": len(false),
            "expired_unpinged": sum(g and not a for a, g in zip(alive, gone)),
            "max_ping_gap_s": max((c.max_gap for c in cs), default=0.0),
            "max_ping_turn_gap_s": self.max_turn_gap,
            "nice": os.getpriority(os.PRIO_PROCESS, 0),
            "max_ping_turn_gap_cpu_s": self.max_turn_gap_cpu,   # CPU the holder itself used in that gap
            "max_ping_turn_gap_at": self.max_turn_gap_at,
            "pings": sum(c.pings for c in cs),
            "notes_0": sum(1 for c in cs if c.notes == 0),
            "notes_1": sum(1 for c in cs if c.notes == 1),
            "notes_many": sum(1 for c in cs if c.notes > 1),
            "first_note": min(notes, default=0.0), "last_note": max(notes, default=0.0),
            "timeouts_ms": sorted({c.timeout_ms for c in cs}),
        }


def _holder_main(pipe, ports, n, first, path, timeout_ms, concurrency, nice=0) -> None:
    """Client process: connect n sessions, report, ping until told to check, check, report, close."""
    _raise_nofile(n + 256)
    _set_nice(nice)

    async def main():
        h = _Holder(path, timeout_ms)
        loop = asyncio.get_running_loop()
        try:
            stop = asyncio.Event()                                  # pings start with the first session
            pinger = asyncio.ensure_future(h.ping_loop(stop))
            pipe.send(("ready", await h.connect(ports, n, first, concurrency)))
            msg = await loop.run_in_executor(None, pipe.recv)       # ("check", wait_s)
            await asyncio.sleep(msg[1])
            await h.check(30.0)
            stop.set()
            await pinger
            pipe.send(("done", h.report(timeout_ms)))
        except Exception as e:                                      # reported, not lost
            pipe.send(("error", f"{type(e).__name__}: {e}"))
        finally:
            h.closing = True
            for c in h.conns:
                c.tr.close()
            await asyncio.sleep(0.2)

    asyncio.run(main())


def _set_nice(nice: int) -> int:
    """This process's CPU priority (a negative nice needs root); on a loaded machine the holders went
    4-6 s unscheduled with work waiting (docs/benchmarks.md), late on pings through no fault of the
    servers. Best effort: returns the niceness in force."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError:
        pass
    return os.getpriority(os.PRIO_PROCESS, 0)


def _raise_nofile(need: int) -> None:
    """Soft nofile up to `need`; past the hard limit (not raisable without CAP_SYS_RESOURCE) a clear error."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
        except (ValueError, OSError):
            raise BenchError(f"needs {need:,} open files per process but the hard nofile limit is {hard:,} "
                             f"(raise it, e.g. `ulimit -Hn {need}` as root, or use fewer sessions / more --procs)")
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def nofile_limits(pids: list[int]) -> list[int]:
    """Each process's soft open-file limit, from /proc (the servers' own, not this process's)."""
    out = []
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
                if line.startswith("Max open files"):
                    out.append(int(line.split()[3]))
        except (OSError, ValueError, IndexError):
            pass
    return out


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def hold_sessions(ens: LocalEnsemble, n: int, hold_s: float, cfg: ScaleConfig, path: str, log) -> dict:
    """N watched sessions over all members for hold_s, then one setData on `path`; returns the counts."""
    ports = [ens.client_port(s) for s in ens.servers]
    admin = Session("127.0.0.1", ports[0])
    err, _ = admin.call("create", path, b"0")
    admin.close()                                  # idle through the hold: a new session sets the data
    if err not in (0, -110):
        raise BenchError(f"cannot create {path}: error {err}")
    procs = max(1, min(cfg.procs, n))
    shares = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    ctx = mp.get_context("fork")
    rss0 = rss_bytes(ens.pids())
    cpu = [ph.proc_cpu_probe(pid) for pid in ens.pids()]
    cpu0 = [p() or 0.0 for p in cpu]
    pipes, workers, first = [], [], 0
    for k in shares:
        a, b = ctx.Pipe()
        p = ctx.Process(target=_holder_main, args=(b, ports, k, first, path, cfg.timeout_ms,
                                                   max(1, cfg.connect_concurrency // procs), cfg.holder_nice),
                        daemon=True)
        p.start()
        b.close()
        pipes.append(a)
        workers.append(p)
        first += k
    try:
        ready = [_recv(p, "ready", 900) for p in pipes]
        rss1 = rss_bytes(ens.pids())
        server_cpu = sum((p() or 0.0) - c0 for p, c0 in zip(cpu, cpu0))   # all members, while connecting
        ok = sum(r["ok"] for r in ready)
        t_conn = max(r["t1"] for r in ready) - min(r["t0"] for r in ready)
        log(f"{ens.engine}: {ok:,}/{n:,} sessions with a watch in {t_conn:.1f} s "
            f"({ok / t_conn:,.0f}/s; {sum(r['lost'] for r in ready):,} already closed by a server); "
            f"RSS {rss0 / 2**20:,.0f} -> {rss1 / 2**20:,.0f} MiB; CPU per session: servers "
            f"{server_cpu / max(ok, 1) * 1e3:.2f} ms, clients {sum(r['cpu_s'] for r in ready) / max(ok, 1) * 1e3:.2f} ms; "
            f"holding {hold_s:.0f} s")
        for p in pipes:
            p.send(("check", hold_s + 10.0))
        time.sleep(hold_s)
        t_set, set_failures = _set_once(ports, path, log)
        done = [_recv(p, "done", hold_s + 120) for p in pipes]
    finally:
        for p in workers:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
    last = max((d["last_note"] for d in done if d["last_note"]), default=0.0)
    first_note = min((d["first_note"] for d in done if d["first_note"]), default=0.0)
    tot = lambda k: sum(d[k] for d in done)  # noqa: E731
    out = {"sessions": n, "connected": ok, "connect_errors": sum(r["errors"] for r in ready),
           "first_connect_error": next((r["first_error"] for r in ready if r["first_error"]), ""),
           "connect_s": t_conn, "connect_rate": ok / t_conn if t_conn > 0 else 0.0,
           "rss_before": rss0, "rss_after": rss1, "rss_per_session": (rss1 - rss0) / max(ok, 1),
           "server_cpu_ms_per_session": server_cpu / max(ok, 1) * 1e3,
           "client_cpu_ms_per_session": sum(r["cpu_s"] for r in ready) / max(ok, 1) * 1e3,
           "client_cpu_share_connecting": [round(r["cpu_s"] / max(r["t1"] - r["t0"], 1e-9), 2) for r in ready],
           "handshake_s": [max((d["handshake_s"][i] for d in done if d["handshake_s"]), default=None)
                           for i in range(3)],
           "lost_before_first_ping": tot("lost_before_first_ping"),
           "lost_by_member": [sum(x) for x in zip(*(d["lost_by_member"] for d in done))],
           "false_by_member": [sum(x) for x in zip(*(d["false_by_member"] for d in done))],
           "false_since_last_ping_s": sorted(x for d in done for x in d["false_since_last_ping_s"])[-20:],
           "false_handshake_s": sorted(x for d in done for x in d["false_handshake_s"])[-20:],
           "false_pings": sorted(x for d in done for x in d["false_pings"])[:20],
           "lost_timelines": [x for d in done for x in d["lost_timelines"]][:20],
           "holder_nice": sorted({d["nice"] for d in done}),
           "hold_s": hold_s, "lost": tot("lost"), "check_failed": tot("check_failed"),
           "false_expiries": tot("false_expiries"), "expired_unpinged": tot("expired_unpinged"),
           "kept_alive": tot("kept_alive"), "pings": tot("pings"), "members": len(ports),
           "procs": procs, "server_nofile": nofile_limits(ens.pids()), "set_failures": set_failures,
           "lost_while_connecting": sum(r["lost"] for r in ready),
           "max_ping_gap_s": max(d["max_ping_gap_s"] for d in done),
           "max_ping_turn_gaps": [(round(d["max_ping_turn_gap_s"], 2), round(d["max_ping_turn_gap_cpu_s"], 2),
                                   round(d["max_ping_turn_gap_at"] - min(r["t0"] for r in ready), 1)) for d in done],
           "timeouts_ms": sorted({t for d in done for t in d["timeouts_ms"]}),
           "notes_0": tot("notes_0"), "notes_1": tot("notes_1"), "notes_many": tot("notes_many"),
           "first_note_s": first_note - t_set if first_note else None,
           "last_note_s": last - t_set if last else None}
    log(f"{ens.engine}: false expiries {out['false_expiries']}, max ping gap {out['max_ping_gap_s']:.2f} s; "
        f"notifications exactly once {out['notes_1']:,}/{ok:,}, last after "
        f"{(out['last_note_s'] or float('nan')) * 1000:,.0f} ms")
    return out


def _set_once(ports: list[int], path: str, log) -> tuple[float, list[str]]:
    """One setData of `path` through the first member that takes it (a member may refuse a new
    session under this load: that is reported, and the next one tried); returns its send time."""
    failures = []
    for port in ports:
        try:
            admin = Session("127.0.0.1", port)
        except (OSError, BenchError) as e:
            failures.append(f"port {port}: session: {e}")
            continue
        try:
            admin.sock.settimeout(60)
            t_set = time.monotonic()
            err, _ = admin.call("setData", path, b"1")
            if err:
                raise BenchError(f"setData {path}: error {err}")
            return t_set, failures
        except (OSError, BenchError) as e:
            failures.append(f"port {port}: setData: {e}")
        finally:
            admin.close()
    raise BenchError(f"no member took the setData of {path}: {failures}")


def _recv(pipe, kind: str, timeout: float):
    if not pipe.poll(timeout):
        raise BenchError(f"a session holder did not answer {kind!r} within {timeout:.0f} s")
    msg = pipe.recv()
    if msg[0] == "error":
        raise BenchError(f"session holder: {msg[1]}")
    if msg[0] != kind:
        raise BenchError(f"session holder answered {msg[0]!r}, expected {kind!r}")
    return msg[1]


# -- SNAP sync of a wiped follower -------------------------------------------------------------

def mntr(port: int) -> dict[str, str]:
    try:
        text = four_letter(port, "mntr", timeout=10.0)
    except OSError:
        return {}
    return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)


class _LightLoad(threading.Thread):
    """One-at-a-time setData at a fixed rate on the leader; (send time, latency s) per request."""

    def __init__(self, port: int, path: str, rate: float):
        super().__init__(daemon=True)
        self.sess = Session("127.0.0.1", port)
        self.sess.sock.settimeout(60)
        self.path, self.period = path, 1.0 / rate
        self.samples: list[tuple[float, float]] = []
        self.errors = 0
        self.stop = threading.Event()
        err, _ = self.sess.call("create", path, b"")
        if err not in (0, -110):
            raise BenchError(f"cannot create {path}: error {err}")

    def run(self):
        t_next = time.monotonic()
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                err, _ = self.sess.call("setData", self.path, b"x" * 16)
            except (OSError, BenchError) as e:
                self.errors += 1
                self.failure = str(e)
                return
            t1 = time.monotonic()
            self.errors += bool(err)
            self.samples.append((t0, t1 - t0))
            t_next += self.period
            d = t_next - time.monotonic()
            if d > 0:
                time.sleep(d)
            else:
                t_next = time.monotonic()

    def window(self, a: float, b: float) -> list[float]:
        """Latencies of the requests in flight at some time in [a, b). By send time alone, a request
        sent just before a short sync and held through all of it (ZooKeeper's leader, 20,000 znodes
        in 0.56 s) left the window empty: one at a time, nothing else is sent while it waits."""
        return [lat for t, lat in self.samples if t < b and t + lat > a]


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


LOAD_CONNS = 8
LOAD_SLICE = 50_000          # znodes per pipelined phase: each phase's requests are encoded before it starts


def load_znodes(port: int, root: str, znodes: int) -> None:
    """`znodes` children of `root`, created by the bench's pipelined client (depth 32, 8 sessions in 2
    processes), the same for both systems. In slices: encoding all 1M requests up front left the
    sessions idle past their timeout on a loaded machine (`server closed session ... after 0 replies`)."""
    workers = ph.Workers(f"127.0.0.1:{port}", LOAD_CONNS, 2)
    try:
        for lo in range(0, znodes, LOAD_SLICE):
            hi = min(znodes, lo + LOAD_SLICE)
            names = {c: [f"{root}/n{j:07d}" for j in range(lo + c, hi, LOAD_CONNS)] for c in range(LOAD_CONNS)}
            r = workers.phase("create", names, b"x" * 16, 32)
            if r.errors:
                raise BenchError(f"{r.errors} of creates {lo:,}-{hi:,} failed (first error {r.first_err})")
    finally:
        workers.close()


def snap_trial(ens: LocalEnsemble, znodes: int, cfg: ScaleConfig, log) -> dict:
    leader = ens.wait_serving()
    followers = [s for s in ens.servers if s != leader]
    lagger = followers[0]
    lport = ens.client_port(leader)
    root = "/snap"
    s = Session("127.0.0.1", lport)
    err, _ = s.call("create", root, b"")
    s.close()
    if err not in (0, -110):
        raise BenchError(f"cannot create {root}: error {err}")
    t0 = time.monotonic()
    load_znodes(lport, root, znodes)
    log(f"{ens.engine}: {znodes:,} znodes created in {time.monotonic() - t0:.1f} s")
    load = _LightLoad(lport, "/snap-light", cfg.light_rate)
    leader_cpu = ph.proc_cpu_probe(ens.procs[leader].pid)
    load.start()
    try:
        time.sleep(10.0)
        t_kill = time.monotonic()
        ens.kill(lagger)
        data = ens.servers[lagger].dir / "data"
        for p in data.iterdir():
            if p.name != "myid":
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        t_start, cpu_start = time.monotonic(), leader_cpu()
        ens.start(lagger)
        follower_cpu = ph.proc_cpu_probe(ens.procs[lagger].pid)   # on one machine, taken from the leader
        goal = ens.zxid(leader)
        port = ens.client_port(lagger)
        while True:
            info = srvr(port)
            if info.get("Mode") == "follower" and int(info.get("Zxid", "-1"), 16) >= goal:
                t_synced = time.monotonic()
                cpu_synced, follower_cpu_s = leader_cpu(), follower_cpu()
                break
            if time.monotonic() - t_start > 900:
                raise BenchError(f"{ens.engine}: wiped follower not synced after 900 s")
            if ens.procs[lagger].poll() is not None:
                raise BenchError(f"{ens.engine}: the wiped follower exited; see its server.log")
            time.sleep(0.02)
        time.sleep(2.0)
    finally:
        load.stop.set()
        load.join(120)
    if load.errors:
        raise BenchError(f"{ens.engine}: {load.errors} light-load writes failed {getattr(load, 'failure', '')}")
    # settle: the follower has every write, then compare what it holds with the leader
    want = ens.zxid(leader)
    deadline = time.monotonic() + 60
    while ens.zxid(lagger) < want and time.monotonic() < deadline:
        time.sleep(0.05)
    ml, mf = mntr(lport), mntr(port)
    before = load.window(t_kill - 10.0, t_kill)
    during = load.window(t_start, t_synced)
    out = {"znodes": znodes, "sync_s": t_synced - t_start, "leader": leader, "follower": lagger,
           "leader_zxid": ens.zxid(leader), "follower_zxid": ens.zxid(lagger),
           "leader_znode_count": int(ml.get("zk_znode_count", -1)),
           "follower_znode_count": int(mf.get("zk_znode_count", -2)),
           "light_rate": cfg.light_rate, "samples_before": len(before), "samples_during": len(during),
           "p50_before_ms": _ms(pct(before, 0.5)), "p99_before_ms": _ms(pct(before, 0.99)),
           "max_before_ms": _ms(max(before, default=None)),
           "p50_during_ms": _ms(pct(during, 0.5)), "p99_during_ms": _ms(pct(during, 0.99)),
           "max_during_ms": _ms(max(during, default=None)),
           # where in the sync the tail fell (s after the restart, ms), and what the leader spent
           "slowest_during": [(round(t - t_start, 2), _ms(lat)) for t, lat in
                              sorted(load.samples, key=lambda x: -x[1]) if t_start <= t < t_synced][:15],
           "leader_cpu_during_s": round(cpu_synced - cpu_start, 2) if cpu_synced and cpu_start else None,
           "follower_cpu_during_s": None if follower_cpu_s is None else round(follower_cpu_s, 2),
           "load_avg": os.getloadavg()}
    log(f"{ens.engine}: SNAP sync of a wiped follower {out['sync_s']:.2f} s; leader p99 "
        f"{out['p99_before_ms']} ms before, {out['p99_during_ms']} ms during (max {out['max_during_ms']}); "
        f"znodes leader {out['leader_znode_count']:,} follower {out['follower_znode_count']:,}")
    return out


def _ms(x):
    return None if x is None else round(x * 1000, 3)


# -- the run -------------------------------------------------------------------------------------

def _ensemble(workdir: Path, engine: str, cfg: ScaleConfig, tag: str) -> LocalEnsemble:
    ens = LocalEnsemble(workdir / f"{engine}-{tag}", cfg.members, engine, force_sync=cfg.force_sync,
                        heap_mb=cfg.zk_heap_mb, log_level=cfg.server_log_level)
    if engine == "zookeeper":                    # a backlog that takes a connect burst, as coord's does
        for s in ens.servers.values():
            with open(s.config, "a") as f:
                f.write("clientPortListenBacklog=1024\n")
    ens.start_all()
    return ens


def check_fds(cfg: ScaleConfig) -> None:
    """Before any server starts: a member serves 1/members of the sessions, a holder 1/procs, each
    process within its open-file limit (the servers inherit this process's)."""
    biggest = max(cfg.sessions if "sessions" in cfg.parts else 0, cfg.watches if "fanout" in cfg.parts else 0)
    try:
        _raise_nofile(-(-biggest // cfg.members) + 1024)
    except BenchError as e:
        raise BenchError(f"{biggest:,} sessions over {cfg.members} members: {e}; or use more --members") from None
    _raise_nofile(-(-biggest // cfg.procs) + 256)
    lo, hi = local_port_range()
    per_member = -(-biggest // cfg.members)
    if per_member > hi - lo + 1:
        raise BenchError(f"{biggest:,} sessions over {cfg.members} members: {per_member:,} connections to one "
                         f"member's port from 127.0.0.1, but net.ipv4.ip_local_port_range ({lo}-{hi}) has "
                         f"{hi - lo + 1:,} source ports; use more --members")


def local_port_range(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> tuple[int, int]:
    """The ephemeral ports a connect() picks from: one source address reaches one member's port at
    most this many times at once."""
    try:
        lo, hi = map(int, Path(path).read_text().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999                     # Linux's default


def run(cfg: ScaleConfig, workdir: str | None, log) -> dict:
    import tempfile
    check_fds(cfg)
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="coord-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    out: dict = {"config": {k: v for k, v in cfg.__dict__.items()}, "load_avg_start": os.getloadavg()}
    try:
        for part in cfg.parts:
            for engine in cfg.systems:
                ens = _ensemble(root, engine, cfg, part)
                try:
                    if part == "sessions":
                        res = hold_sessions(ens, cfg.sessions, cfg.hold_s, cfg, "/scale-hot", log)
                    elif part == "fanout":
                        res = hold_sessions(ens, cfg.watches, 5.0, cfg, "/scale-fan", log)
                    else:
                        res = snap_trial(ens, cfg.znodes, cfg, log)
                finally:
                    ens.stop()
                out.setdefault(part, {})[engine] = res
    finally:
        if not workdir:
            shutil.rmtree(root, ignore_errors=True)
    out["load_avg_end"] = os.getloadavg()
    return out


def table(out: dict) -> list[str]:
    rows = []

    def row(name, part, key, fmt="{:,.1f}", lower_better=True):
        d = out.get(part, {})
        a, b = d.get("coord", {}).get(key), d.get("zookeeper", {}).get(key)
        f = lambda x: "-" if x is None else fmt.format(x)  # noqa: E731
        ratio = f"{a / b:.2f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "-"
        rows.append(f"| {name} | {f(a)} | {f(b)} | {ratio} |")

    c = out["config"]
    rows += ["| measurement | coord | ZooKeeper | ratio |", "|---|---:|---:|---:|"]
    if "sessions" in out:
        n = f"{c['sessions']:,} sessions"
        row(f"{n}: false expiries (held {c['hold_s']:.0f} s)", "sessions", "false_expiries", "{:,}")
        row(f"{n}: connect rate (sessions/s, with a watch each)", "sessions", "connect_rate", "{:,.0f}")
        row(f"{n}: server RSS per session (KiB, sum of 3 members)", "sessions", "rss_per_session_kib", "{:,.1f}")
        row(f"{n}: last notification after one setData (ms)", "sessions", "last_note_ms", "{:,.0f}")
    if "fanout" in out:
        n = f"{c['watches']:,} watches on one znode"
        row(f"{n}: last notification after one setData (ms)", "fanout", "last_note_ms", "{:,.0f}")
        row(f"{n}: sessions notified exactly once", "fanout", "notes_1", "{:,}")
        row(f"{n}: false expiries", "fanout", "false_expiries", "{:,}")
    if "snap" in out:
        n = f"{c['znodes']:,} znodes"
        row(f"{n}: SNAP sync of a wiped follower (s)", "snap", "sync_s", "{:,.2f}")
        row(f"{n}: leader p99 before the sync (ms, {c['light_rate']:.0f} setData/s)", "snap", "p99_before_ms", "{:,.2f}")
        row(f"{n}: leader p99 during the sync (ms)", "snap", "p99_during_ms", "{:,.2f}")
        row(f"{n}: leader max during the sync (ms)", "snap", "max_during_ms", "{:,.2f}")
    return rows


def derive(out: dict) -> dict:
    for part in ("sessions", "fanout"):
        for r in out.get(part, {}).values():
            r["rss_per_session_kib"] = r["rss_per_session"] / 1024
            r["last_note_ms"] = None if r["last_note_s"] is None else r["last_note_s"] * 1000
    return out


def add_command(main) -> None:
    import click

    @main.command("bench-scale")
    @click.option("--sessions", default=10_000, show_default=True, help="Sessions held, each with one watch.")
    @click.option("--members", default=3, show_default=True,
                  help="Ensemble size (a member holds 1/members of the sessions, each a socket).")
    @click.option("--watches", default=100_000, show_default=True,
                  help="Watches on one znode for the fan-out (one per session: ZooKeeper keeps one per path).")
    @click.option("--znodes", default=1_000_000, show_default=True, help="Znodes before the SNAP sync.")
    @click.option("--hold", default=60.0, show_default=True, help="Seconds the sessions are held.")
    @click.option("--session-timeout-ms", default=30_000, show_default=True)
    @click.option("--procs", default=4, show_default=True, help="Client processes holding the sessions.")
    @click.option("--light-rate", default=200.0, show_default=True,
                  help="setData/s of the one-at-a-time load on the leader during the SNAP sync.")
    @click.option("--zk-heap-mb", default=3072, show_default=True)
    @click.option("--parts", default="sessions,fanout,snap", show_default=True)
    @click.option("--systems", default="coord,zookeeper", show_default=True)
    @click.option("--force-sync/--no-force-sync", default=True, show_default=True)
    @click.option("--workdir", default=None, type=click.Path(file_okay=False),
                  help="Keep the servers' dirs and logs here (default: a temp dir, removed).")
    @click.option("--server-log-level", default="warning", show_default=True, help="coord members' log level.")
    @click.option("--holder-nice", default=-5, show_default=True,
                  help="Niceness of the session holders (negative: ahead of the servers; needs root, else kept).")
    @click.option("--json", "as_json", is_flag=True)
    def bench_scale(sessions, members, watches, znodes, hold, session_timeout_ms, procs, light_rate, zk_heap_mb, parts,
                    systems, force_sync, workdir, server_log_level, holder_nice, as_json):
        """coord vs ZooKeeper 3.8 ensembles: 10k sessions, 100k-watch fan-out, 1M-znode SNAP sync."""
        chosen = tuple(p.strip() for p in parts.split(",") if p.strip())
        bad = [p for p in chosen if p not in ("sessions", "fanout", "snap")]
        if bad:
            raise click.BadParameter(f"unknown part(s) {bad}; choose from sessions, fanout, snap")
        sys_ = tuple(s.strip() for s in systems.split(",") if s.strip())
        if not sys_ or any(s not in SYSTEMS for s in sys_):
            raise click.BadParameter(f"systems must be from {SYSTEMS}, got {systems!r}")
        if min(sessions, members, watches, znodes, procs) < 1 or hold < 0 or light_rate <= 0 or session_timeout_ms < 1:
            raise click.BadParameter("counts must be >= 1, --hold >= 0, --light-rate > 0")
        cfg = ScaleConfig(sessions=sessions, members=members, watches=watches, znodes=znodes, hold_s=hold,
                          timeout_ms=session_timeout_ms, procs=procs, light_rate=light_rate,
                          zk_heap_mb=zk_heap_mb, parts=chosen, systems=sys_, force_sync=force_sync,
                          server_log_level=server_log_level, holder_nice=holder_nice)
        try:
            out = derive(run(cfg, workdir, lambda m: click.echo(m, err=True)))
        except (BenchError, OSError, RuntimeError, TimeoutError) as e:
            raise click.ClickException(str(e))
        if as_json:
            click.echo(json.dumps(out, indent=2, default=str))
        else:
            click.echo("\n".join(table(out)))
            click.echo(f"load average at start {out['load_avg_start']}, at end {out['load_avg_end']}")

