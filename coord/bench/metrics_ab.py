"""What the Prometheus metrics provider costs a whole server: two coord servers, one with
`metricsProvider.className` set and scraped every second, one without, the same closed-loop load
on both in alternating rounds (coord.bench.main.run_rounds), medians and ratios on/off.

    python -m coord.bench.metrics_ab [--rounds 7] [--ops 100000] [--force-sync]

Run it with the servers' interpreter (.venv-pypy/bin/python): the servers are started with it.
Issue 16's goal is throughput with metrics on within 3% of off; the per-request cost measured in
the pure core alone is `python -m coord.bench.core --metrics-cost`.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from coord.bench import phases as ph
from coord.bench.launch import CoordServerProcess, free_port
from coord.bench.main import _finish, run_rounds
from coord.bench.tail import METRICS_CLASS


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


def start_scraper(url: str, every: float = 1.0) -> subprocess.Popen:
    """GET url every `every` seconds from its own process, as a Prometheus server would. (A thread in
    this process would be inherited mid-lock by the forked load workers and deadlock them.)"""
    return subprocess.Popen([sys.executable, "-c", SCRAPE_LOOP, url, str(every)],
                            stdout=subprocess.PIPE, text=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--ops", type=int, default=100_000)
    ap.add_argument("--force-sync", action="store_true")
    ap.add_argument("--phases", default="create,getData,setData,exists,delete")
    ap.add_argument("--scrape-every", type=float, default=1.0,
                    help="seconds between scrapes of the metrics-on server (0: never scraped, which "
                         "leaves the per-request accounting alone in the A/B)")
    a = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="coord-metrics-ab-"))
    port = free_port()
    on = CoordServerProcess(base / "on", force_sync=a.force_sync, extra_cfg={
        "metricsProvider.className": METRICS_CLASS, "metricsProvider.httpHost": "127.0.0.1",
        "metricsProvider.httpPort": str(port)})
    off = CoordServerProcess(base / "off", force_sync=a.force_sync)
    cfg = ph.BenchConfig(ops=a.ops, phases=tuple(a.phases.split(",")))
    console = Console()
    scraper = None
    try:
        on.start()
        off.start()
        if a.scrape_every > 0:
            scraper = start_scraper(f"http://127.0.0.1:{port}/metrics", a.scrape_every)
        probes = {on.target: ph.proc_cpu_probe(on.pid), off.target: ph.proc_cpu_probe(off.pid)}
        log = lambda m: console.print(f"[dim]{m}[/dim]")  # noqa: E731
        run_rounds([on.target, off.target], ph.BenchConfig(**{**cfg.__dict__, "ops": a.ops // 2}), 1, probes, log)
        runs = run_rounds([on.target, off.target], cfg, a.rounds, probes, log)
    finally:
        scrapes = 0
        if scraper is not None:
            scraper.kill()
            out = scraper.communicate()[0].split()
            scrapes = int(out[-1]) if out else 0
        on.stop()
        off.stop()
        shutil.rmtree(base, ignore_errors=True)
    if scraper is not None and scraper.returncode != -9:
        raise SystemExit(f"the scraper died (exit {scraper.returncode}): /metrics stopped answering")
    _finish(console, False, cfg, {"metrics on": runs[on.target], "metrics off": runs[off.target]},
            names=("metrics on", "metrics off"),
            title=f"coord with vs without the Prometheus provider (scraped every {a.scrape_every:g} s, {scrapes} "
                  f"scrapes), forceSync={'yes' if a.force_sync else 'no'}, median of {a.rounds}")


if __name__ == "__main__":
    main()
