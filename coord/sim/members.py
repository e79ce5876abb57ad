"""Membership changes in the simulation (SimOptions.reconfig): the ensemble grows, shrinks and swaps
members while the workload, crashes and partitions go on.

An operator (Reconfigurer) acts every so often, on the newest committed configuration (the
checker's): it starts a spare server with a static config of the current ensemble plus itself
(it syncs as a non-voting follower), then has a super client (SimAdmin) send a reconfig over the
wire: joining and/or leaving lists (incremental) or the whole new membership (newMembers). A server
a committed reconfig removed is stopped a little later and becomes a spare again (so a later grow
re-adds a server with an old disk). Replies are checked like any write (checker.write_acked); a
reconfig whose reply was lost may still commit, and the operator only ever reads the outcome from
the committed sequence.
"""
from __future__ import annotations

from coord.core.acl import digest_id
from coord.core.reconfig import render
from coord.core.quorumserver import parse_server_spec
from coord.jute import records as R
from coord.jute.codec import decode
from coord.sim.client import SimClient

SUPER = "super:sim"
SUPER_DIGEST = digest_id(SUPER)
MIN_VOTERS = 3


def spec(sid: int, role: str = "participant") -> str:
    return f"10.0.0.{sid}:2888:3888:{role};10.0.0.{sid}:2181"


def config_data(voters, observers=(), version: int = 0) -> bytes:
    members = {s: parse_server_spec(s, spec(s)) for s in voters}
    members.update({s: parse_server_spec(s, spec(s, "observer")) for s in observers})
    return render(members, version)


class SimAdmin(SimClient):
    """A super client that sends one reconfig at a time (resent on a new connection: joining a
    member again or leaving a non-member changes nothing, so a resend is harmless)."""

    def __init__(self, world, cid: int, rng):
        super().__init__(world, cid, rng, 4000)
        self.workload = False
        self.job = None                # (joining, leaving, new_members, on_done)
        self.sent = False

    def submit(self, joining, leaving, new_members, on_done) -> None:
        self.job = (joining, leaving, new_members, on_done)
        self.sent = False

    def act(self) -> None:
        if self.state == "connected" and self.job is not None and not self.sent:
            self.sent = True
            self._send(R.RequestHeader(-4, 100).encode() + R.AuthPacket(0, "digest", SUPER.encode()).encode())
            self.xid += 1
            j, lv, nm, _ = self.job
            self.request(self.xid, 16, R.ReconfigRequest(j, lv, nm, -1).encode(), None)
        super().act()

    def _lost(self) -> None:
        super()._lost()
        self.sent = False

    def frame(self, frame: bytes) -> None:
        if self.state == "connected":
            hdr = decode(R.ReplyHeader, frame)[0]
            if hdr.xid == -4:
                if hdr.err:
                    self.fail(f"super auth refused: {hdr.err}")
                return
            if self.inflight and self.inflight[0][1] == 16 and hdr.xid == self.inflight[0][0]:
                super().frame(frame)
                if hdr.err == 0:
                    self.world.checker.write_acked(self.session_id, hdr.xid, hdr.zxid, "reconfig")
                job, self.job = self.job, None
                if job is not None:
                    job[3](hdr.err)
                return
        super().frame(frame)


