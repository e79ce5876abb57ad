"""coord as an observer of a ZooKeeper 3.8 ensemble: ZooKeeper's Observer/Learner protocol on the
link to the ZooKeeper leader's quorum port, driving the same ServerCore (tree, sessions, request
path) that coord's own Zab drives.

Theory. An observer learns every committed txn but never votes: it registers (OBSERVERINFO with a
LearnerInfo; the leader answers LEADERINFO with the new epoch; we answer ACKEPOCH with the last zxid
we hold), is synced (DIFF: PROPOSAL+COMMIT pairs from our zxid on; SNAP: the whole tree on the
stream; TRUNC: drop txns the leader never committed), acknowledges NEWLEADER, and serves from
UPTODATE on. From then on the leader INFORMs it of each committed txn; its own clients' writes, new
sessions and sync() go to the leader as REQUEST packets and come back as INFORM (or SYNC); a
client reconnecting with an existing session is REVALIDATEd by the leader (which also makes this
observer the session's owner); every PING is answered with the sessions our clients touched.

Transitions (phase):
    idle --link_up--> registering --LEADERINFO--> syncing --DIFF--> txns
                                                          --SNAP--> snapshot --tree read--> txns
    txns --NEWLEADER--> (ack) --UPTODATE--> serving;  any --link_down / bad input--> idle
    serving --link_down (hold_ms > 0)--> holding --hold_ms passed / link_up--> idle (clients closed)
    holding --handed_over()--> taken over (coord's own Zab drives the core from then on)

Holding keeps the clients' connections, sessions and watches while no ZooKeeper leader is reachable
(the operator has stopped the ZooKeeper servers before `coord migrate take-over`): reads and pings
are answered from the tree, writes, new sessions, sync() and revalidations are held, and nothing
expires. Within hold_ms either the take-over hands everything held (and every forwarded write the
leader never answered) to coord's Zab, or, as a ZooKeeper observer does at once, the clients are
closed and move on.
    any --TRUNC below what we applied--> stopped (fatal: applied state cannot be unapplied)

Verification: every txn carries the tree digest the leader's tree has after it; we apply, compare
with our own ZooKeeper-format digest, and on a mismatch stop serving, drop the tree and re-sync (a
SNAP or DIFF from zero). Right after a SNAP the stream may be fuzzy (the leader serialises a live
tree), so mismatches are tolerated until the first txn that verifies, for at most FUZZY_TXNS txns.
One known ZooKeeper quirk is verified rather than tolerated: a create whose flags and opcode disagree
on the node's owner is digested by the leader with the flags' owner (digest.owner_quirks).
A packet that is not ZooKeeper's protocol closes the link before anything in it is applied.

Effects leave through `out` (bytes for the leader link), `close` (the link must close: the reason),
`logs` ((level, message)), and `disk`, in order: ("append", hdr, txn) for each applied txn;
("snap", zxid) when a SNAP replaced the tree (what is on disk is an older copy: it stays as it is, and
the appends after it are held, until a snapshot of the new tree is durable); ("snapshot",) once that
tree is exact (the first txn after the SNAP that verifies; txns INFORMed after UPTODATE may still be
in the leader's fuzzy serialisation, so nothing earlier is known exact; with an idle ensemble the
take-over asks for it): the shell writes the tree as it is then, in the background, and restarts the log after it;
("reset",) when the copy is dropped. ZooKeeper's learner writes its snapshot before it acks
NEWLEADER and serves; an observer's ack counts in no quorum, so coord serves first and writes after,
and a crash meanwhile restarts from the older copy (the leader syncs it again);
`epochs_changed` when accepted/current epoch must be persisted (before `out` leaves); `membership`
((voters, observers, version, data)) when a configuration newer than ours is committed (a reconfig
INFORMed or synced, or found in the tree at start): it becomes our view of the ensemble, as
ZooKeeper's observers activate it on INFORMANDACTIVATE: whom we look for the leader among, and
whom `coord migrate take-over` makes coord's members. `fatal` is set
when the observer must stop. The observer applies before its log is durable, as ZooKeeper's do: a
crash loses only txns the leader sends again (DIFF from what is durable).
"""
from __future__ import annotations

