"""The limits in the pure core, driven in memory (tests/unit/harness.py): what a live server cannot
show deterministically — pipelined writes against a quota, the throttler's FIFO order and its
THROTTLEDOP by elapsed time, BlueThrottle's refill."""
from __future__ import annotations

from coord.core.config import CoreConfig
from coord.core.throttle import BlueThrottle, BlueThrottleConfig
from coord.jute import records as R
from coord.jute.protocol import Err
from tests.unit.harness import Harness

QE, TH = int(Err.QUOTAEXCEEDED), int(Err.THROTTLEDOP)


def _quota(c, path: str, limits: bytes):
    for p in ("/zookeeper/quota" + path[:i] for i in range(1, len(path) + 1) if i == len(path) or path[i] == "/"):
        c.create(p)
    c.create(f"/zookeeper/quota{path}/zookeeper_limits", limits)
    c.create(f"/zookeeper/quota{path}/zookeeper_stats", b"count=0,bytes=0")


def test_pipelined_set_data_diffs_against_the_outstanding_data():
    """checkQuota's lastData is the node's data as of the newest outstanding change (ChangeRecord),
    the usage the committed one: 5 then 9 bytes pipelined is +5 then +4 against usage 0."""
    h = Harness(CoreConfig(enforce_quota=True))
    c = h.connect()
    c.create("/a")
    c.create("/a/x")
    _quota(c, "/a", b"count=-1,bytes=-1=;byteHardLimit=6")
    x1 = c.send(5, R.SetDataRequest("/a/x", b"12345", -1))
    x2 = c.send(5, R.SetDataRequest("/a/x", b"123456789", -1))
    h.durable()
    assert [(r.xid, r.err) for r in c.received()] == [(x1, 0), (x2, 0)]
    assert c.set("/a/x", b"1234567").err == QE   # committed usage 9: 9 + (7 - 9) = 7 > 6
    assert c.set("/a/x", b"123456").err == 0     # 9 - 3 = 6


def test_enforcement_off_by_default():
    h = Harness()
    c = h.connect()
    c.create("/a")
    _quota(c, "/a", b"count=-1,bytes=-1=;countHardLimit=1")
    assert [c.create(f"/a/{i}").err for i in range(3)] == [0, 0, 0]


def test_malformed_limits_node_is_a_marshalling_error():
    h = Harness(CoreConfig(enforce_quota=True))
    c = h.connect()
    c.create("/a")
    _quota(c, "/a", b"count=x")
    assert c.create("/a/b").err == int(Err.MARSHALLINGERROR)


def test_throttler_holds_in_order_and_answers_throttledop_after_the_wait():
    h = Harness(CoreConfig(request_throttle=(1, 100, True)))
    c = h.connect()
    create = R.CreateRequest
    acl = [R.ACL(31, R.Id("world", "anyone"))]
    xs = [c.send(1, create(f"/n{i}", b"", acl, 0)) for i in range(3)]
    ping = c.send(11, xid=-2)
    assert c.received() == []                    # /n0 in process; the rest held
    h.advance(150)                               # still in process: nothing enters on the tick
    assert c.received() == []
    h.durable()                                  # /n0 commits; the rest waited 150 ms > 100
    got = [(r.xid, r.err) for r in c.received()]
    assert got == [(xs[0], 0), (xs[1], TH), (xs[2], TH), (ping, 0)]   # a ping is never -127
    assert c.stat("/n1") is None and h.core.req_throttle.throttled_ops == 2
    assert c.create("/n3").err == 0              # nothing in process: straight through


def test_blue_throttle_refill():
    t = BlueThrottle(BlueThrottleConfig(tokens=2, fill_time_ms=100, fill_count=1), now_ms=0)
    assert [t.check_limit(1, 0, 0.5) for _ in range(3)] == [True, True, False]
    assert t.check_limit(1, 100, 0.5) is False   # refill needs more than fill_time
    assert t.check_limit(1, 101, 0.5) is True and t.rejected == 2