class Reconfigurer:
    """plan: operations to make in order instead of random ones, each once the previous one is
    answered: ("add", [sids]), ("remove", [sids, or "leader"]), ("members", [sids]) (newMembers)."""

    def __init__(self, world, rng, spares: list[int], plan=None):
        self.world = world
        self.rng = rng
        self.plan = list(plan) if plan is not None else None
        self.spares = list(spares)       # servers outside the ensemble, down
        self.admin = SimAdmin(world, 10_000, world.rng.stream("admin"))
        self.busy_since: int | None = None
        self.ops = 0
        self.args = (None, None, None)
        self.attempts = 0
        self.committed_ops = 0

    def start(self) -> None:
        self.admin.start()          # not in world.clients: the client_death fault leaves it alone
        self.world.after(self.rng.randint(300, 1500), self.act)

    def current(self) -> frozenset:
        return self.world.checker.voters

    def act(self) -> None:
        w = self.world
        if w.phase != "safety":
            return
        w.after(self.rng.randint(1000, 3000), self.act)
        if self.busy_since is not None:
            if w.now - self.busy_since < 8000:
                return
            self.admin.job = None        # given up on (it may still commit: we read the outcome later)
            self.busy_since = None
        self._retire_removed()
        voters = self.current()
        r = self.rng
        spares = [s for s in self.spares if not w.nodes[s].up]
        if self.plan is not None:
            self._planned(voters)
            return
        kinds = []
        if spares:
            kinds.append("grow")
        if len(voters) > MIN_VOTERS:
            kinds.append("shrink")
        if spares and len(voters) >= MIN_VOTERS:
            kinds.append("swap")
        if not kinds:
            return
        kind = r.choice(kinds)
        whole = r.random() < 0.3          # the non-incremental form
        joining, leaving = [], []
        if kind in ("grow", "swap"):
            n = min(len(spares), r.choice([1, 1, 2])) if kind == "grow" else 1
            joining = r.sample(spares, n)
            for s in joining:
                self._start_joiner(s, voters)
        if kind in ("shrink", "swap"):
            leaving = [r.choice(sorted(voters))]
        new = (set(voters) | set(joining)) - set(leaving)
        if whole:
            args = (None, None, ",".join(f"server.{s}={spec(s)}" for s in sorted(new)))
        else:
            args = (",".join(f"server.{s}={spec(s)}" for s in joining) or None,
                    ",".join(map(str, leaving)) or None, None)
        self.ops += 1
        self.busy_since = w.now
        w.note(f"reconfig: {kind} {sorted(voters)} -> {sorted(new)}"
               f" ({'newMembers' if whole else 'incremental'})")
        # a joiner needs time to sync before the leader counts it (NEWCONFIGNOQUORUM otherwise)
        self.args = args
        self.attempts = 0
        w.after(r.randint(200, 2500) if joining else 0, self.admin.submit, *args, self._done)

    def _planned(self, voters) -> None:
        if not self.plan:
            return
        w = self.world
        kind, sids = self.plan.pop(0)
        if "leader" in sids:
            lead = [n.sid for n in w.nodes.values() if n.up and n.role == "leading"]
            if not lead:
                self.plan.insert(0, (kind, sids))
                return
            sids = [lead[0] if s == "leader" else s for s in sids]
        joining = [s for s in sids if s not in voters] if kind in ("add", "members") else []
        for s in joining:
            self._start_joiner(s, voters)
        if kind == "add":
            args = (",".join(f"server.{s}={spec(s)}" for s in sids), None, None)
        elif kind == "remove":
            args = (None, ",".join(map(str, sids)), None)
        else:
            args = (None, None, ",".join(f"server.{s}={spec(s)}" for s in sorted(sids)))
        self.ops += 1
        self.busy_since = w.now
        self.args = args
        self.attempts = 0
        w.note(f"reconfig (planned): {kind} {sids}")
        w.after(1500 if joining else 0, self.admin.submit, *args, self._done)

    def _start_joiner(self, sid: int, voters) -> None:
        node = self.world.nodes[sid]
        if node.up:
            return
        node.voters = {s: None for s in voters} | {sid: None}
        node.observers = {}
        self.world.retired.discard(sid)
        if sid in self.spares:
            self.spares.remove(sid)
        node.restart()              # nothing if it is up (a removed server still running)

    def _done(self, err: int) -> None:
        w = self.world
        if err in (-13, -14) and self.attempts < 5 and w.phase == "safety":
            self.attempts += 1           # NEWCONFIGNOQUORUM (a joiner still syncing), RECONFIGINPROGRESS
            w.after(self.rng.randint(300, 1500), self.admin.submit, *self.args, self._done)
            return
        self.busy_since = None
        if err == 0:
            self.committed_ops += 1
        self.world.note(f"reconfig answered {err}")

    def _retire_removed(self) -> None:
        """Stop servers that are up but in no committed configuration any more (removed, or joiners
        whose reconfig never committed): they become spares."""
        w = self.world
        voters = self.current()
        for sid, n in sorted(w.nodes.items()):
            if sid not in voters and sid not in self.spares and sid not in w.retired and \
                    (n.role == "removed" or w.was_voter(sid) or w.now - n.booted_at > 6000):
                w.note(f"retiring server {sid} (not in configuration {sorted(voters)})")
                n.crash()
                w.retired.add(sid)
                self.spares.append(sid)
