"""Which server stalls a benchmark's slow requests waited on (`coord bench --open-loop --attribute`).

The server side (coord.aio.stalls) knows every event-loop turn and fsync batch over 2 ms and its
cause, but not which requests it held; the client knows every request's latency, but not why. With
COORD_STALL_TRACE the servers append each stall as (end, ms, cause) on CLOCK_MONOTONIC, the clock
the open-loop client schedules its requests on, so the two can be joined: a slow request (at or
over a latency bound, by default the run's p99) is charged to the cause whose stalls overlap its
[scheduled send, reply] window the most, or to "none" when no stall overlaps it (the delay was
queueing behind ordinary work under 2 ms a turn, the network, or the client). The answer says which
cause the p99 is made of, which the server's own stall counts cannot: a 12 ms fork and a 12 ms
collection hold different numbers of requests depending on when they come.
"""
from __future__ import annotations

import bisect
import re
import time
from datetime import datetime
from pathlib import Path

NONE = "none"


def read_traces(directory: Path) -> list[tuple[float, float, str]]:
    """Every stall in DIR/stalls-*.txt (all members) as (start, end, cause), sorted by start."""
    out = []
    for f in sorted(Path(directory).glob("stalls-*.txt")):
        for line in f.read_text().splitlines():
            parts = line.split("\t", 1)[0].split()
            if len(parts) != 3:
                continue   # a line cut by a killed server
            try:
                end, ms = float(parts[0]), float(parts[1])
            except ValueError:
                continue
            out.append((end - ms / 1000.0, end, parts[2]))
    out.sort()
    return out


# ZooKeeper's own stall records (coord.bench.launch.zookeeper_trace_flags), both on the wall clock,
# both written when the stall ends: FileTxnLog's slow-fsync warning in the server log (log4j's
# ISO8601 local time; whole ms) and the JVM's safepoint log (GC and other stop-the-world pauses).
_ZK_FSYNC = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*fsync-ing the write ahead log in \S+ took (\d+)ms")
_SAFEPOINT = re.compile(r"^\[(\S+?)\].*Safepoint \"([^\"]*)\".* Total: (\d+) ns")


def read_zookeeper(server_logs, safepoint_logs, min_ms: float = 2.0) -> list[tuple[float, float, str]]:
    """ZooKeeper's stalls over min_ms as (start, end, cause) on CLOCK_MONOTONIC, like read_traces:
    "fsync" (a txn-log fsync) and "jvm-pause" (a safepoint: GC or another stop-the-world pause)."""
    wall_minus_mono = time.time() - time.monotonic()
    out = []
    for f in server_logs:
        for line in _lines(f):
            m = _ZK_FSYNC.match(line)
            if m and int(m[2]) >= min_ms:
                end = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp() - wall_minus_mono
                out.append((end - int(m[2]) / 1000.0, end, "fsync"))
    for f in safepoint_logs:
        for line in _lines(f):
            m = _SAFEPOINT.match(line)
            if m and int(m[3]) >= min_ms * 1e6:
                end = datetime.strptime(m[1], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() - wall_minus_mono
                out.append((end - int(m[3]) / 1e9, end, "jvm-pause"))
    out.sort()
    return out


def _lines(path) -> list[str]:
    try:
        return Path(path).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []


def attribute(at_s, lat_us, stalls: list[tuple[float, float, str]], bound_ms: float,
              window: tuple[float, float] | None = None) -> dict:
    """Requests with latency >= bound_ms, by the cause that overlaps each one's window most.

    at_s: scheduled send times (monotonic s); lat_us: their latencies (µs); stalls from read_traces.
    window: only stalls inside (from, to) count (a server's trace also holds other runs' stalls).
    Returns {"bound_ms", "slow", "by_cause": {cause: requests}, "stalled_ms": {cause: total ms of the
    stalls in the window}}."""
    if window is not None:
        stalls = [s for s in stalls if s[1] >= window[0] and s[0] <= window[1]]
    starts = [s[0] for s in stalls]
    longest = max((s[1] - s[0] for s in stalls), default=0.0)
    bound_us = bound_ms * 1000.0
    by: dict[str, int] = {}
    slow = 0
    for t, lat in zip(at_s, lat_us):
        if lat < bound_us:
            continue
        slow += 1
        end = t + lat / 1e6
        # stalls that start before the reply and end after the send; none starts earlier than
        # t - longest and still reaches t
        i = bisect.bisect_left(starts, t - longest)
        j = bisect.bisect_right(starts, end)
        share: dict[str, float] = {}
        for s0, s1, cause in stalls[i:j]:
            ov = min(s1, end) - max(s0, t)
            if ov > 0:
                share[cause] = share.get(cause, 0.0) + ov
        cause = max(share.items(), key=lambda kv: kv[1])[0] if share else NONE
        by[cause] = by.get(cause, 0) + 1
    stalled: dict[str, float] = {}
    for s0, s1, cause in stalls:
        stalled[cause] = stalled.get(cause, 0.0) + (s1 - s0) * 1000.0
    return {"bound_ms": bound_ms, "slow": slow, "by_cause": dict(sorted(by.items(), key=lambda kv: -kv[1])),
            "stalled_ms": {c: round(v, 1) for c, v in sorted(stalled.items(), key=lambda kv: -kv[1])}}


def window_counts(stalls: list[tuple[float, float, str]], window: tuple[float, float],
                  warn_ms: float = 10.0) -> dict:
    """The stalls that ended inside window (from, to), by cause: {cause: {"count", "ms", "over_10ms"}}.

    The server's own counters (/metrics) cannot be read at the instant a run's warm-up ends, so a
    run's counter difference includes its warm-up, when the JIT compiles the run's new paths; this
    counts the measured window alone."""
    out: dict[str, dict] = {}
    for start, end, cause in stalls:
        if window[0] <= end <= window[1]:
            ms = round((end - start) * 1000.0, 3)   # the trace's own precision: 10.000 ms is 10 ms
            c = out.setdefault(cause, {"count": 0, "ms": 0.0, "over_10ms": 0})
            c["count"] += 1
            c["ms"] += ms
            c["over_10ms"] += ms >= warn_ms
    for c in out.values():
        c["ms"] = round(c["ms"], 1)
    return out


def shares(a: dict) -> str:
    """attribute()'s causes as shares of the slow requests: "gc-major 35%, fsync 30%, ..."."""
    n = a["slow"] or 1
    return ", ".join(f"{c} {100.0 * k / n:.0f}%" for c, k in a["by_cause"].items())


def summary(a: dict) -> str:
    """One line: "412 requests >= 8.4 ms: gc-major 35%, fsync 30%, ..."."""
    return f"{a['slow']} requests >= {a['bound_ms']:.2f} ms: {shares(a) or 'none'}"
