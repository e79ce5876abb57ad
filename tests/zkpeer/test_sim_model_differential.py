"""The simulator's ZooKeeper model (coord/sim/zkmodel.py) checked against a real ZooKeeper 3.8
ensemble: the same scripted sequence, and the packets an observer receives on the leader link
compared, as far as they are deterministic (packet types in order, the txn type and path each
PROPOSAL/INFORM carries; PINGs dropped, zxids and times differ). The learner on both sides is
coord's own ZkObserver, so the comparison is of what the two leaders send.

Script: a session writes before the observer joins (the observer, empty, is synced), then after it
(INFORMs); the observer leaves, one more write, and it comes back at the zxid it holds (DIFF)."""
from __future__ import annotations

import socket
import threading
import time

import pytest
from kazoo.client import KazooClient

from coord.core.server import ServerCore
from coord.core.zkpeer.observer import ZkObserver
from coord.core.zkpeer.txnentry import decode_txn_entry
from coord.jute import quorum as Q
from coord.jute import records as R
from coord.sim.zkmodel import ZkEnsemble
from tests.support.zk_observer import ObservedEnsemble

pytestmark = pytest.mark.realzk
OBSERVER_SID = 4
_OPEN = [R.ACL(31, R.Id("world", "anyone"))]


def _summary(qp: Q.QuorumPacket) -> tuple:
    name = Q.PACKET_NAMES[qp.type]
    if qp.type in (Q.PROPOSAL, Q.INFORM) and qp.data:
        hdr, txn, _ = decode_txn_entry(qp.data)
        return name, hdr.type, getattr(txn, "path", None)
    return (name,)


class Recorder:
    """A ZkObserver whose every packet from the leader is summarised (PINGs left out)."""

    def __init__(self, core=None):
        self.obs = ZkObserver(OBSERVER_SID, core or ServerCore())
        self.seen: list[tuple] = []
        real = self.obs._packet

        def packet(qp):
            if qp.type != Q.PING:
                self.seen.append(_summary(qp))
            real(qp)
        self.obs._packet = packet

    def take(self) -> list[tuple]:
        out, self.seen = self.seen, []
        return out


# -- the real side ------------------------------------------------------------------------------------
def _real_session(rec: Recorder, host: str, port: int, until) -> None:
    """Observe the real leader over a socket until until(rec) holds (or 30 s), then hang up."""
    s = socket.create_connection((host, port), timeout=30)
    try:
        rec.obs.link_up(1)
        deadline = time.monotonic() + 30
        while not until(rec):
            assert time.monotonic() < deadline, f"real leader: stuck at {rec.obs.phase}, saw {rec.seen}"
            for b in rec.obs.out:
                s.sendall(b)
            rec.obs.out.clear()
            s.settimeout(0.2)
            try:
                chunk = s.recv(1 << 16)
            except socket.timeout:
                continue
            assert chunk, f"real leader closed the link; saw {rec.seen}"
            rec.obs.data(chunk)
            assert rec.obs.close is None, rec.obs.close
        for b in rec.obs.out:
            s.sendall(b)
        rec.obs.out.clear()
    finally:
        s.close()
        rec.obs.link_down("test hung up")


def _informs(n):
    return lambda rec: rec.obs.phase == "serving" and sum(1 for x in rec.seen if x[0] == "INFORM") >= n


def _serving(rec):
    return rec.obs.phase == "serving"


