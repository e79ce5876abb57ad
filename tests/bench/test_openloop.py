"""The open-loop generator (coord.bench.openloop), its plots, and `coord bench --open-loop` end to end.

Runs are short and at low rates: these tests check that every scheduled request is sent and answered
and that latencies are counted from the schedule, never that anything is fast.
"""
import array

import pytest

from coord.bench import openloop as ol
from coord.bench.client import Session, parse_target
from coord.jute import records as R


def test_request_names():
    assert ol.request("create", "/r", 7, 100, 10) == ("create", "/r/c000000017")
    assert ol.request("delete", "/r", 7, 100, 10) == ("delete", "/r/c000000017")
    assert ol.request("multi", "/r", 3, 100, 0) == ("multi", "/r/m000000003")
    assert ol.request("getData", "/r", 105, 100, 0) == ("getData", "/r/k0000005")
    # mixed: every fifth request is a setData, the rest getData (80/20)
    kinds = [ol.request("mixed", "/r", g, 100, 0)[0] for g in range(100)]
    assert kinds.count("setData") == 20 and kinds.count("getData") == 80


def test_encoder_templates_match_fresh_encoding():
    enc = ol.Encoder(b"abc")
    for op in ("create", "getData", "setData", "exists", "delete", "multi"):
        first = enc.frame(op, "/r/m000000001", 5)          # builds the template
        again = enc.frame(op, "/r/m000000002", 6)          # from the template
        fresh = ol.Encoder(b"abc").frame(op, "/r/m000000002", 6)
        assert again == fresh != first, op
    multi = enc.frame("multi", "/r/m000000009", 1)
    assert multi.count(b"/r/m000000009") == 3
    hdr, _ = R.MultiHeader._read(multi, 12)
    assert (hdr.type, hdr.done) == (1, False)


def test_quantiles_nearest_rank():
    q = ol.quantiles(array.array("d", [float(i) for i in range(1, 1001)]))   # 1..1000 µs
    assert q["n"] == 1000 and q["p50_ms"] == 0.501 and q["p99_ms"] == 0.991
    assert q["p999_ms"] == 1.0 and q["max_ms"] == 1.0
    assert ol.quantiles([])["p99_ms"] is None


def test_hdr_curve_reaches_the_maximum():
    from coord.bench.hdrplot import curve
    xs, ys = curve([float(i) for i in range(1, 10_001)])
    assert ys[-1] == 10.0 and xs[0] == 1.0
    assert all(b >= a for a, b in zip(ys, ys[1:])) and len(xs) < 400


def test_plot_writes_one_image_per_op(tmp_path):
    from coord.bench.hdrplot import plot_all   # matplotlib: the [test] extra
    lat = array.array("d", [100.0 + i for i in range(2000)])
    paths = plot_all({("getData", 0.5, "coord"): lat, ("getData", 0.5, "zookeeper"): lat,
                      ("multi", 0.25, "coord"): lat}, tmp_path, "t")
    assert sorted(p.rsplit("/", 1)[1] for p in paths) == ["tail-t-getData.png", "tail-t-multi.png"]
    assert all((tmp_path / p.rsplit("/", 1)[1]).read_bytes()[:4] == b"\x89PNG" for p in paths)


def _open_loop(connect_string: str, rate: float = 400.0) -> None:
    """The same harness for coord and ZooKeeper: preload, open-loop getData/exists/setData/multi/mixed/create/delete,
    clean up; every scheduled request answered without error, latencies only from the measured window."""
    host, port = parse_target(connect_string)
    admin = Session(host, port)
    root = "/ol"
    try:
        assert admin.call("create", root, b"")[0] == 0
        for i in range(20):
            assert admin.call("create", f"{root}/k{i:07d}", b"v")[0] == 0
        with ol.OpenLoopClient([(host, port)] * 2, connections=4, procs=2) as cl:
            base = 0
            for op in ("getData", "exists", "setData", "multi", "mixed", "create", "delete"):
                plan = ol.Plan(op, root, rate, warmup_s=0.5, duration_s=1.0, keys=20, base=0)
                res = cl.run(plan)
                assert res.sent == plan.total == 600, op
                assert res.errors == 0, (op, res.first_err)
                # only requests scheduled after the warm-up are measured (~400 of 600)
                assert 350 <= len(res.lat_us) <= 450, (op, len(res.lat_us))
                assert len(res.late_us) == plan.total and min(res.late_us) >= 0
                q = res.quantiles()
                assert 0 < q["p50_ms"] <= q["p99_ms"] <= q["p999_ms"] <= q["max_ms"], op
                base += plan.total
            rate_, done, errors = cl.max_rate(ol.Plan("getData", root, 0, 0, 0, keys=20, count=2000), 8)
            assert done == 2000 and errors == 0 and rate_ > 0
        # create then delete of the same names: nothing is left behind
        assert admin.call("exists", f"{root}/c000000000")[0] != 0
        for i in range(20):
            assert admin.call("delete", f"{root}/k{i:07d}")[0] == 0
        assert admin.call("delete", root)[0] == 0
    finally:
        admin.close()


def test_open_loop_against_coord(coord_server):
    _open_loop(coord_server.connect_string)


@pytest.mark.realzk
def test_open_loop_against_zookeeper(real_zookeeper):
    _open_loop(real_zookeeper.connect_string)


