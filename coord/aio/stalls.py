"""Stall attribution: every event-loop turn that ran long, with what it was spent on.

A server is one event loop: while one turn runs, every other client's request waits, so a turn's
length is the server's own contribution to tail latency. The monitor wraps the loop's selector:
the time from one select() returning to the next select() call is one turn, measured with two clock
reads and one thread-CPU-time read (no timer wake-ups, nothing per request). A turn over `threshold_ms` (2 ms) is a stall and is
given the cause that explains most of it:

- gc-minor / gc-major: PyPy's gc.hooks report each minor collection and each incremental step of a
  major one with its duration (CPython: gc.callbacks start/stop); those that ended inside the turn;
- jit: PyPy's JIT tracing and backend time (pypyjit.get_stats_snapshot, 1 µs a read, re-read at a
  turn's start when the last read is over 10 ms old) that grew up to the turn's end;
- snapshot-fork: the fork() of a snapshot child (`note()`: an exact window);
- hugepages: a huge-page collapse pass was running (its mm lock makes a page fault on the loop's
  thread wait) and none of the measured causes explains half of the turn;
- preempted: the turn's wall time minus the loop thread's CPU time in it (time.thread_time, read at
  each turn's start): the OS ran something else, i.e. the machine is loaded, not the server slow;
- busy: none of these explains half of it: a long turn of ordinary work (a big batch of requests).

fsync waits do not stall the loop but hold replies: the txn log reports each batch and one over the
threshold is recorded with cause `fsync`. Every stall is counted per cause (coord_stall_ms{cause},
a summary in /metrics, coord_stall_max_ms and coord_stalls_over_10ms; `stalls_by_cause()`), and
logged: INFO, or WARNING at `warn_ms` (10 ms) and over. Where the loop has no selector to wrap (uvloop on CPython) only GC, fsync and notes are seen.

For benchmarks, COORD_STALL_TRACE=DIR makes the server also append every stall to
DIR/stalls-<pid>.txt as "end ms cause<TAB>detail" (CLOCK_MONOTONIC seconds, which every process on the machine
shares), so a client can tell which of its slow requests waited on which stall (coord.bench.tailcause).
Unbuffered appends from the loop thread: a few µs per stall, and stalls are at most hundreds a second.

What a "busy" turn was doing the causes above cannot say. COORD_STALL_SAMPLE_MS=N (diagnosis only)
starts a CPU-time interval timer (SIGPROF every N ms of the process's CPU) whose handler notes the
loop thread's innermost frames; a stall's detail then lists the places most samples of that turn
fell in ("at server.py:412 _on_data x3, ..."). Each sample forces the interrupted frame out of
PyPy's JIT, so this costs throughput and is never on by default.
"""
from __future__ import annotations

import gc
import logging
import os
import time
from collections import deque

log = logging.getLogger("coord.stalls")

THRESHOLD_MS = 2.0
WARN_MS = 10.0
LOG_PER_S = 20     # INFO lines per second at most (a loaded machine can stall every turn); all are counted
TRACE_ENV = "COORD_STALL_TRACE"
SAMPLE_ENV = "COORD_STALL_SAMPLE_MS"
CAUSES = ("gc-minor", "gc-major", "jit", "snapshot-fork", "hugepages", "preempted", "busy", "fsync")
# Notes that are windows of background work, not measured waits of the loop: never a turn's cause by
# their overlap; named in an fsync stall's detail when the write overlapped them (the disk is shared)
WINDOWS = ("hugepages", "snapshot-child")
# An fsync stall this soon after retention unlinked files says so: ext4 commits (and frees, and with
# `discard` trims) within its commit interval, 5 s by default
FREED_S = 6.0

try:
    import pypyjit

    def jit_seconds() -> float:
        t = pypyjit.get_stats_snapshot().counter_times
        return t.get("TRACING", 0.0) + t.get("BACKEND", 0.0)
except ImportError:
    def jit_seconds() -> float:
        return 0.0


