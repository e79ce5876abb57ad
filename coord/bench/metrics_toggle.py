"""What the Prometheus metrics cost, measured inside ONE server process: `metrics_ab --mode toggle`.

Why one process: two coord servers with metrics off differ by 5-30% (each PyPy process compiles its
own traces), so an on-process against an off-process cannot resolve a 3% cost. Here one server is
started with the provider configured and the bench-only switch (coord.aio.metrics_switch: SIGUSR1 on,
SIGUSR2 off), and the same closed-loop runs (coord.bench.phases, every phase) alternate between the two
states in blocks of four, ABBA then BAAB, so a linear drift of the machine cancels within a block.
While metrics are on, /metrics is scraped every `scrape_every` seconds from its own process, as a
Prometheus server would; while off, nobody scrapes (and the server would answer 503 without work).

A/B blocks (A on, B off) alternate with A/A blocks (both off, the same signals sent): each block gives
one ratio per phase of throughput and of ops per server CPU-second (schedstat, ns), and the medians
of those ratios carry 95% intervals (coord.bench.paired). The A/A intervals are the floor.
"""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from coord.aio.metrics_switch import ENV
from coord.bench import phases as ph
from coord.bench.launch import CoordServerProcess, free_port
from coord.bench.tail import METRICS_CLASS

BLOCK = ("A", "B", "B", "A")


def wait_state(url: str, on: bool, timeout: float = 15.0) -> None:
    """Until /metrics answers 200 (on) or 503 (off): the signal has been handled by the loop."""
    want = 200 if on else 503
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                code = r.status
                r.read()
        except urllib.error.HTTPError as e:
            code = e.code
        if code == want:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} still answers {code} {timeout:g}s after the switch to "
                             f"{'on' if on else 'off'}: is the server started with {ENV}=1?")
        time.sleep(0.05)


class ToggledServer:
    """One coord server with the Prometheus provider and the bench switch."""

    def __init__(self, workdir: Path, force_sync: bool):
        self.http_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}/metrics"
        self.proc = CoordServerProcess(workdir, force_sync=force_sync, extra_env={ENV: "1"}, extra_cfg={
            "metricsProvider.className": METRICS_CLASS, "metricsProvider.httpHost": "127.0.0.1",
            "metricsProvider.httpPort": str(self.http_port)})
        self.on = True

    def start(self) -> None:
        self.proc.start()
        wait_state(self.url, True)

    def set(self, on: bool) -> None:
        os.kill(self.proc.pid, signal.SIGUSR1 if on else signal.SIGUSR2)
        wait_state(self.url, on)
        self.on = on

    def stop(self) -> None:
        self.proc.stop()


def combine(runs: list[ph.RunResult]) -> ph.RunResult:
    """The runs of one block's two A (or B) turns as one: ops, seconds and CPU summed per phase."""
    def tot(xs):
        return None if any(x is None for x in xs) else sum(xs)
    phases = {}
    for op in runs[0].phases:
        ps = [r.phases[op] for r in runs]
        phases[op] = ph.PhaseResult(op, sum(p.ops for p in ps), sum(p.errors for p in ps),
                                    next((p.first_err for p in ps if p.first_err), 0), sum(p.seconds for p in ps),
                                    sum(p.client_cpu_s for p in ps), tot([p.server_cpu_s for p in ps]),
                                    tot([p.machine_cpu_s for p in ps]))
    return ph.RunResult(runs[0].target, phases, {})


def run_toggle(a, cfg: ph.BenchConfig, console) -> dict:
    """Blocks alternately A/B and A/A (`a.rounds` of each kind unless a.no_aa), in one server process.
    Returns {"ab": (A blocks, B blocks), "aa": (...), "scrapes": n, "block_order": [...]}."""
    from coord.bench.metrics_ab import ns_cpu_probe, start_scraper
    base = Path(tempfile.mkdtemp(prefix="coord-metrics-toggle-"))
    srv = ToggledServer(base / "s", a.force_sync)
    log = lambda m: console.print(f"[dim]{m}[/dim]")  # noqa: E731
    out: dict = {"ab": ([], []), "aa": ([], []), "scrapes": 0, "blocks": []}
    kinds = ["ab", "aa"] * a.rounds if not a.no_aa else ["ab"] * a.rounds
    try:
        srv.start()
        probe = ns_cpu_probe(srv.proc.pid)

        def one(on: bool, c: ph.BenchConfig) -> ph.RunResult:
            srv.set(on)
            scraper = start_scraper(srv.url, a.scrape_every) if on and a.scrape_every > 0 else None
            try:
                return ph.run(srv.proc.target, c, probe, log)
            finally:
                if scraper is not None:
                    scraper.kill()
                    got = scraper.communicate()[0].split()
                    out["scrapes"] += int(got[-1]) if got else 0
                    if scraper.returncode != -9:
                        raise SystemExit(f"the scraper died (exit {scraper.returncode}): /metrics stopped answering")
        warm = ph.BenchConfig(**{**cfg.__dict__, "ops": max(1, cfg.ops // 2)})
        for on in (True, False, True, False):          # both states' paths compiled before measuring
            log(f"warm-up, metrics {'on' if on else 'off'}")
            one(on, warm)
        for i, kind in enumerate(kinds):
            order = BLOCK if (i // (1 if a.no_aa else 2)) % 2 == 0 else tuple("B" if x == "A" else "A" for x in BLOCK)
            got = {"A": [], "B": []}
            for label in order:
                on = kind == "ab" and label == "A"
                log(f"block {i + 1}/{len(kinds)} ({kind}, {''.join(order)}): {label}, metrics {'on' if on else 'off'}")
                got[label].append(one(on, cfg))
            out[kind][0].append(combine(got["A"]))
            out[kind][1].append(combine(got["B"]))
            out["blocks"].append({"kind": kind, "order": "".join(order)})
    finally:
        srv.stop()
        shutil.rmtree(base, ignore_errors=True)
    return out
