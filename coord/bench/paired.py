"""Paired-round statistics for A/B (and A/A) benchmarks: why a verdict needs more than two medians.

Two servers measured in alternating rounds drift together with the machine (other load, CPU
frequency, page cache), so the honest unit is the ratio of the two runs of one round, measured
minutes apart, not the ratio of two medians taken over different minutes. The median of those
paired ratios gets a distribution-free confidence interval from order statistics (the ranks come
from Binomial(n, 1/2); no normality assumed), and the verdict is read off that interval: a goal of
"within 3%" is met only if the whole interval says so, missed only if the whole interval says so,
and otherwise the run could not tell, which is the answer an A/A run (the same server twice) must
give, and whose interval width is this machine's noise floor.
"""
from __future__ import annotations

import math
import statistics


def median_ci(values: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(median, low, high): the order-statistic interval [x(k), x(n+1-k)] with the largest k whose
    coverage P(k <= B < n+1-k), B ~ Binomial(n, 1/2), is still >= confidence. With fewer than 6
    values no such k exists for 95%: the interval is then the whole range (min, max)."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        raise ValueError("no values")
    med = statistics.median(xs)
    cdf = 0.0
    k = 0                                   # P(B <= j) for j < k stays below (1 - confidence) / 2
    for j in range(n + 1):
        cdf += math.comb(n, j) / 2 ** n
        if cdf > (1 - confidence) / 2:
            break
        k = j + 1
    if k == 0:
        return med, xs[0], xs[-1]
    return med, xs[k - 1], xs[n - k]


def verdict(low: float, high: float, tolerance: float) -> str:
    """Ratios a/b: 'within' if [low, high] lies inside [1 - tolerance, 1 + tolerance]; 'slower' or
    'faster' if it lies wholly below or above that band; 'unresolved' otherwise."""
    if low >= 1 - tolerance and high <= 1 + tolerance:
        return "within"
    if high < 1 - tolerance:
        return "slower"
    if low > 1 + tolerance:
        return "faster"
    return "unresolved"


def paired_ratios(a: list[float | None], b: list[float | None]) -> list[float]:
    """a[i] / b[i] for the rounds where both were measured."""
    return [x / y for x, y in zip(a, b) if x is not None and y]
