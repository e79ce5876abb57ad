"""Kafka's controller write, multi(check /controller_epoch, setData partition state), at pipeline
depth: the same raw-socket client against a 3-server coord ensemble and a 3-server ZooKeeper 3.8
ensemble (forceSync=no, as bench_kafka runs both), through the leader and through a follower.

`.venv/bin/python -m tests.kafka.bench_multi_depth [--partitions 2000] [--ops 4000] [--depths 1,10,100,1000]`
(COORD_JIT_WARMUP_OPS=N in the environment: coord's servers warm their JIT up first, and the bench
waits for it; `--warmup 0` measures servers as cold as a Kafka controller finds them.)

Why: in a Kafka failover the controller keeps many such multis in flight (one per partition it
moves), and the wire (bench_kafka --pcap) showed coord's p50 at 2.5-4x ZooKeeper's at equal depth.
This replays only that pattern, with no JVM, so a change to coord's multi path is measured in
seconds. Each multi checks /controller_epoch at version 0 and sets one partition's state at the
version it has (the controller's zkVersion), so every op succeeds; an error fails the run.
Latency is send -> reply per request as the client sees it (its queueing in the window counts, as
it does for Kafka's controller).
"""
from __future__ import annotations

import argparse
import os
import struct
import tempfile
import time
from pathlib import Path

from coord.bench.client import BenchError, Session, drive, encode_batch
from coord.bench.phases import proc_cpu_probe
from coord.jute import records as R
from tests.kafka.conftest import TICK_MS
from tests.support.ensemble import Ensemble

EPOCH = "/controller_epoch"
STATE = b'{"controller_epoch":1,"leader":1,"version":1,"leader_epoch":1,"isr":[1,2,3]}'
_HDR = struct.Struct(">iii")
_REPLY = struct.Struct(">iiqi")


def state_path(p: int) -> str:
    return f"/brokers/topics/t/partitions/{p}/state"


def multi_frame(xid: int, path: str, version: int) -> bytes:
    body = b"".join((R.MultiHeader(13, False, -1).encode(), R.CheckVersionRequest(EPOCH, 0).encode(),
                     R.MultiHeader(5, False, -1).encode(), R.SetDataRequest(path, STATE, version).encode(),
                     R.MultiHeader(-1, True, -1).encode()))
    return _HDR.pack(8 + len(body), xid, 14) + body


def create_tree(s: Session, partitions: int) -> None:
    """The znodes a Kafka controller writes, created pipelined level by level."""
    levels = [[EPOCH, "/brokers"], ["/brokers/topics"], ["/brokers/topics/t"], ["/brokers/topics/t/partitions"],
              [f"/brokers/topics/t/partitions/{p}" for p in range(partitions)],
              [state_path(p) for p in range(partitions)]]
    for paths in levels:
        blob, offs = encode_batch("create", paths, STATE, s.xid)
        s.load(blob, offs)
        drive([s], 200)
        if s.errors:
            raise BenchError(f"{s.errors} creates failed (first error {s.first_err})")


class Writer:
    """One session writing multis; remembers each partition state's version across runs."""

    def __init__(self, host: str, port: int, partitions: int):
        self.s = Session(host, port)
        self.s.sock.settimeout(300)   # a loaded machine can stall a server for seconds
        self.partitions = partitions
        self.versions = [0] * partitions
        self.next_p = 0

    def run(self, ops: int, depth: int) -> tuple[list[int], float]:
        """ops multis with up to depth in flight; returns (latencies in ns, seconds)."""
        frames = []
        xid0 = self.s.xid
        for i in range(ops):
            p = self.next_p
            self.next_p = (p + 1) % self.partitions
            frames.append(multi_frame(xid0 + i, state_path(p), self.versions[p]))
            self.versions[p] += 1
        self.s.xid += ops
        sock = self.s.sock
        clock = time.perf_counter_ns
        sent_at = [0] * ops
        lat = [0] * ops
        buf = bytearray()
        sent = done = 0
        t0 = clock()
        k = min(depth, ops)
        now = clock()
        for i in range(k):
            sent_at[i] = now
        sock.sendall(b"".join(frames[:k]))
        sent = k
        while done < ops:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise BenchError("connection closed by the server")
            now = clock()
            buf += chunk
            pos, n, got = 0, len(buf), 0
            while n - pos >= 20:
                ln, xid, _, err = _REPLY.unpack_from(buf, pos)
                if pos + 4 + ln > n:
                    break
                if xid not in (-1, -2):
                    i = xid - xid0
                    if i != done:
                        raise BenchError(f"reply xid {xid} out of order")
                    if err:
                        raise BenchError(f"multi {i} failed with error {err}")
                    lat[i] = now - sent_at[i]
                    done += 1
                    got += 1
                pos += 4 + ln
            del buf[:pos]
            k = min(got, ops - sent)
            if k:
                for i in range(sent, sent + k):
                    sent_at[i] = now
                sock.sendall(b"".join(frames[sent:sent + k]))
                sent += k
        return lat, (clock() - t0) / 1e9

    def close(self) -> None:
        self.s.close()


