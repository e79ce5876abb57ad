"""PyPy major-collection steps run while the event loop waits, so a major cycle ends sooner.

Why: PyPy's incremental GC marks a fixed amount (PYPY_GC_INCREMENT_STEP) after each minor
collection, so marking a large heap (a 1M-znode tree: ~125 steps) spans many seconds of requests.
Every old object the server writes meanwhile (each setData's znode) is turned grey again, and all of
them, with the new objects they point to, are re-traced in the one step that ends marking: that step
is not incremental: at 1M znodes and ~220,000 setData/s in process it took 70-175 ms every cycle
(tests/bench/bench_gc_steps.py --tree; docs/benchmarks.md, "Major-GC steps at 1M znodes"). Running
extra steps while the loop has nothing to do shortens the marking phase in wall time, so fewer
znodes are written during it and the final step shrinks (in process: 94 ms -> 27 ms with one extra
step per 1,000 setData, 11 ms with four; on a real server at 19,000 writes/s not yet shown).

The pacer wraps the loop's selector (after the stall monitor, so a step it runs is counted in a
loop turn and attributed as gc-major like any other): when select() would block, a major cycle is in
progress (the stall monitor's gc hook says so) and no event is ready, it runs one gc.collect_step()
(a minor collection and one major step), at most one per `gap_ms`, and then waits as asked. It never
starts a major cycle (that stays PyPy's decision) and does nothing on CPython.

COORD_GC_IDLE_STEPS=0 turns it off; COORD_GC_IDLE_GAP_MS sets the least time between two of its steps.
"""
from __future__ import annotations

import gc
import logging
import os
import time

log = logging.getLogger("coord.gcpacer")

GAP_MS = 10.0
ENV_OFF = "COORD_GC_IDLE_STEPS"
ENV_GAP = "COORD_GC_IDLE_GAP_MS"


def supported() -> bool:
    return hasattr(gc, "collect_step") and hasattr(gc, "hooks")


class GcPacer:
    def __init__(self, monitor, gap_ms: float = GAP_MS):
        self.monitor = monitor        # coord.aio.stalls.StallMonitor: owns gc.hooks, knows the GC state
        self.gap_s = gap_ms / 1000.0
        self.steps = 0                # steps this pacer ran
        self.cycles_ended = 0         # major cycles whose last step was one of them
        self.cycle_steps = 0          # steps it ran in the current major cycle
        self.cycles_started = 0       # steps it ran in SCANNING (a stale "in progress"): should stay 0
        self.last = 0.0

    def install(self, loop) -> bool:
        sel = getattr(loop, "_selector", None)
        if sel is None or not supported():
            return False
        self.monitor.install_gc()
        inner = sel.select
        clock = time.monotonic
        mon = self.monitor

        def select(timeout=None):
            if self.cycle_steps and not mon.gc_major_active:
                self._cycle_ended()
            if mon.gc_major_active and (timeout is None or timeout > 0) and gc.isenabled():
                # (not while paused: coord.runtime.pause_major_gc, a forked snapshot's child lives)
                now = clock()
                if now - self.last >= self.gap_s:
                    events = inner(0)
                    if events:
                        return events
                    self.last = now
                    self.step()
                    if timeout is not None:
                        timeout = max(0.0, timeout - (clock() - now))
            return inner(timeout)
        sel.select = select
        return True

    def step(self) -> None:
        t0 = time.monotonic()
        try:
            stats = gc.collect_step()
        except Exception:  # noqa: BLE001 - a pacing aid inside select() must never stop the loop
            log.exception("gc.collect_step failed; idle GC steps off")
            self.gap_s = float("inf")
            return
        t1 = time.monotonic()
        idle = self.monitor.idle_steps
        idle.append((t1, (t1 - t0) * 1000.0))     # the stall's detail tells these from PyPy's own
        if len(idle) > 256:
            del idle[:128]
        self.steps += 1
        self.cycle_steps += 1
        if stats.oldstate == stats.STATE_SCANNING:
            # the hook that reported the cycle's end had not run yet: this step began a new cycle
            self.cycles_started += 1
        # the step's own result, not the hook (PyPy delivers hooks later, at a bytecode boundary)
        self.monitor.gc_major_active = stats.newstate != stats.STATE_SCANNING
        if stats.major_is_done:
            self.cycles_ended += 1
            self._cycle_ended(by_pacer=True)

    def _cycle_ended(self, by_pacer: bool = False) -> None:
        log.info("major GC cycle ended%s; %d idle-time steps in it (%d idle-time steps so far began a cycle)",
                 " by an idle-time step" if by_pacer else "", self.cycle_steps, self.cycles_started)
        self.cycle_steps = 0


def install_from_env(monitor, loop) -> GcPacer | None:
    """The server's pacer, unless COORD_GC_IDLE_STEPS=0 or the runtime has no gc.collect_step."""
    if os.environ.get(ENV_OFF, "1") == "0" or not supported():
        return None
    raw = os.environ.get(ENV_GAP)
    try:
        gap = float(raw) if raw else GAP_MS
        if not 0 <= gap <= 60_000:
            raise ValueError(raw)
    except ValueError:
        log.warning("%s=%r is not a number of ms in [0, 60000]; using %s", ENV_GAP, raw, GAP_MS)
        gap = GAP_MS
    pacer = GcPacer(monitor, gap)
    return pacer if pacer.install(loop) else None
