"""`coord bench-churn`: server memory under churn, coord against a real ZooKeeper 3.8, and the soak.

A round is the closed-loop bench's five phases over `znodes` small znodes (create, getData, setData,
exists, delete: the tree is empty again after it, coord.bench.phases.run). Rounds alternate between
the two systems until each has had `seconds` of them; after every round the servers' resident size
(RSS, /proc/<pid>/statm; an ensemble: its largest member) is sampled. The verdict is the RSS after
the warm-up, the largest, the last, and the slope over the last third of the run (MiB per minute):
a server that keeps growing has a slope well above zero, one that has plateaued is at ~0.

`--soak 3600 --only coord` is the one-hour soak (docs/benchmarks.md); `--ensemble` runs 3-node
ensembles with the load on one follower and samples every member.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import click

from coord.bench import phases as ph
from coord.bench.client import BenchError
from coord.bench.launch import rss_mib


def parse_env(pairs) -> dict[str, str]:
    """KEY=VALUE options into a dict; a pair without '=' is a usage error."""
    out = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep or not k:
            raise click.BadParameter(f"expected KEY=VALUE, got {p!r}")
        out[k] = v
    return out


def slope_mib_per_min(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MiB) over the last third of the samples, in MiB/min."""
    tail = samples[len(samples) * 2 // 3:]
    if len(tail) < 3:
        return None
    n = len(tail)
    mx = sum(t for t, _ in tail) / n
    my = sum(v for _, v in tail) / n
    var = sum((t - mx) ** 2 for t, _ in tail)
    if var == 0:
        return None
    return 60.0 * sum((t - mx) * (v - my) for t, v in tail) / var


def verdict(samples: list[tuple[float, float]], warmup_s: float) -> dict:
    after = [v for t, v in samples if t >= warmup_s] or [v for _, v in samples]
    return {"rss_after_warmup_mib": round(after[0], 1) if after else None,
            "rss_max_mib": round(max(v for _, v in samples), 1) if samples else None,
            "rss_last_mib": round(samples[-1][1], 1) if samples else None,
            "slope_last_third_mib_per_min": (None if (s := slope_mib_per_min(samples)) is None else round(s, 2)),
            "rounds": len(samples)}


class _System:
    def __init__(self, name: str, base: Path, ensemble: bool, force_sync: bool, zk_heap_mb: int):
        from coord.bench.ensemble import LocalEnsemble
        from coord.bench.launch import CoordServerProcess, ZooKeeperProcess
        self.name = name
        self.ens = self.proc = None
        if ensemble:
            self.ens = LocalEnsemble(base / name, 3, name, force_sync=force_sync, heap_mb=zk_heap_mb)
        elif name == "coord":
            self.proc = CoordServerProcess(base / name, force_sync=force_sync)
        else:
            self.proc = ZooKeeperProcess(base / name, force_sync=force_sync, heap_mb=zk_heap_mb)

    def start(self) -> None:
        if self.ens is not None:
            leader = self.ens.start_all()
            follower = next(s for s in self.ens.servers if s != leader)
            self.target = f"127.0.0.1:{self.ens.client_port(follower)}"
        else:
            self.proc.start(wait=120)
            self.target = self.proc.target

    def pids(self) -> list[int]:
        return self.ens.pids() if self.ens is not None else [self.proc.pid]

    def rss(self) -> float:
        return max(rss_mib([p]) for p in self.pids())

    def stop(self) -> None:
        (self.ens or self.proc).stop()


def run(seconds: float, znodes: int, systems: tuple[str, ...], ensemble: bool, force_sync: bool,
        warmup_s: float, zk_heap_mb: int, workdir: str | None, log, coord_env: dict | None = None) -> dict:
    from coord.bench.launch import zookeeper_available
    if "zookeeper" in systems and not zookeeper_available():
        raise RuntimeError("Apache ZooKeeper is not installed (apt-get install zookeeper)")
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="coord-churn-"))
    base.mkdir(parents=True, exist_ok=True)
    cfg = ph.BenchConfig(connections=8, depth=32, ops=znodes, procs=2, latency=False)
    sysm = {n: _System(n, base, ensemble, force_sync, zk_heap_mb) for n in systems}
    samples: dict[str, list] = {n: [] for n in systems}
    rates: dict[str, list] = {n: [] for n in systems}
    errors = {n: 0 for n in systems}
    load = [os.getloadavg()[0]]
    try:
        from coord.bench.tail import server_env
        for s in sysm.values():
            with server_env(coord_env if s.name == "coord" else None):
                s.start()
            samples[s.name].append((0.0, s.rss()))
            log(f"{s.name}: serving on {s.target}, RSS {s.rss():.0f} MiB")
        spent = {n: 0.0 for n in systems}
        while any(v < seconds for v in spent.values()):
            for n, s in sysm.items():
                if spent[n] >= seconds:
                    continue
                t0 = time.monotonic()
                r = ph.run(s.target, cfg)
                spent[n] += time.monotonic() - t0
                errors[n] += sum(p.errors for p in r.phases.values())
                rates[n].append({op: round(p.ops_per_s) for op, p in r.phases.items()})
                samples[n].append((round(spent[n], 1), round(s.rss(), 1)))
                log(f"{n} t={spent[n]:.0f}s RSS {samples[n][-1][1]:.0f} MiB, "
                    f"create {rates[n][-1]['create']:,}/s, load {os.getloadavg()[0]:.1f}")
        load.append(os.getloadavg()[0])
    finally:
        for s in sysm.values():
            s.stop()
        if not workdir:
            shutil.rmtree(base, ignore_errors=True)
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": seconds, "znodes": znodes,
            "ensemble": ensemble, "force_sync": force_sync, "loadavg": load, "errors": errors,
            "verdict": {n: verdict(samples[n], warmup_s) for n in systems}, "samples": samples,
            "ops_per_s": rates}


