"""Fast leader election, in the manner of ZooKeeper's FastLeaderElection.

Theory. A vote names a leader together with that server's (peer epoch, last zxid); votes are totally
ordered by (peer_epoch, zxid, sid), so the best vote names the server whose history is the most
recent, ties broken by id. Every looking voter starts by voting for itself and tells every other
voter; on hearing a better vote in its round it adopts it and tells everyone again. Rounds are
numbered by a logical clock (the election epoch): a notification from a later round makes the
receiver join that round afresh; one from an earlier round is answered with our vote so its sender
catches up. Once the votes of a quorum of voters in our round agree with our proposal, we wait
`election_finalize_ms` for a better vote; if none comes the proposal is final: its leader leads and
everyone else follows (observers observe).

A server that is already following or leading answers a looking one with the vote it settled on and
its state. A looking server that finds a quorum of such settled servers naming one leader (their
votes may come from different rounds), who itself says it is leading, joins that leader directly (ZooKeeper's "out of election" path): that is how a
restarted server, or an observer, finds an ensemble that is not electing.

Election decides only who *tries* to lead. Safety never depends on it: the chosen leader still needs
a quorum to promise it a new epoch (discovery) and to accept its history (synchronisation).

Transitions (all inputs carry the time; outputs are (to_sid, Notification) pairs in `self.out`):
    start(now, epoch, zxid)         -> round logical_clock+1, vote for self, notify all voters
    on_notification(sid, n, now)    -> maybe adopt, re-notify, arm the finalize timer, or decide
    tick(now)                       -> resend with backoff; decide when the finalize timer fires
The result is `self.decided`: (leader_sid, Vote) or None.
"""
from __future__ import annotations

from coord.core.zab.messages import LEADING, LOOKING, NF_NON_VOTING, OBSERVING, Notification
from coord.core.zab.quorum import Quorum


class Vote:
    """(leader, zxid, peer_epoch) with the total order of ZooKeeper's totalOrderPredicate."""
    __slots__ = ("leader", "zxid", "peer_epoch")

    def __init__(self, leader: int, zxid: int, peer_epoch: int):
        self.leader = leader
        self.zxid = zxid
        self.peer_epoch = peer_epoch

    def key(self) -> tuple[int, int, int]:
        return (self.peer_epoch, self.zxid, self.leader)

    def __eq__(self, other):
        return isinstance(other, Vote) and self.key() == other.key()

    def __hash__(self):
        return hash(self.key())

    def __repr__(self):
        return f"Vote(leader={self.leader}, zxid=0x{self.zxid:x}, epoch={self.peer_epoch})"


def better(a: Vote, b: Vote) -> bool:
    """a is strictly better than b."""
    return a.key() > b.key()