@pytest.mark.slow
@pytest.mark.realzk
def test_bench_open_loop_command(tmp_path):
    """`coord bench --open-loop` starts both systems, preloads a tree, calibrates, runs both at each fraction, plots."""
    import json

    from click.testing import CliRunner

    from coord.cli import main
    r = CliRunner().invoke(main, ["bench", "--open-loop", "--open-ops", "getData,multi", "--fractions", "0.1",
                                  "--duration", "1", "--warmup", "0.5", "-k", "3000", "--keys", "200",
                                  "--connections", "4", "--plot-dir", str(tmp_path), "--json", "--preload", "500",
                                  "--attribute"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert set(out["max_rate"]) == {"coord", "zookeeper"}
    from coord.runtime import server_python
    jit_runtime = "pypy" in (server_python() or "")
    runs = {(x["op"], x["system"]): x for x in out["runs"]}
    assert set(runs) == {(o, s) for o in ("getData", "multi") for s in ("coord", "zookeeper")}
    for k, x in runs.items():
        assert x["errors"] == 0 and x["n"] > 0 and x["p99_ms"] > 0, k
        assert x["rate"] == pytest.approx(0.1 * out["max_rate"]["zookeeper"][k[0]], rel=0.01)
        cpu = x["server_cpu_us"]   # the server did the work: some CPU per request, one thread at most all of it
        assert cpu["user"] + cpu["sys"] > 0 and 0 < cpu["busiest_thread"] <= cpu["user"] + cpu["sys"] + 0.1, k
        # --attribute, both systems: its requests at or over its p99, each charged to a cause or "none"
        a = x["slow_by_cause"]
        assert a["bound_ms"] == x["p99_ms"] and a["slow"] >= 1 and sum(a["by_cause"].values()) == a["slow"]
        assert "stalls_measured" in x, k
        if k[1] == "zookeeper":
            assert set(a["by_cause"]) <= {"fsync", "jvm-pause", "none"}, a
        if k[1] == "coord" and jit_runtime:   # the JIT switch's counters, scraped around the run
            assert set(x["jit"]) == {"compiled", "rearms", "settled_at_end"} and x["jit"]["compiled"] >= 0, x
            assert x["jit"]["settled_at_end"] in (0, 1) and x["jit"]["rearms"] >= 0, x
        else:
            assert "jit" not in x, k
    assert len(out["plots"]) == 2


def test_table_ratios_and_failed_runs():
    from coord.bench.tail import table

    def row(system, op, p99, err=None):
        r = {"system": system, "op": op, "fraction": 0.5, "rate": 1000.0}
        if err:
            return {**r, "error": err}
        return {**r, "p50_ms": 0.5, "p99_ms": p99, "p999_ms": 2 * p99, "max_ms": 4 * p99, "late_p99_ms": 0.05,
                "loadavg": [1.0, 1.0]}
    lines = table({"runs": [row("coord", "getData", 1.0), row("zookeeper", "getData", 2.0),
                            row("coord", "create", 0, "server closed session 0x1"), row("zookeeper", "create", 1.0)]})
    assert lines[2].startswith("| getData | 50% | 1,000 | 0.500 | 1.000 | 2.000 | 4.0 | 0.500 | 2.000 |")
    assert "| 0.50 | 0.50 | 0.50 |" in lines[2]
    assert lines[3] == "| create | 50% | failed: server closed session 0x1 |"


def test_table_shows_medians_over_rounds_and_stalls_summed():
    from coord.bench.tail import stall_table, table

    def row(system, rnd, p99, stalls=None, err=None):
        r = {"system": system, "op": "setData", "fraction": 0.25, "rate": 500.0, "round": rnd}
        if err:
            return {**r, "error": err}
        return {**r, "p50_ms": p99 / 10, "p99_ms": p99, "p999_ms": 2 * p99, "max_ms": 4 * p99, "late_p99_ms": 0.1,
                "loadavg": [float(rnd), 1.0], "rss_mib": 100 + rnd, "stalls": stalls or {}}
    fsync = {"fsync": {"count": 3, "ms": 40.0, "over_10ms": 1}}
    runs = [row("coord", 0, 9.0, fsync), row("zookeeper", 0, 3.0), row("coord", 1, 1.0, fsync),
            row("zookeeper", 1, 2.0), row("coord", 2, 2.0), row("zookeeper", 2, 0, err="timed out")]
    lines = table({"runs": runs})
    # coord: median of 9, 1, 2 is 2; ZooKeeper: of 3 and 2 (the failed round left out) is 2.5
    assert lines[2].startswith("| setData | 25% | 500 | 0.200 | 2.000 | 4.000 | 8.0 | 0.250 | 2.500 |"), lines[2]
    assert "| 0.80 | 0.80 | 0.80 |" in lines[2]
    st = stall_table({"runs": runs})
    assert st[2] == "| setData | 25% | 3 | fsync 6 / 80 / 2 | - | 102 | 101 |", st[2]   # ZooKeeper: no counters


def test_thread_cpu_counts_each_thread_of_a_process():
    """coord.bench.launch.thread_cpu / cpu_per_op: a thread that spins shows as the busiest thread."""
    import os
    import threading
    import time

    from coord.bench.launch import cpu_per_op, thread_cpu

    def spin(stop):
        while not stop.is_set():
            sum(range(1000))
    before = thread_cpu([os.getpid()])
    assert (os.getpid(), os.getpid()) in before   # the main thread's tid is the pid
    stop = threading.Event()
    t = threading.Thread(target=spin, args=(stop,))
    t.start()
    time.sleep(0.5)
    after = thread_cpu([os.getpid()])   # read while the spinner lives: a thread that has ended has no /proc entry
    stop.set()
    t.join()
    per = cpu_per_op(before, after, 1000)   # us per "op" of 1,000 ops: 1 ms of CPU is 1 us/op
    assert per["busiest_thread"] >= 200    # the spinner ran ~0.5 s (at least 0.2 s on a loaded machine)
    assert per["user"] + per["sys"] >= per["busiest_thread"]
    assert cpu_per_op(before, after, 0) == {}
    assert thread_cpu([2 ** 22 + 12345]) == {}   # no such process: nothing, no error
