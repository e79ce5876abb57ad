"""The learning roles: following (votes and acks) and observing (neither).

Phases (self.phase) and what moves them:
    CONNECTING     waiting for the link to the elected leader
    INFO           FOLLOWERINFO(accepted epoch, current epoch, last zxid, tree zxid) sent
    ACCEPTING      LEADERINFO(e) with e above anything we promised: `persist_epochs(e, current)`;
                   ACKEPOCH(fresh) goes out only once it is durable (ZOOKEEPER-335: never two leaders'
                   txns acked under one epoch). e equal to our promise: ACKEPOCH(not fresh) at once
                   (the leader will not count it). e below: we go back to looking.
    SYNC           TRUNC (never below our tree: that is committed, ZOOKEEPER-1549), SNAP chunks
                   (installed durably by the driver before it counts, ZOOKEEPER-3642/3104), DIFF txns
                   (appended to the log), then NEWLEADER(e, z) with z our new last zxid.
    NEWLEADER_WAIT everything received must be durable (log_durable >= z, TRUNC done, SNAP
                   installed), *then* current epoch := e is persisted, *then* ACKNEWLEADER
                   (ZOOKEEPER-3911/3023/4643/4646/4785). Proposals arriving now are logged; their
                   acks wait for ACKNEWLEADER to have gone out first (ZOOKEEPER-4685).
    UPTODATE_WAIT  UPTODATE(e, c): apply the history up to c (everything synced is committed by now)
                   and start serving; COMMITs seen earlier are remembered, not lost (ZOOKEEPER-4925)
    BROADCAST      PROPOSAL -> append -> (durable) -> cumulative ACK; COMMIT -> apply in order;
                   observers get INFORM (committed txns) instead. Writes and sync() from our clients
                   are forwarded to the leader; PING is answered with the sessions our clients touched.
A LEADERINFO while in BROADCAST is the leader rolling its epoch: the same steps run again, but we
keep serving throughout (the tree only ever holds committed txns, so nothing needs undoing).

HANDOFF(epoch, zxid, successor) in BROADCAST: the leader is stopping and everything to zxid is
committed (its COMMITs came first on the link). We commit to zxid and lead (the successor) or follow
the successor with a new role that starts serving at once (`serving=True`): the same discovery and
sync, during which reads are served and writes and sync()s are held. Writes we forwarded and saw no
txn for (`inflight`) and sync()s with no reply were dropped by the stopping leader, which proposed
nothing after them; they go to the new leader after its UPTODATE, so each is proposed once.

Losing the leader's link, not hearing from it for syncLimit ticks (initLimit while syncing), or any
protocol violation sends the peer back to looking.
"""
from __future__ import annotations

from coord.core import snapformat
from coord.core.server import DEFERRED, WAIT_COMMIT
from coord.core.zab import messages as M
from coord.core.zab.api import epoch_of
from coord.core.zab.sequencer import LearnerSequencer, encode_request_body

CONNECTING, INFO, ACCEPTING, SYNC, NEWLEADER_WAIT, UPTODATE_WAIT, BROADCAST = (
    "connecting", "info", "accepting", "sync", "newleader", "uptodate-wait", "broadcast")
MAX_PENDING_SYNCS = 100000
MAX_INFLIGHT = 100000       # forwarded writes remembered for a handoff; older ones are forgotten
INFO_FIRST_RESEND_MS = 10   # the first FOLLOWERINFO repeat; doubling up to election_resend_ms


