"""What the Prometheus metrics cost, counted in instructions: `metrics_ab --mode icount`.

Why instructions: timing could not resolve issue 16's 3% on this 2-core VM (two identical server
processes differ by 5-30%, one process toggled in ABBA blocks still has an A/A floor of 5-15%:
docs/operations.md), and the VM has no hardware counters. Valgrind's callgrind counts the guest
instructions (Ir) a process executes, whatever else the machine runs. A server saturated by a
closed-loop load is CPU-bound, so its throughput is the inverse of its CPU per op, and the ratio of
instructions per op (metrics off / on) is a deterministic proxy of the throughput ratio on / off. It
does not capture what an instruction costs: cache and TLB misses, branch mispredictions (metrics
touch more memory per request than their instruction count says), nor another process's work (the
scraper's). PyPy's JIT runs under valgrind, so the counted code is the compiled request path.

The same harness as `--mode toggle` (coord.bench.metrics_toggle): ONE server, started under
callgrind on the server interpreter with the provider and the bench switch (SIGUSR1 on, SIGUSR2 off),
the closed-loop phases in ABBA blocks, A/B blocks (A on) alternating with A/A blocks (both off, the
floor). Each phase is bracketed by `callgrind_control -d` (a dump writes the count since the last one
and zeroes it), so the count is the server's instructions, every thread, during that phase only.

What would leak wall time into counts: valgrind makes the server ~15-30x slower (more on a loaded machine), and work done per
wall-second (the 50 ms tick, timers) grows with the run's length. The idle server's rate (Ir per
second, on and off) is measured after the blocks and its largest possible share of the counts is
reported; it is not subtracted (analyse() says why).
Counts are not perfectly repeatable: a major-GC step or a JIT compilation adds instructions to the
phase it falls in, so the verdict uses each state's least count, with the A/A blocks as its floor.
Left out because they do per-wall-second or per-long-turn work that a native server does not: the
stall monitor and its idle GC pacer (under valgrind every loop turn exceeds the 2 ms stall threshold),
the huge-page collapse thread, the AdminServer. They run the same in both states, so dropping them
only makes the on/off ratio stricter. No scraping during the runs (a scrape per valgrind wall-second
would be 30-100x too many): one scrape is counted on its own and turned into a share of a core at 1 s
and 15 s intervals with a native calibration (server CPU per op over instructions per op, measured
here without valgrind).
"""
from __future__ import annotations

import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from coord import runtime
from coord.bench import phases as ph
from coord.bench.client import Session, drive, encode_batch
from coord.bench.launch import CoordServerProcess
from coord.bench.metrics_toggle import ToggledServer
from coord.bench.paired import median_ci, verdict

GOAL = 0.03
MIN_RUNS = 6         # per label (two per block): the least of fewer may still be a disturbed run
# Work driven by wall time or by long loop turns (see the docstring), off in both states.
QUIET_ENV = {"COORD_STALL_MONITOR": "0"}
SERVER_ENV = {**runtime.GC_ENV, **QUIET_ENV}      # GC_ENV: what the re-exec to the server runtime would set
QUIET_CFG = {"admin.enableServer": "false", "coord.collapseHugePages": "false"}


def missing() -> str | None:
    """Why the icount mode cannot run here, or None."""
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            return f"{tool} not found (Debian package valgrind)"
    return None


def server_interpreter() -> str:
    """The interpreter `coord serve` would re-exec on (coord.runtime), named directly: valgrind
    does not follow an exec, so a re-exec would leave it behind."""
    return runtime.server_python() or sys.executable


class CallgrindServer(CoordServerProcess):
    """`coord serve` under `valgrind --tool=callgrind`, on the server interpreter."""

    name = "coord (callgrind)"
    interpreter: str | None = None      # None: the server runtime (PyPy where set up)

    def _command(self) -> list[str]:
        cmd = super()._command()
        return ["valgrind", "--tool=callgrind", "--dump-line=no", f"--callgrind-out-file={self.workdir}/callgrind.out.%p",
                self.interpreter or server_interpreter(), *cmd[1:]]

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env[runtime.ENV] = ""                        # serve here: no re-exec out of valgrind
        return env