class StallMonitor:
    def __init__(self, threshold_ms: float = THRESHOLD_MS, warn_ms: float = WARN_MS):
        self.threshold_s = threshold_ms / 1000.0
        self.warn_ms = warn_ms
        self.count: dict[str, int] = {c: 0 for c in CAUSES}
        self.total_ms: dict[str, float] = {c: 0.0 for c in CAUSES}
        self.max_ms: dict[str, float] = {c: 0.0 for c in CAUSES}
        self.over_warn: dict[str, int] = {c: 0 for c in CAUSES}   # stalls of warn_ms (10 ms) or more
        self.recent: deque = deque(maxlen=256)     # (monotonic, cause, ms, detail)
        # Lists, read through a slice copy: a GC hook (any allocation) or the huge-page thread may
        # append while a turn is attributed, and a deque raises if mutated during iteration.
        self.gc_events: list = []                  # (monotonic at end, "minor" | "major", ms, major step's state)
        self.idle_steps: list = []                 # (monotonic at end, ms): coord.aio.gcpacer's own steps
        self.notes: list = []                      # [start, end or None, cause]
        self.freed = (0.0, 0)                      # (monotonic, bytes): the last retention's unlinks
        self.gc_listeners: list = []               # f(kind, ms): coord.aio.metrics.GcPauses
        self.turn_start = 0.0
        self.turn_cpu = 0.0
        self.errors = 0
        self.log_second = 0
        self.logged = 0
        self.jit_base = jit_seconds()
        self.jit_at = 0.0
        self.loop = None
        self._gc_installed = False
        self.gc_major_active = False               # PyPy: a major collection cycle is in progress
        self._cpython_t0 = 0.0
        self.trace_fd = open_trace(os.environ.get(TRACE_ENV))
        self.samples: list = []                    # (monotonic, "file:line func < caller") with COORD_STALL_SAMPLE_MS
        self._old_sigprof = None                   # the SIGPROF handler sampling replaced

    # -- installing ---------------------------------------------------------------------------------
    def install(self, loop) -> None:
        self.install_gc()
        sel = getattr(loop, "_selector", None)
        if sel is None or self.loop is not None:
            return
        self.loop = loop
        inner = sel.select
        clock = time.monotonic
        threshold = self.threshold_s

        cpu = time.thread_time

        def select(timeout=None):
            t = clock()
            if t - self.turn_start >= threshold and self.turn_start:
                self._turn(self.turn_start, t, cpu() - self.turn_cpu)
            events = inner(timeout)
            now = clock()
            self.turn_start = now
            self.turn_cpu = cpu()
            if now - self.jit_at > 0.01:
                self.jit_at = now
                self.jit_base = jit_seconds()
            return events
        sel.select = select
        self.start_sampling(os.environ.get(SAMPLE_ENV))

    def start_sampling(self, raw: str | None) -> bool:
        """SIGPROF every `raw` ms of CPU, noting where the loop thread was (diagnosis only)."""
        if not raw:
            return False
        try:
            every = float(raw) / 1000.0
            if every <= 0:
                raise ValueError(raw)
        except ValueError:
            log.warning("%s=%r is not a positive number of ms; not sampling", SAMPLE_ENV, raw)
            return False
        import signal
        samples = self.samples

        def where(f) -> str:
            out = []
            while f is not None and len(out) < 3:
                out.append(f"{os.path.basename(f.f_code.co_filename)}:{f.f_lineno} {f.f_code.co_name}")
                f = f.f_back
            return " < ".join(out)

        def on_sigprof(signum, frame):
            samples.append((time.monotonic(), where(frame)))
            if len(samples) > 4096:
                del samples[:2048]
        self._old_sigprof = signal.signal(signal.SIGPROF, on_sigprof)
        signal.setitimer(signal.ITIMER_PROF, every, every)
        log.warning("sampling the event loop every %.1f ms of CPU (%s): a diagnosis mode, slower", every * 1000, SAMPLE_ENV)
        return True

    def install_gc(self) -> None:
        if self._gc_installed:
            return
        hooks = getattr(gc, "hooks", None)
        if hooks is not None:   # PyPy: durations in seconds; count > 1 when several ran since the last call
            mon = self

            class _Hooks:
                on_gc_collect = None

                def on_gc_minor(self, stats):
                    mon.on_gc("minor", stats.duration * 1000.0)

                def on_gc_collect_step(self, stats):
                    # a major cycle is under way until a step ends in SCANNING (coord.aio.gcpacer)
                    mon.gc_major_active = stats.GC_STATES[stats.newstate] != "SCANNING"
                    # the state the step worked in (MARKING, SWEEPING, ...; "MARKING>SWEEPING" for the
                    # step that ends marking, which re-traces what the loop wrote meanwhile in one go)
                    old, new = stats.GC_STATES[stats.oldstate], stats.GC_STATES[stats.newstate]
                    mon.on_gc("major", stats.duration * 1000.0, old if old == new else f"{old}>{new}")
            hooks.set(_Hooks())
        elif hasattr(gc, "callbacks"):
            gc.callbacks.append(self._cpython_gc)
        self._gc_installed = True

    def uninstall(self) -> None:
        hooks = getattr(gc, "hooks", None)
        if hooks is not None:
            hooks.reset()
        elif self._cpython_gc in getattr(gc, "callbacks", []):
            gc.callbacks.remove(self._cpython_gc)
        self._gc_installed = False

    def _cpython_gc(self, phase, info) -> None:
        if phase == "start":
            self._cpython_t0 = time.perf_counter()
        elif self._cpython_t0:
            kind = "major" if info.get("generation") == 2 else "minor"
            self.on_gc(kind, (time.perf_counter() - self._cpython_t0) * 1000.0)
            self._cpython_t0 = 0.0

    # -- inputs -------------------------------------------------------------------------------------
    def on_gc(self, kind: str, ms: float, state: str = "") -> None:
        ev = self.gc_events
        ev.append((time.monotonic(), kind, ms, state))
        if len(ev) > 512:
            del ev[:256]
        for f in self.gc_listeners:
            f(kind, ms)

    def note(self, cause: str, start: float, end: float | None = None) -> None:
        """Work the server started over [start, end] (monotonic; end None: still running)."""
        notes = self.notes
        notes.append([start, end, cause])
        if len(notes) > 128:
            del notes[:64]

    def end_note(self, cause: str, end: float) -> None:
        for n in reversed(self.notes[:]):
            if n[2] == cause and n[1] is None:
                n[1] = end
                return

    def on_freed(self, nbytes: int, at: float) -> None:
        """Retention unlinked files of nbytes at `at`. The file system frees their blocks at its next
        journal commit, which the next log fdatasync forces; with the `discard` mount option it also
        discards them, and on some virtual disks that holds every write queued behind it."""
        self.freed = (at, nbytes)

    def on_fsync(self, ms: float, end: float | None = None, detail: str = "") -> None:
        """A log batch took ms; end: when its write returned (time.monotonic, the sync thread's clock
        read), not when the loop got round to the report, so the stall's window in the trace is the
        write's own and a client's slow request that waited on the loop instead is not charged to it.
        detail: what the batch did (bytes, a new file, a preallocation); background windows the write
        overlapped (a snapshot child writing its file) are added, to line slow writes up with them."""
        if ms >= self.threshold_s * 1000.0:
            t1 = time.monotonic() if end is None else end
            t0 = t1 - ms / 1000.0
            during = sorted({c for start, e, c in self.notes[:] if c in WINDOWS
                             and start < t1 and (e is None or e > t0)})
            text = "txn log write+fdatasync" + (f", {detail}" if detail else "")
            if during:
                text += ", during " + " and ".join(during)
            freed_at, freed = self.freed
            if freed and 0 <= t1 - freed_at <= FREED_S:
                text += f", {t1 - freed_at:.1f} s after retention freed {freed / (1 << 20):.0f} MiB"
            self.record("fsync", ms, text, end)

    # -- attribution --------------------------------------------------------------------------------
    def _turn(self, t0: float, t1: float, cpu_s: float) -> None:
        try:
            self._attribute(t0, t1, cpu_s)
        except Exception:  # noqa: BLE001 - a diagnostic inside select() must never stop the loop
            self.errors += 1
            if self.errors == 1:
                log.exception("stall attribution failed (counted in coord_stall_monitor_errors)")

    def _attribute(self, t0: float, t1: float, cpu_s: float) -> None:
        ms = (t1 - t0) * 1000.0
        parts = {"gc-minor": 0.0, "gc-major": 0.0, "preempted": max(0.0, ms - cpu_s * 1000.0)}
        states: dict[str, float] = {}
        for end, kind, gms, state in self.gc_events[:]:
            if t0 <= end <= t1 + 0.0005:
                parts["gc-" + kind] += gms
                if state:
                    states[state] = states.get(state, 0.0) + gms
        jit = (jit_seconds() - self.jit_base) * 1000.0
        if jit > 0:
            parts["jit"] = min(jit, ms)
        during_pass = False
        for start, end, cause in self.notes[:]:
            overlap = min(t1, end if end is not None else t1) - max(t0, start)
            if overlap <= 0:
                continue
            if cause in WINDOWS:        # a window, not a measured wait: only what nothing else explains
                during_pass = during_pass or cause == "hugepages"
            else:
                parts[cause] = parts.get(cause, 0.0) + overlap * 1000.0
        cause, got = max(parts.items(), key=lambda kv: kv[1])
        if got < ms / 2:
            cause = "hugepages" if during_pass else "busy"
        detail = ", ".join(f"{k} {v:.1f} ms" for k, v in parts.items() if v >= 0.05)
        if states and parts["gc-major"] >= 1.0:
            detail += " [major steps: " + ", ".join(f"{k} {v:.1f} ms" for k, v in states.items()) + "]"
        idle = [ims for end, ims in self.idle_steps[:] if t0 <= end <= t1 + 0.0005]
        if idle:
            detail += f" [idle-time steps: {len(idle)}, {sum(idle):.1f} ms]"
        if self.samples:
            detail += self._sampled(t0, t1)
        self.record(cause, ms, detail)

    def stop_sampling(self) -> None:
        import signal
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, self._old_sigprof or signal.SIG_DFL)

    def _sampled(self, t0: float, t1: float) -> str:
        """The places most of this turn's samples fell in."""
        seen: dict[str, int] = {}
        for t, w in self.samples[:]:
            if t0 <= t <= t1:
                seen[w] = seen.get(w, 0) + 1
        top = sorted(seen.items(), key=lambda kv: -kv[1])[:4]
        return ("; at " + " | ".join(f"{w} x{n}" for w, n in top)) if top else ""

    def record(self, cause: str, ms: float, detail: str = "", end: float | None = None) -> None:
        if cause not in self.count:
            self.count[cause] = self.over_warn[cause] = 0
            self.total_ms[cause] = self.max_ms[cause] = 0.0
        self.count[cause] += 1
        if ms >= self.warn_ms:
            self.over_warn[cause] += 1
        self.total_ms[cause] += ms
        if ms > self.max_ms[cause]:
            self.max_ms[cause] = ms
        now = time.monotonic() if end is None else end
        self.recent.append((now, cause, ms, detail))
        if self.trace_fd is not None:
            try:
                os.write(self.trace_fd, f"{now:.6f} {ms:.3f} {cause}\t{detail}\n".encode())
            except OSError:
                self.trace_fd = None
        if int(now) != self.log_second:
            self.log_second, self.logged = int(now), 0
        self.logged += 1
        if self.logged <= LOG_PER_S or ms >= self.warn_ms:
            log.log(logging.WARNING if ms >= self.warn_ms else logging.INFO,
                    "stall %.1f ms: %s%s", ms, cause, f" ({detail})" if detail else "")

    def stalls_by_cause(self) -> dict[str, tuple[int, float, float, int]]:
        """cause -> (count, total ms, max ms, count of warn_ms or more), causes seen so far."""
        return {c: (n, self.total_ms[c], self.max_ms[c], self.over_warn[c]) for c, n in self.count.items() if n}


def open_trace(directory: str | None) -> int | None:
    """An O_APPEND fd on DIR/stalls-<pid>.txt, or None (no DIR, or it cannot be written: logged)."""
    if not directory:
        return None
    path = os.path.join(directory, f"stalls-{os.getpid()}.txt")
    try:
        os.makedirs(directory, exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as e:
        log.warning("%s: cannot write %s (%s); no stall trace", TRACE_ENV, path, e)
        return None


MONITOR: StallMonitor | None = None


def monitor() -> StallMonitor:
    """The process's monitor (one event loop per server process)."""
    global MONITOR
    if MONITOR is None:
        MONITOR = StallMonitor()
    return MONITOR


def active() -> StallMonitor | None:
    return MONITOR
