"""The join benchmark of issue 18: a coord observer vs a ZooKeeper observer joining a real 3-server
ZooKeeper 3.8 ensemble that holds N znodes (1,000,000 by default).

    python -m tests.zkpeer.zk_join_bench [--znodes 1000000] [--kinds coord,zookeeper] [--data 100]

For each kind, on a fresh ensemble filled the same way (multi ops of 1,000 creates under /big):
  join_s      observer process started -> it reports `Mode: observer` and a client reads /big's child
              count from it (SNAP received, loaded, serving)
  rss_mb      the observer's peak resident memory (VmHWM) once serving
  write p50/p99  latency of one client's setData to the ZooKeeper leader, back to back, during the join
              (and the same before the join, as the baseline)
The voters run with initLimit=90 (x tickTime 2 s) so a slow SNAP is not cut off, for both kinds;
each voter's heap is 3 GiB. Prints one line per kind and the load average; numbers go in
docs/migration.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from kazoo.client import KazooClient

from tests.support.zk_observer import ObservedEnsemble

VOTER_CFG = {"initLimit": "90", "syncLimit": "10"}


def _hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


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


def _writer(hosts: str, stop: threading.Event, out: list) -> None:
    c = KazooClient(hosts=hosts, timeout=30)
    c.start(timeout=60)
    c.ensure_path("/lat")
    try:
        while not stop.is_set():
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


def run(kind: str, n: int, data_len: int, workdir: Path) -> dict:
    obs = ObservedEnsemble(workdir, kind, voter_cfg=VOTER_CFG, observer_heap_mb=3072)
    for m in obs.voters.members:
        m.heap_mb = 3072
    obs.start()
    try:
        leader = obs.voters.leader()
        c = KazooClient(hosts=leader.connect_string, timeout=30)
        c.start(timeout=60)
        fill_s = _fill(c, n, b"v" * data_len)
        base: list = []
        stop = threading.Event()
        w = threading.Thread(target=_writer, args=(leader.connect_string, stop, base))
        w.start()
        time.sleep(5)
        stop.set()
        w.join(60)
        during: list = []
        stop = threading.Event()
        w = threading.Thread(target=_writer, args=(leader.connect_string, stop, during))
        w.start()
        t0 = time.monotonic()
        try:
            obs.start_observer(wait=900)
            via = KazooClient(hosts=obs.observer_connect, timeout=30)
            via.start(timeout=120)
            count = via.get_children_count("/big") if hasattr(via, "get_children_count") else \
                via.get("/big")[1].numChildren
            join_s = time.monotonic() - t0
        finally:
            stop.set()
            w.join(60)
        assert count == n, (count, n)
        pid = obs.observer.proc.pid
        rss = _hwm_mb(pid)
        via.stop()
        via.close()
        c.stop()
        c.close()
        return dict(kind=kind, znodes=n, fill_s=fill_s, join_s=join_s, rss_mb=rss,
                    base_p50=_pct(base, .5), base_p99=_pct(base, .99), base_n=len(base),
                    p50=_pct(during, .5), p99=_pct(during, .99), max=_pct(during, 1.0), n=len(during),
                    mean=statistics.fmean(during) * 1000 if during else float("nan"))
    finally:
        obs.stop()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.zkpeer.zk_join_bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--znodes", type=int, default=1_000_000)
    ap.add_argument("--data", type=int, default=100, help="bytes of data per znode")
    ap.add_argument("--kinds", default="coord,zookeeper")
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args(argv)
    base = Path(a.workdir or tempfile.mkdtemp(prefix="zkjoin-"))
    for kind in a.kinds.split(","):
        load0 = os.getloadavg()[0]
        r = run(kind, a.znodes, a.data, base / kind)
        load1 = os.getloadavg()[0]
        print(f"{kind:<9} observer: {r['znodes']:,} znodes (filled in {r['fill_s']:.0f} s); joined and serving in "
              f"{r['join_s']:.1f} s; peak RSS {r['rss_mb']:.0f} MB; leader setData during the join p50 "
              f"{r['p50']:.2f} ms p99 {r['p99']:.2f} ms max {r['max']:.0f} ms ({r['n']} writes), before it "
              f"p50 {r['base_p50']:.2f} p99 {r['base_p99']:.2f} ms; load average {load0:.1f} -> {load1:.1f}",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
