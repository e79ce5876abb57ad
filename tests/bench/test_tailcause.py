"""Charging slow requests to the server stalls they waited on (coord.bench.tailcause) and the servers'
stall trace it reads (COORD_STALL_TRACE, coord.aio.stalls)."""
from __future__ import annotations

import array
import os

import pytest

from coord.aio import stalls
from coord.bench import tailcause


def test_slow_requests_go_to_the_stall_that_overlaps_them_most(tmp_path):
    (tmp_path / "stalls-1.txt").write_text("100.010000 10.000 gc-major\tgc-major 9.9 ms\n100.012000 3.000 fsync\t\n"
                                           "100.500000 5.000 snapshot-fork\n")
    (tmp_path / "stalls-2.txt").write_text("200.000000 4.000 jit\n100.51")   # a cut last line is skipped
    tr = tailcause.read_traces(tmp_path)
    assert [c for _, _, c in tr] == ["gc-major", "fsync", "snapshot-fork", "jit"]
    assert tr[0][0] == 100.0 and tr[0][1] == 100.01
    at = array.array("d", [100.001, 100.0095, 100.3, 100.497, 100.9, 150.0])
    lat = array.array("d", [9000, 3000, 8000, 6000, 100, 7000])   # µs
    a = tailcause.attribute(at, lat, tr, bound_ms=2.0, window=(99.0, 101.0))
    # 100.001+9 ms: gc-major 9 ms vs fsync 1 ms; 100.0095+3 ms: fsync 2.5 vs gc-major 0.5;
    # 100.3: nothing; 100.497: the fork; 100.9 is fast; 150.0 is outside the stalls (jit is at 200)
    assert a["slow"] == 5
    assert a["by_cause"] == {"none": 2, "gc-major": 1, "fsync": 1, "snapshot-fork": 1}
    assert a["stalled_ms"] == {"gc-major": 10.0, "snapshot-fork": 5.0, "fsync": 3.0}   # jit is outside the window
    assert tailcause.summary(a).startswith("5 requests >= 2.00 ms: none 40%, gc-major 20%")


def test_window_counts_only_the_stalls_that_ended_in_the_measured_window():
    # a warm-up's JIT compiles end before the window; a collection that began before it ends inside
    tr = [(4.0, 4.02, "jit"), (9.995, 10.007, "gc-major"), (12.0, 12.003, "fsync"), (12.5, 12.51, "fsync"),
          (20.0, 20.05, "busy")]
    assert tailcause.window_counts(tr, (10.0, 15.0)) == {
        "gc-major": {"count": 1, "ms": 12.0, "over_10ms": 1},
        "fsync": {"count": 2, "ms": 13.0, "over_10ms": 1}}
    assert tailcause.window_counts(tr, (30.0, 40.0)) == {}


def test_zookeeper_stalls_from_its_fsync_warnings_and_safepoint_log(tmp_path):
    """read_zookeeper: the lines ZooKeeper 3.8 and JDK 17 write (formats taken from real logs), their
    wall-clock end times put on CLOCK_MONOTONIC, and nothing under the bound."""
    import time
    from datetime import datetime, timezone
    now = time.time()
    local = datetime.fromtimestamp(now).strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
    utc = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    log = tmp_path / "zookeeper.log"
    log.write_text(
        f"{local} - WARN  [SyncThread:0:o.a.z.s.p.FileTxnLog@402] - fsync-ing the write ahead log in SyncThread:0 "
        "took 448ms which will adversely effect operation latency.File size is 67108880 bytes. See the ZooKeeper "
        "troubleshooting guide\n"
        f"{local} - WARN  [SyncThread:0:o.a.z.s.p.FileTxnLog@402] - fsync-ing the write ahead log in SyncThread:0 "
        "took 1ms which will adversely effect operation latency.File size is 67108880 bytes. See the ZooKeeper "
        "troubleshooting guide\n"
        f"{local} - WARN  [main:o.a.z.s.ServerCnxnFactory@309] - maxCnxns is not configured\n")
    sp = tmp_path / "safepoint.log"
    sp.write_text(
        f'[{utc}] Safepoint "G1CollectForAllocation", Time since last: 541771093 ns, Reaching safepoint: 4096 ns, '
        "Cleanup: 95141 ns, At safepoint: 8172368 ns, Total: 8271605 ns\n"
        f'[{utc}] Safepoint "Cleanup", Time since last: 1000 ns, Reaching safepoint: 4096 ns, Cleanup: 1 ns, '
        "At safepoint: 200000 ns, Total: 204097 ns\n")
    tr = tailcause.read_zookeeper([log, tmp_path / "absent.log"], [sp])
    assert [c for _, _, c in tr] == ["fsync", "jvm-pause"]   # sorted by start: the fsync began 448 ms earlier
    mono = time.monotonic()
    (f0, f1, _), (p0, p1, _) = tr
    assert abs(f1 - mono) < 5 and abs(p1 - mono) < 5, (tr, mono)   # local time and UTC both read right
    assert f1 - f0 == pytest.approx(0.448) and p1 - p0 == pytest.approx(0.008271605)


