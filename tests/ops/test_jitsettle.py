"""The JIT switch after the first load's compile storm (coord.aio.jitsettle): the rule on its own, and
a real PyPy server that switches once a load's hot paths are compiled and stays put while idle."""
from __future__ import annotations

import asyncio
import time

import pytest

from coord.aio import jitsettle
from coord.aio.jitsettle import SettleRule


def _feed(rule: SettleRule, samples) -> list[float]:
    return [t for t, n in samples if rule.observe(t, n)]


def test_an_idle_server_never_settles():
    # start-up compiles, then nothing: below min_compiled however long it stays quiet
    rule = SettleRule(min_compiled=150, quiet_s=5, quiet_max=5)
    assert _feed(rule, [(t, 40 + min(t, 10)) for t in range(600)]) == []


def test_settles_once_the_storm_is_over():
    # 40 compiled at start, a storm of 30/s for 10 s, then 1 every 2 s
    def compiled(t):
        return 40 + 30 * min(t, 10) + max(0, t - 10) // 2
    rule = SettleRule(min_compiled=150, quiet_s=5, quiet_max=5)
    assert _feed(rule, [(t, compiled(t)) for t in range(60)]) == [15]
    assert rule.observe(61, 10_000) is False      # once only


def test_a_steady_trickle_over_the_limit_keeps_waiting():
    rule = SettleRule(min_compiled=150, quiet_s=5, quiet_max=5)
    assert _feed(rule, [(t, 200 + 2 * t) for t in range(100)]) == []   # 10 per 5 s: still compiling


def test_the_quiet_window_must_be_covered():
    # over min_compiled at the first sample after start is not settled: nothing shows it quiet yet
    rule = SettleRule(min_compiled=0, quiet_s=5, quiet_max=5)
    assert _feed(rule, [(0, 0), (1, 0), (4.9, 0)]) == []
    assert rule.observe(5.0, 0) is True


def test_counts_from_the_first_sample():
    # a server that compiled 500 before the switch started sampling needs min_compiled more
    rule = SettleRule(min_compiled=100, quiet_s=2, quiet_max=0)
    assert _feed(rule, [(0, 500), (1, 500), (2, 500), (3, 500)]) == []
    assert _feed(rule, [(4, 600), (5, 600), (6, 600)]) == [6]


def test_off_and_cpython(monkeypatch):
    loop = asyncio.new_event_loop()
    try:
        monkeypatch.setenv(jitsettle.ENV, "off")
        assert jitsettle.install_from_env(loop) is None
        monkeypatch.delenv(jitsettle.ENV)
        monkeypatch.setenv("COORD_JIT_PARAMS_LATER", "10:decay=200")   # the timed switch wins
        assert jitsettle.install_from_env(loop) is None
        monkeypatch.delenv("COORD_JIT_PARAMS_LATER")
        if jitsettle.compiled_count() is None:                        # CPython: no JIT, nothing to switch
            assert jitsettle.install_from_env(loop) is None
    finally:
        loop.close()


def test_a_pypy_server_switches_after_a_load_and_not_before(tmp_path):
    from tests.ops.test_gcpacer import _runtime
    from tests.support.coord_server import CoordProcess
    from tests.support.kazoo_clients import connected
    from tests.ops.prom import PROVIDER, get
    from tests.support.real_zk import free_port
    _runtime()                                    # skips without PyPy (fails under CI=1)
    port = free_port()
    metrics = f"http://127.0.0.1:{port}/metrics"
    with CoordProcess(tmp_path / "c", extra_cfg={"metricsProvider.className": PROVIDER,
                                                 "metricsProvider.httpHost": "127.0.0.1",
                                                 "metricsProvider.httpPort": str(port)}) as srv, \
            connected(srv.connect_string) as zk:
        time.sleep(jitsettle.QUIET_S + 2)
        assert "JIT settled" not in srv.log_text(), "switched with no load"
        assert "coord_jit_settled 0.0" in get(metrics).decode()
        zk.create("/s", b"")
        deadline = time.monotonic() + 60
        i = 0
        while "JIT settled" not in srv.log_text():
            if time.monotonic() > deadline:
                pytest.fail("no switch 60 s into a load:\n" + srv.log_text()[-2000:])
            if i < 30_000:                        # a load, then quiet: the storm ends
                ops = [zk.create_async(f"/s/n{i + k}", b"x") for k in range(200)]
                ops += [zk.set_async(f"/s/n{i + k}", b"y") for k in range(200)]
                ops += [zk.get_async(f"/s/n{i + k}") for k in range(200)]
                ops += [zk.exists_async(f"/s/n{i + k}") for k in range(200)]
                ops += [zk.delete_async(f"/s/n{i + k}") for k in range(100, 200)]
                ops.append(zk.get_children_async("/s"))
                for op in ops:
                    op.get(timeout=10)
                t = zk.transaction()
                t.set_data(f"/s/n{i}", b"y")
                t.check(f"/s/n{i}", 2)
                t.commit()
                i += 200
            else:
                time.sleep(0.5)
        line = next(ln for ln in srv.log_text().splitlines() if "JIT settled" in ln)
        assert f"{jitsettle.PARAMS} applied" in line, line
        page = get(metrics).decode()
        assert "coord_jit_settled 1.0" in page and "coord_jit_compiled " in page, page[-3000:]
        assert zk.get("/s/n0")[0] == b"y" and not zk.exists("/s/n100")
