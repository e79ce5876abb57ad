"""coord.bench.paired and metrics_ab's verdicts: the interval is the order-statistic one, and a
verdict is only given when the whole interval (and, with an A/A run, more than its floor) says so."""
import math

import pytest

from coord.bench.metrics_ab import MIN_ROUNDS, against_floor
from coord.bench.paired import median_ci, paired_ratios, verdict


def _coverage(n: int, k: int) -> float:
    """P(x(k) <= median < x(n+1-k)) for a continuous distribution: P(k <= B <= n-k), B ~ Bin(n, 1/2)."""
    return sum(math.comb(n, j) for j in range(k, n - k + 1)) / 2 ** n


@pytest.mark.parametrize("n", [6, 7, 9, 12, 20, 31])
def test_interval_is_the_narrowest_with_95_percent(n):
    xs = [float(i) for i in range(1, n + 1)]            # x(i) == i
    med, lo, hi = median_ci(list(reversed(xs)))
    k = int(lo)
    assert hi == n + 1 - k and med == (n + 1) / 2
    assert _coverage(n, k) >= 0.95 > _coverage(n, k + 1)


def test_few_values_give_the_whole_range_and_no_verdict():
    assert median_ci([1.0, 0.99, 1.01]) == (1.0, 0.99, 1.01)
    assert MIN_ROUNDS == 6 and _coverage(5, 1) < 0.95 <= _coverage(6, 1)
    with pytest.raises(ValueError):
        median_ci([])


def test_verdicts():
    assert verdict(0.98, 1.02, 0.03) == "within"
    assert verdict(0.90, 0.96, 0.03) == "slower"
    assert verdict(1.04, 1.10, 0.03) == "faster"
    assert verdict(0.95, 1.01, 0.03) == "unresolved"
    assert paired_ratios([2.0, None, 3.0], [1.0, 1.0, 0.0]) == [2.0]


def test_an_ab_median_inside_the_aa_interval_is_marked():
    ab = {"getData": {"throughput": {"median": 0.9, "ci95": [0.85, 0.95], "verdict": "slower"}},
          "setData": {"throughput": {"median": 0.5, "ci95": [0.45, 0.55], "verdict": "slower"}}}
    aa = {"getData": {"throughput": {"median": 1.0, "ci95": [0.8, 1.2]}},
          "setData": {"throughput": {"median": 1.0, "ci95": [0.8, 1.2]}}}
    against_floor(ab, aa)
    assert ab["getData"]["throughput"]["verdict"] == "slower (inside the A/A floor)"
    assert ab["setData"]["throughput"]["verdict"] == "slower"
