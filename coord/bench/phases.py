"""The benchmark's phases and the worker processes that run them.

Connections are spread over several worker processes (one epoll loop each) so the load client is not
what limits the numbers; check that with `coord bench --null-server`. A phase is prepared in every
worker (requests pre-encoded, off the clock), then started in all of them at once; its throughput is
all acknowledged ops over the time from the first worker's start to the last one's end. The workers
also report their CPU time, so a saturated client shows up in the table instead of hiding in it.

Phases over the same K znodes (each connection owns K/N of them): create, getData, setData, exists,
delete; then single-request latency (one connection, one request on the wire at a time) for create
and getData.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import secrets
import statistics
import time
from dataclasses import dataclass, field

from coord.bench.client import BenchError, Session, drive, encode_batch, parse_target, close_sockets, close_workers, worker_failed

THROUGHPUT_PHASES = ("create", "getData", "setData", "exists", "delete")
LATENCY_PHASES = ("create", "getData")


@dataclass
class BenchConfig:
    connections: int = 8
    depth: int = 32
    ops: int = 100_000
    data_size: int = 100
    procs: int = 2
    latency_ops: int = 2000
    phases: tuple[str, ...] = THROUGHPUT_PHASES
    latency: bool = True
    # The top namespace the phases' znodes go under (/NAMESPACE/coord-bench-...), created if missing;
    # None: the bench's own root is the namespace. Per-namespace read/write accounting (the metrics)
    # compares each path with the namespace, so its cost grows with the namespace's length.
    namespace: str | None = None


def args_config(a) -> BenchConfig:
    """The closed-loop phases of metrics_ab's arguments (--ops, --phases, --namespace), no latency runs."""
    return BenchConfig(ops=a.ops, phases=tuple(a.phases.split(",")), latency=False, namespace=a.namespace)


@dataclass
class PhaseResult:
    op: str
    ops: int
    errors: int
    first_err: int
    seconds: float
    client_cpu_s: float
    server_cpu_s: float | None = None
    machine_cpu_s: float | None = None   # all non-idle CPU time of the machine during the phase

    @property
    def background_cpu_s(self) -> float | None:
        """CPU used by neither the server nor the client: other load on the machine."""
        if self.machine_cpu_s is None or self.server_cpu_s is None:
            return None
        return max(0.0, self.machine_cpu_s - self.server_cpu_s - self.client_cpu_s)

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0


@dataclass
class LatencyResult:
    op: str
    samples_ns: list[int] = field(repr=False)

    def pct_ms(self, q: float) -> float:
        s = sorted(self.samples_ns)
        i = min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))
        return s[i] / 1e6

    @property
    def p50_ms(self) -> float:
        return self.pct_ms(0.50)

    @property
    def p99_ms(self) -> float:
        return self.pct_ms(0.99)

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.samples_ns) / 1e6


@dataclass
class RunResult:
    target: str
    phases: dict[str, PhaseResult]
    latency: dict[str, LatencyResult]

    def to_json(self) -> dict:
        return {
            "target": self.target,
            "phases": {k: {"ops": v.ops, "errors": v.errors, "first_err": v.first_err,
                           "seconds": round(v.seconds, 6), "ops_per_s": round(v.ops_per_s, 1),
                           "client_cpu_s": round(v.client_cpu_s, 4),
                           "server_cpu_s": None if v.server_cpu_s is None else round(v.server_cpu_s, 4),
                           "machine_cpu_s": None if v.machine_cpu_s is None else round(v.machine_cpu_s, 4)}
                       for k, v in self.phases.items()},
            "latency": {k: {"n": len(v.samples_ns), "p50_ms": round(v.p50_ms, 4),
                            "p99_ms": round(v.p99_ms, 4), "mean_ms": round(v.mean_ms, 4)}
                        for k, v in self.latency.items()},
        }


# -- worker process -------------------------------------------------------------------------------
def _worker(pipe, host: str, port: int, conn_ids: list[int]) -> None:
    sessions: list[Session] = []
    try:
        for _ in conn_ids:
            sessions.append(Session(host, port))
        pipe.send(("ok", [s.session_id for s in sessions]))
        while True:
            cmd = pipe.recv()
            kind = cmd[0]
            if kind == "prepare":
                _, op, names, data, depth = cmd
                for s, paths in zip(sessions, names):
                    blob, offs = encode_batch(op, paths, data, s.xid)
                    s.load(blob, offs)
                pipe.send(("ready",))
            elif kind == "go":
                depth = cmd[1]
                c0 = time.process_time()
                start, end = drive(sessions, depth)
                cpu = time.process_time() - c0
                pipe.send(("done", start, end, sum(s.done for s in sessions),
                           sum(s.errors for s in sessions),
                           next((s.first_err for s in sessions if s.first_err), 0), cpu))
            elif kind == "latency":
                _, op, paths, data = cmd
                pipe.send(("lat", sessions[0].latency(op, paths, data)))
            elif kind == "close":
                for s in sessions:
                    s.close()
                sessions = []
                pipe.send(("closed",))
                return
    except BaseException as e:  # report, do not hang the parent
        worker_failed(pipe, e)
    finally:
        close_sockets(sessions)


