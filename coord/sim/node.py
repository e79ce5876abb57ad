"""One simulated server: a QuorumPeer and its ServerCore, driven exactly as the contract says.

The node performs the peer's effects in order (network, disk), reports completions back as inputs,
ticks every 10 ms of its own (skewed, drifting) clock, takes snapshots of its committed tree every
so many txns, and carries client connections. A crash loses everything not on the simulated disk;
a restart rebuilds the tree from the newest snapshot and hands the log after it to the peer.
"""
from __future__ import annotations

from coord.core import snapformat
from coord.core.config import CoreConfig
from coord.core.server import ServerCore
from coord.core.watches import WatchManager
from coord.core.zab import messages as M
from coord.core.zab.peer import QuorumPeer
from coord.sim.disk import SimDisk

TICK_MS = 10
CHECKED_TYPES = frozenset({3, 4, 9, 12})    # LEADERINFO, ACKEPOCH, ACKNEWLEADER, ACK (messages.py)


class RecordingWatches(WatchManager):
    """Watches that also note which paths each applied txn touched (for the watch checker)."""

    def __init__(self):
        super().__init__()
        self.touched: list[tuple[str, str, str]] = []

    def armed(self) -> bool:
        return True  # every change is noted, watched or not

    def node_created(self, path, parent, *acls):
        self.touched.append(("created", path, parent))
        super().node_created(path, parent, *acls)

    def node_deleted(self, path, parent, *acls):
        self.touched.append(("deleted", path, parent))
        super().node_deleted(path, parent, *acls)

    def node_data_changed(self, path, *acls):
        self.touched.append(("changed", path, ""))
        super().node_data_changed(path, *acls)


