"""Requests pipelined behind a ConnectRequest (the Netty Java client sends whoAmI before its
ConnectResponse): held until the session exists, then served in order, as ZooKeeper's disableRecv
does; a flood of them before the session exists closes the connection."""
from __future__ import annotations

import struct

from coord.core.config import CoreConfig
from coord.jute import records as R
from tests.unit.harness import Harness


def _frame(xid, op, rec=None):
    return R.RequestHeader(xid, op).encode() + (rec.encode() if rec is not None else b"")


def test_requests_behind_connect_are_served_after_the_session_exists():
    h = Harness()
    h.core.connection_made(1, "127.0.0.1:40000")
    h.core.frame(1, R.ConnectRequest(0, 0, 30000, 0, bytes(16)).encode() + b"\0")
    h.core.frame(1, _frame(1, 107))                                   # whoAmI
    h.core.frame(1, _frame(2, 3, R.ExistsRequest("/", False)))        # exists
    h.pump()
    assert 1 not in h.closed and not h.inbox.get(1)                   # nothing before the session
    h.durable()
    msgs = h.inbox.pop(1)
    assert len(msgs) == 3
    xids = [struct.unpack_from(">iqi", m, 0) for m in msgs[1:]]
    assert [(x, e) for x, _, e in xids] == [(1, 0), (2, 0)]


def test_a_flood_before_the_session_exists_closes():
    h = Harness(CoreConfig(max_queued_per_connection=5))
    h.core.connection_made(1, "127.0.0.1:40000")
    h.core.frame(1, R.ConnectRequest(0, 0, 30000, 0, bytes(16)).encode() + b"\0")
    for xid in range(1, 8):
        h.core.frame(1, _frame(xid, 3, R.ExistsRequest("/", False)))
    h.pump()
    assert 1 in h.closed
