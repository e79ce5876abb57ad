"""enforceQuota: hard count and byte limits refuse creates and setData with QUOTAEXCEEDED (-125),
differential against real ZooKeeper 3.8 with `enforceQuota=true` in the same zoo.cfg. Quotas are
set with ZooKeeper's own zkCli (`setquota -N/-B/-n`), as operators do."""
from __future__ import annotations

import pytest

from coord.jute import records as R
from coord.jute.codec import decode
from coord.jute.protocol import Err, OpCode
from tests.compat.rawclient import RawClient
from tests.compat.zkcli import run_script
from tests.ops.prom import get, samples
from tests.security.test_sasl import both

pytestmark = pytest.mark.realzk

QE = int(Err.QUOTAEXCEEDED)
SETUP = ["create /q", "setquota -N 4 /q",        # hard count: /q and three children
         "create /b", "setquota -B 10 /b",       # hard bytes
         "create /s", "setquota -n 1 /s",        # soft count only: a log line, no error
         "create /m", "setquota -N 3 /m"]


def _create(c, path, data=b"", flags=0):
    return RawClient.create(c, path, data, flags=flags).err


def _data(c, path) -> bytes:
    return decode(R.GetDataResponse, c.get_data(path).body, 0)[0].data


def _scenario(host, port):
    run_script(f"{host}:{port}", SETUP)
    c = RawClient(host, port).start()
    out = {}
    out["q"] = [_create(c, f"/q/{i}") for i in range(1, 5)]
    out["q_exists_first"] = _create(c, "/q/1")                 # NODEEXISTS comes before the quota
    out["q_seq"] = _create(c, "/q/s-", flags=2)
    out["q_eph"] = _create(c, "/q/e", flags=1)
    out["q_delete"] = c.delete("/q/3").err
    out["q_after_delete"] = _create(c, "/q/4")
    out["q_big_data"] = c.set_data("/q/1", b"x" * 1000).err    # no byte limit on /q
    out["b"] = [_create(c, "/b/x", b"12345"), _create(c, "/b/y", b"123456")]
    out["b_set"] = [c.set_data("/b/x", b"x" * n).err for n in (10, 11)]
    out["b_quota_before_version"] = c.set_data("/b/x", b"x" * 11, version=99).err
    out["b_version_when_within"] = c.set_data("/b/x", b"x", version=99).err
    out["b_shrink_then_create"] = [c.set_data("/b/x", b"").err, _create(c, "/b/y", b"123456")]
    out["s"] = [_create(c, f"/s/{i}") for i in range(3)]
    create = R.CreateRequest
    # Every op of a multi is checked against the committed usage (1 of 3 here), as in ZooKeeper.
    m = c.multi([(OpCode.create, create(f"/m/{i}", b"", [R.ACL(31, R.Id("world", "anyone"))], 0))
                 for i in range(3)])
    out["m_multi"] = (m.err, [(t, e) for t, e, _ in m.value or []])
    m = c.multi([(OpCode.create, create("/m/z", b"", [R.ACL(31, R.Id("world", "anyone"))], 0)),
                 (OpCode.setData, R.SetDataRequest("/m/0", b"d", -1))])
    out["m_refused"] = (m.err, [(t, e) for t, e, _ in m.value or []])
    out["m_single"] = _create(c, "/m/z")
    for top in ("q", "b", "s", "m"):
        out[f"stats_{top}"] = _data(c, f"/zookeeper/quota/{top}/zookeeper_stats")
        out[f"limits_{top}"] = _data(c, f"/zookeeper/quota/{top}/zookeeper_limits")
    c.close_socket()
    return out


def test_hard_limits_refuse_like_zookeeper(quota_pair):
    zk, coord = both(quota_pair, _scenario)
    assert zk == coord
    assert zk["q"] == [0, 0, 0, QE] and zk["q_exists_first"] == Err.NODEEXISTS
    assert zk["q_seq"] == zk["q_eph"] == QE and zk["q_after_delete"] == 0
    assert zk["b"] == [0, QE] and zk["b_set"] == [0, QE] and zk["b_quota_before_version"] == QE
    assert zk["s"] == [0, 0, 0]
    assert zk["m_single"] == QE


def test_quota_metrics_like_zookeeper(quota_pair):
    """quota_exceeded_error_per_namespace counts refusals by top namespace; the per-namespace limit
    and usage gauges read the quota nodes (hard limit if set, else soft)."""
    def run(host, port):
        run_script(f"{host}:{port}", ["create /mq", "setquota -N 3 /mq", "create /mq/a", "create /mq/a/b"])
        c = RawClient(host, port).start()
        errs = [_create(c, "/mq/x", b"abc"), _create(c, "/mq/y"), c.set_data("/mq/a", b"12345").err]
        c.close_socket()
        srv = quota_pair.zk if port == quota_pair.zk.client_port else quota_pair.coord
        page = get(f"http://127.0.0.1:{srv.metrics_port}/metrics").decode()
        return errs, {k: v for k, v in samples(page).items() if k.startswith("quota_") and '"mq"' in k}
    zk, coord = both(quota_pair, run)
    assert zk == coord
    assert zk[0] == [QE, QE, 0]
    assert zk[1] == {'quota_exceeded_error_per_namespace{key="mq",}': 2.0,
                     'quota_count_limit_per_namespace{key="mq",}': 3.0,
                     'quota_count_usage_per_namespace{key="mq",}': 3.0,
                     'quota_bytes_limit_per_namespace{key="mq",}': -1.0,
                     'quota_bytes_usage_per_namespace{key="mq",}': 5.0}
