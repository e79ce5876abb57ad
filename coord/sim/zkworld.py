"""The simulator's ZooKeeper-peer mode: coord observers (coord.core.zkpeer, the code that runs in
production) of a modelled ZooKeeper 3.8 ensemble (zkmodel.py), then the take-over, under seeded faults.

One run, from one seed (`python -m coord.sim --seed N --zk-peer [--nodes 3] [--observers 2]`):
  observing   `steps` events: the ZooKeeper leader writes for its own clients; clients of the coord
              observers create sessions, write through them (REQUEST) and keep their sessions alive
              (touches reported on PING). Faults: partitions (one server cut off, or the voters split),
              crashes of the ZooKeeper leader, of other voters and of observers (an observer loses the
              txns it applied but had not yet made durable, as ZooKeeper's do), slow links.
  calm        every fault healed, every server up: within 30 s every observer serves from the current
              leader at the last committed zxid.
  take-over   the ZooKeeper voters are stopped; each observer's durable state becomes a coord member's
              disk and coord's own simulation (world.py, with its faults and checkers) runs them as an
              ensemble.
Invariants (a violation stops the run):
  - every observer's tree is the prefix of the committed sequence ending at its zxid (ZooKeeper's
    digest of the tree equals the one the model stamped on that txn), after every delivery and boot;
  - every txn an observer applies is the committed txn right after the one it applied before (no txn
    applied twice, skipped or out of order; a SNAP puts it at a committed point);
  - no digest mismatch, no fatal stop, no link closed for bad input (the model speaks ZooKeeper's
    protocol, so any of these is a bug on one side);
  - a session is never expired by the ZooKeeper leader while its client kept touching it on an
    observer that stayed serving from that leader (a touch counts once the observer has served it for
    a margin covering a PING round);
  - after the take-over: every new zxid is above the last ZooKeeper one, in a higher epoch; no
    ZooKeeper session live at the stop is closed before its timeout has run (and coord's checkers).
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import replace

from coord.core import snapformat
from coord.core.config import CoreConfig
from coord.core.datatree import DataTree
from coord.core.server import Request, ServerCore
from coord.core.zkpeer.digest import tree_digest
from coord.core.zkpeer.election import LeaderFinder
from coord.core.zkpeer.observer import ZkObserver
from coord.jute import quorum as Q
from coord.jute import records as R
from coord.sim.checker import SimFailure
from coord.sim.clock import VirtualClock
from coord.sim.net import Network
from coord.sim.rng import Rng
from coord.sim.zkmodel import ZkEnsemble

TICK_MS = 50
PING_MS = 100
READ_TIMEOUT_MS = 1500         # syncLimit x tickTime: no packet from the leader for this long closes the link
TOUCH_MARGIN_MS = 800          # a touch reaches the leader within a PING round, the tick buckets and delays
_OPEN = [R.ACL(31, R.Id("world", "anyone"))]
EMPTY_DIGEST = tree_digest(DataTree())


class VoterNode:
    def __init__(self, world, sid: int):
        self.world = world
        self.sid = sid

    def link_up(self, other: int, lid: int) -> None:
        ld = self.world.ens.leader
        if ld is not None and ld.sid == self.sid and other in self.world.obs:
            ld.observer_up(other)

    def link_down(self, other: int, lid: int) -> None:
        ld = self.world.ens.leader
        if ld is not None and ld.sid == self.sid:
            ld.handlers.pop(other, None)

    def deliver(self, frm: int, data: bytes) -> None:
        if self.world.ens.voters[self.sid].up:
            self.world.ens.voter_data(self.sid, frm, data)


class ObserverNode:
    """A coord observer: ZkObserver over a ServerCore, its durable state, its link to the leader."""

    def __init__(self, world, sid: int, rng):
        self.world = world
        self.sid = sid
        self.rng = rng
        self.up = False
        self.obs: ZkObserver | None = None
        self.snapshot: bytes | None = None         # durable coord snapshot (the log restarts after it)
        self.durable: list[tuple] = []             # durable (hdr, txn) after the snapshot
        self.volatile: list[tuple] = []            # applied, not yet durable
        self.holding = False                       # a SNAP's tree is not on disk yet: volatile waits for it
        self.epochs = (0, 0)
        self.pos = -1                              # index in the committed sequence of our last txn
        self.target: int | None = None
        self.finder: LeaderFinder | None = None
        self.serving_since: int | None = None
        self.heard = 0
        self.restarts = 0
        self.inc = 0

    def boot(self) -> None:
        tree = snapformat.load_bytes(self.snapshot)[0] if self.snapshot is not None else DataTree()
        for hdr, txn in self.durable:
            tree.apply(hdr, txn)
        cc = CoreConfig(server_id=self.sid, tick_ms=100)
        cc.quorum = True
        core = ServerCore(cc, tree)
        core.set_time(*self.clock())
        self.obs = ZkObserver(self.sid, core, accepted_epoch=self.epochs[0], current_epoch=self.epochs[1])
        self.up = True
        self.inc += 1
        self.target = None
        self.serving_since = None
        self.finder = LeaderFinder(self.sid, set(self.world.ens.voters))
        self.world.check_tree(self, "booted with")
        self.world.after(self.rng.randint(1, TICK_MS), self._tick, self.inc)

    def write_snapshot(self) -> None:
        """The shell's snapshot of the tree as it is now; the log restarts after it."""
        tree = self.obs.core.tree
        z = tree.last_zxid
        if z and z not in self.world.ens.committed_at:
            raise SimFailure(f"observer {self.sid} wrote a snapshot at 0x{z:x}, never committed")
        self.snapshot, self.durable, self.volatile, self.holding = snapformat.encode_tree(tree), [], [], False

    def clock(self) -> tuple[int, int]:
        t = self.world.now
        return 1_700_000_000_000 + t, t

    def crash(self) -> None:
        if not self.up:
            return
        self.up = False
        self.inc += 1
        lost = len(self.volatile)
        self.volatile = []
        self.holding = False
        self.world.net.node_down(self.sid)
        self.obs = None
        self.serving_since = None
        self.world.note(f"observer {self.sid} crashes ({lost} applied txns not yet durable)")

    def _tick(self, inc: int) -> None:
        if inc != self.inc:
            return
        w = self.world
        obs = self.obs
        obs.core.set_time(*self.clock())
        if self.volatile and not self.holding and self.rng.random() < 0.6:
            self.durable += self.volatile
            self.volatile = []
        if self.target is not None and w.now - self.heard > READ_TIMEOUT_MS:
            # the shell's read timeout (syncLimit): a leader that says nothing, or a link never made
            w.note(f"observer {self.sid}: nothing from {self.target} for {w.now - self.heard} ms")
            t = self.target
            w.net.close(self.sid, t)
            if self.target == t:
                self.link_down(t, 0)
        if obs.phase == "idle" and self.target is None:
            self._find_leader()
        w.after(TICK_MS, self._tick, inc)

    def _find_leader(self) -> None:
        """Ask every voter we can reach, in real Notification records, as ZooKeeper's observers do."""
        w = self.world
        f = self.finder
        f.restart()
        leader = None
        for s, v in sorted(w.ens.voters.items()):
            if v.up and w.net.reachable(self.sid, s):
                n = Q.parse_notification(w.ens.notification_for(s).encode()[4:])
                leader = f.on_notification(s, n) or leader
        if leader is not None:
            self.target = leader
            self.heard = w.now
            w.net.connect(self.sid, leader)

    def link_up(self, other: int, lid: int) -> None:
        if other != self.target or self.obs is None:
            self.world.net.close(self.sid, other)
            return
        self.obs.link_up(other)
        self.pump()

    def link_down(self, other: int, lid: int) -> None:
        if other != self.target or self.obs is None:
            return
        self.target = None
        self.serving_since = None
        self.obs.link_down("link closed")
        self.pump()

    def deliver(self, frm: int, data: bytes) -> None:
        if self.obs is None or frm != self.target:
            return
        self.obs.core.set_time(*self.clock())
        self.heard = self.world.now
        was = self.obs.phase
        self.obs.data(data)
        if self.obs.phase == "serving" and was != "serving":
            self.serving_since = self.world.now
        self.pump()
        self.world.check_tree(self, "holds")

    def pump(self) -> None:
        obs = self.obs
        w = self.world
        for lvl, msg in obs.logs:
            w.log(self.sid, f"{lvl}: {msg}")
        obs.logs.clear()
        if obs.epochs_changed:
            obs.epochs_changed = False
            self.epochs = (obs.accepted_epoch, obs.current_epoch)
        for eff in obs.disk:
            w.disk_effect(self, eff)
        obs.disk.clear()
        if obs.fatal:
            raise SimFailure(f"observer {self.sid} stopped: {obs.fatal}")
        if obs.mismatches:
            raise SimFailure(f"observer {self.sid}: digest mismatch against the model: {obs.close}")
        for b in obs.out:
            if self.target is not None:
                w.net.send(self.sid, self.target, b)
        obs.out.clear()
        if obs.close is not None:
            raise SimFailure(f"observer {self.sid} closed its link: {obs.close}")
        if obs.phase != "serving":
            self.serving_since = None


