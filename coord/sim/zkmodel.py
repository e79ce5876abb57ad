"""A model of a ZooKeeper 3.8 ensemble's side of the peer link, for the simulator: real JVMs cannot
run on its virtual clock, so coord observers are driven by this instead (checked against a real
ZooKeeper ensemble by tests/zkpeer/test_sim_model_differential.py).

What is modelled, in ZooKeeper's own records (coord.jute.quorum), byte for byte:
  voters     each keeps a txn log (durable on receipt); the leader sends PROPOSAL, voters ACK, a
             quorum of ACKs (the leader's own included) commits: COMMIT to voters, INFORM to every
             observer in broadcast.
  learners   LearnerHandler for observers: OBSERVERINFO -> LEADERINFO -> ACKEPOCH, then the sync
             syncFollower chooses (DIFF: PROPOSAL+COMMIT pairs from the observer's zxid when it is
             within the committed log; TRUNC when it is past the leader's last; SNAP otherwise, the
             tree serialised as SerializeUtils.serializeSnapshot does), NEWLEADER, (ACK), UPTODATE;
             PING every half tick, answered with session touches; REQUEST (writes, createSession,
             closeSession), REVALIDATE and SYNC from observers.
  sessions   the leader expires a session no one touched for its timeout (closeSession txn); a new
             leader restarts every session's clock, as ZooKeeper does.
What is not: FastLeaderElection between voters and the voters' own sync (an election is decided
abstractly: among a connected quorum of live voters the one with the highest logged zxid leads, in
an epoch above every one they accepted, and the others take its log); observers find the leader
through real Notification records (coord.core.zkpeer.election).
"""
from __future__ import annotations

import struct

from coord.core.datatree import DataTree
from coord.core.prep import Prep, PrepError
from coord.core.zab.sequencer import decode_request_body
from coord.core.zkpeer.digest import DIGEST_VERSION, ZkDigest
from coord.core.zkpeer.txnentry import decode_txn_entry
from coord.core.zkpeer.wiresnap import SIGNATURE
from coord.jute import quorum as Q
from coord.jute import records as R

_I = struct.Struct(">i")
_QI = struct.Struct(">qi")
_REQ = struct.Struct(">qii")
_DIGEST = struct.Struct(">iq")
_STAT = struct.Struct(">qqqqiiiqq")


def zxid_of(epoch: int, counter: int) -> int:
    return (epoch << 32) | counter


def _ustring(s: str | None) -> bytes:
    if s is None:
        return _I.pack(-1)
    b = s.encode()
    return _I.pack(len(b)) + b


def encode_wire_snapshot(tree: DataTree) -> bytes:
    """SerializeUtils.serializeSnapshot + the signature: sessions, the ACL cache, nodes parents first
    (the root as ""), "/" ending the list, then "BenWasHere"."""
    out = bytearray(_I.pack(len(tree.sessions)))
    for sid, to in sorted(tree.sessions.items()):
        out += _QI.pack(sid, to)
    acl_ids: dict[tuple, int] = {}
    order = []
    stack = ["/"]
    while stack:
        p = stack.pop()
        n = tree.nodes[p]
        order.append((p, n))
        if n.acl not in acl_ids:
            acl_ids[n.acl] = len(acl_ids) + 1
        base = "" if p == "/" else p
        for c in sorted(n.children or (), reverse=True):
            stack.append(base + "/" + c)
    out += _I.pack(len(acl_ids))
    for acl, key in acl_ids.items():
        out += struct.pack(">qi", key, len(acl))
        for perms, scheme, ident in acl:
            out += _I.pack(perms) + _ustring(scheme) + _ustring(ident)
    for p, n in order:
        out += _ustring("" if p == "/" else p)
        out += _I.pack(-1) if n.data is None else _I.pack(len(n.data)) + n.data
        out += struct.pack(">q", acl_ids[n.acl])
        out += _STAT.pack(n.czxid, n.mzxid, n.ctime, n.mtime, n.version, n.cversion, n.aversion, n.owner, n.pzxid)
    out += _ustring("/") + _ustring(SIGNATURE)
    return bytes(out)


def entry_bytes(hdr, txn, digest: int | None) -> bytes:
    b = hdr.encode() + (txn.encode() if txn is not None else b"")
    if digest is not None:
        b += _DIGEST.pack(DIGEST_VERSION, digest - (1 << 64) if digest >= 1 << 63 else digest)
    return b


