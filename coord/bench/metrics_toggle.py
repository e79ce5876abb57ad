"""What the Prometheus metrics cost, measured inside ONE server process: `metrics_ab --mode toggle`.

Why one process: two coord servers with metrics off differ by 5-30% (each PyPy process compiles its
own traces), so an on-process against an off-process cannot resolve a 3% cost. Here one server is
started with the provider configured and the bench-only switch (coord.aio.metrics_switch: SIGUSR1 on,
SIGUSR2 off), and the same closed-loop runs (coord.bench.phases, every phase) alternate between the two
states in blocks of four, ABBA then BAAB, so a linear drift of the machine cancels within a block.
While metrics are on, /metrics is scraped every `scrape_every` seconds from its own process, as a
Prometheus server would; while off, nobody scrapes (and the server would answer 503 without work).
Server CPU comes from schedstat (ns, all threads), so it counts the server's own work however loaded
the machine is; throughput does not, and on a loaded machine only the CPU column means much.

A/B blocks (A on, B off) alternate with A/A blocks (both off, the same signals sent): each block gives
one ratio per phase of throughput and of ops per server CPU-second (schedstat, ns), and the medians
of those ratios carry 95% intervals (coord.bench.paired). The A/A intervals are the floor.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from coord.aio.metrics_switch import ENV
from coord.bench import phases as ph
from coord.bench.launch import CoordServerProcess, free_port, pin_process
from coord.bench.tail import METRICS_CLASS

BLOCK = ("A", "B", "B", "A")

# One scraper process for the whole run, scraping only while the flag file exists: a scraper started
# per metrics-on run would add a Python start-up to the on-runs' CPU contention on a 2-core machine.
SCRAPE_WHILE_FLAG = """
import os, sys, time, urllib.error, urllib.request
url, every, flag = sys.argv[1], float(sys.argv[2]), sys.argv[3]
n = 0
while True:
    time.sleep(every)
    if os.path.exists(flag):
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                r.read()
        except urllib.error.HTTPError as e:   # 503: switched off between the flag check and the GET
            if e.code != 503:
                raise
            continue
        except OSError as e:                  # a timeout on a machine at load 50: try again, say so
            print("scrape failed:", e, file=sys.stderr, flush=True)
            continue
        n += 1
        print(n, flush=True)
