"""Keeping the server's heap in transparent huge pages, so that a forked snapshot's fork() is short.

fork() copies the parent's page tables while the event loop waits (coord.aio.snapshots). With
4 KiB pages that is one entry per page: ~20 ms for the ~850 MiB of a 1M-znode tree here. With
2 MiB pages it is one entry per 2 MiB: ~2 ms for the same tree. Linux 6.1+ builds huge pages on
request: madvise(MADV_COLLAPSE) copies a 2 MiB range of small pages into one huge page.

`HeapCollapser.start()` does that for the process's private anonymous memory (the malloc heap and
the mmaps that hold the interpreter's objects), in a background thread, one 2 MiB range per call
with a pause between. Collapsing a range takes the mm's lock for write while it copies, so a
fault by the event loop on the same mm waits for that one range (well under a millisecond) and
never for a whole pass, and sleeps 3x as long as each range took (a quarter of a core at most). A
pass runs after recovery (and after a SNAP is loaded). While a snapshot child lives, every huge page
the parent writes is split back into small pages by copy-on-write, and the next fork pays for them
again; a pass after every snapshot would gather them again, but it re-copies the whole heap and a
light writer's tail suffered for the 25-30 s it ran at 1M znodes (MIN_RSS_AFTER_SNAPSHOT_MIB), so it
is off unless COORD_HUGEPAGES_AFTER_SNAPSHOT_MIB asks for it. The snapshot taker asks a running pass
to stop before it forks; it stops after the range in hand.

Why not madvise(MADV_HUGEPAGE) or glibc.malloc.hugetlb: a fault in such a region may compact
memory synchronously (THP defrag=madvise, the common default), which is latency on the request
path. MADV_COLLAPSE allocates and copies in the calling thread, here the background one.

Where the kernel lacks MADV_COLLAPSE (EINVAL on every range) or it is turned off
(zoo.cfg coord.collapseHugePages=false), nothing changes but the fork's length.
"""
from __future__ import annotations

import errno
import logging
import os
import sys
import threading
import time

from coord.aio import stalls
from coord.runtime import rss_mib

log = logging.getLogger("coord.hugepages")

MADV_COLLAPSE = 25
HUGE = 1 << 21
PAGE = 4096
# a range is collapsed only if at least this many of its 512 small pages are resident: collapsing
# fills the holes (MADV_COLLAPSE ignores khugepaged's max_ptes_none), which would grow RSS by up to
# 2 MiB per sparse range; a sparse range costs the fork only its few entries anyway
MIN_RESIDENT = 448
# below this RSS a fork copies few enough entries (~2.5 ms at 128 MiB here) that a pass is not worth its
# CPU: test servers and small trees skip it
MIN_RSS_MIB = 128
# After a forked snapshot the child's life has split most huge pages back (a server of 463 MiB: 392
# MiB in huge pages before, 6 after 100,000 setData), so a pass then re-copies the whole heap: 0.2-1.1 s
# of CPU to save 12-15 ms of fork (a 4 KiB fork: 8.5-12.4 ms at 200,000 znodes, 20-22 at 850 MiB;
# docs/storage.md). It costs more than CPU: on a 1M-znode 3-member ensemble (~800 MiB each) the passes
# after each member's snapshot ran 25-30 s, and a one-at-a-time writer's p99 was 44-70 ms in every 5 s
# while they ran against 7-22 ms with no pass; most of those writes had no loop stall to explain them
# (load 10-13; tests/bench/bench_light_writer.py; docs/benchmarks.md, "A light writer at 1M znodes").
# So no pass after a snapshot, unless COORD_HUGEPAGES_AFTER_SNAPSHOT_MIB sets the RSS from which one
# runs (512 was the former policy).
MIN_RSS_AFTER_SNAPSHOT_ENV = "COORD_HUGEPAGES_AFTER_SNAPSHOT_MIB"


def min_rss_after_snapshot(raw: str | None) -> float:
    """MiB from which a pass follows each forked snapshot; inf (never) unless set to a number >= 0."""
    try:
        v = float(raw) if raw else float("inf")
        if not v >= 0:
            raise ValueError(raw)
        return v
    except ValueError:
        log.warning("%s=%r is not a number of MiB >= 0; no huge-page pass after snapshots",
                    MIN_RSS_AFTER_SNAPSHOT_ENV, raw)
        return float("inf")


