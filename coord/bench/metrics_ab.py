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
import threading
import time
import urllib.request
from pathlib import Path

from rich.console import Console

from coord.bench import phases as ph
from coord.bench.launch import CoordServerProcess, free_port
from coord.bench.main import _finish, run_rounds
from coord.bench.tail import METRICS_CLASS


class Scraper(threading.Thread):
    """GET url every `every` seconds, as a Prometheus server would; counts scrapes and their time."""

    def __init__(self, url: str, every: float = 1.0):
        super().__init__(daemon=True)
        self.url, self.every = url, every
        self.stop = threading.Event()
        self.times: list[float] = []

    def run(self) -> None:
        while not self.stop.wait(self.every):
            t0 = time.monotonic()
            with urllib.request.urlopen(self.url, timeout=10) as r:
                r.read()
            self.times.append(time.monotonic() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--ops", type=int, default=100_000)
    ap.add_argument("--force-sync", action="store_true")
    ap.add_argument("--phases", default="create,getData,setData,exists,delete")
    a = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="coord-metrics-ab-"))
    port = free_port()
    on = CoordServerProcess(base / "on", force_sync=a.force_sync, extra_cfg={
        "metricsProvider.className": METRICS_CLASS, "metricsProvider.httpHost": "127.0.0.1",
        "metricsProvider.httpPort": str(port)})
    off = CoordServerProcess(base / "off", force_sync=a.force_sync)
    cfg = ph.BenchConfig(ops=a.ops, phases=tuple(a.phases.split(",")))
    console = Console()
    scraper = Scraper(f"http://127.0.0.1:{port}/metrics")
    try:
        on.start()
        off.start()
        scraper.start()
        probes = {on.target: ph.proc_cpu_probe(on.pid), off.target: ph.proc_cpu_probe(off.pid)}
        log = lambda m: console.print(f"[dim]{m}[/dim]")  # noqa: E731
        run_rounds([on.target, off.target], ph.BenchConfig(**{**cfg.__dict__, "ops": a.ops // 2}), 1, probes, log)
        runs = run_rounds([on.target, off.target], cfg, a.rounds, probes, log)
    finally:
        scraper.stop.set()
        on.stop()
        off.stop()
        shutil.rmtree(base, ignore_errors=True)
    _finish(console, False, cfg, {"metrics on": runs[on.target], "metrics off": runs[off.target]},
            names=("metrics on", "metrics off"),
            title=f"coord with vs without the Prometheus provider (scraped every 1 s, {len(scraper.times)} "
                  f"scrapes), forceSync={'yes' if a.force_sync else 'no'}, median of {a.rounds}")


if __name__ == "__main__":
    main()
