"""A forked snapshot's parent stops PyPy's major collections while the child lives
(coord.runtime.pause_major_gc, coord.aio.snapshots.SnapshotTaker._take_forked), and only between
major cycles: the fork waits (at most FORK_GC_WAIT_S) for a cycle under way to end, and forks without
pausing if it does not. Why: incminimark marks by writing every live object's header, so a cycle
marking while the child lives copies nearly every page of the heap (copy-on-write); a cycle paused
half-way instead makes every minor collection slower. Run in a PyPy child (the tests run on
CPython, which has no such GC)."""
from __future__ import annotations

import json
import os
import subprocess

from coord import runtime
from tests.ops.test_gcpacer import ROOT, _runtime

PROBE = r"""
import asyncio, gc, json, sys, tempfile, time
from coord import runtime
from coord.aio import snapshots, stalls
from coord.aio.gcpacer import GcPacer
from coord.core import acl as aclmod
from coord.core.datatree import DataTree

out = {}
old = [[i, str(i)] for i in range(300_000)]          # an old generation worth marking
steps = []
mon = stalls.monitor()
mon.install_gc()
inner = mon.on_gc
def on_gc(kind, ms, state=""):
    if kind == "major":
        steps.append(ms)
    inner(kind, ms, state)
mon.on_gc = on_gc

# 1. pause / resume: no major step while paused (PyPy's gc.disable), steps again after
gc.collect()                                          # between cycles
sum(range(100))                                       # hooks are delivered a little later: let them
base = len(steps)
paused = runtime.pause_major_gc()
junk = [[[j] for j in range(2000)] for _ in range(400)]   # survivors enough to start cycles
del junk
out["paused"] = paused
out["steps_while_paused"] = len(steps) - base
runtime.resume_major_gc(paused)
junk = [[[j] for j in range(2000)] for _ in range(400)]
del junk
out["steps_after_resume"] = len(steps) - base
out["enabled_after_resume"] = gc.isenabled()

tree = DataTree()
tree.create_node("/t", b"", aclmod.OPEN_ACL_UNSAFE, 0, -1, 1, 1)
for i in range(3000):
    tree.create_node(f"/t/n{i}", b"x" * 50, aclmod.OPEN_ACL_UNSAFE, 0, -1, 2 + i, 1)

async def snapshot(wait_s, cycle_ends_after=None):
    snapshots.FORK_GC_WAIT_S = wait_s
    loop = asyncio.get_running_loop()
    taker = snapshots.SnapshotTaker(tempfile.mkdtemp(), method="fork")
    seen = []
    async def watch():
        while True:
            seen.append((gc.isenabled(), taker.major_gc_paused, taker._child is not None))
            await asyncio.sleep(0.01)
    w = asyncio.ensure_future(watch())
    if cycle_ends_after is not None:
        loop.call_later(cycle_ends_after, setattr, mon, "gc_major_active", False)
    t0 = time.monotonic()
    try:
        path = await taker.take(tree)
    finally:
        w.cancel()
        taker.close()
    during = [s for s in seen if s[2]]                # while the child lived
    return {"ok": path is not None, "waited_s": time.monotonic() - t0,
            "gc_off_while_child": bool(during) and all(not e for e, _, _ in during),
            "gc_on_while_child": bool(during) and all(e for e, _, _ in during),
            "flag_while_child": bool(during) and all(p for _, p, _ in during),
            "enabled_after": gc.isenabled(), "flag_after": taker.major_gc_paused}

async def main():
    gc.collect()
    mon.gc_major_active = False
    out["between"] = await snapshot(5.0)              # 2. between cycles: paused while the child lives
    mon.gc_major_active = True                        # 3. a cycle that does not end: fork unpaused
    out["stuck"] = await snapshot(0.3)
    mon.gc_major_active = True                        # 4. a cycle that ends during the wait: paused
    out["ends"] = await snapshot(5.0, cycle_ends_after=0.2)
    # 5. the pacer takes no step while collections are paused, even inside a cycle
    loop = asyncio.get_running_loop()
    mon.install(loop)
    pacer = GcPacer(mon, gap_ms=1.0)
    pacer.install(loop)
    mon.gc_major_active = True
    gc.disable()
    await asyncio.sleep(0.2)
    out["pacer_steps_paused"] = pacer.steps
    gc.enable()

asyncio.run(main())
print(json.dumps(out))
"""


def test_pause_is_a_no_op_on_cpython():
    import gc
    assert runtime.pause_major_gc() is False and gc.isenabled()
    runtime.resume_major_gc(False)
    assert gc.isenabled()


def test_forked_snapshot_pauses_major_gc_between_cycles_only():
    exe = _runtime()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYPY_GC_NURSERY": "1MB", "PYPY_GC_MIN": "16MB",
           "PYPY_GC_INCREMENT_STEP": "1MB", "COORD_TEST_SNAPSHOT_CHILD_DELAY_S": "0.3"}
    r = subprocess.run([exe, "-c", PROBE], env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["paused"] is True and out["steps_while_paused"] == 0, out
    assert out["steps_after_resume"] > 0 and out["enabled_after_resume"], out
    b = out["between"]
    assert b["ok"] and b["gc_off_while_child"] and b["flag_while_child"], b
    assert b["enabled_after"] and not b["flag_after"] and b["waited_s"] < 5, b
    s = out["stuck"]
    assert s["ok"] and s["gc_on_while_child"] and s["waited_s"] >= 0.3, s   # waited, then forked unpaused
    assert s["enabled_after"] and not s["flag_after"], s
    e = out["ends"]
    assert e["ok"] and e["gc_off_while_child"] and 0.2 <= e["waited_s"] < 5, e
    assert e["enabled_after"] and not e["flag_after"], e
    assert out["pacer_steps_paused"] == 0, out