@click.command("bench-churn")
@click.option("--seconds", default=150.0, show_default=True, help="Churn time per system.")
@click.option("--soak", type=float, default=None, help="Same as --seconds (e.g. --soak 3600: the one-hour soak).")
@click.option("--znodes", default=20_000, show_default=True, help="Znodes created and deleted per round.")
@click.option("--only", type=click.Choice(["coord", "zookeeper", "both"]), default="both", show_default=True)
@click.option("--ensemble", is_flag=True, help="3-node ensembles, load on a follower, RSS of the largest member.")
@click.option("--no-fsync", is_flag=True, help="forceSync=no (default: yes).")
@click.option("--warmup", default=30.0, show_default=True, help="Seconds before the 'after warm-up' RSS.")
@click.option("--zk-heap-mb", default=2048, show_default=True, help="ZooKeeper's -Xmx/-Xms.")
@click.option("--workdir", default=None, type=click.Path(file_okay=False))
@click.option("--coord-env", multiple=True, metavar="KEY=VALUE", help="Environment of the coord servers (A/B runs).")
@click.option("--json", "as_json", is_flag=True)
def churn_command(seconds, soak, znodes, only, ensemble, no_fsync, warmup, zk_heap_mb, workdir, coord_env,
                  as_json) -> None:
    """Server RSS under create/get/set/exists/delete churn, coord vs ZooKeeper 3.8 (and the soak)."""
    if znodes < 8:
        raise click.BadParameter("--znodes must be at least 8")
    systems = ("coord", "zookeeper") if only == "both" else (only,)
    log = (lambda m: click.echo(m, err=True))
    try:
        out = run(soak or seconds, znodes, systems, ensemble, not no_fsync, warmup, zk_heap_mb, workdir, log,
                  parse_env(coord_env))
    except (BenchError, OSError, RuntimeError, TimeoutError) as e:
        raise click.ClickException(str(e))
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    for n, v in out["verdict"].items():
        click.echo(f"{n}: RSS after warm-up {v['rss_after_warmup_mib']} MiB, max {v['rss_max_mib']}, "
                   f"last {v['rss_last_mib']}, slope (last third) {v['slope_last_third_mib_per_min']} MiB/min, "
                   f"{v['rounds']} rounds, {out['errors'][n]} errors")