import struct
from collections import deque

from coord.core.datatree import DataTree
from coord.core.prep import Prep
from coord.core.server import DEFERRED, WAIT_COMMIT, Connection, Pending, Request, ServerCore
from coord.core.zab.sequencer import IdleSequencer, encode_request_body
from coord.core.zkpeer.digest import DIGEST_VERSION, ZkDigest, explained, owner_quirks
from coord.core.zkpeer.txnentry import TxnEntryError, decode_txn_entry
from coord.core.zkpeer.wiresnap import WireSnapshotReader, fuzzy_create
from coord.jute import quorum as Q

FUZZY_TXNS = 10000
MAX_PENDING_SYNCS = 10000
_I = struct.Struct(">i")
_Q = struct.Struct(">q")
_QI = struct.Struct(">qi")
_QB = struct.Struct(">q?")
_REQ = struct.Struct(">qii")


def make_zxid(epoch: int, counter: int) -> int:
    return (epoch << 32) | (counter & 0xFFFFFFFF)


class ObserverSequencer(IdleSequencer):
    """ServerCore's sequencer while observing: writes, new sessions and sync() go to the leader."""
    decides_expiry = False

    def __init__(self, observer: "ZkObserver"):
        super().__init__(observer)
        self.observer = observer

    def submit(self, request: Request) -> None:
        self.observer.forward(request)

    def sync(self, conn: Connection, pending: Pending) -> None:
        self.observer.forward_sync(conn, pending)

    def revalidate(self, conn: Connection, sid: int, timeout: int) -> None:
        self.observer.revalidate(conn, sid, timeout)


class HoldingSequencer(IdleSequencer):
    """ServerCore's sequencer while holding: what would go to a leader waits for the take-over."""
    decides_expiry = False

    def __init__(self, observer: "ZkObserver"):
        super().__init__(observer)
        self.observer = observer

    def submit(self, request: Request) -> None:
        self.observer.held.append(("w", request, None))

    def sync(self, conn: Connection, pending: Pending) -> None:
        pending.state = WAIT_COMMIT
        self.observer.held.append(("s", conn.conn_id, pending))

    def revalidate(self, conn: Connection, sid: int, timeout: int) -> None:
        self.observer.held.append(("r", conn.conn_id, (sid, timeout)))


