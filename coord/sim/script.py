"""Interaction scripts: drive real QuorumPeers step by step and print what they do (etcd-raft style).

A script is a transcript. Lines starting with `> ` are commands; the lines after a command, up to the
next command, are what it printed. `#` lines are commentary and kept as they are. Running a script
replays its commands and compares the whole transcript with the file; `--rewrite` regenerates it.

Nothing happens unless a command says so: messages wait in per-link FIFO queues until delivered or
dropped, disk writes wait in per-server queues until fsynced (a crash loses what is still queued),
and time moves only with `tick` or `stabilize`. The checkers of the simulator (coord.sim.checker) run
all along, so a script that drives the peers into losing a committed txn fails with that message.

Commands
    config KEY VALUE                 a ZabConfig field (history_txns, zxid_counter_limit, ...)
    nodes N [observers M]            an ensemble of voters 1..N (observers after them)
    start [S...] | crash S | restart S [replay]    (replay: the whole log into the tree, as a driver may)
    handoff S                        a planned stop: a leader hands over, then stops (others just stop)
    lead S | follow S L | look S     force a role (election only picks who tries: safety must hold anyway)
    stabilize [MS]                   deliver, fsync and tick freely for MS (default 1000) virtual ms
    deliver A->B [N|all|TYPE] | deliver all | drop A->B [N|all] | fsync S [N|all] | tick MS
                                     (TYPE: deliver up to and including the next message of that type)
    partition S... | heal            cut the listed servers off from the rest (links drop) / undo
    reconfig on | reconfig C add|remove S   enable dynamic reconfig (before start) / C sends one as super
    client C S | create C PATH [DATA] [ephemeral] | set C PATH DATA | get C PATH | close C
    watch C PATH | sync C            getData with a watch (no reply may then pass its event) / sync()
    disconnect C                     the client vanishes; its session must expire
    inject A->B MESSAGE | garbage A->B HEX | flip A->B   a crafted message / raw bytes / a bit flipped
    status | queue | tree S | check  | expect S FIELD VALUE   (FIELD: state tree log current accepted phase settled)
"""
from __future__ import annotations

import re
import struct
import sys
from collections import deque

from coord.core import logformat
from coord.core.config import CoreConfig
from coord.core.server import ServerCore
from coord.core.zab import messages as M
from coord.core.zab.api import ZabConfig
from coord.core.zab.election import Vote
from coord.core.zab.peer import QuorumPeer
from coord.jute import records as R
from coord.jute.codec import decode
from coord.sim.checker import Checker, SimFailure
from coord.sim.disk import SimDisk
from coord.sim.node import RecordingWatches

OPEN_ACL = [R.ACL(31, R.Id("world", "anyone"))]
_LEN = struct.Struct(">i")


def zx(z: int) -> str:
    return f"0x{z:x}"


class ScriptDisk(SimDisk):
    """Writes complete only on `fsync`; a crash loses every one still queued (no torn luck)."""

    def __init__(self):
        import random
        super().__init__(random.Random(0), torn_writes=False)

    def crash(self) -> None:
        self.busy = None
        self.queue.clear()


class ScriptNode:
    def __init__(self, world, sid: int):
        self.world = world
        self.sid = sid
        self.disk = ScriptDisk()
        self.core = None
        self.peer = None
        self.up = False
        self.role = "down"

    def boot(self, replay: bool = False) -> None:
        w = self.world
        tree, ds = self.disk.recover()
        if replay:
            for hdr, txn in ds.log:
                tree.apply(hdr, txn)
            ds.log = []
        cc = CoreConfig(server_id=self.sid, tick_ms=w.zab.tick_ms)
        if w.reconfig:
            from coord.sim.members import SUPER_DIGEST, config_data
            cc.quorum = cc.reconfig_enabled = True
            cc.super_digest = SUPER_DIGEST
            cc.config_data = config_data(w.voters, w.observers)
        core = ServerCore(cc, tree)
        core.watches = tree.watches = RecordingWatches()
        self.core = core
        self.peer = QuorumPeer(self.sid, w.voters, w.observers, core, w.zab)
        self.peer.listener = self
        self.up = True
        self.role = "looking"
        w.checker.node_booted(self, tree, dirty=replay)
        self.peer.start(w.now, w.now, ds)

    # listener
    def applied(self, peer, entry) -> None:
        self.world.checker.applied(self, entry)

    def snapshot_loaded(self, peer, tree) -> None:
        self.world.checker.snapshot_loaded(self, tree)

    def restored(self, peer, tree) -> None:
        self.world.checker.restored(self, tree)

    def established(self, peer, epoch: int) -> None:
        self.world.checker.established(self, epoch)
        self.world.out(f"  {self.sid}: established epoch {epoch}")


