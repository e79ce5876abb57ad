"""`coord bench --open-loop`: tail latency of coord and of a real ZooKeeper 3.8, side by side in one run.

Both systems are started here (standalone, or 3-node ensembles with the client's connections spread
over every member), forceSync=yes unless told otherwise. For each op the maximum rate of ZooKeeper
is measured first (closed loop, coord.bench.openloop.run_closed: it doubles as both systems' warm-up),
then each system gets the op open-loop at each fraction of that rate, the two alternating which goes
first; every run has its own warm-up seconds before its measured window. Reported per run: p50, p99,
p99.9 and max of latency counted from the scheduled send time, the generator's own lateness, the
machine's load average, and (coord) the server's stalls by cause (coord.aio.stalls, read from
/metrics). With plot_dir, an HDR-style percentile plot per op (coord.bench.hdrplot).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from coord.bench.client import BenchError, Session, drive, encode_batch
from coord.bench.launch import cpu_per_op, rss_mib, thread_cpu
from coord.bench.openloop import OPEN_OPS, OpenLoopClient, Plan, quantiles

SYSTEMS = ("coord", "zookeeper")
METRICS_CLASS = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
JIT_METRICS = ("coord_jit_compiled", "coord_jit_rearms", "coord_jit_settled")


@dataclass
class TailConfig:
    ops: tuple[str, ...] = OPEN_OPS
    fractions: tuple[float, ...] = (0.25, 0.5, 0.75)
    duration_s: float = 60.0
    warmup_s: float = 10.0
    connections: int = 16
    procs: int = 2
    data_size: int = 100
    keys: int = 10_000
    calib_ops: int = 30_000
    depth: int = 32
    ensemble: bool = False
    force_sync: bool = True
    rates: dict | None = None   # op -> ops/s: skip the calibration and take these as 100%
    coord_env: dict | None = None   # extra environment of the coord servers (PYPY_GC_*, COORD_*): A/B runs
    rounds: int = 1                 # rounds of every (op, fraction) on the same servers; the table shows medians
    coord_cfg: dict | None = None   # extra zoo.cfg settings of the coord servers (coord.collapseHugePages=false): A/B runs
    preload: int = 0                # znodes created (closed loop, in the create/delete pool) before the runs: a large tree
    attribute: bool = False         # trace both systems' stalls and charge requests over p99 to them (coord.bench.tailcause)


@dataclass
class _Sys:
    """One system under test: its client targets, its pids, and how to read coord's stall counters."""
    name: str
    targets: list[tuple[str, int]]
    pids: list[int]
    metrics_urls: list[str] = field(default_factory=list)
    root: str = ""
    pool_lo: int = 0
    pool_hi: int = 0
    mbase: int = 0
    trace_dir: Path | None = None   # COORD_STALL_TRACE of its servers (coord, --attribute)
    zk_logs: tuple[list[Path], list[Path]] | None = None   # ZooKeeper, --attribute: server and safepoint logs

    def traces(self) -> list[tuple[float, float, str]] | None:
        """Its servers' stalls over 2 ms (tailcause.read_traces / read_zookeeper), or None untraced."""
        from coord.bench import tailcause
        if self.trace_dir is not None:
            return tailcause.read_traces(self.trace_dir)
        if self.zk_logs is not None:
            return tailcause.read_zookeeper(*self.zk_logs)
        return None

    def counters(self) -> tuple[dict, dict]:
        """(cause -> [count, total ms, count of 10 ms or more], JIT name -> value), each summed over
        the members (/metrics: coord_stall_ms, coord_stalls_over_10ms; on PyPy coord_jit_compiled,
        coord_jit_rearms and coord_jit_settled, so a run says whether the JIT switch moved in it)."""
        out: dict = {}
        jit: dict = {}
        for url in self.metrics_urls:
            try:
                text = urllib.request.urlopen(url, timeout=5).read().decode()
            except OSError:
                continue
            for line in text.splitlines():
                name, _, val = line.rpartition(" ")
                if name in JIT_METRICS:
                    jit[name] = jit.get(name, 0.0) + float(val)
                    continue
                slot = {"coord_stall_ms_count": 0, "coord_stall_ms_sum": 1,
                        "coord_stalls_over_10ms": 2}.get(name.split("{")[0])
                if slot is None or 'cause="' not in name:
                    continue
                cause = name.split('cause="')[1].split('"')[0]
                out.setdefault(cause, [0.0, 0.0, 0.0])[slot] += float(val)
        return out, jit


