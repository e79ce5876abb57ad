"""Sync planning on the leader: DIFF, TRUNC then DIFF, or SNAP, against its in-memory history."""
from __future__ import annotations

import pytest

from coord.core.zab.history import History
from coord.core.zab.leader import plan_sync
from coord.core.zab.messages import Entry
from coord.jute import records as R


def z(e, c):
    return (e << 32) | c


def history(base, zxids, applied=None, window=1000):
    h = History(base, max_txns=window)
    for x in zxids:
        h.append(Entry(R.TxnHeader(1, 1, x, 0, 5), R.SetDataTxn("/a", b"", 1)))
    h.applied = len(zxids) if applied is None else applied
    return h


# leader history: (1,1) (1,2) (1,3) (2,1) (2,2) after a base of 0
H = [z(1, 1), z(1, 2), z(1, 3), z(2, 1), z(2, 2)]


@pytest.mark.parametrize("peer_last,peer_tree,expected", [
    (z(2, 2), z(2, 2), ("diff", z(2, 2))),        # up to date: an empty DIFF
    (z(1, 3), z(1, 1), ("diff", z(1, 3))),        # behind on our branch
    (0, 0, ("diff", 0)),                          # empty learner, our history from the start
    (z(1, 5), z(1, 2), ("trunc", z(1, 3))),       # (1,4),(1,5) only on the learner: cut to (1,3)
    (z(2, 7), z(2, 1), ("trunc", z(2, 2))),       # ahead of us in our own epoch: cut to our last
    (z(1, 5), z(1, 5), ("snap", 0)),              # its *tree* holds (1,4),(1,5): no TRUNC below a tree
    (z(1, 5), z(1, 4), ("snap", 0)),
])
def test_plan(peer_last, peer_tree, expected):
    assert plan_sync(history(0, H), peer_last, peer_tree) == expected


def test_learner_older_than_the_window_gets_a_snapshot():
    h = history(z(1, 10), [z(1, 11), z(1, 12)])
    assert plan_sync(h, z(1, 12), 0) == ("diff", z(1, 12))
    assert plan_sync(h, z(1, 10), 0) == ("diff", z(1, 10))    # exactly our base: same state
    assert plan_sync(h, z(1, 9), 0) == ("snap", 0)
    assert plan_sync(h, z(1, 5), 0) == ("snap", 0)


def test_trunc_point_must_be_a_zxid_we_hold():
    # the learner diverged right after our base: we cannot name its fork point exactly
    h = history(z(1, 10), [z(2, 1)])
    assert plan_sync(h, z(1, 12), z(1, 3)) == ("snap", 0)


def test_history_window_trims_only_committed_entries():
    h = history(0, [z(1, i) for i in range(1, 41)], applied=30, window=8)
    h.trim()
    assert h.base >= z(1, 22) - 1 and h.applied <= 8 + 8
    assert h.last == z(1, 40)
    assert all(e.zxid > h.base for e in h.entries)
    assert plan_sync(h, z(1, 5), 0) == ("snap", 0)
    assert plan_sync(h, z(1, 35), 0) == ("diff", z(1, 35))


def test_truncate_never_cuts_applied_entries():
    h = history(0, [z(1, 1), z(1, 2), z(1, 3)], applied=2)
    h.truncate(z(1, 2))
    assert h.last == z(1, 2)
    with pytest.raises(AssertionError):
        h.truncate(z(1, 1))
