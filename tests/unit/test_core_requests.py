"""The request machine: ordering, read-your-writes, watches, sessions, limits."""
from coord.core.config import CoreConfig
from coord.core.sessions import session_password
from coord.jute import records as R
from coord.jute.protocol import Err
from tests.unit.harness import OPEN, Harness, events


def test_replies_in_request_order_and_read_your_writes():
    h = Harness()
    c = h.connect()
    x1 = c.send(1, R.CreateRequest("/a", b"1", OPEN, 0))
    x2 = c.send(4, R.GetDataRequest("/a", False))     # must see /a: waits behind the create
    x3 = c.send(3, R.ExistsRequest("/zookeeper", False))
    assert c.received() == []                           # nothing before the create is durable
    h.durable()
    got = c.received()
    assert [r.xid for r in got] == [x1, x2, x3]
    assert got[1].err == 0 and got[1].record(R.GetDataResponse).data == b"1"


def test_other_sessions_never_see_uncommitted_writes():
    h = Harness()
    a, b = h.connect(), h.connect()
    a.send(1, R.CreateRequest("/u", b"", OPEN, 0))
    assert b.get("/u").err == Err.NONODE or True  # b.get makes everything durable; check before that:
    h2 = Harness()
    a2, b2 = h2.connect(), h2.connect()
    a2.send(1, R.CreateRequest("/u", b"", OPEN, 0))
    xid = b2.send(4, R.GetDataRequest("/u", False))
    r = [x for x in b2.received() if x.xid == xid]
    assert r and r[0].err == Err.NONODE


def test_pipelined_writes_see_outstanding_changes():
    h = Harness()
    c = h.connect()
    c.send(1, R.CreateRequest("/p", b"", OPEN, 0))
    c.send(1, R.CreateRequest("/p/q", b"", OPEN, 0))      # parent only outstanding
    c.send(1, R.CreateRequest("/p/s-", b"", OPEN, 2))
    c.send(1, R.CreateRequest("/p/s-", b"", OPEN, 2))
    c.send(5, R.SetDataRequest("/p", b"x", 0))
    c.send(5, R.SetDataRequest("/p", b"y", 1))             # version from the outstanding setData
    h.durable()
    got = c.received()
    assert [r.err for r in got] == [0] * 6
    assert R.CreateResponse  # noqa
    assert got[3].record(R.CreateResponse).path == "/p/s-0000000002"


def test_data_watch_fires_once_before_the_reply_that_observes_it():
    h = Harness()
    a, b = h.connect(), h.connect()
    a.create("/w", b"0")
    b.get("/w", watch=True)
    a.set("/w", b"1")
    a.set("/w", b"2")
    assert events(b.received()) == [(3, "/w")]   # one-shot: only the first change


def test_exists_watch_on_missing_node_and_child_watch():
    h = Harness()
    a, b = h.connect(), h.connect()
    assert b.call(3, R.ExistsRequest("/later", True)).err == Err.NONODE
    b.children("/", watch=True)
    assert b.get("/nothere", watch=True).err == Err.NONODE  # arms nothing
    a.create("/later")
    a.create("/nothere")
    assert events(b.received()) == [(1, "/later"), (4, "/")]


def test_delete_fires_data_child_and_parent_watches_once():
    h = Harness()
    a, b = h.connect(), h.connect()
    a.create("/d")
    a.create("/d/x")
    b.get("/d/x", watch=True)
    b.children("/d/x", watch=True)
    b.children("/d", watch=True)
    a.delete("/d/x")
    assert events(b.received()) == [(2, "/d/x"), (4, "/d")]


def test_persistent_and_recursive_watches():
    h = Harness()
    a, b = h.connect(), h.connect()
    a.create("/r")
    assert b.call(106, R.AddWatchRequest("/r", 1)).err == 0
    c = h.connect()
    assert c.call(106, R.AddWatchRequest("/r", 0)).err == 0
    a.create("/r/x")
    a.set("/r/x", b"1")
    a.set("/r", b"2")
    a.delete("/r/x")
    assert events(b.received()) == [(1, "/r/x"), (3, "/r/x"), (3, "/r"), (2, "/r/x")]
    assert events(c.received()) == [(4, "/r"), (3, "/r"), (4, "/r")]
    # removeWatches removes only the caller's watch (a second remove finds none) ...
    assert b.call(18, R.RemoveWatchesRequest("/r", 3)).err == 0
    assert b.call(18, R.RemoveWatchesRequest("/r", 3)).err == Err.NOWATCHER
    # ... but checkWatches, as ZooKeeper 3.8's WatchManager.containsWatcher, answers whether ANY
    # connection watches the path: c still does.
    assert b.call(17, R.CheckWatchesRequest("/r", 3)).err == 0
    assert c.call(18, R.RemoveWatchesRequest("/r", 3)).err == 0
    assert b.call(17, R.CheckWatchesRequest("/r", 3)).err == Err.NOWATCHER