class Txn:
    __slots__ = ("zxid", "hdr", "txn", "data", "digest")

    def __init__(self, hdr, txn, digest: int):
        self.zxid = hdr.zxid
        self.hdr = hdr
        self.txn = txn
        self.digest = digest
        self.data = entry_bytes(hdr, txn, digest)


class Voter:
    """One ZooKeeper voter: its log survives a crash (the model's fsync is instant)."""

    def __init__(self, sid: int):
        self.sid = sid
        self.up = True
        self.log: list[Txn] = []
        self.accepted_epoch = 0
        self.state = Q.LOOKING
        self.leader = 0
        self.round = 1

    @property
    def last_zxid(self) -> int:
        return self.log[-1].zxid if self.log else 0


class Handler:
    """The leader's LearnerHandler for one observer."""

    def __init__(self, sid: int):
        self.sid = sid
        self.stream = Q.PacketStream(1 << 20)
        self.phase = "info"            # info -> ackepoch -> newleader-ack -> serving
        self.last_heard = 0


class Leader:
    """The leader of one epoch: a Prep over the proposed tree stamps digests as ZooKeeper's
    PrepRequestProcessor does; `ctree` is the committed tree a SNAP serialises."""

    def __init__(self, ens: "ZkEnsemble", sid: int, epoch: int, committed: list[Txn], now_ms: int):
        self.ens = ens
        self.sid = sid
        self.epoch = epoch
        self.counter = 0
        self.ctree = DataTree()
        for t in committed:
            self.ctree.apply(t.hdr, t.txn)
        self.ptree = DataTree()
        for t in committed:
            self.ptree.apply(t.hdr, t.txn)
        self.prep = Prep(self.ptree)
        self.digest = ZkDigest(self.ptree)
        self.acks: dict[int, set[int]] = {}
        self.proposed: list[Txn] = []          # not yet committed, in order
        self.handlers: dict[int, Handler] = {}
        self.sessions: dict[int, int] = {sid_: now_ms + to for sid_, to in self.ctree.sessions.items()}
        self.closing: set[int] = set()

    # -- proposals ------------------------------------------------------------------------------------
    def propose(self, session_id: int, cxid: int, type_: int, req, auth=()) -> Txn | None:
        ens = self.ens
        self.counter += 1
        zxid = zxid_of(self.epoch, self.counter)
        now = ens.world.now + 1_700_000_000_000
        if type_ == -10:
            hdr, txn = R.TxnHeader(session_id, cxid, zxid, now, -10), req
        elif type_ == -11:
            if session_id not in self.ptree.sessions or session_id in self.closing:
                self.counter -= 1
                return None
            self.closing.add(session_id)
            hdr, txn = R.TxnHeader(session_id, cxid, zxid, now, -11), self.prep.close_session(session_id, zxid)
        else:
            if session_id not in self.ptree.sessions or session_id in self.closing:
                hdr, txn = R.TxnHeader(session_id, cxid, zxid, now, -1), R.ErrorTxn(-112)
            else:
                try:
                    hdr, txn = R.TxnHeader(session_id, cxid, zxid, now, type_), self.prep.op(
                        type_, req, session_id, list(auth), zxid, now)
                except PrepError as e:
                    hdr, txn = R.TxnHeader(session_id, cxid, zxid, now, -1), R.ErrorTxn(int(e.err))
        paths = self.digest.before(self.ptree, hdr, txn)
        self.ptree.apply(hdr, txn)
        self.prep.applied(zxid)
        d = self.digest.after(self.ptree, paths)
        t = Txn(hdr, txn, d)
        if type_ == -10:
            self.sessions[session_id] = ens.world.now + txn.timeOut
        self.proposed.append(t)
        me = ens.voters[self.sid]
        me.log.append(t)
        self.acks[zxid] = {self.sid}
        pkt = Q.QuorumPacket(Q.PROPOSAL, zxid, t.data).encode()
        for v in ens.following(self.sid):
            ens.send(self.sid, v, pkt)
        self._maybe_commit()
        return t

    def on_ack(self, frm: int, zxid: int) -> None:
        a = self.acks.get(zxid)
        if a is not None:
            a.add(frm)
            self._maybe_commit()

    def _maybe_commit(self) -> None:
        ens = self.ens
        while self.proposed and 2 * len(self.acks[self.proposed[0].zxid]) > len(ens.voters):
            t = self.proposed.pop(0)
            del self.acks[t.zxid]
            self.ctree.apply(t.hdr, t.txn)
            ens.committed_txn(t)
            c = Q.QuorumPacket(Q.COMMIT, t.zxid).encode()
            for v in ens.following(self.sid):
                ens.send(self.sid, v, c)
            inform = Q.QuorumPacket(Q.INFORM, t.zxid, t.data).encode()
            for h in list(self.handlers.values()):
                if h.phase != "info" and h.phase != "ackepoch":
                    ens.send(self.sid, h.sid, inform)
            if t.hdr.type == -11:
                self.sessions.pop(t.hdr.clientId, None)
                self.closing.discard(t.hdr.clientId)

    # -- sessions -------------------------------------------------------------------------------------
    def touch(self, sid: int, timeout: int) -> None:
        if sid in self.sessions and sid not in self.closing:
            self.sessions[sid] = max(self.sessions[sid], self.ens.world.now + timeout)

    def expire(self) -> None:
        now = self.ens.world.now
        for sid, deadline in sorted(self.sessions.items()):
            if deadline <= now and sid not in self.closing:
                self.ens.note(f"ZooKeeper leader {self.sid} expires session 0x{sid:x}")
                self.ens.expired.add(sid)
                self.propose(sid, 0, -11, None)

    # -- observers ------------------------------------------------------------------------------------
    def observer_up(self, sid: int) -> None:
        h = self.handlers[sid] = Handler(sid)
        h.last_heard = self.ens.world.now

    def observer_data(self, sid: int, data: bytes) -> None:
        h = self.handlers.get(sid)
        if h is None:
            return
        h.last_heard = self.ens.world.now
        h.stream.feed(data)
        try:
            while (qp := h.stream.next_packet()) is not None:
                self._observer_packet(h, qp)
        except Q.QuorumWireError as e:
            self.ens.drop_observer(self.sid, sid, f"bad packet: {e}")

    def _send(self, h: Handler, type_: int, zxid: int, data: bytes | None = None) -> None:
        self.ens.send(self.sid, h.sid, Q.QuorumPacket(type_, zxid, data).encode())

    def _observer_packet(self, h: Handler, qp: Q.QuorumPacket) -> None:
        ens = self.ens
        if h.phase == "info":
            if qp.type != Q.OBSERVERINFO:
                return ens.drop_observer(self.sid, h.sid, f"expected OBSERVERINFO, got {qp!r}")
            h.phase = "ackepoch"
            return self._send(h, Q.LEADERINFO, zxid_of(self.epoch, 0), _I.pack(Q.LEARNER_PROTOCOL))
        if h.phase == "ackepoch":
            if qp.type != Q.ACKEPOCH:
                return ens.drop_observer(self.sid, h.sid, f"expected ACKEPOCH, got {qp!r}")
            return self._sync(h, qp.zxid)
        if qp.type == Q.ACK:
            if h.phase == "newleader-ack":
                h.phase = "serving"
                self._send(h, Q.UPTODATE, -1)
            return
        if qp.type == Q.PING:
            d = qp.data or b""
            for i in range(0, len(d) - 11, 12):
                sid, to = _QI.unpack_from(d, i)
                self.touch(sid, to)
            return
        if qp.type == Q.REQUEST:
            return self._request(h, qp)
        if qp.type == Q.REVALIDATE:
            sid, to = _QI.unpack_from(qp.data or b"", 0)
            valid = sid in self.sessions and sid not in self.closing
            if valid:
                self.touch(sid, to)
            return self._send(h, Q.REVALIDATE, -1, struct.pack(">q?", sid, valid))
        ens.drop_observer(self.sid, h.sid, f"unexpected {qp!r}")

    def _request(self, h: Handler, qp: Q.QuorumPacket) -> None:
        d = qp.data or b""
        if len(d) < _REQ.size:
            return self.ens.drop_observer(self.sid, h.sid, "short REQUEST")
        sid, cxid, type_ = _REQ.unpack_from(d, 0)
        body = d[_REQ.size:]
        if type_ == 9:
            # everything the leader had when the sync arrived goes out first (FIFO per learner)
            ens = self.ens
            if not self.proposed:
                return self._send(h, Q.SYNC, -1)
            ens.pending_syncs.setdefault(self.proposed[-1].zxid, []).append(h.sid)
            return
        try:
            req = decode_request_body(type_, body)
        except ValueError as e:
            return self.ens.drop_observer(self.sid, h.sid, f"REQUEST does not decode: {e}")
        self.propose(sid, cxid, type_, req, qp.authinfo or ())

    def _sync(self, h: Handler, peer_last: int) -> None:
        """LearnerHandler.syncFollower, for a learner that only ever holds committed txns."""
        ens = self.ens
        committed = ens.committed
        last = committed[-1].zxid if committed else 0
        lo = ens.history_floor()
        if peer_last == last:
            self._send(h, Q.DIFF, last)
            kind = "DIFF"
        elif peer_last > last:
            self._send(h, Q.TRUNC, last)
            kind = "TRUNC"
        elif lo <= peer_last and peer_last in ens.committed_at:
            self._send(h, Q.DIFF, last)
            for t in committed[ens.committed_at[peer_last] + 1:]:
                self._send(h, Q.PROPOSAL, t.zxid, t.data)
                self._send(h, Q.COMMIT, t.zxid)
            kind = "DIFF"
        else:
            self.ens.send(self.sid, h.sid, Q.QuorumPacket(Q.SNAP, last).encode()
                          + encode_wire_snapshot(self.ctree))
            kind = "SNAP"
        ens.syncs[kind] = ens.syncs.get(kind, 0) + 1
        h.phase = "newleader-ack"
        self._send(h, Q.NEWLEADER, zxid_of(self.epoch, 0))

    def ping(self) -> None:
        now = self.ens.world.now
        for h in list(self.handlers.values()):
            if now - h.last_heard > self.ens.sync_limit_ms:
                self.ens.drop_observer(self.sid, h.sid, "no answer within syncLimit")
            elif h.phase == "serving":
                self._send(h, Q.PING, self.ctree.last_zxid)


