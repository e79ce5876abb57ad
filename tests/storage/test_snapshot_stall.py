"""A snapshot of a large tree taken while txns keep committing: consistent, and the event loop is
never held for long (the slices are measured in CPU time, so a busy machine does not fail it), by
either method: slices of an in-loop capture, or just the fork of a forked one."""
from __future__ import annotations

import asyncio
import os
import random

import pytest

from coord.aio.snapshots import SnapshotTaker, read_snapshot
from coord.core import acl as aclmod
from coord.core.datatree import DataTree, Node
from coord.jute import records as R
from tests.storage.helpers import OPEN, TxnMaker, tree_state


def big_tree(n: int) -> DataTree:
    tree = DataTree()
    rng = random.Random(5)
    tree.create_node("/big", b"", aclmod.OPEN_ACL_UNSAFE, 0, -1, 1, 1)
    for d in range(n // 1000):
        tree.create_node(f"/big/d{d}", b"", aclmod.OPEN_ACL_UNSAFE, 0, -1, 2, 1)
    z = 10
    for i in range(n):
        z += 1
        p = f"/big/d{i // 1000}/n{i}"
        node = Node(rng.randbytes(100), aclmod.OPEN_ACL_UNSAFE, z, z, 0)
        tree.load_node(p, node)
    tree.last_zxid = z
    return tree


@pytest.mark.parametrize("method", ["inloop", "fork"] if hasattr(os, "fork") else ["inloop"])
def test_snapshot_under_load_is_consistent_and_slices_are_short(tmp_path, method):
    tree = big_tree(100_000)
    mk = TxnMaker(start_zxid=tree.last_zxid)
    rng = random.Random(9)

    async def run():
        taker = SnapshotTaker(tmp_path, slice_ms=2.0, method=method)
        expected = tree_state(tree)
        task = asyncio.get_running_loop().create_task(taker.take(tree))
        await asyncio.sleep(0)  # the capture happens on the task's first step
        applied = 0
        while not task.done():
            for _ in range(20):  # commits keep landing between slices: every kind that changes nodes
                i = rng.randrange(100_000)
                p = f"/big/d{i // 1000}/n{i}"
                node = tree.nodes.get(p)
                r = rng.random()
                if node is None:
                    ht = mk.create(p, b"again")
                elif r < 0.5:
                    ht = mk.set_data(p, b"changed", node.version + 1)
                elif r < 0.8:
                    ht = mk.delete(p)
                else:
                    ht = mk.multi([(2, R.DeleteTxn(p)),
                                   (1, R.CreateTxn(f"{p}x{mk.zxid}", b"m", OPEN, False, -1))])
                assert tree.apply(*ht).err == 0
                applied += 1
            await asyncio.sleep(0)
        path = await task
        taker.close()
        return path, expected, taker, applied

    path, expected, taker, applied = asyncio.run(run())
    assert path is not None and applied > 0 and taker.last_method == method
    loaded, info = read_snapshot(path)
    assert info.zxid == expected["zxid"]
    assert tree_state(loaded) == expected
    assert taker.last_max_slice_cpu_ms < 100, taker.last_max_slice_cpu_ms  # ~2-5 ms on a quiet machine
    assert taker.last_capture_ms < 200
