"""Fast leader election as a pure state machine: a little network of Election objects, stepped by hand."""
from __future__ import annotations

import random

import pytest

from coord.core.zab.election import Election, Vote, better
from coord.core.zab.messages import FOLLOWING, LEADING, LOOKING, Notification
from coord.core.zab.quorum import Quorum


def test_vote_order_is_epoch_then_zxid_then_sid():
    assert better(Vote(1, 0, 2), Vote(3, 0x500, 1))            # epoch first
    assert better(Vote(1, 0x10, 1), Vote(3, 0x0f, 1))          # then zxid
    assert better(Vote(3, 0x10, 1), Vote(2, 0x10, 1))          # then server id
    assert not better(Vote(2, 0x10, 1), Vote(2, 0x10, 1))


class Net:
    """Elections wired together; messages wait in a list until delivered (in an order we choose)."""

    def __init__(self, states: dict[int, tuple[int, int]], observers=(), seed=0):
        self.q = Quorum(states.keys(), observers)
        self.el = {s: Election(s, self.q, finalize_ms=50) for s in list(states) + list(observers)}
        self.states = dict(states)
        self.inflight: list[tuple[int, int, Notification]] = []
        self.now = 0
        self.rnd = random.Random(seed)
        self.down: set[int] = set()

    def start(self, sids=None):
        for s in sids or self.el:
            epoch, zxid = self.states.get(s, (0, 0))
            self.el[s].start(self.now, epoch, zxid)
            self.collect(s)

    def collect(self, s):
        e = self.el[s]
        for to, n in e.out:
            self.inflight.append((s, to, n))
        e.out = []

    def run(self, shuffle=False, ms=2000):
        end = self.now + ms
        while self.now < end and not all(e.decided for s, e in self.el.items() if s not in self.down):
            if shuffle:
                self.rnd.shuffle(self.inflight)
            batch, self.inflight = self.inflight, []
            for frm, to, n in batch:
                if to in self.down or frm in self.down:
                    continue
                e = self.el[to]
                if e.active:
                    e.on_notification(frm, n, self.now)
                elif e.decided and n.state == LOOKING:
                    leader, vote = e.decided
                    state = LEADING if leader == to else FOLLOWING
                    self.inflight.append((to, frm, Notification(state, leader, vote.zxid, e.logical_clock,
                                                                vote.peer_epoch, 0)))
                self.collect(to)
            self.now += 10
            for s, e in self.el.items():
                if s not in self.down:
                    e.tick(self.now)
                    self.collect(s)
        return {s: e.decided[0] for s, e in self.el.items() if e.decided}


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_most_recent_history_wins(shuffle, seed):
    net = Net({1: (2, 0x200000005), 2: (2, 0x200000009), 3: (1, 0x100000099)}, seed=seed)
    net.start()
    assert net.run(shuffle) == {1: 2, 2: 2, 3: 2}


def test_ties_go_to_the_highest_sid():
    net = Net({1: (0, 0), 2: (0, 0), 3: (0, 0), 4: (0, 0), 5: (0, 0)})
    net.start()
    assert set(net.run().values()) == {5}


def test_a_quorum_decides_without_the_missing_best():
    net = Net({1: (1, 5), 2: (1, 6), 3: (1, 9)})
    net.down = {3}
    net.start([1, 2])
    assert net.run() == {1: 2, 2: 2}


def test_no_quorum_no_decision():
    net = Net({1: (1, 5), 2: (1, 6), 3: (1, 9), 4: (1, 1), 5: (1, 1)})
    net.down = {3, 4, 5}
    net.start([1, 2])
    assert net.run(ms=5000) == {}
    assert net.el[1].logical_clock == 1


def test_finalize_waits_for_a_better_vote():
    """2 and 1 agree on 2 (a quorum of 3); 3's better vote arrives inside the finalize window."""
    net = Net({1: (1, 5), 2: (1, 6), 3: (1, 9)})
    net.start([1, 2])
    for _ in range(3):
        batch, net.inflight = net.inflight, []
        for frm, to, n in batch:
            if to != 3:
                net.el[to].on_notification(frm, n, net.now)
                net.collect(to)
    assert net.el[2].decide_at is not None and not net.el[2].decided
    net.start([3])
    assert net.run() == {1: 3, 2: 3, 3: 3}


def test_a_late_server_joins_the_settled_leader():
    net = Net({1: (1, 5), 2: (1, 6), 3: (1, 9)})
    net.start([1, 2])
    net.down = {3}
    assert net.run() == {1: 2, 2: 2}
    net.down = set()
    net.states[3] = (1, 9)   # even with a better history it joins: the ensemble is not electing
    net.start([3])
    assert net.run()[3] == 2


