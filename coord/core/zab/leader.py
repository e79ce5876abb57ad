"""The leading role: discovery, synchronisation and broadcast, Zab 1.0 as ZooKeeper runs it.

Phases (self.phase) and what moves them:
    DISCOVER    FOLLOWERINFO(accepted epoch, ...) from voters; once they and we are a quorum, the new
                epoch is one more than every accepted epoch we heard (ours included)
    ACCEPTING   `persist_epochs(new, current)`: our own promise is durable before anyone hears of
                the epoch (ZOOKEEPER-1282); then LEADERINFO(new) to every learner
    EPOCH_ACKS  ACKEPOCH from learners; only a *fresh* promise from a voter counts (a learner that had
                already accepted this epoch, from whomever, may have promised it to someone else);
                a learner whose (current epoch, last zxid) is ahead of ours means the election
                picked wrongly: we step down. A quorum of promises (ours included) ends discovery.
    NEWLEADER   every learner that promised is synced (DIFF / TRUNC+DIFF / SNAP+DIFF, planned below),
                then NEWLEADER(epoch, zxid); we make the epoch current once our own log is durable
                to that zxid. ACKNEWLEADER from a quorum (ours included) establishes the epoch:
                the whole history up to that zxid is committed, UPTODATE goes out, service starts.
    BROADCAST   client writes are prepared (core.prepare), appended to our log, proposed to every
                follower in batches; acks are cumulative ("my log is durable up to z"), ours comes
                from log_durable; the commit point is the highest zxid a quorum has acked; COMMIT
                is cumulative too, observers get INFORM (the committed txns). A learner joining now
                goes through the same sync, then receives proposals after its NEWLEADER.

An ACK from a learner that has not acked NEWLEADER is ignored, never fatal (ZOOKEEPER-4685); an ACK
counts only for the history that learner synced from us. A learner ACKs NEWLEADER only once what it
received is durable and its current epoch is written (learner.py), so a quorum of those acks is a
quorum holding the history on disk (ZOOKEEPER-3911/3023/4643/4646).

Sync planning (plan_sync) against our history (history.py):
    learner's last zxid == ours, or one of ours           DIFF from there
    learner ahead of us, or on a branch we do not have     TRUNC to our previous zxid, then DIFF;
                                                           never below the learner's committed floor
                                                           (its tree: ZOOKEEPER-1549) and never to a
                                                           point we cannot name exactly (-1154)
    learner older than our window, or TRUNC impossible     SNAP of our tree, then DIFF of the rest

Epoch roll (ZOOKEEPER-1277 without the outage): when the zxid counter would pass its limit, new
writes are held, and the leader runs discovery and sync again for epoch+1 with the learners it has,
while everyone keeps serving reads and holding their clients; at establishment it resumes proposing
with (epoch+1, 1). If no quorum answers within initLimit, it steps down like any leader would.

Handoff (a planned stop: SIGTERM, a roll, a removal): the leader proposes nothing new (writes and
sync()s that reach it now are dropped: the learner that forwarded them sends them again to the next
leader), waits until everything it proposed is committed, and sends HANDOFF(epoch, zxid, successor)
to every learner, the successor being a voter follower that has acked everything. Then it stops.
The successor leads without an election and the others follow it, everyone keeping its clients;
the new epoch still goes through discovery and synchronisation, so safety rests where it always
did (docs/zab.md, "Graceful leader handoff"). A learner that does not take part (a lost HANDOFF, a
successor that dies) falls back to an election.

Restore (the AdminServer's `restore`, asked of any member: a learner forwards it as RESTORE): the
whole ensemble takes the snapshot's tree, consistently. New writes are held; once everything
proposed is committed, the leader runs an epoch roll; when a quorum has promised the new epoch E it
stops serving, makes the snapshot's tree its own at zxid (E, 0) (above everything committed, in an
epoch no other leader can ever use), writes it as a snapshot (`install_snapshot`), and syncs every
learner from it: their last zxids are not in its history, so each gets a SNAP. The usual NEWLEADER
rule then answers the restore: ACKNEWLEADER from a quorum means a quorum holds the restored tree
durable (learners ack only after `snapshot_installed` and currentEpoch E are on disk). The held
writes then run on the restored tree. A leader that loses its quorum first answers "outcome
unknown": whoever leads next syncs everyone from its own history, restored or not, never a mix.
"""
from __future__ import annotations

from collections import deque

from coord.core import snapformat
from coord.core.server import DEFERRED, WAIT_COMMIT, Request
from coord.core.zab import messages as M
from coord.core.zab.api import counter_of, zxid as make_zxid
from coord.core.zab.quorum import commit_point
from coord.core.zab.sequencer import LeaderSequencer, decode_request_body
from coord.core.zab.snapstream import SnapStream
from coord.jute import records as R
from coord.jute.protocol import Err

