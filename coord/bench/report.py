"""Tables for `coord bench`: one target, or target vs compare with ratios (target / compare).

Throughput ratio > 1 means the target is faster; latency ratio < 1 means the target is faster.
With several rounds every number is the median over the rounds.
"""
from __future__ import annotations

import statistics

from rich.console import Console
from rich.table import Table

from coord.bench.phases import LATENCY_PHASES, RunResult


def median_phase(runs: list[RunResult], op: str) -> float | None:
    vals = [r.phases[op].ops_per_s for r in runs if op in r.phases]
    return statistics.median(vals) if vals else None


def median_latency(runs: list[RunResult], op: str, q: str) -> float | None:
    vals = [getattr(r.latency[op], q) for r in runs if op in r.latency]
    return statistics.median(vals) if vals else None


def cpu_share(runs: list[RunResult], op: str, which: str) -> float | None:
    vals = []
    for r in runs:
        p = r.phases.get(op)
        if p is None or p.seconds <= 0:
            continue
        v = {"client": p.client_cpu_s, "server": p.server_cpu_s, "background": p.background_cpu_s}[which]
        if v is None:
            return None
        vals.append(100.0 * v / p.seconds)
    return statistics.median(vals) if vals else None


def ops_per_server_cpu_s(runs: list[RunResult], op: str) -> float | None:
    """Median of ops / server CPU-seconds: the server's cost per op, which contention for the
    machine changes much less than its throughput."""
    vals = [r.phases[op].ops / r.phases[op].server_cpu_s for r in runs
            if op in r.phases and r.phases[op].server_cpu_s]
    return statistics.median(vals) if vals else None


def summary(runs: list[RunResult]) -> dict:
    out: dict = {"throughput": {}, "latency": {}, "errors": 0, "acknowledged": {}}
    ops = [op for op in runs[0].phases] if runs else []
    for op in ops:
        out["throughput"][op] = median_phase(runs, op)
        out["acknowledged"][op] = [r.phases[op].ops for r in runs]
        out.setdefault("client_cpu_pct", {})[op] = cpu_share(runs, op, "client")
        out.setdefault("server_cpu_pct", {})[op] = cpu_share(runs, op, "server")
        out.setdefault("background_cpu_pct", {})[op] = cpu_share(runs, op, "background")
        out.setdefault("ops_per_server_cpu_s", {})[op] = ops_per_server_cpu_s(runs, op)
    for op in LATENCY_PHASES:
        if runs and op in runs[0].latency:
            out["latency"][op] = {"p50_ms": median_latency(runs, op, "p50_ms"),
                                  "p99_ms": median_latency(runs, op, "p99_ms")}
    out["errors"] = sum(p.errors for r in runs for p in r.phases.values())
    return out


def _fmt_rate(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def _fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _fmt_pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}%"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"


def print_single(console: Console, name: str, runs: list[RunResult], title: str = "") -> None:
    s = summary(runs)
    t = Table(title=title or f"coord bench: {name} (median of {len(runs)} round(s))")
    t.add_column("phase")
    t.add_column("ops/s", justify="right")
    t.add_column("errors", justify="right")
    t.add_column("client CPU", justify="right")
    t.add_column("server CPU", justify="right")
    t.add_column("other load", justify="right")
    t.add_column("ops/server CPU-s", justify="right")
    for op, v in s["throughput"].items():
        errs = sum(r.phases[op].errors for r in runs if op in r.phases)
        t.add_row(op, _fmt_rate(v), str(errs), _fmt_pct(s["client_cpu_pct"][op]),
                  _fmt_pct(s["server_cpu_pct"][op]), _fmt_pct(s["background_cpu_pct"][op]),
                  _fmt_rate(s["ops_per_server_cpu_s"][op]))
    for op, lat in s["latency"].items():
        t.add_row(f"{op} latency", f"p50 {_fmt_ms(lat['p50_ms'])} ms", "", f"p99 {_fmt_ms(lat['p99_ms'])} ms", "")
    console.print(t)


def print_compare(console: Console, names: tuple[str, str], runs_a: list[RunResult],
                  runs_b: list[RunResult], title: str = "") -> None:
    a, b = summary(runs_a), summary(runs_b)
    na, nb = names
    t = Table(title=title or f"coord bench: {na} vs {nb} (median of {len(runs_a)} round(s))")
    t.add_column("phase")
    t.add_column(f"{na}", justify="right")
    t.add_column(f"{nb}", justify="right")
    t.add_column("ratio", justify="right")
    t.add_column(f"{na} CPU", justify="right")
    t.add_column(f"{nb} CPU", justify="right")
    t.add_column("client CPU", justify="right")
    t.add_column("other load", justify="right")
    t.add_column("ops/server CPU-s ratio", justify="right")
    for op in a["throughput"]:
        t.add_row(f"{op} ops/s", _fmt_rate(a["throughput"][op]), _fmt_rate(b["throughput"].get(op)),
                  _ratio(a["throughput"][op], b["throughput"].get(op)),
                  _fmt_pct(a["server_cpu_pct"][op]), _fmt_pct(b["server_cpu_pct"].get(op)),
                  f"{_fmt_pct(a['client_cpu_pct'][op])} / {_fmt_pct(b['client_cpu_pct'].get(op))}",
                  f"{_fmt_pct(a['background_cpu_pct'][op])} / {_fmt_pct(b['background_cpu_pct'].get(op))}",
                  _ratio(a["ops_per_server_cpu_s"][op], b["ops_per_server_cpu_s"].get(op)))
    for op in a["latency"]:
        for q in ("p50_ms", "p99_ms"):
            va, vb = a["latency"][op][q], b["latency"].get(op, {}).get(q)
            t.add_row(f"{op} {q[:3]} ms", _fmt_ms(va), _fmt_ms(vb), _ratio(va, vb), "", "", "", "", "")
    console.print(t)
    console.print(f"errors: {na} {a['errors']}, {nb} {b['errors']}; throughput ratio = {na}/{nb} "
                  f"(>1: {na} faster), latency ratio = {na}/{nb} (<1: {na} faster); CPU columns are % of "
                  f"one core over the phase; 'other load' is machine CPU used by neither server nor client")
