"""`coord bench` modes: one target, target vs compare, the null-server self-check, and coord vs a
real ZooKeeper 3.8 started here.

Fairness rules (see docs/benchmarks.md): both systems are measured in the same run on the same
machine by the same client, alternating which goes first in each round; ZooKeeper's JVM is warmed
up with a full unmeasured round first (coord gets the same warm-up); numbers are medians over rounds.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console

from coord.bench import phases as ph
from coord.bench import report


def _log(console: Console, quiet: bool):
    if quiet:
        return None
    return lambda msg: console.print(f"[dim]{msg}[/dim]")


def run_rounds(targets: list[str], cfg: ph.BenchConfig, rounds: int, probes: dict | None = None,
               log=None) -> dict[str, list[ph.RunResult]]:
    """`rounds` rounds over all targets, rotating the order each round."""
    probes = probes or {}
    out: dict[str, list[ph.RunResult]] = {t: [] for t in targets}
    for i in range(rounds):
        order = targets[i % len(targets):] + targets[:i % len(targets)]
        for t in order:
            if log:
                log(f"round {i + 1}/{rounds}: {t}")
            out[t].append(ph.run(t, cfg, probes.get(t), log))
    return out


def bench_target(target: str, compare: str | None, cfg: ph.BenchConfig, rounds: int, as_json: bool,
                 console: Console) -> dict:
    targets = [target] + ([compare] if compare else [])
    runs = run_rounds(targets, cfg, rounds, log=_log(console, as_json))
    return _finish(console, as_json, cfg, {target: runs[target]} | ({compare: runs[compare]} if compare else {}),
                   names=(target, compare) if compare else (target,))


def null_server_check(cfg: ph.BenchConfig, server_procs: int, as_json: bool, console: Console) -> dict:
    from coord.bench.nullserver import NullServer
    cfg.latency = True
    with NullServer(server_procs) as ns:
        if not as_json:
            console.print(f"null server on {ns.target} ({server_procs} process(es)); "
                          f"client: {cfg.procs} process(es), {cfg.connections} connections x {cfg.depth}")
        probe = _multi_probe(ns.pids())
        runs = run_rounds([ns.target], cfg, 1, {ns.target: probe}, log=_log(console, as_json))
    return _finish(console, as_json, cfg, {"null-server": runs[ns.target]}, names=("null-server",))


def _multi_probe(pids: list[int]):
    probes = [ph.proc_cpu_probe(p) for p in pids]

    def probe():
        vals = [p() for p in probes]
        return None if any(v is None for v in vals) else sum(vals)
    return probe


def vs_zookeeper(cfg: ph.BenchConfig, rounds: int, force_sync: bool, warmup_ops: int,
                 workdir: str | None, as_json: bool, console: Console, keep: bool = False) -> dict:
    from coord.bench.launch import CoordServerProcess, ZooKeeperProcess, zookeeper_available
    if not zookeeper_available():
        raise RuntimeError("Apache ZooKeeper is not installed (apt-get install zookeeper)")
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="coord-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    log = _log(console, as_json)
    coord = CoordServerProcess(base / "coord", force_sync=force_sync)
    zk = ZooKeeperProcess(base / "zookeeper", force_sync=force_sync)
    try:
        coord.start()
        zk.start(wait=120)
        if log:
            log(f"coord {coord.target} (pid {coord.pid}), ZooKeeper {zk.target} (pid {zk.pid}), "
                f"forceSync={'yes' if force_sync else 'no'}, work dir {base}")
        probes = {coord.target: ph.proc_cpu_probe(coord.pid), zk.target: ph.proc_cpu_probe(zk.pid)}
        if warmup_ops > 0:
            warm = ph.BenchConfig(**{**cfg.__dict__, "ops": warmup_ops, "latency_ops": min(cfg.latency_ops, 1000)})
            for _ in range(2):
                run_rounds([zk.target], warm, 1, probes, log)
            run_rounds([coord.target], warm, 1, probes, log)
        runs = run_rounds([coord.target, zk.target], cfg, rounds, probes, log)
    finally:
        coord.stop()
        zk.stop()
        if not keep and not workdir:
            shutil.rmtree(base, ignore_errors=True)
    title = (f"coord vs ZooKeeper 3.8 standalone, forceSync={'yes' if force_sync else 'no'}: "
             f"{cfg.connections} conns x {cfg.depth} in flight, {cfg.ops} ops/phase, "
             f"{cfg.data_size} B data, median of {rounds}")
    return _finish(console, as_json, cfg, {"coord": runs[coord.target], "zookeeper": runs[zk.target]},
                   names=("coord", "zookeeper"), title=title, extra={"force_sync": force_sync})


def _finish(console: Console, as_json: bool, cfg: ph.BenchConfig, runs: dict[str, list[ph.RunResult]],
            names: tuple, title: str = "", extra: dict | None = None) -> dict:
    result = {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "targets": {n: {"summary": report.summary(r), "rounds": [x.to_json() for x in r]}
                    for n, r in runs.items()},
    }
    if extra:
        result.update(extra)
    if len(names) == 2:
        a, b = (report.summary(runs[n]) for n in names)
        result["ratios"] = {
            "throughput": {op: (a["throughput"][op] / b["throughput"][op]
                                if b["throughput"].get(op) else None) for op in a["throughput"]},
            "latency_p50": {op: (a["latency"][op]["p50_ms"] / b["latency"][op]["p50_ms"]
                                 if b["latency"].get(op) else None) for op in a["latency"]},
            "latency_p99": {op: (a["latency"][op]["p99_ms"] / b["latency"][op]["p99_ms"]
                                 if b["latency"].get(op) else None) for op in a["latency"]},
            "ops_per_server_cpu_s": {op: (a["ops_per_server_cpu_s"][op] / b["ops_per_server_cpu_s"][op]
                                          if a["ops_per_server_cpu_s"].get(op) and
                                          b["ops_per_server_cpu_s"].get(op) else None)
                                     for op in a["throughput"]},
        }
    if as_json:
        print(json.dumps(result, indent=2))
    elif len(names) == 2:
        report.print_compare(console, names, runs[names[0]], runs[names[1]], title)
    else:
        report.print_single(console, names[0], runs[names[0]], title)
    return result
