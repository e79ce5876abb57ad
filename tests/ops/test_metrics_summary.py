"""Summary quantiles taken while a garbage-collector hook appends to the same window.

Found by coord.bench.metrics_ab: under load, PyPy's gc.hooks fired in the middle of a scrape and
observed a pause into the deque being iterated; /metrics answered 500 ("deque mutated during
iteration"). The hook is simulated here by an observation made from inside the iteration.
"""
from collections import deque

from coord.aio.metrics import Summary, stable_copy


class _HookedDeque(deque):
    """A deque whose first iteration is interrupted by an append, as a gc hook would do."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.interrupts = 1

    def __iter__(self):
        it = super().__iter__()
        for i, x in enumerate(it):
            if i == 1 and self.interrupts:
                self.interrupts -= 1
                self.append((x[0], 999.0))
            yield x


def test_quantiles_survive_an_observation_during_the_copy():
    s = Summary()
    s.recent = _HookedDeque(maxlen=2048)
    for i in range(10):
        s.observe(float(i), now=100.0)
    qs = dict(s.quantile_values(100.0))
    assert s.recent.interrupts == 0          # the interruption happened
    assert qs[0.5] in (5.0, 6.0)             # and the quantiles were computed from a whole copy
    assert max(v for _, v in s.recent) == 999.0


def test_a_plain_live_iteration_would_have_failed():
    d = _HookedDeque([(0.0, 1.0), (0.0, 2.0), (0.0, 3.0)], maxlen=10)
    try:
        list(v for _, v in d)
    except RuntimeError:
        pass
    else:
        raise AssertionError("the simulated hook did not mutate the deque mid-iteration")
    d.interrupts = 1
    assert len(stable_copy(d)) == 5          # 3 + one append from each interrupted pass
