"""Invariant checkers, run as the simulation goes (every apply, snapshot load, epoch, client reply).

    one leader per epoch            no two servers establish the same epoch
    committed-prefix agreement      every server applies one global sequence of txns: each apply
                                    either repeats the txn the sequence has at that zxid, right after
                                    the same predecessor, or extends the sequence at its end
    equal digests at equal zxid     the tree digest after applying zxid z is the same everywhere,
                                    and every snapshot loaded matches it
    no acknowledged write lost      a write is acknowledged only once its txn is in the sequence,
                                    and the sequence is never rewritten (the previous check)
    committed means durable         a leader applies a txn only once it is on the disks of a quorum
                                    of the voters of the configuration in force at that zxid (the
                                    last reconfig in the sequence at or before it), and a reconfig
                                    itself on a quorum of the old voters as well
    reads never go back             each session's reply zxids never decrease (clients check)
    ephemerals die with sessions    after a session's closeSession no server holds its ephemerals,
                                    and no ephemeral is ever created for a closed session
    watches once and in order       (clients check, against `data_changes`/`child_changes`)
A violation raises SimFailure at once, with what was seen.
"""
from __future__ import annotations

import zlib
from bisect import bisect_right


class SimFailure(AssertionError):
    pass


class Checker:
    def __init__(self, world):
        self.world = world
        self.prev: dict[int, int] = {}           # zxid -> its predecessor in the global sequence
        self.tail = 0
        self.txn_crc: dict[int, int] = {}
        self.digest: dict[int, int] = {}
        self.by_req: dict[tuple[int, int], int] = {}
        self.data_changes: dict[str, list[int]] = {}
        self.child_changes: dict[str, list[int]] = {}
        self.closed: dict[int, int] = {}
        self.closed_at: dict[int, int] = {}
        self.created_sessions: dict[int, int] = {}
        self.pos: dict[int, int] = {}
        self.leaders: dict[int, int] = {}
        self.acked = 0
        self.applies = 0
        self.reconfigs: list[tuple[int, frozenset]] = []      # (zxid, voters) of committed reconfigs
        self.restores: dict[int, tuple[int, int]] = {}         # restored tree's zxid -> (digest, tail then)

    def fail(self, msg: str) -> None:
        raise SimFailure(msg)

    # -- servers ------------------------------------------------------------------------------------
    def _at(self, node, z: int, digest: int, what: str) -> None:
        if z == 0:
            d0 = self.digest.setdefault(0, digest)
            if d0 != digest:
                self.fail(f"server {node.sid}: {what} an empty tree with digest {digest:x} != {d0:x}")
            return
        if z in self.restores and z not in self.txn_crc:
            if self.restores[z][0] != digest:
                self.fail(f"server {node.sid}: {what} the restored tree at 0x{z:x} with digest {digest:x}, "
                          f"expected {self.restores[z][0]:x}")
            return
        if z not in self.txn_crc:
            self.fail(f"server {node.sid}: {what} a tree at 0x{z:x}, which no server ever applied")
        if self.digest[z] != digest:
            self.fail(f"server {node.sid}: {what} a tree at 0x{z:x} with digest {digest:x}, "
                      f"expected {self.digest[z]:x}")

    def node_booted(self, node, tree, dirty: bool = False) -> None:
        """dirty: the driver replayed its whole log into the tree, which may hold uncommitted txns;
        the peer must then never build on it (the next apply or snapshot shows whether it did)."""
        if not dirty:
            self._at(node, tree.last_zxid, tree.digest, "booted with")
        self.pos[node.sid] = tree.last_zxid

    def snapshot_loaded(self, node, tree) -> None:
        self._at(node, tree.last_zxid, tree.digest, "loaded a snapshot of")
        self.pos[node.sid] = tree.last_zxid

    def restored(self, node, tree) -> None:
        """A leader made a snapshot's tree its own at (new epoch, 0) (the AdminServer's restore),
        on top of everything committed so far."""
        self.restores[tree.last_zxid] = (tree.digest, self.tail)

    def node_crashed(self, node) -> None:
        pass

    def applied(self, node, e) -> None:
        self.applies += 1
        z = e.hdr.zxid
        prev = self.pos.get(node.sid, 0)
        tree = node.core.tree
        crc = zlib.crc32(e.blob)
        watches = node.core.watches
        touched = watches.touched
        watches.touched = []
        if z in self.txn_crc:
            if self.txn_crc[z] != crc:
                self.fail(f"server {node.sid} applied a different txn at 0x{z:x} than others did")
            if self.prev[z] != prev:
                self.fail(f"server {node.sid} applied 0x{z:x} after 0x{prev:x}; the committed sequence "
                          f"has it after 0x{self.prev[z]:x} (a lost or extra txn)")
            if self.digest[z] != tree.digest:
                self.fail(f"server {node.sid}: digest {tree.digest:x} at 0x{z:x}, others "
                          f"{self.digest[z]:x}")
        else:
            r = self.restores.get(prev)
            if prev != self.tail and r is not None and r[1] == self.tail and prev not in self.txn_crc:
                # the first txn after a restore: the restored tree joins the committed sequence
                # (a restore nobody builds on is abandoned, and then nobody may build on it later)
                self.prev[prev] = self.tail
                self.tail = prev
                self.txn_crc[prev] = 0
                self.digest[prev] = r[0]
            if prev != self.tail:
                self.fail(f"server {node.sid} applied new txn 0x{z:x} after 0x{prev:x}, but the committed "
                          f"sequence ends at 0x{self.tail:x}: the histories forked")
            self.prev[z] = prev
            self.tail = z
            self.txn_crc[z] = crc
            self.digest[z] = tree.digest
            h = e.hdr
            if h.cxid > 0 and h.type != -10:
                self.by_req[(h.clientId, h.cxid)] = z
            for kind, path, parent in touched:
                self.data_changes.setdefault(path, []).append(z)
                if kind != "changed":
                    self.child_changes.setdefault(parent, []).append(z)
                if kind == "deleted":
                    self.child_changes.setdefault(path, []).append(z)
            if h.type == -10:
                if h.clientId in self.created_sessions or h.clientId in self.closed:
                    self.fail(f"session 0x{h.clientId:x} created twice")
                self.created_sessions[h.clientId] = z
            elif h.type == -11 and h.clientId not in self.closed:
                self.closed[h.clientId] = z
                self.closed_at[h.clientId] = self.world.now
            elif h.type == 16:
                from coord.core.zab.membership import parse_config
                cfg = parse_config(e.txn.data)
                if cfg is None:
                    self.fail(f"server {node.sid} committed reconfig 0x{z:x} without a configuration")
                self.reconfigs.append((z, frozenset(cfg[0])))
        self.pos[node.sid] = z
        if node.role == "leading":
            self._committed_durably(node, z, crc)
        if e.hdr.type == -11:
            s = e.hdr.clientId
            if tree.ephemerals.get(s) or s in tree.sessions:
                self.fail(f"server {node.sid}: session 0x{s:x} closed at 0x{z:x} but still has "
                          f"{sorted(tree.ephemerals.get(s, ()))}")
        for kind, path, _ in touched:
            if kind == "created":
                n = tree.nodes.get(path)
                if n is not None and n.owner in self.closed and self.closed[n.owner] < z:
                    self.fail(f"server {node.sid}: ephemeral {path} created at 0x{z:x} for session "
                              f"0x{n.owner:x}, closed at 0x{self.closed[n.owner]:x}")

    def _committed_durably(self, leader, z: int, crc: int) -> None:
        """A leader applies z only once z is on disk on a quorum of voters (fsynced, or inside a
        durable snapshot): Zab's whole promise, checked against the simulated disks themselves."""
        w = self.world
        holders = {n.sid for n in w.nodes.values()
                   if n.disk.durable.get(z) == crc or n.disk.snap_cover >= z}
        for voters in self.voters_at(z):
            if len(holders & voters) < len(voters) // 2 + 1:
                self.fail(f"leader {leader.sid} committed 0x{z:x}, durable only on {sorted(holders)}; "
                          f"voters {sorted(voters)}")

    @property
    def configs(self) -> list[tuple[int, frozenset]]:
        """(zxid, voters): the world's initial voters at 0, then every committed reconfig."""
        return [(0, frozenset(self.world.voters))] + self.reconfigs

    def voters_at(self, z: int) -> list[frozenset]:
        """The voter sets whose quorum must hold txn z."""
        cs = self.configs
        i = len(cs) - 1
        while cs[i][0] > z:
            i -= 1
        return [cs[i][1], cs[i - 1][1]] if cs[i][0] == z and i > 0 else [cs[i][1]]

    @property
    def voters(self) -> frozenset:
        """The voters of the newest committed configuration."""
        return self.configs[-1][1]

    def message_sent(self, node, msg) -> None:
        """Promises must be on disk before they are made."""
        from coord.core.zab import messages as M
        a, c = node.disk.epochs
        if type(msg) is M.AckEpoch and msg.fresh and a < msg.epoch:
            self.fail(f"server {node.sid} sent ACKEPOCH({msg.epoch}) with accepted epoch {a} on disk")
        if type(msg) is M.AckNewLeader:
            if c < msg.epoch:
                self.fail(f"server {node.sid} acked NEWLEADER({msg.epoch}) with current epoch {c} on disk")
            self._durable_to(node, msg.zxid, "NEWLEADER")
        if type(msg) is M.Ack:
            self._durable_to(node, msg.zxid, "a proposal")
        if type(msg) is M.LeaderInfo and a < msg.epoch:
            self.fail(f"server {node.sid} proposed epoch {msg.epoch} with accepted epoch {a} on disk")

    def _durable_to(self, node, z: int, what: str) -> None:
        d = node.disk
        if z and d.durable.get(z) is None and d.snap_cover < z:
            self.fail(f"server {node.sid} acked {what} at 0x{z:x}, which is not on its disk")

    def established(self, node, epoch: int) -> None:
        who = self.leaders.setdefault(epoch, node.sid)
        if who != node.sid:
            self.fail(f"two leaders established epoch {epoch}: {who} and {node.sid}")

    def epochs_asked(self, node, accepted: int, current: int) -> None:
        if current > accepted:
            self.fail(f"server {node.sid} persisting current epoch {current} above accepted {accepted}")

    def role(self, node, name: str) -> None:
        pass

    # -- clients ------------------------------------------------------------------------------------
    def write_acked(self, session_id: int, cxid: int, reply_zxid: int, what: str) -> None:
        z = self.by_req.get((session_id, cxid))
        if z is None:
            self.fail(f"session 0x{session_id:x} got a reply to write {cxid} ({what}) that no server "
                      f"has committed")
        if z > reply_zxid:
            self.fail(f"reply to write {cxid} of 0x{session_id:x} carries zxid 0x{reply_zxid:x} below "
                      f"its txn 0x{z:x}")
        self.acked += 1

    def first_change(self, path: str, after: int, child: bool) -> int | None:
        lst = (self.child_changes if child else self.data_changes).get(path)
        if not lst:
            return None
        i = bisect_right(lst, after)
        return lst[i] if i < len(lst) else None
