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
from tests.support.names import fresh

pytestmark = pytest.mark.realzk

QE = int(Err.QUOTAEXCEEDED)


def _setup(q, b, s, m):
    return [f"create {q}", f"setquota -N 4 {q}",        # hard count: q and three children
            f"create {b}", f"setquota -B 10 {b}",       # hard bytes
            f"create {s}", f"setquota -n 1 {s}",        # soft count only: a log line, no error
            f"create {m}", f"setquota -N 3 {m}"]


def _create(c, path, data=b"", flags=0):
    return RawClient.create(c, path, data, flags=flags).err


def _data(c, path) -> bytes:
    return decode(R.GetDataResponse, c.get_data(path).body, 0)[0].data


def _scenario(host, port, tops):
    """tops: this run's four top-level nodes (quota namespaces), the same on both servers."""
    q, b, s, mq = tops
    run_script(f"{host}:{port}", _setup(q, b, s, mq))
    c = RawClient(host, port).start()
    out = {}
    out["q"] = [_create(c, f"{q}/{i}") for i in range(1, 5)]
    out["q_exists_first"] = _create(c, f"{q}/1")                 # NODEEXISTS comes before the quota
    out["q_seq"] = _create(c, f"{q}/s-", flags=2)
    out["q_eph"] = _create(c, f"{q}/e", flags=1)
    out["q_delete"] = c.delete(f"{q}/3").err
    out["q_after_delete"] = _create(c, f"{q}/4")
    out["q_big_data"] = c.set_data(f"{q}/1", b"x" * 1000).err    # no byte limit on /q
    out["b"] = [_create(c, f"{b}/x", b"12345"), _create(c, f"{b}/y", b"123456")]
    out["b_set"] = [c.set_data(f"{b}/x", b"x" * n).err for n in (10, 11)]
    out["b_quota_before_version"] = c.set_data(f"{b}/x", b"x" * 11, version=99).err
    out["b_version_when_within"] = c.set_data(f"{b}/x", b"x", version=99).err
    out["b_shrink_then_create"] = [c.set_data(f"{b}/x", b"").err, _create(c, f"{b}/y", b"123456")]
    out["s"] = [_create(c, f"{s}/{i}") for i in range(3)]
    create = R.CreateRequest
    # Every op of a multi is checked against the committed usage (1 of 3 here), as in ZooKeeper.
    m = c.multi([(OpCode.create, create(f"{mq}/{i}", b"", [R.ACL(31, R.Id("world", "anyone"))], 0))
                 for i in range(3)])
    out["m_multi"] = (m.err, [(t, e) for t, e, _ in m.value or []])
    m = c.multi([(OpCode.create, create(f"{mq}/z", b"", [R.ACL(31, R.Id("world", "anyone"))], 0)),
                 (OpCode.setData, R.SetDataRequest(f"{mq}/0", b"d", -1))])
    out["m_refused"] = (m.err, [(t, e) for t, e, _ in m.value or []])
    out["m_single"] = _create(c, f"{mq}/z")
    for top, path in (("q", q), ("b", b), ("s", s), ("m", mq)):
        out[f"stats_{top}"] = _data(c, f"/zookeeper/quota{path}/zookeeper_stats")
        out[f"limits_{top}"] = _data(c, f"/zookeeper/quota{path}/zookeeper_limits")
    c.close_socket()
    return out


def test_hard_limits_refuse_like_zookeeper(quota_pair):
    tops = [fresh(f"/{t}") for t in "qbsm"]   # the module's servers: a rerun must not meet this run's quotas
    zk, coord = both(quota_pair, lambda host, port: _scenario(host, port, tops))
    assert zk == coord
    assert zk["q"] == [0, 0, 0, QE] and zk["q_exists_first"] == Err.NODEEXISTS
    assert zk["q_seq"] == zk["q_eph"] == QE and zk["q_after_delete"] == 0
    assert zk["b"] == [0, QE] and zk["b_set"] == [0, QE] and zk["b_quota_before_version"] == QE
    assert zk["s"] == [0, 0, 0]
    assert zk["m_single"] == QE


def test_quota_metrics_like_zookeeper(quota_pair):
    """quota_exceeded_error_per_namespace counts refusals by top namespace; the per-namespace limit
    and usage gauges read the quota nodes (hard limit if set, else soft)."""
    mq = fresh("/mq")   # the module's servers: a rerun must not meet this run's nodes, quota and counters
    key = mq[1:]

    def run(host, port):
        run_script(f"{host}:{port}", [f"create {mq}", f"setquota -N 3 {mq}", f"create {mq}/a", f"create {mq}/a/b"])
        c = RawClient(host, port).start()
        errs = [_create(c, f"{mq}/x", b"abc"), _create(c, f"{mq}/y"), c.set_data(f"{mq}/a", b"12345").err]
        c.close_socket()
        srv = quota_pair.zk if port == quota_pair.zk.client_port else quota_pair.coord
        page = get(f"http://127.0.0.1:{srv.metrics_port}/metrics").decode()
        return errs, {k: v for k, v in samples(page).items() if k.startswith("quota_") and f'"{key}"' in k}
    zk, coord = both(quota_pair, run)
    assert zk == coord
    assert zk[0] == [QE, QE, 0]
    assert zk[1] == {f'quota_exceeded_error_per_namespace{{key="{key}",}}': 2.0,
                     f'quota_count_limit_per_namespace{{key="{key}",}}': 3.0,
                     f'quota_count_usage_per_namespace{{key="{key}",}}': 3.0,
                     f'quota_bytes_limit_per_namespace{{key="{key}",}}': -1.0,
                     f'quota_bytes_usage_per_namespace{{key="{key}",}}': 5.0}