def _closed(s: _Sys, op: str, paths: list[str], data: bytes) -> int:
    """Set-up and clean-up writes through one session, pipelined; returns the errors."""
    host, port = s.targets[0]
    sess = Session(host, port)
    try:
        errors = 0
        for i in range(0, len(paths), 20_000):
            blob, offs = encode_batch(op, paths[i:i + 20_000], data, sess.xid)
            sess.load(blob, offs)
            drive([sess], 64)
            errors += sess.errors
        return errors
    finally:
        sess.close()


def _prepare(s: _Sys, cfg: TailConfig) -> None:
    s.root = f"/coord-tail-{os.getpid()}-{secrets.token_hex(3)}"
    data = b"x" * cfg.data_size
    if _closed(s, "create", [s.root], b"") or _closed(
            s, "create", [f"{s.root}/k{i:07d}" for i in range(cfg.keys)], data):
        raise BenchError(f"{s.name}: cannot create the preloaded znodes under {s.root}")
    if cfg.preload > 0:
        if _closed(s, "create", [f"{s.root}/c{i:09d}" for i in range(cfg.preload)], data):
            raise BenchError(f"{s.name}: cannot preload {cfg.preload:,} znodes under {s.root}")
        s.pool_hi = cfg.preload


def _cleanup(s: _Sys, cfg: TailConfig) -> None:
    _closed(s, "delete", [f"{s.root}/c{i:09d}" for i in range(s.pool_lo, s.pool_hi)], b"")
    _closed(s, "delete", [f"{s.root}/k{i:07d}" for i in range(cfg.keys)], b"")
    _closed(s, "delete", [s.root], b"")


def _plan(s: _Sys, cfg: TailConfig, op: str, rate: float = 0.0, count: int | None = None) -> Plan:
    p = Plan(op, s.root, rate, cfg.warmup_s, cfg.duration_s, keys=cfg.keys, data_size=cfg.data_size, count=count)
    n = p.total
    if op == "create":
        p.base, s.pool_hi = s.pool_hi, s.pool_hi + n
    elif op == "delete":
        short = n - (s.pool_hi - s.pool_lo)
        if short > 0:   # top the pool up, off the clock
            _closed(s, "create", [f"{s.root}/c{i:09d}" for i in range(s.pool_hi, s.pool_hi + short)],
                    b"x" * cfg.data_size)
            s.pool_hi += short
        p.base, s.pool_lo = s.pool_lo, s.pool_lo + n
    elif op == "multi":
        p.base, s.mbase = s.mbase, s.mbase + n
    return p


def _calibrate(s: _Sys, cfg: TailConfig, log) -> dict:
    out = {}
    with OpenLoopClient(s.targets, cfg.connections, cfg.procs) as cl:
        for op in cfg.ops:
            rate, done, errors = cl.max_rate(_plan(s, cfg, op, count=cfg.calib_ops), cfg.depth)
            out[op] = rate
            log(f"{s.name} {op}: max {rate:,.0f} ops/s closed loop ({done} acknowledged, {errors} errors)")
    return out


