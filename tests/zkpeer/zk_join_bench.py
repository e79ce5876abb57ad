"""The observer benchmark of issue 18: a coord observer vs a ZooKeeper observer of the same real
3-server ZooKeeper 3.8 ensemble holding N znodes (1,000,000 by default), in one run.

    python -m tests.zkpeer.zk_join_bench [--znodes 1000000] [--runs 3] [--reads-seconds 10]

The ensemble is filled once (multi ops of 1,000 creates under /big); its zoo.cfg names two observers,
server.4 (coord) and server.5 (ZooKeeper). Joins: `--runs` rounds, each starting one observer at a
time from an empty dataDir (a SNAP), the kind that goes first alternating; per join:
  join_s      observer process started -> it reports `Mode: observer` and a client reads /big's child
              count from it (SNAP received, loaded, serving)
  cpu_s       the observer process's CPU time (user + system, every thread) by then: on a loaded
              machine the wall time is mostly other processes' turn, this is what the join cost
  rss_mb      the observer's peak resident memory (VmHWM), read once its copy is on disk (ZooKeeper
              writes its snapshot before serving; coord writes it in a forked child after: its peak
              includes that period; the child's own memory is not in it)
  write p50/p99/max  one client's setData to the ZooKeeper leader during the join, --write-rate a
              second (the txns the observer applies while it joins and after)
The table gives the median of the runs per kind and coord / ZooKeeper.

Reads (`--reads-seconds` > 0, 0 skips them): both observers joined, `--keys` znodes of 100 bytes
preloaded through the leader, each observer's copy on disk (coord writes its snapshot in the
background after a SNAP: not during the reads), then per op (getData, exists) and observer, with
coord's pipelined
bench client (coord.bench.openloop, --connections sessions over --procs processes): the closed-loop
maximum (ops/s, and the observer's CPU per op), then an open-loop run at --rate-fraction of the
lower of the two maxima, the same rate for both, for p50/p99 from scheduled send times.

The voters run with initLimit=90 (x tickTime 2 s) so a slow SNAP is not cut off; every JVM's heap is
3 GiB. Numbers go in docs/migration.md.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from kazoo.client import KazooClient

from coord.bench.openloop import OpenLoopClient, Plan, quantiles
from tests.support.zk_observer import ObservedEnsemble

VOTER_CFG = {"initLimit": "90", "syncLimit": "10"}
SLOT = {"coord": 0, "zookeeper": 1}       # observer i: server.4 is coord's, server.5 ZooKeeper's
_TICK = os.sysconf("SC_CLK_TCK")


def _hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / _TICK


def _fill(c: KazooClient, n: int, data: bytes) -> float:
    t0 = time.monotonic()
    c.ensure_path("/big")
    batch = 1000
    pending = []
    for start in range(0, n, batch):
        t = c.transaction()
        for i in range(start, min(n, start + batch)):
            t.create(f"/big/n{i}", data)
        pending.append(t.commit_async())
        if len(pending) >= 8:
            pending.pop(0).get(timeout=300)
    for p in pending:
        p.get(timeout=300)
    return time.monotonic() - t0


def _writer(hosts: str, stop: threading.Event, out: list, rate: float) -> None:
    """setData to the leader at `rate` per second (0: back to back), each one's latency in `out`: a
    paced writer gives either observer the same txns per second to apply while it joins."""
    c = KazooClient(hosts=hosts, timeout=30)
    c.start(timeout=60)
    c.ensure_path("/lat")
    gap = 1.0 / rate if rate > 0 else 0.0
    due = time.perf_counter()
    try:
        while not stop.is_set():
            if gap:
                due += gap
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            t0 = time.perf_counter()
            c.set("/lat", b"x")
            out.append(time.perf_counter() - t0)
    finally:
        c.stop()
        c.close()


def _pct(xs: list, p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000


def _observer_dir(obs: ObservedEnsemble, i: int) -> Path:
    return obs.workdir / ("observer" if i == 0 else f"observer{4 + i}")


def _on_disk(obs: ObservedEnsemble, kind: str, i: int, timeout: float = 120.0) -> float:
    """Seconds until the observer's copy is on disk (coord: its forked snapshot of the SNAP's tree;
    ZooKeeper wrote its snapshot before it served)."""
    t0 = time.monotonic()
    if kind != "coord":
        return 0.0
    log = _observer_dir(obs, i) / "coord.log"
    while time.monotonic() - t0 < timeout:
        if "on disk as snapshot" in log.read_text(errors="replace"):
            return time.monotonic() - t0
        time.sleep(0.2)
    raise TimeoutError(f"the coord observer's snapshot was not on disk {timeout:.0f} s after it served")


def join_once(obs: ObservedEnsemble, kind: str, n: int, write_rate: float) -> dict:
    i = SLOT[kind]
    shutil.rmtree(_observer_dir(obs, i), ignore_errors=True)      # empty dataDir: a SNAP
    leader = obs.voters.leader()
    during: list = []
    stop = threading.Event()
    w = threading.Thread(target=_writer, args=(leader.connect_string, stop, during, write_rate))
    w.start()
    time.sleep(1)
    load0 = os.getloadavg()[0]
    t0 = time.monotonic()
    try:
        obs.start_observer(wait=900, i=i, kind=kind)
        via = KazooClient(hosts=f"127.0.0.1:{obs.ports[i][2]}", timeout=30)
        via.start(timeout=120)
        count = via.get("/big")[1].numChildren
        join_s = time.monotonic() - t0
        pid = obs.observers[i].proc.pid
        cpu = _cpu_s(pid)
        disk_s = _on_disk(obs, kind, i)
    finally:
        stop.set()
        w.join(60)
    assert count == n, (count, n)
    rss = _hwm_mb(pid)
    via.stop()
    via.close()
    obs.stop_observer(i=i)
    return dict(kind=kind, join_s=join_s, cpu_s=cpu, rss_mb=rss, disk_s=disk_s, p50=_pct(during, .5),
                p99=_pct(during, .99), max=_pct(during, 1.0), n=len(during),
                load=(load0, os.getloadavg()[0]))


def _preload(hosts: str, root: str, keys: int) -> None:
    c = KazooClient(hosts=hosts, timeout=30)
    c.start(timeout=60)
    try:
        c.ensure_path(root)
        for start in range(0, keys, 1000):
            for r in [c.create_async(f"{root}/k{g:07d}", b"x" * 100) for g in range(start, min(keys, start + 1000))]:
                r.get(timeout=120)
    finally:
        c.stop()
        c.close()


def reads(obs: ObservedEnsemble, kinds: list[str], a) -> None:
    """Both observers up, the same keys, the same client, the same rate: see the module docstring."""
    root = f"/reads-{os.getpid()}"
    _preload(obs.voters.leader().connect_string, root, a.keys)
    for kind in kinds:
        shutil.rmtree(_observer_dir(obs, SLOT[kind]), ignore_errors=True)
        obs.start_observer(wait=900, i=SLOT[kind], kind=kind)
    c = KazooClient(hosts=obs.voters.leader().connect_string, timeout=30)
    c.start(timeout=60)
    c.set(root, b"x")           # a txn that verifies coord's SNAP: its snapshot is written, then measured
    c.stop()
    c.close()
    for kind in kinds:
        _on_disk(obs, kind, SLOT[kind])
    for kind in kinds:          # every key visible through each observer before the clock starts
        c = KazooClient(hosts=f"127.0.0.1:{obs.ports[SLOT[kind]][2]}", timeout=30)
        c.start(timeout=60)
        c.sync(root)
        assert c.get(root)[1].numChildren == a.keys
        c.stop()
        c.close()
    for op in ("getData", "exists"):
        maxima = {}
        for r, kind in enumerate(kinds if op == "getData" else kinds[::-1]):
            pid = obs.observers[SLOT[kind]].proc.pid
            with OpenLoopClient([("127.0.0.1", obs.ports[SLOT[kind]][2])], a.connections, a.procs) as cl:
                warm = cl.max_rate(Plan(op, root, 0.0, 0.0, 0.0, keys=a.keys, count=a.calib_ops // 4), a.depth)[0]
                count = max(a.calib_ops, int(warm * a.closed_seconds))    # a few seconds, however fast
                c0 = _cpu_s(pid)
                rate, done, errors = cl.max_rate(Plan(op, root, 0.0, 0.0, 0.0, keys=a.keys, count=count), a.depth)
                per_op = (_cpu_s(pid) - c0) / max(1, done) * 1e6
            maxima[kind] = rate
            print(f"{kind:<9} observer {op}: max {rate:,.0f} ops/s closed loop ({done} acknowledged, {errors} errors; "
                  f"observer CPU {per_op:.1f} us/op); load average {os.getloadavg()[0]:.1f}", flush=True)
        rate = a.rate_fraction * min(maxima.values())
        for kind in (kinds if op == "exists" else kinds[::-1]):
            with OpenLoopClient([("127.0.0.1", obs.ports[SLOT[kind]][2])], a.connections, a.procs) as cl:
                res = cl.run(Plan(op, root, rate, 2.0, a.reads_seconds, keys=a.keys))
            q, late = quantiles(res.lat_us), quantiles(res.late_us)
            print(f"{kind:<9} observer {op} open loop at {rate:,.0f}/s: p50 {q['p50_ms']:.3f} ms p99 {q['p99_ms']:.3f} ms "
                  f"max {q['max_ms']:.1f} ms ({q['n']} requests, {res.errors} errors; client late p99 "
                  f"{late['p99_ms']:.3f} ms); load average {os.getloadavg()[0]:.1f}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.zkpeer.zk_join_bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--znodes", type=int, default=1_000_000)
    ap.add_argument("--data", type=int, default=100, help="bytes of data per znode")
    ap.add_argument("--kinds", default="coord,zookeeper")
    ap.add_argument("--runs", type=int, default=3, help="joins per kind (the median is reported; 0: reads only)")
    ap.add_argument("--write-rate", type=float, default=200.0, help="setData/s to the leader during a join (0: back to back)")
    ap.add_argument("--reads-seconds", type=float, default=10.0, help="open-loop seconds per read run; 0: no reads")
    ap.add_argument("--keys", type=int, default=10_000, help="znodes the reads go over")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--depth", type=int, default=32)
    ap.add_argument("--calib-ops", type=int, default=100_000, help="requests of a closed-loop maximum")
    ap.add_argument("--closed-seconds", type=float, default=3.0,
                    help="a closed-loop maximum runs at least this long (its warm-up's rate x this many requests)")
    ap.add_argument("--rate-fraction", type=float, default=0.5)
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args(argv)
    kinds = [k for k in a.kinds.split(",") if k]
    if not kinds or any(k not in SLOT for k in kinds):
        ap.error(f"--kinds: a list of {', '.join(SLOT)}")
    base = Path(a.workdir or tempfile.mkdtemp(prefix="zkjoin-"))
    obs = ObservedEnsemble(base, "coord", observers=2, voter_cfg=VOTER_CFG, observer_heap_mb=3072)
    for m in obs.voters.members:
        m.heap_mb = 3072
    obs.start()
    try:
        c = KazooClient(hosts=obs.voters.leader().connect_string, timeout=30)
        c.start(timeout=60)
        fill_s = _fill(c, a.znodes, b"v" * a.data)
        c.stop()
        c.close()
        print(f"ensemble filled with {a.znodes:,} znodes in {fill_s:.0f} s", flush=True)
        got: dict[str, list[dict]] = {k: [] for k in kinds}
        for r in range(a.runs):
            for kind in (kinds if r % 2 == 0 else kinds[::-1]):
                j = join_once(obs, kind, a.znodes, a.write_rate)
                got[kind].append(j)
                print(f"{kind:<9} observer, run {r + 1}: joined and serving in {j['join_s']:.1f} s (CPU {j['cpu_s']:.1f} s); "
                      f"peak RSS {j['rss_mb']:.0f} MB; on disk {j['disk_s']:.1f} s after serving; leader setData "
                      f"during the join p50 {j['p50']:.2f} ms p99 {j['p99']:.2f} ms max {j['max']:.0f} ms "
                      f"({j['n']} writes); load average {j['load'][0]:.1f} -> {j['load'][1]:.1f}", flush=True)
        med = {k: {f: statistics.median(j[f] for j in v) for f in ("join_s", "cpu_s", "rss_mb")}
               for k, v in got.items() if v}
        for k, m in med.items():
            print(f"{k:<9} observer, median of {a.runs}: joined in {m['join_s']:.1f} s, CPU {m['cpu_s']:.1f} s, "
                  f"peak RSS {m['rss_mb']:.0f} MB", flush=True)
        if "coord" in med and "zookeeper" in med:
            c, z = med["coord"], med["zookeeper"]
            print(f"coord / ZooKeeper: join time {c['join_s'] / z['join_s']:.2f}, CPU {c['cpu_s'] / z['cpu_s']:.2f}, "
                  f"peak RSS {c['rss_mb'] / z['rss_mb']:.2f}", flush=True)
        if a.reads_seconds > 0:
            reads(obs, kinds, a)
    finally:
        obs.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