class ZkEnsemble:
    """The voters and, when one is elected, their leader; `committed` is the one sequence of txns
    the ensemble ever committed (what every observer's tree must be a prefix of)."""

    def __init__(self, world, n: int, history: int, sync_limit_ms: int = 1000):
        self.world = world
        self.voters = {s: Voter(s) for s in range(1, n + 1)}
        self.leader: Leader | None = None
        self.committed: list[Txn] = []
        self.committed_at: dict[int, int] = {}
        self.history = history
        self.sync_limit_ms = sync_limit_ms
        self.pending_syncs: dict[int, list[int]] = {}
        self.syncs: dict[str, int] = {}
        self.expired: set[int] = set()
        self.epochs = 0

    def note(self, text: str) -> None:
        self.world.note(text)

    def send(self, a: int, b: int, data: bytes) -> None:
        self.world.net.send(a, b, data)

    def following(self, leader: int) -> list[int]:
        return [s for s, v in self.voters.items() if s != leader and v.up and v.state == Q.FOLLOWING
                and v.leader == leader]

    def history_floor(self) -> int:
        """The oldest zxid a DIFF can start from (minCommittedLog)."""
        c = self.committed
        if len(c) <= self.history:
            return 0
        return c[len(c) - self.history - 1].zxid

    def committed_txn(self, t: Txn) -> None:
        c = self.committed
        if c and t.zxid <= c[-1].zxid:
            raise AssertionError(f"model: commit of 0x{t.zxid:x} after 0x{c[-1].zxid:x}")
        self.committed_at[t.zxid] = len(c)
        c.append(t)
        for sid in self.pending_syncs.pop(t.zxid, ()):
            if self.leader is not None and sid in self.leader.handlers:
                self.leader._send(self.leader.handlers[sid], Q.SYNC, -1)

    # -- elections --------------------------------------------------------------------------------------
    def component(self, sid: int) -> set[int]:
        net = self.world.net
        return {s for s, v in self.voters.items() if v.up and (s == sid or net.reachable(s, sid))}

    def tick(self) -> None:
        """Elections, leader step-down and followers rejoining: ZooKeeper's outcome, not its messages."""
        quorum = len(self.voters) // 2 + 1
        ld = self.leader
        if ld is not None:
            comp = self.component(ld.sid)
            if not self.voters[ld.sid].up or len(comp) < quorum:
                self.step_down("lost its quorum" if self.voters[ld.sid].up else "crashed")
                ld = None
            else:
                for s in comp:
                    v = self.voters[s]
                    if v.state != Q.FOLLOWING and s != ld.sid:
                        self._sync_voter(v, ld)
                ld.expire()
                for s, v in self.voters.items():
                    if v.state == Q.FOLLOWING and s not in comp:
                        v.state, v.leader = Q.LOOKING, 0
        if ld is None:
            for s, v in sorted(self.voters.items()):
                if not v.up:
                    continue
                comp = self.component(s)
                if len(comp) >= quorum:
                    self._elect(comp)
                    break

    def _elect(self, comp: set[int]) -> None:
        vs = [self.voters[s] for s in comp]
        best = max(vs, key=lambda v: (v.last_zxid, v.sid))
        epoch = max(v.accepted_epoch for v in vs) + 1
        # every committed txn is on a quorum, so the voter with the highest zxid of any quorum has it
        c = self.committed
        log = best.log
        if len(log) < len(c) or any(log[i].zxid != c[i].zxid for i in range(len(c))):
            raise AssertionError(f"model: voter {best.sid} leads without the committed prefix")
        for t in log[len(c):]:
            self.committed_txn(t)                     # NEWLEADER acked by a quorum commits its log
        self.epochs += 1
        self.leader = Leader(self, best.sid, epoch, c, self.world.now)
        self.leader.counter = 0
        for v in vs:
            v.accepted_epoch = epoch
            v.log = list(c)
            v.state, v.leader = Q.FOLLOWING, best.sid
        best.state = Q.LEADING
        self.note(f"ZooKeeper voter {best.sid} leads epoch {epoch} at 0x{c[-1].zxid if c else 0:x} "
                  f"(voters {sorted(comp)})")

    def _sync_voter(self, v: Voter, ld: Leader) -> None:
        v.accepted_epoch = ld.epoch
        v.log = list(self.voters[ld.sid].log)
        for t in ld.proposed:
            ld.acks[t.zxid].add(v.sid)
        v.state, v.leader = Q.FOLLOWING, ld.sid
        ld._maybe_commit()

    def step_down(self, why: str) -> None:
        ld = self.leader
        if ld is None:
            return
        self.note(f"ZooKeeper leader {ld.sid} of epoch {ld.epoch} steps down: {why}")
        self.leader = None
        self.pending_syncs.clear()
        for s in list(ld.handlers):
            self.drop_observer(ld.sid, s, "leader stepped down")
        for v in self.voters.values():
            if v.up:
                v.state, v.leader = Q.LOOKING, 0
            v.round += 1

    def drop_observer(self, leader: int, obs: int, why: str) -> None:
        ld = self.leader
        if ld is not None and ld.sid == leader:
            ld.handlers.pop(obs, None)
        self.world.net.close(leader, obs)

    # -- voters' inputs ---------------------------------------------------------------------------------
    def voter_data(self, sid: int, frm: int, data: bytes) -> None:
        v = self.voters[sid]
        ld = self.leader
        if ld is not None and sid == ld.sid:
            if frm in self.voters:
                s = Q.PacketStream(1 << 20)
                s.feed(data)
                qp = s.next_packet()
                if qp is not None and qp.type == Q.ACK:
                    ld.on_ack(frm, qp.zxid)
            else:
                ld.observer_data(frm, data)
            return
        if frm in self.voters and v.state == Q.FOLLOWING and v.leader == frm:
            s = Q.PacketStream(1 << 20)
            s.feed(data)
            qp = s.next_packet()
            if qp is not None and qp.type == Q.PROPOSAL:
                hdr, txn, digest = decode_txn_entry(qp.data or b"")
                e = Txn(hdr, txn, digest[1] & 0xFFFFFFFFFFFFFFFF)
                last = v.last_zxid
                follows = e.zxid == last + 1 if (e.zxid >> 32) == (last >> 32) else (e.zxid & 0xFFFFFFFF) == 1
                if not follows:
                    # a gap (proposals lost while a partition was being noticed): resync from the leader
                    v.state, v.leader = Q.LOOKING, 0
                    return
                v.log.append(e)
                self.send(sid, frm, Q.QuorumPacket(Q.ACK, qp.zxid).encode())

    def notification_for(self, sid: int) -> Q.Notification:
        """What voter `sid` answers an observer's notification with (FastLeaderElection)."""
        v = self.voters[sid]
        ld = self.leader
        if v.state in (Q.FOLLOWING, Q.LEADING) and ld is not None:
            return Q.Notification(v.state, v.leader, v.last_zxid, v.round, ld.epoch)
        return Q.Notification(Q.LOOKING, sid, v.last_zxid, v.round, v.accepted_epoch)
