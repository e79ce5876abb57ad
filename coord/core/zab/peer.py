"""QuorumPeer: one ensemble member as a pure state machine (the contract is coord.core.zab.api).

    peer = QuorumPeer(sid, voters, observers, core, config)   # voters/observers: {sid: anything}
    peer.start(now_ms, mono_ms, DurableState(...))
    ... inputs: tick, peer_connected/peer_disconnected, message, epochs_persisted, log_durable,
        log_truncated, snapshot_installed; client frames straight to peer.core ...
    for effect in peer.drain_effects(): perform it, in order

Theory (Zab 1.0). A peer is always in one of four roles, each a swapped step function:
    looking     fast leader election (election.py) picks who should lead
    leading     leader.py: discovery (a quorum promises a new epoch), synchronisation (a quorum
                holds the leader's history durably and has made the epoch current), broadcast
    following   learner.py: the mirror image, acking only what is durable
    observing   learner.py without votes or acks
Any failure (a lost link to the leader, a lost quorum, a timeout, a protocol violation) sends the
peer back to looking; nothing it has made durable is ever forgotten.

What the peer keeps:
    accepted_epoch / current_epoch   as durable on disk; a new value is asked for with the
        `persist_epochs` effect and believed only when `epochs_persisted` reports it
    history     the log as the peer knows it (history.py): txns after the tree, committed or not,
        plus a window of committed ones for DIFF sync
    durable_zxid    the log is fsynced up to here (log_durable)
    core.tree   committed state only: txns are applied when a quorum has them on disk (or, for a
        learner, when the leader says so), never before
    links       one per peer, with a sequence number per direction: a replay is ignored, a gap
        (loss, reordering) closes the link; undecodable bytes close the link

Serving: only a leader in broadcast and a learner after UPTODATE serve clients. Leaving service
closes every client connection (the client library reconnects elsewhere, as with ZooKeeper), so no
client ever waits on a request that a lost leader will never answer.
"""
from __future__ import annotations

from coord.core.datatree import DataTree
from coord.core.server import DEFERRED, ServerCore
from coord.core.zab import messages as M
from coord.core.zab.api import DurableState, ZabConfig, epoch_of
from coord.core.zab.election import Election, Vote
from coord.core.zab.history import History
from coord.core.zab.membership import Membership, parse_config
from coord.core.zab.messages import Entry
from coord.core.zab.sequencer import IdleSequencer

LOOKING, FOLLOWING, LEADING, OBSERVING = "looking", "following", "leading", "observing"
REMOVED = "removed"      # a reconfig took us out of the ensemble: no election, no service
STOPPED = "stopped"      # asked to stop (handoff done): no election, no service, until the process exits
_STATE_CODE = {LOOKING: M.LOOKING, FOLLOWING: M.FOLLOWING, LEADING: M.LEADING, OBSERVING: M.OBSERVING}


class _Link:
    __slots__ = ("send_seq", "recv_seq")

    def __init__(self):
        self.send_seq = 0
        self.recv_seq = 0


def _as_dict(x) -> dict:
    if x is None:
        return {}
    if isinstance(x, dict):
        return dict(x)
    return {s: None for s in x}


class PeerStats:
    __slots__ = ("elections", "messages_in", "messages_out", "bad_messages", "proposals",
                 "commits", "snap_syncs", "diff_syncs", "trunc_syncs", "epoch_rolls")

    def __init__(self):
        for f in self.__slots__:
            setattr(self, f, 0)


