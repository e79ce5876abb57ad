"""Kafka's partition leader election algorithms (PartitionLeaderElectionAlgorithms), pure functions.

- offline: the first replica in assignment order that is alive and in the ISR; the new ISR is the
  live part of the old one. With unclean election enabled and no such replica, the first live
  replica leads alone (data loss is accepted).
- preferred: the first assigned replica, if it is alive and in the ISR.
- removing a dead replica from the ISR never empties it: the last member stays, so a clean
  election is possible when it returns (ReplicaStateMachine.removeReplicasFromIsr).
"""
from __future__ import annotations

from typing import Collection, Sequence

from .model import NO_LEADER, PartitionState


def offline_partition_leader(assignment: Sequence[int], isr: Sequence[int], live: Collection[int],
                             unclean: bool) -> tuple[int, tuple[int, ...]] | None:
    for r in assignment:
        if r in live and r in isr:
            return r, tuple(i for i in isr if i in live)
    if unclean:
        for r in assignment:
            if r in live:
                return r, (r,)
    return None


def preferred_replica_leader(assignment: Sequence[int], isr: Sequence[int], live: Collection[int]) -> int | None:
    if assignment and assignment[0] in live and assignment[0] in isr:
        return assignment[0]
    return None


def remove_replicas_from_isr(state: PartitionState, replicas: Collection[int]) -> PartitionState:
    """Dead replicas leave the ISR (but not its last member); a dead leader becomes NoLeader."""
    isr = list(state.isr)
    leader = state.leader
    for r in replicas:
        if r in isr and len(isr) > 1:
            isr.remove(r)
        if r == leader:
            leader = NO_LEADER
    return state.new_leader_and_isr(leader, isr)


def needs_leader(state: PartitionState, live: Collection[int]) -> bool:
    return state.leader == NO_LEADER or state.leader not in live
