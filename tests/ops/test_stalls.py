"""Stall attribution (coord.aio.stalls): long loop turns get the cause that explains most of them, and
a real server exports and logs them."""
from __future__ import annotations

import asyncio
import os
import time

from coord.aio import stalls, txnlog
from coord.aio.stalls import StallMonitor
from coord.aio.txnlog import TxnLog
from tests.ops.prom import PROVIDER, get
from tests.storage.helpers import TxnMaker
from tests.support.real_zk import free_port


def test_attribution_picks_the_largest_explained_part():
    m = StallMonitor()
    m.jit_base = float("inf")   # no JIT time in these turns
    t0 = 100.0
    m.gc_events.append((t0 + 0.004, "major", 4.0, "SWEEPING"))
    m.idle_steps.append((t0 + 0.004, 4.1))   # coord.aio.gcpacer ran that step while the loop was idle
    m._turn(t0, t0 + 0.005, 0.005)
    m.gc_events.append((t0 + 1.003, "minor", 2.5, ""))
    m._turn(t0 + 1.0, t0 + 1.003, 0.003)
    m.note("snapshot-fork", t0 + 2.0, t0 + 2.008)
    m._turn(t0 + 2.0, t0 + 2.009, 0.009)
    m._turn(t0 + 3.0, t0 + 3.010, 0.001)     # 9 of 10 ms off the CPU: the machine, not the server
    m._turn(t0 + 4.0, t0 + 4.003, 0.003)     # nothing explains it
    m.note("hugepages", t0 + 5.0)            # a pass still running
    m._turn(t0 + 5.001, t0 + 5.004, 0.003)
    m._turn(t0 + 5.101, t0 + 5.104, 0.0005)  # during the pass, but measured: off the CPU
    got = [r[1] for r in m.recent]
    assert "[major steps: SWEEPING 4.0 ms] [idle-time steps: 1, 4.1 ms]" in m.recent[0][3], m.recent[0]
    assert "major steps" not in m.recent[1][3] and "idle-time" not in m.recent[1][3]
    assert got == ["gc-major", "gc-minor", "snapshot-fork", "preempted", "busy", "hugepages", "preempted"]
    by = m.stalls_by_cause()
    assert by["gc-major"][0] == 1 and abs(by["gc-major"][2] - 5.0) < 1e-6
    m.on_fsync(1.0)
    m.on_fsync(7.5)
    assert m.stalls_by_cause()["fsync"] == (1, 7.5, 7.5, 0)
    m.on_fsync(12.0)
    assert m.stalls_by_cause()["fsync"] == (2, 19.5, 12.0, 1)


def test_monitor_sees_a_long_turn_of_a_real_loop():
    m = StallMonitor()
    m.install_gc()

    async def main():
        m.install(asyncio.get_running_loop())
        await asyncio.sleep(0.01)
        t = time.perf_counter()
        while time.perf_counter() - t < 0.008:   # an 8 ms turn of work
            pass
        await asyncio.sleep(0.01)
    try:
        asyncio.run(main())
    finally:
        m.uninstall()
    long = [r for r in m.recent if r[2] >= 8.0]
    assert long, list(m.recent)
    assert long[0][1] in ("busy", "preempted", "gc-minor", "gc-major"), long


def test_sampling_names_where_a_busy_turn_was_spent(monkeypatch):
    """COORD_STALL_SAMPLE_MS: a long turn's detail lists the frames its SIGPROF samples fell in."""
    monkeypatch.setenv("COORD_STALL_SAMPLE_MS", "0.5")
    m = StallMonitor()
    m.jit_base = float("inf")

    def spin_for_a_while():
        t = time.thread_time()
        while time.thread_time() - t < 0.03:   # 30 ms of CPU in one turn
            pass

    async def main():
        m.install(asyncio.get_running_loop())
        await asyncio.sleep(0.01)
        spin_for_a_while()
        await asyncio.sleep(0.01)
    try:
        asyncio.run(main())
    finally:
        m.stop_sampling()
        m.uninstall()
    long = [r for r in m.recent if r[2] >= 25.0]
    assert long, list(m.recent)
    assert "; at " in long[0][3] and "spin_for_a_while" in long[0][3], long[0][3]


def test_server_exports_and_logs_stalls(tmp_path):
    """A multi of 3,000 creates is one long turn of a fresh (not yet JIT-compiled) server."""
    from kazoo.client import KazooClient

    from tests.support.coord_server import CoordProcess
    port = free_port()
    srv = CoordProcess(tmp_path / "c", extra_cfg={"metricsProvider.className": PROVIDER,
                                                  "metricsProvider.httpHost": "127.0.0.1",
                                                  "metricsProvider.httpPort": str(port)})
    srv.start()
    zk = KazooClient(hosts=srv.connect_string)
    try:
        zk.start(timeout=30)
        tx = zk.transaction()
        for i in range(3000):
            tx.create(f"/s{i}", b"x" * 200)
        assert all(r == f"/s{i}" for i, r in enumerate(tx.commit()))
        deadline = time.monotonic() + 20
        while True:
            text = get(f"http://127.0.0.1:{port}/metrics").decode()
            counts = [float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
                      if ln.startswith("coord_stall_ms_count{")]
            if sum(counts) >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert sum(counts) >= 1, [ln for ln in text.splitlines() if ln.startswith("coord_stall")]
        assert "# TYPE coord_stall_max_ms gauge" in text and "# TYPE coord_stalls_over_10ms counter" in text
        assert "stall " in srv.log_text()
    finally:
        zk.stop()
        zk.close()
        srv.stop()