DISCOVER, ACCEPTING, EPOCH_ACKS, NEWLEADER, BROADCAST = "discover", "accepting", "epoch-acks", "newleader", "broadcast"
# a learner's phase as the leader sees it
H_INFO, H_EPOCH_SENT, H_EPOCH_ACKED, H_SYNCING, H_SYNCED = "info", "epoch-sent", "epoch-acked", "syncing", "synced"


class LearnerHandle:
    __slots__ = ("sid", "observer", "phase", "current_epoch", "last_zxid", "tree_zxid", "acked_zxid",
                 "newleader_zxid", "synced", "uptodate", "forwarding", "last_heard", "stream")

    def __init__(self, sid, observer, current_epoch, last_zxid, tree_zxid, now):
        self.sid = sid
        self.observer = observer
        self.phase = H_INFO
        self.current_epoch = current_epoch
        self.last_zxid = last_zxid
        self.tree_zxid = tree_zxid
        self.acked_zxid = 0
        self.newleader_zxid = 0
        self.synced = False        # has acked a NEWLEADER of ours: its acks count
        self.uptodate = False      # has been sent UPTODATE: it serves, may forward requests
        self.forwarding = False    # receives proposals/commits (after its sync was sent)
        self.last_heard = now
        self.stream: SnapStream | None = None   # a SNAP still being streamed to it


def plan_sync(history, peer_last: int, peer_tree: int) -> tuple[str, int]:
    """("diff", after) | ("trunc", to) | ("snap", 0) for a learner with that last zxid and tree."""
    last = history.last
    if peer_last == last or (peer_last < last and history.contains(peer_last)):
        return "diff", peer_last
    if peer_last > last:
        t = last
    else:
        t = history.prev_zxid(peer_last)
    exact = history.contains(t) and (t != history.base or t == 0)
    if t >= peer_tree and exact:
        return "trunc", t
    return "snap", 0