class InstructionCounter:
    """The guest instructions of a process under callgrind so far, as a cpu_probe: each call dumps
    (`callgrind_control -d`: the count since the last dump, then zeroed) and adds that dump's total."""

    def __init__(self, pid: int, workdir: Path):
        self.pid = pid
        self.prefix = workdir / f"callgrind.out.{pid}"
        self.dumps = 0
        self.total = 0

    def dump(self) -> int:
        r = subprocess.run(["callgrind_control", "-d", str(self.pid)], capture_output=True, text=True, timeout=120)
        if r.returncode != 0 or "OK" not in r.stdout:
            raise RuntimeError(f"callgrind_control -d {self.pid}: {r.stdout.strip()} {r.stderr.strip()}")
        self.dumps += 1
        f = Path(f"{self.prefix}.{self.dumps}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = f.read_text() if f.exists() else ""
            m = re.search(r"^summary:\s*(\d+)", text, re.M)
            if m and re.search(r"^totals:", text, re.M):
                f.unlink()
                return int(m.group(1))
            time.sleep(0.05)
        raise RuntimeError(f"no complete callgrind dump {f}")

    def __call__(self) -> float:
        self.total += self.dump()
        return float(self.total)


def idle_rates(srv: ToggledServer, count: InstructionCounter, seconds: float, repeats: int = 2) -> dict:
    """Instructions per second of the idle server, metrics on and off ({"on": [..], "off": [..]})."""
    out: dict[str, list[float]] = {"on": [], "off": []}
    for on in [True, False] * repeats:
        srv.set(on)
        count()
        t0 = time.monotonic()
        time.sleep(seconds)
        n = count.dump()
        out["on" if on else "off"].append(n / (time.monotonic() - t0))
    return out


def scrape_ir(srv: ToggledServer, count: InstructionCounter, scrapes: int, idle_rate: float) -> dict:
    """Instructions per /metrics GET (one kept-alive connection, as Prometheus scrapes), each GET
    counted on its own: with metrics on (a scrape) and off (answered 503). The mean is what scrapes
    cost over time (GC steps included), the least the clean one; `less_idle` the mean less the idle
    rate over each GET's wall time (a lower bound, as that rate need not apply to a busy server)."""
    out = {}
    for on in (True, False):
        srv.set(on)
        conn = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=600)
        conn.request("GET", "/metrics")                 # the connection and the page's first render
        conn.getresponse().read()
        each, walls = [], []
        size = status = 0
        for _ in range(scrapes):
            count()
            t0 = time.monotonic()
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            size, status = len(resp.read()), resp.status
            each.append(count.dump())
            walls.append(time.monotonic() - t0)
        conn.close()
        out["on" if on else "off"] = {
            "ir_per_get": round(statistics.mean(each)), "least": min(each), "median": round(statistics.median(each)),
            "max": max(each), "less_idle": round(max(0.0, statistics.mean(each) - idle_rate * statistics.mean(walls))),
            "wall_s_mean": round(statistics.mean(walls), 4), "status": status, "bytes": size}
    return out


def write_batches(srv: ToggledServer) -> dict:
    """Txns per txn-log write over the metrics-on runs (/metrics' sync_processor_batch_size): under
    valgrind the load always waits on the server, so its batches should be full (8 x 32 in flight)."""
    srv.set(True)
    with urllib.request.urlopen(srv.url, timeout=600) as r:
        page = r.read().decode()
    got: dict[str, float] = {}
    for m in re.finditer(r'^sync_processor_batch_size(?:\{quantile="([0-9.]+)",?\}|_(sum|count)) (\S+)$', page, re.M):
        got[f"q{m.group(1)}" if m.group(1) else m.group(2)] = float(m.group(3))
    if got.get("count"):
        got["mean"] = round(got["sum"] / got["count"], 1)
    return got


def preload(target: str, n: int, chunk: int = 20_000) -> None:
    """n znodes of 100 bytes under a fresh parent, through one pipelined session."""
    host, _, port = target.rpartition(":")
    root = f"/icount-tree-{os.getpid()}"
    s = Session(host, int(port))
    try:
        for i in range(-1, n, chunk):
            paths = [root] if i < 0 else [f"{root}/n{j:09d}" for j in range(i, min(n, i + chunk))]
            blob, offs = encode_batch("create", paths, b"x" * (0 if i < 0 else 100), s.xid)
            s.load(blob, offs)
            drive([s], 64)
            if s.errors:
                raise RuntimeError(f"preload: {s.errors} creates failed (first error {s.first_err})")
    finally:
        s.close()


def minus_idle(runs: list[ph.RunResult], rate: float) -> list[ph.RunResult]:
    """Runs whose phase counts (in server_cpu_s) have the idle rate times the phase's wall time taken off."""
    out = []
    for r in runs:
        phases = {op: ph.PhaseResult(p.op, p.ops, p.errors, p.first_err, p.seconds, p.client_cpu_s,
                                     None if p.server_cpu_s is None else max(0.0, p.server_cpu_s - rate * p.seconds),
                                     p.machine_cpu_s)
                  for op, p in r.phases.items()}
        out.append(ph.RunResult(r.target, phases, r.latency))
    return out


