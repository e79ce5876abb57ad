"""The deterministic simulation: servers, clients, a network and disks on one virtual clock.

One run, from one seed:
  safety phase    `steps` events with faults: crashes and restarts (one server, or all at once),
                  symmetric and one-way partitions, message loss, duplication, reordering and
                  corruption, slow disks and links, torn writes, corrupt reads, clock skew and
                  drift, clients dying or hanging; with `graceful`, planned stops too: the leader
                  asked to stop hands over (peer.handoff) and exits once it may. Checkers (checker.py, client.py) run as events
                  happen; any violation stops the run.
  liveness phase  every fault healed, every server up: within `liveness_ms` of virtual time one
                  leader must be established with every server following it in broadcast, a probe
                  write must commit, all servers must converge on one zxid and digest, and the
                  sessions of dead clients must have expired with their ephemerals.
Events are (time, sequence) ordered; every random draw comes from Rng(seed) streams, so a seed
replays exactly: `python -m coord.sim --seed N` (plus the options printed with the failure).
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from coord.core.zab.api import ZabConfig
from coord.sim.checker import Checker, SimFailure
from coord.sim.clock import VirtualClock
from coord.sim.client import SimClient
from coord.sim.net import Network
from coord.sim.node import SimNode
from coord.sim.rng import Rng


@dataclass
class SimOptions:
    seed: int = 0
    nodes: int = 3
    observers: int = 0
    steps: int = 20000
    clients: int = 4
    swarm: bool = False
    faults: bool = True
    liveness_ms: int = 40000
    reconfig: bool = False      # membership changes (members.py) with `spares` servers outside at first
    spares: int = 2
    reconfig_plan: tuple | None = None   # members.Reconfigurer's plan (tests); None: random changes
    graceful: bool = False      # planned stops of the leader (handoff), then a restart
    zk_peer: bool = False       # coord observers of a modelled ZooKeeper ensemble (zkworld.py)
    takeover: bool = False      # zk_peer: then stop ZooKeeper and run the observers as a coord ensemble
    verbose: bool = False
    zab: dict = field(default_factory=dict)

    def replay(self) -> str:
        cmd = f"python -m coord.sim --seed {self.seed} --nodes {self.nodes} --steps {self.steps}"
        if self.observers:
            cmd += f" --observers {self.observers}"
        if self.clients != 4:
            cmd += f" --clients {self.clients}"
        if self.swarm:
            cmd += " --swarm"
        if not self.faults:
            cmd += " --no-faults"
        if self.reconfig:
            cmd += f" --reconfig --spares {self.spares}"
        if self.graceful:
            cmd += " --graceful"
        if self.zk_peer:
            cmd += " --zk-peer" + (" --takeover" if self.takeover else "")
        return cmd


@dataclass
class SimResult:
    ok: bool
    seed: int
    message: str = ""
    virtual_ms: int = 0
    events: int = 0
    wall_s: float = 0.0
    stats: dict = field(default_factory=dict)
    tail: list = field(default_factory=list)


class World(VirtualClock):
    def __init__(self, opts: SimOptions):
        super().__init__()
        self.opts = opts
        self.rng = Rng(opts.seed)
        self.conn_ids = 0
        self.logs: deque = deque(maxlen=400)
        self.voters = set(range(1, opts.nodes + 1))
        self.checker = Checker(self)
        self.net = Network(self, self.rng.stream("net"))
        cfg = self.rng.stream("config")
        zab = dict(tick_ms=100, init_limit=10, sync_limit=5, election_finalize_ms=30,
                   election_resend_ms=50, election_resend_max_ms=800, reconnect_ms=50,
                   history_txns=cfg.choice([8, 50, 1000]),
                   zxid_counter_limit=cfg.choice([0xFFFFFFFE, 0xFFFFFFFE, 40, 150]),
                   max_batch_bytes=cfg.choice([300, 4096, 1 << 20]),
                   snap_chunk_bytes=cfg.choice([200, 64 << 10]),
                   snap_slice_nodes=cfg.choice([2, 25, 2048]))
        zab.update(opts.zab)
        self.zab_config = ZabConfig(**zab)
        n = opts.nodes + opts.observers
        voters = {s: None for s in range(1, opts.nodes + 1)}
        observers = {s: None for s in range(opts.nodes + 1, n + 1)}
        self.voters = set(voters)
        self.observers = set(observers)
        spares = list(range(n + 1, n + 1 + opts.spares)) if opts.reconfig else []
        self.retired: set[int] = set(spares)           # down and outside the ensemble: never restarted
        self.nodes = {s: SimNode(self, s, voters, observers, self.zab_config, self.rng.stream(f"node{s}"),
                                 disk_faults=opts.faults)
                      for s in range(1, n + 1 + len(spares))}
        self.reconfigurer = None
        if opts.reconfig:
            from coord.sim.members import Reconfigurer
            self.reconfigurer = Reconfigurer(self, self.rng.stream("reconfig"), spares, opts.reconfig_plan)
        crng = self.rng.stream("clients")
        self.clients = [SimClient(self, c, self.rng.stream(f"client{c}"),
                                  crng.choice([400, 1000, 2000, 4000])) for c in range(1, opts.clients + 1)]
        self.next_client = opts.clients + 1
        self.faults = self.rng.stream("faults")
        self.fault_kinds = self._choose_faults()
        self.stops = self.rng.stream("graceful")     # its own stream: other faults draw as before
        self.graceful_stops = 0
        self.handoffs = 0                              # graceful stops of a leader that handed over
        self.down_until: dict[int, int] = {}

    # -- nodes ------------------------------------------------------------------------------------
    def up(self, sid: int) -> bool:
        n = self.nodes.get(sid)
        return n is not None and n.up

    def node(self, sid: int) -> SimNode:
        return self.nodes[sid]

    def configure_core(self, node, cc) -> None:
        """Reconfig runs: every server may reconfigure (super digest) from its static config."""
        if self.opts.reconfig:
            from coord.sim.members import SUPER_DIGEST, config_data
            cc.quorum = True
            cc.reconfig_enabled = True
            cc.super_digest = SUPER_DIGEST
            cc.config_data = config_data(node.voters, node.observers)

    def was_voter(self, sid: int) -> bool:
        return any(sid in v for _, v in self.checker.configs)

    def next_conn_id(self) -> int:
        self.conn_ids += 1
        return self.conn_ids

    def log(self, sid: int, text: str) -> None:
        line = f"{self.now:>8} {text}"
        self.logs.append(line)
        if self.opts.verbose:
            print(line)

    def note(self, text: str) -> None:
        self.log(0, f"[sim] {text}")

    # -- faults -------------------------------------------------------------------------------------
    def _choose_faults(self) -> set[str]:
        all_kinds = {"crash", "crash_all", "partition", "one_way", "lossy", "slow", "client_death"}
        if not self.opts.faults:
            return set()
        if not self.opts.swarm:
            return all_kinds
        return {k for k in sorted(all_kinds) if self.faults.random() < 0.5} or {"crash"}

    def schedule_fault(self) -> None:
        if self.phase != "safety":
            return
        self.after(self.faults.randint(100, 1500), self.fault)

    def fault(self) -> None:
        if self.phase != "safety":
            return
        self.schedule_fault()
        kinds = sorted(self.fault_kinds)
        if not kinds:
            return
        r = self.faults
        kind = r.choice(kinds)
        sids = sorted(self.nodes)
        if kind == "crash":
            sid = r.choice(sids)
            if self.nodes[sid].up:
                self.note(f"crash {sid}")
                self.nodes[sid].crash()
                self.after(r.randint(50, 3000), self._restart, sid)
        elif kind == "crash_all" and r.random() < 0.4:
            self.note("power loss: crash all")
            for sid in sids:
                self.nodes[sid].crash()
                self.after(r.randint(50, 2000), self._restart, sid)
        elif kind == "partition":
            k = r.randint(1, max(1, len(sids) // 2))
            minority = set(r.sample(sids, k))
            self.note(f"partition {sorted(minority)} | {sorted(set(sids) - minority)}")
            self.net.partition([minority, set(sids) - minority])
            self.after(r.randint(200, 3000), self._heal)
        elif kind == "one_way" and len(sids) > 1:
            a, b = r.sample(sids, 2)
            self.note(f"one-way partition {a} -/-> {b}")
            self.net.partition([], one_way=(a, b))
            self.after(r.randint(200, 3000), self._heal)
        elif kind == "lossy":
            net = self.net
            net.loss = r.choice([0, 0.01, 0.05])
            net.dup = r.choice([0, 0.01, 0.05])
            net.reorder = r.choice([0, 0.01, 0.05])
            net.corrupt = r.choice([0, 0.005, 0.02])
            self.note(f"lossy network: loss {net.loss} dup {net.dup} reorder {net.reorder} "
                      f"corrupt {net.corrupt}")
            self.after(r.randint(200, 2000), self._calm)
        elif kind == "slow":
            self.net.slow = 0.2
            for n in self.nodes.values():
                n.disk.slow = 0.3
            self.note("slow network and disks")
            self.after(r.randint(200, 2000), self._calm)
        elif kind == "client_death" and r.random() < 0.3:
            alive = [c for c in self.clients if c.dead_at is None]
            if alive:
                c = r.choice(alive)
                hang = r.random() < 0.5
                self.note(f"client {c.cid} {'hangs' if hang else 'dies'}")
                c.die(hang)
                nc = SimClient(self, self.next_client, self.rng.stream(f"client{self.next_client}"),
                               r.choice([400, 1000, 2000]))
                self.next_client += 1
                self.clients.append(nc)
                nc.start()

    def schedule_graceful(self) -> None:
        if self.phase == "safety" and self.opts.graceful:
            self.after(self.stops.randint(300, 3000), self.graceful_stop)

    def graceful_stop(self) -> None:
        """A planned stop (SIGTERM, a rolling restart) of the leader, or now and then of another
        server; sometimes another server crashes mid-handoff (the successor, say)."""
        if self.phase != "safety":
            return
        self.schedule_graceful()
        r = self.stops
        up = [s for s in sorted(self.nodes) if self.nodes[s].up and self.nodes[s].peer is not None]
        leaders = [s for s in up if self.nodes[s].peer.state == "leading"]
        if not up:
            return
        sid = leaders[0] if leaders and r.random() < 0.85 else r.choice(up)
        self.note(f"graceful stop of {sid} ({self.nodes[sid].peer.state})")
        self.graceful_stops += 1
        self.nodes[sid].graceful_stop(r.randint(200, 2000))
        if r.random() < 0.2 and len(up) > 1:
            other = r.choice([s for s in up if s != sid])
            delay = r.randint(0, 15)
            self.note(f"and {other} crashes {delay} ms into it")
            self.after(delay, self._crash, other)
            self.after(delay + r.randint(50, 1500), self._restart, other)

    def nemesis(self, event: str, sid: int) -> None:
        """Crash servers right after protocol moments where ordering bugs hide (an epoch written, a
        truncation or snapshot install begun, an epoch established): with a slow disk in play, that
        is exactly the window in which an early ACK or a forgotten fsync would lose a txn."""
        if self.phase != "safety" or "crash" not in self.fault_kinds:
            return
        r = self.faults
        if r.random() >= 0.15:
            return
        sids = sorted(self.nodes)
        if event == "established" or r.random() < 0.3:
            victims = r.sample(sids, r.randint(1, len(sids)))
        else:
            victims = [sid]
        delay = r.randint(0, 12)
        self.note(f"nemesis after {event} on {sid}: crash {victims} in {delay} ms")
        for v in victims:
            self.after(delay, self._crash, v)
            self.after(delay + r.randint(50, 1500), self._restart, v)

    def nemesis_message(self, mtype: int, frm: int, to: int) -> None:
        """Crash around synchronisation messages: the receiver (and maybe the sender, kept down for a
        while) right after a TRUNC, a SNAP chunk, a NEWLEADER or an ACKNEWLEADER arrives."""
        if self.phase != "safety" or "crash" not in self.fault_kinds:
            return
        r = self.faults
        if r.random() >= 0.06:
            return
        victims = [to] if r.random() < 0.5 else [to, frm]
        delay = r.randint(0, 10)
        self.note(f"nemesis after message type {mtype} {frm}->{to}: crash {victims} in {delay} ms")
        for v in victims:
            self.after(delay, self._crash, v)
            self.after(delay + (r.randint(50, 500) if v == to else r.randint(500, 4000)), self._restart, v)

    def _crash(self, sid: int) -> None:
        if self.phase == "safety" and self.nodes[sid].up:
            self.nodes[sid].crash()

    def _restart(self, sid: int) -> None:
        n = self.nodes[sid]
        if not n.up and sid not in self.retired:
            self.note(f"restart {sid}")
            n.restart()

    def _heal(self) -> None:
        self.net.heal()

    def _calm(self) -> None:
        self.net.calm()
        for n in self.nodes.values():
            n.disk.slow = 0.02 if self.opts.faults else 0.0

    # -- phases -------------------------------------------------------------------------------------
    def run(self) -> SimResult:
        t0 = time.perf_counter()
        opts = self.opts
        self.phase = "safety"
        try:
            for sid, n in self.nodes.items():
                if sid not in self.retired:
                    n.boot()
            for c in self.clients:
                c.start()
            if self.reconfigurer is not None:
                self.reconfigurer.start()
            self.schedule_fault()
            self.schedule_graceful()
            while self.count < opts.steps:
                if not self.step():
                    break
            self.phase = "liveness"
            self.healed_at = self.now
            self.note("healing everything: liveness phase")
            self.net.heal()
            self.net.calm()
            for sid, n in sorted(self.nodes.items()):
                n.disk.slow = 0.0
                if not n.up and sid not in self.retired:
                    n.restart()
            self.liveness()
            self.final_checks()
            ok, msg = True, ""
        except SimFailure as e:
            ok, msg = False, str(e)
        return SimResult(ok, opts.seed, msg, self.now, self.count, time.perf_counter() - t0,
                         self.stats(), list(self.logs)[-60:])

    def members(self) -> list:
        """The servers the ensemble is made of now: all of them, or with membership changes those of
        the established leader's configuration, or the newest committed one while no leader is
        established (every other server is retired: stopped). A leader still in discovery may run
        an older configuration than the committed one (it has not learnt the commit yet): following
        it, the driver would swap members back and forth as such leaders come and go."""
        if self.reconfigurer is None:
            return list(self.nodes.values())
        leaders = [n for n in self.nodes.values() if n.up and n.role == "leading"
                   and getattr(n.peer.role, "established", False)]
        if len(leaders) == 1:
            ms = leaders[0].peer.membership
            sids = set(ms.voters) | set(ms.observers)
        else:
            sids = set(self.checker.voters) | self.observers
        return [self.nodes[s] for s in sorted(sids)]

    def _settle_members(self) -> None:
        """Liveness with membership changes: members that are down start, non-members stop."""
        members = {n.sid for n in self.members()}
        for sid, n in sorted(self.nodes.items()):
            if sid in members and not n.up:
                self.retired.discard(sid)
                self.note(f"liveness: starting member {sid}")
                n.restart()
            elif sid not in members and n.up and n.role != "leading":
                self.note(f"liveness: stopping non-member {sid}")
                n.crash()
                self.retired.add(sid)

    def converged(self) -> str | None:
        """None when the ensemble is settled and converged, else what is still missing."""
        leaders = [n for n in self.nodes.values() if n.up and n.role == "leading"]
        if len(leaders) != 1:
            return f"{len(leaders)} leaders"
        lead = leaders[0]
        lr = lead.peer.role
        if lr is None or lr.phase != "broadcast" or lr.rolling:
            return "leader not in broadcast"
        if lead.peer.membership.pending:
            return "a reconfig is not committed yet"
        members = self.members()
        for n in members:
            if n is lead:
                continue
            r = n.peer.role
            if n.role not in ("following", "observing") or r is None or r.phase != "broadcast" \
                    or r.leader != lead.sid:
                return f"server {n.sid} is {n.role}"
        tails = {n.core.tree.last_zxid for n in members}
        if len(tails) != 1 or lead.peer.last_zxid != lead.core.tree.last_zxid:
            return f"servers at {sorted(hex(t) for t in tails)}"
        return None

    def liveness(self) -> None:
        start = self.now
        bound = start + self.opts.liveness_ms
        probe = SimClient(self, 0, self.rng.stream("probe"), 4000)
        probe.workload = False
        self.clients.append(probe)
        probe.start()
        probe_done = False
        while True:
            if not self.step():
                raise SimFailure("liveness: the event queue ran dry")
            if self.now > bound:
                why = self.converged() or "probe write or session expiry missing"
                raise SimFailure(f"liveness: not converged {self.opts.liveness_ms} ms after healing: {why}")
            if self.count % 200:
                continue
            if self.reconfigurer is not None:
                self._settle_members()
            if self.converged() is not None:
                continue
            if not probe_done:
                if probe.ops_ok == 0 and probe.state == "connected" and not probe.inflight:
                    probe.xid += 1
                    from coord.jute import records as R
                    # A path per attempt: an attempt whose reply was lost with its connection may
                    # have succeeded, and the same path again would answer NODEEXISTS for ever.
                    probe.request(probe.xid, 1, R.CreateRequest(f"/probe{self.opts.seed}-{probe.xid}", b"p",
                                                                [R.ACL(31, R.Id("world", "anyone"))], 0).encode(),
                                  "/probe")
                probe_done = probe.ops_ok > 0
                continue
            if self._dead_sessions_pending():
                continue
            if self.converged() is None:
                self.note(f"converged {self.now - start} ms after healing")
                return

    def _dead_sessions_pending(self) -> bool:
        closed = self.checker.closed
        for c in self.clients:
            if c.dead_at is not None and c.session_id and c.session_id not in closed:
                return True
        return False

    def final_checks(self) -> None:
        lead = next(n for n in self.nodes.values() if n.up and n.role == "leading")
        tree = lead.core.tree
        digests = {n.core.tree.digest for n in self.members()}
        if len(digests) != 1:
            raise SimFailure(f"converged zxid but digests differ: {digests}")
        ck = self.checker
        if tree.last_zxid != ck.tail:
            raise SimFailure(f"final tree at 0x{tree.last_zxid:x} but the committed sequence ends at "
                             f"0x{ck.tail:x}")
        for c in self.clients:
            if c.dead_at is not None and c.session_id:
                if c.session_id in tree.sessions or tree.ephemerals.get(c.session_id):
                    raise SimFailure(f"dead client {c.cid}'s session 0x{c.session_id:x} outlived it")
                # promptly: a leader that has been in place since the heal expires it within its
                # timeout (plus an election and tick rounding); a leader change may restart the clock once
                due = max(c.dead_at, self.healed_at) + 2 * c.negotiated + 3000
                at = ck.closed_at.get(c.session_id)
                if at is not None and at > due:
                    raise SimFailure(f"dead client {c.cid}'s session 0x{c.session_id:x} (timeout "
                                     f"{c.negotiated} ms) expired only at {at} ms, due by {due} ms")
        for (sid, cxid), z in ck.by_req.items():
            if z > ck.tail:
                raise SimFailure("acked write beyond the end of the committed sequence")

    def stats(self) -> dict:
        ck = self.checker
        peers = [n.peer for n in self.nodes.values() if n.peer is not None]
        return {
            "events": self.count, "virtual_ms": self.now, "applies": ck.applies, "txns": len(ck.txn_crc),
            "acked_writes": ck.acked, "epochs": len(ck.leaders),
            "elections": sum(p.stats.elections for p in peers),
            "snap_syncs": sum(p.stats.snap_syncs for p in peers),
            "diff_syncs": sum(p.stats.diff_syncs for p in peers),
            "trunc_syncs": sum(p.stats.trunc_syncs for p in peers),
            "epoch_rolls": sum(p.stats.epoch_rolls for p in peers),
            "graceful_stops": self.graceful_stops, "handoffs": self.handoffs,
            "bad_messages": sum(p.stats.bad_messages for p in peers),
            "restarts": sum(n.restarts for n in self.nodes.values()),
            "torn_writes": sum(n.disk.torn for n in self.nodes.values()),
            "read_retries": sum(n.disk.read_retries for n in self.nodes.values()),
            "sessions_expired": sum(c.expired_sessions for c in self.clients),
            "net": dict(self.net.stats),
            "faults": sorted(self.fault_kinds),
            "reconfigs": len(ck.configs) - 1,
            "final_voters": sorted(ck.voters),
        }
