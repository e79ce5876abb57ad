"""How long PyPy's incremental major-collection steps get as the old generation grows: the gc-major
stalls of 10 ms and more that coord's servers show after the open-loop create runs grew the tree.

A dict of N path -> small-record entries (about four objects each, like a znode) is built, then 4 s of
short-lived garbage drives major collections; every step's duration comes from gc.hooks, with the
state it moved between. Run it with coord's GC settings (coord.runtime.GC_ENV, applied here when the
environment does not set them) on PyPy; --shards spreads the entries over 64 dicts (one huge dict is
not the cause: the long steps stay).

    .venv-pypy/bin/python -m tests.bench.bench_gc_steps [--entries 1200000] [--shards]
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=1_200_000)
    ap.add_argument("--shards", action="store_true")
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    from coord.runtime import GC_ENV
    if not hasattr(gc, "hooks"):
        sys.exit("needs PyPy (gc.hooks)")
    if any(k not in os.environ for k in GC_ENV):
        env = {**GC_ENV, **os.environ}   # PyPy reads PYPY_GC_* at start: re-exec with them
        os.execve(sys.executable, [sys.executable, "-m", "tests.bench.bench_gc_steps", *sys.argv[1:]], env)
    steps: list[tuple[float, str, str]] = []

    def on_step(stats):
        steps.append((stats.duration, stats.GC_STATES[stats.oldstate], stats.GC_STATES[stats.newstate]))

    def record(i):
        return [i, b"x" * 20, (i, i + 1, i + 2)]
    shards = [{} for _ in range(64 if args.shards else 1)]
    for i in range(args.entries):
        path = f"/c{i:09d}"
        shards[hash(path) % len(shards)][path] = record(i)
    gc.hooks.on_gc_collect_step = on_step
    t0 = time.monotonic()
    junk = None
    while time.monotonic() - t0 < args.seconds:
        junk = [record(i) for i in range(20_000)]
    gc.hooks.on_gc_collect_step = None
    del junk
    ms = sorted(d * 1000 for d, _, _ in steps)
    long_ = [(round(d * 1000, 1), a, b) for d, a, b in steps if d >= 0.010]
    print(f"{args.entries:,} entries in {len(shards)} dict(s): {len(ms)} major steps, p90 {ms[int(.9 * (len(ms) - 1))]:.1f} "
          f"p99 {ms[int(.99 * (len(ms) - 1))]:.1f} max {ms[-1]:.1f} ms; {len(long_)} of 10 ms or more")
    kinds: dict = {}
    for d, a, b in long_:
        kinds.setdefault(f"{a}->{b}", []).append(d)
    for k, v in sorted(kinds.items()):
        print(f"  {k}: {len(v)} steps, max {max(v):.1f} ms")


if __name__ == "__main__":
    main()
