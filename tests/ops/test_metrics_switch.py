"""The bench-only metrics switch (coord.aio.metrics_switch, for `metrics_ab --mode toggle`): off, a
server started with the Prometheus provider must do what one started without it does (no request
accounting, no txn-log hook, no GC listener, no scrape work, no mntr rows of the provider), and on
again it must continue the same counters. coord-only: ZooKeeper has no such switch to compare with."""
from __future__ import annotations

import asyncio
import signal
import time

import pytest

from coord.aio import metrics as metrics_mod
from coord.aio import metrics_switch
from coord.aio.server import CoordServer
from coord.aio.zoocfg import parse
from tests.ops.prom import PROVIDER, get, samples, status
from tests.support.coord_server import CoordProcess
from tests.support.real_zk import four_letter, free_port

NS = ("read_per_namespace_count", "read_per_namespace_sum", "write_per_namespace_count", "write_per_namespace_sum")


def test_switch_undoes_what_metrics_add(tmp_path):
    cfg = parse(f"dataDir={tmp_path}\nclientPort=0\nclientPortAddress=127.0.0.1\nforceSync=no\n"
                "admin.enableServer=false\nmetricsProvider.className=" + metrics_mod.PROMETHEUS_PROVIDER + "\n"
                "metricsProvider.httpHost=127.0.0.1\nmetricsProvider.httpPort=0\n")
    loop = asyncio.new_event_loop()
    srv = CoordServer(cfg)
    try:
        loop.run_until_complete(srv.start())
        m = srv.metrics

        def state():
            return (srv.metrics is m, srv.core.request_stats is m.requests, srv.core.tree.write_stats is m.requests,
                    srv.txnlog.on_batch == m.on_log_batch, m.gc.installed, m.enabled)
        assert state() == (True,) * 6
        metrics_switch.switch(srv, m, False)
        assert state() == (False,) * 6
        assert srv.core.request_stats is None and srv.core.tree.write_stats is None and srv.txnlog.on_batch is None
        metrics_switch.switch(srv, m, False)                # twice off: still off, nothing removed twice
        assert state() == (False,) * 6
        metrics_switch.switch(srv, m, True)
        assert state() == (True,) * 6
        assert srv.metrics is m
    finally:
        loop.run_until_complete(srv.stop())
        loop.close()


def _page(url: str) -> dict[str, float]:
    p = samples(get(url).decode())
    return {k: p.get(f'{k}{{key="nsw",}}') for k in NS}


def _until(url: str, code: int) -> None:
    deadline = time.monotonic() + 30
    while status(url) != code:
        assert time.monotonic() < deadline, f"/metrics never answered {code}"
        time.sleep(0.05)


def test_signals_switch_a_real_server(tmp_path):
    """SIGUSR2 / SIGUSR1 on a `coord serve` started with COORD_BENCH_METRICS_SWITCH=1: requests made
    while off are not counted, /metrics answers 503 and mntr loses the provider's rows; on again,
    the counts continue from where they stopped."""
    from kazoo.client import KazooClient
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    srv = CoordProcess(tmp_path / "c", env={metrics_switch.ENV: "1"}, extra_cfg={
        "metricsProvider.className": PROVIDER, "metricsProvider.httpHost": "127.0.0.1",
        "metricsProvider.httpPort": str(port)})
    srv.start()
    assert "bench switch installed" in srv.log_text()
    zk = KazooClient(hosts=srv.connect_string, timeout=20)
    try:
        zk.start(timeout=30)
        zk.create("/nsw", b"")                              # write 4
        zk.create("/nsw/a", b"x" * 10)                      # write 6 + 10
        zk.get("/nsw/a")                                    # read 6 + 10 + 68
        before = _page(url)
        assert before == {"read_per_namespace_count": 1, "read_per_namespace_sum": 84,
                          "write_per_namespace_count": 2, "write_per_namespace_sum": 20}, before
        assert "zk_read_per_namespace_count" in four_letter("127.0.0.1", srv.client_port, "mntr", 5.0)

        srv.proc.send_signal(signal.SIGUSR2)
        _until(url, 503)
        zk.set("/nsw/a", b"y" * 20)
        zk.get("/nsw/a")
        assert "zk_read_per_namespace_count" not in four_letter("127.0.0.1", srv.client_port, "mntr", 5.0)

        srv.proc.send_signal(signal.SIGUSR1)
        _until(url, 200)
        assert _page(url) == before                         # nothing counted while off
        zk.get("/nsw/a")                                    # read 6 + 20 + 68
        assert _page(url) == {**before, "read_per_namespace_count": 2, "read_per_namespace_sum": 84 + 94}
        assert srv.proc.poll() is None
    finally:
        zk.stop()
        zk.close()
        srv.stop()


@pytest.mark.parametrize("env", [{}, {metrics_switch.ENV: "0"}])
def test_no_switch_unless_asked(tmp_path, env):
    """Without the env var the server installs no handler (SIGUSR1 keeps its default: it would end
    the process), so the bench switch exists only where a bench started the server for it."""
    port = free_port()
    srv = CoordProcess(tmp_path / "c", env=env, extra_cfg={
        "metricsProvider.className": PROVIDER, "metricsProvider.httpHost": "127.0.0.1",
        "metricsProvider.httpPort": str(port)})
    srv.start()
    try:
        assert "bench switch installed" not in srv.log_text()
        assert status(f"http://127.0.0.1:{port}/metrics") == 200
    finally:
        srv.stop()
