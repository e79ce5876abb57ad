"""The open-loop (constant-rate) load generator of `coord bench --open-loop`.

Why open loop: a closed-loop client sends its next request only after a reply, so a server that
pauses for 50 ms also stops the client from sending, and the pause shows up as one slow request
instead of the thousands that would have waited behind it (coordinated omission). Here request g of
a run is *scheduled* at `start + g / rate` whatever the replies do, and its latency is counted from
that scheduled time, not from when it was actually sent; a late client therefore makes the numbers
worse, never better, and its own lateness (actual send time - scheduled time) is measured and
reported beside them, so a saturated generator is seen rather than hidden.

Request g goes to worker process g mod P, and within a worker round-robin over its connections;
every request is encoded before the clock starts. A worker waits for the next due time with
select(), whose timeout has microsecond resolution (epoll's is a millisecond). Replies come back
in order per session (xid), so the scheduled time of each connection's next reply is the head of
a FIFO. Requests scheduled during the warm-up are sent but not counted.

Ops: create, getData, setData, exists, delete, multi (create + setData + delete of one fresh znode:
three ops, one txn, the tree unchanged after it) and mixed (80% getData, 20% setData).
"""
from __future__ import annotations

import array
import multiprocessing as mp
import select
import time
from collections import deque
from dataclasses import dataclass

from coord.bench.client import _REQ_HDR, _REPLY, OPEN_ACL, BenchError, Session, drive, request_body, close_sockets, close_workers, worker_failed
from coord.jute import records as R

# Run in this order: delete right after create takes back the znodes the create runs added (~0.4M a
# round of 8 s runs at 25-75% of ZooKeeper's rate), so the reads are not measured in the wake of a
# grown tree (its snapshot, its major collections) on either system.
OPEN_OPS = ("create", "delete", "getData", "exists", "setData", "multi", "mixed")
_CODES = {"create": 1, "delete": 2, "exists": 3, "getData": 4, "setData": 5, "multi": 14}


def _body(op: str, path: str, data: bytes) -> bytes:
    """The request record of one op; `multi` is create + setData + delete of one path."""
    if op == "multi":
        return b"".join((R.MultiHeader(1, False, -1).encode(), R.CreateRequest(path, data, OPEN_ACL, 0).encode(),
                         R.MultiHeader(5, False, -1).encode(), R.SetDataRequest(path, data, -1).encode(),
                         R.MultiHeader(2, False, -1).encode(), R.DeleteRequest(path, -1).encode(),
                         R.MultiHeader(-1, True, -1).encode()))
    if op not in OPEN_OPS or op == "mixed":
        raise ValueError(f"unknown op {op!r}; choose from {OPEN_OPS}")
    return request_body(op, path, data)


def request(op: str, root: str, g: int, keys: int, base: int) -> tuple[str, str]:
    """(wire op, path) of request g of a run: fresh names for create/multi, the pool for delete,
    the preloaded keys for reads and setData (mixed: every fifth is a setData)."""
    if op in ("create", "delete"):
        return op, f"{root}/c{base + g:09d}"
    if op == "multi":
        return op, f"{root}/m{base + g:09d}"
    key = f"{root}/k{g % keys:07d}"
    if op == "mixed":
        return ("setData" if g % 5 == 4 else "getData"), key
    return op, key


class Encoder:
    """Frames for requests whose paths differ only in their digits: one template per (op, path length),
    split at the path's occurrences (a multi names its path three times)."""

    def __init__(self, data: bytes):
        self.data = data
        self.templates: dict[tuple[str, int], tuple[list[bytes], int]] = {}

    def frame(self, op: str, path: str, xid: int) -> bytes:
        pb = path.encode()
        t = self.templates.get((op, len(pb)))
        if t is None:
            body = _body(op, path, self.data)
            t = self.templates[(op, len(pb))] = (body.split(pb), len(body))
        parts, blen = t
        return _REQ_HDR.pack(8 + blen, xid, _CODES[op]) + pb.join(parts)


@dataclass
class Plan:
    """One open-loop run as every worker sees it."""
    op: str
    root: str
    rate: float            # requests per second, all workers together
    warmup_s: float
    duration_s: float
    keys: int = 1000
    base: int = 0
    data_size: int = 100
    count: int | None = None   # closed loop (run_closed): this many requests, as fast as they go

    @property
    def total(self) -> int:
        if self.count is not None:
            return self.count
        return int(self.rate * (self.warmup_s + self.duration_s))


class _Conn:
    __slots__ = ("s", "frames", "next", "sched", "out", "sock")

    def __init__(self, s: Session):
        self.s = s
        self.sock = s.sock
        self.frames: list[bytes] = []
        self.next = 0
        self.sched: deque = deque()
        self.out = b""


