"""The JIT switch after the first load's compile storm (coord.aio.jitsettle): the rules on their own,
the switch's states on a fake clock, and a real PyPy server that switches once a load's hot paths are
compiled, stays put while idle, and re-arms for a load of another kind."""
from __future__ import annotations

import asyncio
import time

import pytest

from coord.aio import jitsettle
from coord.aio.jitsettle import JitSettle, SettleRule, StormRule


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


def test_a_storm_is_a_burst_not_a_settled_trickle():
    rule = StormRule(storm_min=20, window_s=5)
    assert not any(rule.observe(t, 500 + t // 5) for t in range(300))       # 1 per 5 s: settled load
    assert [t for t in range(300, 310) if rule.observe(t, 560 + 8 * (t - 300))][0] == 303   # 8/s


class _Loop:
    """Just enough of an event loop for JitSettle: a clock the test moves and one pending callback."""
    def __init__(self):
        self.now, self.pending = 0.0, None

    def time(self):
        return self.now

    def call_later(self, delay, cb):
        self.pending = (self.now + delay, cb)

    def run_until(self, t, compiled, monkeypatch):
        while self.pending and self.pending[0] <= t:
            self.now, cb = self.pending
            self.pending = None
            monkeypatch.setattr(jitsettle, "compiled_count", lambda: compiled(self.now))
            cb()


def test_settles_rearms_on_a_new_load_and_settles_again(monkeypatch):
    applied = []
    monkeypatch.setattr(jitsettle, "set_jit_params", lambda p: applied.append(p) or True)
    def compiled(t):          # start-up 40; a storm of 30/s for 10 s; quiet; at 60 s a new one, 20/s for 5 s
        return 40 + 30 * min(t, 10) + 20 * min(max(t - 60, 0), 5)
    loop = _Loop()
    s = JitSettle(loop, "decay=200", SettleRule(150, 5, 5), storm_min=20)
    s.reset = "decay=40"      # PyPy's default (defaults_of reads it from pypyjit; CPython has none)
    s.start()
    loop.run_until(40, compiled, monkeypatch)
    assert applied == ["decay=200"] and s.applied_at == 15 and s.rearms == 0
    loop.run_until(62, compiled, monkeypatch)
    assert applied == ["decay=200", "decay=40"] and s.applied_at is None and s.rearms == 1
    loop.run_until(120, compiled, monkeypatch)
    assert applied == ["decay=200", "decay=40", "decay=200"] and s.applied_at == 70 and s.settles == 2


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


def test_a_pypy_server_switches_after_a_load_not_before_and_rearms_for_a_new_one(tmp_path):
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

        # a load of another kind after the switch compiles its own storm: PyPy's defaults come back
        # (re-armed), and once that storm is over the switch applies decay=200 again
        deadline = time.monotonic() + 60
        while srv.log_text().count("JIT settled") < 2:
            if time.monotonic() > deadline:
                pytest.fail("no re-arm and second switch 60 s into a new load:\n" + srv.log_text()[-2000:])
            if "JIT re-armed" not in srv.log_text():
                ops = [zk.create_async("/s/q-", b"", ephemeral=True, sequence=True) for _ in range(100)]
                ops += [zk.get_children_async("/s", include_data=True) for _ in range(20)]
                ops += [zk.get_acls_async(f"/s/n{k}") for k in range(100)]
                ops += [zk.sync_async("/s") for _ in range(50)]
                ops += [zk.exists_async(f"/s/w{k}", watch=lambda e: None) for k in range(100)]
                for op in ops:
                    op.get(timeout=10)
            else:
                time.sleep(0.5)
        log_text = srv.log_text()
        assert log_text.index("JIT re-armed") < log_text.rindex("JIT settled"), log_text[-2000:]
        page = get(metrics).decode()
        assert "coord_jit_rearms 1.0" in page, page[-3000:]
        assert "coord_jit_settled 1.0" in page
