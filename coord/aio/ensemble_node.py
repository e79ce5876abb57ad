"""An ensemble member: the asyncio driver of one QuorumPeer (the contract is coord.core.zab.api).

It is the standalone shell (CoordServer: client port, flush batching, four-letter words, storage)
with the Zab peer in front of the core. The driver makes no protocol decision; it turns the world
into the peer's inputs and performs the peer's effects, in order:

    inputs   peer links (coord.aio.peer: connected / disconnected / one whole message), a tick every
             TICK_MS, client frames (straight to peer.core, as standalone), and the completions of
             disk effects (log_durable, log_truncated, snapshot_installed, epochs_persisted)
    effects  send / connect / disconnect     -> the PeerTransport
             append                          -> the txn log (group commit; fsync then log_durable)
             truncate, install_snapshot,     -> one at a time, after every earlier disk effect has
             persist_epochs                     completed, off the event loop; then the completion
             role, log                       -> srvr/mntr and the process log

Disk effects are a FIFO: appends go straight to the group-committing log while nothing else is
queued; any other disk effect waits until every earlier append is durable (so completions arrive in
the order the effects were emitted), and appends queued behind it wait for it. After every batch of
inputs one flush drains the peer's effects and then the core's client output (CoordServer.flush),
so the replies and peer messages produced by one loop iteration leave in one write per socket.

Recovery at boot replays the whole log into the tree (coord.aio.datadir) and passes an empty
DurableState.log: the api allows it (the peer treats the tree's zxid as its committed floor and a
leader sends SNAP where it would have had to TRUNC below it). The newest replayed records (up to the
history window) go in as DurableState.committed, so a restarted leader can still sync by DIFF. Snapshots are taken (every snapCount
txns) only while the peer serves, so the tree they capture is committed state. A SNAP sync removes
any local snapshot newer than the one received before writing it, then drops the log after it.

A txn log that cannot write (disk full, I/O error) ends the process: a member that cannot make its
log durable must not vote or ack, and a restart recovers from what is on disk (ZooKeeper exits too).
"""
from __future__ import annotations

import asyncio
import logging
import os
import struct
import time
from collections import deque

from coord.aio import tls
from coord.aio.datadir import RecoveryError
from coord.aio.epochs import EpochFileError, EpochStore
from coord.aio.peer import PeerAddr, PeerTransport, membership_digest
from coord.aio.server import CoordServer, core_config, mono_ms, wall_ms
from coord.aio.zoocfg import ServerConfig
from coord.core.server import ServerCore
from coord.core.zab.api import DurableState, ZabConfig
from coord.core.zab.messages import ENVELOPE_SIZE, Ack, Commit
from coord.core.zab.sequencer import IdleSequencer

log = logging.getLogger("coord.ensemble")
peer_log = logging.getLogger("coord.zab")

TICK_MS = 10
ACK_TYPE, COMMIT_TYPE = Ack.TYPE, Commit.TYPE   # peeked at for the learner-link metrics
_ZXID = struct.Struct(">q")
MODE_NAMES = {"leading": "leader", "following": "follower", "observing": "observer"}
NOT_SERVING = "This ZooKeeper instance is not currently serving requests\n"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "warning": logging.WARNING,
           "error": logging.ERROR, "critical": logging.CRITICAL}


