"""HDR-style latency plots for `coord bench --open-loop`: latency against percentile, the percentile
axis stretched as 1/(1-p) on a log scale so that p50, p99, p99.9 and p99.99 get equal room (the
HdrHistogram percentile-distribution view). Where a tail is long it shows at once; a mean hides it.
One image per op: every load level, coord solid and ZooKeeper dashed, one colour per level.
"""
from __future__ import annotations

from pathlib import Path

TICKS = (0.5, 0.9, 0.99, 0.999, 0.9999)


def curve(values_us) -> tuple[list[float], list[float]]:
    """(x = 1/(1-p), latency ms) at ~300 log-spaced percentiles of the samples, plus the maximum."""
    s = sorted(values_us)
    n = len(s)
    if not n:
        return [], []
    xs, ys = [], []
    x = 1.0
    while True:
        p = 1.0 - 1.0 / x
        i = min(n - 1, int(p * n))
        xs.append(x)
        ys.append(s[i] / 1000.0)
        if i >= n - 1:
            break
        x *= 1.05
    return xs, ys


def plot_all(curves: dict, out_dir: Path, title_suffix: str = "") -> list[str]:
    """curves: (op, fraction, system) -> latencies in µs. Writes <out_dir>/tail-<suffix>-<op>.png."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    ops = list(dict.fromkeys(k[0] for k in curves))
    for op in ops:
        fig, ax = plt.subplots(figsize=(8, 5))
        fracs = sorted({k[1] for k in curves if k[0] == op})
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for j, frac in enumerate(fracs):
            for system, style in (("coord", "-"), ("zookeeper", "--")):
                lat = curves.get((op, frac, system))
                if lat is None or not len(lat):
                    continue
                xs, ys = curve(lat)
                ax.plot(xs, ys, style, color=colours[j % len(colours)], label=f"{system} {frac:.0%}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks([1 / (1 - t) for t in TICKS])
        ax.set_xticklabels([f"{t * 100:g}%" for t in TICKS])
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency from scheduled send (ms)")
        ax.set_title(f"{op}: open-loop latency, coord vs ZooKeeper 3.8 {title_suffix}".strip())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        path = out_dir / f"tail-{title_suffix or 'run'}-{op}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(str(path))
    return written
