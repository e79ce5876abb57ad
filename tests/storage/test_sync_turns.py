"""A forceSync=yes write is answered one loop turn after it was read (issue 17).

Every turn a write waits between its read and its reply is one more chance for the loop to be
preempted or to run someone else's batch first; on a loaded machine that is how coord's single-write
p50 came to be about twice ZooKeeper's. The path is: the turn that reads the request, whose flush
(input_done: nothing else waits in that turn) hands the txn to the log's sync thread; the one that
the thread's completion wakes, which replies. (Through an executor future and an asyncio task it was
four turns; with the flush a call_soon later, two.) A real standalone
CoordServer with a real txn log and fdatasync runs on a loop of this test; a real client writes one
request at a time; the turns are counted by wrapping the loop's selector. This checks the mechanism,
not milliseconds (timers may add turns, so the median is asserted); the same writes against real
ZooKeeper 3.8 are timed by the open-loop bench (`coord bench --open-loop`, docs/benchmarks.md).
"""
from __future__ import annotations

import asyncio
import statistics

from coord.aio import server as server_mod
from coord.aio.server import CoordServer
from coord.aio.zoocfg import parse
from coord.jute import records as R
from tests.compat.rawclient import RawClient
from tests.support.inproc import serving_on_a_thread

OPEN = [R.ACL(31, R.Id("world", "anyone"))]


def test_a_synced_write_is_answered_one_turn_after_its_read(tmp_path, monkeypatch):
    cfg = parse(f"dataDir={tmp_path}\nclientPort=0\nclientPortAddress=127.0.0.1\nforceSync=yes\n"
                "admin.enableServer=false\n")
    loop = asyncio.new_event_loop()
    turns = [0]
    sel = loop._selector
    inner = sel.select

    def select(timeout=None):
        turns[0] += 1
        return inner(timeout)
    sel.select = select
    read_at: list[int] = []
    replied_at: list[int] = []
    received = server_mod.ClientProtocol.data_received

    def data_received(self, data):
        read_at.append(turns[0])
        received(self, data)
    monkeypatch.setattr(server_mod.ClientProtocol, "data_received", data_received)
    srv = CoordServer(cfg)

    def instrument():
        durable = srv.txnlog.on_durable

        def on_durable(zxid):      # the server applies the txn and writes the reply in this call
            replied_at.append(turns[0])
            durable(zxid)
        srv.txnlog.on_durable = on_durable
    with serving_on_a_thread(srv, loop, instrument):
        c = RawClient("127.0.0.1", srv.port).start()
        for i in range(40):
            read_at.clear()
            replied_at.clear()
            c.create(f"/w{i:03d}")
            assert read_at and replied_at, "the write was neither read nor answered by the server"
        gaps = []
        for i in range(40, 80):
            read_at.clear()
            replied_at.clear()
            c.create(f"/w{i:03d}")
            gaps.append(replied_at[-1] - read_at[-1])
        c.close_socket()
    assert min(gaps) >= 1, gaps              # the fsync's completion comes back in a later turn
    assert statistics.median(gaps) <= 1, gaps     # it was 4 (an executor future, then a task), then 2