MIN_RSS_AFTER_SNAPSHOT_MIB = min_rss_after_snapshot(os.environ.get(MIN_RSS_AFTER_SNAPSHOT_ENV))
# a pass sleeps at least this many times as long as each collapse took (and pause_s): at most a
# quarter of a core, so a pass never competes with the loop for a whole core on a busy machine
DUTY_SLEEP_FACTOR = 3.0
_GIVE_UP_ENOMEM = 16   # consecutive ranges without a free huge page: memory is fragmented, stop the pass

try:
    import ctypes
    _libc = ctypes.CDLL(None, use_errno=True)
    _madvise = _libc.madvise
    _madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    _madvise.restype = ctypes.c_int
    _mincore = _libc.mincore
    _mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    _mincore.restype = ctypes.c_int
except (ImportError, OSError, AttributeError):
    ctypes = None
    _madvise = None
    _mincore = None


def resident_pages(addr: int, vec) -> int:
    """How many of the 512 small pages of the 2 MiB range at addr are in memory (mincore); -1 if
    the range is no longer (wholly) mapped."""
    if _mincore(addr, HUGE, vec) != 0:
        return -1
    return sum(b & 1 for b in bytes(vec))


def anonymous_ranges(maps_text: str) -> list[tuple[int, int]]:
    """The 2 MiB-aligned parts of the private, writable, anonymous mappings (and [heap]) listed in
    /proc/self/maps text: where the interpreter's objects live. Stacks, files and shared memory are
    left out."""
    out = []
    for line in maps_text.splitlines():
        f = line.split(maxsplit=5)
        if len(f) < 5 or f[1] != "rw-p":
            continue
        name = f[5].strip() if len(f) == 6 else ""
        if name and name != "[heap]":
            continue
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        lo = (lo + HUGE - 1) & ~(HUGE - 1)
        hi &= ~(HUGE - 1)
        if hi > lo:
            out.append((lo, hi))
    return out


class PassResult:
    __slots__ = ("ranges", "collapsed", "sparse", "sparse_resident", "ineligible", "busy", "no_memory", "stopped",
                 "seconds")

    def __init__(self):
        self.ranges = self.collapsed = self.sparse = self.ineligible = self.busy = self.no_memory = 0
        self.sparse_resident = 0   # small pages in memory in the sparse ranges (what their forks copy)
        self.stopped = False
        self.seconds = 0.0

    def __repr__(self):
        return (f"{self.collapsed} of {self.ranges} 2 MiB ranges in huge pages, {self.sparse} left sparse "
                f"({self.sparse_resident * PAGE >> 20} MiB resident in them), "
                f"{self.ineligible} ineligible, "
                f"{self.busy} busy, {self.no_memory} without a free huge page{', stopped' if self.stopped else ''}, "
                f"{self.seconds:.2f}s")


