"""Huge pages keep a forked snapshot's fork() short (coord.aio.hugepages).

The fork measurements run in a fresh interpreter with a heap of its own, put into the state a
server's heap is in after a snapshot: huge pages split back into 4 KiB pages by the parent's writes
while a child shared them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from coord.aio import hugepages
from coord.aio.hugepages import HeapCollapser, anonymous_ranges
from coord.aio.zoocfg import ConfigError, parse

ROOT = Path(__file__).resolve().parents[2]
MIB = 1 << 20


def _kernel_collapses() -> bool:
    """True where MADV_COLLAPSE works on this machine (Linux 6.1+, THP not disabled)."""
    if not hugepages.available():
        return False
    h = HeapCollapser()
    keep = bytearray(8 * MIB)  # noqa: F841 - some anonymous memory to try on
    res = h.collapse_once()
    return res.collapsed > 0


needs_collapse = pytest.mark.skipif(not _kernel_collapses(),
                                    reason="madvise(MADV_COLLAPSE) not available (Linux < 6.1 or THP disabled)")


def test_only_private_writable_anonymous_memory_is_collapsed_and_aligned():
    maps = textwrap.dedent("""\
        00400000-00600000 r-xp 00000000 08:01 123 /usr/bin/pypy3
        01000000-01a00001 rw-p 00000000 00:00 0 [heap]
        7f0000100000-7f0000900000 rw-p 00000000 00:00 0
        7f0001000000-7f0001100000 rw-p 00000000 00:00 0
        7f0002000000-7f0002800000 rw-s 00000000 00:05 77 /dev/zero (deleted)
        7f0003000000-7f0003800000 rw-p 00000000 08:01 456 /var/lib/coord/file.bin
        7f0004000000-7f0004600000 r--p 00000000 00:00 0
        7ffd00000000-7ffd00800000 rw-p 00000000 00:00 0 [stack]
        """)
    assert anonymous_ranges(maps) == [
        (0x01000000, 0x01a00000),            # [heap], its tail cut at the last 2 MiB boundary
        (0x7f0000200000, 0x7f0000800000),    # start rounded up, end rounded down
    ]                                        # 1 MiB mapping: no whole huge page; files, shared, ro, stack: never


def test_collapse_is_off_by_config_and_a_bad_value_names_the_line(tmp_path):
    assert parse(f"dataDir={tmp_path}\n").collapse_huge_pages is True
    cfg = parse(f"dataDir={tmp_path}\ncoord.collapseHugePages=false\n")
    assert cfg.collapse_huge_pages is False and not cfg.warnings
    from coord.aio.datadir import Storage
    assert not Storage.from_config(cfg).snapshots.huge_pages.enabled
    if hugepages.available():   # a server's default: on (a Storage built by hand: off, see its docstring)
        assert Storage.from_config(parse(f"dataDir={tmp_path}\n")).snapshots.huge_pages.enabled
        assert not Storage(tmp_path).snapshots.huge_pages.enabled
    assert not Storage.from_config(parse(f"dataDir={tmp_path}\ncoord.snapshotMethod=inloop\n")).snapshots.huge_pages.enabled
    with pytest.raises(ConfigError, match=r"zoo.cfg:2: coord.collapseHugePages"):
        parse(f"dataDir={tmp_path}\ncoord.collapseHugePages=sometimes\n")


@needs_collapse
def test_a_pass_stops_when_asked_and_a_start_during_a_pass_runs_another_one():
    keep = [bytearray(64 * MIB) for _ in range(2)]  # noqa: F841 - ranges for the pass to walk
    h = HeapCollapser(pause_s=0.02)   # slow enough to be caught running
    assert h.start()
    time.sleep(0.1)
    assert h.running
    h.stop(wait=5)
    assert not h.running and h.last is not None and h.last.stopped and h.passes == 1

    assert h.start()
    time.sleep(0.05)
    assert h.start() and h.running   # queued: another whole pass after this one
    deadline = time.monotonic() + 60
    while h.running:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert h.passes == 3 and not h.last.stopped and h.supported is True
    assert h.last.collapsed >= 60   # the 128 MiB above, already huge after the first full pass


_FORK_PROBE = r"""
import json, os, sys, time
from coord.aio.hugepages import HeapCollapser, huge_pages_mib
heap = [bytearray(os.urandom(64)) * 4096 for _ in range(int(sys.argv[1]))]   # 256 KiB each, written
def fork_ms():
    out = []
    for _ in range(5):
        t = time.perf_counter(); pid = os.fork()
        if pid == 0:
            os._exit(0)
        out.append((time.perf_counter() - t) * 1000); os.waitpid(pid, 0)
    return sorted(out)[2]
