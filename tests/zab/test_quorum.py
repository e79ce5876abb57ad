"""Majority arithmetic over voters; observers never count."""
from __future__ import annotations

import pytest

from coord.core.zab.quorum import Quorum


@pytest.mark.parametrize("voters,observers,sids,expected", [
    ({1}, (), {1}, True),
    ({1}, (), set(), False),
    ({1, 2, 3}, (), {1, 2}, True),
    ({1, 2, 3}, (), {3}, False),
    ({1, 2, 3}, (4, 5), {1, 4, 5}, False),        # observers add nothing
    ({1, 2, 3, 4}, (), {1, 2}, False),            # even ensembles need more than half
    ({1, 2, 3, 4}, (), {1, 2, 3}, True),
    ({1, 2, 3, 4, 5}, (6,), {2, 4, 5}, True),
    ({1, 2, 3, 4, 5}, (6,), {2, 4, 6}, False),
    ({1, 2, 3}, (), {1, 2, 9}, True),             # strangers are ignored
])
def test_is_quorum(voters, observers, sids, expected):
    assert Quorum(voters, observers).is_quorum(sids) is expected


def test_any_two_quorums_intersect():
    import itertools
    for n in range(1, 8):
        q = Quorum(range(1, n + 1))
        subsets = [set(c) for k in range(n + 1) for c in itertools.combinations(range(1, n + 1), k)]
        qs = [s for s in subsets if q.is_quorum(s)]
        assert all(a & b for a in qs for b in qs)


@pytest.mark.parametrize("values,expected", [
    ({1: 10, 2: 7, 3: 3}, 7),
    ({1: 10, 2: 7}, 7),
    ({1: 10}, None),
    ({1: 10, 2: 7, 3: 3, 4: 99}, 7),              # 4 is an observer here
    ({1: 5, 2: 5, 3: 5}, 5),
])
def test_quorum_value(values, expected):
    assert Quorum({1, 2, 3}, {4}).quorum_value(values) == expected


def test_voters_and_observers_are_disjoint_and_required():
    q = Quorum({1, 2, 3}, {3, 4})
    assert q.observers == {4} and q.is_voter(3) and not q.is_voter(4)
    with pytest.raises(ValueError):
        Quorum(set(), {1})
