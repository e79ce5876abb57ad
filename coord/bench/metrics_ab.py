"""What the Prometheus metrics provider costs a whole server: two coord servers, one with
`metricsProvider.className` set and scraped every second, one without, the same closed-loop load
on both in alternating rounds (coord.bench.main.run_rounds, the order rotating each round).

    python -m coord.bench.metrics_ab [--mode ab|aa-off|aa-on|toggle] [--rounds 9] [--ops 100000] [--json F]

The verdict is made from paired ratios (coord.bench.paired): each round gives one on/off ratio of
throughput and one of server CPU per op, and the median of those ratios carries a 95% order-statistic
confidence interval. `--mode aa-off` (both servers without metrics) and `--mode aa-on` (both with
metrics, both scraped) run the same harness on two identical servers: their intervals are this
machine's noise floor, and an A/B verdict narrower than that floor is not a verdict.

`--mode toggle` measures inside ONE server process instead (coord.bench.metrics_toggle): metrics
switched on and off at run time in ABBA blocks, A/B blocks alternating with A/A blocks (the floor).
`--mode icount` runs the toggle harness with the server under valgrind's callgrind and counts its
instructions per op instead of timing it (coord.bench.metrics_icount): repeatable on a loaded machine.
`--mode icount --fixed-state` counts four servers instead, two with metrics on and two off for their
whole lives (coord.bench.metrics_fixed): what a server started with or without the provider pays.

Run it with the servers' interpreter (.venv-pypy/bin/python): the servers are started with it.
Issue 16's goal is throughput with metrics on within 3% of off; the per-request cost measured in
the pure core alone is `python -m coord.bench.core --metrics-cost`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from coord.bench import phases as ph
from coord.bench.launch import CoordServerProcess, allowed_cpus, free_port
from coord.bench.main import run_rounds
from coord.bench.metrics_icount import add_args as add_icount_args
from coord.bench.paired import median_ci, paired_ratios, verdict
from coord.bench.tail import METRICS_CLASS

GOAL = 0.03          # issue 16: throughput with metrics on within 3% of off
MIN_ROUNDS = 6       # below 6 paired ratios even (min, max) covers the median with less than 95%

SCRAPE_LOOP = """
import sys, time, urllib.request
url, every = sys.argv[1], float(sys.argv[2])
n = 0
while True:
    time.sleep(every)
    with urllib.request.urlopen(url, timeout=10) as r:
        r.read()
    n += 1
    print(n, flush=True)