def per_op(runs: list[ph.RunResult], op: str) -> list[float]:
    return [r.phases[op].server_cpu_s / r.phases[op].ops for r in runs
            if r.phases[op].ops and r.phases[op].server_cpu_s]


def _summary(xs: list[float]) -> dict:
    med, lo, hi = median_ci(xs)
    return {"least": round(min(xs)), "median": round(med), "ci95": [round(lo), round(hi)], "max": round(max(xs)),
            "n": len(xs)}


def analyse(got: dict, idle: dict, tolerance: float = GOAL) -> dict:
    """Per phase, from the single runs (two per label per block), for the A/B blocks (A on, B off)
    and the A/A blocks (both off, the floor): instructions per op of A and of B, and their ratio B/A
    (= ops per instruction A/B, the throughput proxy on/off) two ways:
    - least: of the least value of each label. A major-GC step or a JIT compilation only ever adds
      instructions to the phase it lands in (runs scatter upward by up to 60%, never downward), so the
      least is the undisturbed run, as timeit's best-of;
    - median: of the medians, with the conservative interval [lo_B / hi_A, hi_B / lo_A] from the two
      95% intervals (coord.bench.paired.median_ci), which those outliers widen.
    Verdict: the A/B least ratio +- how far the A/A least ratio strays from 1, inside 1 +- tolerance.
    Counts are used as measured. `idle_share` is the most the idle server's rate (the mean of the four
    measurements) times the phases' wall time could be of their counts, and `less_idle` the least
    ratio with that subtracted: it is not the verdict, because the idle rate does not carry over to a
    busy server (2026-12-07: subtracting it moved the A/A least ratios from within 1% of 1 to 0.92-1.04,
    the phases' wall times under valgrind following the machine's load; the idle loop runs code the
    busy one does not)."""
    rate = statistics.mean(idle["on"] + idle["off"])
    out = {}
    single = got["single"]
    for op in single["ab"]["A"][0].phases if single["ab"]["A"] else ():
        row: dict = {}
        for kind in ("ab", "aa"):
            a, b = (per_op(single[kind][lab], op) for lab in ("A", "B"))
            if not a or not b:
                continue
            sa, sb = _summary(a), _summary(b)
            ia, ib = (per_op(minus_idle(single[kind][lab], rate), op) for lab in ("A", "B"))
            row[kind] = {"A": sa, "B": sb, "least": round(min(b) / min(a), 4),
                         "less_idle": round(min(ib) / min(ia), 4) if ia and ib else None,
                         "median": round(statistics.median(b) / statistics.median(a), 4),
                         "ci95": [round(sb["ci95"][0] / sa["ci95"][1], 4), round(sb["ci95"][1] / sa["ci95"][0], 4)]}
        runs = single["ab"]["A"] + single["ab"]["B"]
        raw = sum(r.phases[op].server_cpu_s or 0.0 for r in runs)
        row["idle_share"] = round(rate * sum(r.phases[op].seconds for r in runs) / raw, 5) if raw else None
        if "ab" in row and "aa" in row:
            floor = abs(row["aa"]["least"] - 1)
            lo, hi = row["ab"]["least"] - floor, row["ab"]["least"] + floor
            row["least_with_floor"] = [round(lo, 4), round(hi, 4)]
            row["verdict"] = (verdict(lo, hi, tolerance) if row["ab"]["A"]["n"] >= MIN_RUNS
                              else "too few runs")
        out[op] = row
    return out


def native_ns_per_ir(cfg: ph.BenchConfig, result: dict, force_sync: bool, runs: int, cpu_probe, log) -> dict:
    """ns of native server CPU per counted instruction, per phase and over all: the same phases on a
    server without valgrind (metrics off), the least CPU per op of `runs` runs over the least counted
    instructions per op off."""
    base = Path(tempfile.mkdtemp(prefix="coord-icount-native-"))
    srv = ToggledServer(base / "s", force_sync, extra_cfg=QUIET_CFG, extra_env=SERVER_ENV)
    best: dict[str, float] = {}
    try:
        srv.start()
        srv.set(False)
        probe = cpu_probe(srv.proc.pid)
        for i in range(runs + 1):                     # the first run warms the JIT up
            r = ph.run(srv.proc.target, cfg, probe, log)
            for op, p in r.phases.items():
                if i and p.server_cpu_s:
                    best[op] = min(best.get(op, float("inf")), p.server_cpu_s / p.ops)
    finally:
        srv.stop()
        shutil.rmtree(base, ignore_errors=True)
    per = {op: best[op] * 1e9 / result[op]["ab"]["B"]["least"] for op in best if "ab" in result.get(op, {})}
    return {"us_per_op": {op: round(v * 1e6, 4) for op, v in best.items()},
            "ns_per_ir": {op: round(v, 5) for op, v in per.items()},
            "ns_per_ir_all": round(statistics.median(per.values()), 5) if per else None}


