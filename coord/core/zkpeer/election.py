"""Finding the ZooKeeper leader as ZooKeeper's observers do (FastLeaderElection.lookForLeader for a
non-voting peer): send our vote to every voter's election port; a voter answers a non-voter at once
with its own current vote and state. A non-voter votes for nobody (Long.MIN_VALUE). The leader is
settled once the would-be leader itself says LEADING and a quorum of voters report the same leader
in the same epoch (receivedFollowingNotification with checkLeader): a voter that is itself looking
does not count, so during a ZooKeeper election we keep asking until a new leader is established.
"""
from __future__ import annotations

from coord.jute.quorum import FOLLOWING, LEADING, OBSERVING, Notification

NO_VOTE = -(1 << 63)


class LeaderFinder:
    def __init__(self, sid: int, voters: set[int], config: bytes = b""):
        self.sid = sid
        self.voters = set(voters)
        self.config = config
        self.round = 1
        self.votes: dict[int, Notification] = {}

    def notification(self) -> Notification:
        return Notification(OBSERVING, NO_VOTE, NO_VOTE, self.round, NO_VOTE, config=self.config)

    def on_notification(self, sender: int, n: Notification) -> int | None:
        """Record a voter's answer; the settled leader's sid, or None while it is not settled."""
        if sender not in self.voters:
            return None
        self.votes[sender] = n
        return self.leader()

    def forget(self, sender: int) -> None:
        self.votes.pop(sender, None)

    def leader(self) -> int | None:
        for cand, n in self.votes.items():
            if n.state != LEADING or n.leader != cand:
                continue
            agree = sum(1 for v in self.votes.values()
                        if v.state in (LEADING, FOLLOWING) and v.leader == cand and v.peer_epoch == n.peer_epoch)
            if 2 * agree > len(self.voters):
                return cand
        return None

    def restart(self) -> None:
        self.round += 1
        self.votes.clear()