class QuorumPeer:
    def __init__(self, sid: int, voters, observers, core: ServerCore, config: ZabConfig | None = None):
        self.sid = sid
        self.membership = Membership(_as_dict(voters), _as_dict(observers))
        if sid not in self.quorum.members():
            raise ValueError(f"server {sid} is neither a voter nor an observer")
        self.is_observer = sid in self.quorum.observers
        self.removed = False
        self.stopping = False             # asked to stop (handoff): see handoff()
        self.handed_to: int | None = None  # the successor our HANDOFF named
        self.reconfig_followup = False    # a committed reconfig's consequences, run after this input
        self.remove_after_reconfig = False
        self.config_told: dict[int, int] = {}
        self.last_config_ask = 0
        self.core = core
        self.config = config or ZabConfig()
        c = self.config
        self.effects: list[tuple] = []
        self.now_ms = 0
        self.mono_ms = 0
        self.started = False
        self.accepted_epoch = 0
        self.current_epoch = 0
        self.asked_accepted = 0
        self.asked_current = 0
        self.persists_in_flight = 0
        self.history = History(core.tree.last_zxid, c.history_txns, c.history_bytes)
        self.durable_zxid = core.tree.last_zxid
        self.barriers = 0                # truncations / snapshot installs not yet reported done
        self.links: dict[int, _Link] = {}
        self.closing: dict[int, int] = {}
        self.last_connect: dict[int, int] = {}
        self.state = LOOKING
        self.role = None
        self.step = self.step_looking
        self.election = Election(sid, self.quorum, finalize_ms=c.election_finalize_ms,
                                 resend_ms=c.election_resend_ms, resend_max_ms=c.election_resend_max_ms)
        self.vote: Vote | None = None
        self.leader_sid: int | None = None
        self.stats = PeerStats()
        self.listener = None            # the simulator's checkers hook in here
        core.serving = False
        core.sequencer = IdleSequencer(self)
        core.mode = "looking"

    # -- derived state --------------------------------------------------------------------------
    @property
    def quorum(self):
        """Quorum of the active configuration, or Joint while a logged reconfig is not committed."""
        return self.membership.quorum

    @property
    def voters(self) -> dict:
        return self.membership.voters

    @property
    def observers(self) -> dict:
        return self.membership.observers

    @property
    def last_zxid(self) -> int:
        return self.history.last

    @property
    def peer_epoch(self) -> int:
        """The epoch our history belongs to. Normally current_epoch; a txn of a later epoch on disk
        (received while syncing with that epoch's leader, the epoch not yet made current when we
        crashed) proves we hold a prefix of that epoch's history, so it counts as that epoch."""
        return max(self.current_epoch, epoch_of(self.last_zxid))

    @property
    def streaming(self) -> bool:
        """A leader is streaming a SNAP (a slice per tick): the driver should tick again promptly."""
        return bool(getattr(self.role, "streaming", False))

    def settled(self) -> bool:
        """Nothing time-bound is under way: serving in a broadcast phase with every link up, no
        epoch file write, sync, stream, handoff or restore in progress and no request held by the
        throttler. The driver may then tick at `config.idle_tick_ms` rather than every few ms, and
        must tick promptly again as soon as this turns false."""
        role = self.role
        if role is None or self.state not in (LEADING, FOLLOWING, OBSERVING) or self.removed \
                or self.persists_in_flight or self.barriers or self.membership.pending or not role.settled():
            return False
        for s in self.quorum.voters:
            if s != self.sid and s not in self.links:
                return False
        return not self.core.holds_throttled()

    @property
    def promised_epoch(self) -> int:
        """The highest epoch we may have promised: durable or on its way to disk."""
        return max(self.accepted_epoch, self.asked_accepted)

    # -- inputs ------------------------------------------------------------------------------------
    def start(self, now_ms: int, mono_ms: int, durable_state: DurableState | None = None) -> None:
        self.set_time(now_ms, mono_ms)
        self.core.start(now_ms, mono_ms)
        self._restore(durable_state or DurableState())
        self.become_looking("start")

    def start_taking_over(self, now_ms: int, mono_ms: int, durable_state: DurableState, leader: int,
                          requests: list, syncs: list, serving: bool) -> None:
        """Start over a core that is already serving (a coord observer of a ZooKeeper ensemble taking
        over, coord.aio.zkobserver): no election and no pause in service; `leader` (the member with
        the highest zxid, named by the take-over) leads and the others follow it, as after a
        handoff. The clients' unanswered writes and sync()s go to the new leader once it is
        established (as take_handoff carries them). A core that was not serving (`serving` False:
        it had closed its clients) starts serving once synced, as after an election."""
        self.set_time(now_ms, mono_ms)
        self._restore(durable_state)
        self.durable_zxid = max(self.durable_zxid, self.core.tree.last_zxid)
        if not serving:
            self.settle(leader, Vote(leader, self.last_zxid, self.peer_epoch))
            return
        self.core.serving = True          # __init__ turned it off; the clients never saw a pause
        self._serve_through(leader, None, requests, syncs)

    def _restore(self, ds: DurableState) -> None:
        self.current_epoch = self.asked_current = ds.current_epoch
        self.accepted_epoch = self.asked_accepted = max(ds.accepted_epoch, ds.current_epoch)
        self._adopt_tree_config()
        h = self.history
        self._seed_committed(ds)
        logged = []
        for rec in ds.log:
            hdr, txn = rec[0], rec[1]
            if hdr.zxid <= h.last:
                self.log("warn", f"log record 0x{hdr.zxid:x} is not after 0x{h.last:x}; ignored")
                continue
            e = Entry(hdr, txn)
            h.append(e)
            logged.append(e)
        self.note_logged(logged)
        for z, data in ds.extra.get("pending_configs", ()):
            self.note_logged([Entry(_reconfig_header(z), _SetData("/zookeeper/config", data, -1))])
        if ds.last_logged_zxid > h.last:
            self.log("warn", f"the driver says the log ends at 0x{ds.last_logged_zxid:x} but gave "
                             f"records only to 0x{h.last:x}")
        self.durable_zxid = h.last
        self.started = True
        self.log("info", f"starting: accepted epoch {self.accepted_epoch}, current epoch "
                         f"{self.current_epoch}, tree at 0x{self.core.tree.last_zxid:x}, "
                         f"log to 0x{h.last:x} ({len(h) - h.applied} txns not yet known committed, "
                         f"{h.applied} committed kept for DIFF)")

    def _seed_committed(self, ds: DurableState) -> None:
        """The committed window the driver replayed into the tree: it must end exactly at the tree."""
        recs = ds.committed
        h = self.history
        if not recs or len(h) or recs[-1][0].zxid != h.base:
            if recs:
                self.log("warn", f"committed records end at 0x{recs[-1][0].zxid:x}, not at the tree's "
                                 f"0x{h.base:x}; ignored")
            return
        h.base = ds.committed_base
        for rec in recs:
            if rec[0].zxid <= h.last:
                self.log("warn", f"committed record 0x{rec[0].zxid:x} is not after 0x{h.last:x}; ignored")
                h.reset(self.core.tree.last_zxid)
                return
            h.append(Entry(rec[0], rec[1]))
        h.applied = len(h)

    def tick(self, now_ms: int, mono_ms: int) -> None:
        self.set_time(now_ms, mono_ms)
        if not self.started:
            return
        if self.removed:
            self._ask_config()
            self.core.tick()
            return
        if self.state == STOPPED:
            self.core.tick()
            return
        self._want_links()
        if self.state == LOOKING:
            self.election.tick(mono_ms)
            self._after_election()
        elif self.role is not None:
            self.role.tick()
        self.core.tick()

    def peer_connected(self, sid: int) -> None:
        if sid == self.sid:
            return          # anyone else may be a server joining (it follows before it is a member)
        self.closing.pop(sid, None)
        if self.links.pop(sid, None) is not None and self.role is not None:
            self.role.on_link_down(sid)       # a new link replaces one never reported down: end that one
        self.links[sid] = _Link()
        self.config_told.pop(sid, None)
        if not self.started or self.removed:
            return
        if self.state == LOOKING:
            self.election._send(sid)
            self._after_election()
        elif self.role is not None:
            self.role.on_link_up(sid)

    def peer_disconnected(self, sid: int) -> None:
        self.closing.pop(sid, None)
        if self.links.pop(sid, None) is not None and self.role is not None:
            self.role.on_link_down(sid)

    def message(self, from_sid: int, data: bytes) -> None:
        self.stats.messages_in += 1
        link = self.links.get(from_sid)
        if link is None:
            return                           # link closed by us (or never reported): drop
        res = M.decode(data, self.config.max_message_bytes)
        if not res:
            self.stats.bad_messages += 1
            self.disconnect(from_sid, f"undecodable message: {res.reason}")
            return
        seq, msg = res
        if seq != link.recv_seq:
            if seq < link.recv_seq:
                return                       # a replay of something we already have
            self.stats.bad_messages += 1
            self.disconnect(from_sid, f"message {seq} where {link.recv_seq} was due (lost or reordered)")
            return
        link.recv_seq += 1
        if not self.started:
            return
        if type(msg) is M.Notification:
            self.on_notification(from_sid, msg)
        elif type(msg) is M.ConfigInfo:
            self.on_configinfo(from_sid, msg)
        else:
            self.step(from_sid, msg)

    def epochs_persisted(self, accepted_epoch: int, current_epoch: int) -> None:
        self.persists_in_flight = max(0, self.persists_in_flight - 1)
        if accepted_epoch > self.accepted_epoch:
            self.accepted_epoch = accepted_epoch
        if current_epoch > self.current_epoch:
            self.current_epoch = current_epoch
        if self.role is not None:
            self.role.on_epochs_persisted()

    def log_durable(self, zxid: int) -> None:
        if zxid > self.durable_zxid:
            self.durable_zxid = zxid
        if self.role is not None:
            self.role.on_log_durable()

    def log_truncated(self, zxid: int) -> None:
        self.barriers = max(0, self.barriers - 1)
        if self.durable_zxid > zxid:
            self.durable_zxid = zxid
        if self.role is not None:
            self.role.on_log_truncated(zxid)

    def snapshot_installed(self, zxid: int) -> None:
        self.barriers = max(0, self.barriers - 1)
        self.durable_zxid = zxid
        if self.role is not None:
            self.role.on_snapshot_installed(zxid)

    @property
    def durable_to(self) -> int:
        """How far our log is known durable *as it now stands*: nothing while a truncation or a
        snapshot install is still on its way to disk (a role that asked for one may be gone, and the
        durable zxid then still describes the log before it)."""
        return -1 if self.barriers else min(self.durable_zxid, self.history.last)

    def drain_effects(self) -> list[tuple]:
        if self.role is not None:
            self.role.flush()
        self._after_election()
        if self.reconfig_followup:
            self.reconfig_followup = False
            self._after_reconfig()
        out = self.effects
        self.effects = []
        return out

    # -- effects -----------------------------------------------------------------------------------
    def send(self, to: int, msg) -> bool:
        link = self.links.get(to)
        if link is None:
            return False
        data = M.encode(msg, link.send_seq)
        link.send_seq += 1
        self.effects.append(("send", to, data))
        self.stats.messages_out += 1
        return True

    def disconnect(self, sid: int, why: str) -> None:
        self.log("warn", f"closing the link to {sid}: {why}")
        self.effects.append(("disconnect", sid))
        self.closing[sid] = self.mono_ms
        if self.links.pop(sid, None) is not None and self.role is not None:
            self.role.on_link_down(sid)

    def want_link(self, sid: int) -> None:
        if sid == self.sid or sid in self.links:
            return
        t = self.closing.get(sid)
        if t is not None and self.mono_ms - t < self.config.reconnect_ms:
            return
        last = self.last_connect.get(sid)
        if last is None or self.mono_ms - last >= self.config.reconnect_ms:
            self.last_connect[sid] = self.mono_ms
            self.effects.append(("connect", sid))

    def persist_epochs(self, accepted: int, current: int) -> None:
        self.asked_accepted = max(self.asked_accepted, accepted, self.accepted_epoch)
        self.asked_current = max(self.asked_current, current, self.current_epoch)
        assert self.asked_current <= self.asked_accepted, "current epoch ahead of accepted"
        self.persists_in_flight += 1
        self.effects.append(("persist_epochs", self.asked_accepted, self.asked_current))

    def truncate_log(self, zxid: int) -> None:
        self.barriers += 1
        self.effects.append(("truncate", zxid))

    def install_snapshot(self, data: bytes, zxid: int) -> None:
        self.barriers += 1
        self.effects.append(("install_snapshot", data, zxid))

    def append_log(self, entries: list[Entry]) -> None:
        if entries:
            # the entries' blobs (TxnHeader + txn, already encoded to propose or as received) let
            # the log write them without encoding each txn again
            self.effects.append(("append", [(e.hdr, e.txn) for e in entries], [e.blob for e in entries]))

    def log(self, level: str, text: str) -> None:
        self.effects.append(("log", level, f"[{self.sid}] {text}"))

    def set_time(self, now_ms: int, mono_ms: int) -> None:
        """The clock for the inputs that follow (messages carry no time of their own): a PONG's
        session touches and a learner's last_heard are stamped with it, so it must not lag the
        core's, whose clock the expiry check reads."""
        self.now_ms = now_ms
        self.mono_ms = mono_ms
        self.core.set_time(now_ms, mono_ms)

    def _want_links(self) -> None:
        for s in self.quorum.voters:
            if s != self.sid and s not in self.links:
                self.want_link(s)
        if self.role is not None:
            self.role.want_links()

    # -- roles -------------------------------------------------------------------------------------
    def set_role(self, state: str, role) -> None:
        old = self.role
        self.role = None                # so that links it closes while stopping do not call back
        self.step = self.step_looking
        if old is not None:
            old.stop()
        self.state = state
        self.role = role
        self.step = role.step if role is not None else self.step_looking
        self.core.mode = state
        self.effects.append(("role", state))

    def become_looking(self, why: str) -> None:
        self.stop_serving(why)
        self.set_role(LOOKING, None)
        self.leader_sid = None
        self.vote = None
        self.stats.elections += 1
        self.log("info", f"looking ({why}); voting with epoch {self.peer_epoch}, "
                         f"zxid 0x{self.last_zxid:x}")
        self.election.start(self.mono_ms, self.peer_epoch, self.last_zxid)
        self._want_links()
        self._after_election()

    def step_looking(self, sender: int, msg) -> None:
        """Zab traffic while looking is stale (a leader we no longer follow): ignore it."""

    def on_notification(self, sender: int, n: M.Notification) -> None:
        if self.removed or self.state == STOPPED:
            return
        if self.state != LOOKING and sender == self.leader_sid and sender != self.sid:
            self.role.on_leader_notification(n)      # may send us back to looking
        if self.state == LOOKING:
            self.election.on_notification(sender, n, self.mono_ms)
            self._after_election()
        elif n.state == M.LOOKING and self.vote is not None:
            v = self.vote
            flags = M.NF_NON_VOTING if self.is_observer else 0
            self.send(sender, M.Notification(_STATE_CODE[self.state], v.leader, v.zxid,
                                              self.election.logical_clock, v.peer_epoch, flags))
        if n.state == M.LOOKING:
            self._tell_config(sender)

    def _tell_config(self, sid: int) -> None:
        """Once per link: a looking server may have missed the reconfig that made our config."""
        ms = self.membership
        if ms.version and self.config_told.get(sid) != ms.version:
            node = self.core.tree.nodes.get("/zookeeper/config")
            data = self.core.config.config_data or (node.data if node is not None else b"")
            cfg = parse_config(data)
            if cfg is not None and cfg[2] == ms.version and self.send(sid, M.ConfigInfo(ms.version, data)):
                self.config_told[sid] = ms.version

    def on_configinfo(self, sender: int, m: M.ConfigInfo) -> None:
        """A newer configuration than ours, active at a peer, is committed: adopt it. Looking, we
        start a new round among its voters."""
        cfg = parse_config(m.data)
        if cfg is None or cfg[2] != m.version or m.version <= self.membership.version:
            return
        self.log("info", f"server {sender} runs configuration 0x{m.version:x}, newer than ours "
                         f"0x{self.membership.version:x}")
        self._activate(*cfg, m.data)
        if self.removed and self.membership.is_member(self.sid):
            self.removed = False
            self.become_looking("a newer configuration has us again")
        elif self.state == LOOKING:
            self.become_looking("a newer configuration")

    def _ask_config(self) -> None:
        """Removed, we take part in nothing, but we keep asking the members we know (a non-voting
        LOOKING notification, now and then) so that a later reconfig that adds us back reaches us
        as ConfigInfo."""
        c = self.config
        if self.mono_ms - self.last_config_ask < c.election_resend_max_ms:
            return
        self.last_config_ask = self.mono_ms
        for s in sorted(self.voters):
            if s == self.sid:
                continue
            if s in self.links:
                self.send(s, M.Notification(M.LOOKING, self.sid, self.last_zxid, 0, self.peer_epoch,
                                            M.NF_NON_VOTING))
            else:
                self.want_link(s)

    def _after_election(self) -> None:
        el = self.election
        if el.out:
            out = el.out
            el.out = []
            for to, n in out:
                if not self.send(to, n):
                    self.want_link(to)
        if self.state == LOOKING and el.decided is not None:
            leader, vote = el.decided
            el.decided = None
            self.settle(leader, vote)

    def settle(self, leader: int, vote: Vote) -> None:
        from coord.core.zab.leader import LeaderRole
        from coord.core.zab.learner import LearnerRole
        self.vote = vote
        self.leader_sid = leader
        self.log("info", f"election over: {leader} leads (vote epoch {vote.peer_epoch}, "
                         f"zxid 0x{vote.zxid:x}, round {self.election.logical_clock})")
        if leader == self.sid:
            if not self.quorum.is_voter(self.sid):
                self.become_looking("only a voter can lead")
                return
            role = LeaderRole(self)
            self.set_role(LEADING, role)
        else:
            role = LearnerRole(self, leader, observer=self.is_observer)
            self.set_role(OBSERVING if self.is_observer else FOLLOWING, role)
        role.start()

    # -- serving -----------------------------------------------------------------------------------
    def start_serving(self, sequencer) -> None:
        core = self.core
        core.sequencer = sequencer
        core.serving = True
        self.rearm_sessions()

    def stop_serving(self, why: str) -> None:
        core = self.core
        was = core.serving
        core.serving = False
        core.sequencer = IdleSequencer(self)
        core.prep.reset()
        core.next_zxid_counter = core.tree.last_zxid
        core.connecting.clear()
        if was:
            for conn in list(core.conns.values()):
                if not conn.closing:
                    core._close(conn, f"server stopped serving: {why}")

    def rearm_sessions(self) -> None:
        """Make the session tracker match the tree's sessions, each with a fresh full timeout (as a
        new ZooKeeper leader does): expiry is decided by whoever leads, from the time it leads."""
        core = self.core
        tracker = core.sessions
        live = core.tree.sessions
        for s in [s for s in tracker.sessions if s not in live]:
            tracker.remove(s)
        for s, timeout in live.items():
            sess = tracker.get(s)
            if sess is not None:
                sess.closing = False
            tracker.add(s, timeout, self.mono_ms)

    def apply(self, entries: list[Entry]) -> None:
        commit = self.core.commit
        listener = self.listener
        for e in entries:
            commit(e.hdr, e.txn)
            if listener is not None:
                listener.applied(self, e)
            if e.hdr.type == 16:
                self._config_committed(e)
        self.stats.commits += len(entries)

    def commit_to(self, zxid: int) -> list[Entry]:
        """Apply every logged txn up to zxid; returns them."""
        entries = self.history.take_unapplied(zxid)
        if entries:
            self.apply(entries)
            self.history.trim()
        ms = self.membership
        if ms.pending and ms.pending[0][0] <= zxid:
            # reconfigs already in the tree when we booted (a driver that replays its whole log)
            # are committed now that the history holding them is
            z, _, v, o, data = [p for p in ms.pending if p[0] <= zxid][-1]
            self._commit_config(v, o, z, data)
        return entries

    def restore(self, data: bytes, tree: DataTree, req_id: int) -> str:
        """The AdminServer's `restore` on a member: the leader restores the whole ensemble, a learner
        forwards the snapshot to it (leader.py, "Restore"). "" when under way (a `("restored",
        req_id, zxid, error)` effect answers it), else why not."""
        role = self.role
        if role is None or not hasattr(role, "request_restore"):
            return f"this member is {self.state}: no leader to restore the ensemble through"
        if hasattr(role, "on_restore"):       # leading
            return role.request_restore(tree, None, req_id)
        return role.request_restore(data, req_id)

    def replace_tree(self, tree: DataTree) -> None:
        """Install a tree received by SNAP; only while not serving."""
        core = self.core
        assert not core.serving, "replacing the tree under live clients"
        tree.watches = core.watches
        tree.write_stats = core.request_stats
        core.adopt_newest_config(tree)
        core.tree = tree
        core.prep = core.new_prep(tree)
        core.next_zxid_counter = tree.last_zxid
        self.history.reset(tree.last_zxid)
        self.membership.reset()
        self._adopt_tree_config()
        if self.listener is not None:
            self.listener.snapshot_loaded(self, tree)

    # -- membership (dynamic reconfiguration) --------------------------------------------------------
    def note_logged(self, entries) -> None:
        """Entries were appended to our history: a reconfig among them makes the quorum joint."""
        if entries and self.membership.logged(entries):
            self._membership_changed()

    def note_truncated(self, z: int) -> None:
        self.membership.truncated(z)
        self._membership_changed()

    def _adopt_tree_config(self) -> None:
        """The committed tree's /zookeeper/config, when a reconfig made it (version > 0) and it is
        newer than what we run: the newest committed configuration (at boot, after a SNAP)."""
        node = self.core.tree.nodes.get("/zookeeper/config")
        cfg = parse_config(node.data if node is not None else None)
        if cfg is not None and cfg[2] > self.membership.version:
            self._activate(*cfg)

    def _activate(self, voters: dict, observers: dict, version: int, data: bytes | None = None) -> None:
        """data: the configuration's /zookeeper/config bytes when our tree does not have them yet
        (learnt from a peer, or committed by a history replayed into the tree at boot)."""
        self.membership.activate(voters, observers, version)
        if data is not None:
            self.core.set_config(data)
        self._membership_changed()
        self.effects.append(("config", dict(self.voters), dict(self.observers), version))
        self.log("info", f"configuration 0x{version:x} active: voters {sorted(self.voters)}, "
                         f"observers {sorted(self.observers)}")

    def _membership_changed(self) -> None:
        q = self.quorum
        if self.sid in q.members():
            self.is_observer = self.sid not in q.voters
        self.election.quorum = q
        self.election.voting = q.is_voter(self.sid)

    def _config_committed(self, e: Entry) -> None:
        cfg = parse_config(getattr(e.txn, "data", None))
        if cfg is None:
            self.log("warn", f"reconfig 0x{e.hdr.zxid:x} carries no configuration; ignored")
            return
        if cfg[2] < self.membership.version:
            return          # older than a configuration a peer told us about (ConfigInfo)
        self._commit_config(*cfg)

    def _commit_config(self, voters: dict, observers: dict, version: int, data: bytes | None = None) -> None:
        """A reconfig committed: activate it now; what it means for our role waits for the end of
        the input (_after_reconfig). Taken out while serving means removed."""
        was_member = self.sid in self.membership.active.members()
        self._activate(voters, observers, version, data)
        if was_member and not self.membership.is_member(self.sid) and self.core.serving:
            self.remove_after_reconfig = True
        self.reconfig_followup = True

    def _after_reconfig(self) -> None:
        """What a committed reconfig means for our role, once the input that committed it is done
        (a leader has sent its COMMIT by then). A leader that is no longer a voter steps down; a
        member taken out while serving stops (ZooKeeper's removed server); a learner whose role
        changed (participant <-> observer) rejoins in its new role."""
        if self.removed:
            return
        q = self.quorum                  # a later reconfig still pending may have us back
        member = self.sid in q.members()
        remove = self.remove_after_reconfig and not member
        self.remove_after_reconfig = False
        if self.state == LEADING:
            if self.sid in q.voters:
                self.role.on_config()
            elif member:
                self.become_looking("a reconfig made us an observer")
            else:
                self.become_removed("a reconfig removed us (the leader); the new voters elect a leader")
        elif self.state in (FOLLOWING, OBSERVING):
            if remove:
                self.become_removed("a reconfig removed us from the ensemble")
            elif member and (self.state == OBSERVING) != (self.sid in q.observers):
                self.become_looking("a reconfig changed our role")

    def become_removed(self, why: str) -> None:
        self.stop_serving(why)
        self.set_role(REMOVED, None)
        self.removed = True
        self.leader_sid = None
        self.vote = None
        self.election.stop()
        self.log("info", f"not a member any more: {why}")

    # -- planned stop: graceful leader handoff --------------------------------------------------------
    def handoff(self) -> None:
        """The driver is about to stop this server (SIGTERM, a rolling restart, a removal). A leader
        in broadcast hands leadership to an up-to-date follower first (leader.py, "Handoff"); any
        other role has nothing to hand over. The driver exits once `may_exit` is true."""
        self.stopping = True
        if self.state == LEADING and self.role.established:
            self.role.begin_handoff()
            return
        if self.state == LEADING:
            self.finish_handoff(None, "asked to stop before our epoch was established")
            return
        self.log("info", f"stopping as {self.state}: nothing to hand over")

    @property
    def may_exit(self) -> bool:
        """After handoff(): the leadership is handed over (or there was none to hand over)."""
        return self.stopping and self.state != LEADING

    def finish_handoff(self, successor: int | None, why: str) -> None:
        """The leader's last act: its HANDOFF is sent (or it gives up); serve nothing, elect nothing."""
        role = self.role
        self.handed_to = successor
        if successor is not None:
            role.release()
        self.stop_serving(why)
        self.set_role(STOPPED, None)
        self.leader_sid = None
        self.vote = None
        self.election.stop()
        self.log("info", f"stopped: {why}")

    def take_handoff(self, successor: int, old_role) -> None:
        """Our leader handed over to `successor`: lead (if it is us) or follow it, without an election
        and without leaving service. The new epoch still needs discovery and synchronisation; what
        our clients asked of the old leader and got no answer to (`old_role.unanswered()`) goes to
        the new one once we are up to date with it."""
        requests, syncs = old_role.unanswered()
        self._serve_through(successor, self.leader_sid, requests, syncs)

    def _serve_through(self, successor: int, old: int | None, requests: list, syncs: list) -> None:
        from coord.core.zab.leader import LeaderRole
        from coord.core.zab.learner import LearnerRole
        from coord.core.zab.sequencer import LeaderSequencer, LearnerSequencer
        self.vote = Vote(successor, self.last_zxid, self.peer_epoch)
        self.leader_sid = successor
        if successor == self.sid:
            role = LeaderRole(self, took_over_from=old)
            self.set_role(LEADING, role)
            self.core.sequencer = LeaderSequencer(self, role)
            self.rearm_sessions()           # a new leader gives every session a full timeout
            for req in requests:
                role.submit(req)            # held until the epoch is established
            for conn_id, pending in syncs:
                conn = self.core.conns.get(conn_id)
                if conn is not None:
                    role.local_sync(conn, pending)
                    if pending.state == DEFERRED:
                        self.core._flush(conn)
            self.log("info", f"taking over from leader {old}" if old is not None else "leading without an election")
        else:
            role = LearnerRole(self, successor, observer=self.is_observer, serving=True)
            self.set_role(OBSERVING if self.is_observer else FOLLOWING, role)
            self.core.sequencer = LearnerSequencer(self, role)
            role.carry(requests, syncs)
            self.log("info", f"leader {old} handed over to {successor}; following it" if old is not None
                     else f"following {successor} without an election")
        role.start()

    # -- introspection (srvr, mntr) ----------------------------------------------------------------
    def info(self) -> dict:
        out = {
            "zk_server_state": self.state,
            "zk_peer_epoch": self.peer_epoch,
            "zk_accepted_epoch": self.accepted_epoch,
            "zk_current_epoch": self.current_epoch,
            "zk_last_zxid": self.last_zxid,
            "zk_last_applied_zxid": self.core.tree.last_zxid,
            "zk_leader": self.leader_sid if self.leader_sid is not None else -1,
        }
        if self.role is not None:
            out.update(self.role.info())
        return out


def _reconfig_header(z: int):
    from coord.jute import records as R
    return R.TxnHeader(0, 0, z, 0, 16)


def _SetData(path: str, data: bytes, version: int):
    from coord.jute import records as R
    return R.SetDataTxn(path, data, version)


__all__ = ["QuorumPeer", "DurableState", "ZabConfig", "LOOKING", "FOLLOWING", "LEADING", "OBSERVING", "REMOVED", "STOPPED"]
