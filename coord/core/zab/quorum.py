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
