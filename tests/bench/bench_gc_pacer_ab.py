"""A/B of a coord setting on a large tree, open loop: two coord servers (A: as configured, B: with
--b-env), each preloaded with --preload znodes, then each op at a fixed rate, A and B alternating
which goes first, --rounds times; per run p50/p99/p99.9/max and the server's stalls (gc-major counts
and those of 10 ms or more). Default: the idle-time GC pacer (coord.aio.gcpacer) on vs off;
`--b-env K=V` (repeatable) replaces B's environment with another setting to compare.

    .venv/bin/python -m tests.bench.bench_gc_pacer_ab [--preload 1000000] [--ops setData=19000,create=19000]
        [--duration 10] [--warmup 2] [--rounds 3] [--b-env COORD_GC_IDLE_STEPS=0]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

from coord.bench import tail
from coord.bench.churn import parse_env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preload", type=int, default=1_000_000)
    ap.add_argument("--ops", default="setData=19000,create=19000")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--a-env", action="append", default=[])
    ap.add_argument("--b-env", action="append", default=None,
                    help="B's environment (repeatable; given, it replaces the default COORD_GC_IDLE_STEPS=0)")
    ap.add_argument("--json", dest="json_path", default=None)
    ap.add_argument("--workdir", default=None, help="keep the servers' dirs (logs) here")
    args = ap.parse_args()
    rates = {k: float(v) for k, v in parse_env(args.ops.split(",")).items()}
    base = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="coord-gcab-"))
    base.mkdir(parents=True, exist_ok=True)
    started: list = []
    rows = []
    try:
        systems = {}
        b_env = args.b_env if args.b_env is not None else ["COORD_GC_IDLE_STEPS=0"]
        for name, env in (("A", args.a_env), ("B", b_env)):
            cfg = tail.TailConfig(ops=tuple(rates), fractions=(1.0,), duration_s=args.duration,
                                  warmup_s=args.warmup, preload=args.preload, coord_env=parse_env(env))
            with tail.server_env(cfg.coord_env):
                s = tail._start_servers("coord", cfg, base / name, started)
            s.name = f"coord-{name}"
            tail._prepare(s, cfg)
            systems[name] = (s, cfg)
            print(f"{s.name}: env {env}, {args.preload:,} znodes preloaded, rss {tail.rss_mib(s.pids):.0f} MiB",
                  flush=True)
        i = 0
        for rnd in range(args.rounds):
            for op, rate in rates.items():
                for name in (("A", "B") if i % 2 == 0 else ("B", "A")):
                    s, cfg = systems[name]
                    row, _ = tail._one(s, cfg, op, 1.0, rate, lambda m: print(m, flush=True))
                    row["round"] = rnd
                    rows.append(row)
                i += 1
    finally:
        for stop in reversed(started):
            stop()
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)
    print("\nmedians over rounds (p50 / p99 / p99.9 / max ms; gc-major stalls: count / of 10 ms or more; all stalls >= 10 ms)")
    for op in rates:
        for name in ("A", "B"):
            rs = [r for r in rows if r["op"] == op and r["system"] == f"coord-{name}"]
            med = {q: tail._median([r[q] for r in rs]) for q in ("p50_ms", "p99_ms", "p999_ms", "max_ms")}
            gm = [(r["stalls"].get("gc-major", {}).get("count", 0), r["stalls"].get("gc-major", {}).get("over_10ms", 0))
                  for r in rs]
            over = [sum(v["over_10ms"] for v in r["stalls"].values()) for r in rs]
            print(f"{op:8s} {name}: {med['p50_ms']:.2f} / {med['p99_ms']:.2f} / {med['p999_ms']:.2f} / "
                  f"{med['max_ms']:.2f}  gc-major {gm}  all>=10ms {over}  load {[r['loadavg'][0] for r in rs]}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
