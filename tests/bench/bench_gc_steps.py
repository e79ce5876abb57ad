"""How long PyPy's incremental major-collection steps get as the old generation grows: the gc-major
stalls of 10 ms and more that coord's servers show after the open-loop create runs grew the tree.

Default: a dict of N path -> small-record entries (about four objects each, like a znode) is built,
then 4 s of short-lived garbage drives major collections. --tree: a real DataTree of N znodes (100
bytes each, under --parents parents), then setData on random znodes (or --writes none: reads only)
with request-like garbage; --drive K runs K extra gc.collect_step() per 1,000 ops while a major
cycle is in progress (what coord.aio.gcpacer does in the loop's idle time). Every step's duration
comes from gc.hooks, with the state it moved between; the steps of 10 ms or more are listed in
order, '|' where a cycle starts. Run it with coord's GC settings (coord.runtime.GC_ENV, applied here
when the environment does not set them) on PyPy; --shards spreads the dict over 64 dicts.

    .venv-pypy/bin/python -m tests.bench.bench_gc_steps [--entries 1200000] [--shards]
    .venv-pypy/bin/python -m tests.bench.bench_gc_steps --tree --entries 1000000 --parents 64 --seconds 15 [--drive 4]
"""
from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time


def record(i):
    return [i, b"x" * 20, (i, i + 1, i + 2)]


def dict_load(args):
    shards = [{} for _ in range(64 if args.shards else 1)]
    for i in range(args.entries):
        path = f"/c{i:09d}"
        shards[hash(path) % len(shards)][path] = record(i)

    def work(deadline):
        junk = None
        while time.monotonic() < deadline:
            junk = [record(i) for i in range(20_000)]
        return junk
    return shards, work, f"{args.entries:,} entries in {len(shards)} dict(s)"


def tree_load(args, state):
    from coord.core import acl as aclmod
    from coord.core.datatree import DataTree
    t = DataTree()
    acl = aclmod.OPEN_ACL_UNSAFE
    for j in range(args.parents):
        t.create_node(f"/b{j}", b"", acl, 0, -1, 1, 1)
    data = b"x" * 100
    zx = 2
    for i in range(args.entries):
        t.create_node(f"/b{i % args.parents}/c{i:09d}", data, acl, 0, -1, zx, 1_700_000_000_000 + zx)
        zx += 1
    t.digest

    def work(deadline):
        nonlocal zx
        r = random.Random(1)
        ring = [None] * 20_000
        while time.monotonic() < deadline:
            for _ in range(1000):
                i = r.randrange(args.entries)
                p = f"/b{i % args.parents}/c{i:09d}"
                if args.writes == "setData":
                    t.set_data(p, bytes(data), -1, zx, 1_700_000_000_000 + zx)
                else:
                    t.get(p)
                ring[zx % 20_000] = [p.encode(), (zx, zx + 1), bytes(200)]   # a request's garbage, kept a while
                zx += 1
            for _ in range(args.drive):
                if not state["major"]:
                    break
                gc.collect_step()
        return ring
    return t, work, f"a DataTree of {args.entries:,} znodes under {args.parents} parent(s), {args.writes}, drive {args.drive}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=1_200_000)
    ap.add_argument("--shards", action="store_true")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--tree", action="store_true")
    ap.add_argument("--parents", type=int, default=1)
    ap.add_argument("--writes", choices=("setData", "none"), default="setData")
    ap.add_argument("--drive", type=int, default=0)
    args = ap.parse_args()
    from coord.runtime import GC_ENV
    if not hasattr(gc, "hooks"):
        sys.exit("needs PyPy (gc.hooks)")
    if any(k not in os.environ for k in GC_ENV):
        env = {**GC_ENV, **os.environ}   # PyPy reads PYPY_GC_* at start: re-exec with them
        os.execve(sys.executable, [sys.executable, "-m", "tests.bench.bench_gc_steps", *sys.argv[1:]], env)
    steps: list[tuple[float, str, str]] = []
    state = {"major": False}

    def on_step(stats):
        new = stats.GC_STATES[stats.newstate]
        state["major"] = new != "SCANNING"
        steps.append((stats.duration, stats.GC_STATES[stats.oldstate], new))

    keep, work, what = tree_load(args, state) if args.tree else dict_load(args)
    gc.collect()
    rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20
    gc.hooks.on_gc_collect_step = on_step
    junk = work(time.monotonic() + args.seconds)
    gc.hooks.on_gc_collect_step = None
    del junk
    if not steps:
        sys.exit(f"{what}: no major step in {args.seconds} s (run longer)")
    ms = sorted(d * 1000 for d, _, _ in steps)
    long_ = [(round(d * 1000, 1), a, b) for d, a, b in steps if d >= 0.010]
    print(f"{what}: RSS {rss} MiB after build; {len(ms)} major steps, p90 {ms[int(.9 * (len(ms) - 1))]:.1f} "
          f"p99 {ms[int(.99 * (len(ms) - 1))]:.1f} max {ms[-1]:.1f} ms; {len(long_)} of 10 ms or more")
    kinds: dict = {}
    for d, a, b in steps:
        kinds.setdefault(f"{a}->{b}", []).append(d * 1000)
    for k, v in sorted(kinds.items()):
        v.sort()
        print(f"  {k}: {len(v)} steps, median {v[len(v) // 2]:.1f}, max {v[-1]:.1f} ms, {sum(x >= 10 for x in v)} of 10 ms or more")
    seq = ["|" if b == "MARKING" and a == "SCANNING" else f"{a[0]}>{b[0]} {d * 1000:.0f}"
           for d, a, b in steps if d >= 0.010 or (a == "SCANNING" and b == "MARKING")]
    print("  in order:", " ".join(seq))


if __name__ == "__main__":
    main()
