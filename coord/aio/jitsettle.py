"""Switch PyPy's JIT parameters once the first load's compile storm is over.

Why: with PyPy's default decay (40) the hotness counters of paths that run a few to a few tens of
times a second (the session ticker, the stall monitor, the event loop's rarer callbacks) creep up
to their thresholds and are traced tens of seconds into a steady load, each trace a loop turn of
5-30 ms. decay=200 keeps them from compiling, but set from the start it cuts the hot paths' traces
differently and costs CPU per op (docs/benchmarks.md, "Session 9"). Set after the hot paths have
compiled, it cost nothing measurable and left no jit stall of 10 ms or more. Session 9 switched at a
fixed time after start (COORD_JIT_PARAMS_LATER), which a server left idle past that time meets its
first load with; this module switches when the JIT itself says the load's hot paths are in: once the
server has compiled `min_compiled` loops and bridges since its first sample (a second after start)
and then no more than `quiet_max` in `quiet_s` seconds.

A load of a new kind after the switch (another op, a client after an idle spell) compiles its own
storm, and under decay=200 compiles fewer of its bridges (docs/benchmarks.md, "Session 13"). So the
switch re-arms: once settled, `storm_min` compiles in `quiet_s` seconds put PyPy's default values of
the switched parameters back, and the rule waits for that storm to end before switching again.

COORD_JIT_SETTLE="name=value,..." sets what is applied (default decay=200), "off" never switches.
"""
from __future__ import annotations

import logging
import os
from collections import deque

from coord.runtime import set_jit_params

log = logging.getLogger("coord.jitsettle")

ENV = "COORD_JIT_SETTLE"
PARAMS = "decay=200"
MIN_COMPILED = 100      # loops + bridges since the first sample: an idle server compiles none after it
QUIET_S = 5.0
QUIET_MAX = 5
STORM_MIN = 20          # compiles in QUIET_S after settling that mean a new load (a settled load: ~1)
PERIOD_S = 1.0

_active: "JitSettle | None" = None    # the server's switch (coord_jit_settled)


class SettleRule:
    """When to switch, from (time, loops and bridges compiled) samples: pure, for tests."""

    def __init__(self, min_compiled: int = MIN_COMPILED, quiet_s: float = QUIET_S, quiet_max: int = QUIET_MAX):
        self.min_compiled = min_compiled
        self.quiet_s = quiet_s
        self.quiet_max = quiet_max
        self.base: int | None = None            # compiled at the first sample
        self.samples: deque = deque()            # (t, compiled) within the last quiet_s
        self.settled = False

    def observe(self, t: float, compiled: int) -> bool:
        """Feed one sample; True exactly once, at the sample that shows the storm over."""
        if self.settled:
            return False
        if self.base is None:
            self.base = compiled
        self.samples.append((t, compiled))
        while len(self.samples) > 1 and t - self.samples[1][0] >= self.quiet_s:
            self.samples.popleft()
        t0, c0 = self.samples[0]
        if compiled - self.base >= self.min_compiled and t - t0 >= self.quiet_s and compiled - c0 <= self.quiet_max:
            self.settled = True
        return self.settled


def compiled_count() -> int | None:
    """Loops and bridges PyPy's JIT has compiled so far; None without a JIT."""
    try:
        import pypyjit
    except ImportError:
        return None
    c = pypyjit.get_stats_snapshot().counters
    return c.get("TOTAL_COMPILED_LOOPS", 0) + c.get("TOTAL_COMPILED_BRIDGES", 0)


class StormRule:
    """After settling: True at the sample that shows `storm_min` compiles within `window_s` (a new
    load's compile storm). Pure, for tests."""

    def __init__(self, storm_min: int = STORM_MIN, window_s: float = QUIET_S):
        self.storm_min = storm_min
        self.window_s = window_s
        self.samples: deque = deque()

    def observe(self, t: float, compiled: int) -> bool:
        self.samples.append((t, compiled))
        while t - self.samples[0][0] > self.window_s:
            self.samples.popleft()
        return compiled - self.samples[0][1] >= self.storm_min


def defaults_of(params: str) -> str | None:
    """PyPy's default values of the parameters in `params` ("decay=200" -> "decay=40"); None without
    a JIT or for a name PyPy does not know."""
    try:
        import pypyjit
        names = [kv.split("=", 1)[0].strip() for kv in params.split(",") if kv.strip()]
        return ",".join(f"{n}={pypyjit.defaults[n]}" for n in names)
    except (ImportError, KeyError):
        return None


class JitSettle:
    """Samples the compile count every `period_s` on the loop: applies `params` once the storm is
    over, and PyPy's defaults again when a new storm starts after that (then waits to settle again)."""

    def __init__(self, loop, params: str, rule: SettleRule | None = None, period_s: float = PERIOD_S,
                 storm_min: int = STORM_MIN):
        self.loop = loop
        self.params = params
        self.reset = defaults_of(params)
        self.rule = rule or SettleRule()
        self.storm: StormRule | None = None      # while settled
        self.storm_min = storm_min
        self.period_s = period_s
        self.applied_at: float | None = None     # the last switch, None while not settled
        self.settles = 0
        self.rearms = 0

    def start(self) -> None:
        self.loop.call_later(self.period_s, self._sample)

    def _sample(self) -> None:
        n = compiled_count()
        if n is None:
            return
        now = self.loop.time()
        if self.storm is None and self.rule.observe(now, n):
            ok = set_jit_params(self.params)
            self.applied_at = now
            self.settles += 1
            self.storm = StormRule(self.storm_min, self.rule.quiet_s)
            self.storm.observe(now, n)
            log.info("JIT settled (%d loops and bridges compiled, at most %d in the last %.0f s): %s %s",
                     n - (self.rule.base or 0), self.rule.quiet_max, self.rule.quiet_s, self.params,
                     "applied" if ok else "refused by PyPy")
        elif self.storm is not None and self.storm.observe(now, n) and self.reset:
            # a new load compiles: let it compile with PyPy's defaults, then settle again once it is
            # over (its own storm counts towards min_compiled from here)
            set_jit_params(self.reset)
            self.applied_at = None
            self.rearms += 1
            t0, c0 = self.storm.samples[0]
            log.info("JIT re-armed (%d loops and bridges compiled in the last %.0f s: a new load): %s",
                     n - c0, self.storm.window_s, self.reset)
            self.storm = None
            self.rule = SettleRule(self.storm_min, self.rule.quiet_s, self.rule.quiet_max)
            self.rule.observe(t0, c0)
            self.rule.observe(now, n)
        self.loop.call_later(self.period_s, self._sample)


def install_from_env(loop) -> JitSettle | None:
    """The server's switch, unless COORD_JIT_SETTLE=off, COORD_JIT_PARAMS_LATER (the timed switch)
    is set, or the runtime has no JIT."""
    params = os.environ.get(ENV, PARAMS).strip()
    if params.lower() in ("", "off", "0") or os.environ.get("COORD_JIT_PARAMS_LATER") or compiled_count() is None:
        return None
    global _active
    s = JitSettle(loop, params)
    s.start()
    _active = s
    return s


def settled() -> bool:
    """This process's switch has its parameters applied now (coord_jit_settled in /metrics)."""
    return _active is not None and _active.applied_at is not None


def rearms() -> int:
    """How often a new load's compile storm put PyPy's defaults back (coord_jit_rearms)."""
    return _active.rearms if _active is not None else 0
