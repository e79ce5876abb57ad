"""A debug hook: the server's live objects counted by type, appended to a file every few seconds.

Why: an RSS that creeps under churn is either a leak (some dict or list that grows per session,
request or watch) or the allocator/GC keeping arenas; only counts of live objects over time tell
them apart. Off unless COORD_HEAP_CENSUS names a file; COORD_HEAP_CENSUS_S sets the interval
(default 30 s). Each line is JSON: the time, a full collection's counts by type (the `top` largest),
and PyPy's memory figures where it has them. A census walks the whole heap (a pause of 0.1-2 s):
never on in production.
"""
from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import sys
import time
from collections import Counter

from coord.aio.metrics import pypy_heap

log = logging.getLogger("coord.heapcensus")
_task: asyncio.Task | None = None


def census(top: int = 60) -> dict:
    """The live objects counted by type name (the `top` most numerous). PyPy's get_objects walks
    from the roots (live objects only); CPython's lists garbage too, so it collects first, and
    leaves out what gc.freeze() moved to its permanent generation (coord.runtime does at start)."""
    if sys.implementation.name != "pypy":
        gc.collect()
    counts = Counter(type(o).__name__ for o in gc.get_objects())
    out: dict = {"objects": sum(counts.values()), "by_type": dict(counts.most_common(top))}
    heap = pypy_heap()                           # PyPy's own figures ({} on CPython)
    if heap:
        out["pypy"] = heap
    return out


async def _run(path: str, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        t0 = time.monotonic()
        row = {"t": round(time.time(), 1), "pid": os.getpid(), **census()}   # members of one ensemble share a file
        row["census_s"] = round(time.monotonic() - t0, 3)
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")


def start_from_env() -> asyncio.Task | None:
    path = os.environ.get("COORD_HEAP_CENSUS")
    if not path:
        return None
    raw = os.environ.get("COORD_HEAP_CENSUS_S", "30")
    try:
        every = float(raw)
        if every <= 0:
            raise ValueError
    except ValueError:
        log.warning("COORD_HEAP_CENSUS_S=%r is not a positive number of seconds; no heap census", raw)
        return None
    log.warning("heap census every %.0f s into %s (a debug aid: each one pauses the server)", every, path)
    global _task
    _task = asyncio.ensure_future(_run(path, every))     # held here: the loop keeps only weak references
    return _task
