"""Local sessions stay on their server and expire there: a reconnect to another member is refused
(the session is unknown outside its server), an idle local session is expired by its own server (the
connection closed, zk_local_sessions back down) and cannot be resumed. Same observations on coord and
real ZooKeeper 3.8."""
from __future__ import annotations

import time

import pytest

from tests.compat.rawclient import RawClient
from tests.support import real_zk
from tests.support.ensemble import Ensemble, coord_ensemble_available


def _local(m) -> int:
    return int(m.mntr()["zk_local_sessions"])


def _scenario(workdir, kind: str) -> dict:
    ens = Ensemble(workdir, 3, kind=kind, force_sync=False, extra_cfg={"localSessionsEnabled": "true"})
    seen = {}
    try:
        ens.start()
        leader = ens.wait_serving()
        f1, f2 = [ens.members[s] for s in ens.members if s != leader]
        base = _local(f1)
        c = RawClient("127.0.0.1", f1.client_port, timeout_ms=1000)
        resp = c.connect()
        seen["connected"] = resp.timeOut > 0
        seen["local_count"] = _local(f1) - base
        seen["create"] = c.create("/lse", b"x").err
        sid, pw = c.session_id, c.passwd
        other = RawClient("127.0.0.1", f2.client_port, timeout_ms=1000, session_id=sid, passwd=pw)
        seen["elsewhere_timeout"] = other.connect().timeOut
        other.close_socket()
        # idle: no pings; its own server expires it
        seen["closed_by_server"] = c.is_closed_by_peer(wait=15)
        deadline = time.monotonic() + 10
        while _local(f1) != base and time.monotonic() < deadline:
            time.sleep(0.1)
        seen["local_after_expiry"] = _local(f1) - base
        again = RawClient("127.0.0.1", f1.client_port, timeout_ms=1000, session_id=sid, passwd=pw)
        seen["resume_timeout"] = again.connect().timeOut
        again.close_socket()
        return seen
    except Exception:
        print(ens.dump_logs())
        raise
    finally:
        ens.stop()


EXPECTED = {"connected": True, "local_count": 1, "create": 0, "elsewhere_timeout": 0,
            "closed_by_server": True, "local_after_expiry": 0, "resume_timeout": 0}


@pytest.mark.skipif(not coord_ensemble_available(), reason="no Zab peer")
def test_local_session_expiry_coord(tmp_path):
    assert _scenario(tmp_path, "coord") == EXPECTED


@pytest.mark.realzk
@pytest.mark.skipif(not real_zk.available(), reason="real ZooKeeper not installed")
def test_local_session_expiry_real_zookeeper(tmp_path):
    assert _scenario(tmp_path, "zookeeper") == EXPECTED