class LearnerRole:
    def __init__(self, peer, leader: int, observer: bool = False, serving: bool = False):
        self.peer = peer
        self.core = peer.core
        self.cfg = peer.config
        self.leader = leader
        self.observer = observer
        self.phase = CONNECTING
        self.info_sent = 0
        self.info_every = INFO_FIRST_RESEND_MS
        self.new_epoch = 0
        self.last_heard = peer.mono_ms
        self.pending_trunc: int | None = None
        self.pending_snap: int | None = None
        self.snap_rx: snapformat.SnapshotReceiver | None = None   # a SNAP being received
        self.snap_zxid = 0
        self.newleader_zxid = 0
        self.persisting_current = False
        self.may_ack = False
        self.acked = 0
        self.commit_seen = 0
        self.rolling = False
        self.serving = serving         # True: taken on by a handoff, our clients stay
        self.inflight: dict[tuple[int, int], object] = {}   # forwarded writes with no txn seen yet
        self.held: list = []           # writes and sync()s waiting for UPTODATE (after a handoff)
        self.next_sync_id = 1
        self.syncs: dict[int, tuple[int, object]] = {}
        self.restores: set[int] = set()   # AdminServer restores forwarded to the leader, unanswered
        # Session deadlines as last reported to the leader; starting from today's, so that only our
        # clients' activity from now on is reported (see _touched).
        self.reported: dict[int, int] = self._deadlines()
        self.handlers = {
            M.LeaderInfo: self.on_leaderinfo, M.Trunc: self.on_trunc, M.Diff: self.on_diff,
            M.Snap: self.on_snap, M.NewLeader: self.on_newleader, M.UpToDate: self.on_uptodate,
            M.Proposal: self.on_proposal, M.Commit: self.on_commit, M.Inform: self.on_inform,
            M.Ping: self.on_ping, M.SyncReply: self.on_syncreply, M.Handoff: self.on_handoff,
            M.Restored: self.on_restored,
        }

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        if self.leader in self.peer.links:
            self.send_info()
        else:
            self.peer.want_link(self.leader)

    def stop(self) -> None:
        if self.leader in self.peer.links:
            self.peer.disconnect(self.leader, "no longer following it")
        self.syncs.clear()
        self.snap_rx = None
        for rid in sorted(self.restores):
            self.peer.effects.append(("restored", rid, 0, f"lost leader {self.leader} before it answered "
                                                          "the restore: outcome unknown"))
        self.restores.clear()

    def want_links(self) -> None:
        if self.leader not in self.peer.links:
            self.peer.want_link(self.leader)

    def on_link_up(self, sid: int) -> None:
        if sid == self.leader and self.phase == CONNECTING:
            self.send_info()

    def on_link_down(self, sid: int) -> None:
        if sid == self.leader and self.peer.role is self:
            self.peer.become_looking(f"lost the link to leader {sid}")

    def send_info(self) -> None:
        peer = self.peer
        if self.phase == CONNECTING:
            self.last_heard = peer.mono_ms
            self.info_every = INFO_FIRST_RESEND_MS
        self.info_sent = peer.mono_ms
        peer.send(self.leader, M.FollowerInfo(peer.promised_epoch, peer.peer_epoch, peer.last_zxid,
                                              self.core.tree.last_zxid, int(self.observer), M.PROTOCOL))
        self.phase = INFO

    def tick(self) -> None:
        peer = self.peer
        cfg = self.cfg
        if self.phase == INFO and peer.mono_ms - self.info_sent >= self.info_every:
            # The leader may not have known it leads when our FOLLOWERINFO came (it drops Zab traffic
            # while looking): say it again until it answers (it ignores repeats on one link). It
            # decides at most election_finalize_ms after us, so the first repeats come soon (a
            # flat election_resend_ms was the last ~100 ms step in a measured failover), then
            # back off to election_resend_ms.
            self.info_every = min(self.info_every * 2, cfg.election_resend_ms)
            self.send_info()
        steady = self.phase == BROADCAST and not self.rolling
        limit = (cfg.sync_limit if steady else cfg.init_limit) * cfg.tick_ms
        if peer.mono_ms - self.last_heard > limit:
            peer.become_looking(f"nothing from leader {self.leader} for {limit} ms in phase {self.phase}")

    def settled(self) -> bool:
        """Following a leader's broadcast (no sync, no epoch roll under way)."""
        return self.phase == BROADCAST and not self.rolling

    def fail(self, why: str) -> None:
        """The leader broke the protocol (or we cannot follow it): leave it."""
        peer = self.peer
        peer.log("warn", f"leaving leader {self.leader}: {why}")
        if peer.role is self:
            peer.become_looking(why)      # stop() closes the link

    def step(self, sender: int, msg) -> None:
        if sender != self.leader:
            return                     # Zab traffic from someone we do not follow
        self.last_heard = self.peer.mono_ms
        fn = self.handlers.get(type(msg))
        if fn is None:
            self.fail(f"unexpected {M.name_of(msg)} from the leader")
            return
        fn(msg)

    # -- discovery ------------------------------------------------------------------------------------
    def on_leaderinfo(self, m: M.LeaderInfo) -> None:
        peer = self.peer
        if m.protocol != M.PROTOCOL:
            self.fail(f"leader speaks protocol {m.protocol}")
            return
        if self.phase == BROADCAST:
            self.rolling = True
        elif self.phase != INFO:
            self.fail(f"LEADERINFO in phase {self.phase}")
            return
        e = m.epoch
        self.new_epoch = e
        if e > peer.promised_epoch:
            self.phase = ACCEPTING
            peer.persist_epochs(e, peer.current_epoch)
        elif e == peer.promised_epoch:
            self._ack_epoch(fresh=False)
        else:
            self.fail(f"leader's epoch {e} is below the epoch {peer.promised_epoch} we accepted")

    def _ack_epoch(self, fresh: bool) -> None:
        peer = self.peer
        peer.send(self.leader, M.AckEpoch(self.new_epoch, peer.peer_epoch, peer.last_zxid, int(fresh)))
        self.phase = SYNC

    def on_epochs_persisted(self) -> None:
        peer = self.peer
        if self.phase == ACCEPTING and peer.accepted_epoch >= self.new_epoch:
            self._ack_epoch(fresh=True)
        elif self.phase == NEWLEADER_WAIT and self.persisting_current and peer.current_epoch >= self.new_epoch:
            self.persisting_current = False
            self._ack_newleader()

    # -- synchronisation --------------------------------------------------------------------------------
    def on_trunc(self, m: M.Trunc) -> None:
        peer = self.peer
        h = peer.history
        z = m.zxid
        if self.phase != SYNC or self.snap_rx is not None:
            self.fail(f"TRUNC in phase {self.phase}")
            return
        if z < h.applied_zxid or z > h.last or not (h.contains(z) or z == h.applied_zxid):
            self.fail(f"TRUNC to 0x{z:x}: we have committed to 0x{h.applied_zxid:x} and logged to "
                      f"0x{h.last:x}; refusing to cut committed state")
            return
        h.truncate(z)
        peer.note_truncated(z)
        self.pending_trunc = z
        peer.truncate_log(z)

    def on_log_truncated(self, zxid: int) -> None:
        if self.pending_trunc is not None and zxid == self.pending_trunc:
            self.pending_trunc = None
            self._check_newleader_ready()

    def on_diff(self, m: M.Diff) -> None:
        if self.phase != SYNC or self.snap_rx is not None:
            self.fail(f"DIFF in phase {self.phase}")
            return
        self._append(m.entries)

    def _append(self, entries) -> bool:
        peer = self.peer
        h = peer.history
        if entries and entries[0].zxid <= h.last:
            self.fail(f"txn 0x{entries[0].zxid:x} is not after our last 0x{h.last:x}")
            return False
        for e in entries:
            h.append(e)
        peer.note_logged(entries)
        peer.append_log(entries)
        return True

    def on_snap(self, m: M.Snap) -> None:
        peer = self.peer
        if self.phase != SYNC:
            self.fail(f"SNAP in phase {self.phase}")
            return
        if self.serving:
            peer.stop_serving("a snapshot sync replaces the tree")
            self.serving = False
            self.rolling = False
        # Chunks are built into a tree as they arrive (the leader streams them while it encodes);
        # `total` is 0 until the last chunk, which carries the whole length.
        rx = self.snap_rx
        if m.offset == 0 and rx is None:
            rx = self.snap_rx = snapformat.SnapshotReceiver()
            self.snap_zxid = m.zxid
        elif rx is None or m.zxid != self.snap_zxid or m.offset != len(rx):
            self.fail("snapshot chunk out of order")
            return
        if len(rx) + len(m.data) > self.cfg.max_snapshot_bytes or (m.total and m.total > self.cfg.max_snapshot_bytes):
            self.fail(f"snapshot of over {self.cfg.max_snapshot_bytes} bytes")
            return
        try:
            rx.feed(m.data)
            if not m.total or len(rx) < m.total:
                return
            self.snap_rx = None
            if len(rx) != m.total:
                raise snapformat.SnapshotError(f"{len(rx)} bytes where the leader said {m.total}")
            tree, info = rx.finish()
        except Exception as e:  # noqa: BLE001 - any failure to load is the leader's bad snapshot
            self.snap_rx = None
            self.fail(f"snapshot does not load: {e}")
            return
        if info.zxid != m.zxid or tree.last_zxid != m.zxid:
            self.fail(f"snapshot says 0x{info.zxid:x}, leader said 0x{m.zxid:x}")
            return
        data = rx.data
        peer.replace_tree(tree)
        self.pending_snap = m.zxid
        self.pending_trunc = None       # the snapshot supersedes any truncation
        peer.install_snapshot(data, m.zxid)

    def on_snapshot_installed(self, zxid: int) -> None:
        if self.pending_snap is not None and zxid == self.pending_snap:
            self.pending_snap = None
            self._check_newleader_ready()

    def on_newleader(self, m: M.NewLeader) -> None:
        peer = self.peer
        if self.phase != SYNC or self.snap_rx is not None:
            self.fail(f"NEWLEADER in phase {self.phase}")
            return
        if m.epoch != self.new_epoch or m.zxid != peer.last_zxid:
            self.fail(f"NEWLEADER(epoch {m.epoch}, 0x{m.zxid:x}) but we acked epoch {self.new_epoch} "
                      f"and hold 0x{peer.last_zxid:x}")
            return
        self.newleader_zxid = m.zxid
        self.phase = NEWLEADER_WAIT
        self._check_newleader_ready()

    def _check_newleader_ready(self) -> None:
        peer = self.peer
        if self.phase != NEWLEADER_WAIT or self.persisting_current or self.pending_trunc is not None \
                or self.pending_snap is not None or peer.durable_to < self.newleader_zxid:
            return
        if peer.current_epoch >= self.new_epoch:
            self._ack_newleader()
        else:
            self.persisting_current = True
            peer.persist_epochs(self.new_epoch, self.new_epoch)

    def _ack_newleader(self) -> None:
        self.peer.send(self.leader, M.AckNewLeader(self.new_epoch, self.newleader_zxid))
        self.phase = UPTODATE_WAIT
        self.may_ack = not self.observer
        self.acked = max(self.acked, self.newleader_zxid)

    def on_uptodate(self, m: M.UpToDate) -> None:
        peer = self.peer
        if self.phase != UPTODATE_WAIT or m.epoch != self.new_epoch:
            self.fail(f"UPTODATE(epoch {m.epoch}) in phase {self.phase}")
            return
        c = max(m.commit_zxid, self.commit_seen)
        if c > peer.last_zxid:
            self.fail(f"UPTODATE commits 0x{c:x} beyond our last 0x{peer.last_zxid:x}")
            return
        self.phase = BROADCAST
        self.rolling = False
        self._commit_to(c)
        if not self.serving:
            self.serving = True
            peer.start_serving(LearnerSequencer(peer, self))
            self.reported = self._deadlines()    # start_serving re-armed every session: not client activity
            peer.log("info", f"up to date with leader {self.leader} in epoch {self.new_epoch} at 0x{c:x}")
        if self.held:
            held = self.held
            self.held = []
            for kind, a, b in held:
                if kind == "w":
                    self.forward(a)
                else:
                    self._send_sync(a, b)

    def _commit_to(self, z: int) -> None:
        entries = self.peer.commit_to(z)
        inflight = self.inflight
        if inflight and entries:
            for e in entries:
                inflight.pop((e.hdr.clientId, e.hdr.cxid), None)

    # -- broadcast --------------------------------------------------------------------------------------
    def on_proposal(self, m: M.Proposal) -> None:
        if self.observer or self.phase not in (NEWLEADER_WAIT, UPTODATE_WAIT, BROADCAST):
            self.fail(f"PROPOSAL in phase {self.phase}")
            return
        for e in m.entries:
            if epoch_of(e.zxid) != self.new_epoch:
                self.fail(f"proposal 0x{e.zxid:x} is not of epoch {self.new_epoch}")
                return
        self._append(m.entries)

    def on_commit(self, m: M.Commit) -> None:
        peer = self.peer
        if m.zxid > peer.last_zxid:
            self.fail(f"COMMIT of 0x{m.zxid:x} beyond our last 0x{peer.last_zxid:x}")
            return
        if self.serving:
            self._commit_to(m.zxid)
        elif m.zxid > self.commit_seen:
            self.commit_seen = m.zxid

    def on_inform(self, m: M.Inform) -> None:
        peer = self.peer
        if not self.observer or self.phase not in (NEWLEADER_WAIT, UPTODATE_WAIT, BROADCAST):
            self.fail(f"INFORM in phase {self.phase}")
            return
        if not m.entries:
            return
        last = peer.last_zxid
        new = [e for e in m.entries if e.zxid > last]
        if new and not self._append(new):
            return
        z = m.entries[-1].zxid
        if self.serving:
            self._commit_to(z)
        elif z > self.commit_seen:
            self.commit_seen = z

    def on_ping(self, m: M.Ping) -> None:
        self.peer.send(self.leader, M.Pong(self._touched() if self.serving else []))

    def _deadlines(self) -> dict[int, int]:
        return {sid: s.deadline for sid, s in self.core.sessions.sessions.items()}

    def _touched(self) -> list[int]:
        """Sessions whose deadline moved since the last report: their clients were active here. Not
        the deadlines a (re)sync moved: a learner that re-synced reported every session of the tree,
        and a learner re-syncing every few hundred ms (an observer across epoch rolls) kept a dead
        client's session alive for seconds past its timeout (sweep seed 437010404), where ZooKeeper's
        learner reports only the sessions its clients touched."""
        rep = self.reported
        out = []
        sessions = self.core.sessions.sessions
        for sid, s in sessions.items():
            if rep.get(sid) != s.deadline:
                rep[sid] = s.deadline
                out.append(sid)
        if len(rep) > 2 * len(sessions) + 64:
            for sid in [x for x in rep if x not in sessions]:
                del rep[sid]
        return out

    def flush(self) -> None:
        if self.may_ack:
            peer = self.peer
            d = peer.durable_to
            if d > self.acked:
                self.acked = d
                peer.send(self.leader, M.Ack(d))

    def on_log_durable(self) -> None:
        self._check_newleader_ready()

    # -- what our clients ask of the leader ------------------------------------------------------------
    def forward(self, request) -> None:
        if self.phase != BROADCAST:
            if len(self.held) >= self.cfg.max_held_requests:
                self.peer.log("warn", "too many writes held during an epoch change; dropping one")
                return
            self.held.append(("w", request, None))
            return
        inflight = self.inflight
        inflight[(request.session_id, request.cxid)] = request
        if len(inflight) > MAX_INFLIGHT:
            del inflight[next(iter(inflight))]
        frame = request.frame
        body = frame[8:] if frame is not None else encode_request_body(request.type, request.req)
        self.peer.send(self.leader, M.Request(request.session_id, request.cxid, request.type, body,
                                              tuple(request.auth or ())))

    def forward_sync(self, conn, pending) -> None:
        if len(self.syncs) >= MAX_PENDING_SYNCS:
            pending.state = DEFERRED
            self.peer.log("warn", "too many sync() calls in flight; answering one without the leader")
            return
        pending.state = WAIT_COMMIT
        if self.phase != BROADCAST:
            self.held.append(("s", conn.conn_id, pending))
            return
        self._send_sync(conn.conn_id, pending)

    def _send_sync(self, conn_id: int, pending) -> None:
        rid = self.next_sync_id
        self.next_sync_id += 1
        self.syncs[rid] = (conn_id, pending)
        self.peer.send(self.leader, M.SyncReq(rid))

    # -- handoff ---------------------------------------------------------------------------------------
    def on_handoff(self, m: M.Handoff) -> None:
        peer = self.peer
        if self.phase != BROADCAST or self.rolling or m.epoch != self.new_epoch or m.zxid != peer.last_zxid:
            self.fail(f"HANDOFF(epoch {m.epoch}, 0x{m.zxid:x}) in phase {self.phase}, epoch "
                      f"{self.new_epoch}, last 0x{peer.last_zxid:x}")
            return
        self._commit_to(m.zxid)
        peer.take_handoff(m.successor, self)

    def unanswered(self) -> tuple[list, list]:
        """What our clients asked of the leader and got no answer to: writes (in order) and sync()s."""
        reqs = list(self.inflight.values()) + [a for k, a, _ in self.held if k == "w"]
        syncs = list(self.syncs.values()) + [(a, b) for k, a, b in self.held if k == "s"]
        return reqs, syncs

    def carry(self, requests, syncs) -> None:
        """A previous role's unanswered writes and sync()s: sent to our leader after its UPTODATE."""
        self.held = [("w", r, None) for r in requests] + [("s", c, p) for c, p in syncs]

    # -- restore (leader.py, "Restore") ---------------------------------------------------------------
    def request_restore(self, data: bytes, req_id: int) -> str:
        """Forward an AdminServer restore to the leader; "" when sent, else why not."""
        if self.phase != BROADCAST or self.rolling:
            return "this member is not synced with a leader; ask again in a moment"
        if len(data) > self.cfg.max_snapshot_bytes:
            return f"a snapshot of {len(data)} bytes is over max_snapshot_bytes ({self.cfg.max_snapshot_bytes})"
        self.restores.add(req_id)
        step = self.cfg.snap_chunk_bytes
        for off in range(0, len(data), step):        # chunks, as a SNAP: the leader builds as they come
            self.peer.send(self.leader, M.Restore(req_id, len(data), off, data[off:off + step]))
        return ""

    def on_restored(self, m: M.Restored) -> None:
        if m.req_id in self.restores:
            self.restores.discard(m.req_id)
            self.peer.effects.append(("restored", m.req_id, m.zxid, m.error or None))

    def on_syncreply(self, m: M.SyncReply) -> None:
        entry = self.syncs.pop(m.req_id, None)
        if entry is None:
            return
        cid, pending = entry
        conn = self.core.conns.get(cid)
        if conn is not None:
            pending.state = DEFERRED
            self.core._flush(conn)

    def on_leader_notification(self, n: M.Notification) -> None:
        """The server we chose to follow says, before it has taken us on, that it follows another:
        the election went differently for it. Look again rather than wait out initLimit."""
        if self.phase in (CONNECTING, INFO) and n.state in (M.FOLLOWING, M.OBSERVING) and n.leader != self.leader:
            self.peer.become_looking(f"{self.leader} follows {n.leader}, not us")

    def info(self) -> dict:
        return {"zk_zab_phase": self.phase, "zk_epoch": self.new_epoch, "zk_leader": self.leader,
                "zk_pending_syncs": len(self.syncs)}
