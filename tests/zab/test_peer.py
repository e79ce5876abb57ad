"""QuorumPeer through its contract (coord.core.zab.api): construction, effects, garbage, one-server ensembles."""
from __future__ import annotations

import pytest

from coord.core.config import CoreConfig
from coord.core.server import ServerCore
from coord.core.zab import messages as M
from coord.core.zab.api import DurableState, ZabConfig
from coord.core.zab.peer import QuorumPeer
from coord.jute import records as R


def make(sid=1, voters=(1, 2, 3), observers=(), **cfg):
    core = ServerCore(CoreConfig(server_id=sid, tick_ms=100))
    return QuorumPeer(sid, {v: ("host", 2888 + v) for v in voters}, {o: None for o in observers}, core,
                      ZabConfig(tick_ms=100, **cfg))


def kinds(effects):
    return [e[0] for e in effects]


def test_constructor_and_start():
    p = make()
    assert p.state == "looking" and not p.core.serving
    p.start(1_000, 5_000, DurableState(accepted_epoch=3, current_epoch=2))
    eff = p.drain_effects()
    assert ("role", "looking") in eff
    assert {e[1] for e in eff if e[0] == "connect"} == {2, 3}
    assert p.accepted_epoch == 3 and p.current_epoch == 2
    with pytest.raises(ValueError):
        make(sid=9)


def test_log_records_after_the_tree_are_history_not_tree():
    p = make()
    recs = [(R.TxnHeader(1, i, (1 << 32) | i, 0, 1), R.CreateTxn(f"/n{i}", b"", [], False, i))
            for i in range(1, 4)]
    p.start(0, 0, DurableState(accepted_epoch=1, current_epoch=1, log=recs))
    assert p.last_zxid == (1 << 32) | 3 and p.core.tree.last_zxid == 0
    assert "/n1" not in p.core.tree.nodes
    eff = p.drain_effects()
    n = [M.decode(e[2])[1] for e in eff if e[0] == "send"]
    assert not n      # no links yet: nothing sent, only connect requests
    p.peer_connected(2)
    sent = [M.decode(e[2])[1] for e in p.drain_effects() if e[0] == "send"]
    assert sent and sent[0].zxid == (1 << 32) | 3 and sent[0].peer_epoch == 1


@pytest.mark.parametrize("data", [b"", b"\x01", b"junk" * 10, M.encode(M.Ack(5), 0)[:-1],
                                  bytes([9]) + M.encode(M.Ack(5), 0)[1:]])
def test_garbage_closes_the_link(data):
    p = make()
    p.start(0, 0, DurableState())
    p.peer_connected(2)
    p.drain_effects()
    p.message(2, data)
    eff = p.drain_effects()
    assert ("disconnect", 2) in eff
    assert 2 not in p.links and p.stats.bad_messages == 1
    p.message(2, M.encode(M.Ack(1), 0))          # nothing more from that link until it is back
    assert not [e for e in p.drain_effects() if e[0] == "send"]


def test_sequence_replay_ignored_gap_closes():
    p = make()
    p.start(0, 0, DurableState())
    p.peer_connected(2)
    p.drain_effects()
    n = M.Notification(M.LOOKING, 2, 0, 1, 0, 0)
    p.message(2, M.encode(n, 0))
    p.message(2, M.encode(n, 0))                 # a replay
    assert ("disconnect", 2) not in p.drain_effects()
    p.message(2, M.encode(n, 5))                 # a gap
    assert ("disconnect", 2) in p.drain_effects()


def drive_alone(p, now=0):
    """Perform a lone server's disk effects at once (fsync succeeds instantly)."""
    for _ in range(100):
        eff = p.drain_effects()
        if not eff:
            return
        for e in eff:
            if e[0] == "persist_epochs":
                p.epochs_persisted(e[1], e[2])
            elif e[0] == "append":
                p.log_durable(e[1][-1][0].zxid)


def test_one_server_ensemble_leads_and_commits_after_fsync():
    p = make(voters=(1,))
    p.start(0, 0, DurableState())
    drive_alone(p)
    assert p.state == "leading" and p.core.serving and p.current_epoch == 1
    core = p.core
    core.connection_made(1, "10.0.0.1:1")
    core.frame(1, R.ConnectRequest(0, 0, 4000, 0, b"\0" * 16).encode())
    eff = p.drain_effects()
    assert kinds(eff) == ["append"]
    out, _ = core.drain()
    assert not out                                # no session before the createSession is durable
    p.log_durable(eff[0][1][-1][0].zxid)
    out, _ = core.drain()
    assert out[1]                                 # ConnectResponse
    assert p.info()["zk_server_state"] == "leading"
    assert p.info()["zk_synced_followers"] == 0


def test_epoch_roll_keeps_a_lone_leader_serving():
    p = make(voters=(1,), zxid_counter_limit=3)
    p.start(0, 0, DurableState())
    drive_alone(p)
    core = p.core
    core.connection_made(1, "10.0.0.1:1")
    core.frame(1, R.ConnectRequest(0, 0, 4000, 0, b"\0" * 16).encode())
    drive_alone(p)
    core.drain()
    for i in range(5):
        core.frame(1, R.RequestHeader(i + 1, 1).encode()
                   + R.CreateRequest(f"/n{i}", b"", [R.ACL(31, R.Id("world", "anyone"))], 0).encode())
        drive_alone(p)
    assert p.stats.epoch_rolls >= 1 and p.state == "leading" and core.serving
    assert core.tree.last_zxid >> 32 >= 2
    assert all(f"/n{i}" in core.tree.nodes for i in range(5))


