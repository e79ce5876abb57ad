"""enforceQuota on a 3-server ensemble, written through a follower (the leader prepares the txn and
checks the quota): coord and Apache ZooKeeper 3.8 with one harness (tests/support/ensemble.py).
Slow: CI runs it with `-m slow`."""
from __future__ import annotations

import pytest

from tests.compat.rawclient import RawClient
from tests.compat.zkcli import run_script
from tests.support.ensemble import Ensemble

pytestmark = [pytest.mark.slow, pytest.mark.realzk]


def _run(kind: str, work) -> dict:
    ens = Ensemble(work / kind, 3, kind=kind, extra_cfg={"enforceQuota": "true"})
    try:
        ens.start()
        ens.leader()
        f = ens.followers()[0]
        host, port = "127.0.0.1", f.client_port
        run_script(f"{host}:{port}", ["create /eq", "setquota -N 3 /eq", "create /eb", "setquota -B 4 /eb"])
        c = RawClient(host, port).start()
        out = {"count": [c.create(f"/eq/{i}").err for i in range(3)],
               "bytes": [c.create("/eb/a", b"1234").err, c.set_data("/eb/a", b"12345").err,
                         c.create("/eb/b", b"1").err]}
        c.close_socket()
        return out
    finally:
        ens.stop()


def test_quota_through_a_follower(tmp_path):
    coord, zk = _run("coord", tmp_path), _run("zookeeper", tmp_path)
    assert coord == zk == {"count": [0, 0, -125], "bytes": [0, -125, -125]}
