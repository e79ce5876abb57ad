"""A client that floods a server whose request throttler holds its requests keeps its connection:
the frames the throttler holds count toward the connection's bound, and past it the server stops
reading (as ZooKeeper does) instead of closing the connection when the throttler's own cap is hit.
Found by CI under load: a 3,000-request burst was reset by peer; here the shell's bound is made small
so that the same happens at any load. In process: it inspects the shell's bound (coord only; the
differential burst against ZooKeeper is tests/limits/test_request_throttle.py)."""
import asyncio

from coord.aio.server import CoordServer
from coord.aio.zoocfg import parse
from coord.jute import records as R
from tests.compat.rawclient import RawClient
from tests.support.inproc import serving_on_a_thread

OPEN = [R.ACL(31, R.Id("world", "anyone"))]


def test_a_flood_of_held_requests_is_read_later_not_reset(tmp_path):
    cfg = parse(f"dataDir={tmp_path}\nclientPort=0\nclientPortAddress=127.0.0.1\nforceSync=no\n"
                "admin.enableServer=false\nrequest_throttle_max_requests=1\n")
    loop = asyncio.new_event_loop()
    srv = CoordServer(cfg)
    srv.max_queued = 50                    # the shell's per-connection bound, far below the throttler's cap
    with serving_on_a_thread(srv, loop):
        c = RawClient("127.0.0.1", srv.port).start()
        c.create("/f")
        n = 3000                           # past the throttler's cap of 1,000 held frames
        xids = [c.submit(1, R.CreateRequest(f"/f/n{i:05d}", b"", OPEN, 0).encode()) for i in range(n)]
        got = [c._read_reply() for _ in xids]
        assert [r.xid for r in got] == xids and {r.err for r in got} == {0}
        c.close_socket()