"""

MODES = {             # mode -> (server A has metrics, server B has metrics)
    "ab": (True, False),
    "aa-off": (False, False),
    "aa-on": (True, True),
}


def start_scraper(url: str, every: float = 1.0) -> subprocess.Popen:
    """GET url every `every` seconds from its own process, as a Prometheus server would. (A thread in
    this process would be inherited mid-lock by the forked load workers and deadlock them.)"""
    return subprocess.Popen([sys.executable, "-c", SCRAPE_LOOP, url, str(every)],
                            stdout=subprocess.PIPE, text=True)


def ns_cpu_probe(pid: int):
    """CPU seconds of a process's live threads from /proc/PID/task/*/schedstat (nanoseconds), where
    /proc/PID/stat counts 10 ms clock ticks: 20,000 ops at ~10 us of server CPU each are only ~20
    ticks, a 5% quantization that alone would hide a 3% cost. Falls back to the tick probe."""
    task_dir = Path(f"/proc/{pid}/task")
    ticks = ph.proc_cpu_probe(pid)

    def probe() -> float | None:
        try:
            total = 0
            for t in task_dir.iterdir():
                with open(t / "schedstat") as f:
                    total += int(f.read().split()[0])
            return total / 1e9
        except (OSError, ValueError, IndexError):
            return ticks()
    return probe


def _server(workdir: Path, metrics: bool, force_sync: bool) -> tuple[CoordServerProcess, int | None]:
    if not metrics:
        return CoordServerProcess(workdir, force_sync=force_sync), None
    port = free_port()
    return CoordServerProcess(workdir, force_sync=force_sync, extra_cfg={
        "metricsProvider.className": METRICS_CLASS, "metricsProvider.httpHost": "127.0.0.1",
        "metricsProvider.httpPort": str(port)}), port


def analyse(runs_a: list[ph.RunResult], runs_b: list[ph.RunResult], tolerance: float = GOAL) -> dict:
    """Per phase: the paired A/B ratios of throughput and of ops per server CPU-second, each with its
    median, 95% interval and verdict (coord.bench.paired)."""
    out = {}
    for op in runs_a[0].phases if runs_a else ():
        row = {}
        for key, get in (("throughput", lambda p: p.ops_per_s),
                         ("ops_per_server_cpu_s", lambda p: p.ops / p.server_cpu_s if p.server_cpu_s else None)):
            r = paired_ratios([get(x.phases[op]) for x in runs_a], [get(x.phases[op]) for x in runs_b])
            if not r:
                continue
            med, lo, hi = median_ci(r)
            row[key] = {"ratios": [round(x, 4) for x in r], "median": round(med, 4), "ci95": [round(lo, 4), round(hi, 4)],
                        "verdict": verdict(lo, hi, tolerance) if len(r) >= MIN_ROUNDS else "too few rounds"}
        row["background_cpu_s"] = [round(x.phases[op].background_cpu_s or 0.0, 3) for x in runs_a + runs_b]
        out[op] = row
    return out


def against_floor(result: dict, floor: dict) -> None:
    """Mark each A/B verdict with where its median falls in an A/A run's interval (same phase, same
    measure): inside it, the A/B shows nothing two identical servers do not show too."""
    for op, row in result.items():
        for key in ("throughput", "ops_per_server_cpu_s"):
            r, f = row.get(key), floor.get(op, {}).get(key)
            if r and f:
                lo, hi = f["ci95"]
                r["aa_floor"] = [lo, hi]
                if lo <= r["median"] <= hi:
                    r["verdict"] += " (inside the A/A floor)"


ROUNDS_NOTE = ("paired ratios, one per round (A and B measured minutes apart, order rotating)")


def print_table(console: Console, title: str, result: dict, note: str = ROUNDS_NOTE) -> None:
    t = Table(title=title)
    for c in ("phase", "throughput A/B: median", "95% CI", "verdict", "ops per server CPU-s A/B", "95% CI",
              "verdict"):
        t.add_column(c, justify="right" if c != "phase" else "left")
    for op, row in result.items():
        cells = [op]
        for key in ("throughput", "ops_per_server_cpu_s"):
            r = row.get(key)
            cells += ([f"{r['median']:.3f}", f"{r['ci95'][0]:.3f}-{r['ci95'][1]:.3f}", r["verdict"]]
                      if r else ["-", "-", "-"])
        t.add_row(*cells)
    console.print(t)
    console.print(f"{note}; 95% CI of "
                  f"the median from order statistics; verdict against +-{GOAL:.0%}: within / slower / faster "
                  f"only if the whole interval says so, else unresolved")


def scrape_cost(scrapes: int, force_sync: bool, console: Console) -> dict:
    """The server CPU one /metrics scrape costs (ns-precise, so other load on the machine does not
    enter it): a metrics-on server at rest, `scrapes` GETs after as many to warm the JIT, minus the
    CPU the same server spends idle over the same wall time."""
    import http.client
    base = Path(tempfile.mkdtemp(prefix="coord-scrape-cost-"))
    srv, port = _server(base / "s", True, force_sync)
    try:
        srv.start()
        cpu = ns_cpu_probe(srv.pid)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)   # kept alive, as Prometheus does

        def scrape_n(n: int) -> tuple[float, float, int]:
            c0, t0, size = cpu(), time.monotonic(), 0
            for _ in range(n):
                conn.request("GET", "/metrics")
                size = len(conn.getresponse().read())
            return cpu() - c0, time.monotonic() - t0, size
        scrape_n(scrapes)                                  # warm-up
        busy, wall, size = scrape_n(scrapes)
        c0 = cpu()
        time.sleep(min(wall, 10.0))
        idle = (cpu() - c0) / min(wall, 10.0) * wall
        conn.close()
    finally:
        srv.stop()
        shutil.rmtree(base, ignore_errors=True)
    per_ms = max(0.0, busy - idle) / scrapes * 1000
    res = {"scrapes": scrapes, "bytes": size, "server_cpu_ms_per_scrape": round(per_ms, 3),
           "idle_cpu_s": round(idle, 4), "busy_cpu_s": round(busy, 4), "wall_s": round(wall, 3)}
    console.print(f"/metrics ({size:,} bytes): {per_ms:.2f} ms of server CPU per scrape over {scrapes} scrapes "
                  f"(idle CPU over the same time {idle * 1000:.1f} ms subtracted): {per_ms / 10:.3f}% of a core "
                  f"at a 1 s scrape interval, {per_ms / 150:.4f}% at Prometheus' default 15 s")
    return res


def _epoch(a, cfg, with_a: bool, with_b: bool, swap: bool, rounds: int, console):
    """Start A and B (B first when swap), warm both up, run `rounds` paired rounds, stop them:
    (A's runs, B's runs, scrapes per scraper)."""
    base = Path(tempfile.mkdtemp(prefix="coord-metrics-ab-"))
    srv_a, port_a = _server(base / "a", with_a, a.force_sync)
    srv_b, port_b = _server(base / "b", with_b, a.force_sync)
    scrapers: list[subprocess.Popen] = []
    try:
        first, second = (srv_b, srv_a) if swap else (srv_a, srv_b)
        first.start()
        second.start()
        if a.scrape_every > 0:
            scrapers = [start_scraper(f"http://127.0.0.1:{p}/metrics", a.scrape_every)
                        for p in (port_a, port_b) if p is not None]
        probes = {srv_a.target: ns_cpu_probe(srv_a.pid), srv_b.target: ns_cpu_probe(srv_b.pid)}
        log = lambda m: console.print(f"[dim]{m}[/dim]")  # noqa: E731
        order = [first.target, second.target]
        run_rounds(order, ph.BenchConfig(**{**cfg.__dict__, "ops": a.ops // 2}), 1, probes, log)
        runs = run_rounds(order, cfg, rounds, probes, log)
    finally:
        scrapes = []
        for s in scrapers:
            s.kill()
            out = s.communicate()[0].split()
            scrapes.append(int(out[-1]) if out else 0)
        srv_a.stop()
        srv_b.stop()
        shutil.rmtree(base, ignore_errors=True)
    for s in scrapers:
        if s.returncode != -9:
            raise SystemExit(f"a scraper died (exit {s.returncode}): /metrics stopped answering")
    return runs[srv_a.target], runs[srv_b.target], scrapes


def parse_pin(text: str) -> tuple[set[int], set[int]]:
    """'0:1' or '0,1:2,3' -> ({server CPUs}, {load CPUs}), disjoint and available to this process."""
    try:
        server, load = ({int(c) for c in part.split(",")} for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SERVER_CPUS:LOAD_CPUS such as 0:1, got {text!r}") from None
    have = allowed_cpus()
    if server & load or not (server | load) <= have:
        raise argparse.ArgumentTypeError(f"{text!r}: the two sets must be disjoint and within {sorted(have)}")
    return server, load


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=sorted(MODES) + ["toggle", "icount"], default="ab",
                    help="ab: A with metrics, B without; aa-off / aa-on: both without / both with (the noise floor); "
                         "toggle: one server, metrics switched at run time, --rounds A/B blocks and as many A/A")
    ap.add_argument("--no-aa", action="store_true", help="toggle: A/B blocks only")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--ops", type=int, default=100_000)
    ap.add_argument("--force-sync", action="store_true")
    ap.add_argument("--phases", default="create,getData,setData,exists,delete")
    ap.add_argument("--namespace", metavar="NAME",
                    help="put the znodes under /NAME (e.g. brokers, Kafka's), not under the bench's own "
                         "root (/coord-bench-PID-TOKEN, ~25 characters): the per-namespace accounting compares each "
                         "path with its namespace")
    ap.add_argument("--scrape-every", type=float, default=1.0,
                    help="seconds between scrapes of each metrics-on server (0: never scraped, which "
                         "leaves the per-request accounting alone in the A/B)")
    ap.add_argument("--json", type=Path, help="also write the rounds and the analysis here")
    ap.add_argument("--swap", action="store_true",
                    help="start B first and give B the first turn of each round pair (the A/A runs put A, "
                         "metrics-on's place, below 1 in 18 of 24 medians at load 25-68: position or chance)")
    ap.add_argument("--restart-every", type=int, default=0, metavar="K",
                    help="fresh server processes every K rounds, the start order alternating (the A/A bias "
                         "between two processes at load 2 was 5-11%%: each PyPy process JITs its own traces)")
    ap.add_argument("--floor", type=Path, help="an A/A run's --json: mark A/B medians that fall inside its intervals")
    ap.add_argument("--scrape-cost", type=int, default=0, metavar="N",
                    help="only measure the server CPU per /metrics scrape over N scrapes, and exit")
    ap.add_argument("--pin", type=parse_pin, metavar="SERVER:LOAD",
                    help="toggle: bind the server's threads and the load's to separate CPUs, e.g. 0:1 (the "
                         "A/A floor on 2 shared cores was up to 15%% unpinned)")
    add_icount_args(ap)
    a = ap.parse_args()
    if a.pin and a.mode != "toggle":
        ap.error("--pin is for --mode toggle")
    if a.scrape_cost > 0:
        res = scrape_cost(a.scrape_cost, a.force_sync, Console(width=150))
        if a.json:
            a.json.write_text(json.dumps(res, indent=1))
        return
    if a.rounds < 1 or a.ops < 1:
        raise SystemExit("--rounds and --ops must be positive")
    if a.mode == "toggle":
        toggle_main(a)
        return
    if a.mode == "icount" and a.fixed_state:
        from coord.bench.metrics_fixed import main as fixed_main
        fixed_main(a)
        return
    if a.mode == "icount":
        from coord.bench.metrics_icount import main as icount_main
        icount_main(a, ns_cpu_probe)
        return
    with_a, with_b = MODES[a.mode]
    cfg = ph.args_config(a)
    console = Console(width=150)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load0 = os.getloadavg()
    per = a.restart_every or a.rounds
    runs_a: list[ph.RunResult] = []
    runs_b: list[ph.RunResult] = []
    scrapes: list[int] = []
    done = 0
    epoch = 0
    while done < a.rounds:
        # with --restart-every: fresh server processes every `per` rounds, the start order alternating,
        # so the pairs average over process instances (each PyPy process JIT-compiles its own traces)
        swap = a.swap != (a.restart_every > 0 and epoch % 2 == 1)
        n = min(per, a.rounds - done)
        ra, rb, sc = _epoch(a, cfg, with_a, with_b, swap, n, console)
        runs_a += ra
        runs_b += rb
        scrapes += sc
        done += n
        epoch += 1
    result = analyse(runs_a, runs_b)
    if a.floor:
        against_floor(result, json.loads(a.floor.read_text())["analysis"])
    names = {"ab": "A metrics on, B off", "aa-off": "A and B both metrics off",
             "aa-on": "A and B both metrics on"}[a.mode]
    restarts = f", fresh servers every {a.restart_every} rounds" if a.restart_every else ""
    title = (f"metrics_ab --mode {a.mode}{' --swap' if a.swap else ''} ({names}; scraped every {a.scrape_every:g} s: {sum(scrapes)} scrapes{restarts}), "
             f"forceSync={'yes' if a.force_sync else 'no'}, {a.rounds} rounds of {a.ops:,} ops")
    print_table(console, title, result)
    load1 = os.getloadavg()
    console.print(f"load average at start {load0[0]:.1f}, at end {load1[0]:.1f}")
    if a.json:
        a.json.write_text(json.dumps({
            "mode": a.mode, "swap": a.swap, "started": started, "rounds": a.rounds, "ops": a.ops, "force_sync": a.force_sync,
            "scrape_every": a.scrape_every, "scrapes": scrapes, "load": [load0[0], load1[0]],
            "analysis": result,
            "restart_every": a.restart_every,
            "runs": {"A": [r.to_json() for r in runs_a], "B": [r.to_json() for r in runs_b]},
        }, indent=1))


def toggle_main(a) -> None:
    """--mode toggle (coord.bench.metrics_toggle): one process, A/B and A/A blocks, two tables."""
    from coord.bench.metrics_toggle import best_cpu, run_toggle
    cfg = ph.args_config(a)
    console = Console(width=150)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load0 = os.getloadavg()
    t0 = time.monotonic()
    got = run_toggle(a, cfg, console, ns_cpu_probe)
    result = {kind: analyse(*got[kind]) for kind in ("ab", "aa") if got[kind][0]}
    if "aa" in result:
        against_floor(result["ab"], result["aa"])
    note = "paired ratios, one per ABBA block in one server process (metrics switched at run time)"
    head = (f"forceSync={'yes' if a.force_sync else 'no'}, {a.rounds} blocks of 4 runs x {a.ops:,} ops per phase, "
            f"scraped every {a.scrape_every:g} s while on ({got['scrapes']} scrapes)")
    print_table(console, f"metrics_ab --mode toggle, A/B: A metrics on, B off; {head}", result["ab"], note)
    if "aa" in result:
        print_table(console, f"metrics_ab --mode toggle, A/A: both off (the floor); {head}", result["aa"], note)
    best = {kind: best_cpu(got["single"][kind]) for kind in result}
    t = Table(title="least server CPU per op of any run (us), and A/B as ops per CPU-s")
    for c in ("phase", *(f"{k} {x}" for k in best for x in ("A", "B", "A/B"))):
        t.add_column(c, justify="right" if c != "phase" else "left")
    for op in best["ab"]:
        t.add_row(op, *(f"{best[k][op][f]:.3f}" if op in best[k] else "-" for k in best
                        for f in ("A_us_per_op", "B_us_per_op", "ops_per_cpu_s_A_over_B")))
    console.print(t)
    load1 = os.getloadavg()
    console.print(f"{time.monotonic() - t0:.0f} s; load average at start {load0[0]:.1f}, at end {load1[0]:.1f}")
    if a.json:
        a.json.write_text(json.dumps({
            "mode": "toggle", "started": started, "rounds": a.rounds, "ops": a.ops, "force_sync": a.force_sync,
            "scrape_every": a.scrape_every, "scrapes": got["scrapes"], "load": [load0[0], load1[0]],
            "blocks": got["blocks"], "analysis": result, "best_cpu": best,
            "runs": {kind: {"A": [r.to_json() for r in got["single"][kind]["A"]],
                            "B": [r.to_json() for r in got["single"][kind]["B"]]} for kind in ("ab", "aa")},
        }, indent=1))


if __name__ == "__main__":
    main()