def _one(s: _Sys, cfg: TailConfig, op: str, frac: float, rate: float, log) -> tuple[dict, object]:
    plan = _plan(s, cfg, op, rate=rate)   # first: a delete run's pool top-up is no part of its stalls
    load0 = os.getloadavg()[0]
    st0, jit0 = s.counters()
    with OpenLoopClient(s.targets, cfg.connections, cfg.procs) as cl:
        cpu0 = thread_cpu(s.pids)   # after the client's start-up: its connects are no part of the run
        res = cl.run(plan)
        cpu1 = thread_cpu(s.pids)
    st1, jit1 = s.counters()
    q = quantiles(res.lat_us)
    lq = quantiles(res.late_us)
    z = [0, 0, 0]
    stalls = {c: {"count": int(v[0] - st0.get(c, z)[0]), "ms": round(v[1] - st0.get(c, z)[1], 1),
                  "over_10ms": int(v[2] - st0.get(c, z)[2])}
              for c, v in st1.items() if v[0] - st0.get(c, z)[0] > 0}
    jit = ({"compiled": int(jit1.get("coord_jit_compiled", 0) - jit0.get("coord_jit_compiled", 0)),
            "rearms": int(jit1.get("coord_jit_rearms", 0) - jit0.get("coord_jit_rearms", 0)),
            "settled_at_end": int(jit1.get("coord_jit_settled", 0))}   # members with decay=200 on
           if jit1 else None)
    slow = measured = None
    traces = s.traces() if res.lat_us else None
    if traces is not None:
        from coord.bench import tailcause
        t0 = min(res.at_s)
        t1 = max(t + lat / 1e6 for t, lat in zip(res.at_s, res.lat_us))
        slow = tailcause.attribute(res.at_s, res.lat_us, traces, q["p99_ms"], (t0, t1))
        measured = tailcause.window_counts(traces, (t0, t1))
        log(f"{s.name} {op} @{frac:.0%}: {tailcause.summary(slow)}; stalls of 10 ms or more in the measured "
            f"window: {sum(v['over_10ms'] for v in measured.values())} "
            f"{ {c: v['over_10ms'] for c, v in measured.items() if v['over_10ms']} }")
    row = {"system": s.name, "op": op, "fraction": frac, "rate": round(rate, 1), **q,
           "sent": res.sent, "errors": res.errors, "first_err": res.first_err,
           "client_cpu_s": round(res.client_cpu_s, 2), "late_p99_ms": lq["p99_ms"], "late_max_ms": lq["max_ms"],
           "loadavg": [round(load0, 2), round(os.getloadavg()[0], 2)], "rss_mib": round(rss_mib(s.pids)),
           "server_cpu_us": cpu_per_op(cpu0, cpu1, res.sent),   # per request sent, warm-up included
           "stalls": stalls, **({"slow_by_cause": slow} if slow else {}),
           **({"stalls_measured": measured} if measured is not None else {}),
           **({"jit": jit} if jit is not None else {})}
    log(f"{s.name} {op} @{frac:.0%} ({rate:,.0f}/s): p50 {q['p50_ms']:.3f} p99 {q['p99_ms']:.3f} "
        f"p99.9 {q['p999_ms']:.3f} max {q['max_ms']:.3f} ms; client late p99 {lq['p99_ms']:.3f} ms; "
        f"errors {res.errors}; load {load0:.1f}; server CPU {row['server_cpu_us']} us/op; stalls {stalls}"
        + (f"; JIT {jit}" if jit else ""))
    return row, res.lat_us