def add_args(ap) -> None:
    """metrics_ab's options for --mode icount."""
    g = ap.add_argument_group("--mode icount (instructions under callgrind)")
    g.add_argument("--warmup", type=int, default=8, metavar="RUNS",
                   help="icount: runs of half the ops, on and off alternately, before the blocks (PyPy's JIT under "
                        "valgrind compiles on counts, not time: the first runs cost up to 4x)")
    g.add_argument("--idle-seconds", type=float, default=10.0, help="icount: each of 2+2 idle measurements")
    g.add_argument("--scrapes", type=int, default=20, help="icount: /metrics scrapes counted (0: none)")
    g.add_argument("--scrape-tree", type=int, default=0, metavar="N",
                   help="icount: also count a scrape after preloading N znodes (e.g. 1000000)")
    g.add_argument("--fixed-state", action="store_true",
                   help="icount: four servers, two with metrics on and two off all their lives, instead of one "
                        "toggled (coord.bench.metrics_fixed); --rounds runs each after --warmup")
    g.add_argument("--native-runs", type=int, default=3,
                   help="icount: native runs (no valgrind) to turn instructions into CPU time (0: none)")


def run_icount(a, cfg: ph.BenchConfig, console, cpu_probe) -> dict:
    """The whole measurement; cpu_probe(pid) -> a native server-CPU probe (for the calibration)."""
    why = missing()
    if why:
        raise SystemExit(f"--mode icount: {why}")
    if a.no_aa or a.pin:
        raise SystemExit("--mode icount always runs A/A blocks (its floor) and needs no pinning")
    from coord.bench.metrics_toggle import run_toggle
    log = lambda m: console.print(f"[dim]{m}[/dim]")  # noqa: E731
    base = Path(tempfile.mkdtemp(prefix="coord-icount-"))
    srv = ToggledServer(base / "s", a.force_sync, process=CallgrindServer, extra_cfg=QUIET_CFG,
                        extra_env=SERVER_ENV, start_wait=600, switch_timeout=300)
    res: dict = {}
    try:
        t0 = time.monotonic()
        srv.start()
        log(f"server under callgrind serving after {time.monotonic() - t0:.0f} s")
        count = InstructionCounter(srv.proc.pid, srv.workdir)
        a.scrape_every = 0                      # a scrape per valgrind wall-second is 30-100x too many
        got = run_toggle(a, cfg, console, lambda pid: count, server=srv, warm_runs=a.warmup)
        res["write_batches"] = write_batches(srv)
        res["idle_ir_per_s"] = {k: [round(x) for x in v] for k, v in idle_rates(srv, count, a.idle_seconds).items()}
        res["analysis"] = analyse(got, res["idle_ir_per_s"])
        res["runs"] = {kind: {lab: [r.to_json() for r in got["single"][kind][lab]] for lab in ("A", "B")}
                       for kind in ("ab", "aa")}
        res["blocks"] = got["blocks"]
        idle = statistics.mean(res["idle_ir_per_s"]["on"] + res["idle_ir_per_s"]["off"])
        if a.scrapes > 0:
            res["scrape"] = {"tree": scrape_ir(srv, count, a.scrapes, idle)}
            if a.scrape_tree > 0:
                srv.set(False)
                t1 = time.monotonic()
                preload(srv.proc.target, a.scrape_tree)
                log(f"preloaded {a.scrape_tree:,} znodes in {time.monotonic() - t1:.0f} s")
                res["scrape"][f"tree+{a.scrape_tree}"] = scrape_ir(srv, count, a.scrapes, idle)
    finally:
        srv.stop()
        shutil.rmtree(base, ignore_errors=True)
    if a.native_runs > 0:
        res["native"] = native_ns_per_ir(cfg, res["analysis"], a.force_sync, a.native_runs, cpu_probe, log)
        ns = res["native"]["ns_per_ir_all"]
        for s in res.get("scrape", {}).values():
            ms = s["on"]["ir_per_get"] * ns / 1e6
            s["on"]["native_ms_est"] = round(ms, 3)
            s["on"]["core_share_at_1s"] = round(ms / 1000, 6)
            s["on"]["core_share_at_15s"] = round(ms / 15000, 7)
    return res


