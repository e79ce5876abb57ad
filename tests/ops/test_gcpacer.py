"""Idle-time major-GC steps (coord.aio.gcpacer) on the server runtime (PyPy): while a major cycle is in
progress and the loop waits, the pacer runs steps, ends cycles sooner, never starts one, and leaves
the loop's timers on time. Run in a PyPy child (the tests run on CPython, which has no such GC)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from coord import runtime

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import asyncio, gc, json, sys, time
from coord.aio.stalls import StallMonitor
from coord.aio.gcpacer import GcPacer

mode = sys.argv[1]
old = [[i, str(i)] for i in range(300_000)]      # an old generation worth marking for many steps
gc.collect()
mon = StallMonitor()
mon.install_gc()
pacer = GcPacer(mon, gap_ms=1.0)

async def main():
    loop = asyncio.get_running_loop()
    mon.install(loop)
    if mode == "on":
        assert pacer.install(loop)
    ring = [None] * 64
    late = 0.0
    for i in range(400):                         # bursts of surviving garbage, then the loop waits
        ring[i % 64] = [[j, j + 1] for j in range(3000)]
        t = time.monotonic()
        await asyncio.sleep(0.003)
        late = max(late, time.monotonic() - t - 0.003)
    return late

late = asyncio.run(main())
majors = sum(1 for e in mon.gc_events if e[1] == "major")
print(json.dumps({"steps": pacer.steps, "cycles_ended": pacer.cycles_ended, "late_ms": late * 1000,
                  "started": pacer.cycles_started, "major_events": majors}))
"""


def _runtime() -> str:
    exe = runtime.server_python()
    if not exe or not os.access(exe, os.X_OK) or "pypy" not in os.path.realpath(exe):
        if os.environ.get("CI"):
            pytest.fail("CI run without the PyPy server runtime: scripts/setup.sh should have built .venv-pypy")
        pytest.skip("no PyPy server runtime configured (scripts/setup.sh sets up .venv-pypy)")
    return exe


def _probe(exe: str, mode: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYPY_GC_NURSERY": "1MB", "PYPY_GC_MIN": "16MB",
           "PYPY_GC_INCREMENT_STEP": "1MB"}
    out = subprocess.run([exe, "-c", PROBE, mode], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_idle_steps_end_major_cycles_without_starting_any():
    exe = _runtime()
    on = _probe(exe, "on")
    off = _probe(exe, "off")
    assert off["steps"] == 0 and off["major_events"] > 0, off    # cycles happen without the pacer too
    assert on["steps"] > 0, on                                    # it stepped while the loop waited
    assert on["cycles_ended"] >= 1, on                            # and finished cycles itself
    assert on["started"] == 0, on                                 # only inside a cycle PyPy started
    assert on["late_ms"] < 250, on                                # timers still fire (loose: loaded machine)