"""


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
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:   # /metrics may bind after the client port
            code = f"no answer ({e})"
        if code == want:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} still answers {code} {timeout:g}s after the switch to "
                             f"{'on' if on else 'off'}: is the server started with {ENV}=1?")
        time.sleep(0.05)


class ToggledServer:
    """One coord server with the Prometheus provider and the bench switch."""

    def __init__(self, workdir: Path, force_sync: bool, process: type = CoordServerProcess,
                 extra_cfg: dict[str, str] | None = None, extra_env: dict[str, str] | None = None,
                 start_wait: float = 60.0, switch_timeout: float = 15.0):
        """`process` and the waits: coord.bench.metrics_icount runs the same server under valgrind."""
        self.workdir = workdir
        self.force_sync = force_sync
        self.process = process
        self.extra_cfg = dict(extra_cfg or {})
        self.extra_env = dict(extra_env or {})
        self.start_wait = start_wait
        self.switch_timeout = switch_timeout
        self._make()
        self.on = True

    def _make(self) -> None:
        self.http_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}/metrics"
        self.proc = self.process(self.workdir, force_sync=self.force_sync, extra_env={**self.extra_env, ENV: "1"}, extra_cfg={
            "metricsProvider.className": METRICS_CLASS, "metricsProvider.httpHost": "127.0.0.1",
            "metricsProvider.httpPort": str(self.http_port), **self.extra_cfg})

    def start(self) -> None:
        """Started, with one more try on fresh ports: a free port picked here can be taken by another
        process before the server binds it (seen once at load 20)."""
        for attempt in (1, 2):
            try:
                self.proc.start(self.start_wait)
                break
            except RuntimeError as e:
                log_file = self.workdir / self.proc.log_name
                tail = log_file.read_text(errors="replace")[-1500:] if log_file.exists() else ""
                if attempt == 2:
                    raise SystemExit(f"{e}\n{tail}") from None
                self.proc.stop()
                self._make()
        wait_state(self.url, True, self.switch_timeout)

    def set(self, on: bool) -> None:
        os.kill(self.proc.pid, signal.SIGUSR1 if on else signal.SIGUSR2)
        wait_state(self.url, on, self.switch_timeout)
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


def best_cpu(single: dict) -> dict:
    """Per phase, the least server CPU per op (us) of any A run and of any B run, and their ratio as
    ops per CPU-second A/B: the least disturbed run of each state, as coord.bench.core keeps, which a
    loaded machine blurs far less than a median."""
    out = {}
    for op in single["A"][0].phases if single["A"] else ():
        best = {}
        for label in ("A", "B"):
            per = [r.phases[op].server_cpu_s / r.phases[op].ops * 1e6 for r in single[label]
                   if r.phases[op].server_cpu_s and r.phases[op].ops]
            best[label] = min(per) if per else None
        if best["A"] and best["B"]:
            out[op] = {"A_us_per_op": round(best["A"], 4), "B_us_per_op": round(best["B"], 4),
                       "ops_per_cpu_s_A_over_B": round(best["B"] / best["A"], 4)}
    return out


def run_toggle(a, cfg: ph.BenchConfig, console, cpu_probe, server: ToggledServer | None = None,
               warm_runs: int = 4) -> dict:
    """Blocks alternately A/B and A/A (`a.rounds` of each kind unless a.no_aa), in one server process.
    cpu_probe(pid) -> a probe of the server's CPU seconds. Returns {"ab": (A blocks, B blocks), "aa":
    (...), "single": every run by kind and label, "scrapes": n, "blocks": [kind and order]}.
    `server`: one the caller has started and stops (metrics_icount: under valgrind); `warm_runs`
    runs of half the ops, on and off alternately, come first."""
    base = Path(tempfile.mkdtemp(prefix="coord-metrics-toggle-"))
    owned = server is None
    srv = ToggledServer(base / "s", a.force_sync) if owned else server
    flag = base / "scrape-now"
    scraper = None
    log = lambda m: console.print(f"[dim]{m}[/dim]")  # noqa: E731
    out: dict = {"ab": ([], []), "aa": ([], []), "scrapes": 0, "blocks": [],
                 "single": {"ab": {"A": [], "B": []}, "aa": {"A": [], "B": []}}}
    kinds = ["ab", "aa"] * a.rounds if not a.no_aa else ["ab"] * a.rounds
    try:
        if owned:
            srv.start()
        if getattr(a, "pin", None):
            server_cpus, client_cpus = a.pin
            pin_process(srv.proc.pid, server_cpus)
            pin_process(os.getpid(), client_cpus)      # this harness, its load threads and the scraper
            log(f"pinned: server on CPUs {sorted(server_cpus)}, load on {sorted(client_cpus)}")
        probe = cpu_probe(srv.proc.pid)
        if a.scrape_every > 0:
            scraper = subprocess.Popen([sys.executable, "-c", SCRAPE_WHILE_FLAG, srv.url, str(a.scrape_every),
                                        str(flag)], stdout=subprocess.PIPE, text=True)

        def one(on: bool, c: ph.BenchConfig) -> ph.RunResult:
            flag.unlink(missing_ok=True)                # no scrape may reach a server switched off
            srv.set(on)
            if on:
                flag.touch()
            if scraper is not None and scraper.poll() is not None:
                raise SystemExit(f"the scraper died (exit {scraper.returncode}): /metrics stopped answering")
            return ph.run(srv.proc.target, c, probe, log)
        warm = ph.BenchConfig(**{**cfg.__dict__, "ops": max(1, cfg.ops // 2)})
        for on in [True, False] * (warm_runs // 2):     # both states' paths compiled before measuring
            log(f"warm-up, metrics {'on' if on else 'off'}")
            one(on, warm)
        for i, kind in enumerate(kinds):
            order = BLOCK if (i // (1 if a.no_aa else 2)) % 2 == 0 else tuple("B" if x == "A" else "A" for x in BLOCK)
            got = {"A": [], "B": []}
            for label in order:
                on = kind == "ab" and label == "A"
                log(f"block {i + 1}/{len(kinds)} ({kind}, {''.join(order)}): {label}, metrics {'on' if on else 'off'}")
                got[label].append(one(on, cfg))
                out["single"][kind][label].append(got[label][-1])
            out[kind][0].append(combine(got["A"]))
            out[kind][1].append(combine(got["B"]))
            out["blocks"].append({"kind": kind, "order": "".join(order)})
    finally:
        flag.unlink(missing_ok=True)
        if scraper is not None:
            scraper.kill()
            got = scraper.communicate()[0].split()
            out["scrapes"] = int(got[-1]) if got else 0
        if owned:
            srv.stop()
        shutil.rmtree(base, ignore_errors=True)
    return out
