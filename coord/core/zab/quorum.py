"""Majority quorums over the voting members; observers never count.

A set of servers is a quorum when it holds more than half of the voters. Any two quorums share a
voter, which is what every Zab guarantee rests on: an epoch promised by one quorum and a history
acknowledged by another always meet in some server that remembers both.
"""
from __future__ import annotations


class Quorum:
    __slots__ = ("voters", "observers", "need")

    def __init__(self, voters, observers=()):
        self.voters = frozenset(voters)
        self.observers = frozenset(observers) - self.voters
        if not self.voters:
            raise ValueError("an ensemble needs at least one voter")
        self.need = len(self.voters) // 2 + 1

    def is_quorum(self, sids) -> bool:
        """More than half of the voters are in sids (anything else in sids is ignored)."""
        n = 0
        for s in sids:
            if s in self.voters:
                n += 1
        return n >= self.need

    def is_voter(self, sid: int) -> bool:
        return sid in self.voters

    is_some_quorum = is_quorum

    def members(self) -> frozenset:
        return self.voters | self.observers

    def quorum_value(self, values: dict) -> int | None:
        """The largest v such that a quorum of voters have values >= v (their acked zxids, say).
        Voters missing from values count as having nothing. None when fewer than a quorum reported."""
        vs = sorted((v for s, v in values.items() if s in self.voters), reverse=True)
        if len(vs) < self.need:
            return None
        return vs[self.need - 1]

    def __repr__(self):
        return f"Quorum(voters={sorted(self.voters)}, observers={sorted(self.observers)})"


class Joint:
    """The quorum while reconfigurations are proposed but not yet active (ZooKeeper 3.5+'s
    lastSeenQuorumVerifier beside its quorumVerifier): a set is a quorum only when it is one in the
    active configuration *and* in every proposed one. Then a history promised or acknowledged by a
    joint quorum meets every quorum of either side, whichever configuration the ensemble ends in."""
    __slots__ = ("parts", "voters", "observers")

    def __init__(self, parts):
        self.parts = tuple(parts)
        self.voters = frozenset().union(*(q.voters for q in self.parts))
        self.observers = frozenset().union(*(q.observers for q in self.parts)) - self.voters

    def is_quorum(self, sids) -> bool:
        sids = set(sids)
        return all(q.is_quorum(sids) for q in self.parts)

    def is_some_quorum(self, sids) -> bool:
        """A quorum of at least one of the configurations (for joining an established leader)."""
        sids = set(sids)
        return any(q.is_quorum(sids) for q in self.parts)

    def is_voter(self, sid: int) -> bool:
        return sid in self.voters

    def members(self) -> frozenset:
        return self.voters | self.observers

    def quorum_value(self, values: dict) -> int | None:
        vs = [q.quorum_value(values) for q in self.parts]
        return None if any(v is None for v in vs) else min(vs)

    def __repr__(self):
        return f"Joint({', '.join(map(repr, self.parts))})"


def commit_point(active: Quorum, pending, acks: dict) -> int | None:
    """The highest zxid that may commit given cumulative acks {sid: acked zxid}: a quorum of the
    active voters holds it, and from each proposed reconfiguration (zxid, Quorum) on, a quorum of
    that configuration's voters too (ZooKeeper's Proposal.qvAcksetPairs): the reconfig txn and
    everything after it until it is active need both quorums."""
    z = active.quorum_value(acks)
    if z is None:
        return None
    for rz, q in pending:
        if z < rz:
            break
        zq = q.quorum_value(acks)
        if zq is None or zq < rz:
            return rz - 1
        z = min(z, zq)
    return z
