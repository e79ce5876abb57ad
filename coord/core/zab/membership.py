"""Who is in the ensemble, as one peer knows it: the active configuration and the reconfigurations
in its log that it does not yet know to be committed (ZooKeeper 3.5+'s quorumVerifier and
lastSeenQuorumVerifier).

Theory. A reconfig is an ordinary txn (SetDataTxn on /zookeeper/config, coord.core.reconfig) whose
data is the next configuration; its zxid is that configuration's version. From the moment a peer
logs one until it commits it, the peer's quorum is joint (quorum.Joint): a quorum of the active
voters and of the proposed ones. A leader elected, promised or synced by a joint quorum therefore
meets every server that may hold a txn committed under either configuration. Committing the
reconfig activates its configuration: from then on only the new voters count. Truncating the log
below a reconfig (a TRUNC sync) or replacing the tree (SNAP) forgets it.

Transitions: logged(entries) -> pending grows; truncated(z) / reset() -> pending shrinks;
activate(voters, observers, version) on commit -> active replaced, pending up to it dropped.
"""
from __future__ import annotations

from coord.core.zab.quorum import Joint, Quorum

RECONFIG = 16


def parse_config(data: bytes | None) -> tuple[dict, dict, int] | None:
    """(voters, observers, version) of /zookeeper/config data, None when it names no voter."""
    from coord.core import reconfig as rc
    try:
        members, version = rc.parse(data)
    except ValueError:
        return None
    voters = {s: q for s, q in members.items() if q.role == "participant"}
    observers = {s: q for s, q in members.items() if q.role == "observer"}
    if not voters:
        return None
    return voters, observers, version


class Membership:
    __slots__ = ("voters", "observers", "version", "active", "pending", "quorum")

    def __init__(self, voters: dict, observers: dict, version: int = 0):
        self.pending: list[tuple[int, Quorum, dict, dict, bytes]] = []   # (zxid, quorum, voters, observers, data)
        self.activate(voters, observers, version)

    def activate(self, voters: dict, observers: dict, version: int) -> None:
        self.voters = dict(voters)
        self.observers = {s: q for s, q in observers.items() if s not in self.voters}
        self.version = version
        self.active = Quorum(self.voters, self.observers)
        self.pending = [p for p in self.pending if p[0] > version]
        self._refresh()

    def logged(self, entries) -> bool:
        """Note the reconfigs among entries just appended to the log; True if there were any."""
        found = False
        for e in entries:
            if e.hdr.type == RECONFIG and e.hdr.zxid > self.version:
                data = getattr(e.txn, "data", None)
                cfg = parse_config(data)
                if cfg is not None:
                    v, o, _ = cfg
                    self.pending.append((e.hdr.zxid, Quorum(v, o), v, o, data))
                    found = True
        if found:
            self._refresh()
        return found

    def truncated(self, z: int) -> None:
        if self.pending and self.pending[-1][0] > z:
            self.pending = [p for p in self.pending if p[0] <= z]
            self._refresh()

    def reset(self) -> None:
        if self.pending:
            self.pending = []
            self._refresh()

    def _refresh(self) -> None:
        self.quorum = Joint([self.active] + [p[1] for p in self.pending]) if self.pending else self.active

    def pending_quorums(self) -> list[tuple[int, Quorum]]:
        return [(p[0], p[1]) for p in self.pending]

    def is_member(self, sid: int) -> bool:
        return sid in self.quorum.members()

    def all_members(self) -> dict:
        """Every server of the active and the proposed configurations (whom to keep links to)."""
        out = {**self.observers, **self.voters}
        for _, _, v, o, _ in self.pending:
            out.update(o)
            out.update(v)
        return out