@pytest.mark.realzk
def test_a_real_zookeeper_writes_down_its_fsyncs_and_pauses(tmp_path):
    """zookeeper_trace_flags on a real ZooKeeper 3.8 (every fsync logged: threshold -1): its log and
    safepoint log hold lines read_zookeeper understands, timed inside the test's window."""
    import subprocess
    import time

    from kazoo.client import KazooClient

    from coord.bench.launch import ZooKeeperProcess, zookeeper_trace_flags
    t0 = time.monotonic()
    zk = ZooKeeperProcess(tmp_path, force_sync=True, jvm_flags=zookeeper_trace_flags(tmp_path, fsync_over_ms=-1))
    with zk:
        c = KazooClient(hosts=zk.connect_string)
        c.start(30)
        try:
            for i in range(20):
                c.create(f"/t{i}", b"x")
            # a short run may reach no safepoint: a full collection is one
            subprocess.run(["jcmd", str(zk.pid), "GC.run"], check=True, capture_output=True, timeout=60)
        finally:
            c.stop()
            c.close()
    t1 = time.monotonic()
    tr = tailcause.read_zookeeper([tmp_path / zk.log_name], [tmp_path / "safepoint.log"], min_ms=0)
    causes = [c for _, _, c in tr]
    assert causes.count("fsync") >= 20 and "jvm-pause" in causes, causes
    assert all(t0 - 1 <= end <= t1 + 1 and start <= end for start, end, _ in tr), (t0, t1, tr[:3])
    assert tailcause.read_zookeeper([tmp_path / zk.log_name], [tmp_path / "safepoint.log"], min_ms=10_000) == []


def test_a_long_stall_that_began_before_the_request_is_found():
    tr = [(10.0, 10.5, "gc-major"), (10.45, 10.452, "busy")]
    a = tailcause.attribute([10.3], [250_000.0], tr, bound_ms=100.0)
    assert a["by_cause"] == {"gc-major": 1}


def test_monitor_appends_every_stall_to_its_trace(tmp_path, monkeypatch):
    monkeypatch.setenv(stalls.TRACE_ENV, str(tmp_path / "t"))
    m = stalls.StallMonitor()
    m.on_fsync(7.5)
    m.on_fsync(1.0)                  # under the threshold: not a stall
    m.record("busy", 3.25)
    (f,) = (tmp_path / "t").glob("stalls-*.txt")
    lines = [ln.split("\t") for ln in f.read_text().splitlines()]
    assert [(ln[0].split()[1:], ln[1]) for ln in lines] == [(["7.500", "fsync"], "txn log write+fdatasync"),
                                                            (["3.250", "busy"], "")]
    lines = [ln[0].split() for ln in lines]
    assert float(lines[0][0]) <= float(lines[1][0])
    os.close(m.trace_fd)


def test_no_trace_without_the_variable(monkeypatch):
    monkeypatch.delenv(stalls.TRACE_ENV, raising=False)
    assert stalls.StallMonitor().trace_fd is None
    assert stalls.open_trace("/proc/no-such-dir/x") is None    # cannot be written: warned, no trace