def split():
    # a child shares every page; the parent writes one byte in each 4 KiB page meanwhile
    pid = os.fork()
    if pid == 0:
        time.sleep(30); os._exit(0)
    for b in heap:
        for i in range(0, len(b), 4096):
            b[i] ^= 1
    os.kill(pid, 9); os.waitpid(pid, 0)
h = HeapCollapser(pause_s=0)
h.collapse_once()
huge_before = huge_pages_mib()
split()
split_ms, huge_split = fork_ms(), huge_pages_mib()
res = h.collapse_once()
print(json.dumps({"huge_before": huge_before, "huge_split": huge_split, "split_ms": split_ms,
                  "collapsed_ms": fork_ms(), "huge_after": huge_pages_mib(), "collapsed": res.collapsed}))
"""


@needs_collapse
def test_collapsing_after_a_snapshot_brings_the_fork_back_to_huge_page_speed():
    """512 MiB written through, split by a child's copy-on-write, then collapsed: the split heap's fork
    copies ~131,000 page-table entries, the collapsed one's ~256 huge ones (measured here: 7-10 ms
    vs 0.8-0.9 ms on CPython and PyPy; asserted with a wide margin, on the median of 5 forks each)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", _FORK_PROBE, "2048"], capture_output=True, text=True,
                         env=env, timeout=300, check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    assert r["huge_before"] >= 400, r             # the pass gathered the heap into huge pages
    assert r["huge_split"] <= r["huge_before"] - 300, r   # the child's run split them
    assert r["huge_after"] >= 400 and r["collapsed"] >= 200, r
    assert r["collapsed_ms"] < r["split_ms"] / 2, r


@needs_collapse
def test_a_due_snapshot_waits_for_the_huge_page_pass_then_forks(tmp_path):
    """A snapshot that comes due while a pass runs waits (the fork would copy the small pages the pass
    has not reached), and starts at the first commit after the pass ends; a pass left running past
    collapse_wait_s no longer holds it."""
    import asyncio

    from coord.aio.datadir import Storage
    from coord.core.datatree import DataTree
    from tests.storage.helpers import TxnMaker, random_txns
    keep = [bytearray(64 * MIB) for _ in range(2)]  # noqa: F841 - ranges for the pass to walk

    async def run():
        st = Storage(tmp_path, force_sync=False, snap_count=40, seed=3, snapshot_method="fork",
                     collapse_huge_pages=True)
        st.recover()
        st.snapshots.huge_pages.stop(wait=60)   # the pass after recovery: not this test's
        st.snapshots.huge_pages.pause_s = 0.01  # ~1 s per pass over the 128 MiB above
        tree = DataTree()
        gen = random_txns(tree, TxnMaker(), 10 ** 9, __import__("random").Random(2))

        async def commit():
            batch = [next(gen)]
            st.txnlog.append(batch)
            await st.txnlog.drain()
            st.logged(batch[-1][0].zxid, tree)
        for _ in range(45):   # past the threshold (20-39 txns)
            await commit()
        while st.snapshots.in_progress or st.snapshots.huge_pages.running:  # that one, and the pass after it
            await asyncio.sleep(0.02)
        taken = st.snapshots.count
        assert taken == 1
        assert st.snapshots.huge_pages.start()
        held = 0
        while True:
            before = st.snapshots.huge_pages.running
            await commit()
            if not (before and st.snapshots.huge_pages.running):
                break
            held += 1   # the pass ran throughout this commit: no snapshot may have started
            assert st.snapshots.count == taken and not st.snapshots.in_progress
        waited = st.deferred_snapshots
        while st.snapshots.huge_pages.running:
            await asyncio.sleep(0.02)
        await commit()
        assert st.snapshots.in_progress   # due since long ago: the fork comes with the next commit
        while st.snapshots.in_progress:
            await asyncio.sleep(0.02)
        assert st.snapshots.count == taken + 1 and st.snapshots.last_method == "fork"

        st.collapse_wait_s = 0.0          # a pass that has run "too long" holds nothing
        while st.snapshots.huge_pages.running:   # the pass after that snapshot
            await asyncio.sleep(0.02)
        assert st.snapshots.huge_pages.start()
        for _ in range(60):
            await commit()
        started = st.snapshots.in_progress or st.snapshots.count == taken + 2
        await st.close()
        return held, waited, started
    held, waited, started = asyncio.run(run())
    assert held >= 40 and waited >= 1 and started