def test_lagging_rounds_catch_up():
    """1 has been through three rounds already; 2 and 3 join its round and all three agree."""
    net = Net({1: (1, 5), 2: (1, 6), 3: (1, 7)})
    for _ in range(3):
        net.el[1].start(0, 1, 5)
        net.collect(1)
    net.start([2, 3])
    assert net.el[1].logical_clock == 3 and net.el[2].logical_clock == 1
    assert net.run() == {1: 3, 2: 3, 3: 3}
    assert all(e.logical_clock == 3 for e in net.el.values())


def test_observers_never_vote_and_follow_a_settled_quorum():
    net = Net({1: (1, 5), 2: (1, 6), 3: (1, 7)}, observers=(4,))
    net.start()
    decided = net.run()
    assert decided == {1: 3, 2: 3, 3: 3, 4: 3}
    assert net.el[4].proposal.leader == 3 and not net.el[4].voting


def test_an_observer_alone_with_a_minority_never_decides():
    net = Net({1: (1, 5), 2: (1, 6), 3: (1, 7)}, observers=(4,))
    net.down = {2, 3}
    net.start([1, 4])
    assert net.run(ms=3000) == {}


def test_resends_back_off():
    q = Quorum({1, 2, 3})
    e = Election(1, q, resend_ms=100, resend_max_ms=400)
    e.start(0, 0, 0)
    sent = []
    for t in range(0, 3000, 10):
        e.out = []
        e.tick(t)
        if e.out:
            sent.append(t)
    gaps = [b - a for a, b in zip(sent, sent[1:])]
    assert gaps[:3] == [200, 400, 400] and set(gaps[3:]) == {400}


def test_joining_settled_servers_whose_votes_come_from_different_rounds():
    """Settled servers name the same leader with votes from different rounds: a looking server joins."""
    q = Quorum({1, 2, 3, 4, 5})
    e = Election(1, q)
    e.start(0, 3, 0x300000001)
    e.out = []
    e.on_notification(2, Notification(FOLLOWING, 4, 0x200000009, 5, 2, 0), 10)
    e.on_notification(3, Notification(FOLLOWING, 4, 0x300000000, 7, 3, 0), 10)
    assert not e.decided
    e.on_notification(4, Notification(LEADING, 4, 0x200000009, 5, 2, 0), 10)
    assert e.decided and e.decided[0] == 4


def test_a_server_that_turns_looking_late_hears_the_better_vote_at_once():
    """Failover: 1 notices the dead leader first and votes for itself (the better history); 2 is
    still following, so 1's notification never reaches 2's election. When 2 starts its own round
    with a worse vote, 1 answers it at once, without waiting for a resend (100 ms here)."""
    q = Quorum([1, 2, 3])
    e1, e2 = Election(1, q, finalize_ms=50), Election(2, q, finalize_ms=50)
    for e in (e1, e2):
        e.logical_clock = 4          # both settled in round 4 under leader 3
    e1.start(0, 2, 0x200000009)
    e1.out = []                      # sent to 2 while 2 was following: answered by its peer, not its election
    e2.start(5, 2, 0x200000005)
    for to, n in e2.out:
        if to == 1:
            e1.on_notification(2, n, 5)
    e2.out = []
    assert [(to, n.leader) for to, n in e1.out] == [(2, 1)]
    for to, n in e1.out:
        e2.on_notification(1, n, 5)  # 2 adopts 1 and tells everyone
    e1.out = []
    for to, n in e2.out:
        if to == 1:
            e1.on_notification(2, n, 5)
    assert e1.out == []              # agreement is not answered: no ping-pong
    e1.tick(55)
    assert e1.decided == (1, Vote(1, 0x200000009, 2))


def test_a_proposed_configuration_does_not_let_its_quorum_alone_decide():
    """Active voters [1, 2, 3], a reconfig to [2, 3, 5] proposed but not known committed: deciding
    needs a quorum of both (ZooKeeper's hasAllQuorums). With a quorum of either sufficing, server 2
    decided on itself with 5's vote while 3 led, then 3 with 5's vote while 2 led, and neither ever
    established (sweep seed 986213080)."""
    from coord.core.zab.quorum import Joint
    joint = Joint([Quorum([1, 2, 3]), Quorum([2, 3, 5])])
    e2 = Election(2, joint, finalize_ms=50)
    e2.start(0, 5, 0x400000002)
    # 5 (voter of the proposed configuration only) has adopted 2's vote; 3 leads elsewhere.
    e2.on_notification(5, Notification(LOOKING, 2, 0x400000002, e2.logical_clock, 5, 0), 1)
    e2.on_notification(3, Notification(LEADING, 3, 0x400000002, e2.logical_clock - 1, 5, 0), 2)
    e2.tick(500)
    assert e2.decided is None
    # Once 3 looks in the same round it wins on its id, and 2 and 3 together are a quorum of both.
    e2.on_notification(3, Notification(LOOKING, 3, 0x400000002, e2.logical_clock, 5, 0), 600)
    e2.tick(700)
    assert e2.decided is not None and e2.decided[0] == 3
