"""`coord bench-ensemble`: a 3-node coord ensemble against a 3-node ZooKeeper 3.8 ensemble, same machine,
same run, same zoo.cfg settings, clients on a follower.

Three measurements (issue 4's benchmark):
- throughput of create / getData / setData / exists / delete through one follower, with the
  pipelined raw-socket client of `coord bench` (coord.bench.phases), median over rounds, rounds
  alternating which system goes first, ZooKeeper's JVMs warmed up by an unmeasured round (coord
  gets the same warm-up);
- failover: kill -9 of the leader, then new sessions and creates are tried through the survivors,
  round-robin every few ms; the time from the kill to the first create that succeeds. The killed
  server is restarted and the ensemble let settle between trials; median over trials;
- catch-up: a follower is stopped (kill -9), `--catchup-writes` creates go in through another
  follower, the follower is started again; the time from its start until it serves as a follower
  with every one of those writes applied (srvr's Zxid at least the leader's).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from coord.bench.launch import stop_process, thread_cpu, zookeeper_command, zookeeper_trace_flags
from coord.bench import phases as ph
from coord.bench import report
from coord.bench.client import BenchError, Session
from coord.ensemble import ZK_JAR, Planned, write_configs


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def four_letter(port: int, word: str, timeout: float = 1.0) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(word.encode())
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                return out.decode(errors="replace")
            out += b


def srvr(port: int) -> dict[str, str]:
    try:
        text = four_letter(port, "srvr")
    except OSError:
        return {}
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


class LocalEnsemble:
    """N servers of one engine (coord | zookeeper) as separate processes, from generated zoo.cfg files."""

    LOG_NAME = "server.log"   # each server's stdout and stderr, in its dir

    def __init__(self, workdir: Path, n: int, engine: str, *, force_sync: bool = True, tick_ms: int = 2000,
                 heap_mb: int = 1024, log_level: str = "warning", trace_stalls: bool = False):
        self.workdir = Path(workdir)
        self.trace_stalls = trace_stalls   # ZooKeeper: zookeeper_trace_flags in each member's dir
        self.log_level = log_level
        self.engine = engine
        self.heap_mb = heap_mb
        ports = _free_ports(3 * n)
        self.servers = {i + 1: Planned(i + 1, ports[3 * i], ports[3 * i + 1], ports[3 * i + 2],
                                       self.workdir / f"s{i + 1}") for i in range(n)}
        write_configs(list(self.servers.values()), tick_ms=tick_ms, force_sync=force_sync, engine=engine)
        for s in self.servers.values():   # the bench client needs no per-IP cap
            with open(s.config, "a") as f:
                f.write("maxClientCnxns=0\n")
        self.procs: dict[int, subprocess.Popen] = {}

    def _command(self, s: Planned) -> list[str]:
        if self.engine == "coord":
            return [sys.executable, "-m", "coord.cli", "serve", "--config", str(s.config), "--log-level", self.log_level]
        flags = zookeeper_trace_flags(s.dir) if self.trace_stalls else []
        return zookeeper_command(s.dir / "conf", s.config, s.dir, self.heap_mb, flags)

    def start(self, sid: int) -> None:
        s = self.servers[sid]
        env = dict(os.environ)
        env.pop("JAVA_TOOL_OPTIONS", None)
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        log = open(s.dir / self.LOG_NAME, "ab")
        self.procs[sid] = subprocess.Popen(self._command(s), stdout=log, stderr=subprocess.STDOUT, cwd=s.dir,
                                           env=env, start_new_session=True)
        log.close()

    def start_all(self, wait: float = 120.0) -> int:
        for sid in self.servers:
            self.start(sid)
        return self.wait_serving(wait=wait)

    def kill(self, sid: int) -> None:
        p = self.procs.pop(sid, None)
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(10)

    def stop(self) -> None:
        for sid in list(self.procs):
            stop_process(self.procs.pop(sid))

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs.values() if p.poll() is None]

    def client_port(self, sid: int) -> int:
        return self.servers[sid].client_port

    def mode(self, sid: int) -> str | None:
        return srvr(self.client_port(sid)).get("Mode")

    def zxid(self, sid: int) -> int:
        z = srvr(self.client_port(sid)).get("Zxid")
        return int(z, 16) if z else -1

    def wait_serving(self, sids=None, wait: float = 120.0) -> int:
        deadline = time.monotonic() + wait
        modes = {}
        while time.monotonic() < deadline:
            want = sids or list(self.procs)
            for sid in want:
                p = self.procs.get(sid)
                if p is not None and p.poll() is not None:
                    raise BenchError(f"{self.engine} server {sid} exited ({p.returncode}); "
                                     f"see {self.servers[sid].dir / self.LOG_NAME}")
            modes = {sid: self.mode(sid) for sid in want}
            leaders = [s for s, m in modes.items() if m == "leader"]
            if len(leaders) == 1 and all(m in ("leader", "follower") for m in modes.values()):
                return leaders[0]
            time.sleep(0.05)
        raise BenchError(f"{self.engine} ensemble not serving after {wait}s: {modes}")


@dataclass
class EnsembleBenchResult:
    throughput: dict[str, list[ph.RunResult]] = field(default_factory=dict)
    failover_s: dict[str, list[float]] = field(default_factory=dict)
    catchup_s: dict[str, list[float]] = field(default_factory=dict)
    idle: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # (CPU s per 10 s, wake-ups/s)
    errors: dict[str, str] = field(default_factory=dict)


def cpu_and_wakeups(pids: list[int]) -> tuple[float, int]:
    """CPU seconds and voluntary context switches so far, over every thread of the processes (a
    JVM's and PyPy's helper threads wake too). A voluntary switch is a thread going to sleep, i.e.
    one wake-up of its own; involuntary ones count preemptions, which follow the machine's load. A
    thread that ended between two samples drops out of the second (its counts go with it)."""
    cpu = sum(u + s for u, s in thread_cpu(pids).values())
    wakeups = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{pid}/task/{t}/status") as f:
                    wakeups += sum(int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt"))
            except (OSError, IndexError, ValueError):
                continue        # a thread that ended meanwhile
    return cpu, wakeups


def idle_trial(ens: LocalEnsemble, seconds: float, settle_s: float = 10.0) -> tuple[float, float]:
    """An ensemble with no client: its servers' CPU seconds per 10 s and wake-ups per second (what
    an idle coordination service costs the machine it shares), after settle_s."""
    ens.wait_serving()
    time.sleep(settle_s)
    pids = ens.pids()
    c0, x0 = cpu_and_wakeups(pids)
    t0 = time.monotonic()
    time.sleep(seconds)
    c1, x1 = cpu_and_wakeups(pids)
    dt = time.monotonic() - t0
    return (c1 - c0) * 10 / dt, (x1 - x0) / dt


def failover_trial(ens: LocalEnsemble, tag: str, settle_s: float = 1.0, limit_s: float = 120.0) -> float:
    leader = ens.wait_serving()
    survivors = [s for s in ens.servers if s != leader]
    time.sleep(settle_s)
    t0 = time.monotonic()
    ens.kill(leader)
    n = 0
    t1 = None
    while t1 is None:
        if time.monotonic() - t0 > limit_s:
            ens.start(leader)
            ens.wait_serving(wait=600)
            return float("inf")         # counted as "more than limit_s"
        for sid in survivors:
            n += 1
            try:
                sess = Session("127.0.0.1", ens.client_port(sid), timeout_ms=10000, connect_timeout=0.5)
            except (OSError, BenchError, ValueError):
                continue
            try:
                sess.sock.settimeout(2.0)
                err, _ = sess.call("create", f"/failover-{tag}-{n}", b"")
                if err == 0:
                    t1 = time.monotonic()
                    break
            except (OSError, BenchError, ValueError):
                pass
            finally:
                sess.sock.close()
        if t1 is None:
            time.sleep(0.005)
    ens.start(leader)
    ens.wait_serving()
    return t1 - t0


def catchup_trial(ens: LocalEnsemble, writes: int, tag: str, cfg: ph.BenchConfig) -> float:
    leader = ens.wait_serving()
    followers = [s for s in ens.servers if s != leader]
    lagger, writer = followers[0], followers[1]
    ens.kill(lagger)
    root = f"/catchup-{tag}"
    target = f"127.0.0.1:{ens.client_port(writer)}"
    sess = Session("127.0.0.1", ens.client_port(writer))
    err, _ = sess.call("create", root, b"")
    sess.close()
    if err:
        raise BenchError(f"cannot create {root}: error {err}")
    per = max(1, writes // cfg.connections)
    names = {c: [f"{root}/c{c:02d}n{j:07d}" for j in range(per)] for c in range(cfg.connections)}
    workers = ph.Workers(target, cfg.connections, cfg.procs)
    try:
        r = workers.phase("create", names, b"x" * cfg.data_size, cfg.depth)
    finally:
        workers.close()
    if r.errors:
        raise BenchError(f"{r.errors} of the catch-up writes failed (first error {r.first_err})")
    goal = max(ens.zxid(leader), ens.zxid(writer))
    t0 = time.monotonic()
    ens.start(lagger)
    port = ens.client_port(lagger)
    while True:
        info = srvr(port)
        if info.get("Mode") == "follower" and int(info.get("Zxid", "-1"), 16) >= goal:
            t1 = time.monotonic()
            break
        if time.monotonic() - t0 > 600:
            raise BenchError(f"{ens.engine}: follower not caught up after 600 s")
        time.sleep(0.01)
    # it serves: a plain read of the last write through it
    s = Session("127.0.0.1", port)
    last = names[cfg.connections - 1][-1]
    err, _ = s.call("exists", last)
    s.close()
    if err:
        raise BenchError(f"{ens.engine}: caught-up follower does not have {last} (error {err})")
    return t1 - t0


def _throughput(ens, res, cfg, systems, log, *, rounds, warmup_ops, **_):
    targets = {}
    probes = {}
    for e in systems:
        leader = ens[e].wait_serving()
        f = next(s for s in ens[e].servers if s != leader)
        targets[e] = f"127.0.0.1:{ens[e].client_port(f)}"
        probes[targets[e]] = _multi_probe(ens[e].pids())
    if warmup_ops > 0:
        warm = ph.BenchConfig(**{**cfg.__dict__, "ops": warmup_ops, "latency_ops": min(cfg.latency_ops, 500)})
        for e in ("zookeeper", "zookeeper", "coord"):
            log(f"warm-up: {e}")
            ph.run(targets[e], warm, None, None)
    from coord.bench.main import run_rounds
    runs = run_rounds([targets["coord"], targets["zookeeper"]], cfg, rounds, probes, log)
    res.throughput = {e: runs[targets[e]] for e in systems}


def _failover(ens, res, cfg, systems, log, *, failover_trials, **_):
    for e in systems:
        res.failover_s[e] = []
    for i in range(failover_trials):
        for e in (systems if i % 2 == 0 else systems[::-1]):
            t = failover_trial(ens[e], f"{i}")
            res.failover_s[e].append(t)
            log(f"failover trial {i + 1}/{failover_trials}: {e} {t * 1000:.0f} ms")


def _catchup(ens, res, cfg, systems, log, *, catchup_writes, catchup_trials, **_):
    for e in systems:
        res.catchup_s[e] = []
    ccfg = ph.BenchConfig(**{**cfg.__dict__, "ops": catchup_writes})
    for i in range(catchup_trials):
        for e in (systems if i % 2 == 0 else systems[::-1]):
            t = catchup_trial(ens[e], catchup_writes, f"{i}", ccfg)
            res.catchup_s[e].append(t)
            log(f"catch-up trial {i + 1}/{catchup_trials}: {e} {t:.2f} s after missing {catchup_writes:,} writes")


def _idle(ens, res, cfg, systems, log, *, idle_trials, idle_seconds, idle_settle, **_):
    for e in systems:
        res.idle[e] = []
    for i in range(idle_trials):
        for e in (systems if i % 2 == 0 else systems[::-1]):
            cpu, wakes = idle_trial(ens[e], idle_seconds, idle_settle)
            res.idle[e].append((cpu, wakes))
            log(f"idle trial {i + 1}/{idle_trials}: {e} {cpu:.2f} CPU s per 10 s, {wakes:.0f} wake-ups/s")


_PARTS = {"idle": _idle, "throughput": _throughput, "failover": _failover, "catchup": _catchup}


def run(cfg: ph.BenchConfig, *, rounds: int, failover_trials: int, catchup_writes: int, catchup_trials: int,
        force_sync: bool, warmup_ops: int, workdir: str | None, as_json: bool, console: Console,
        parts: tuple[str, ...] = ("throughput", "failover", "catchup"), server_log_level: str = "warning",
        idle_trials: int = 3, idle_seconds: float = 10.0, idle_settle: float = 10.0) -> dict:
    if not (ZK_JAR.exists() and shutil.which("java")):
        raise RuntimeError("Apache ZooKeeper is not installed (apt-get install zookeeper)")
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="coord-bench-ensemble-"))
    base.mkdir(parents=True, exist_ok=True)
    log = (lambda msg: None) if as_json else (lambda msg: console.print(f"[dim]{msg}[/dim]"))
    res = EnsembleBenchResult()
    systems = ("coord", "zookeeper")
    ens = {e: LocalEnsemble(base / e, 3, e, force_sync=force_sync, log_level=server_log_level) for e in systems}
    try:
        for e in systems:
            leader = ens[e].start_all()
            log(f"{e}: 3 servers serving, leader {leader}; data under {base / e}")
        for part in _PARTS:
            if part not in parts:
                continue
            try:
                _PARTS[part](ens, res, cfg, systems, log, rounds=rounds, warmup_ops=warmup_ops,
                             failover_trials=failover_trials, catchup_writes=catchup_writes,
                             catchup_trials=catchup_trials, idle_trials=idle_trials, idle_seconds=idle_seconds,
                             idle_settle=idle_settle)
            except (BenchError, OSError) as err:
                res.errors[part] = str(err)
                log(f"{part} failed: {err}")
    finally:
        for e in systems:
            ens[e].stop()
        if not workdir:
            shutil.rmtree(base, ignore_errors=True)
    return finish(res, cfg, rounds, force_sync, catchup_writes, as_json, console)


def _multi_probe(pids: list[int]):
    probes = [ph.proc_cpu_probe(p) for p in pids]

    def probe():
        vals = [p() for p in probes]
        return None if any(v is None for v in vals) else sum(vals)
    return probe


def _med(xs):
    return statistics.median(xs) if xs else None


def finish(res: EnsembleBenchResult, cfg: ph.BenchConfig, rounds: int, force_sync: bool, catchup_writes: int,
           as_json: bool, console: Console) -> dict:
    out: dict = {"config": {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
                            "rounds": rounds, "force_sync": force_sync, "catchup_writes": catchup_writes},
                 "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    rows = []
    if res.throughput:
        a = report.summary(res.throughput["coord"])
        b = report.summary(res.throughput["zookeeper"])
        out["throughput"] = {"coord": a["throughput"], "zookeeper": b["throughput"],
                             "errors": {"coord": a["errors"], "zookeeper": b["errors"]}}
        for op in a["throughput"]:
            ca, zb = a["throughput"][op], b["throughput"].get(op)
            rows.append((f"{op} (ops/s)", f"{ca:,.0f}", f"{zb:,.0f}" if zb else "-",
                         f"{ca / zb:.2f}" if zb else "-", ">= 1.0"))
    if res.failover_s.get("coord") and res.failover_s.get("zookeeper"):
        fa, fb = _med(res.failover_s["coord"]), _med(res.failover_s["zookeeper"])
        out["failover_s"] = {k: [None if x == float("inf") else x for x in v] for k, v in res.failover_s.items()}
        ms = (lambda v: ">120000" if v == float("inf") else f"{v * 1000:.0f}")
        rows.append((f"failover, median of {len(res.failover_s['coord'])} (ms)", ms(fa), ms(fb),
                     "-" if float("inf") in (fa, fb) else f"{fa / fb:.2f}", "<= 0.5"))
    if res.catchup_s.get("coord") and res.catchup_s.get("zookeeper"):
        ca, cb = _med(res.catchup_s["coord"]), _med(res.catchup_s["zookeeper"])
        out["catchup_s"] = res.catchup_s
        rows.append((f"catch-up after {catchup_writes:,} writes, median of {len(res.catchup_s['coord'])} (s)",
                     f"{ca:.2f}", f"{cb:.2f}", f"{ca / cb:.2f}", "<= 1.0"))
    if res.idle.get("coord") and res.idle.get("zookeeper"):
        out["idle"] = res.idle
        for k, name, fmt in ((0, "idle: CPU s per 10 s, 3 servers", "{:.2f}"),
                             (1, "idle: wake-ups/s (voluntary context switches)", "{:.0f}")):
            ca, cb = _med([t[k] for t in res.idle["coord"]]), _med([t[k] for t in res.idle["zookeeper"]])
            rows.append((f"{name}, median of {len(res.idle['coord'])}", fmt.format(ca), fmt.format(cb),
                         f"{ca / cb:.2f}" if cb else "-", "<= 1.0"))
    out["table"] = rows
    out["errors"] = res.errors
    if as_json:
        print(json.dumps(out, indent=2, default=str))
    else:
        t = Table(title=f"coord vs ZooKeeper 3.8, 3-node ensembles, clients on a follower, "
                        f"forceSync={'yes' if force_sync else 'no'}, {cfg.connections} conns x {cfg.depth} "
                        f"in flight, {cfg.ops:,} ops/phase, median of {rounds} round(s)")
        for c in ("measure", "coord", "ZooKeeper", "ratio", "goal"):
            t.add_column(c, justify="right" if c != "measure" else "left")
        for r in rows:
            t.add_row(*r)
        console.print(t)
        for part, err in res.errors.items():
            console.print(f"[bold red]{part} not measured:[/] {err}")
    return out


def add_command(main) -> None:
    import click

    @main.command("bench-ensemble")
    @click.option("--connections", "-c", default=8, show_default=True)
    @click.option("--depth", "-d", default=32, show_default=True, help="Requests in flight per connection.")
    @click.option("--ops", default=50_000, show_default=True, help="Ops per throughput phase.")
    @click.option("--data-size", default=100, show_default=True)
    @click.option("--procs", default=2, show_default=True, help="Load client processes.")
    @click.option("--rounds", default=3, show_default=True)
    @click.option("--warmup-ops", default=20_000, show_default=True)
    @click.option("--failover-trials", default=5, show_default=True)
    @click.option("--catchup-writes", default=100_000, show_default=True)
    @click.option("--catchup-trials", default=1, show_default=True)
    @click.option("--no-fsync", is_flag=True, help="forceSync=no on both systems.")
    @click.option("--idle-trials", default=3, show_default=True, help="Idle part: trials per system.")
    @click.option("--idle-seconds", default=10.0, show_default=True, help="Idle part: seconds measured per trial.")
    @click.option("--idle-settle", default=10.0, show_default=True,
                  help="Idle part: seconds to wait first, so that start-up work (recovery, the huge-page pass, JIT) is over.")
    @click.option("--only", default="throughput,failover,catchup", show_default=True,
                  help="Parts, of idle (servers' CPU and wake-ups with no client), throughput, failover, catchup.")
    @click.option("--workdir", default=None, help="Keep data and logs here.")
    @click.option("--server-log-level", default="warning", show_default=True, help="coord servers' log level.")
    @click.option("--json", "as_json", is_flag=True)
    def bench_ensemble(connections, depth, ops, data_size, procs, rounds, warmup_ops, failover_trials,
                       catchup_writes, catchup_trials, idle_trials, idle_seconds, idle_settle, no_fsync, only,
                       workdir, server_log_level, as_json) -> None:
        """Benchmark a 3-node coord ensemble against a 3-node ZooKeeper 3.8 ensemble (clients on followers)."""
        import signal

        def _terminate(signum, frame):
            raise KeyboardInterrupt   # so that the ensembles are stopped on the way out
        signal.signal(signal.SIGTERM, _terminate)
        parts = tuple(p.strip() for p in only.split(",") if p.strip())
        bad = [p for p in parts if p not in _PARTS]
        if bad:
            raise click.BadParameter(f"unknown part(s) {bad}")
        cfg = ph.BenchConfig(connections=connections, depth=depth, ops=ops, data_size=data_size, procs=procs,
                             latency_ops=500)
        console = Console(stderr=as_json)
        try:
            run(cfg, rounds=rounds, failover_trials=failover_trials, catchup_writes=catchup_writes,
                catchup_trials=catchup_trials, force_sync=not no_fsync, warmup_ops=warmup_ops,
                workdir=workdir, as_json=as_json, console=console, parts=parts, server_log_level=server_log_level,
                idle_trials=idle_trials, idle_seconds=idle_seconds, idle_settle=idle_settle)
        except (BenchError, OSError, RuntimeError) as e:
            raise click.ClickException(str(e))