def test_observer_does_not_count():
    p = make(sid=4, observers=(4,))
    p.start(0, 0, DurableState())
    p.peer_connected(1)
    sent = [M.decode(e[2])[1] for e in p.drain_effects() if e[0] == "send"]
    assert sent and all(n.flags & M.NF_NON_VOTING for n in sent)


def test_a_new_link_ends_the_one_it_replaces():
    """A driver may report a reconnection before the old link's loss; the peer must not keep state
    of the old link (here: the leader's learner handle, which would swallow the new FOLLOWERINFO)."""
    p = make(voters=(1, 2, 3))
    p.start(0, 0, DurableState())
    p.peer_connected(2)
    p.drain_effects()
    p.settle(1, __import__("coord.core.zab.election", fromlist=["Vote"]).Vote(1, 0, 0))
    p.drain_effects()
    info = M.FollowerInfo(0, 0, 0, 0, 0, M.PROTOCOL)
    p.message(2, M.encode(info, 0))
    assert 2 in p.role.handles
    p.peer_connected(2)                       # reconnected; the loss of the old link never reported
    assert 2 not in p.role.handles
    p.message(2, M.encode(info, 0))
    assert 2 in p.role.handles


def _replayed(n, epoch=1):
    """n create records of `epoch`, and a core whose tree has applied them (a driver that replays its log)."""
    recs = [(R.TxnHeader(1, i, (epoch << 32) | i, 0, 1), R.CreateTxn(f"/n{i}", b"", [], False, i))
            for i in range(1, n + 1)]
    core = ServerCore(CoreConfig(server_id=1, tick_ms=100))
    for hdr, txn in recs:
        core.tree.apply(hdr, txn)
    core.tree.last_zxid = recs[-1][0].zxid
    return recs, core


def test_replayed_records_seed_the_committed_window():
    """A restarted leader whose driver replayed its log keeps the newest records for DIFF (ZooKeeper's
    committedLog rebuilt at load), so a learner a few txns behind is not sent a SNAP."""
    from coord.core.zab.leader import plan_sync
    recs, core = _replayed(6)
    p = QuorumPeer(1, {v: None for v in (1, 2, 3)}, {}, core, ZabConfig(tick_ms=100))
    p.start(0, 0, DurableState(1, 1, recs[-1][0].zxid, 0, committed=recs[2:], committed_base=recs[1][0].zxid))
    h = p.history
    assert h.applied == len(h) == 4 and h.applied_zxid == h.last == (1 << 32) | 6
    assert plan_sync(h, (1 << 32) | 2, (1 << 32) | 2) == ("diff", (1 << 32) | 2)
    assert [e.zxid for e in h.since((1 << 32) | 4)] == [(1 << 32) | 5, (1 << 32) | 6]
    assert plan_sync(h, (1 << 32) | 1, (1 << 32) | 1) == ("snap", 0)      # before the window
    assert p.core.tree.last_zxid == (1 << 32) | 6 and "/n6" in p.core.tree.nodes


def test_committed_records_not_ending_at_the_tree_are_ignored():
    recs, core = _replayed(4)
    p = QuorumPeer(1, {v: None for v in (1, 2, 3)}, {}, core, ZabConfig(tick_ms=100))
    p.start(0, 0, DurableState(1, 1, recs[-1][0].zxid, 0, committed=recs[:3], committed_base=0))
    assert len(p.history) == 0 and p.history.base == (1 << 32) | 4
    assert any(e[0] == "log" and "ignored" in e[2] for e in p.drain_effects())


def test_taking_over_a_serving_core_leads_without_an_election_and_answers_what_it_held():
    """A coord observer of a ZooKeeper ensemble taking over (coord.aio.zkobserver): the peer starts
    over a core that serves a client, leads at once (no looking), keeps the client's connection and
    commits the write the client asked while nothing led, in an epoch above the old one."""
    from coord.core.scratch import logged
    from coord.core.zab.sequencer import IdleSequencer
    core = ServerCore(CoreConfig(server_id=1, tick_ms=100))
    core.start(0, 0)
    core.connection_made(1, "10.0.0.1:1")
    core.frame(1, R.ConnectRequest(0, 0, 4000, 0, b"\0" * 16).encode())
    logged(core)
    core.drain()
    held = []

    class Holding(IdleSequencer):
        decides_expiry = False

        def submit(self, request):
            held.append(request)
    core.sequencer = Holding(None)
    core.frame(1, R.RequestHeader(7, 1).encode()
               + R.CreateRequest("/held", b"v", [R.ACL(31, R.Id("world", "anyone"))], 0).encode())
    assert len(held) == 1 and not core.drain()[0]
    last = core.tree.last_zxid
    p = QuorumPeer(1, {1: ("host", 2889)}, {}, core, ZabConfig(tick_ms=100))
    p.start_taking_over(0, 0, DurableState(accepted_epoch=1, current_epoch=1, last_logged_zxid=last), 1, held, [],
                        serving=True)
    eff = p.drain_effects()
    assert p.state == "leading" and core.serving and ("role", "looking") not in eff and ("role", "leading") in eff
    for e in eff:
        if e[0] == "persist_epochs":
            p.epochs_persisted(e[1], e[2])
    drive_alone(p)
    out, closing = core.drain()
    assert 1 not in closing and core.tree.nodes["/held"].czxid >> 32 == 2
    assert len(out[1]) == 1 and int.from_bytes(out[1][0][4:8], "big", signed=True) == 7   # the reply, xid 7