class HeapCollapser:
    """At most one background pass at a time; see the module docstring."""

    def __init__(self, enabled: bool = True, pause_s: float = 0.001, min_rss_mib: int = MIN_RSS_MIB,
                 min_rss_after_snapshot_mib: float = MIN_RSS_AFTER_SNAPSHOT_MIB):
        self.enabled = enabled and available()
        self.pause_s = pause_s
        self.min_rss_mib = min_rss_mib
        self.min_rss_after_snapshot_mib = min_rss_after_snapshot_mib
        self.small = 0   # starts skipped because the process was below min_rss_mib
        self.supported: bool | None = None   # None until a pass has tried
        self.passes = 0
        self.last: PassResult | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._active = False   # a pass thread runs (set and cleared under _lock)
        self._pass_started = 0.0
        self._again = False    # start() came while it ran: do another pass after it

    @property
    def running(self) -> bool:
        return self._active

    def busy(self, max_s: float) -> bool:
        """A pass runs and has run for less than max_s: a fork now would copy the small pages it has
        not reached yet (the snapshot trigger waits for it, up to that bound)."""
        return self._active and time.monotonic() - self._pass_started < max_s

    def start(self, after_snapshot: bool = False) -> bool:
        """Begin a pass in the background unless the kernel cannot collapse; if one is running, another
        whole pass follows it (ranges it already did may have been split again since). after_snapshot:
        only in a process of min_rss_after_snapshot_mib or more (see MIN_RSS_AFTER_SNAPSHOT_MIB)."""
        if not self.enabled or self.supported is False:
            return False
        if rss_mib() < (self.min_rss_after_snapshot_mib if after_snapshot else self.min_rss_mib):
            self.small += 1
            return False
        with self._lock:
            self._stop.clear()
            if self._active:
                self._again = True
                return True
            self._active = True
            self._pass_started = time.monotonic()
            self._thread = threading.Thread(target=self._run, name="huge-page-collapse", daemon=True)
        self._thread.start()
        return True

    def stop(self, wait: float | None = None) -> None:
        """Ask a running pass to stop after the range in hand (before a fork; at close)."""
        with self._lock:
            self._again = False
            self._stop.set()
        t = self._thread
        if wait is not None and t is not None:
            t.join(wait)

    def _run(self) -> None:
        mon = stalls.active()
        while True:
            if mon is not None:
                mon.note("hugepages", time.monotonic())
            try:
                res = self.collapse_once()
            except Exception:  # noqa: BLE001 - a background helper must never take the server down
                log.exception("huge pages: the collapse pass failed")
                res = None
            if mon is not None:
                mon.end_note("hugepages", time.monotonic())
            if res is not None:
                self._record(res)
            with self._lock:
                if self._again and not self._stop.is_set() and self.supported is not False:
                    self._again = False
                    self._pass_started = time.monotonic()
                    continue
                self._active = False
                return

    def _record(self, res: "PassResult") -> None:
        self.passes += 1
        self.last = res
        if res.collapsed == 0 and res.ineligible > 0 and res.ineligible == res.ranges - res.sparse:
            if self.supported is None:
                log.info("huge pages: madvise(MADV_COLLAPSE) is not available here (Linux < 6.1 or THP "
                         "disabled); a forked snapshot's fork() copies 4 KiB page tables")
            self.supported = False
            return
        self.supported = True
        log.info("huge pages: %r", res)

    def collapse_once(self) -> PassResult:
        """One pass over the heap as it is now, in the calling thread."""
        res = PassResult()
        t0 = time.perf_counter()
        try:
            with open("/proc/self/maps") as f:
                ranges = anonymous_ranges(f.read())
        except OSError:
            ranges = []
        short_of_memory = 0
        vec = (ctypes.c_ubyte * (HUGE // PAGE))()
        for lo, hi in ranges:
            for addr in range(lo, hi, HUGE):
                if self._stop.is_set():
                    res.stopped = True
                    res.seconds = time.perf_counter() - t0
                    return res
                res.ranges += 1
                resident = resident_pages(addr, vec)
                if resident < 0:      # unmapped since /proc/self/maps was read
                    res.ineligible += 1
                    continue
                if resident < MIN_RESIDENT:
                    res.sparse += 1
                    res.sparse_resident += resident
                    continue
                t_range = time.perf_counter()
                if _madvise(addr, HUGE, MADV_COLLAPSE) == 0:
                    res.collapsed += 1
                    short_of_memory = 0
                else:
                    e = ctypes.get_errno()
                    if e == errno.ENOMEM:
                        res.no_memory += 1
                        short_of_memory += 1
                        if short_of_memory >= _GIVE_UP_ENOMEM:
                            res.stopped = True
                            res.seconds = time.perf_counter() - t0
                            return res
                    elif e == errno.EAGAIN:
                        res.busy += 1
                    else:  # EINVAL: not eligible, or no MADV_COLLAPSE; EFAULT: unmapped meanwhile
                        res.ineligible += 1
                pause = max(self.pause_s, DUTY_SLEEP_FACTOR * (time.perf_counter() - t_range))
                if pause:
                    time.sleep(pause)
        res.seconds = time.perf_counter() - t0
        return res


def huge_pages_mib() -> int | None:
    """AnonHugePages of this process (MiB), for logs and tests; None where /proc says nothing."""
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                if line.startswith("AnonHugePages:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def available() -> bool:
    return _madvise is not None and sys.platform.startswith("linux") and os.path.exists("/proc/self/maps")