def run_plan(sessions: list[Session], plan: Plan, proc: int, procs: int, start: float) -> dict:
    """This worker's share of a plan: requests g = proc, proc + procs, ... Returns latencies (µs,
    counted from scheduled times, measured window only), send lateness (µs), counts."""
    enc = Encoder(b"x" * plan.data_size)
    conns = [_Conn(s) for s in sessions]
    mine = range(proc, plan.total, procs)
    sched_times = []
    for m, g in enumerate(mine):
        c = conns[m % len(conns)]
        op, path = request(plan.op, plan.root, g, plan.keys, plan.base)
        c.frames.append(enc.frame(op, path, c.s.xid))
        c.s.xid += 1
        sched_times.append(start + g / plan.rate)
    n = len(sched_times)
    measure_from = start + plan.warmup_s
    lat = array.array("d")
    at = array.array("d")     # the scheduled send time (monotonic s) of each measured latency
    late = array.array("d")
    errors = 0
    first_err = 0
    received = 0
    by_fd = {c.sock.fileno(): c for c in conns}
    for c in conns:
        c.sock.setblocking(False)
    rlist = list(by_fd)
    unpack = _REPLY.unpack_from
    clock = time.monotonic
    bufs = {fd: bytearray() for fd in by_fd}
    k = 0
    deadline = start + plan.warmup_s + plan.duration_s + 30.0
    try:
        while received < n:
            now = clock()
            if now > deadline:
                raise BenchError(f"{n - received} of {n} {plan.op} replies missing 30 s after the run")
            # send everything due now (several due for one connection go in one send)
            touched = []
            while k < n and sched_times[k] <= now:
                c = conns[k % len(conns)]
                if not c.out:
                    touched.append(c)
                c.out += c.frames[k // len(conns)]
                c.sched.append(sched_times[k])
                late.append((now - sched_times[k]) * 1e6)
                k += 1
            for c in touched:
                _push(c)
            wl = [c.sock.fileno() for c in conns if c.out]
            timeout = max(0.0, sched_times[k] - clock()) if k < n else 0.05
            r, w, _ = select.select(rlist, wl, [], timeout)
            for fd in w:
                _push(by_fd[fd])
            if not r:
                continue
            t_recv = clock()
            for fd in r:
                c = by_fd[fd]
                try:
                    data = c.sock.recv(1 << 20)
                except BlockingIOError:
                    continue
                if not data:
                    raise BenchError(f"server closed session 0x{c.s.session_id:x}")
                buf = bufs[fd]
                buf += data
                pos, blen = 0, len(buf)
                while blen - pos >= 20:
                    ln, xid, _zxid, err = unpack(buf, pos)
                    end = pos + 4 + ln
                    if end > blen:
                        break
                    pos = end
                    if xid < 0:          # a notification (-1) or a ping's reply (-2)
                        continue
                    t_s = c.sched.popleft()
                    received += 1
                    if err:
                        errors += 1
                        first_err = first_err or err
                    if t_s >= measure_from:
                        lat.append((t_recv - t_s) * 1e6)
                        at.append(t_s)
                if pos:
                    del buf[:pos]
    finally:
        for c in conns:
            c.sock.setblocking(True)
    return {"lat_us": lat.tobytes(), "at_s": at.tobytes(), "late_us": late.tobytes(), "sent": k, "received": received,
            "errors": errors, "first_err": first_err}


def run_closed(sessions: list[Session], plan: Plan, proc: int, procs: int, depth: int) -> dict:
    """This worker's share of plan.count requests, `depth` in flight per session (coord.bench.client's
    pipelined driver): the maximum rate that the open-loop rates are fractions of."""
    enc = Encoder(b"x" * plan.data_size)
    frames: list[list[bytes]] = [[] for _ in sessions]
    for m, g in enumerate(range(proc, plan.total, procs)):
        i = m % len(sessions)
        op, path = request(plan.op, plan.root, g, plan.keys, plan.base)
        frames[i].append(enc.frame(op, path, sessions[i].xid + len(frames[i])))
    for s, fr in zip(sessions, frames):
        offs = [0]
        for f in fr:
            offs.append(offs[-1] + len(f))
        s.load(b"".join(fr), offs)
    start, end = drive(sessions, depth)
    return {"start": start, "end": end, "done": sum(s.done for s in sessions),
            "errors": sum(s.errors for s in sessions),
            "first_err": next((s.first_err for s in sessions if s.first_err), 0)}


def _push(c: _Conn) -> None:
    try:
        sent = c.sock.send(c.out)
    except BlockingIOError:
        return
    c.out = c.out[sent:]


# -- worker processes -----------------------------------------------------------------------------
def _worker(pipe, targets: list[tuple[str, int]], proc: int, procs: int) -> None:
    sessions: list[Session] = []
    try:
        for host, port in targets:
            sessions.append(Session(host, port, timeout_ms=40000))
        pipe.send(("ok",))
        while True:
            cmd = pipe.recv()
            if cmd[0] == "run":
                _, plan, start = cmd
                c0 = time.process_time()
                res = run_plan(sessions, plan, proc, procs, start)
                res["cpu_s"] = time.process_time() - c0
                pipe.send(("done", res))
            elif cmd[0] == "closed":
                _, plan, depth = cmd
                pipe.send(("done", run_closed(sessions, plan, proc, procs, depth)))
            elif cmd[0] == "close":
                for s in sessions:
                    s.close()
                sessions = []
                pipe.send(("closed",))
                return
    except BaseException as e:  # report, do not hang the parent
        worker_failed(pipe, e)
    finally:
        close_sockets(sessions)


@dataclass
class OpenLoopResult:
    op: str
    rate: float
    lat_us: array.array       # measured window, from scheduled send times
    late_us: array.array      # the generator's own lateness, every request
    at_s: array.array         # the scheduled send time (monotonic s) of each lat_us entry
    sent: int
    errors: int
    first_err: int
    client_cpu_s: float
    seconds: float

    def quantiles(self) -> dict:
        return quantiles(self.lat_us)


def quantiles(values) -> dict:
    """p50/p99/p99.9/max in ms of µs samples (nearest rank)."""
    s = sorted(values)
    if not s:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "p999_ms": None, "max_ms": None}

    def q(p):
        return s[min(len(s) - 1, int(p * len(s)))] / 1000.0
    return {"n": len(s), "p50_ms": q(0.50), "p99_ms": q(0.99), "p999_ms": q(0.999), "max_ms": s[-1] / 1000.0}


