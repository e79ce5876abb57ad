"""The connection throttle (ZooKeeper's BlueThrottle, `connection_throttle_*`), differential against
real ZooKeeper 3.8 with the same zoo.cfg: a ConnectRequest that finds too few tokens is closed with
no ConnectResponse and counts in connection_rejected; weights make a new global session cost 3 and
a reconnect 2; BLUE's drop probability rises while the bucket is empty (mntr shows it). The refill
is made slow enough (10 min a token) that no token comes back during a test."""
from __future__ import annotations

import time

import pytest

from tests.compat.rawclient import RawClient
from tests.limits.conftest import start_limits_pair
from tests.support.real_zk import four_letter

pytestmark = pytest.mark.realzk

SLOW_FILL = {"connection_throttle_fill_time": "600000", "connection_throttle_fill_count": "1"}


def _connect(host, port, sid=0, passwd=b"\0" * 16):
    c = RawClient(host, port, session_id=sid, passwd=passwd)
    try:
        c.start()
    except Exception:
        return None
    return c


def _mntr(host, port) -> dict:
    rows = dict(ln.split("\t", 1) for ln in four_letter(host, port, "mntr").splitlines() if "\t" in ln)
    return {k: rows.get(k) for k in ("zk_connection_rejected", "zk_connection_drop_probability")}


def _run(pair, scenario):
    out = {}
    for name, host, port in pair.targets:
        clients = []
        out[name] = scenario(host, port, clients)
        out[name]["mntr"] = _mntr(host, port)
        for c in clients:
            if c is not None:
                c.close_socket()
    return out["zk"], out["coord"]


# each case starts its own pair: the token bucket runs by default, weights and BLUE with -m slow
@pytest.mark.parametrize("case", ["tokens", pytest.param("weighted", marks=pytest.mark.slow),
                                  pytest.param("blue", marks=pytest.mark.slow)])
def test_connection_throttle(tmp_path, case):
    cfg = dict(SLOW_FILL, connection_throttle_tokens="3")
    if case == "weighted":
        cfg.update(connection_throttle_tokens="2", connection_throttle_weight_enabled="true")
    if case == "blue":
        cfg.update(connection_throttle_tokens="1", connection_throttle_freeze_time="0",
                   connection_throttle_drop_increase="1.0")
    pair = start_limits_pair(tmp_path, cfg)
    try:
        def scenario(host, port, clients):
            got = []
            for _ in range(4):
                clients.append(_connect(host, port))
                got.append(clients[-1] is not None)
                time.sleep(0.01)   # BLUE's freeze period is "more than 0 ms since the last"
            out = {"new": got}
            if case == "weighted":
                first = clients[0]
                first.close_socket()
                # 6 tokens: two new sessions took 3 each; a reconnect (2) finds none left
                again = _connect(host, port, first.session_id, first.passwd)
                clients.append(again)
                out["renew"] = again is not None
            return out
        zk, coord = _run(pair, scenario)
    finally:
        pair.stop()
    assert zk == coord
    expect = {"tokens": [True] * 3 + [False], "weighted": [True, True, False, False],
              "blue": [True, False, False, False]}[case]
    assert zk["new"] == expect
    refused = expect.count(False) + (1 if case == "weighted" else 0)
    assert zk["mntr"]["zk_connection_rejected"] == str(refused)
    assert float(zk["mntr"]["zk_connection_drop_probability"]) == (1.0 if case == "blue" else 0.0)