def test_served_on_pypy_with_the_gc_settings(coord_server):
    """The server's PyPy GC settings (coord.runtime.GC_ENV) reach the re-executed server process."""
    import pytest

    from coord.runtime import GC_ENV, server_python
    if not server_python():
        if __import__("os").environ.get("CI"):
            pytest.fail("CI without the PyPy server runtime: scripts/setup.sh should have built .venv-pypy")
        pytest.skip("no server runtime configured (scripts/setup.sh sets up PyPy)")
    env = dict(kv.split("=", 1) for kv in
               open(f"/proc/{coord_server.proc.pid}/environ").read().split("\0") if "=" in kv)
    for k, v in GC_ENV.items():
        assert env.get(k) == v, (k, env.get(k))


def test_an_fsync_stall_is_traced_where_its_write_ended_not_where_the_loop_saw_it(tmp_path, monkeypatch):
    """The sync thread's write took 5 ms; the loop was busy for 60 ms more before it took the report.
    The trace must put the stall at the write's end: `coord bench --attribute` joins the trace with
    each slow request's window, and a stall placed at the report would take the blame for requests
    that waited on the busy loop."""
    m = StallMonitor()
    m.trace_fd = stalls.open_trace(str(tmp_path / "trace"))
    monkeypatch.setattr(stalls, "MONITOR", m)
    real = txnlog.write_all
    ended = []

    def slow(fd, data):
        time.sleep(0.005)
        n = real(fd, data)
        ended.append(time.monotonic())
        return n

    monkeypatch.setattr(txnlog, "write_all", slow)

    async def run():
        log = TxnLog(tmp_path / "log", force_sync=True)
        log.start(0)
        mk = TxnMaker()
        log.append([mk.create("/a", b"x")])
        time.sleep(0.06)          # the loop busy past the write: the report waits for it
        await log.drain()
        log.close()
    asyncio.run(run())
    os.close(m.trace_fd)
    lines = (tmp_path / "trace" / f"stalls-{os.getpid()}.txt").read_text().splitlines()
    fsync = [line.split("\t")[0].split() for line in lines if " fsync\t" in line]
    assert len(fsync) == 1 and float(fsync[0][1]) >= 5.0, lines
    end = float(fsync[0][0])
    assert ended and abs(end - ended[-1]) < 0.01, (end, ended)   # at the write, not ~60 ms later
    detail = [line.split("\t", 1)[1] for line in lines if " fsync\t" in line][0]
    # what the batch did: its size, the new file and the preallocation the first write made
    assert "bytes, new file, preallocated 64 MiB" in detail, detail


def test_an_fsync_stall_names_the_background_windows_it_overlapped():
    """A snapshot child writing its file shares the disk with the txn log: a slow log write that overlapped
    it says so. Such a window is never a loop turn's cause by its overlap (it is not a wait of the loop)."""
    m = StallMonitor()
    m.jit_base = float("inf")
    now = time.monotonic()
    m.note("snapshot-child", now - 1.0, now - 0.5)
    m.on_fsync(30.0, now - 0.49)             # its write began 20 ms before the child ended
    m.on_fsync(30.0, now - 0.1, "100 bytes")  # after the child
    m.note("snapshot-child", now - 0.05)     # a child still writing
    m.on_fsync(12.0, now)
    m._turn(now - 0.045, now - 0.040, 0.005)  # a 5 ms turn of CPU inside the window: busy, not the child
    details = [r[3] for r in m.recent]
    assert details[0] == "txn log write+fdatasync, during snapshot-child", details
    assert details[1] == "txn log write+fdatasync, 100 bytes", details
    assert details[2].endswith("during snapshot-child"), details
    assert m.recent[3][1] == "busy", m.recent[3]


def test_an_fsync_stall_soon_after_retention_freed_files_says_so():
    """Freed blocks go at the file system's next commit (and are trimmed with `discard`): a slow log
    write within stalls.FREED_S of retention's unlinks names them; a later one does not."""
    m = StallMonitor()
    now = time.monotonic()
    m.on_freed(48 << 20, now - 0.3)
    m.on_fsync(30.0, now, "100 bytes")
    m.on_fsync(30.0, now + stalls.FREED_S + 1)
    details = [r[3] for r in m.recent]
    assert details[0] == "txn log write+fdatasync, 100 bytes, 0.3 s after retention freed 48 MiB", details
    assert details[1] == "txn log write+fdatasync", details


def test_retention_reports_what_it_freed(tmp_path, monkeypatch):
    """datadir.purge tells the monitor the bytes it unlinked (a recycled log frees nothing)."""
    from coord.aio import datadir
    got = []
    m = StallMonitor()
    monkeypatch.setattr(m, "on_freed", lambda n, at: got.append(n))
    monkeypatch.setattr(stalls, "active", lambda: m)
    for name in ("snapshot.1", "snapshot.2", "snapshot.3", "snapshot.4"):
        (tmp_path / name).write_bytes(b"s" * 8192)
    for name in ("log.1", "log.2"):
        (tmp_path / name).write_bytes(b"\0" * 65536)
    gone = datadir.purge(tmp_path, tmp_path, 3)
    assert [p.name for p in gone] == ["snapshot.1", "log.1"]
    assert got == [8192 + 65536]
