"""`metrics_ab --mode icount` (coord.bench.metrics_icount): a real coord server under valgrind's
callgrind, its instructions counted per phase and per /metrics scrape. Missing valgrind: a skip with
the reason, a failure under CI=1 (scripts/setup.sh installs it)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from coord.bench import metrics_icount as mi
from coord.bench import phases as ph
from coord.bench.metrics_toggle import ToggledServer
from tests.ops.prom import need

ROOT = Path(__file__).resolve().parents[2]


class CPythonCallgrindServer(mi.CallgrindServer):
    """The server on this (CPython) interpreter: no JIT, so its counts repeat run after run, where
    PyPy's need tens of thousands of ops per phase to settle (the slow test below runs PyPy)."""
    interpreter = sys.executable


@pytest.fixture
def counted(tmp_path):
    need(mi.missing() is None, "valgrind (callgrind)")
    srv = ToggledServer(tmp_path / "s", False, process=CPythonCallgrindServer, extra_cfg=mi.QUIET_CFG,
                        extra_env=mi.SERVER_ENV, start_wait=300, switch_timeout=120)
    srv.start()
    try:
        yield srv, mi.InstructionCounter(srv.proc.pid, srv.workdir)
    finally:
        srv.stop()


def test_counts_repeat_and_see_the_metrics(counted):
    """Two runs of the same phases in the same state count within 5% of each other per op (a bracket
    that also counted the idle waits, the set-up or another run would not); a /metrics scrape with
    metrics on costs many times a GET answered 503 with them off (the switch really removes work)."""
    srv, count = counted
    cfg = ph.BenchConfig(ops=1000, phases=("create", "getData", "delete"), latency=False)
    srv.set(False)
    runs = [{op: p.server_cpu_s / p.ops for op, p in ph.run(srv.proc.target, cfg, count).phases.items()}
            for _ in range(3)]                                      # the first one fills caches, imports
    for op in cfg.phases:
        a, b = runs[1][op], runs[2][op]
        assert a > 1000 and b > 1000, runs
        assert 1 / 1.05 < a / b < 1.05, (op, runs)          # seen: within 0.3% (getData) to 3.2% (delete)
    assert runs[2]["getData"] < runs[2]["create"], runs    # a read does less than a logged write
    scrape = mi.scrape_ir(srv, count, scrapes=3, idle_rate=0.0)
    assert scrape["on"]["status"] == 200 and scrape["off"]["status"] == 503
    assert scrape["on"]["bytes"] > 10_000
    assert scrape["on"]["ir_per_get"] > 5 * scrape["off"]["ir_per_get"] > 0, scrape