def pct(xs: list[int], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] / 1e6


def wait_warm(ens: Ensemble, timeout: float = 300.0) -> None:
    """Every coord server has logged its JIT warm-up's end (COORD_JIT_WARMUP_OPS, coord.aio.warmup)."""
    deadline = time.monotonic() + timeout
    while not all("JIT warm-up: " in m.log_text() for m in ens.members.values()):
        if time.monotonic() > deadline:
            raise BenchError("the coord servers did not finish their JIT warm-up")
        time.sleep(0.5)


def measure(kind: str, partitions: int, ops: int, depths: list[int], warmup: int) -> dict:
    """{(via, depth): (p50 ms, p99 ms, multis/s, server CPU us per multi)} for one backend; the CPU is
    summed over the three servers' processes (every thread), so it is the ensemble's cost of a multi."""
    out = {}
    with tempfile.TemporaryDirectory(prefix=f"multi-depth-{kind}-") as d:
        with Ensemble(Path(d), 3, kind=kind, tick_ms=TICK_MS, force_sync=False) as ens:
            leader = ens.members[ens.wait_serving()]
            if kind == "coord" and os.environ.get("COORD_JIT_WARMUP_OPS", "0") not in ("", "0"):
                wait_warm(ens)
            host, port = "127.0.0.1", leader.client_port
            setup = Session(host, port)
            create_tree(setup, partitions)
            setup.close()
            probes = [proc_cpu_probe(m.proc.pid) for m in ens.members.values()]
            for via, member in (("leader", leader), ("follower", ens.followers()[0])):
                w = Writer("127.0.0.1", member.client_port, partitions)
                try:
                    w.run(warmup, 100)
                    for depth in depths:
                        cpu0 = sum(p() for p in probes)
                        lat, secs = w.run(ops, depth)
                        cpu_us = (sum(p() for p in probes) - cpu0) / ops * 1e6
                        r = out[(via, depth)] = (pct(lat, 0.5), pct(lat, 0.99), ops / secs, cpu_us)
                        print(f"{kind:9} via {via:8} depth {depth:4}: p50 {r[0]:8.2f} ms  p99 {r[1]:8.2f} ms  "
                              f"{r[2]:8.0f} multis/s  {r[3]:6.0f} us server CPU/multi", flush=True)
                finally:
                    w.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--partitions", type=int, default=2000)
    ap.add_argument("--ops", type=int, default=4000, help="multis per depth and path")
    ap.add_argument("--warmup", type=int, default=4000, help="multis at depth 100 before measuring")
    ap.add_argument("--depths", default="1,10,100,1000")
    ap.add_argument("--kinds", default="coord,zookeeper")
    args = ap.parse_args()
    depths = [int(x) for x in args.depths.split(",")]
    kinds = args.kinds.split(",")
    res = {k: measure(k, args.partitions, args.ops, depths, args.warmup) for k in kinds}
    if len(kinds) == 2:
        a, b = (res[k] for k in kinds)
        print(f"\nratio {kinds[0]}/{kinds[1]}:  via       depth   p50    p99    throughput  CPU/multi")
        for key in a:
            print(f"{'':28}{key[0]:9} {key[1]:5}  {a[key][0] / b[key][0]:5.2f}  {a[key][1] / b[key][1]:5.2f}  "
                  f"{a[key][2] / b[key][2]:5.2f}        {a[key][3] / b[key][3]:5.2f}")


if __name__ == "__main__":
    main()