class Client:
    def __init__(self, name: str, node: ScriptNode, conn: int):
        self.name = name
        self.node = node
        self.conn = conn
        self.xid = 0
        self.session_id = 0
        self.pending: deque = deque()
        self.buf = b""
        self.connected = False
        self.watches: dict[str, int] = {}      # data watches set: path -> zxid of the reply that set it


class ScriptWorld:
    def __init__(self, zab: ZabConfig | None = None):
        self.zab = zab or ZabConfig(tick_ms=100, init_limit=10, sync_limit=5, election_finalize_ms=30,
                                    election_resend_ms=50, election_resend_max_ms=400, reconnect_ms=20)
        self.now = 0
        self.nodes: dict[int, ScriptNode] = {}
        self.voters: dict[int, None] = {}
        self.reconfig = False
        self.observers: dict[int, None] = {}
        self.links: set[tuple[int, int]] = set()
        self.queues: dict[tuple[int, int], deque] = {}
        self.cut: set[int] = set()
        self.checker = Checker(self)
        self.lines: list[str] = []
        self.quiet = 0
        self.clients: dict[str, Client] = {}
        self.conn_ids = 0

    # -- output -------------------------------------------------------------------------------------
    def out(self, line: str) -> None:
        if not self.quiet:
            self.lines.append(line)

    # -- plumbing -----------------------------------------------------------------------------------
    @staticmethod
    def key(a, b):
        return (a, b) if a < b else (b, a)

    def reachable(self, a: int, b: int) -> bool:
        return (a in self.cut) == (b in self.cut)

    def pump(self, node: ScriptNode, stable_quiet: bool = False) -> None:
        """Perform node's effects; repeat for every node touched until nothing is left."""
        work = deque([node])
        while work:
            n = work.popleft()
            if not n.up:
                continue
            for e in n.peer.drain_effects():
                self._effect(n, e, work, stable_quiet)
            self._client_output(n)

    def _effect(self, n: ScriptNode, e: tuple, work: deque, stable_quiet: bool) -> None:
        kind = e[0]
        sid = n.sid
        if kind == "send":
            to, data = e[1], e[2]
            if self.key(sid, to) in self.links:
                self.queues[(sid, to)].append(data)
                if data[1] in (3, 4, 9):
                    self.checker.message_sent(n, M.decode(data)[1])
            return
        if kind == "connect":
            other = self.nodes.get(e[1])
            k = self.key(sid, e[1])
            if other is not None and other.up and k not in self.links and self.reachable(sid, e[1]):
                self.links.add(k)
                self.queues[(sid, e[1])] = deque()
                self.queues[(e[1], sid)] = deque()
                n.peer.peer_connected(e[1])
                other.peer.peer_connected(sid)
                work.append(n)
                work.append(other)
            return
        if kind == "disconnect":
            self._unlink(sid, e[1], work)
            self.out(f"  {sid}: disconnect {e[1]}")
            return
        if kind == "log":
            text = e[2].split("] ", 1)[-1]
            if e[1] in ("warn", "error") and not stable_quiet:
                self.out(f"  {sid}: {e[1]}: {text}")
            elif text.startswith(("syncing ", "rolled to", "handing off", "stopped: ", "taking over",
                                  "took over", "restore")) or "rolling to epoch" in text or "handed over to" in text:
                self.out(f"  {sid}: {text}")
            return
        if kind == "role":
            n.role = e[1]
            self.out(f"  {sid}: role {e[1]}")
            return
        if kind == "persist_epochs":
            self.checker.epochs_asked(n, e[1], e[2])
            n.disk.enqueue(("epochs", e[1], e[2]))
            if not stable_quiet:
                self.out(f"  {sid}: persist epochs accepted={e[1]} current={e[2]}")
            return
        if kind == "append":
            recs = e[1]
            n.disk.enqueue(("append", recs))
            if not stable_quiet:
                span = zx(recs[0][0].zxid) if len(recs) == 1 else f"{zx(recs[0][0].zxid)}..{zx(recs[-1][0].zxid)}"
                self.out(f"  {sid}: append {span}")
            return
        if kind == "truncate":
            n.disk.enqueue(("truncate", e[1]))
            self.out(f"  {sid}: truncate after {zx(e[1])}")
            return
        if kind == "install_snapshot":
            from coord.core import snapformat
            data = e[1] if e[1] is not None else snapformat.encode_tree(n.core.tree)   # its own tree (a restore)
            n.disk.enqueue(("install", data, e[2]))
            self.out(f"  {sid}: install snapshot at {zx(e[2])}")
            return
        if kind == "restored":
            self.out(f"  {sid}: restore {e[1]} answered: " + (f"error: {e[3]}" if e[3] else f"restored at {zx(e[2])}"))
            return
        if kind == "config":
            self.out(f"  {sid}: configuration {zx(e[3])} active: voters {sorted(e[1])}, observers {sorted(e[2])}")
            return
        raise AssertionError(f"unknown effect {e!r}")

    def _unlink(self, a: int, b: int, work: deque | None = None) -> None:
        k = self.key(a, b)
        if k not in self.links:
            return
        self.links.discard(k)
        self.queues.pop((a, b), None)
        self.queues.pop((b, a), None)
        for x, y in ((a, b), (b, a)):
            node = self.nodes[x]
            if node.up:
                node.peer.peer_disconnected(y)
                if work is not None:
                    work.append(node)
                else:
                    self.pump(node)

    def fsync_one(self, n: ScriptNode, stable_quiet: bool = False) -> bool:
        d = n.disk
        op = d.next_op()
        if op is None:
            return False
        d.complete()
        kind = op[0]
        p = n.peer
        if kind == "append":
            z = op[1][-1][0].zxid
            if not stable_quiet:
                self.out(f"{n.sid}: fsynced log to {zx(z)}")
            p.log_durable(z)
        elif kind == "epochs":
            if not stable_quiet:
                self.out(f"{n.sid}: fsynced epochs accepted={op[1]} current={op[2]}")
            p.epochs_persisted(op[1], op[2])
        elif kind == "truncate":
            self.out(f"{n.sid}: log truncated after {zx(op[1])}")
            p.log_truncated(op[1])
        elif kind == "install":
            self.out(f"{n.sid}: snapshot at {zx(op[2])} installed")
            p.snapshot_installed(op[2])
        self.pump(n, stable_quiet)
        return True

    def deliver_one(self, a: int, b: int, stable_quiet: bool = False) -> bool:
        q = self.queues.get((a, b))
        if not q:
            return False
        data = q.popleft()
        if not stable_quiet:
            res = M.decode(data)
            self.out(f"{a}->{b} {_show(res[1]) if res else 'garbage (' + res.reason + ')'}")
        node = self.nodes[b]
        node.peer.message(a, data)
        self.pump(node, stable_quiet)
        return True

    def tick_all(self, ms: int, stable_quiet: bool = True) -> None:
        end = self.now + ms
        while self.now < end:
            self.now = min(end, self.now + 10)
            for n in self.nodes.values():
                if n.up:
                    n.peer.tick(self.now, self.now)
                    self.pump(n, stable_quiet)

    def stabilize(self, ms: int) -> None:
        end = self.now + ms
        while True:
            busy = True
            while busy:
                busy = False
                for (a, b) in sorted(self.queues):
                    while self.deliver_one(a, b, True):
                        busy = True
                for n in self.nodes.values():
                    while n.up and self.fsync_one(n, True):
                        busy = True
            if self.now >= end:
                return
            self.tick_all(10)

    def _client_output(self, n: ScriptNode) -> None:
        out, closing = n.core.drain()
        for cid, chunks in out.items():
            for c in self.clients.values():
                if c.conn == cid and c.node is n:
                    self._client_frames(c, b"".join(chunks))
        for cid in closing:
            n.core.connection_lost(cid)
            for c in self.clients.values():
                if c.conn == cid and c.node is n and c.connected is not None:
                    c.connected = None
                    self.out(f"  {c.name}: connection closed by {n.sid}")

    def _client_frames(self, c: Client, data: bytes) -> None:
        buf = c.buf + data
        p = 0
        while len(buf) - p >= 4:
            ln = _LEN.unpack_from(buf, p)[0]
            if len(buf) - p - 4 < ln:
                break
            frame = buf[p + 4:p + 4 + ln]
            p += 4 + ln
            if not c.connected:
                resp = decode(R.ConnectResponse, frame)[0]
                c.session_id = resp.sessionId
                c.connected = True
                self.out(f"  {c.name}: session {zx(resp.sessionId)} established on {c.node.sid}")
                continue
            hdr, q = decode(R.ReplyHeader, frame)
            if hdr.xid == -4:
                self.out(f"  {c.name}: auth err={hdr.err}")
                continue
            if hdr.xid == -1:
                ev = decode(R.WatcherEvent, frame, q)[0]
                c.watches.pop(ev.path, None)
                self.out(f"  {c.name}: event {ev.type} {ev.path}")
                continue
            what = c.pending.popleft() if c.pending else "?"
            # As the simulator's clients check: no reply may reflect a change before its watch event.
            for path, reg in c.watches.items():
                z = self.checker.first_change(path, reg, False)
                if z is not None and z <= hdr.zxid:
                    raise SimFailure(f"{c.name}: reply to {what} at {zx(hdr.zxid)} before the watch event "
                                     f"on {path} for {zx(z)}")
            if what.startswith("get+watch ") and hdr.err == 0:
                c.watches.setdefault(what.split(" ", 1)[1], hdr.zxid)
            if hdr.err == 0 and what.startswith("write"):
                self.checker.write_acked(c.session_id, hdr.xid, hdr.zxid, what)
            extra = ""
            if what.startswith("get") and hdr.err == 0:
                n = struct.unpack_from(">i", frame, q)[0]
                extra = f" data={bytes(frame[q + 4:q + 4 + max(n, 0)])!r}"
            self.out(f"  {c.name}: reply to {what}: err={hdr.err} zxid={zx(hdr.zxid)}{extra}")
        c.buf = buf[p:]

    def client_send(self, c: Client, op: int, body: bytes, what: str) -> None:
        c.xid += 1
        c.pending.append(what)
        n = c.node
        n.core.set_time(self.now, self.now)
        n.core.frame(c.conn, R.RequestHeader(c.xid, op).encode() + body)
        self.pump(n)

    # -- commands -----------------------------------------------------------------------------------
    def run(self, cmd: str) -> None:
        words = cmd.split()
        op, args = words[0], words[1:]
        fn = getattr(self, "cmd_" + op, None)
        if fn is None:
            raise ValueError(f"unknown command {op!r}")
        fn(*args)

    def cmd_config(self, key, value):
        """Set a ZabConfig field (before start)."""
        setattr(self.zab, key, int(value, 0))

    def cmd_reconfig(self, *args):
        """`reconfig on` (before start): members may reconfigure; `reconfig C add|remove S`: client C,
        as super, sends an incremental reconfig."""
        if args == ("on",):
            self.reconfig = True
            return
        from coord.sim.members import SUPER, spec
        name, kind, sid = args
        c = self.clients[name]
        n = c.node
        n.core.frame(c.conn, R.RequestHeader(-4, 100).encode() + R.AuthPacket(0, "digest", SUPER.encode()).encode())
        joining = f"server.{sid}={spec(int(sid))}" if kind == "add" else None
        leaving = sid if kind == "remove" else None
        self.client_send(c, 16, R.ReconfigRequest(joining, leaving, None, -1).encode(), f"write reconfig {kind} {sid}")

    def cmd_nodes(self, n, *rest):
        n = int(n)
        obs = int(rest[1]) if rest and rest[0] == "observers" else 0
        self.voters = {s: None for s in range(1, n + 1)}
        self.observers = {s: None for s in range(n + 1, n + obs + 1)}
        for s in range(1, n + obs + 1):
            self.nodes[s] = ScriptNode(self, s)

    def cmd_start(self, *sids):
        for s in (map(int, sids) if sids else sorted(self.nodes)):
            self.nodes[s].boot()
            self.pump(self.nodes[s], True)

    def cmd_crash(self, s):
        n = self.nodes[int(s)]
        n.disk.crash()
        n.up = False
        n.role = "down"
        for k in [k for k in self.links if n.sid in k]:
            other = k[0] if k[1] == n.sid else k[1]
            self.links.discard(k)
            self.queues.pop((n.sid, other), None)
            self.queues.pop((other, n.sid), None)
            o = self.nodes[other]
            if o.up:
                o.peer.peer_disconnected(n.sid)
                self.pump(o)
        for c in self.clients.values():
            if c.node is n:
                c.connected = None
        self.out(f"{n.sid}: crashed")

    def cmd_restart(self, s, *mode):
        n = self.nodes[int(s)]
        n.boot(replay=bool(mode and mode[0] == "replay"))
        p = n.peer
        self.out(f"{n.sid}: restarted: epochs accepted={p.accepted_epoch} current={p.current_epoch}, "
                 f"tree {zx(n.core.tree.last_zxid)}, log to {zx(p.last_zxid)}")
        self.pump(n, True)

    def _force(self, s: int, leader: int) -> None:
        n = self.nodes[s]
        p = n.peer
        p.election.stop()
        lp = self.nodes[leader].peer
        vote = lp.vote if leader != s and lp is not None and lp.vote is not None and lp.vote.leader == leader \
            else Vote(leader, p.last_zxid, p.peer_epoch)
        p.settle(leader, vote)       # a follower takes its leader's vote, as an election would give it
        p.closing.pop(leader, None)          # a script does not wait out the reconnect back-off
        p.last_connect.pop(leader, None)
        p._want_links()
        self.pump(n)

    def cmd_snapshot(self, s):
        """Keep node s's tree as snapshot bytes, for `restore` (the AdminServer's `snapshot`)."""
        from coord.core import snapformat
        self.saved_snapshot = snapformat.encode_tree(self.nodes[int(s)].core.tree)
        self.out(f"{s}: snapshot of its tree at {zx(self.nodes[int(s)].core.tree.last_zxid)} kept")

    def cmd_restore(self, s):
        """The AdminServer's `restore` of the kept snapshot, POSTed to node s."""
        from coord.core import snapformat
        n = self.nodes[int(s)]
        tree, _ = snapformat.load_bytes(self.saved_snapshot)
        self.restore_ids = getattr(self, "restore_ids", 0) + 1
        why = n.peer.restore(self.saved_snapshot, tree, self.restore_ids)
        self.out(f"  {s}: restore {self.restore_ids} " + (f"refused: {why}" if why else "under way"))
        self.pump(n)

    def cmd_handoff(self, s):
        n = self.nodes[int(s)]
        n.peer.handoff()
        self.pump(n)

    def cmd_lead(self, s):
        self._force(int(s), int(s))

    def cmd_follow(self, s, leader):
        self._force(int(s), int(leader))

    def cmd_look(self, s):
        n = self.nodes[int(s)]
        n.peer.become_looking("told to")
        self.pump(n, True)

    def cmd_stabilize(self, ms="1000"):
        self.stabilize(int(ms))

    def _pair(self, spec: str) -> tuple[int, int]:
        a, b = spec.split("->")
        return int(a), int(b)

    def _count(self, rest) -> int:
        if not rest:
            return 1
        return 1 << 30 if rest[0] == "all" else int(rest[0])

    def cmd_deliver(self, spec, *rest):
        if spec == "all":
            busy = True
            while busy:
                busy = False
                for (a, b) in sorted(self.queues):
                    if self.deliver_one(a, b):
                        busy = True
            return
        a, b = self._pair(spec)
        if rest and rest[0].isalpha() and rest[0] != "all":
            want = rest[0].upper()          # everything up to and including the next message of that type
            q = self.queues.get((a, b), deque())
            while q:
                res = M.decode(q[0])
                self.deliver_one(a, b)
                if res and M.name_of(res[1]) == want:
                    return
            self.out(f"(no {want} on {a}->{b})")
            return
        for _ in range(self._count(rest)):
            if not self.deliver_one(a, b):
                break

    def cmd_drop(self, spec, *rest):
        a, b = self._pair(spec)
        q = self.queues.get((a, b), deque())
        for _ in range(self._count(rest)):
            if not q:
                break
            res = M.decode(q.popleft())
            self.out(f"{a}->{b} dropped {_show(res[1]) if res else 'garbage'}")

    def cmd_fsync(self, s, *rest):
        n = self.nodes[int(s)]
        for _ in range(self._count(rest)):
            if not self.fsync_one(n):
                break

    def cmd_tick(self, ms):
        self.tick_all(int(ms), stable_quiet=False)

    def cmd_partition(self, *sids):
        self.cut = {int(s) for s in sids}
        for k in sorted(self.links):
            if not self.reachable(*k):
                self._unlink(*k)

    def cmd_heal(self):
        self.cut = set()

    def cmd_client(self, name, s):
        n = self.nodes[int(s)]
        self.conn_ids += 1
        c = Client(name, n, self.conn_ids)
        self.clients[name] = c
        n.core.connection_made(c.conn, f"10.0.0.1:{40000 + c.conn}")
        n.core.set_time(self.now, self.now)
        n.core.frame(c.conn, R.ConnectRequest(0, 0, 4000, 0, b"\0" * 16).encode())
        self.pump(n)

    def cmd_create(self, name, path, data="", *flags):
        c = self.clients[name]
        f = 1 if "ephemeral" in flags else 0
        self.client_send(c, 1, R.CreateRequest(path, data.encode(), OPEN_ACL, f).encode(), f"write create {path}")

    def cmd_set(self, name, path, data):
        c = self.clients[name]
        self.client_send(c, 5, R.SetDataRequest(path, data.encode(), -1).encode(), f"write set {path}")

    def cmd_get(self, name, path):
        c = self.clients[name]
        self.client_send(c, 4, R.GetDataRequest(path, False).encode(), f"get {path}")

    def cmd_watch(self, name, path):
        """getData with a watch."""
        c = self.clients[name]
        self.client_send(c, 4, R.GetDataRequest(path, True).encode(), f"get+watch {path}")

    def cmd_sync(self, name):
        c = self.clients[name]
        self.client_send(c, 9, R.SyncRequest("/").encode(), "sync")

    def cmd_disconnect(self, name):
        """The client goes away without closing its session (which must then expire)."""
        c = self.clients[name]
        if c.connected and c.node.up:
            c.node.core.connection_lost(c.conn)
        c.connected = None
        self.out(f"  {c.name}: gone (session {zx(c.session_id)} left to expire)")

    def cmd_close(self, name):
        c = self.clients[name]
        self.client_send(c, -11, b"", "write close")

    def cmd_inject(self, spec, *text):
        a, b = self._pair(spec)
        ns = {c.__name__.upper(): c for c in M.TYPES.values()}
        ns.update({"Entry": M.Entry, "R": R})
        msg = eval(" ".join(text), ns)  # noqa: S307 - scripts are ours
        node = self.nodes[b]
        self.out(f"{a}->{b} (injected) {_show(msg)}")
        link = node.peer.links[a]
        seq = link.recv_seq
        node.peer.message(a, M.encode(msg, seq))
        if node.peer.links.get(a) is link:
            link.recv_seq = seq         # the real stream on the link carries on as if it were not there
        self.pump(node)

    def cmd_flip(self, spec):
        """Flip one bit in the last byte of the next message queued on the link."""
        a, b = self._pair(spec)
        q = self.queues[(a, b)]
        d = bytearray(q[0])
        d[-1] ^= 0x10
        q[0] = bytes(d)
        self.out(f"{a}->{b}: flipped a bit of the next message")

    def cmd_garbage(self, spec, hexdata):
        a, b = self._pair(spec)
        node = self.nodes[b]
        data = bytes.fromhex(hexdata)
        res = M.decode(data)
        self.out(f"{a}->{b} (injected) {len(data)} bytes: {'a message' if res else res.reason}")
        node.peer.message(a, data)
        self.pump(node)

    def cmd_status(self):
        for s, n in sorted(self.nodes.items()):
            if not n.up:
                self.out(f"{s}: down  (disk: epochs {n.disk.epochs}, log to {zx(_disk_last(n.disk))})")
                continue
            p = n.peer
            phase = getattr(p.role, "phase", "-")
            self.out(f"{s}: {p.state:<9} phase={phase:<13} accepted={p.accepted_epoch} current={p.current_epoch} "
                     f"log={zx(p.last_zxid)} durable={zx(min(p.durable_zxid, p.last_zxid))} "
                     f"tree={zx(n.core.tree.last_zxid)} digest={n.core.tree.digest:016x}")

    def cmd_queue(self):
        for (a, b), q in sorted(self.queues.items()):
            if q:
                names = []
                for d in q:
                    r = M.decode(d)
                    names.append(M.name_of(r[1]) if r else "GARBAGE")
                self.out(f"{a}->{b}: {' '.join(names)}")
        for s, n in sorted(self.nodes.items()):
            if n.up and n.disk.queue:
                self.out(f"{s} disk: {' '.join(op[0] for op in n.disk.queue)}")

    def cmd_tree(self, s):
        n = self.nodes[int(s)]
        for path in sorted(n.core.tree.nodes):
            if path == "/" or path.startswith("/zookeeper"):
                continue
            node = n.core.tree.nodes[path]
            owner = f" ephemeral of {zx(node.owner)}" if node.owner else ""
            self.out(f"  {path} = {node.data!r} mzxid={zx(node.mzxid)}{owner}")

    def cmd_expect(self, s, field, value):
        n = self.nodes[int(s)]
        got = {
            "state": lambda: n.peer.state, "tree": lambda: zx(n.core.tree.last_zxid),
            "log": lambda: zx(n.peer.last_zxid), "current": lambda: str(n.peer.current_epoch),
            "accepted": lambda: str(n.peer.accepted_epoch), "phase": lambda: getattr(n.peer.role, "phase", "-"),
            "settled": lambda: "yes" if n.peer.settled() else "no",
        }[field]()
        if got != value:
            raise SimFailure(f"expected {s} {field} = {value}, got {got}")
        self.out(f"ok: {s} {field} = {value}")

    def cmd_check(self):
        live = [n for n in self.nodes.values() if n.up]
        at = {}
        for n in live:
            at.setdefault((n.core.tree.last_zxid, n.core.tree.digest), []).append(n.sid)
        self.out(f"ok: committed sequence ends at {zx(self.checker.tail)}; {self.checker.acked} acked writes; "
                 f"epochs established: {dict(sorted(self.checker.leaders.items()))}")
        for (z, d), sids in sorted(at.items()):
            self.out(f"  {sids} at {zx(z)} digest {d:016x}")


def _disk_last(d: SimDisk) -> int:
    last = 0
    for hdr, _t, _p in logformat.iter_records(d.log):
        last = hdr.zxid
    return last


def _show(msg) -> str:
    return repr(msg) if msg is not None else "?"


def run_script(text: str) -> str:
    """Replay a transcript; return the transcript as it comes out now."""
    world = ScriptWorld()
    out: list[str] = []
    for line in text.splitlines():
        if line.startswith("> "):
            out.append(line)
            world.lines = []
            try:
                world.run(line[2:].strip())
            except SimFailure as e:
                world.lines.append(f"FAILED: {e}")
            out.extend(world.lines)
        elif line.startswith("#") or not line.strip():
            out.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n") + "\n"


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m coord.sim.script")
    ap.add_argument("files", nargs="+")
    ap.add_argument("--rewrite", action="store_true")
    a = ap.parse_args(argv)
    bad = 0
    for f in a.files:
        with open(f) as fh:
            text = fh.read()
        got = run_script(text)
        if got != text:
            if a.rewrite:
                with open(f, "w") as fh:
                    fh.write(got)
                print(f"rewrote {f}")
            else:
                bad += 1
                import difflib
                sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), got.splitlines(True), f, "now"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