@pytest.mark.slow
def test_icount_mode_end_to_end(tmp_path):
    """The command as documented (PyPy server), at a tiny size: both analyses, the idle rates, a
    counted scrape and the native calibration (no ratio asserted: at 2,000 ops the JIT is cold)."""
    need(mi.missing() is None, "valgrind (callgrind)")
    out = tmp_path / "icount.json"
    r = subprocess.run([sys.executable, "-m", "coord.bench.metrics_ab", "--mode", "icount", "--rounds", "1",
                        "--ops", "2000", "--phases", "create,getData,delete", "--warmup", "2", "--idle-seconds", "2",
                        "--scrapes", "2", "--native-runs", "1", "--json", str(out)],
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    d = json.loads(out.read_text())
    assert set(d["analysis"]) == {"create", "getData", "delete"}
    for row in d["analysis"].values():
        for kind in ("ab", "aa"):
            assert row[kind]["A"]["least"] > 0 and row[kind]["B"]["least"] > 0 and row[kind]["A"]["n"] == 2
        assert row["verdict"] == "too few runs"
        assert 0 <= row["idle_share"] < 1
    assert len(d["idle_ir_per_s"]["on"]) == len(d["idle_ir_per_s"]["off"]) == 2
    assert d["scrape"]["tree"]["on"]["ir_per_get"] > d["scrape"]["tree"]["off"]["ir_per_get"]
    assert d["native"]["ns_per_ir_all"] > 0
    assert "instructions per op under callgrind" in r.stdout


def test_core_bench_counts_the_read_accounting(tmp_path):
    """`python -m coord.bench.core --metrics-cost R --icount` re-runs itself under callgrind and
    prints instructions per op, metrics off and on, per phase. On CPython (no JIT: counts repeat) a
    read with the accounting on executes more instructions than with it off, and a logged create
    many more than a read: the clock counts this process's work, not wall time."""
    need(mi.missing() is None, "valgrind (callgrind)")
    r = subprocess.run([sys.executable, "-m", "coord.bench.core", "--metrics-cost", "2", "--ops", "400",
                        "--connections", "4", "--icount", "--phases", "create,getData,exists"],
                       env=dict(os.environ, PYTHONPATH=str(ROOT), COORD_SERVER_PYTHON="", TMPDIR=str(tmp_path)),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = {m[0]: (float(m[1]), float(m[2])) for m in
            re.findall(r"^(\w+)\s+off\s+([\d.]+) Ir/op\s+on\s+([\d.]+) Ir/op", r.stdout, re.M)}
    assert set(rows) == {"create", "getData", "exists"}, r.stdout
    for op in ("getData", "exists"):
        off, on = rows[op]
        assert 1000 < off < on, (op, rows)
    assert rows["create"][0] > 2 * rows["getData"][0], rows


def test_fixed_state_analysis():
    """metrics_fixed.analyse_fixed: each state's least over its two processes, the floor from the
    two processes of a state, and the verdict on on/off +- floor."""
    from coord.bench.metrics_fixed import analyse_fixed
    runs = {"on-1": {"getData": [5100.0, 5050.0]}, "on-2": {"getData": [5080.0, 5060.0]},
            "off-1": {"getData": [4900.0, 4950.0]}, "off-2": {"getData": [4910.0, 4920.0]}}
    r = analyse_fixed(runs, rounds=3)["getData"]
    assert (r["on"], r["off"], r["on_off"]) == (5050, 4900, round(4900 / 5050, 4))
    assert r["within"] == {"on": round(5060 / 5050, 4), "off": round(4910 / 4900, 4)}
    assert r["verdict"] == "unresolved"        # 0.970 +- 0.002 straddles 0.97
    runs["on-1"]["getData"] = [4990.0]
    runs["on-2"]["getData"] = [4995.0]
    assert analyse_fixed(runs, rounds=3)["getData"]["verdict"] == "within"
    assert analyse_fixed(runs, rounds=2)["getData"]["verdict"] == "too few runs"


@pytest.mark.slow
def test_fixed_state_mode_end_to_end(tmp_path):
    """`metrics_ab --mode icount --fixed-state` on CPython servers (counts repeat), tiny: four
    servers, each in its state from the start; a read with metrics on counts more than off."""
    need(mi.missing() is None, "valgrind (callgrind)")
    out = tmp_path / "fixed.json"
    r = subprocess.run([sys.executable, "-m", "coord.bench.metrics_ab", "--mode", "icount", "--fixed-state",
                        "--rounds", "2", "--ops", "600", "--phases", "create,getData", "--warmup", "1",
                        "--json", str(out)],
                       env=dict(os.environ, PYTHONPATH=str(ROOT), COORD_SERVER_PYTHON=""),
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    d = json.loads(out.read_text())
    assert d["mode"] == "icount-fixed" and set(d["analysis"]) == {"create", "getData"}
    for lab in ("on-1", "on-2", "off-1", "off-2"):
        assert len(d["runs"][lab]["getData"]) == 2 and min(d["runs"][lab]["getData"]) > 1000
    g = d["analysis"]["getData"]
    assert g["on"] > g["off"], g
    assert "--fixed-state" in r.stdout
