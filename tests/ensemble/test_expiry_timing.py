"""How soon an ensemble drops the session of a client that vanished (kill -9 of a Kafka broker): the
time its ephemeral lives on is the first part of every Kafka broker and controller failover, so coord
must expire it as promptly as ZooKeeper 3.8 does, and never early (a live broker would be fenced).

Kafka's harness in tests/kafka uses tickTime 1000, so expiry buckets (ExpiryQueue rounds a deadline up
to the next tick) and the followers' session reports (one per leader ping, half a tick) both matter.
The client is a raw session on a follower that creates an ephemeral and closes its socket without
closeSession; a watcher on the other follower times the DELETED event. Same scenario on both servers.
"""
from __future__ import annotations

import threading
import time

import pytest
from kazoo.client import KazooClient

from coord.bench.client import Session, recv_frame
from coord.jute import records as R
from tests.support.ensemble import Ensemble
from tests.support.real_zk import available as zookeeper_available

TICK_MS = 1000
TIMEOUT_MS = 4000
BACKENDS = ["coord", pytest.param("zookeeper", marks=pytest.mark.realzk)]


def vanish_after_ephemeral(port: int, path: str) -> tuple[float, int]:
    """A raw session that creates an ephemeral at path, then its socket is closed (no closeSession).
    (monotonic time of the close, session id)."""
    import struct
    s = Session("127.0.0.1", port, timeout_ms=TIMEOUT_MS)
    assert s.timeout_ms == TIMEOUT_MS, s.timeout_ms
    body = R.CreateRequest(path, b"1", [R.ACL(31, R.Id("world", "anyone"))], 1).encode()
    s.sock.sendall(struct.pack(">iii", 8 + len(body), 1, 1) + body)
    reply = recv_frame(s.sock)
    assert struct.unpack_from(">iqi", reply, 0)[2] == 0
    t = time.monotonic()
    s.sock.close()
    return t, s.session_id


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_vanished_clients_session_expires_after_its_timeout_not_before(tmp_path, kind):
    if kind == "zookeeper" and not zookeeper_available():
        pytest.skip("real ZooKeeper 3.8 not installed (apt-get install zookeeper)")
    ens = Ensemble(tmp_path, 3, kind=kind, tick_ms=TICK_MS).start()
    try:
        leader = ens.wait_serving()
        f1, f2 = [s for s in ens.members if s != leader]
        watcher = KazooClient(ens.members[f2].connect_string)
        watcher.start(timeout=30)
        try:
            elapsed = []
            for i in range(2):       # two trials: the close lands at different points of a tick
                path = f"/broker-{i}"
                ev = threading.Event()
                seen = []

                def on(event, seen=seen, ev=ev):
                    seen.append((time.monotonic(), event.type))
                    ev.set()
                t_close, sid = vanish_after_ephemeral(ens.members[f1].client_port, path)
                watcher.sync(path)   # the watcher's follower may not have applied the create yet
                stat = watcher.exists(path, watch=on)
                assert stat is not None and stat.ephemeralOwner == sid
                assert ev.wait(TIMEOUT_MS / 1000 + 20), "the ephemeral was never removed"
                assert seen[0][1] == "DELETED"
                elapsed.append(seen[0][0] - t_close)
                time.sleep(0.45)
            print(f"{kind}: ephemeral of a vanished {TIMEOUT_MS} ms session gone after "
                  + ", ".join(f"{e:.2f}" for e in elapsed) + " s")
            # Never before the timeout (the deadline is the last touch plus the timeout, rounded up);
            # at most a tick for the bucket, half a tick for the follower's report, and the margin a
            # loaded machine (load 10-20) needs for the expiry's commit and the watch event.
            assert min(elapsed) >= TIMEOUT_MS / 1000 - 0.05, elapsed
            assert max(elapsed) <= TIMEOUT_MS / 1000 + 1.5 * TICK_MS / 1000 + 2.5, elapsed
        finally:
            watcher.stop()
            watcher.close()
    finally:
        ens.stop()
