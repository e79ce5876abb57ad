"""What a forked snapshot costs the server's heap, in CPU time (comparable on a loaded machine).

`python -m coord.bench.forkcost [--keys N]` (run it on PyPy, as servers run): builds a tree of N
znodes through a scratch ServerCore, then measures, in the loop thread's CPU time:
- fork() with the heap in 4 KiB pages, and after a huge-page pass (coord.aio.hugepages);
- a snapshot's life: a child shares the heap while 100,000 setData run (their cost, µs/op), after
  which the huge pages left are counted (the parent's writes split them by copy-on-write);
- the pass that would gather them again (its CPU seconds) against the fork it would shorten.
This is the measurement behind MIN_RSS_AFTER_SNAPSHOT_MIB (issue 17).
"""
from __future__ import annotations

import argparse
import os
import random
import struct
import time

from coord.aio.hugepages import HeapCollapser, huge_pages_mib
from coord.bench.client import encode_batch
from coord.bench.core import _durable
from coord.core.scratch import connected_core
from coord.jute import records as R
from coord.runtime import rss_mib


def _fork_cpu_ms() -> tuple[int, float]:
    t0 = time.thread_time()
    pid = os.fork()
    if pid == 0:
        try:
            time.sleep(600)
        finally:
            os._exit(0)
    return pid, (time.thread_time() - t0) * 1000


def _end(pid: int) -> None:
    os.kill(pid, 9)
    os.waitpid(pid, 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=120_000)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    core = connected_core(8, 1_700_000_000_000)
    root = R.CreateRequest("/b", b"", [R.ACL(31, R.Id("world", "anyone"))], 0).encode()
    core.frame(1, struct.pack(">ii", 1, 1) + root)
    _durable(core)
    core.drain()
    xid = [100]

    def run(op: str, names: list[str]) -> float:
        blob, offs = encode_batch(op, names, b"x" * 100, xid[0])
        xid[0] += len(names) + 1
        frames = [blob[offs[i] + 4:offs[i + 1]] for i in range(len(offs) - 1)]
        t0 = time.thread_time()
        for b in range(0, len(frames), 32):
            for f in frames[b:b + 32]:
                core.frame(1, f)
            _durable(core)
            core.drain()
        return (time.thread_time() - t0) * 1e6 / len(frames)

    keys = [f"/b/k{i:07d}" for i in range(a.keys)]
    run("create", keys)
    rnd = random.Random(1)
    print(f"{a.keys} znodes, RSS {rss_mib():.0f} MiB")
    for _ in range(2):
        pid, ms = _fork_cpu_ms()
        _end(pid)
        print(f"fork, 4 KiB pages: {ms:.1f} ms CPU")
    hp = HeapCollapser(min_rss_mib=0)
    for r in range(a.rounds):
        t0 = time.thread_time()
        res = hp.collapse_once()
        print(f"pass: {time.thread_time() - t0:.2f} s CPU ({res!r}); {huge_pages_mib()} MiB in huge pages")
        pid, ms = _fork_cpu_ms()
        print(f"fork, after the pass: {ms:.1f} ms CPU")
        us = run("setData", [keys[rnd.randrange(a.keys)] for _ in range(100_000)])
        _end(pid)
        print(f"100,000 setData while the child lived: {us:.2f} µs/op CPU; {huge_pages_mib()} MiB still in huge pages")
        pid, ms = _fork_cpu_ms()
        _end(pid)
        print(f"fork, after that child (no pass): {ms:.1f} ms CPU")


if __name__ == "__main__":
    main()