def run(cfg: TailConfig, workdir: str | None = None, plot_dir: str | None = None, log=print) -> dict:
    from coord.bench.launch import zookeeper_available
    if not zookeeper_available():
        raise RuntimeError("Apache ZooKeeper is not installed (apt-get install zookeeper)")
    bad = [op for op in cfg.ops if op not in OPEN_OPS]
    if bad:
        raise ValueError(f"unknown op(s) {bad}; choose from {list(OPEN_OPS)}")
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="coord-tail-"))
    base.mkdir(parents=True, exist_ok=True)
    started = []
    try:
        systems = {name: _start(name, cfg, base, started) for name in SYSTEMS}
        log(f"started {', '.join(f'{n} {s.targets}' for n, s in systems.items())}; "
            f"forceSync={'yes' if cfg.force_sync else 'no'}; work dir {base}")
        for s in systems.values():
            _prepare(s, cfg)
        calib = {n: _calibrate(s, cfg, log) for n, s in systems.items()}
        full = {**calib["zookeeper"], **(cfg.rates or {})}
        rows, curves = [], {}
        i = 0
        for rnd in range(max(1, cfg.rounds)):
            for op in cfg.ops:
                for frac in cfg.fractions:
                    order = SYSTEMS if i % 2 == 0 else SYSTEMS[::-1]
                    i += 1
                    for name in order:
                        try:
                            row, lat = _one(systems[name], cfg, op, frac, frac * full[op], log)
                        except BenchError as e:   # recorded; the other runs still tell something
                            log(f"{name} {op} @{frac:.0%}: failed: {e}")
                            rows.append({"system": name, "op": op, "fraction": frac, "round": rnd,
                                         "rate": round(frac * full[op], 1), "error": str(e)})
                            continue
                        row["round"] = rnd
                        rows.append(row)
                        curves[(op, frac, name)] = lat   # the plot shows the last round
        for s in systems.values():
            _cleanup(s, cfg)
    finally:
        for stop in reversed(started):
            stop()
        if not workdir:
            shutil.rmtree(base, ignore_errors=True)
    out = {"config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "max_rate": calib, "runs": rows}
    if plot_dir:
        from coord.bench import hdrplot
        out["plots"] = hdrplot.plot_all(curves, Path(plot_dir), "ensemble" if cfg.ensemble else "standalone")
    return out


def _start(name: str, cfg: TailConfig, base: Path, started: list) -> _Sys:
    env = dict(cfg.coord_env or {}) if name == "coord" else {}
    trace = base / "stall-trace" if name == "coord" and cfg.attribute else None
    if trace is not None:
        from coord.aio.stalls import TRACE_ENV
        env[TRACE_ENV] = str(trace)
    with server_env(env):
        s = _start_servers(name, cfg, base, started)
    s.trace_dir = trace
    return s


@contextmanager
def server_env(extra: dict | None):
    """os.environ with `extra` while servers are started (they copy the environment at start)."""
    saved = dict(os.environ)
    os.environ.update(extra or {})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _start_servers(name: str, cfg: TailConfig, base: Path, started: list) -> _Sys:
    from coord.bench.launch import (CoordServerProcess, ZooKeeperProcess, free_port, zookeeper_trace_files,
                                    zookeeper_trace_flags)
    zk_traced = name == "zookeeper" and cfg.attribute
    if cfg.ensemble:
        from coord.bench.ensemble import LocalEnsemble
        ens = LocalEnsemble(base / name, 3, name, force_sync=cfg.force_sync, trace_stalls=zk_traced)
        urls = []
        if name == "coord":
            for s in ens.servers.values():
                port = free_port()
                with open(s.config, "a") as f:
                    f.write(f"metricsProvider.className={METRICS_CLASS}\nmetricsProvider.httpHost=127.0.0.1\n"
                            f"metricsProvider.httpPort={port}\n")
                    f.write("".join(f"{k}={v}\n" for k, v in (cfg.coord_cfg or {}).items()))
                urls.append(f"http://127.0.0.1:{port}/metrics")
        started.append(ens.stop)
        ens.start_all()
        out = _Sys(name, [("127.0.0.1", s.client_port) for s in ens.servers.values()], ens.pids(), urls)
        if zk_traced:
            out.zk_logs = zookeeper_trace_files([(s.dir, s.dir / ens.LOG_NAME) for s in ens.servers.values()])
        return out
    if name == "coord":
        port = free_port()
        proc = CoordServerProcess(base / name, force_sync=cfg.force_sync, extra_cfg={
            "metricsProvider.className": METRICS_CLASS, "metricsProvider.httpHost": "127.0.0.1",
            "metricsProvider.httpPort": str(port), **(cfg.coord_cfg or {})})
        urls = [f"http://127.0.0.1:{port}/metrics"]
    else:
        flags = zookeeper_trace_flags(base / name) if zk_traced else []
        proc, urls = ZooKeeperProcess(base / name, force_sync=cfg.force_sync, jvm_flags=flags), []
    started.append(proc.stop)
    proc.start(wait=120)
    out = _Sys(name, [("127.0.0.1", proc.client_port)], [proc.pid], urls)
    if zk_traced:
        out.zk_logs = zookeeper_trace_files([(proc.workdir, proc.workdir / proc.log_name)])
    return out


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def medians(out: dict) -> dict:
    """(op, fraction, system) -> one row whose p50/p99/p99.9/max, client lateness and load are the
    medians over the rounds that did not fail (`n_rounds`: how many)."""
    groups: dict = {}
    for r in out["runs"]:
        if "error" not in r:
            groups.setdefault((r["op"], r["fraction"], r["system"]), []).append(r)
    res = {}
    for k, rs in groups.items():
        m = dict(rs[-1])
        for q in ("p50_ms", "p99_ms", "p999_ms", "max_ms", "late_p99_ms"):
            m[q] = _median([r[q] for r in rs])
        m["loadavg"] = [_median([r["loadavg"][0] for r in rs]), _median([r["loadavg"][1] for r in rs])]
        m["n_rounds"] = len(rs)
        res[k] = m
    for r in out["runs"]:   # a key whose every round failed shows the failure
        k = (r["op"], r["fraction"], r["system"])
        if k not in res:
            res[k] = r
    return res


def stall_table(out: dict) -> list[str]:
    """Markdown rows: each system's stalls over 2 ms per op and fraction, by cause, summed over the
    rounds (count / total ms / of them 10 ms or more), with the rounds' worst RSS of both systems.
    With --attribute the measured windows alone, from both systems' own records (coord's stall trace;
    ZooKeeper's slow-fsync warnings and JVM safepoint log); else coord's counters over each whole
    run, warm-up included, and none for ZooKeeper, which has no such counters."""
    measured = any("stalls_measured" in r for r in out["runs"])
    what = "in the measured windows" if measured else "warm-up included"
    lines = [f"| op | load | rounds | coord stalls > 2 ms by cause ({what}): count / total ms / >= 10 ms | "
             "ZooKeeper stalls > 2 ms | coord RSS MiB | ZooKeeper RSS MiB |", "|---|---:|---:|---|---|---:|---:|"]
    keys = []
    for r in out["runs"]:
        if (r["op"], r["fraction"]) not in keys:
            keys.append((r["op"], r["fraction"]))
    for op, frac in keys:
        rs = [r for r in out["runs"] if r["op"] == op and r["fraction"] == frac and "error" not in r]
        text = {}
        for name in SYSTEMS:
            tot: dict = {}
            for r in rs:
                if r["system"] != name:
                    continue
                for c, v in r.get("stalls_measured" if measured else "stalls", {}).items():
                    t = tot.setdefault(c, [0, 0.0, 0])
                    t[0] += v["count"]
                    t[1] += v["ms"]
                    t[2] += v["over_10ms"]
            traced = measured or name == "coord"
            text[name] = (", ".join(f"{c} {v[0]} / {v[1]:.0f} / {v[2]}" for c, v in sorted(tot.items()))
                          or "none") if traced else "-"
        rss = {n: max((r["rss_mib"] for r in rs if r["system"] == n), default=0) for n in SYSTEMS}
        lines.append(f"| {op} | {frac:.0%} | {len([r for r in rs if r['system'] == 'coord'])} | {text['coord']} | "
                     f"{text['zookeeper']} | {rss['coord']} | {rss['zookeeper']} |")
    return lines


def cause_table(out: dict) -> list[str]:
    """Markdown rows (--attribute): per run of either system, its requests at or over its p99 by the
    stall cause that overlapped each most ("none": no stall of 2 ms or more did)."""
    rows = [r for r in out["runs"] if r.get("slow_by_cause")]
    if not rows:
        return []
    from coord.bench.tailcause import shares
    lines = ["| op | load | round | system | p99 ms | requests >= p99 | by the stall they waited on |",
             "|---|---:|---:|---|---:|---:|---|"]
    for r in rows:
        a = r["slow_by_cause"]
        lines.append(f"| {r['op']} | {r['fraction']:.0%} | {r.get('round', 0)} | {r['system']} | "
                     f"{a['bound_ms']:.2f} | {a['slow']:,} | {shares(a)} |")
    return lines


def table(out: dict) -> list[str]:
    """Markdown rows: per op and fraction, coord and ZooKeeper p50/p99/p99.9/max (ms) and the ratios
    (medians over the rounds when there were several)."""
    by = medians(out)
    lines = ["| op | load | rate/s | coord p50 | p99 | p99.9 | max | ZooKeeper p50 | p99 | p99.9 | max | "
             "p99 ratio | p99.9 ratio | max ratio | client late p99 | load avg |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    seen = []
    for r in out["runs"]:
        k = (r["op"], r["fraction"])
        if k in seen:
            continue
        seen.append(k)
        c, z = by.get(k + ("coord",)), by.get(k + ("zookeeper",))
        if not c or not z or "error" in c or "error" in z:
            lines.append(f"| {k[0]} | {k[1]:.0%} | failed: {(c or {}).get('error') or (z or {}).get('error')} |")
            continue

        def ratio(q):
            return f"{c[q] / z[q]:.2f}" if c[q] and z[q] else "-"
        lines.append(f"| {k[0]} | {k[1]:.0%} | {c['rate']:,.0f} | {c['p50_ms']:.3f} | {c['p99_ms']:.3f} | "
                     f"{c['p999_ms']:.3f} | {c['max_ms']:.1f} | {z['p50_ms']:.3f} | {z['p99_ms']:.3f} | "
                     f"{z['p999_ms']:.3f} | {z['max_ms']:.1f} | {ratio('p99_ms')} | {ratio('p999_ms')} | "
                     f"{ratio('max_ms')} | {max(c['late_p99_ms'], z['late_p99_ms']):.3f} | "
                     f"{c['loadavg'][0]:.1f} |")
    return lines


def dumps(out: dict) -> str:
    return json.dumps(out, indent=2, default=str)