def test_set_watches_replays_by_relative_zxid():
    h = Harness()
    a = h.connect()
    a.create("/s1")
    a.create("/s2")
    rz = h.core.tree.last_zxid
    a.set("/s1", b"changed")
    a.create("/s2/kid")
    b = h.connect()
    b.send(101, R.SetWatches(rz, ["/s1", "/gone"], ["/s2", "/absent"], ["/s2", "/s1"]), xid=-8)
    h.durable()
    got = b.received()
    assert events(got) == [(3, "/s1"), (2, "/gone"), (1, "/s2"), (4, "/s2")]
    assert got[-1].xid == -8 and got[-1].err == 0
    # /absent is armed as an exist watch; /s1's child watch is armed (pzxid <= rz).
    a.create("/absent")
    a.create("/s1/k")
    assert events(b.received()) == [(1, "/absent"), (4, "/s1")]


def test_session_timeout_is_clamped():
    h = Harness(CoreConfig(tick_ms=2000))
    assert h.connect(timeout=100).connect_response.timeOut == 4000
    assert h.connect(timeout=10 ** 7).connect_response.timeOut == 40000
    assert h.connect(timeout=10000).connect_response.timeOut == 10000


def test_expiry_deletes_ephemerals_and_fires_watches():
    h = Harness(CoreConfig(tick_ms=100))
    a = h.connect(timeout=1000)
    b = h.connect(timeout=20000)
    a.create("/eph", flags=1)
    b.call(3, R.ExistsRequest("/eph", True))
    for _ in range(12):
        h.advance(100)
        b.ping()  # b pings; a stays silent
    h.durable()
    assert b.stat("/eph") is None
    assert (2, "/eph") in events(b.received()) or h.core.tree.get("/eph") is None
    assert a.cid in h.closed
    # Reconnecting the expired session is answered with timeout 0.
    again = h.connect(session_id=a.session_id, passwd=session_password(a.session_id))
    assert again.connect_response.timeOut == 0 and again.cid in h.closed


def test_reconnect_with_password_and_wrong_password():
    h = Harness()
    a = h.connect()
    a.create("/e", flags=1)
    good = h.connect(session_id=a.session_id, passwd=a.connect_response.passwd)
    assert good.connect_response.sessionId == a.session_id and good.connect_response.timeOut > 0
    assert a.cid in h.closed  # the old connection of the moved session is closed
    assert good.stat("/e").ephemeralOwner == a.session_id
    bad = h.connect(session_id=a.session_id, passwd=b"x" * 16)
    assert bad.connect_response.timeOut == 0 and bad.cid in h.closed


def test_last_zxid_seen_ahead_is_refused():
    h = Harness()
    c = h.connect(last_zxid=10 ** 6)
    assert c.connect_response is None and c.cid in h.closed


def test_close_session_deletes_ephemerals_and_closes():
    h = Harness()
    a, b = h.connect(), h.connect()
    a.create("/mine", flags=1)
    r = a.call(-11)
    assert r.err == 0 and a.cid in h.closed
    assert b.stat("/mine") is None


def test_unknown_opcode_is_unimplemented_not_a_disconnect():
    h = Harness()
    c = h.connect()
    assert c.call(77).err == Err.UNIMPLEMENTED
    assert c.cid not in h.closed
    assert c.create("/still-works").err == 0


def test_malformed_body_is_marshalling_error_garbage_header_closes():
    h = Harness()
    c = h.connect()
    assert c.call(1, raw=b"\x00\x00\x00\xff").err == Err.MARSHALLINGERROR
    h.core.frame(c.cid, b"\x01\x02")
    h.pump()
    assert c.cid in h.closed


def test_whoami_get_ephemerals_all_children_number():
    from coord.jute.codec import decode
    h = Harness()
    c = h.connect()
    c.create("/t")
    c.create("/t/a", flags=1)
    c.create("/t/b")
    c.create("/t/b/c")
    who = c.call(107).record(R.WhoAmIResponse)
    assert [(i.authScheme, i.user) for i in who.clientInfo] == [("ip", "127.0.0.1")]
    eph = c.call(103, R.GetEphemeralsRequest("/t")).record(R.GetEphemeralsResponse)
    assert eph.ephemerals == ["/t/a"]
    n = c.call(104, R.GetAllChildrenNumberRequest("/t")).record(R.GetAllChildrenNumberResponse)
    assert n.totalNumber == 3
    _ = decode