class SimNode:
    def __init__(self, world, sid: int, voters, observers, zab_config, rng, *, skew: bool = True,
                 disk_faults: bool = True):
        self.world = world
        self.sid = sid
        self.voters = voters
        self.observers = observers
        self.zab_config = zab_config
        self.rng = rng
        self.disk = SimDisk(rng, torn_writes=disk_faults, corrupt_reads=0.05 if disk_faults else 0.0,
                            slow=0.02 if disk_faults else 0.0)
        self.peer: QuorumPeer | None = None
        self.core: ServerCore | None = None
        self.up = False
        self.incarnation = 0
        self.tick_gen = 0           # the one scheduled tick that counts (an earlier one is rescheduled)
        self.tick_idle = False      # that tick is the settled peer's idle one
        self.links: dict[int, int] = {}
        self.conns: dict[int, object] = {}
        self.conn_at: dict[int, int] = {}
        self.rate = 1.0 + (rng.uniform(-0.03, 0.03) if skew else 0.0)
        self.wall_offset = 1_700_000_000_000 + (rng.randint(-5000, 5000) if skew else 0)
        self.mono_base = rng.randint(0, 10_000_000) if skew else 0
        self.snap_every = rng.randint(20, 120)
        self.applied_since_snap = 0
        self.role = "down"
        self.restarts = 0
        self.booted_at = 0
        self.history_txns = zab_config.history_txns

    # -- clock -----------------------------------------------------------------------------------
    def clock(self) -> tuple[int, int]:
        t = int(self.world.now * self.rate)
        return self.wall_offset + t, self.mono_base + t

    # -- lifecycle -------------------------------------------------------------------------------
    def boot(self) -> None:
        tree, ds = self.disk.recover()
        watches = RecordingWatches()
        cc = CoreConfig(server_id=self.sid, tick_ms=self.zab_config.tick_ms)
        self.world.configure_core(self, cc)
        self.booted_at = self.world.now
        core = ServerCore(cc, tree)
        core.watches = watches
        tree.watches = watches
        self.core = core
        self.peer = QuorumPeer(self.sid, self.voters, self.observers, core, self.zab_config)
        self.peer.listener = self
        self.up = True
        self.incarnation += 1
        self.links.clear()
        self.role = "looking"
        self.world.checker.node_booted(self, tree)
        now, mono = self.clock()
        self.peer.start(now, mono, ds)
        self.pump()
        self._schedule_tick(self.incarnation)

    def crash(self) -> None:
        if not self.up:
            return
        self.up = False
        self.incarnation += 1
        self.role = "down"
        self.disk.crash()
        self.world.net.node_down(self.sid)
        self.links.clear()
        conns = self.conns
        self.conns = {}
        for cid, client in conns.items():
            self.world.at(max(self.world.now + self.rng.randint(1, 30), self.conn_at.get(cid, 0)),
                          client.closed, cid)
        self.conn_at.clear()
        self.world.checker.node_crashed(self)

    def graceful_stop(self, down_ms: int) -> None:
        """A planned stop: the peer hands over (a leader) and the process exits once it may, after
        what it sent has reached the wire (a clean exit closes its sockets after their data); it
        exits anyway after syncLimit, as the shell does. Then down for down_ms."""
        if not self.up:
            return
        self.peer.handoff()
        self.pump()
        z = self.zab_config
        self._await_exit(self.incarnation, self.world.now + z.sync_limit * z.tick_ms + 500, down_ms)

    def _await_exit(self, inc: int, give_up: int, down_ms: int) -> None:
        if inc != self.incarnation:
            return
        w = self.world
        if self.peer.may_exit or w.now >= give_up:
            w.note(f"{self.sid} exits ({self.peer.state})")
            w.handoffs += self.peer.handed_to is not None
            w.after(250, self._exit, inc, down_ms)
            return
        w.after(TICK_MS, self._await_exit, inc, give_up, down_ms)

    def _exit(self, inc: int, down_ms: int) -> None:
        if inc != self.incarnation:
            return
        self.crash()
        self.world.after(down_ms, self.world._restart, self.sid)

    def restart(self) -> None:
        if self.up:
            return
        self.restarts += 1
        self.boot()

    # -- inputs ----------------------------------------------------------------------------------
    def _tick(self, inc: int, gen: int) -> None:
        if inc != self.incarnation or gen != self.tick_gen:
            return
        now, mono = self.clock()
        self.peer.tick(now, mono)
        self.pump()
        self._schedule_tick(inc)

    def _schedule_tick(self, inc: int, delay: int | None = None) -> None:
        """As the shell's ticker: every TICK_MS, or the peer's idle tick while it is settled (pump
        ends that sleep as soon as the peer is not settled any more)."""
        self.tick_gen += 1
        self.tick_idle = delay is None and self.peer.settled() and not self.peer.streaming
        if delay is None:
            delay = self.zab_config.idle_tick_ms if self.tick_idle else TICK_MS
        self.world.after(delay, self._tick, inc, self.tick_gen)

    def link_up(self, other: int, lid: int) -> None:
        self.links[other] = lid
        self.peer.peer_connected(other)
        self.pump()

    def link_down(self, other: int, lid: int) -> None:
        if self.links.get(other) != lid:
            return
        del self.links[other]
        self.peer.peer_disconnected(other)
        self.pump()

    def deliver(self, frm: int, data: bytes) -> None:
        if self.up and frm in self.links:
            self.peer.message(frm, data)
            self.pump()

    def _disk_done(self, inc: int) -> None:
        if inc != self.incarnation:
            return
        op = self.disk.complete()
        peer = self.peer
        kind = op[0]
        if kind == "append":
            peer.log_durable(op[1][-1][0].zxid)
        elif kind == "epochs":
            peer.epochs_persisted(op[1], op[2])
        elif kind == "truncate":
            peer.log_truncated(op[1])
        elif kind == "install":
            peer.snapshot_installed(op[2])
        self.pump()

    # -- effects ---------------------------------------------------------------------------------
    def pump(self) -> None:
        if not self.up:
            return
        w = self.world
        net = w.net
        for eff in self.peer.drain_effects():
            kind = eff[0]
            if kind == "send":
                data = eff[2]
                if data[1] in CHECKED_TYPES:
                    w.checker.message_sent(self, M.decode(data)[1])
                net.send(self.sid, eff[1], data)
            elif kind == "append":
                self.disk.enqueue(("append", eff[1]))
            elif kind == "persist_epochs":
                self.disk.enqueue(("epochs", eff[1], eff[2]))
                w.checker.epochs_asked(self, eff[1], eff[2])
                w.nemesis("persist", self.sid)
            elif kind == "connect":
                net.connect(self.sid, eff[1])
            elif kind == "disconnect":
                other = eff[1]
                if other in self.links:
                    del self.links[other]
                    net.close(self.sid, other, delay_other=self.rng.randint(1, 10))
            elif kind == "truncate":
                self.disk.enqueue(("truncate", eff[1]))
                w.nemesis("truncate", self.sid)
            elif kind == "install_snapshot":
                data = eff[1] if eff[1] is not None else snapformat.encode_tree(self.core.tree)   # our own tree
                self.disk.enqueue(("install", data, eff[2]))
                w.nemesis("install", self.sid)
            elif kind == "role":
                self.role = eff[1]
                w.checker.role(self, eff[1])
            elif kind == "log":
                w.log(self.sid, eff[2])
        if self.applied_since_snap >= self.snap_every:
            self.applied_since_snap = 0
            tree = self.core.tree
            self.disk.enqueue(("snapshot", snapformat.encode_tree(tree), tree.last_zxid))
        out, closing = self.core.drain()
        at = self.conn_at
        for cid, chunks in out.items():
            client = self.conns.get(cid)
            if client is not None:
                t = at[cid] = max(w.now + self.rng.randint(1, 3), at.get(cid, 0))   # TCP: in order
                w.at(t, client.receive, cid, b"".join(chunks))
        for cid in closing:
            client = self.conns.pop(cid, None)
            self.core.connection_lost(cid)
            if client is not None:
                w.at(max(w.now + 1, at.pop(cid, 0)), client.closed, cid)
        if self.disk.busy is None and self.disk.queue:
            self.disk.next_op()
            w.after(self.disk.latency(), self._disk_done, self.incarnation)
        if self.tick_idle and not self.peer.settled():
            self._schedule_tick(self.incarnation, 0)

    # -- the peer's listener (forwarded to the checkers) ----------------------------------------------
    def applied(self, peer, entry) -> None:
        self.applied_since_snap += 1
        self.world.checker.applied(self, entry)

    def snapshot_loaded(self, peer, tree) -> None:
        self.world.checker.snapshot_loaded(self, tree)

    def restored(self, peer, tree) -> None:
        self.world.checker.restored(self, tree)

    def established(self, peer, epoch: int) -> None:
        self.world.checker.established(self, epoch)
        self.world.nemesis("established", self.sid)

    # -- clients -----------------------------------------------------------------------------------
    def client_connect(self, client) -> int | None:
        if not self.up:
            return None
        cid = self.world.next_conn_id()
        self.conns[cid] = client
        self.core.connection_made(cid, f"10.0.{client.cid // 256}.{client.cid % 256}:{40000 + cid % 20000}")
        return cid

    def client_frame(self, inc: int, cid: int, payload: bytes) -> None:
        if inc != self.incarnation or cid not in self.conns:
            return
        now, mono = self.clock()
        self.core.set_time(now, mono)
        self.core.frame(cid, payload)
        self.pump()

    def client_close(self, inc: int, cid: int) -> None:
        if inc != self.incarnation or self.conns.pop(cid, None) is None:
            return
        self.conn_at.pop(cid, None)
        self.core.connection_lost(cid)
        self.pump()
