"""`metrics_ab --mode toggle` end to end, briefly: one real coord server, metrics switched at run time
(coord.aio.metrics_switch), A/B and A/A blocks, scraped while on. A smoke test: it asserts the run
is whole (every op acknowledged, server CPU read, both analyses made, scrapes only while on), never
what the ratios are."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_toggle_mode_runs(tmp_path):
    out = tmp_path / "toggle.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "coord.bench.metrics_ab", "--mode", "toggle", "--rounds", "1",
                        "--ops", "1000", "--phases", "create,getData,delete", "--scrape-every", "0.2",
                        "--json", str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    d = json.loads(out.read_text())
    assert [b["kind"] for b in d["blocks"]] == ["ab", "aa"]
    for kind in ("ab", "aa"):
        assert set(d["analysis"][kind]) == {"create", "getData", "delete"}
        for row in d["analysis"][kind].values():
            assert row["ops_per_server_cpu_s"]["verdict"] == "too few rounds"   # one block: no interval
        for label in ("A", "B"):
            runs = d["runs"][kind][label]
            assert len(runs) == 2
            for run in runs:
                for p in run["phases"].values():
                    assert p["errors"] == 0 and p["ops"] == 1000 and p["server_cpu_s"] > 0
    assert d["scrapes"] > 0
    assert "least server CPU per op" in r.stdout


def test_accounting_bench_runs():
    """`python -m coord.bench.core --accounting` measures something (a positive time per read)."""
    from coord.bench.core import accounting_ns
    assert accounting_ns(calls=20_000, rounds=2, namespaces=2) > 0