class ObsClient:
    """A client of the coord observers: a session created through one, kept alive on whichever
    observer serves, writes forwarded to the ZooKeeper leader."""

    def __init__(self, world, cid: int, rng, timeout: int):
        self.world = world
        self.cid = cid
        self.rng = rng
        self.timeout = timeout
        self.session = (0x5A << 56) | (cid << 24)
        self.created = False
        self.home: int | None = None
        self.cxid = 0
        self.last_safe_touch: int | None = None      # last touch on an observer that had served a while
        self.dead = False

    def step(self) -> None:
        w = self.world
        if self.dead:
            return
        home = w.obs.get(self.home) if self.home is not None else None
        if home is None or not home.up or home.obs.phase != "serving":
            serving = [o for o in w.obs.values() if o.up and o.obs.phase == "serving"]
            if not serving:
                return
            home = self.rng.choice(serving)
            self.home = home.sid
        core = home.obs.core
        core.set_time(*home.clock())
        s = self.session
        if not self.created:
            if s in core.tree.sessions:
                self.created = True
            elif self.rng.random() < 0.3:
                home.obs.forward(Request(s, 0, -10, R.CreateSessionTxn(self.timeout), ()))
                home.pump()
            return
        if s not in core.tree.sessions:
            return                                   # expired (checked when the leader expires it)
        if core.sessions.get(s) is None:
            core.sessions.add(s, self.timeout, core.mono_ms)
        core.sessions.touch(s, core.mono_ms)
        if home.serving_since is not None and w.now - home.serving_since >= TOUCH_MARGIN_MS:
            self.last_safe_touch = w.now
        if self.rng.random() < 0.5:
            self.cxid += 1
            k = self.rng.randrange(8)
            r = self.rng.random()
            if r < 0.4:
                req, t = R.CreateRequest(f"/o{self.cid}-{k}", b"x" * self.rng.randrange(4), _OPEN,
                                         self.rng.choice([0, 1])), 1
            elif r < 0.7:
                req, t = R.SetDataRequest(f"/o{self.cid}-{k}", b"y%d" % self.cxid, -1), 5
            else:
                req, t = R.DeleteRequest(f"/o{self.cid}-{k}", -1), 2
            home.obs.forward(Request(s, self.cxid, t, req, ()))
            w.stats["forwarded"] += 1
            home.pump()


