"""Reconfig on standalone servers, coord and real ZooKeeper 3.8 side by side: disabled by default
(RECONFIGDISABLED, before any other check), and UNIMPLEMENTED when enabled (standalone servers do not
reconfigure); /zookeeper/config is empty on both."""
from __future__ import annotations

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException

from tests.compat.conftest import SUPER_CRED, start_pair

pytestmark = pytest.mark.realzk


def _run(port: int) -> dict:
    c = KazooClient(hosts=f"127.0.0.1:{port}", timeout=10, auth_data=[("digest", SUPER_CRED)])
    c.start(timeout=20)
    out = {}
    try:
        for name, args in (("leave", (None, "3", None)), ("stale", (None, "3", None, 999)),
                           ("garbage", ("server.x", None, None))):
            try:
                c.reconfig(*args)
                out[name] = "ok"
            except KazooException as e:
                out[name] = type(e).__name__
        out["config"] = c.get("/zookeeper/config")[0]
    finally:
        c.stop()
        c.close()
    return out


@pytest.mark.parametrize("enabled", [False, True])
def test_standalone_reconfig(tmp_path, enabled):
    pair = start_pair(tmp_path, {"reconfigEnabled": "true"} if enabled else None)
    try:
        zk = _run(pair.zk.client_port)
        co = _run(pair.coord.client_port)
    finally:
        pair.stop()
    assert co == zk
    err = "UnimplementedError" if enabled else "ReconfigDisabledError"
    assert zk == {"leave": err, "stale": err, "garbage": err, "config": b""}
