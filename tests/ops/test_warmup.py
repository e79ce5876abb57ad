"""Server runtime policies for the tail: the JIT warm-up (coord.aio.warmup: the scratch core serves every op
of the request path; a server with it on serves normally) and the thread switch interval."""
from coord.aio.warmup import warm_up


def test_scratch_core_answers_every_request():
    # 6 ops x 8 connections x (ops // 6 // 8) requests each, every one answered, none with an error:
    # a failed request warms an error path (its multi once held an exists and never reached prep)
    assert warm_up(4800, connections=8, depth=16) == (4800, 0)


def test_server_with_warm_up_serves(tmp_path):
    from coord.runtime import server_python
    from tests.support.coord_server import CoordProcess
    from tests.support.kazoo_clients import connected
    with CoordProcess(tmp_path / "c", env={"COORD_JIT_WARMUP_OPS": "3000"}) as srv, \
            connected(srv.connect_string) as zk:
        zk.create("/w", b"1")
        assert zk.get("/w")[0] == b"1"
        # the scratch tree is not the served one
        assert sorted(zk.get_children("/")) == ["w", "zookeeper"]
        if server_python():   # on PyPy the warm-up ran and said so
            srv.wait_for_log("JIT warm-up: ", 60)
            # 3000 // 6 ops // 8 connections = 62 each: 2976 requests
            assert "JIT warm-up: 2976 scratch requests" in srv.log_text(), srv.log_text()[-2000:]


def test_switch_interval(monkeypatch):
    """The server's thread switch interval (coord.runtime.tune_threads): default, override, bad value."""
    import sys

    from coord.runtime import SWITCH_INTERVAL_MS, tune_threads
    old = sys.getswitchinterval()
    try:
        monkeypatch.delenv("COORD_SWITCH_INTERVAL_MS", raising=False)
        assert tune_threads() == SWITCH_INTERVAL_MS
        assert abs(sys.getswitchinterval() - SWITCH_INTERVAL_MS / 1000) < 1e-9
        monkeypatch.setenv("COORD_SWITCH_INTERVAL_MS", "5")
        assert tune_threads() == 5.0
        monkeypatch.setenv("COORD_SWITCH_INTERVAL_MS", "fast")
        assert tune_threads() == SWITCH_INTERVAL_MS
    finally:
        sys.setswitchinterval(old)