class OpenLoopClient:
    """P worker processes with `connections` sessions spread round-robin over `targets` (all members of
    an ensemble), each process its share."""

    def __init__(self, targets: list[tuple[str, int]], connections: int, procs: int):
        procs = max(1, min(procs, connections))
        per = [[targets[i % len(targets)] for i in range(connections)][p::procs] for p in range(procs)]
        ctx = mp.get_context("fork")
        self.procs, self.pipes = [], []
        for p, tg in enumerate(per):
            parent, child = ctx.Pipe()
            pr = ctx.Process(target=_worker, args=(child, tg, p, procs), daemon=True)
            pr.start()
            child.close()
            self.procs.append(pr)
            self.pipes.append(parent)
        try:
            self._gather("ok", 60)
        except BaseException:
            self.close()
            raise

    def _gather(self, kind: str, timeout: float) -> list:
        out = []
        for pipe in self.pipes:
            if not pipe.poll(timeout):
                raise BenchError(f"an open-loop worker did not answer {kind!r} within {timeout:.0f}s")
            msg = pipe.recv()
            if msg[0] == "error":
                raise BenchError(f"open-loop worker: {msg[1]}")
            out.append(msg)
        return out

    def run(self, plan: Plan, lead_s: float = 0.2) -> OpenLoopResult:
        """Run a plan; workers encode their requests, then all start on the same monotonic instant.
        The lead was nearly all of a run's overhead (0.5 of 0.55-0.65 s); a worker that starts late
        sends late inside the warm-up, which is not counted."""
        # encoding takes time in the workers: start far enough ahead (~2 µs per request per process)
        start = time.monotonic() + lead_s + plan.total * 4e-6 / len(self.pipes)
        for pipe in self.pipes:
            pipe.send(("run", plan, start))
        res = [m[1] for m in self._gather("done", plan.warmup_s + plan.duration_s + 120)]
        lat, late, at = array.array("d"), array.array("d"), array.array("d")
        for r in res:
            lat.frombytes(r["lat_us"])
            late.frombytes(r["late_us"])
            at.frombytes(r["at_s"])
        return OpenLoopResult(plan.op, plan.rate, lat, late, at, sum(r["sent"] for r in res),
                              sum(r["errors"] for r in res), next((r["first_err"] for r in res if r["first_err"]), 0),
                              sum(r["cpu_s"] for r in res), time.monotonic() - start)

    def max_rate(self, plan: Plan, depth: int) -> tuple[float, int, int]:
        """Closed loop over plan.count requests: (ops/s, acknowledged, errors)."""
        for pipe in self.pipes:
            pipe.send(("closed", plan, depth))
        res = [m[1] for m in self._gather("done", 600)]
        secs = max(r["end"] for r in res) - min(r["start"] for r in res)
        done = sum(r["done"] for r in res)
        return (done / secs if secs > 0 else 0.0), done, sum(r["errors"] for r in res)

    def close(self) -> None:
        close_workers(self.pipes, self.procs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

