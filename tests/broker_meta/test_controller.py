"""Controller election and epoch fencing (spec §3.3, §3.4) against a real server."""
from __future__ import annotations

import threading

import pytest

from broker_meta import codec, paths
from broker_meta.controller import (ControllerElection, FencedWriter, get_controller, get_controller_epoch,
                                    register_controller_and_increment_epoch)
from broker_meta.errors import ControllerMovedError
from broker_meta.events import EventThread
from broker_meta.model import ControllerRegistration
from broker_meta.zkclient import BAD_VERSION, NO_NODE, OK

from .conftest import wait_until


def test_first_election_creates_epoch_and_increments(zk_clients):
    zk = zk_clients.new()
    epoch, version = register_controller_and_increment_epoch(zk, 1)
    assert (epoch, version) == (1, 1)  # "0" created at version 0, then set to "1"
    assert get_controller_epoch(zk) == (1, 1)
    reg = get_controller(zk)
    assert reg.broker_id == 1 and reg.version == 2 and reg.kraft_controller_epoch == -1
    stat = zk.get_data(paths.CONTROLLER)[1]
    assert stat.ephemeralOwner == zk.session_id


def test_election_race_has_one_winner(zk_clients):
    clients = [zk_clients.new() for _ in range(5)]
    clients[0].create(paths.CONTROLLER_EPOCH, b"0")
    results: dict[int, object] = {}
    barrier = threading.Barrier(len(clients))

    def run(i):
        barrier.wait()
        try:
            results[i] = register_controller_and_increment_epoch(clients[i], 100 + i)
        except ControllerMovedError as e:
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clients))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    winners = [i for i, r in results.items() if isinstance(r, tuple)]
    assert len(winners) == 1
    assert results[winners[0]] == (1, 1)
    assert get_controller(clients[0]).broker_id == 100 + winners[0]


def test_election_checker_accepts_own_landed_attempt(zk_clients):
    """A re-sent election multi fails NODEEXISTS; /controller naming us with epoch E+1 means we won."""
    zk = zk_clients.new()
    zk.create(paths.CONTROLLER_EPOCH, b"4")
    zk.create(paths.CONTROLLER, codec.encode_controller(ControllerRegistration(7, 1)), ephemeral=True)
    zk.set_data(paths.CONTROLLER_EPOCH, b"5", 0)
    from broker_meta.controller import _check_controller_and_epoch
    assert _check_controller_and_epoch(zk, 7, 5) == (5, 1)
    with pytest.raises(ControllerMovedError):
        _check_controller_and_epoch(zk, 8, 5)


def test_fenced_writes(zk_clients):
    zk = zk_clients.new()
    epoch, version = register_controller_and_increment_epoch(zk, 1)
    fenced = FencedWriter(zk, version)
    assert fenced.create("/x", b"a").code == OK
    r = fenced.set_data("/x", b"b", 0)
    assert r.code == OK and r.result.version == 1
    assert fenced.set_data("/x", b"c", 0).code == BAD_VERSION  # stale partition epoch: [0, -103]
    assert fenced.delete("/nope").code == NO_NODE
    # a newer controller bumps the epoch version: every write of the old one is fenced
    zk.set_data(paths.CONTROLLER_EPOCH, b"2", version)
    with pytest.raises(ControllerMovedError):
        fenced.set_data("/x", b"d", -1)
    with pytest.raises(ControllerMovedError):
        fenced.write_many([__import__("broker_meta.zkclient", fromlist=["CreateOp"]).CreateOp("/y")])
    assert zk.get_data("/x")[0] == b"b"
    assert zk.exists("/y") is None


class Candidate:
    def __init__(self, zk, broker_id, json_version=2):
        self.events = EventThread(f"ctl-{broker_id}").start()
        self.became: list[tuple[int, int]] = []
        self.resigned = 0
        self.election = ControllerElection(zk, broker_id, self.events, on_become=self._become,
                                           on_resign=self._resign, json_version=json_version)

    def _become(self, epoch, version):
        self.became.append((epoch, version))

    def _resign(self):
        self.resigned += 1

    def stop(self):
        self.election.stop()
        self.events.stop()


def test_reelection_on_controller_deletion_and_expiry(zk_clients):
    za, zb = zk_clients.new(), zk_clients.new()
    a = Candidate(za, 1)
    a.election.start()
    wait_until(lambda: a.election.is_active, what="a elected")
    b = Candidate(zb, 2)
    b.election.start()
    wait_until(lambda: b.election.active_controller_id == 1, what="b sees a")
    assert not b.election.is_active
    zk_clients.expire(za)  # a's /controller goes with its session
    wait_until(lambda: b.election.is_active, what="b takes over")
    wait_until(lambda: a.resigned == 1, what="a resigned after its session expired")
    assert b.became[-1][0] == a.became[-1][0] + 1
    # a comes back with a new session and follows b
    wait_until(lambda: a.election.active_controller_id == 2, what="a follows b")
    assert not a.election.is_active
    # a deleted /controller re-runs the election
    zb.delete(paths.CONTROLLER)
    wait_until(lambda: get_controller(zb) is not None, what="new controller")
    winner = get_controller(zb).broker_id
    wait_until(lambda: (a if winner == 1 else b).election.is_active, what="winner active")
    assert get_controller_epoch(zb)[0] == b.became[-1][0] + 1
    a.stop()
    b.stop()


def test_v1_controller_json_and_kraft_hands_off(zk_clients):
    zk = zk_clients.new()
    c = Candidate(zk, 3, json_version=1)
    c.election.start()
    wait_until(lambda: c.election.is_active, what="elected")
    raw = zk.get_data(paths.CONTROLLER)[0]
    assert raw.startswith(b'{"version":1,"brokerid":3,"timestamp":"') and b"kraft" not in raw
    c.stop()
    zk.delete(paths.CONTROLLER)
    # A KRaft controller claims /controller (persistent, kraftControllerEpoch > 0): nobody competes.
    kraft = ControllerRegistration(3000, 1, kraft_controller_epoch=5)
    other = zk_clients.new()
    other.create(paths.CONTROLLER, codec.encode_controller(kraft))
    d = Candidate(zk_clients.new(), 4)
    d.election.start()
    wait_until(lambda: d.election.active_controller_id == 3000, what="sees kraft")
    assert d.election.kraft_controller and not d.became
    d.stop()