class ZkPeerWorld(VirtualClock):
    def __init__(self, opts):
        super().__init__()
        self.opts = opts
        self.rng = Rng(opts.seed)
        self.logs: deque = deque(maxlen=400)
        cfg = self.rng.stream("config")
        self.net = Network(self, self.rng.stream("net"))
        self.net.delay = (1, 3)
        self.net.idle_ms = 300
        self.net.streams = True
        self.ens = ZkEnsemble(self, opts.nodes, history=cfg.choice([5, 30, 500]))
        n = opts.nodes
        self.voter_nodes = {s: VoterNode(self, s) for s in range(1, n + 1)}
        k = max(1, opts.observers)
        self.obs = {s: ObserverNode(self, s, self.rng.stream(f"obs{s}")) for s in range(n + 1, n + 1 + k)}
        crng = self.rng.stream("clients")
        self.clients = [ObsClient(self, c, self.rng.stream(f"client{c}"), crng.choice([2000, 4000, 6000]))
                        for c in range(1, opts.clients + 1)]
        self.zk_sessions: dict[int, int] = {}
        self.faults = self.rng.stream("faults")
        self.work = self.rng.stream("work")
        self.down_until: dict[int, int] = {}
        self.stats = {"observer_crashes": 0, "leader_crashes": 0, "voter_crashes": 0, "partitions": 0,
                      "zk_txns": 0, "forwarded": 0}
        self.phase = "observing"
        self.expired_total = 0

    # -- what Network needs of a world (besides the clock) ------------------------------------------
    def up(self, sid: int) -> bool:
        if sid in self.obs:
            return self.obs[sid].up
        return self.ens.voters[sid].up

    def node(self, sid: int):
        return self.obs[sid] if sid in self.obs else self.voter_nodes[sid]

    def nemesis_message(self, *_a) -> None:
        pass

    def log(self, sid: int, text: str) -> None:
        self.logs.append(f"{self.now:>8} [{sid}] {text}")
        if self.opts.verbose:
            print(f"{self.now:>8} [{sid}] {text}")

    def note(self, text: str) -> None:
        self.log(0, text)

    # -- invariants ------------------------------------------------------------------------------------
    def check_tree(self, o: ObserverNode, what: str) -> None:
        tree = o.obs.core.tree
        z = tree.last_zxid
        ens = self.ens
        if z == 0:
            pos, want = -1, EMPTY_DIGEST
        else:
            pos = ens.committed_at.get(z)
            if pos is None:
                raise SimFailure(f"observer {o.sid} {what} a tree at 0x{z:x}, which ZooKeeper never committed")
            want = ens.committed[pos].digest
        got = o.obs.zk_digest.value
        if got != want:
            raise SimFailure(f"observer {o.sid} {what} a tree at 0x{z:x} with ZooKeeper digest {got:x}; "
                             f"the committed prefix has {want:x}")
        if what == "booted with" and tree_digest(tree) != want:
            raise SimFailure(f"observer {o.sid} booted with a tree that is not the committed prefix at 0x{z:x}")
        o.pos = pos

    def disk_effect(self, o: ObserverNode, eff: tuple) -> None:
        ens = self.ens
        if eff[0] == "append":
            hdr, txn = eff[1], eff[2]
            z = hdr.zxid
            want = ens.committed[o.pos + 1].zxid if o.pos + 1 < len(ens.committed) else None
            if z != want:
                seen = "again" if z in ens.committed_at and ens.committed_at[z] <= o.pos else "out of order"
                raise SimFailure(f"observer {o.sid} applied 0x{z:x} {seen}: after 0x"
                                 f"{ens.committed[o.pos].zxid if o.pos >= 0 else 0:x} comes "
                                 f"{'nothing yet' if want is None else hex(want)}")
            o.pos += 1
            o.volatile.append((hdr, txn))
        elif eff[0] == "snap":
            z = eff[1]
            if z and z not in ens.committed_at:
                raise SimFailure(f"observer {o.sid} installed a SNAP at 0x{z:x}, never committed")
            o.pos = ens.committed_at.get(z, -1)
            o.volatile, o.holding = [], True       # the older copy on disk stays; appends wait
        elif eff[0] == "snapshot":
            o.write_snapshot()
        elif eff[0] == "reset":
            raise SimFailure(f"observer {o.sid} dropped its copy (digest mismatch)")

    def session_expired(self, sid: int) -> None:
        for c in self.clients:
            if c.session == sid and not c.dead and c.last_safe_touch is not None:
                if self.now < c.last_safe_touch + c.timeout - TOUCH_MARGIN_MS:
                    raise SimFailure(f"ZooKeeper leader expired session 0x{sid:x} at {self.now} ms; its "
                                     f"client touched it on a serving observer at {c.last_safe_touch} ms "
                                     f"(timeout {c.timeout} ms)")

    # -- workload and faults ---------------------------------------------------------------------------
    def _tick(self) -> None:
        ens = self.ens
        before = len(ens.expired)
        ens.tick()
        if len(ens.expired) != before:
            self.expired_total += len(ens.expired)
            for sid in sorted(ens.expired):
                self.session_expired(sid)
            ens.expired.clear()
        self._links()
        ld = ens.leader
        if ld is not None:
            if self.now % PING_MS < TICK_MS:
                ld.ping()
            r = self.work
            if r.random() < 0.5:
                self._zk_write(ld, r)
            for sid, to in self.zk_sessions.items():
                ld.touch(sid, to)
        for c in self.clients:
            if c.rng.random() < 0.4:
                c.step()
        for sid, t in list(self.down_until.items()):
            if self.now >= t:
                del self.down_until[sid]
                self._restart(sid)
        self.after(TICK_MS, self._tick)

    def _links(self) -> None:
        """Voter-to-voter links, as QuorumCnxManager keeps them up."""
        vs = [s for s, v in self.ens.voters.items() if v.up]
        for a in vs:
            for b in vs:
                if a < b and self.net.reachable(a, b):
                    self.net.connect(a, b)

    def _zk_write(self, ld, r) -> None:
        """A client of the ZooKeeper voters (not ours): its own session, creates, sets, deletes."""
        if len(self.zk_sessions) < 2 and r.random() < 0.3:
            sid = (0x2B << 56) | (len(self.zk_sessions) + 1) << 8 | ld.epoch
            to = r.choice([3000, 5000])
            if sid not in ld.ptree.sessions:
                self.zk_sessions[sid] = to
                ld.propose(sid, 0, -10, R.CreateSessionTxn(to))
            return
        live = [s for s in self.zk_sessions if s in ld.ptree.sessions]
        if not live:
            return
        sid = r.choice(live)
        k = r.randrange(12)
        x = r.random()
        if x < 0.45:
            ld.propose(sid, 1, 1, R.CreateRequest(f"/z{k}", b"d" * r.randrange(6), _OPEN, r.choice([0, 0, 1, 2])))
        elif x < 0.8:
            ld.propose(sid, 1, 5, R.SetDataRequest(f"/z{k}", b"s%d" % self.now, -1))
        elif x < 0.97:
            ld.propose(sid, 1, 2, R.DeleteRequest(f"/z{k}", -1))
        else:
            ld.propose(sid, 1, -11, None)
            self.zk_sessions.pop(sid, None)
        self.stats["zk_txns"] += 1

    def _fault(self) -> None:
        if self.phase != "observing":
            return
        r = self.faults
        ens = self.ens
        k = r.random()
        if k < 0.2 and ens.leader is not None:
            s = ens.leader.sid
            self._crash_voter(s, r.randint(100, 3000))
            self.stats["leader_crashes"] += 1
        elif k < 0.3:
            s = r.choice(sorted(ens.voters))
            self._crash_voter(s, r.randint(100, 3000))
            self.stats["voter_crashes"] += 1
        elif k < 0.55:
            s = r.choice(sorted(self.obs))
            if self.obs[s].up:
                self.obs[s].crash()
                self.stats["observer_crashes"] += 1
                self.down_until[s] = self.now + r.randint(50, 3000)
        elif k < 0.75:
            everyone = sorted(ens.voters) + sorted(self.obs)
            cut = {r.choice(everyone)} if r.random() < 0.6 else set(r.sample(everyone, len(everyone) // 2))
            self.net.partition([cut, set(everyone) - cut])
            self.stats["partitions"] += 1
            self.after(r.randint(200, 4000), self.net.heal)
        elif k < 0.9:
            self.net.slow = r.choice([0.0, 0.05, 0.3])
            self.net.delay = r.choice([(1, 3), (1, 20), (5, 60)])
        else:
            self.net.heal()
        self.after(r.randint(50, 1500), self._fault)

    def _crash_voter(self, s: int, down: int) -> None:
        v = self.ens.voters[s]
        if not v.up:
            return
        v.up = False
        v.state, v.leader = Q.LOOKING, 0
        self.note(f"ZooKeeper voter {s} crashes")
        if self.ens.leader is not None and self.ens.leader.sid == s:
            self.ens.step_down("crashed")
        self.net.node_down(s)
        self.down_until[s] = self.now + down

    def _restart(self, sid: int) -> None:
        if sid in self.obs:
            o = self.obs[sid]
            if not o.up:
                o.restarts += 1
                o.boot()
        else:
            v = self.ens.voters[sid]
            if not v.up:
                v.up = True
                self.note(f"ZooKeeper voter {sid} restarts")

    # -- the run ---------------------------------------------------------------------------------------
    def run(self):
        from coord.sim.world import SimResult
        t0 = time.perf_counter()
        opts = self.opts
        ok, msg = True, ""
        try:
            for o in self.obs.values():
                o.boot()
            self.after(TICK_MS, self._tick)
            if opts.faults:
                self.after(self.faults.randint(200, 1000), self._fault)
            while self.count < opts.steps and self.step():
                pass
            self.phase = "calm"
            self.note("healing everything: calm phase")
            self.net.heal()
            self.net.calm()
            self.net.slow = 0.0
            self.net.delay = (1, 3)
            for sid in list(self.down_until):
                del self.down_until[sid]
                self._restart(sid)
            self._converge()
            if opts.takeover:
                self.take_over()
        except SimFailure as e:
            ok, msg = False, str(e)
        except AssertionError as e:
            ok, msg = False, f"model: {e}"
        except Exception as e:  # noqa: BLE001 - a crash of the code under test is a failure of its seed
            import traceback
            ok, msg = False, f"crashed: {e!r} at {traceback.format_exc().splitlines()[-3].strip()}"
        return SimResult(ok, opts.seed, msg, self.now, self.count, time.perf_counter() - t0,
                         self.run_stats(), list(self.logs)[-60:])

    def _converge(self) -> None:
        bound = self.now + 30000
        while True:
            if not self.step():
                raise SimFailure("calm: the event queue ran dry")
            if self.count % 50:
                continue
            why = self._not_converged()
            if why is None:
                self.note("every observer serves the last committed zxid")
                return
            if self.now > bound:
                raise SimFailure(f"calm: not converged 30 s after healing: {why}")

    def _not_converged(self) -> str | None:
        ld = self.ens.leader
        if ld is None:
            return "no ZooKeeper leader"
        last = self.ens.committed[-1].zxid if self.ens.committed else 0
        if ld.proposed:
            return "proposals outstanding"
        for o in self.obs.values():
            if not o.up or o.obs.phase != "serving" or o.target != ld.sid:
                return f"observer {o.sid} is {o.obs.phase if o.obs else 'down'}"
            if o.obs.core.tree.last_zxid != last:
                return f"observer {o.sid} at 0x{o.obs.core.tree.last_zxid:x}, committed 0x{last:x}"
        return None

    # -- take-over -------------------------------------------------------------------------------------
    def take_over(self) -> None:
        """Stop every ZooKeeper voter; the observers' durable state becomes a coord ensemble."""
        from coord.sim.world import SimOptions, World
        ens = self.ens
        for s in sorted(ens.voters):
            if ens.voters[s].up:
                self._crash_voter(s, 1 << 40)
        zk_last = ens.committed[-1].zxid if ens.committed else 0
        zk_epoch = max(v.accepted_epoch for v in ens.voters.values())
        # each observer's state as it is on its disk: what a crash-free take-over flushes first
        states = {}
        for sid, o in sorted(self.obs.items()):
            if o.holding and o.up:
                o.write_snapshot()      # the take-over writes a SNAP's tree first (snapshot_durable)
            o.durable += o.volatile
            o.volatile = []
            tree = snapformat.load_bytes(o.snapshot)[0] if o.snapshot is not None else DataTree()
            for hdr, txn in o.durable:
                tree.apply(hdr, txn)
            states[sid] = tree
        sessions = dict(max(states.values(), key=lambda t: t.last_zxid).sessions)
        seeded = self.opts
        wopts = SimOptions(seed=seeded.seed, nodes=len(self.obs), steps=max(2000, seeded.steps // 2),
                           clients=2, faults=seeded.faults)
        world = World(wopts)
        # the coord members are renumbered 1..k; their disks hold the observers' trees and ZooKeeper's epoch
        ck = world.checker
        replay = DataTree()
        want = {t.last_zxid for t in states.values()}
        for t in ens.committed:
            replay.apply(t.hdr, t.txn)
            if t.zxid in want:
                ck.txn_crc[t.zxid] = 0
                ck.digest[t.zxid] = replay.digest
        ck.tail = zk_last
        for i, (sid, tree) in enumerate(sorted(states.items()), 1):
            node = world.nodes[i]
            node.disk.snapshots = [(tree.last_zxid, snapformat.encode_tree(tree))]
            node.disk.epochs = (zk_epoch, zk_epoch)
            node.disk.snap_cover = tree.last_zxid
        self.note(f"take-over: ZooKeeper stopped at 0x{zk_last:x} (epoch {zk_epoch}); coord members at "
                  + ", ".join(f"0x{t.last_zxid:x}" for _, t in sorted(states.items())))
        res = world.run()
        self.takeover_stats = res.stats
        for line in res.tail[-30:]:
            self.logs.append("  coord| " + line)
        if not res.ok:
            raise SimFailure(f"after the take-over: {res.message}")
        new = [z for z in ck.txn_crc if z > zk_last]
        for z in ck.txn_crc:
            if z not in want and z <= zk_last:
                raise SimFailure(f"after the take-over txn 0x{z:x} is not above ZooKeeper's last 0x{zk_last:x}")
        if any((z >> 32) <= zk_epoch for z in new):
            raise SimFailure(f"after the take-over a txn in an epoch not above ZooKeeper's {zk_epoch}")
        # a session's timeout runs on its expirer's clock, and the model's clocks run at 1 +- 3%: a
        # fast one expires it that much sooner in virtual time (as a real leader with a fast clock)
        fastest = max(n.rate for n in world.nodes.values())
        for s, to in sessions.items():
            at = ck.closed_at.get(s)
            if at is not None and at < to / fastest:
                raise SimFailure(f"ZooKeeper session 0x{s:x} (timeout {to} ms) closed {at} ms after the "
                                 f"take-over: before its timeout could run (fastest clock x{fastest:.3f})")
        if not new:
            raise SimFailure("the coord ensemble committed nothing after the take-over")
        self.stats["takeover_txns"] = len(new)
        self.stats["takeover_sessions"] = len(sessions)

    def run_stats(self) -> dict:
        ens = self.ens
        out = dict(self.stats)
        out.update(virtual_ms=self.now, events=self.count, txns=len(ens.committed), acked_writes=0,
                   epochs=ens.epochs, restarts=sum(o.restarts for o in self.obs.values()),
                   syncs=dict(ens.syncs),
                   observer_syncs={o.sid: dict(o.obs.syncs_done) for o in self.obs.values() if o.obs},
                   verified=sum(o.obs.verified for o in self.obs.values() if o.obs),
                   observer_client_txns=sum(1 for t in ens.committed if t.hdr.clientId >> 56 == 0x5A),
                   sessions_expired=self.expired_total)
        return out


def run_zkpeer_seed(opts):
    return ZkPeerWorld(opts).run()