class ZkObserver:
    def __init__(self, sid: int, core: ServerCore, *, config_version: int = 0,
                 max_buffer: int = 0xFFFFF + 1024, accepted_epoch: int = 0, current_epoch: int = 0,
                 hold_ms: int = 0, history: int = 0):
        self.sid = sid
        self.hold_ms = hold_ms
        self.hold_until = 0
        self.held: list[tuple] = []         # ("w", request, None) / ("s", conn id, pending) / ("r", conn id, (sid, timeout))
        self.inflight: dict[tuple[int, int], Request] = {}   # forwarded writes the leader has not answered
        self.recent: deque | None = deque(maxlen=history) if history > 0 else None
        self.recent_base = core.tree.last_zxid   # the zxid before recent[0]
        self.core = core
        self.config_version = config_version
        self.max_buffer = max_buffer
        self.accepted_epoch = accepted_epoch
        self.current_epoch = current_epoch
        self.phase = "idle"
        self.stream = Q.PacketStream(max_buffer)
        self.out: list[bytes] = []
        self.close: str | None = None
        self.fatal: str | None = None
        self.logs: list[tuple[str, str]] = []
        self.disk: list[tuple] = []
        self.epochs_changed = False
        self.new_epoch = 0
        self.snap: WireSnapshotReader | None = None
        self.snapshot_due = False         # a SNAP replaced the tree; no snapshot of it asked for yet
        self.proposals: list[tuple] = []
        self.sync_kind = ""
        self.zk_digest = ZkDigest(core.tree)
        self.unverified = 0               # txns since a SNAP whose digest did not (yet) match
        self.fuzzy = False
        self.verified = 0
        self.mismatches = 0
        self.no_digest = 0
        self.quirks = 0                   # txns verified only through ZooKeeper's create-owner digest quirk
        self.carried = 0                  # the leader's digest chain's deviation from ours (digest.explained)
        self.syncs: list[tuple[int, Pending]] = []
        self.revalidating: dict[int, tuple[int, int]] = {}   # session -> (conn id, timeout)
        self.reported: dict[int, int] = {}
        self.syncs_done = {"DIFF": 0, "SNAP": 0, "TRUNC": 0}
        self.leader_sid: int | None = None
        self.membership: tuple | None = None
        self._config_seen: bytes | None = None
        core.serving = False
        core.sequencer = IdleSequencer(self)
        self._check_config()

    def _check_config(self) -> None:
        """Adopt the tree's /zookeeper/config when a reconfig has made it newer than our view."""
        from coord.core.zab.membership import parse_config
        node = self.core.tree.nodes.get("/zookeeper/config")
        data = node.data if node is not None else None
        if data is self._config_seen:
            return
        self._config_seen = data
        cfg = parse_config(data)
        if cfg is None or cfg[2] <= self.config_version:
            return
        voters, observers, version = cfg
        self.config_version = version
        self.membership = (voters, observers, version, data)
        self.log("info", f"ZooKeeper configuration 0x{version:x} is now this observer's: voters "
                         f"{sorted(voters)}, observers {sorted(observers)}")
        if self.sid not in voters and self.sid not in observers:
            self.log("warn", f"server {self.sid} is not in the ZooKeeper ensemble's configuration 0x{version:x} "
                             "any more: it is removed (its leader will not take it on again)")

    def log(self, level: str, msg: str) -> None:
        self.logs.append((level, msg))

    # -- the link -----------------------------------------------------------------------------------
    def link_up(self, leader_sid: int) -> None:
        """Connected to the leader's quorum port: register as an observer."""
        if self.phase == "holding":     # a new ZooKeeper leader re-syncs us: the clients move on first
            self.phase = "idle"
            self._stop_serving("syncing with a new ZooKeeper leader")
        self.leader_sid = leader_sid
        self.stream = Q.PacketStream(self.max_buffer)
        self.close = None
        self.phase = "registering"
        info = Q.LearnerInfo(self.sid, Q.LEARNER_PROTOCOL, self.config_version).encode()
        self._send(Q.OBSERVERINFO, make_zxid(self.accepted_epoch, 0), info)

    def link_down(self, why: str) -> None:
        if self.phase in ("holding", "taken over"):
            return
        if self.phase != "idle":
            self.log("warn", f"link to ZooKeeper leader {self.leader_sid} lost in phase {self.phase}: {why}")
        was = self.phase
        self.phase = "idle"
        self.snap = None
        self.proposals.clear()
        if was == "serving" and self.hold_ms > 0 and self.fatal is None:
            self.phase = "holding"
            self.hold_until = self.core.mono_ms + self.hold_ms
            self.core.sequencer = HoldingSequencer(self)
            self.log("info", f"holding {len(self.core.conns)} client connections for up to {self.hold_ms} ms "
                             "(a take-over keeps them; otherwise they are closed)")
            return
        self._stop_serving(f"lost the ZooKeeper leader ({why})")

    def tick(self) -> None:
        """A hold that nobody took over ends as a ZooKeeper observer's loss of its leader does."""
        if self.phase == "holding" and self.core.mono_ms >= self.hold_until:
            self.phase = "idle"
            self._stop_serving(f"no ZooKeeper leader for {self.hold_ms} ms")

    def handed_over(self) -> tuple[list, list, list]:
        """The take-over: stop observing and give up, in order, the writes no leader answered (the
        forwarded ones first: a ZooKeeper leader that committed one would have INFORMed us of it
        before its link closed, or its commit is lost with it), the unanswered sync()s and the held
        revalidations ((conn id, session, timeout)), for coord's Zab to answer."""
        requests = list(self.inflight.values()) + [a for k, a, _ in self.held if k == "w"]
        syncs = list(self.syncs) + [(a, b) for k, a, b in self.held if k == "s"]
        revals = [(c, s, t) for s, (c, t) in self.revalidating.items()]
        revals += [(a, b[0], b[1]) for k, a, b in self.held if k == "r"]
        self.inflight.clear()
        self.held.clear()
        self.syncs = []
        self.revalidating.clear()
        self.phase = "taken over"
        return requests, syncs, revals

    def data(self, chunk: bytes) -> None:
        """Bytes from the leader link."""
        if self.phase == "idle" or self.close is not None:
            return
        self.stream.feed(chunk)
        self.received()

    def received(self) -> None:
        """Bytes from the leader link, already written into `stream` (received into its buffer)."""
        if self.phase == "idle" or self.close is not None:
            return
        s = self.stream
        try:
            while self.close is None and self.fatal is None:
                if self.phase == "snapshot":
                    if not self.snap.step(s):
                        return
                    self._snap_loaded()
                    continue
                qp = s.next_packet()
                if qp is None:
                    return
                self._packet(qp)
        except Q.QuorumWireError as e:
            self._fail(f"not ZooKeeper's peer protocol from leader {self.leader_sid}: {e}")

    def _fail(self, why: str) -> None:
        self.log("error", why)
        self.close = why

    def _send(self, type_: int, zxid: int, data: bytes | None = None, auth=None) -> None:
        self.out.append(Q.QuorumPacket(type_, zxid, data, auth).encode())

    # -- packets ------------------------------------------------------------------------------------
    def _packet(self, qp: Q.QuorumPacket) -> None:
        t = qp.type
        phase = self.phase
        if phase == "registering":
            if t != Q.LEADERINFO:
                return self._fail(f"expected LEADERINFO, got {qp!r}")
            return self._on_leaderinfo(qp)
        if phase == "syncing":
            if t == Q.DIFF:
                self.sync_kind = "DIFF"
                self.log("info", f"DIFF sync from ZooKeeper leader {self.leader_sid} at 0x{qp.zxid:x}")
                self.phase = "txns"
                return
            if t == Q.SNAP:
                self.sync_kind = "SNAP"
                self.log("info", f"SNAP sync from ZooKeeper leader {self.leader_sid} at 0x{qp.zxid:x}")
                self.snap = WireSnapshotReader(qp.zxid)
                self.phase = "snapshot"
                return
            if t == Q.TRUNC:
                return self._on_trunc(qp)
            return self._fail(f"expected DIFF, SNAP or TRUNC, got {qp!r}")
        if t == Q.PING:
            return self._on_ping(qp)
        if phase == "txns":
            if t == Q.PROPOSAL:
                return self._on_proposal(qp)
            if t in (Q.COMMIT, Q.COMMITANDACTIVATE):
                return self._on_commit(qp)
            if t in (Q.INFORM, Q.INFORMANDACTIVATE):
                return self._on_inform(qp)
            if t == Q.NEWLEADER:
                if self.current_epoch != self.new_epoch:
                    self.epochs_changed = True
                self.current_epoch = self.new_epoch
                self._send(Q.ACK, make_zxid(self.new_epoch, 0))
                return
            if t == Q.UPTODATE:
                return self._on_uptodate()
            return self._fail(f"unexpected {qp!r} while syncing")
        if phase == "serving":
            if t in (Q.INFORM, Q.INFORMANDACTIVATE):
                return self._on_inform(qp)
            if t == Q.REVALIDATE:
                return self._on_revalidate(qp)
            if t == Q.SYNC:
                return self._on_sync()
            return self._fail(f"unexpected {qp!r} while observing")

    def _on_leaderinfo(self, qp: Q.QuorumPacket) -> None:
        d = qp.data or b""
        if len(d) < 4:
            return self._fail("LEADERINFO without a protocol version")
        version = _I.unpack_from(d, 0)[0]
        if version != Q.LEARNER_PROTOCOL:
            return self._fail(f"ZooKeeper leader speaks learner protocol 0x{version:x}, "
                              f"only 0x{Q.LEARNER_PROTOCOL:x} (ZooKeeper 3.4+) is supported")
        epoch = qp.zxid >> 32
        if epoch < self.accepted_epoch:
            return self._fail(f"leader's epoch {epoch} is below the accepted epoch {self.accepted_epoch}")
        ack = self.current_epoch if epoch > self.accepted_epoch else -1
        if epoch != self.accepted_epoch:
            self.epochs_changed = True
        self.accepted_epoch = self.new_epoch = epoch
        self._send(Q.ACKEPOCH, self.core.tree.last_zxid, _I.pack(ack))
        self.phase = "syncing"

    def _on_trunc(self, qp: Q.QuorumPacket) -> None:
        last = self.core.tree.last_zxid
        if qp.zxid < last:
            self.fatal = (f"ZooKeeper leader {self.leader_sid} sent TRUNC to 0x{qp.zxid:x}, below the "
                          f"0x{last:x} this observer has applied: applied txns cannot be undone here; "
                          "stop this observer, delete its data and start it again to re-sync by SNAP")
            self.log("error", self.fatal)
            self.close = self.fatal
            return
        self.sync_kind = "TRUNC"
        self.phase = "txns"

    def _snap_loaded(self) -> None:
        snap, self.snap = self.snap, None
        tree = snap.tree
        core = self.core
        tree.watches = core.watches
        core.adopt_newest_config(tree)
        core.tree = tree
        core.prep = Prep(tree, extended_types=core.config.extended_types)
        core.next_zxid_counter = tree.last_zxid
        self.zk_digest = ZkDigest(tree, snap.zk_digest)
        self.carried = 0
        self._forget_recent()
        self._check_config()
        self.disk.append(("snap", tree.last_zxid))
        self.snapshot_due = True
        self.fuzzy = True
        self.unverified = 0
        self.log("info", f"snapshot from ZooKeeper leader: {snap.nodes} znodes, {len(tree.sessions)} "
                         f"sessions at 0x{tree.last_zxid:x}")
        self.phase = "txns"

    def _decode(self, data: bytes | None):
        try:
            return decode_txn_entry(data or b"")
        except TxnEntryError as e:
            self._fail(f"ZooKeeper leader {self.leader_sid} sent a txn this observer cannot read: {e}")
            return None

    def _on_proposal(self, qp: Q.QuorumPacket) -> None:
        e = self._decode(qp.data)
        if e is not None:
            self.proposals.append(e)

    def _on_commit(self, qp: Q.QuorumPacket) -> None:
        if not self.proposals or self.proposals[0][0].zxid != qp.zxid:
            return self._fail(f"COMMIT 0x{qp.zxid:x} does not match the next proposal")
        self._apply(*self.proposals.pop(0))

    def _on_inform(self, qp: Q.QuorumPacket) -> None:
        data = qp.data or b""
        if qp.type == Q.INFORMANDACTIVATE:
            if len(data) < 8:
                return self._fail("INFORMANDACTIVATE without a leader id")
            data = data[8:]
        e = self._decode(data)
        if e is not None:
            self._apply(*e)

    def _apply(self, hdr, txn, digest) -> None:
        core = self.core
        tree = core.tree
        z = hdr.zxid
        last = tree.last_zxid
        if z <= last and not self.fuzzy:
            self.log("warn", f"txn 0x{z:x} is not after 0x{last:x}; skipped")
            return
        if z != last + 1 and (z >> 32) == (last >> 32) and not self.fuzzy:
            self.log("warn", f"txn 0x{z:x} does not follow 0x{last:x}")
        paths = self.zk_digest.before(tree, hdr, txn)
        res = core.commit(hdr, txn)
        self.disk.append(("append", hdr, txn))
        if self.inflight:
            self.inflight.pop((hdr.clientId, hdr.cxid), None)
        if hdr.type == 16 or hdr.type == 14:      # reconfig, or a multi that may hold one
            self._check_config()
        rec = self.recent
        if rec is not None:
            if len(rec) == rec.maxlen:
                self.recent_base = rec[0][0].zxid
            rec.append((hdr, txn))
        if hdr.type == 1 and res.err == -110:
            fuzzy_create(tree, hdr, txn)
        ours = self.zk_digest.after(tree, paths)
        if digest is None or digest[0] != DIGEST_VERSION:
            self.no_digest += 1
            self._snapshot_now()       # nothing to verify against: as exact as it can be known
            return
        theirs = digest[1] & 0xFFFFFFFFFFFFFFFF
        if theirs == ours:
            self.verified += 1
            self.carried = 0
            # the fuzzy window has closed: the tree is exact from here on, so it is the one written
            # (coord's recovery does not replay fuzzily over a snapshot, as ZooKeeper's does)
            self._snapshot_now()
            self.fuzzy = False
            return
        if self.fuzzy and self.unverified < FUZZY_TXNS:
            self.unverified += 1
            return
        deviation = (theirs - ours) & 0xFFFFFFFFFFFFFFFF
        if explained(deviation, self.carried, owner_quirks(tree, hdr, txn)):
            self.verified += 1
            self.quirks += 1
            if self.carried != deviation and (self.quirks & (self.quirks - 1)) == 0:   # 1st, 2nd, 4th...
                self.log("warn", f"txn 0x{z:x}: the ZooKeeper leader digested a created node with the "
                         "owner its create flags ask for, not the one its txn type applies (a ZooKeeper "
                         f"3.8 quirk; its own servers log 'Digests are not matching'); verified with that "
                         f"owner, applied as ZooKeeper applies it ({self.quirks} such txns so far)")
            self.carried = deviation
            return
        self.mismatches += 1
        self._fail(f"tree digest after txn 0x{z:x} is 0x{ours:x}, the ZooKeeper leader's is 0x{theirs:x}: "
                   "dropping this copy and syncing again")
        self._reset_tree()

    def _snapshot_now(self) -> None:
        if self.snapshot_due:
            self.snapshot_due = False
            self.disk.append(("snapshot",))

    def _reset_tree(self) -> None:
        self.snapshot_due = False
        self._stop_serving("re-syncing after a digest mismatch")
        core = self.core
        tree = DataTree()
        tree.watches = core.watches
        core.adopt_newest_config(tree)
        core.tree = tree
        core.prep = Prep(tree, extended_types=core.config.extended_types)
        core.next_zxid_counter = 0
        self.zk_digest = ZkDigest(tree)
        self.carried = 0
        self._forget_recent()
        self.disk.append(("reset",))

    def _forget_recent(self) -> None:
        """The tree was replaced: the committed window starts again at it."""
        if self.recent is not None:
            self.recent.clear()
        self.recent_base = self.core.tree.last_zxid

    def _on_uptodate(self) -> None:
        self._send(Q.ACK, make_zxid(self.new_epoch, 0))
        self.syncs_done[self.sync_kind] = self.syncs_done.get(self.sync_kind, 0) + 1
        self.phase = "serving"
        core = self.core
        core.sequencer = ObserverSequencer(self)
        core.serving = True
        tracker = core.sessions
        for s in [s for s in tracker.sessions if s not in core.tree.sessions]:
            tracker.remove(s)
        for s, timeout in core.tree.sessions.items():
            if tracker.get(s) is None:
                tracker.add(s, timeout, core.mono_ms)
        self.log("info", f"observing ZooKeeper leader {self.leader_sid} in epoch {self.new_epoch} at zxid "
                         f"0x{core.tree.last_zxid:x} after {self.sync_kind}")

    def _stop_serving(self, why: str) -> None:
        core = self.core
        was = core.serving
        core.serving = False
        core.sequencer = IdleSequencer(self)
        core.prep.reset()
        core.connecting.clear()
        self.syncs.clear()
        self.revalidating.clear()
        self.held.clear()
        self.inflight.clear()
        if was:
            for conn in list(core.conns.values()):
                if not conn.closing:
                    core._close(conn, f"server stopped serving: {why}")

    # -- pings: our clients' session touches --------------------------------------------------------
    def _on_ping(self, qp: Q.QuorumPacket) -> None:
        out = bytearray()
        if self.phase == "serving":
            rep = self.reported
            sessions = self.core.sessions.sessions
            for sid, s in sessions.items():
                if rep.get(sid) != s.deadline and sid not in self.core.local_sessions:
                    rep[sid] = s.deadline
                    out += _QI.pack(sid, s.timeout_ms)
            if len(rep) > 2 * len(sessions) + 64:
                for sid in [x for x in rep if x not in sessions]:
                    del rep[sid]
        self._send(Q.PING, qp.zxid, bytes(out), qp.authinfo)

    # -- what our clients ask of the leader ---------------------------------------------------------
    def forward(self, request: Request) -> None:
        if self.phase != "serving":
            self.log("debug", f"dropping a write from session 0x{request.session_id:x}: not serving")
            return
        self.inflight[(request.session_id, request.cxid)] = request
        frame = request.frame
        body = frame[8:] if frame is not None else encode_request_body(request.type, request.req)
        data = _REQ.pack(request.session_id, request.cxid, request.type) + bytes(body)
        self._send(Q.REQUEST, -1, data, [tuple(a) for a in request.auth or ()])

    def forward_sync(self, conn: Connection, pending: Pending) -> None:
        if len(self.syncs) >= MAX_PENDING_SYNCS or self.phase != "serving":
            pending.state = DEFERRED
            return
        pending.state = WAIT_COMMIT
        self.syncs.append((conn.conn_id, pending))
        path = pending.req.path.encode() if pending.req is not None and pending.req.path is not None else b""
        data = _REQ.pack(conn.session_id, pending.xid, 9) + _I.pack(len(path)) + path
        self._send(Q.REQUEST, -1, data, [tuple(a) for a in conn.auth])

    def _on_sync(self) -> None:
        """The leader has passed every txn it had when our oldest sync() reached it."""
        if not self.syncs:
            return
        cid, pending = self.syncs.pop(0)
        conn = self.core.conns.get(cid)
        if conn is not None:
            pending.state = DEFERRED
            self.core._flush(conn)

    def revalidate(self, conn: Connection, sid: int, timeout: int) -> None:
        """A client reconnects here with an existing session: ask the leader whether it is alive
        (and make us its owner there, so its writes through us are not SESSIONMOVED)."""
        self.revalidating[sid] = (conn.conn_id, timeout)
        self._send(Q.REVALIDATE, -1, _QI.pack(sid, timeout))

    def _on_revalidate(self, qp: Q.QuorumPacket) -> None:
        d = qp.data or b""
        if len(d) < 9:
            return self._fail("REVALIDATE reply shorter than a session id and a flag")
        sid, valid = _QB.unpack_from(d, 0)
        w = self.revalidating.pop(sid, None)
        if w is None:
            self.log("warn", f"REVALIDATE for session 0x{sid:x} that nobody waits for")
            return
        self.core.finish_revalidation(w[0], sid, w[1], valid)

    # -- introspection --------------------------------------------------------------------------------
    def info(self) -> dict:
        return {"zk_zkpeer_phase": self.phase, "zk_zkpeer_leader": self.leader_sid if self.leader_sid else -1,
                "zk_zkpeer_epoch": self.new_epoch, "zk_zkpeer_zxid": f"0x{self.core.tree.last_zxid:x}",
                "zk_zkpeer_held": len(self.held),
                "zk_zkpeer_config_version": f"0x{self.config_version:x}", "zk_zkpeer_tree_digest": self.zk_digest.value,
                "zk_zkpeer_digests_verified": self.verified, "zk_digest_mismatches_count": self.mismatches,
                "zk_zkpeer_digest_owner_quirks": self.quirks,
                "zk_zkpeer_txns_without_digest": self.no_digest,
                "zk_zkpeer_diff_syncs": self.syncs_done.get("DIFF", 0),
                "zk_zkpeer_snap_syncs": self.syncs_done.get("SNAP", 0),
                "zk_zkpeer_trunc_syncs": self.syncs_done.get("TRUNC", 0)}