@pytest.mark.skipif(not hugepages.available(), reason="needs Linux's mincore and /proc/self/maps")
def test_residency_decides_which_ranges_are_dense_enough_to_collapse():
    """mincore says how much of a range is in memory: an untouched one is left alone (collapsing it
    would make 2 MiB resident), a written one is dense, an unmapped one is skipped."""
    import ctypes
    import mmap
    m = mmap.mmap(-1, 4 * hugepages.HUGE)
    buf = (ctypes.c_ubyte * len(m)).from_buffer(m)
    base = ctypes.addressof(buf)
    start = (base + hugepages.HUGE - 1) & ~(hugepages.HUGE - 1)
    vec = (ctypes.c_ubyte * 512)()
    try:
        assert hugepages.resident_pages(start, vec) == 0
        for off in range(0, hugepages.HUGE // 2, hugepages.PAGE):
            buf[start - base + off] = 1
        assert hugepages.resident_pages(start, vec) == 256 < hugepages.MIN_RESIDENT
        for off in range(hugepages.HUGE // 2, hugepages.HUGE, hugepages.PAGE):
            buf[start - base + off] = 1
        assert hugepages.resident_pages(start, vec) == 512
    finally:
        del buf
        m.close()
    assert hugepages.resident_pages(start, vec) == -1


def test_a_small_process_skips_the_pass():
    """Below min_rss_mib the fork is already short: no thread, no pass."""
    h = HeapCollapser(min_rss_mib=1 << 30)
    assert not h.start() and not h.running and h.small == (1 if h.enabled else 0) and h.passes == 0


def test_no_pass_follows_a_snapshot_unless_asked():
    """A pass after every forked snapshot re-copies the whole heap and hurt a light writer's tail for
    the 25-30 s it ran at 1M znodes (issue 17): off by default; COORD_HUGEPAGES_AFTER_SNAPSHOT_MIB
    sets the RSS from which it runs again; a bad value keeps it off."""
    assert hugepages.min_rss_after_snapshot(None) == hugepages.min_rss_after_snapshot("") == float("inf")
    assert hugepages.min_rss_after_snapshot("512") == 512.0
    for bad in ("-1", "lots", "nan"):
        assert hugepages.min_rss_after_snapshot(bad) == float("inf")
    h = HeapCollapser(min_rss_mib=0)
    assert h.min_rss_after_snapshot_mib == float("inf")
    assert not h.start(after_snapshot=True) and not h.running and h.passes == 0
    asked = HeapCollapser(min_rss_mib=0, min_rss_after_snapshot_mib=0)
    try:
        assert asked.start(after_snapshot=True) == asked.enabled
    finally:
        asked.stop(wait=60)