def _wake(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


class ReadOnlySequencer(IdleSequencer):
    """The core's sequencer while serving read-only: writes and sync never reach it (NOTREADONLY),
    and it decides no global session's expiry (local sessions expire in the core)."""
    decides_expiry = False


def zab_config(cfg: ServerConfig) -> ZabConfig:
    z = ZabConfig(tick_ms=cfg.tick_ms, init_limit=cfg.init_limit, sync_limit=cfg.sync_limit)
    if cfg.test_zxid_counter_limit:
        z.zxid_counter_limit = cfg.test_zxid_counter_limit
    return z


class EnsembleNode(CoordServer):
    """One ensemble member on an event loop."""

    def __init__(self, cfg: ServerConfig):
        if cfg.myid is None or cfg.myid not in cfg.servers:
            raise ValueError("an ensemble member needs myid and its server.N line")
        me = cfg.servers[cfg.myid]
        if me.client_port is not None:       # the server line's client address wins, as ZooKeeper's
            cfg.client_port = me.client_port
            if me.client_host:
                cfg.client_port_address = me.client_host
        super().__init__(cfg)
        self._init_member(cfg)

    def _init_member(self, cfg: ServerConfig) -> None:
        """The member's own state, beside the standalone shell's (also for a server that becomes a
        member while it runs: become_member)."""
        self.cfg = cfg
        self.sid = cfg.myid
        self.voters = {s: q for s, q in cfg.servers.items() if q.role == "participant"}
        self.observers = {s: q for s, q in cfg.servers.items() if q.role == "observer"}
        self.epochs = EpochStore(self.storage.snap_dir, sync=cfg.force_sync)
        self.peer = None
        self.durable_state: DurableState | None = None
        self.transport: PeerTransport | None = None
        self.role = "looking"
        self.role_since_ms = mono_ms()
        self.disk_q: deque = deque()
        self.disk_task: asyncio.Task | None = None
        self.fatal = asyncio.Event()
        self.fatal_reason = ""
        self.clock_fresh = False
        self.tick_wake: asyncio.Future | None = None   # the settled ticker's sleep; flush() ends it
        self.installing = 0
        self.peer_input = False      # a peer message arrived and no flush followed yet
        # Read-only mode (readonlymode.enabled): after a grace period of looking, serve reads to
        # read-only clients until the peer leaves looking (QuorumPeer's ReadOnlyZooKeeperServer).
        self.ro_enabled = cfg.read_only_enabled or os.environ.get("COORD_READONLYMODE", "") == "true"
        self.ro_active = False
        self.looking_since: int | None = None
        self.restores: dict[int, asyncio.Future] = {}    # AdminServer restores awaiting the leader
        self.next_restore_id = 1

    # -- lifecycle ---------------------------------------------------------------------------------
    def load(self) -> None:
        from coord.core.zab.peer import QuorumPeer
        t0 = time.monotonic()
        try:
            zc = zab_config(self.cfg)
            rec = self.storage.recover(keep=zc.history_txns)
            accepted, current = self.epochs.read()
        except (RecoveryError, EpochFileError) as e:
            log.critical("cannot start: %s", e)
            raise SystemExit(f"coord: cannot start: {e}") from None
        tree = rec.tree
        cc = core_config(self.cfg)
        cc.config_data = self._initial_config_data(rec)
        self.written_config = cc.config_data
        # The replayed log may hold a reconfig nobody committed: the tree shows the committed
        # configuration, and the peer holds the later ones as proposed (a joint quorum) until a
        # leader commits the history that has them.
        from coord.core import reconfig as rc
        tree.nodes["/zookeeper/config"].data = cc.config_data
        pending = [(z, d) for z, d in rec.reconfigs if z > rc.version_of(cc.config_data)]
        self.core = ServerCore(cc, tree)
        self.core.config.quorum = True
        if self.metrics is not None:
            self.metrics.on_loaded(rec)
        self.peer = QuorumPeer(self.sid, self.voters, self.observers, self.core, zc)
        self.durable_state = DurableState(accepted, current, rec.last_zxid, rec.snapshot_zxid,
                                          committed=rec.recent, committed_base=rec.recent_base,
                                          extra={"pending_configs": pending})
        log.info("server %d: snapshot zxid 0x%x + %d logged txns to zxid 0x%x in %.2fs (%d znodes); "
                 "accepted epoch %d, current epoch %d", self.sid, rec.snapshot_zxid, rec.replayed,
                 tree.last_zxid, time.monotonic() - t0, tree.node_count(), accepted, current)

    # -- dynamic configuration -------------------------------------------------------------------
    def _dynamic_path(self):
        from pathlib import Path
        d = self.cfg.dynamic_config_file
        if not d:
            return None
        p = Path(d)
        if not p.is_absolute() and self.cfg.path:
            p = Path(self.cfg.path).parent / p
        return p

    def _initial_config_data(self, rec) -> bytes:
        """/zookeeper/config as QuorumMaj.toString(): the newest committed configuration we have,
        from the dynamic config file (written on every commit), the snapshot, or zoo.cfg's servers."""
        from coord.core import reconfig as rc
        from coord.core.zab.membership import parse_config
        best = rc.render(dict(self.cfg.servers), 0)
        p = self._dynamic_path()
        if p is not None and p.exists():
            data = p.read_bytes().strip()
            if parse_config(data) is not None:
                best = data
            else:
                best = rc.render(dict(self.cfg.servers), max(rc.version_of(data), 0))
        if rc.version_of(rec.snapshot_config) > rc.version_of(best) and parse_config(rec.snapshot_config):
            best = rec.snapshot_config
        return best

    def _write_dynamic_config(self) -> None:
        """A committed reconfig: its config goes to the dynamic config file (as ZooKeeper writes it)."""
        data = self.core.config.config_data
        if data == self.written_config:
            return
        self.written_config = data
        p = self._dynamic_path()
        if p is None:
            return
        tmp = p.with_name(f"{p.name}.tmp{os.getpid()}")
        try:
            tmp.write_bytes(data + b"\n")
            os.replace(tmp, p)
        except OSError as e:
            log.error("server %d: cannot write the dynamic config file %s: %s", self.sid, p, e)
            return
        log.info("server %d: wrote the committed configuration to %s", self.sid, p)

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        if self.core is None:
            self.load()
        self.txnlog.on_durable = self._on_durable
        self.txnlog.on_failed = self._on_log_failed
        self.storage.start(self.loop)
        await self._start_transport()
        cfg = self.cfg
        plain, secure = self.client_factories()
        self.server = await self.loop.create_server(
            plain, host=cfg.client_port_address, port=cfg.client_port, reuse_address=True,
            backlog=1024)
        self.secure_server = await tls.secure_listener(self.loop, cfg, secure)
        sock = self.server.sockets[0].getsockname()
        self.port = sock[1]
        log.info("server %d: clients on %s:%d, quorum %d, election %d; %d voters, %d observers",
                 self.sid, sock[0], sock[1], cfg.servers[self.sid].quorum_port, cfg.servers[self.sid].election_port,
                 len(self.voters), len(self.observers))
        self.peer.start(wall_ms(), mono_ms(), self.durable_state)
        self.flush()
        self.tick_task = self.loop.create_task(self._ticker())
        await self.start_ops()

    async def _start_transport(self) -> None:
        cfg = self.cfg
        addrs = {s: PeerAddr(s, q.host, q.quorum_port, q.election_port)
                 for s, q in {**cfg.servers, **self.peer.voters, **self.peer.observers}.items() if q is not None}
        idle = max(1000, cfg.tick_ms * cfg.sync_limit)
        qtls = None
        if cfg.ssl_quorum or cfg.quorum_port_unification:
            from coord.aio.quorum_tls import QuorumTls
            from coord.aio.zoocfg import quorum_tls_config
            qtls = QuorumTls(quorum_tls_config(cfg), handshake_timeout_ms=max(4000, 2 * min(2000, idle)))
        self.transport = PeerTransport(
            self.sid, addrs, digest=membership_digest(self.voters, self.observers),
            on_connected=self._peer_connected, on_disconnected=self._peer_disconnected,
            on_message=self._peer_message, on_read_done=self._peer_read_done, driver_flushes=True,
            # quorumListenOnAllIPs: every interface ("" = all, IPv4 and IPv6), as ZooKeeper binds the wildcard
            listen_host="" if cfg.quorum_listen_on_all_ips else None,
            max_frame_bytes=self.peer.config.max_message_bytes + 1024, dynamic=cfg.reconfig_enabled,
            idle_timeout_ms=idle, ping_interval_ms=max(50, min(500, idle // 8)),
            handshake_timeout_ms=min(2000, idle), tls=qtls)
        await self.transport.start()

    async def stop(self) -> None:
        if self.tick_task:
            self.tick_task.cancel()
        if self.transport is not None:
            await self.transport.stop()
        if self.disk_task is not None and not self.disk_task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self.disk_task), 5)
            except (asyncio.TimeoutError, Exception):
                pass
        await super().stop()

    async def handoff(self, timeout_s: float | None = None) -> None:
        """A planned stop (SIGTERM, `coord ensemble roll`/`remove`): a leader hands leadership to an
        up-to-date follower before we go (QuorumPeer.handoff). Waits for that, at most syncLimit
        (then the followers elect, as after a crash), and for the last peer messages to leave."""
        peer = self.peer
        if peer is None or not peer.started or self.transport is None:
            return
        t0 = mono_ms()
        self.tick_clock()
        peer.handoff()
        self.flush()
        cfg = self.cfg
        limit = timeout_s if timeout_s is not None else cfg.sync_limit * cfg.tick_ms / 1000 + 0.5
        deadline = self.loop.time() + limit
        while not peer.may_exit and self.loop.time() < deadline:
            await asyncio.sleep(0.002)
        await self.transport.drain(1.0)
        log.info("server %d: planned stop as %s after %d ms", self.sid, peer.state, mono_ms() - t0)

    async def restore(self, data: bytes, tree, timeout_s: float) -> tuple[int, str | None]:
        """The AdminServer's `restore` on a member: the whole ensemble takes the snapshot's tree
        (QuorumPeer.restore; the leader answers once a quorum holds it durable). (zxid, None) or
        (0, why not)."""
        rid = self.next_restore_id
        self.next_restore_id += 1
        fut = self.loop.create_future()
        self.restores[rid] = fut
        self.tick_clock()
        why = self.peer.restore(data, tree, rid)
        if why:
            self.restores.pop(rid, None)
            return 0, why
        self.flush()
        try:
            return await asyncio.wait_for(fut, timeout_s)
        except asyncio.TimeoutError:
            self.restores.pop(rid, None)
            return 0, f"no answer from the leader within {timeout_s:.0f} s: outcome unknown"

    def die(self, why: str) -> None:
        log.critical("server %d stopping: %s", self.sid, why)
        self.fatal_reason = why
        self.fatal.set()

    # -- clock and ticks ---------------------------------------------------------------------------
    def tick_clock(self) -> None:
        # the peer's clock too: it stamps the session touches a PONG carries; left at the last tick,
        # a loop stall of S ms made those touches S ms old and the leader expired them S ms early
        now, mono = wall_ms(), mono_ms()
        self.core.set_time(now, mono)
        if self.peer is not None:
            self.peer.set_time(now, mono)
        self.clock_fresh = True

    async def _ticker(self) -> None:
        sleep = asyncio.sleep
        loop = self.loop
        while True:
            peer = self.peer
            if peer.streaming:
                await sleep(0)      # a leader streaming a SNAP encodes a slice per tick: once other work is served
            elif peer.settled():
                # a settled peer ticks a few times a second; flush() wakes it early when that ends
                wake = self.tick_wake = loop.create_future()
                timer = loop.call_later(peer.config.idle_tick_ms / 1000, _wake, wake)
                try:
                    await wake
                finally:
                    timer.cancel()
                    self.tick_wake = None
            else:
                await sleep(TICK_MS / 1000)
            now, mono = wall_ms(), mono_ms()
            self.peer.tick(now, mono)
            self._read_only_check()
            self.flush()

    # -- peer link inputs ----------------------------------------------------------------------------
    def _fresh(self) -> None:
        if not self.clock_fresh:
            self.tick_clock()

    def _peer_connected(self, sid: int) -> None:
        self._fresh()
        self.peer.peer_connected(sid)
        self._read_only_check()
        self.schedule_flush()

    def _peer_disconnected(self, sid: int) -> None:
        self._fresh()
        self.peer.peer_disconnected(sid)
        self._read_only_check()
        self.schedule_flush()

    def _peer_message(self, sid: int, data: bytes) -> None:
        self._fresh()
        if self.metrics is not None and self.role == "leading" and len(data) >= 24 and data[1] == ACK_TYPE:
            self.metrics.links.acked(sid, _ZXID.unpack_from(data, ENVELOPE_SIZE)[0], time.monotonic())
        self.peer.message(sid, data)
        if self.ro_active:
            self._read_only_check()
        self.peer_input = True

    def _peer_read_done(self) -> None:
        """The messages of one read are in: one flush for them, now if nothing else waits in this
        loop turn (input_done), so a hop costs no turn of its own."""
        if self.peer_input:
            self.peer_input = False
            self.input_done()

    # -- read-only mode ------------------------------------------------------------------------------
    def _read_only_check(self) -> None:
        """Enter read-only service after max(2 s, tickTime) of looking; leave it the moment the peer
        stops looking (before its new role can sync or serve), closing every read-only client."""
        if not self.ro_enabled:
            return
        looking = self.peer.state == "looking"
        now = mono_ms()
        if not looking:
            self.looking_since = None
            if self.ro_active:
                self._leave_read_only(f"the peer is {self.peer.state}")
            return
        if self.looking_since is None:
            self.looking_since = now
        core = self.core
        if self.ro_active:
            if not core.serving:                       # the peer shut service down itself
                self._leave_read_only("service stopped")
                self.looking_since = now
            return
        if not core.serving and now - self.looking_since >= max(2000, self.cfg.tick_ms):
            core.config.read_only = True
            core.sequencer = ReadOnlySequencer(self.peer)
            core.serving = True
            self.ro_active = True
            log.info("server %d: no quorum for %d ms; serving read-only clients", self.sid,
                     now - self.looking_since)

    def _leave_read_only(self, why: str) -> None:
        core = self.core
        self.ro_active = False
        core.config.read_only = False
        if isinstance(core.sequencer, ReadOnlySequencer):
            core.sequencer = IdleSequencer(self.peer)
            core.serving = False
        core.drop_local_sessions()
        for conn in list(core.conns.values()):
            if not conn.closing and conn.established:
                core._close(conn, f"leaving read-only mode: {why}")
        log.info("server %d: leaving read-only mode: %s", self.sid, why)

    # -- effects -------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Perform the peer's effects in order, then write the core's client output.

        The peer messages queued here leave before flush returns (one write per link), not a loop
        turn later: a write through a follower crosses four peer hops (REQUEST, PROPOSAL, ACK,
        COMMIT), and each extra turn was one more chance to be preempted on a loaded machine. With
        forceSync=no an append is written here too (page cache, no thread), and the durable report
        it makes is drained by this same loop, so a follower's ACK leaves with nothing in between."""
        self.clock_fresh = False
        peer = self.peer
        if peer is not None:
            nested, self.flushing = self.flushing, True
            try:
                for _ in range(100):
                    effects = peer.drain_effects()
                    if not effects:
                        break
                    self._perform(effects)
            finally:
                self.flushing = nested
            if self.transport is not None:
                self.transport.flush()
            wake = self.tick_wake
            if wake is not None and not peer.settled():
                _wake(wake)
        super().flush()
        if self.core is not None and self.core.config.config_data is not self.written_config:
            self._write_dynamic_config()

    def _perform(self, effects: list[tuple]) -> None:
        """A new configuration takes effect on the links after the batch's sends: the COMMIT of a
        reconfig must still reach the servers it removes (an observer learns so that it is removed)."""
        tr = self.transport
        configs = []
        written = []       # forceSync=no appends: written after this batch's messages have left
        links = self.metrics.links if self.metrics is not None and self.role == "leading" else None
        sent: dict[int, int] = {}
        for e in effects:
            kind = e[0]
            if kind == "send":
                tr.send(e[1], e[2])
                if links is not None:
                    sent[e[1]] = sent.get(e[1], 0) + 1
                    if e[2][1] == COMMIT_TYPE:
                        links.committed(_ZXID.unpack_from(e[2], ENVELOPE_SIZE)[0], time.monotonic())
            elif kind == "append":
                if links is not None and e[1]:
                    links.proposed(e[1][-1][0].zxid, time.monotonic())
                if self.disk_q or (self.disk_task is not None and not self.disk_task.done()):
                    self.disk_q.append(e)
                elif not self.txnlog.force_sync and not self.txnlog.pending():
                    written.append(e)
                else:
                    self.txnlog.append(e[1], e[2])
            elif kind in ("persist_epochs", "truncate", "install_snapshot"):
                self.disk_q.append(e)
                if self.disk_task is None or self.disk_task.done():
                    self.disk_task = self.loop.create_task(self._disk_worker())
            elif kind == "connect":
                tr.connect(e[1])
            elif kind == "disconnect":
                tr.disconnect(e[1])
            elif kind == "role":
                self._set_role(e[1])
            elif kind == "config":
                configs.append(e)
            elif kind == "log":
                peer_log.log(_LEVELS.get(e[1], logging.INFO), "%s", e[2])
            elif kind == "restored":
                fut = self.restores.pop(e[1], None)
                if fut is not None and not fut.done():
                    fut.set_result((e[2], e[3]))
            else:
                raise AssertionError(f"unknown effect {kind!r}")
        if sent:
            links.batch_sent(sent, time.monotonic())
        if written:
            # A leader's PROPOSALs leave before its own log write, as ZooKeeper's leader sends them
            # before its SyncRequestProcessor logs: the write (and its durable report, which only
            # counts the leader's own ack) is off the path to the followers' ACKs. Nothing a
            # member says depends on a record before log_durable reports it, so no order changes
            # that another server can see; disk effects queued behind these appends wait for them
            # (the disk worker starts on a later turn).
            if tr is not None:
                tr.flush()
            for e in written:
                self.txnlog.write(e[1], e[2])   # _on_durable reports it to the peer, unflushed
        for e in configs:
            self._set_members(e[1], e[2])

    def _set_members(self, voters: dict, observers: dict) -> None:
        """A configuration became active: dial its servers, drop links to servers it removed."""
        self.voters = dict(voters)
        self.observers = dict(observers)
        addrs = {s: PeerAddr(s, q.host, q.quorum_port, q.election_port)
                 for s, q in {**observers, **voters}.items() if q is not None}
        if self.transport is not None:
            self.transport.update_peers(addrs)

    def _set_role(self, role: str) -> None:
        if role != self.role:
            log.info("server %d: %s -> %s", self.sid, self.role, role)
            if self.metrics is not None:
                self.metrics.on_role(self.role, role)
        self.role = role
        self.role_since_ms = mono_ms()

    async def _disk_worker(self) -> None:
        """Perform queued disk effects one by one, each after every earlier one has completed."""
        loop = self.loop
        q = self.disk_q
        try:
            while q:
                e = q.popleft()
                kind = e[0]
                if kind == "append":
                    self.txnlog.append(e[1], e[2])
                    continue
                await self.txnlog.drain()       # earlier appends durable and reported first
                if kind == "persist_epochs":
                    _, acc, cur = e
                    if self.epochs.sync:
                        await loop.run_in_executor(None, self.epochs.write, acc, cur)
                    else:    # forceSync=no: three page-cache writes of a few bytes cost less than the
                        self.epochs.write(acc, cur)   # hop to a thread and back (tens of ms under load)
                    self._fresh()
                    self.peer.epochs_persisted(acc, cur)
                elif kind == "truncate":
                    z = e[1]
                    await loop.run_in_executor(None, self._truncate, z)
                    self._fresh()
                    self.peer.log_truncated(z)
                elif kind == "install_snapshot":
                    _, data, z = e
                    await self._wait_snapshot_idle()
                    if data is None:            # our own tree (a restore): a forked snapshot, no stall
                        await self._install_own_tree(z)
                    else:
                        await loop.run_in_executor(None, self._install_snapshot, data, z)
                    self._fresh()
                    self.peer.snapshot_installed(z)
                    self.storage.snapshots.tree_loaded()   # a whole new tree: huge pages before a fork
                self.flush()
        except OSError as err:
            self.die(f"disk effect failed: {err}")
        except Exception as err:   # a bug here must stop the node, not leave it half-synced
            log.exception("disk effect failed")
            self.die(f"disk effect failed: {err!r}")

    async def _wait_snapshot_idle(self) -> None:
        while self.storage.snapshots.in_progress:
            await asyncio.sleep(0.005)

    async def _install_own_tree(self, z: int) -> None:
        """The leader made a restored tree its own at z: write it as the newest snapshot (the log
        rolls to a new file) before anything counts as durable past it."""
        await self.loop.run_in_executor(None, self._remove_snapshots_after, z)
        assert self.core.tree.last_zxid == z, "the tree to install is not at its zxid"
        task = self.storage.snapshot(self.core.tree)
        path = await task if task is not None else None
        if path is None:
            raise OSError(f"the snapshot of the restored tree at 0x{z:x} was not written (see the log)")
        log.info("server %d: wrote the restored tree as %s", self.sid, path.name)

    def _truncate(self, z: int) -> None:
        self._remove_snapshots_after(z)
        self.txnlog.truncate_after(z)
        log.info("server %d: log truncated after zxid 0x%x", self.sid, z)

    def _install_snapshot(self, data: bytes, z: int) -> None:
        from coord.aio.snapshots import write_snapshot_bytes
        self._remove_snapshots_after(z)
        path = write_snapshot_bytes(self.storage.snap_dir, z, data)
        if self.txnlog.last_zxid > z:     # otherwise no record after z exists: nothing to read or cut
            self.txnlog.truncate_after(z)
        else:
            self.txnlog.roll()            # the log continues from the snapshot in a new file
        log.info("server %d: installed snapshot %s (%d bytes)", self.sid, path.name, len(data))

    def _remove_snapshots_after(self, z: int) -> None:
        from coord.aio.snapshots import list_snapshots
        from coord.aio.txnlog import fsync_dir
        removed = False
        for sz, path in list_snapshots(self.storage.snap_dir):
            if sz > z:
                log.warning("server %d: removing snapshot %s: it is past the leader's history (0x%x)",
                            self.sid, path.name, z)
                os.unlink(path)
                removed = True
        if removed:
            fsync_dir(self.storage.snap_dir)

    # -- log completions -------------------------------------------------------------------------
    def _on_durable(self, zxid: int) -> None:
        self._fresh()
        self.peer.log_durable(zxid)
        if not self.flushing:        # inside flush (a forceSync=no write): its loop drains the effects
            self.flush()
        if self.core.serving:
            self.storage.logged(zxid, self.core.tree)

    def _on_log_failed(self, error: OSError, first_zxid: int, last_zxid: int) -> None:
        # No later record may reach the disk before the process is gone: it would sit right after
        # the cut-back log's end, past the failed txns (a hole in the log that recovery refuses).
        self.txnlog.broken = error
        self.die(f"the txn log cannot write ({error}); txns 0x{first_zxid:x}..0x{last_zxid:x} are not durable")

    # -- four-letter words -----------------------------------------------------------------------
    def four_letter(self, proto, word: str) -> None:
        if not self.core.serving and word not in ("ruok", "envi", "conf", "isro"):
            proto.transport.write(NOT_SERVING.encode())
            proto.transport.close()
            return
        super().four_letter(proto, word)

    def mode(self) -> str:
        if self.ro_active:
            return "read-only"
        return MODE_NAMES.get(self.role, self.role)

    def _info(self) -> dict:
        try:
            return self.peer.info()
        except Exception:
            return {}

    def mode_extra_lines(self) -> list[str]:
        if self.role == "leading":
            i = self._info()
            return [f"Proposal sizes last/min/max: {i.get('zk_last_proposal_size', -1)}/"
                    f"{i.get('zk_min_proposal_size', -1)}/{i.get('zk_max_proposal_size', -1)}"]
        return []

    def mode_mntr_rows(self) -> list[tuple[str, object]]:
        i = self._info()
        rows: list[tuple[str, object]] = [
            ("zk_peer_state", f"{self.role} - broadcast" if self.core.serving else f"{self.role} - sync"),
            ("zk_quorum_size", len(self.voters)),
        ]
        if self.role == "leading":
            learners = i.get("zk_learners", i.get("zk_followers", 0))
            synced = i.get("zk_synced_followers", 0)
            rows += [
                ("zk_learners", learners),
                ("zk_followers", i.get("zk_followers", learners)),
                ("zk_synced_followers", synced),
                ("zk_synced_non_voting_followers", i.get("zk_synced_non_voting_followers", 0)),
                ("zk_synced_observers", i.get("zk_synced_observers", 0)),
                ("zk_pending_syncs", i.get("zk_pending_syncs", 0)),
                ("zk_leader_uptime", mono_ms() - self.role_since_ms),
                ("zk_min_proposal_size", i.get("zk_min_proposal_size", -1)),
                ("zk_max_proposal_size", i.get("zk_max_proposal_size", -1)),
            ]
        for k in ("zk_peer_epoch", "zk_accepted_epoch", "zk_current_epoch", "zk_leader"):
            if k in i:
                rows.append((k, i[k]))
        tr = self.transport
        if tr is not None:
            rows += [("zk_peer_links", len(tr.stats()["links"])),
                     ("zk_peer_messages_sent", tr.messages_sent),
                     ("zk_peer_messages_received", tr.messages_received),
                     ("zk_peer_garbage_disconnects", tr.garbage_disconnects),
                     ("zk_flushes_inline", self.flushes_inline),
                     ("zk_flushes_deferred", self.flushes_deferred)]
        return rows


async def become_member(node: CoordServer, cfg: ServerConfig, durable_state: DurableState, leader: int,
                        carried) -> "EnsembleNode":
    """A running server (a coord observer of a ZooKeeper ensemble taking over) becomes a member of
    coord's own ensemble in place: its client listeners, connections, core (tree, sessions,
    watches) and storage stay; only the quorum peer is new, started without an election with
    `leader` leading (QuorumPeer.start_taking_over). The caller has closed its own peer ports and
    drained its txn log. Until the new peer starts, the core keeps the caller's sequencer (which
    holds what clients ask); `carried()` then gives up what it held, (requests, syncs), with no
    await in between, so nothing asked meanwhile is lost."""
    from coord.core.zab.peer import QuorumPeer
    node.__class__ = EnsembleNode
    node._init_member(cfg)
    if node.tick_task is not None:
        node.tick_task.cancel()
    node.txnlog.on_durable = node._on_durable
    node.txnlog.on_failed = node._on_log_failed
    core = node.core
    from coord.core import reconfig as rc
    core.config.config_data = rc.render(dict(cfg.servers), 0)   # as load() does: zoo.cfg's members
    core.tree.nodes["/zookeeper/config"].data = core.config.config_data
    node.written_config = core.config.config_data
    serving, sequencer = core.serving, core.sequencer
    node.peer = QuorumPeer(node.sid, node.voters, node.observers, core, zab_config(cfg))
    core.serving, core.sequencer = serving, sequencer     # still holding while the transport starts
    node.durable_state = durable_state
    await node._start_transport()
    node.tick_clock()
    requests, syncs = carried()
    node.peer.start_taking_over(wall_ms(), mono_ms(), durable_state, leader, requests, syncs, serving)
    node.flush()
    node.tick_task = node.loop.create_task(node._ticker())
    return node


async def run_member(cfg: ServerConfig, node: "EnsembleNode | None" = None) -> None:
    if node is None:
        node = EnsembleNode(cfg)
        await node.start()
    try:
        await node.fatal.wait()
    except asyncio.CancelledError:          # SIGTERM / SIGINT: a planned stop
        await node.handoff()
        raise
    finally:
        await node.stop()
    raise SystemExit(f"coord: server {cfg.myid} stopped: {node.fatal_reason}")
