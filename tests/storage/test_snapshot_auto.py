"""coord.snapshotMethod=auto (the default where os.fork exists): in-loop while the encoding is a small
share of the time between snapshots, forked when it would be a large one."""
from __future__ import annotations

import asyncio
import os

import pytest

from coord.aio import snapshots
from coord.aio.snapshots import AUTO_MAX_LOOP_S, AUTO_SHARE, SnapshotTaker
from coord.aio.zoocfg import parse
from tests.storage.test_snapshot_stall import big_tree

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="auto needs os.fork")


def test_auto_is_the_default_and_a_config_value():
    assert snapshots.DEFAULT_METHOD == "auto"
    assert parse("dataDir=/tmp/x\ncoord.snapshotMethod=auto\n").snapshot_method == "auto"


def test_auto_picks_in_loop_while_encoding_is_a_small_share_of_the_interval(tmp_path):
    t = SnapshotTaker(tmp_path)
    try:
        assert t.method == "auto"
        t.node_cpu_s = 4e-6
        start = t._last_start
        # 20,000 nodes: 80 ms of loop CPU, 4 s after the last: in-loop
        assert t.choose(20_000, start + 4.0) == "inloop"
        # 1M nodes: 4 s of loop CPU, 5 s after the last one began: forked
        assert t.choose(1_000_000, start + 9.0) == "fork"
        # the same tree when snapshots are a minute apart: 4 s is under a quarter of 60 s, but over
        # the bound on in-loop CPU whatever the interval
        assert t.choose(1_000_000, start + 69.0) == "fork"
        # just under the share: 0.39 s of CPU, 1.6 s after the last
        assert t.choose(97_500, start + 69.0 + 0.4 / AUTO_SHARE) == "inloop"
        # right at the bound, after an hour
        n = int(AUTO_MAX_LOOP_S / 4e-6)
        assert t.choose(n - 1000, start + 3600) == "inloop" and t.choose(n + 1000, start + 7200) == "fork"
        assert t.auto_choices == {"fork": 3, "inloop": 3}
    finally:
        t.close()
    fixed = SnapshotTaker(tmp_path, method="fork")
    try:
        assert fixed.choose(10, fixed._last_start + 100) == "fork"
    finally:
        fixed.close()


def _take(tmp_path, tree, prepare):
    """One snapshot by a fresh auto taker after prepare(taker); returns (taker, path)."""
    async def run():
        t = SnapshotTaker(tmp_path)
        prepare(t)
        try:
            return t, await t.take(tree)
        finally:
            t.close()
    return asyncio.run(run())


def test_an_in_loop_snapshot_measures_its_cpu_per_node_and_size(tmp_path):
    tree = big_tree(20_000)

    def an_hour_ago(t):                # an hour since start-up: in-loop
        t._last_start -= 3600
    t, path = _take(tmp_path, tree, an_hour_ago)
    assert path is not None and t.last_method == "inloop"
    assert t.last_bytes == path.stat().st_size > 0       # the low-disk warning's input
    assert t.last_loop_cpu_ms > 0
    assert t.node_cpu_s == pytest.approx(t.last_loop_cpu_ms / 1000 / len(tree.nodes), rel=0.05)


def test_auto_forks_a_tree_too_large_for_the_interval(tmp_path):
    tree = big_tree(20_000)

    def slow_encoding(t):              # as if encoding took 1 ms a node: 20 s, over the bound
        t.node_cpu_s = 1e-3
    t, path = _take(tmp_path, tree, slow_encoding)
    assert path is not None and t.last_method == "fork" and t.auto_choices["fork"] == 1
