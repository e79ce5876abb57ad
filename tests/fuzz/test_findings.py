"""What the fuzzers found, each as a unit test named for it (docs/fuzzing.md lists them)."""
from coord.fuzz.history import multi
from coord.jute import records as R
from tests.unit.harness import OPEN, Harness


def test_client_reusing_an_outstanding_write_xid_is_closed_not_a_crash():
    """Found by the client target (fuzz-findings/client/crash-904e5e01...): two writes with the same
    xid, both waiting for their txns, shared one entry in ServerCore.waiting (keyed by session and
    xid), so the first txn's commit answered the second request with the first one's result, and
    _write_reply raised AttributeError (a create's reply from a multi's result) out of commit(),
    inside the log's durability callback; with other ops the connection hung instead (the first
    write's reply never came, and every reply behind it waited). A real client never reuses an xid that is outstanding;
    the server now closes a connection that does (the first write still commits)."""
    h = Harness()
    c = h.connect()
    c.send(14, raw=multi((5, R.SetDataRequest("/", b"x", -1))), xid=7)
    c.send(1, R.CreateRequest("/dup", b"", OPEN, 0), xid=7)
    h.durable()
    assert c.cid in h.closed
    assert h.core.tree.get("/").data == b"x"
    assert h.core.tree.get("/dup") is None
    assert not h.core.waiting