class Workers:
    """P worker processes holding N sessions between them against one target."""

    def __init__(self, target: str, connections: int, procs: int):
        host, port = parse_target(target)
        procs = max(1, min(procs, connections))
        ctx = mp.get_context("fork")
        self.procs = []
        self.pipes = []
        self.conn_ids: list[list[int]] = [list(range(connections))[i::procs] for i in range(procs)]
        for ids in self.conn_ids:
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker, args=(child, host, port, ids), daemon=True)
            p.start()
            child.close()
            self.procs.append(p)
            self.pipes.append(parent)
        self._gather("ok", timeout=30)

    def _gather(self, kind: str, timeout: float = 600.0) -> list[tuple]:
        out = []
        for pipe in self.pipes:
            if not pipe.poll(timeout):
                raise BenchError(f"a bench worker did not answer {kind!r} within {timeout}s")
            msg = pipe.recv()
            if msg[0] == "error":
                raise BenchError(f"bench worker: {msg[1]}")
            if msg[0] != kind:
                raise BenchError(f"bench worker answered {msg[0]!r}, expected {kind!r}")
            out.append(msg)
        return out

    def phase(self, op: str, names: dict[int, list[str]], data: bytes, depth: int,
              cpu_probe=None) -> PhaseResult:
        for pipe, ids in zip(self.pipes, self.conn_ids):
            pipe.send(("prepare", op, [names[i] for i in ids], data, depth))
        self._gather("ready")
        s0 = cpu_probe() if cpu_probe else None
        m0 = machine_cpu()
        for pipe in self.pipes:
            pipe.send(("go", depth))
        res = self._gather("done")
        m1 = machine_cpu()
        s1 = cpu_probe() if cpu_probe else None
        start = min(r[1] for r in res)
        end = max(r[2] for r in res)
        return PhaseResult(op, sum(r[3] for r in res), sum(r[4] for r in res),
                           next((r[5] for r in res if r[5]), 0), end - start, sum(r[6] for r in res),
                           None if s0 is None or s1 is None else s1 - s0,
                           None if m0 is None or m1 is None else m1 - m0)

    def latency(self, op: str, paths: list[str], data: bytes) -> LatencyResult:
        self.pipes[0].send(("latency", op, paths, data))
        return LatencyResult(op, self._gather_one("lat")[1])

    def _gather_one(self, kind: str, timeout: float = 600.0):
        pipe = self.pipes[0]
        if not pipe.poll(timeout):
            raise BenchError(f"a bench worker did not answer {kind!r}")
        msg = pipe.recv()
        if msg[0] == "error":
            raise BenchError(f"bench worker: {msg[1]}")
        return msg

    def close(self) -> None:
        close_workers(self.pipes, self.procs)


def run(target: str, cfg: BenchConfig, cpu_probe=None, log=None) -> RunResult:
    """All phases against one target. cpu_probe() -> the server's CPU seconds so far, if known."""
    token = secrets.token_hex(3)
    root = f"/coord-bench-{os.getpid()}-{token}"
    host, port = parse_target(target)
    # Short-lived admin sessions: one kept open through slow phases could expire while idle.
    with _admin(host, port) as admin:
        if cfg.namespace:
            err, _ = admin.call("create", f"/{cfg.namespace}", b"")
            if err not in (0, -110):                              # NODEEXISTS: an earlier run's
                raise BenchError(f"cannot create /{cfg.namespace} on {target}: error {err}")
            root = f"/{cfg.namespace}{root}"
        err, _ = admin.call("create", root, b"")
        if err:
            raise BenchError(f"cannot create {root} on {target}: error {err}")
    per_conn = max(1, cfg.ops // cfg.connections)
    names = {c: [f"{root}/c{c:03d}n{j:07d}" for j in range(per_conn)] for c in range(cfg.connections)}
    data = b"x" * cfg.data_size
    phases: dict[str, PhaseResult] = {}
    latency: dict[str, LatencyResult] = {}
    workers = Workers(target, cfg.connections, cfg.procs)
    try:
        for op in cfg.phases:
            r = workers.phase(op, names, data, cfg.depth, cpu_probe)
            phases[op] = r
            if log:
                log(f"{target} {op}: {r.ops_per_s:,.0f} ops/s ({r.ops} ops, {r.errors} errors)")
        if cfg.latency and cfg.latency_ops > 0:
            lpaths = [f"{root}/lat{j:07d}" for j in range(cfg.latency_ops)]
            warm = min(200, cfg.latency_ops)
            for op in LATENCY_PHASES:
                if op == "getData":
                    workers.latency(op, lpaths[:warm], data)  # warm the path, not measured
                latency[op] = workers.latency(op, lpaths, data)
            workers.latency("delete", lpaths, data)
    finally:
        workers.close()
    with _admin(host, port) as admin:
        if "delete" not in cfg.phases and "create" in cfg.phases:
            _cleanup(admin, [p for ps in names.values() for p in ps])
        admin.call("delete", root)
    return RunResult(target, phases, latency)


class _admin:
    def __init__(self, host: str, port: int):
        self.session = Session(host, port)

    def __enter__(self) -> Session:
        return self.session

    def __exit__(self, *exc) -> None:
        self.session.close()


def _cleanup(admin: Session, paths: list[str]) -> None:
    blob, offs = encode_batch("delete", paths, b"", admin.xid)
    admin.load(blob, offs)
    drive([admin], 64)


def machine_cpu() -> float | None:
    """Non-idle CPU seconds of the whole machine so far (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def proc_cpu_probe(pid: int):
    """CPU seconds (user+system, all threads) of a local process, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    path = f"/proc/{pid}/stat"

    def probe() -> float | None:
        try:
            with open(path) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            return None
    return probe
