"""What TLS on the peer links costs: a 3-server ensemble with sslQuorum=true vs plain, coord vs real
ZooKeeper 3.8, in the same run, the same harness (tests.support.ensemble) and the same key stores.

Writes are what cross the peer links (follower -> leader forward, proposal, acks, commit), so both
figures are writes through a follower:
- throughput: C sessions on one follower, each pipelining setData of a 100-byte znode (depth D);
- latency: one session, one setData at a time (after as many unmeasured ones): p50 and p99.
forceSync=no, so that the disk does not hide the links' cost. Rounds alternate the order of the four
ensembles (coord plain, coord TLS, ZooKeeper plain, ZooKeeper TLS); medians reported.

    .venv/bin/python -m tests.security.bench_quorum_tls [--rounds 2] [--writes 4000] [--latency-writes 1500]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from coord.bench.client import BenchError, Session, drive, encode_batch
from tests.security.certs import PASSWORD, Pki
from tests.support.ensemble import Ensemble


def quorum_keys(pki: Pki) -> dict[str, str]:
    return {"ssl.quorum.keyStore.location": str(pki.key_store("server", "JKS")),
            "ssl.quorum.keyStore.password": PASSWORD,
            "ssl.quorum.trustStore.location": str(pki.trust_store("JKS")),
            "ssl.quorum.trustStore.password": PASSWORD}


def measure(ens: Ensemble, conns: int, depth: int, writes: int, lat_writes: int) -> tuple[float, float, float]:
    leader = ens.wait_serving(wait=120)
    follower = next(m for s, m in ens.members.items() if s != leader)
    host, port = "127.0.0.1", follower.client_port
    sessions = [Session(host, port) for _ in range(conns)]
    try:
        for i, s in enumerate(sessions):
            s.call("create", f"/qb{i}", b"x" * 100)
        per = writes // conns
        # one unmeasured warm-up pass (JIT on both sides), then the measured one
        for measured in (False, True):
            for i, s in enumerate(sessions):
                blob, offs = encode_batch("setData", [f"/qb{i}"] * per, b"y" * 100, s.xid)
                s.load(blob, offs)
            start, end = drive(sessions, depth)
            errs = sum(s.errors for s in sessions)
            if errs:
                raise RuntimeError(f"{errs} setData failed")
            for s in sessions:
                s.sock.setblocking(True)
        ops = per * conns / (end - start)
        s = sessions[0]
        for i in range(1, conns):   # idle sessions would expire (tickTime 200: 4 s at most)
            s.call("delete", f"/qb{i}")
            sessions[i].close()
        del sessions[1:]
        # unmeasured: the one-at-a-time path warm too, as the pipelined pass does not JIT it (coord's
        # first 1500 single writes: p50 0.59-0.67 ms, the next 0.16-0.24; ZooKeeper's 0.42, then 0.27-0.32)
        s.latency("setData", ["/qb0"] * lat_writes, b"w" * 100)
        lat = sorted(s.latency("setData", ["/qb0"] * lat_writes, b"z" * 100))
        p50 = lat[len(lat) // 2] / 1e6
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] / 1e6
        s.call("delete", "/qb0")
        return ops, p50, p99
    finally:
        for s in sessions:
            s.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--depth", type=int, default=16)
    ap.add_argument("--writes", type=int, default=4000)
    ap.add_argument("--latency-writes", type=int, default=1500)
    a = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix="bench-quorum-tls-"))
    pki = Pki(d / "pki")
    keys = quorum_keys(pki)
    configs = [("coord", False), ("coord", True), ("zookeeper", False), ("zookeeper", True)]
    runs: dict[tuple, list] = {c: [] for c in configs}
    n = 0
    for r in range(a.rounds):
        order = configs if r % 2 == 0 else configs[::-1]
        for kind, tls in order:
            cfg = dict(keys, sslQuorum="true" if tls else "false")
            for attempt in (1, 2, 3):
                n += 1
                ens = Ensemble(d / f"run{n}-{kind}-{'tls' if tls else 'plain'}", 3, kind=kind, force_sync=False,
                               member_cfg={sid: cfg for sid in (1, 2, 3)}, heap_mb=512)
                try:
                    ens.start(wait=120)
                    row = measure(ens, a.conns, a.depth, a.writes, a.latency_writes)
                    break
                except BenchError as e:
                    # tickTime 200: a follower that misses the leader for syncLimit ticks (a GC or JIT
                    # pause, a preempted process) drops its clients; said, and the run is done again
                    print(f"# round {r + 1} {kind} sslQuorum={str(tls).lower()}: {e}; modes "
                          f"{ens.modes()} (attempt {attempt})", flush=True)
                    if attempt == 3:
                        raise
                finally:
                    ens.stop()
                    shutil.rmtree(ens.workdir, ignore_errors=True)
            runs[(kind, tls)].append(row)
            print(f"# round {r + 1} {kind:9} sslQuorum={str(tls).lower():5} "
                  f"{row[0]:9.0f} writes/s  p50 {row[1]:6.2f} ms  p99 {row[2]:6.2f} ms", flush=True)
    shutil.rmtree(d, ignore_errors=True)
    med = {c: tuple(statistics.median(x[i] for x in rs) for i in range(3)) for c, rs in runs.items()}
    print(f"\n{'':24}{'writes/s':>12}{'p50 ms':>10}{'p99 ms':>10}")
    for (kind, tls), (ops, p50, p99) in med.items():
        print(f"{kind + (' sslQuorum' if tls else ' plain'):24}{ops:>12.0f}{p50:>10.2f}{p99:>10.2f}")
    for kind in ("coord", "zookeeper"):
        plain, tls = med[(kind, False)], med[(kind, True)]
        print(f"{kind}: TLS/plain throughput {tls[0] / plain[0]:.2f}, p99 {tls[2] / plain[2]:.2f}")
    c, z = med[("coord", True)], med[("zookeeper", True)]
    print(f"sslQuorum coord/ZooKeeper: throughput {c[0] / z[0]:.2f}, p99 {z[2] / c[2]:.2f} (>1 = coord better)")


if __name__ == "__main__":
    main()
