"""`coord bench-churn`: the RSS verdict arithmetic, and a short churn of both systems through the command."""
import json

import pytest
from click.testing import CliRunner

from coord.bench.churn import slope_mib_per_min, verdict
from coord.cli import main


def test_slope_of_the_last_third():
    flat = [(float(t), 300.0) for t in range(0, 90, 10)]
    assert slope_mib_per_min(flat) == 0.0
    growing = [(float(t), 200.0 + t / 60 * 12) for t in range(0, 300, 10)]   # 12 MiB a minute
    assert slope_mib_per_min(growing) == pytest.approx(12.0)
    assert slope_mib_per_min(flat[:4]) is None
    v = verdict([(0.0, 100.0), (20.0, 150.0), (40.0, 170.0), (60.0, 160.0)], warmup_s=30)
    assert v["rss_after_warmup_mib"] == 170.0 and v["rss_max_mib"] == 170.0 and v["rss_last_mib"] == 160.0


@pytest.mark.realzk
def test_churn_command_both_systems(tmp_path):
    r = CliRunner().invoke(main, ["bench-churn", "--seconds", "2", "--znodes", "400", "--warmup", "0",
                                  "--zk-heap-mb", "256", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["errors"] == {"coord": 0, "zookeeper": 0}
    for name in ("coord", "zookeeper"):
        v = out["verdict"][name]
        assert v["rounds"] >= 2 and v["rss_max_mib"] > 10, (name, v)   # the start sample and >= 1 round
        assert out["ops_per_s"][name][0]["create"] > 0