class Election:
    def __init__(self, sid: int, quorum: Quorum, *, finalize_ms: int = 50, resend_ms: int = 100,
                 resend_max_ms: int = 2000):
        self.sid = sid
        self.quorum = quorum
        self.voting = quorum.is_voter(sid)
        self.finalize_ms = finalize_ms
        self.resend_ms = resend_ms
        self.resend_max_ms = resend_max_ms
        self.logical_clock = 0
        self.active = False
        self.own: Vote | None = None
        self.proposal: Vote | None = None
        self.recv: dict[int, Vote] = {}                              # this round's looking votes
        self.settled: dict[int, tuple[int, Vote, int]] = {}          # sid -> (state, vote, election epoch)
        self.decide_at: int | None = None
        self.next_resend = 0
        self.interval = resend_ms
        self.decided: tuple[int, Vote] | None = None
        self.out: list[tuple[int, Notification]] = []

    # -- inputs -----------------------------------------------------------------------------------
    def start(self, now: int, peer_epoch: int, zxid: int) -> None:
        self.active = True
        self.decided = None
        self.logical_clock += 1
        self.recv.clear()
        self.settled.clear()
        self.decide_at = None
        self.own = Vote(self.sid, zxid, peer_epoch)
        if self.voting:
            self._propose(self.own)
        else:
            self.proposal = None
        self.interval = self.resend_ms
        self._notify_all(now)
        self._check(now)

    def stop(self) -> None:
        self.active = False
        self.decide_at = None

    def on_notification(self, sender: int, n: Notification, now: int) -> None:
        """Only called while active (looking); the peer answers notifications itself otherwise."""
        vote = Vote(n.leader, n.zxid, n.peer_epoch)
        sender_votes = self.quorum.is_voter(sender) and not (n.flags & NF_NON_VOTING)
        if n.state == OBSERVING:
            return                   # a settled observer has nothing to tell an election
        if n.state == LOOKING:
            if not sender_votes:
                self._send(sender)   # an observer or non-voter looking: tell it what we think
                return
            if not self.voting:
                return               # a looking observer waits for settled servers
            if n.election_epoch > self.logical_clock:
                self.logical_clock = n.election_epoch
                self.recv.clear()
                self.decide_at = None
                self._propose(vote if better(vote, self.own) else self.own)
                self._notify_all(now)
            elif n.election_epoch < self.logical_clock:
                self._send(sender)   # it is behind: our notification lets it catch up
                return
            elif better(vote, self.proposal):
                self.decide_at = None
                self._propose(vote)
                self._notify_all(now)
            elif vote != self.proposal:
                # It votes worse than we do in our own round: it may have cleared our notification
                # when it started this round (a follower only turns looking when it notices the
                # leader is gone), so tell it again now rather than at the next resend (100 ms+).
                # It adopts ours and answers with it, which we do not answer: no ping-pong.
                self._send(sender)
            if sender_votes:
                self.recv[sender] = vote
            self._check(now)
            return
        # the sender has settled (following or leading)
        if sender_votes or n.state == LEADING:
            self.settled[sender] = (n.state, vote, n.election_epoch)
        if self.voting and n.election_epoch == self.logical_clock and sender_votes:
            self.recv[sender] = vote
        self._check_settled(n.leader, n.peer_epoch, n.election_epoch)

    def tick(self, now: int) -> None:
        if not self.active or self.decided:
            return
        if self.decide_at is not None and now >= self.decide_at:
            self._decide(self.proposal)
            return
        if now >= self.next_resend:
            self.interval = min(self.interval * 2, self.resend_max_ms)
            self._notify_all(now)

    # -- internals ---------------------------------------------------------------------------------
    def _propose(self, vote: Vote) -> None:
        self.proposal = vote
        self.recv[self.sid] = vote

    def notification(self, state: int = LOOKING) -> Notification:
        v = self.proposal or self.own
        flags = 0 if self.voting else NF_NON_VOTING
        return Notification(state, v.leader, v.zxid, self.logical_clock, v.peer_epoch, flags)

    def _send(self, to: int) -> None:
        if to != self.sid:
            self.out.append((to, self.notification(LOOKING)))

    def _notify_all(self, now: int) -> None:
        self.next_resend = now + self.interval
        for s in sorted(self.quorum.voters):
            self._send(s)

    def _check(self, now: int) -> None:
        if not self.voting or self.decided:
            return
        p = self.proposal
        agree = [s for s, v in self.recv.items() if v == p]
        # A quorum of every configuration we know of, the active one and each proposed one (as
        # ZooKeeper's hasAllQuorums): a quorum of just one of them lets two servers, each agreed on
        # by one side's quorum, decide for themselves in turn and neither ever establish.
        if not self.quorum.is_quorum(agree):
            self.decide_at = None
            return
        if len(set(agree) & self.quorum.voters) == len(self.quorum.voters):
            self._decide(p)          # every voter agrees: nothing better can come
            return
        if self.decide_at is None:
            self.decide_at = now + self.finalize_ms

    def _check_settled(self, leader: int, peer_epoch: int, election_epoch: int) -> None:
        if self.decided:
            return
        # Settled servers may hold votes from different rounds (some joined this leader later, through
        # this same path), so only the leader they name must agree; the leader itself must say it leads.
        same = [s for s, (st, v, ee) in self.settled.items() if v.leader == leader]
        if not self.quorum.is_some_quorum(same):
            return
        if leader != self.sid:
            lead = self.settled.get(leader)
            if lead is None or lead[0] != LEADING:
                return
        elif election_epoch != self.logical_clock:
            return
        self.logical_clock = max(self.logical_clock, election_epoch)
        self._decide(Vote(leader, self.settled[leader][1].zxid if leader in self.settled else 0, peer_epoch))

    def _decide(self, vote: Vote) -> None:
        self.decided = (vote.leader, vote)
        self.proposal = vote
        self.active = False
        self.decide_at = None