def print_result(console, res: dict, head: str) -> None:
    from rich.table import Table
    t = Table(title=f"metrics_ab --mode icount: instructions per op under callgrind, metrics on vs off; {head}")
    for c in ("phase", "Ir/op on", "Ir/op off", "on/off", "A/A", "on/off +- A/A", "verdict (3%)",
              "on/off of medians (95% CI)", "A/A of medians (95% CI)", "idle share"):
        t.add_column(c, justify="left" if c == "phase" else "right")
    for op, r in res["analysis"].items():
        ab, aa = r.get("ab"), r.get("aa")
        if not ab or not aa:
            continue
        w = r["least_with_floor"]
        t.add_row(op, f"{ab['A']['least']:,}", f"{ab['B']['least']:,}", f"{ab['least']:.4f}", f"{aa['least']:.4f}",
                  f"{w[0]:.3f}-{w[1]:.3f}", r["verdict"],
                  f"{ab['median']:.4f} ({ab['ci95'][0]:.3f}-{ab['ci95'][1]:.3f})",
                  f"{aa['median']:.4f} ({aa['ci95'][0]:.3f}-{aa['ci95'][1]:.3f})",
                  f"{r['idle_share']:.2%}" if r.get("idle_share") is not None else "-")
    console.print(t)
    console.print("Ir/op: the least of the runs in each state (a GC step or a JIT compilation only adds "
                  "instructions); on/off = Ir/op off over Ir/op on = throughput on over off if CPU-bound; "
                  "A/A: the same for two labels both off")
    idle = res["idle_ir_per_s"]
    console.print(f"idle server: {', '.join(f'{x / 1e6:.2f}' for x in idle['on'])} M Ir/s on, "
                  f"{', '.join(f'{x / 1e6:.2f}' for x in idle['off'])} off; 'idle share': their mean times the A/B runs' wall "
                  "time over their counts, an upper bound of wall-clock work in them (not subtracted: see analyse)")
    for tree, s in res.get("scrape", {}).items():
        on = s["on"]
        line = (f"/metrics ({tree}, {on['bytes']:,} bytes): {on['ir_per_get']:,} Ir per scrape on (mean; least "
                f"{on['least']:,}, most {on['max']:,}; {on['less_idle']:,} less the idle rate); "
                f"{s['off']['ir_per_get']:,} Ir per GET off (answered {s['off']['status']})")
        if "native_ms_est" in on:
            line += (f"; ~{on['native_ms_est']:.2f} ms of native CPU: {on['core_share_at_1s']:.3%} of a core at a "
                     f"1 s interval, {on['core_share_at_15s']:.4%} at 15 s")
        console.print(line)
    wb = res.get("write_batches") or {}
    if wb.get("count"):
        console.print(f"txns per log write while on: mean {wb['mean']:g} over {wb['count']:,.0f} writes; quantiles "
                      + ", ".join(f"{k[1:]}: {v:g}" for k, v in wb.items() if k.startswith("q"))
                      + " (the load keeps 8 x 32 requests in flight)")
    if "native" in res:
        n = res["native"]
        console.print("native calibration (no valgrind, metrics off, least of the runs): "
                      + ", ".join(f"{op} {us:.3f} us/op = {n['ns_per_ir'].get(op, 0):.4f} ns/Ir"
                                  for op, us in n["us_per_op"].items()))


def main(a, cpu_probe) -> None:
    """metrics_ab --mode icount: run, print the table, write --json."""
    import json

    from rich.console import Console
    cfg = ph.args_config(a)
    console = Console(width=160)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load0 = os.getloadavg()
    t0 = time.monotonic()
    res = run_icount(a, cfg, console, cpu_probe)
    head = (f"forceSync={'yes' if a.force_sync else 'no'}, {a.rounds} A/B + {a.rounds} A/A blocks of 4 runs x "
            f"{a.ops:,} ops per phase after {a.warmup} warm-up runs")
    print_result(console, res, head)
    load1 = os.getloadavg()
    console.print(f"{time.monotonic() - t0:.0f} s; load average at start {load0[0]:.1f}, at end {load1[0]:.1f} "
                  "(instruction counts do not depend on it)")
    if a.json:
        a.json.write_text(json.dumps({"mode": "icount", "started": started, "rounds": a.rounds, "ops": a.ops,
                                      "warmup": a.warmup, "force_sync": a.force_sync, "phases": list(cfg.phases),
                                      "load": [load0[0], load1[0]], "seconds": round(time.monotonic() - t0), **res},
                                     indent=1))