class LeaderRole:
    def __init__(self, peer, took_over_from: int | None = None):
        self.peer = peer
        self.took_over_from = took_over_from     # a handoff made us leader (we kept serving)
        self.handing_off = False
        self.handoff_deadline = 0
        self.core = peer.core
        self.cfg = peer.config
        self.sid = peer.sid
        self.phase = DISCOVER
        self.handles: dict[int, LearnerHandle] = {}
        self.infos: dict[int, int] = {}
        self.new_epoch = 0
        self.epoch_acks: set[int] = set()
        self.newleader_acks: set[int] = set()
        self.self_newleader = False
        self.current_asked = False
        self.newleader_zxid = 0
        self.established = False
        self.rolling = False
        self.summary = (peer.peer_epoch, peer.last_zxid)
        self.deadline = peer.mono_ms + self.cfg.init_limit * self.cfg.tick_ms
        self.commit_zxid = peer.history.applied_zxid
        self.pending: list[M.Entry] = []
        self.held: deque[Request] = deque()
        self.local_syncs: deque = deque()
        self.remote_syncs: deque = deque()
        self.next_ping = 0
        self.restore_pending = None      # (tree, origin sid or None, request id): a restore asked for
        self.restoring = False           # the epoch roll running now installs it
        self.restore_rx: dict = {}       # learner sid -> (request id, SnapshotReceiver): RESTORE chunks
        self.handlers = {
            M.FollowerInfo: self.on_followerinfo, M.AckEpoch: self.on_ackepoch,
            M.AckNewLeader: self.on_acknewleader, M.Ack: self.on_ack, M.Request: self.on_request,
            M.SyncReq: self.on_syncreq, M.Pong: self.on_pong, M.Restore: self.on_restore,
        }

    @property
    def quorum(self):
        """The peer's quorum as it is now: joint while a logged reconfig is not yet committed."""
        return self.peer.quorum

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        self.peer.log("info", f"leading: discovering with history to 0x{self.peer.last_zxid:x}")
        self._maybe_choose_epoch()

    def stop(self) -> None:
        """Stepping down: cut every learner loose at once (they go looking now, not after syncLimit),
        as ZooKeeper's leader closes its LearnerHandler sockets."""
        for sid in sorted(self.handles):
            self.peer.disconnect(sid, "the leader is stepping down")
            self._end_stream(self.handles[sid])
        self.handles.clear()
        self.held.clear()
        self.local_syncs.clear()
        self.remote_syncs.clear()
        self.pending = []
        if self.restore_pending is not None:
            _, origin, rid = self.restore_pending
            self.restore_pending = None
            why = ("the leader stepped down while restoring: outcome unknown (every member ends with "
                   "the tree of whoever leads next)" if self.restoring else "the leader stepped down before restoring")
            if origin is None:
                self.peer.effects.append(("restored", rid, 0, why))

    def step(self, sender: int, msg) -> None:
        h = self.handles.get(sender)
        if h is not None:
            h.last_heard = self.peer.mono_ms
        fn = self.handlers.get(type(msg))
        if fn is None:
            self.drop(sender, f"unexpected {M.name_of(msg)} for a leader")
            return
        if h is None and type(msg) is not M.FollowerInfo:
            return                 # from a learner we dropped: it will re-register
        fn(sender, msg)

    def drop(self, sid: int, why: str) -> None:
        self.peer.disconnect(sid, why)
        self._end_stream(self.handles.pop(sid, None))

    def on_link_up(self, sid: int) -> None:
        pass

    def on_link_down(self, sid: int) -> None:
        self.restore_rx.pop(sid, None)
        h = self.handles.pop(sid, None)
        if h is not None:
            self._end_stream(h)
            self.peer.log("info", f"learner {sid} left")

    def want_links(self) -> None:
        pass

    def tick(self) -> None:
        peer = self.peer
        now = peer.mono_ms
        cfg = self.cfg
        for h in [h for h in self.handles.values() if h.stream is not None]:
            self._pump_stream(h)            # one slice per tick: the loop serves everything else between
        if (not self.established or self.rolling) and self.phase != BROADCAST and now > self.deadline:
            peer.become_looking(f"no quorum for epoch {self.new_epoch or '?'} within initLimit")
            return
        if self.handing_off:
            self._try_handoff()
            if peer.role is not self:
                return
        self._maybe_start_restore()
        if now >= self.next_ping:
            self.next_ping = now + cfg.ping_ms
            ping = M.Ping(self.commit_zxid)
            for h in self.handles.values():
                peer.send(h.sid, ping)
        if not self.established:
            return
        sync_ms = cfg.sync_limit * cfg.tick_ms
        init_ms = cfg.init_limit * cfg.tick_ms
        for h in list(self.handles.values()):
            if now - h.last_heard > (sync_ms if h.uptodate else init_ms):
                self.drop(h.sid, "not heard from within the limit")
        live = {self.sid} | {h.sid for h in self.handles.values() if h.synced}
        if not self.quorum.is_quorum(live):
            peer.become_looking("lost the quorum of synced followers")

    # -- discovery -------------------------------------------------------------------------------------
    def on_followerinfo(self, sid: int, m: M.FollowerInfo) -> None:
        peer = self.peer
        observer = bool(m.observer)
        q = self.quorum
        if m.protocol != M.PROTOCOL or (sid in q.members() and observer != (sid in q.observers)):
            self.drop(sid, f"FOLLOWERINFO says observer={m.observer} protocol={m.protocol}")
            return
        # A server in none of our configurations is a joiner (ZooKeeper's non-voting follower): it
        # syncs and follows like any learner, and its acks count once a reconfig makes it a voter.
        if sid in self.handles:
            return          # a repeat on the same link (it resends until answered); a new start needs a new link
        h = LearnerHandle(sid, observer, m.current_epoch, m.last_zxid, m.tree_zxid, peer.mono_ms)
        self.handles[sid] = h
        if self.phase == BROADCAST and not self.rolling and m.accepted_epoch > self.new_epoch:
            # It promised a later epoch to some would-be leader: it must not ack ours. Rather than
            # leave it out until the next election, move the ensemble to an epoch above its promise.
            peer.log("info", f"learner {sid} has accepted epoch {m.accepted_epoch} > ours {self.new_epoch}")
            self.start_roll(m.accepted_epoch + 1)
            return
        if self.phase == DISCOVER:
            if not observer:
                self.infos[sid] = m.accepted_epoch
            self._maybe_choose_epoch()
        elif self.phase != ACCEPTING:
            self._send_leaderinfo(h)

    def _maybe_choose_epoch(self) -> None:
        if self.phase != DISCOVER or not self.quorum.is_quorum(set(self.infos) | {self.sid}):
            return
        peer = self.peer
        e = max([peer.promised_epoch, peer.current_epoch, *self.infos.values()]) + 1
        self.new_epoch = e
        self.phase = ACCEPTING
        peer.log("info", f"proposing epoch {e} (heard from {sorted(self.infos)})")
        peer.persist_epochs(e, peer.current_epoch)

    def _send_leaderinfo(self, h: LearnerHandle) -> None:
        self.peer.send(h.sid, M.LeaderInfo(self.new_epoch, M.PROTOCOL))
        h.phase = H_EPOCH_SENT

    def on_epochs_persisted(self) -> None:
        peer = self.peer
        if self.phase == ACCEPTING and peer.accepted_epoch >= self.new_epoch:
            self.phase = EPOCH_ACKS
            self.epoch_acks.add(self.sid)
            for h in self.handles.values():
                if h.phase == H_INFO:
                    self._send_leaderinfo(h)
            self._check_epoch_quorum()
        elif self.phase == NEWLEADER and peer.current_epoch >= self.new_epoch and not self.self_newleader:
            self.self_newleader = True
            self._check_established()

    def on_ackepoch(self, sid: int, m: M.AckEpoch) -> None:
        h = self.handles[sid]
        if h.phase != H_EPOCH_SENT or m.epoch != self.new_epoch:
            self.drop(sid, f"ACKEPOCH for epoch {m.epoch} in phase {h.phase}")
            return
        if self.phase == EPOCH_ACKS and not self.rolling and (m.current_epoch, m.last_zxid) > self.summary:
            self.peer.become_looking(f"learner {sid} is ahead of us: epoch {m.current_epoch}, "
                                     f"zxid 0x{m.last_zxid:x}")
            return
        h.current_epoch = m.current_epoch
        h.last_zxid = m.last_zxid
        h.phase = H_EPOCH_ACKED
        if m.fresh and not h.observer:
            self.epoch_acks.add(sid)
        if self.phase == EPOCH_ACKS:
            self._check_epoch_quorum()
        elif self.phase in (NEWLEADER, BROADCAST):
            self.start_sync(h)

    def _check_epoch_quorum(self) -> None:
        if self.phase != EPOCH_ACKS or not self.quorum.is_quorum(self.epoch_acks):
            return
        self._flush_proposals()
        self.phase = NEWLEADER
        if self.restoring:
            self._install_restore()
        self.newleader_zxid = self.peer.last_zxid
        self.peer.log("info", f"epoch {self.new_epoch} promised by {sorted(self.epoch_acks)}; syncing to "
                              f"0x{self.newleader_zxid:x}")
        for h in list(self.handles.values()):
            if h.phase == H_EPOCH_ACKED:
                self.start_sync(h)
        self._maybe_persist_current()

    # -- synchronisation ---------------------------------------------------------------------------------
    def start_sync(self, h: LearnerHandle) -> None:
        peer = self.peer
        self._flush_proposals()
        self._end_stream(h)
        kind, point = plan_sync(peer.history, h.last_zxid, h.tree_zxid)
        h.phase = H_SYNCING
        if kind == "snap":
            # streamed a slice per flush (snapstream.py); DIFF and NEWLEADER follow the last chunk
            h.stream = SnapStream(self.core.tree, created_ms=peer.now_ms, slice_nodes=self.cfg.snap_slice_nodes,
                                  chunk_bytes=self.cfg.snap_chunk_bytes)
            h.forwarding = False
            h.newleader_zxid = 0
            self._pin_history()
            peer.stats.snap_syncs += 1
            self._pump_stream(h)
            return
        if kind == "trunc":
            peer.send(h.sid, M.Trunc(point))
            peer.stats.trunc_syncs += 1
        else:
            peer.stats.diff_syncs += 1
        self._finish_sync(h, kind, point)

    def _finish_sync(self, h: LearnerHandle, kind: str, point: int) -> None:
        """The DIFF after `point`, then NEWLEADER; proposals follow on the link from here on."""
        peer = self.peer
        sid = h.sid
        for msg in self._batches(M.Diff, peer.history.since(point)):
            peer.send(sid, msg)
        peer.send(sid, M.NewLeader(self.new_epoch, peer.last_zxid))
        peer.log("info", f"syncing {sid} (last 0x{h.last_zxid:x}, tree 0x{h.tree_zxid:x}) by "
                         f"{kind.upper()} 0x{point:x} to 0x{peer.last_zxid:x}")
        h.newleader_zxid = peer.last_zxid
        h.forwarding = True

    def _pump_stream(self, h: LearnerHandle) -> None:
        st = h.stream
        try:
            chunks = st.next()
        except ValueError as e:       # SnapshotError: a bug in keeping the captured state
            self.peer.log("error", f"snapshot stream to {h.sid}: {e}")
            self.drop(h.sid, "snapshot stream failed")
            return
        for m in chunks:
            self.peer.send(h.sid, m)
        if st.done:
            h.stream = None
            self._pin_history()
            self._flush_proposals()          # the DIFF below covers them: none may follow it twice
            self._finish_sync(h, "snap", st.zxid)

    def _end_stream(self, h: LearnerHandle | None) -> None:
        if h is not None and h.stream is not None:
            h.stream.close()
            h.stream = None
            self._pin_history()

    def _pin_history(self) -> None:
        """Keep the history from the oldest streamed snapshot on: its DIFF must still be there."""
        zs = [h.stream.zxid for h in self.handles.values() if h.stream is not None]
        self.peer.history.pin = min(zs) if zs else None

    def _batches(self, cls, entries):
        limit = self.cfg.max_batch_bytes
        batch = []
        size = 0
        for e in entries:
            n = len(e.blob) + 4
            if batch and size + n > limit:
                yield cls(batch)
                batch = []
                size = 0
            batch.append(e)
            size += n
        if batch:
            yield cls(batch)

    def _maybe_persist_current(self) -> None:
        peer = self.peer
        if self.phase == NEWLEADER and not self.current_asked and peer.durable_to >= self.newleader_zxid:
            self.current_asked = True
            peer.persist_epochs(self.new_epoch, self.new_epoch)

    def on_acknewleader(self, sid: int, m: M.AckNewLeader) -> None:
        h = self.handles[sid]
        if h.phase != H_SYNCING or m.epoch != self.new_epoch or m.zxid != h.newleader_zxid:
            self.drop(sid, f"ACKNEWLEADER(epoch {m.epoch}, 0x{m.zxid:x}) in phase {h.phase}")
            return
        h.phase = H_SYNCED
        h.synced = True
        h.acked_zxid = max(h.acked_zxid, m.zxid)
        if not h.observer:
            self.newleader_acks.add(sid)
        if self.phase == NEWLEADER:
            self._check_established()
        elif self.phase == BROADCAST:
            self._uptodate(h)
            self._maybe_commit()

    def _uptodate(self, h: LearnerHandle) -> None:
        self.peer.send(h.sid, M.UpToDate(self.new_epoch, self.commit_zxid))
        h.uptodate = True

    def _check_established(self) -> None:
        if self.phase == NEWLEADER and self.self_newleader and \
                self.quorum.is_quorum(self.newleader_acks | {self.sid}):
            self.establish()

    def establish(self) -> None:
        peer = self.peer
        core = self.core
        self.phase = BROADCAST
        was_rolling = self.rolling
        self.rolling = False
        self.established = True
        z = self.newleader_zxid
        peer.commit_to(z)              # learners learn it from UPTODATE (or a later COMMIT/INFORM)
        self.commit_zxid = max(self.commit_zxid, z)
        peer.log("info", f"epoch {self.new_epoch} established with {sorted(self.newleader_acks | {self.sid})};"
                         f" committed to 0x{z:x}")
        for h in list(self.handles.values()):
            if h.phase == H_SYNCED:
                self._uptodate(h)
            elif h.phase != H_SYNCING:
                h.forwarding = False      # still on the old epoch (a roll): it syncs when it acks
                h.synced = False
        core.next_zxid_counter = make_zxid(self.new_epoch, 0)
        if peer.listener is not None:
            peer.listener.established(peer, self.new_epoch)
        if not core.serving:
            peer.start_serving(LeaderSequencer(peer, self))
        elif self.took_over_from is not None and not was_rolling:
            peer.log("info", f"took over from {self.took_over_from} in epoch {self.new_epoch} "
                             f"without leaving service")
        elif was_rolling:
            peer.log("info", f"rolled to epoch {self.new_epoch} without leaving service")
        self._complete_syncs()
        if self.restoring:
            self._answer_restore(z, "")
        held = self.held
        self.held = deque()
        for req in held:
            self.submit(req)

    # -- broadcast ------------------------------------------------------------------------------------
    def submit(self, request: Request) -> None:
        peer = self.peer
        core = self.core
        if self.handing_off:
            return          # its learner forwards it again to our successor; our own clients reconnect
        if self.phase != BROADCAST or self.rolling or self.restore_pending is not None:
            if len(self.held) >= self.cfg.max_held_requests:
                peer.log("warn", "too many writes held during an epoch change; dropping one")
                return
            self.held.append(request)
            return
        if counter_of(core.next_zxid_counter) >= self.cfg.zxid_counter_limit:
            self.held.append(request)
            self.start_roll()
            return
        t = request.type
        sid = request.session_id
        if t != -10 and t != -11 and not (t == 20 and sid == 0):
            s = core.sessions.get(sid)
            if (s.closing if s is not None else not core.foreign_local_session(sid)):
                hdr = R.TxnHeader(sid, request.cxid, core.next_zxid(), core.now_ms, -1)
                self._propose(M.Entry(hdr, R.ErrorTxn(int(Err.SESSIONEXPIRED))))
                return
        hdr, txn = core.prepare(request)
        self._propose(M.Entry(hdr, txn))

    def _propose(self, e: M.Entry) -> None:
        self.peer.history.append(e)
        if e.hdr.type == 16:
            self.peer.note_logged((e,))
        self.pending.append(e)
        self.peer.stats.proposals += 1

    def flush(self) -> None:
        self._flush_proposals()

    @property
    def streaming(self) -> bool:
        return any(h.stream is not None for h in self.handles.values())

    def settled(self) -> bool:
        """Broadcasting to up-to-date learners only, with no roll, handoff or restore under way."""
        if not self.established or self.phase != BROADCAST or self.rolling or self.handing_off \
                or self.restore_pending is not None or self.restore_rx:
            return False
        for h in self.handles.values():
            if not h.uptodate or h.stream is not None:
                return False
        return True

    def _flush_proposals(self) -> None:
        if not self.pending:
            return
        batch = self.pending
        self.pending = []
        peer = self.peer
        peer.append_log(batch)
        targets = [h.sid for h in self.handles.values() if h.forwarding and not h.observer]
        if targets:
            for msg in self._batches(M.Proposal, batch):
                for sid in targets:
                    peer.send(sid, msg)

    def on_log_durable(self) -> None:
        if self.phase == NEWLEADER:
            self._maybe_persist_current()
        self._maybe_commit()
        if self.handing_off:
            self._try_handoff()
        self._maybe_start_restore()

    def on_log_truncated(self, zxid: int) -> None:
        pass

    def on_snapshot_installed(self, zxid: int) -> None:
        if self.phase == NEWLEADER:          # our restored tree is on disk (see _install_restore)
            self._maybe_persist_current()

    def on_ack(self, sid: int, m: M.Ack) -> None:
        h = self.handles[sid]
        if not h.synced or h.observer:
            return                      # before its NEWLEADER ack: not ours to count (ZOOKEEPER-4685)
        if m.zxid > self.peer.last_zxid:
            self.drop(sid, f"ACK of 0x{m.zxid:x}, beyond anything we proposed")
            return
        if m.zxid > h.acked_zxid:
            h.acked_zxid = m.zxid
            self._maybe_commit()
            if self.handing_off:
                self._try_handoff()
            self._maybe_start_restore()

    def _maybe_commit(self) -> None:
        if not self.established:
            return
        peer = self.peer
        acks = {self.sid: peer.durable_to}
        for h in self.handles.values():
            if h.synced and not h.observer:
                acks[h.sid] = h.acked_zxid
        ms = peer.membership
        z = commit_point(ms.active, ms.pending_quorums(), acks)
        if z is None or z <= self.commit_zxid:
            return
        entries = peer.commit_to(z)
        self.commit_zxid = z
        commit = M.Commit(z)
        for h in self.handles.values():
            if h.forwarding and not h.observer:
                peer.send(h.sid, commit)
        self._inform(entries)
        self._complete_syncs()

    def _inform(self, entries) -> None:
        if not entries:
            return
        obs = [h.sid for h in self.handles.values() if h.observer and h.forwarding]
        if obs:
            for msg in self._batches(M.Inform, entries):
                for sid in obs:
                    self.peer.send(sid, msg)

    def on_request(self, sid: int, m: M.Request) -> None:
        h = self.handles[sid]
        if not h.uptodate:
            self.peer.log("warn", f"request from {sid} before it was up to date; ignored")
            return
        try:
            req = decode_request_body(m.type, m.body)
        except ValueError as e:
            self.drop(sid, f"malformed forwarded request: {e}")
            return
        self.submit(Request(m.session_id, m.cxid, m.type, req, tuple(m.auth)))

    def on_config(self) -> None:
        """A reconfig committed and we still lead: a learner whose role it changed must rejoin in
        its new role (it does so itself; we drop it so that nothing is sent to it meanwhile)."""
        q = self.quorum
        for h in list(self.handles.values()):
            if h.sid in q.members() and h.observer != (h.sid in q.observers):
                self.drop(h.sid, "a reconfig changed its role")

    # -- sync() ----------------------------------------------------------------------------------------
    def local_sync(self, conn, pending) -> None:
        if self.commit_zxid >= self.peer.last_zxid and not self.held:
            pending.state = DEFERRED
            return
        pending.state = WAIT_COMMIT
        self.local_syncs.append((self.peer.last_zxid, conn.conn_id, pending))

    def on_syncreq(self, sid: int, m: M.SyncReq) -> None:
        if not self.handles[sid].uptodate or self.handing_off:
            return
        if self.commit_zxid >= self.peer.last_zxid and not self.held:
            self.peer.send(sid, M.SyncReply(m.req_id, self.commit_zxid))
        else:
            self.remote_syncs.append((self.peer.last_zxid, sid, m.req_id))

    def _complete_syncs(self) -> None:
        c = self.commit_zxid
        core = self.core
        if self.held:
            return
        while self.local_syncs and self.local_syncs[0][0] <= c:
            _, cid, pending = self.local_syncs.popleft()
            conn = core.conns.get(cid)
            if conn is not None:
                pending.state = DEFERRED
                core._flush(conn)
        while self.remote_syncs and self.remote_syncs[0][0] <= c:
            _, sid, rid = self.remote_syncs.popleft()
            self.peer.send(sid, M.SyncReply(rid, c))

    # -- sessions --------------------------------------------------------------------------------------
    def on_pong(self, sid: int, m: M.Pong) -> None:
        if self.phase != BROADCAST and not self.rolling:
            return
        tracker = self.core.sessions
        now = self.peer.mono_ms
        for s in m.sessions:
            tracker.touch(s, now)

    # -- epoch roll -----------------------------------------------------------------------------------
    def start_roll(self, min_epoch: int = 0, why: str = "") -> None:
        if self.rolling:
            return
        peer = self.peer
        self._flush_proposals()
        self.rolling = True
        peer.stats.epoch_rolls += 1
        e = max(peer.promised_epoch + 1, peer.current_epoch + 1, min_epoch)
        why = why or (f"zxid counter at its limit (0x{self.core.next_zxid_counter:x})" if not min_epoch
                      else "a learner promised a later epoch")
        peer.log("info", f"{why}: rolling to epoch {e}")
        self.new_epoch = e
        self.phase = ACCEPTING
        self.deadline = peer.mono_ms + self.cfg.init_limit * self.cfg.tick_ms
        self.epoch_acks = set()
        self.newleader_acks = set()
        self.self_newleader = False
        self.current_asked = False
        self.summary = (peer.peer_epoch, peer.last_zxid)
        for h in list(self.handles.values()):
            if h.uptodate:
                h.phase = H_INFO
            elif h.phase != H_INFO:
                self.drop(h.sid, "epoch roll while it was still syncing")
        peer.persist_epochs(e, peer.current_epoch)

    # -- restore --------------------------------------------------------------------------------------
    def request_restore(self, tree, origin: int | None, req_id: int) -> str:
        """Restore the ensemble to `tree` (docstring above); "" when under way, else why not. The
        answer comes later: a `("restored", req_id, zxid, error)` effect (origin None) or RESTORED."""
        if self.handing_off:
            return "the leader is stopping; ask again once a new leader serves"
        if self.restore_pending is not None:
            return "a restore is already in progress"
        if not self.established or self.phase != BROADCAST or self.rolling:
            return "the leader is changing epochs; ask again in a moment"
        self.restore_pending = (tree, origin, req_id)
        self.peer.log("info", f"restore asked ({'here' if origin is None else f'by {origin}'}): "
                              f"{len(tree.nodes)} znodes, {len(tree.sessions)} sessions; holding new writes")
        self._maybe_start_restore()
        return ""

    def on_restore(self, sid: int, m: M.Restore) -> None:
        """A chunk of a restore a learner forwards; built into a tree as it arrives (as a SNAP is),
        so no single message stalls the leader for a whole tree."""
        got = self.restore_rx.get(sid)
        if m.offset == 0:
            got = self.restore_rx[sid] = (m.req_id, snapformat.SnapshotReceiver())
        if got is None or got[0] != m.req_id or m.offset != len(got[1]):
            if got is not None and got[0] == m.req_id:
                self.restore_rx.pop(sid, None)
                self.peer.send(sid, M.Restored(m.req_id, 0, "restore chunks out of order"))
            return
        rx = got[1]
        if m.total > self.cfg.max_snapshot_bytes:
            self.restore_rx.pop(sid, None)
            self.peer.send(sid, M.Restored(m.req_id, 0, f"snapshot of over {self.cfg.max_snapshot_bytes} bytes"))
            return
        try:
            rx.feed(m.data)
            if len(rx) < m.total:
                return
            self.restore_rx.pop(sid, None)
            tree, _info = rx.finish()
        except Exception as e:        # noqa: BLE001 - the learner checked it; any failure is a bad body
            self.restore_rx.pop(sid, None)
            self.peer.send(sid, M.Restored(m.req_id, 0, f"not a usable snapshot: {e}"))
            return
        if not self.handles[sid].uptodate:
            self.peer.send(sid, M.Restored(m.req_id, 0, "the leader is not ready for it yet"))
            return
        why = self.request_restore(tree, sid, m.req_id)
        if why:
            self.peer.send(sid, M.Restored(m.req_id, 0, why))

    def _maybe_start_restore(self) -> None:
        """Roll the epoch for a restore once everything proposed so far is committed."""
        if self.restore_pending is None or self.restoring or self.rolling or self.handing_off \
                or self.phase != BROADCAST or self.pending or self.commit_zxid < self.peer.last_zxid \
                or self.peer.membership.pending or self.peer.role is not self:
            return
        self.restoring = True
        self.start_roll(why="restoring the ensemble from a snapshot")

    def _install_restore(self) -> None:
        """A quorum promised the new epoch: the snapshot's tree becomes ours at (epoch, 0), durable
        before our NEWLEADER counts (durable_to waits for `snapshot_installed`)."""
        peer = self.peer
        core = self.core
        tree = self.restore_pending[0]
        z = make_zxid(self.new_epoch, 0)
        tree.last_zxid = z
        node = tree.nodes.get("/zookeeper/config")
        if node is not None and core.config.config_data:
            node.data = core.config.config_data    # the ensemble keeps its own membership
        peer.stop_serving("the tree is being restored from a snapshot")
        if peer.listener is not None:
            peer.listener.restored(peer, tree)
        peer.replace_tree(tree)
        peer.install_snapshot(None, z)      # the driver writes our tree (a forked snapshot: no stall here)
        peer.log("info", f"restore: the snapshot's tree is ours at 0x{z:x}; every learner syncs from it by SNAP")

    def _answer_restore(self, z: int, error: str) -> None:
        _, origin, rid = self.restore_pending
        self.restore_pending = None
        self.restoring = False
        self.peer.log("info", f"restore established at 0x{z:x} on a quorum")
        if origin is None:
            self.peer.effects.append(("restored", rid, z, error or None))
        elif origin in self.handles:
            self.peer.send(origin, M.Restored(rid, z, error))

    # -- handoff --------------------------------------------------------------------------------------
    def begin_handoff(self) -> None:
        """Asked to stop: no new proposals; hand over once everything proposed is committed."""
        if self.handing_off:
            return
        peer = self.peer
        self.handing_off = True
        self.handoff_deadline = peer.mono_ms + self.cfg.sync_limit * self.cfg.tick_ms
        self.held.clear()
        peer.log("info", f"handing off leadership: {peer.last_zxid - self.commit_zxid if peer.last_zxid >> 32 == self.commit_zxid >> 32 else '?'} "
                         f"proposals outstanding")
        self._flush_proposals()
        self._try_handoff()

    def release(self) -> None:
        """Handed off: let the learners go without closing their links (a close could overtake the
        HANDOFF still in the driver's buffers; they follow the successor and ignore our link)."""
        for h in self.handles.values():
            self._end_stream(h)
        self.handles.clear()

    def successor(self) -> LearnerHandle | None:
        """A voter of the active configuration, synced with us and durable through our last zxid;
        the highest id among them (the one an election among them would pick)."""
        last = self.peer.last_zxid
        voters = self.peer.membership.active.voters
        ok = [h for h in self.handles.values() if h.uptodate and h.synced and not h.observer
              and h.sid in voters and h.acked_zxid >= last and h.stream is None]
        return max(ok, key=lambda h: h.sid) if ok else None

    def _try_handoff(self) -> None:
        peer = self.peer
        if not self.handing_off or peer.role is not self:
            return
        last = peer.last_zxid
        late = peer.mono_ms > self.handoff_deadline
        ready = self.established and self.phase == BROADCAST and not self.rolling and not self.pending \
            and self.commit_zxid >= last and not peer.membership.pending
        succ = self.successor() if ready else None
        if succ is None:
            if late:
                peer.finish_handoff(None, "no up-to-date follower to hand over to in time")
            return
        msg = M.Handoff(self.new_epoch, last, succ.sid)
        for h in self.handles.values():
            if h.uptodate and h.forwarding:
                peer.send(h.sid, msg)
        peer.finish_handoff(succ.sid, f"handed leadership to {succ.sid} at 0x{last:x}")

    # -- introspection --------------------------------------------------------------------------------
    def info(self) -> dict:
        hs = self.handles.values()
        return {
            "zk_zab_phase": self.phase,
            "zk_epoch": self.new_epoch,
            "zk_learners": len(self.handles),
            "zk_followers": sum(1 for h in hs if not h.observer),
            "zk_synced_followers": sum(1 for h in hs if h.synced and not h.observer),
            "zk_synced_observers": sum(1 for h in hs if h.synced and h.observer),
            "zk_pending_syncs": len(self.local_syncs) + len(self.remote_syncs),
            "zk_commit_zxid": self.commit_zxid,
            "zk_outstanding_proposals": max(0, self.peer.last_zxid - self.commit_zxid)
            if (self.peer.last_zxid >> 32) == (self.commit_zxid >> 32) else 0,
        }
