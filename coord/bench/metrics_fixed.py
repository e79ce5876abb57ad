"""What the metrics cost a server that runs in one state all its life: `metrics_ab --mode icount
--fixed-state`.

Why a second method: the toggle harness (coord.bench.metrics_icount) switches metrics on and off in
ONE process, so the JIT compiles its traces in whichever state came first and runs the other through
bridges, which could charge the switch itself to one state. In the pure core (`coord.bench.core
--metrics-cost --icount`) the reads' extra instructions were +147/+179 (getData, exists) toggled
and +113/+114 with the state fixed per process. A production server is started with the provider or
without it and never switches. (For the whole server the two methods agreed, 2026-12-07: +258/+264
fixed, +260/+268 toggled; docs/operations.md.) Here each of four servers under callgrind is switched
once, before its first request, and never again: two on, two off. Each state's count is the least
of its runs over both of its processes; the floor is how far the two processes of one state differ
(each PyPy process compiles its own traces: session 8 saw up to 1.5% between two processes), and
the verdict is on/off +- that floor against 3%, as in --mode icount.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from coord.bench import phases as ph
from coord.bench.metrics_icount import (GOAL, QUIET_CFG, SERVER_ENV, CallgrindServer, InstructionCounter, missing,
                                        per_op)
from coord.bench.metrics_toggle import ToggledServer
from coord.bench.paired import verdict

LABELS = ("on-1", "off-1", "on-2", "off-2")


def run_fixed(a, cfg: ph.BenchConfig, log, process: type = CallgrindServer) -> dict:
    """Four servers (LABELS), each's state set once; `a.warmup` runs of half the ops then `a.rounds`
    runs on each, round robin. Returns {"runs": {label: {phase: [Ir/op, ...]}}, "analysis": ...}."""
    why = missing()
    if why:
        raise SystemExit(f"--mode icount --fixed-state: {why}")
    base = Path(tempfile.mkdtemp(prefix="coord-icount-fixed-"))
    servers = {lab: ToggledServer(base / lab, a.force_sync, process=process, extra_cfg=QUIET_CFG,
                                  extra_env=SERVER_ENV, start_wait=600, switch_timeout=300) for lab in LABELS}
    counts: dict[str, InstructionCounter] = {}
    runs: dict[str, dict[str, list[float]]] = {lab: {op: [] for op in cfg.phases} for lab in LABELS}
    try:
        for lab, srv in servers.items():
            t0 = time.monotonic()
            srv.start()                     # started on (the provider configured), no request served yet
            if lab.startswith("off"):
                srv.set(False)
            counts[lab] = InstructionCounter(srv.proc.pid, srv.workdir)
            log(f"{lab}: serving under callgrind after {time.monotonic() - t0:.0f} s, metrics {lab[:-2]}")
        warm = replace(cfg, ops=max(cfg.connections, cfg.ops // 2))
        for i in range(a.warmup + a.rounds):
            for lab, srv in servers.items():
                r = ph.run(srv.proc.target, warm if i < a.warmup else cfg, counts[lab])
                if i >= a.warmup:
                    for op in cfg.phases:
                        runs[lab][op] += per_op([r], op)
            log(f"{'warm-up' if i < a.warmup else 'round'} {i + 1 if i < a.warmup else i - a.warmup + 1} done")
    finally:
        for srv in servers.values():
            srv.stop()
        shutil.rmtree(base, ignore_errors=True)
    return {"runs": runs, "analysis": analyse_fixed(runs, a.rounds)}


def analyse_fixed(runs: dict[str, dict[str, list[float]]], rounds: int, tolerance: float = GOAL) -> dict:
    """Per phase: the least Ir/op of each process, of each state (both its processes), on/off = least
    off / least on (the throughput proxy on over off), the floor = the larger of the two within-state
    ratios' distance from 1, and the verdict on on/off +- floor."""
    out = {}
    for op in runs[LABELS[0]]:
        least = {lab: min(runs[lab][op]) for lab in LABELS if runs[lab][op]}
        if len(least) < len(LABELS):
            continue
        on, off = min(least["on-1"], least["on-2"]), min(least["off-1"], least["off-2"])
        within = {"on": least["on-2"] / least["on-1"], "off": least["off-2"] / least["off-1"]}
        floor = max(abs(v - 1) for v in within.values())
        ratio = off / on
        lo, hi = ratio - floor, ratio + floor
        out[op] = {"least": {k: round(v) for k, v in least.items()}, "on": round(on), "off": round(off),
                   "on_off": round(ratio, 4), "within": {k: round(v, 4) for k, v in within.items()},
                   "with_floor": [round(lo, 4), round(hi, 4)],
                   "verdict": verdict(lo, hi, tolerance) if rounds >= 3 else "too few runs"}
    return out


def print_fixed(console, res: dict, head: str) -> None:
    from rich.table import Table
    t = Table(title=f"metrics_ab --mode icount --fixed-state: each server in one state all its life; {head}")
    for c in ("phase", "Ir/op on (on-1, on-2)", "Ir/op off (off-1, off-2)", "extra Ir on", "on/off",
              "within a state (on, off)", "on/off +- floor", "verdict (3%)"):
        t.add_column(c, justify="left" if c == "phase" else "right")
    for op, r in res["analysis"].items():
        lst = r["least"]
        t.add_row(op, f"{r['on']:,} ({lst['on-1']:,}, {lst['on-2']:,})", f"{r['off']:,} ({lst['off-1']:,}, {lst['off-2']:,})",
                  f"{r['on'] - r['off']:+,}", f"{r['on_off']:.4f}", f"{r['within']['on']:.4f}, {r['within']['off']:.4f}",
                  f"{r['with_floor'][0]:.3f}-{r['with_floor'][1]:.3f}", r["verdict"])
    console.print(t)
    console.print("Ir/op: the least of a state's runs over both its processes; on/off = Ir/op off over Ir/op on "
                  "(throughput on over off if CPU-bound); floor: how far the two processes of a state differ")


def main(a) -> None:
    """metrics_ab --mode icount --fixed-state: run, print the table, write --json."""
    from rich.console import Console
    cfg = ph.args_config(a)
    console = Console(width=160)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load0 = os.getloadavg()[0]
    t0 = time.monotonic()
    res = run_fixed(a, cfg, lambda m: console.print(f"[dim]{m}[/dim]"))
    print_fixed(console, res, f"forceSync={'yes' if a.force_sync else 'no'}, {a.rounds} runs x {a.ops:,} ops "
                              f"per phase and server after {a.warmup} warm-up runs")
    console.print(f"{time.monotonic() - t0:.0f} s; load average at start {load0:.1f}, at end "
                  f"{os.getloadavg()[0]:.1f} (instruction counts do not depend on it)")
    if a.json:
        a.json.write_text(json.dumps({"mode": "icount-fixed", "started": started, "rounds": a.rounds, "ops": a.ops,
                                      "warmup": a.warmup, "phases": list(cfg.phases), **res}, indent=1))