def real_sequence(tmp_path) -> list[list[tuple]]:
    ens = ObservedEnsemble(tmp_path, "coord")
    ens.start()
    try:
        leader = ens.voters.leader()
        q = int(ens.voters.servers[leader.myid].split(";")[0].split(":")[1])   # host:quorum:election
        c = KazooClient(hosts=leader.connect_string, timeout=10)
        c.start(timeout=30)
        c.create("/d1", b"1")
        c.create("/d2", b"2")
        c.set("/d1", b"11")
        c.delete("/d2")
        rec = Recorder()
        phases = []
        _real_session(rec, "127.0.0.1", q, _serving)
        phases.append(rec.take())
        # again, and this time stay for writes
        done = threading.Event()

        def writes():
            while rec.obs.phase != "serving":
                time.sleep(0.05)
            c.create("/a", b"a")
            c.set("/a", b"b")
            c.create("/e", b"", ephemeral=True)
            c.delete("/a")
            done.set()
        t = threading.Thread(target=writes)
        t.start()
        _real_session(rec, "127.0.0.1", q, lambda r: done.is_set() and _informs(4)(r))
        t.join(30)
        phases.append(rec.take())
        c.create("/b", b"x")
        _real_session(rec, "127.0.0.1", q, _serving)
        phases.append(rec.take())
        c.stop()
        c.close()
        return phases
    finally:
        ens.stop()


# -- the model --------------------------------------------------------------------------------------------
class _Net:
    def __init__(self):
        self.sent: list[tuple[int, int, bytes]] = []

    def send(self, a, b, data):
        self.sent.append((a, b, data))

    def reachable(self, a, b):
        return True

    def close(self, a, b):
        raise AssertionError(f"model closed the link {a}-{b}")


class _World:
    def __init__(self):
        self.now = 0
        self.net = _Net()

    def note(self, text):
        pass


def model_sequence() -> list[list[tuple]]:
    w = _World()
    ens = ZkEnsemble(w, 3, history=500)
    ens.tick()
    ld = ens.leader

    def settle():
        """Deliver what the leader sent: voters ACK proposals (so they commit)."""
        while w.net.sent:
            a, b, data = w.net.sent.pop(0)
            if b in ens.voters and a == ld.sid:
                ens.voter_data(b, a, data)
            elif a in ens.voters and b == ld.sid:
                ens.voter_data(b, a, data)
            elif b == OBSERVER_SID:
                rec.obs.data(data)
                for out in rec.obs.out:
                    w.net.sent.append((OBSERVER_SID, ld.sid, out))
                rec.obs.out.clear()
            elif a == OBSERVER_SID:
                ld.observer_data(a, data)

    sid = 0x100
    rec = Recorder()
    ld.propose(sid, 0, -10, R.CreateSessionTxn(10000))
    ld.propose(sid, 1, 1, R.CreateRequest("/d1", b"1", _OPEN, 0))
    ld.propose(sid, 2, 1, R.CreateRequest("/d2", b"2", _OPEN, 0))
    ld.propose(sid, 3, 5, R.SetDataRequest("/d1", b"11", -1))
    ld.propose(sid, 4, 2, R.DeleteRequest("/d2", -1))
    settle()
    phases = []

    def connect():
        ld.observer_up(OBSERVER_SID)
        rec.obs.link_up(ld.sid)
        for out in rec.obs.out:
            w.net.sent.append((OBSERVER_SID, ld.sid, out))
        rec.obs.out.clear()
        settle()

    def hang_up():
        ld.handlers.pop(OBSERVER_SID, None)
        rec.obs.link_down("test hung up")

    connect()
    phases.append(rec.take())
    hang_up()
    connect()
    ld.propose(sid, 5, 1, R.CreateRequest("/a", b"a", _OPEN, 0))
    ld.propose(sid, 6, 5, R.SetDataRequest("/a", b"b", -1))
    ld.propose(sid, 7, 1, R.CreateRequest("/e", b"", _OPEN, 1))
    ld.propose(sid, 8, 2, R.DeleteRequest("/a", -1))
    settle()
    phases.append(rec.take())
    hang_up()
    ld.propose(sid, 9, 1, R.CreateRequest("/b", b"x", _OPEN, 0))
    settle()
    connect()
    phases.append(rec.take())
    assert rec.obs.mismatches == 0
    return phases


def test_model_sends_what_a_real_zookeeper_leader_sends(tmp_path):
    real = real_sequence(tmp_path)
    model = model_sequence()
    for i, (r, m) in enumerate(zip(real, model)):
        assert r == m, f"phase {i}: real ZooKeeper {r}\n model {m}"
    assert len(real) == len(model) == 3
