"""Differential tests: the same seeded random operation sequences against real ZooKeeper 3.8 and coord.

A seed makes one script of steps (op, session slot, arguments) before either server is touched; the
script runs against real ZooKeeper, then against coord, each from a fresh subtree and fresh sessions.
Slot 0 is a kazoo client (the ops kazoo exposes), the other slots are raw jute clients
(tests/compat/rawclient.py) that also send what kazoo cannot: TTL and container creates, addWatch,
removeWatches/checkWatches, multiRead, getEphemerals, getAllChildrenNumber, whoAmI, setWatches on a
resumed session, pipelined bursts, bad auth, closeSession.

After every step each session is drained through a round trip (a ping, or for kazoo a read plus a
marker on its callback queue), so the watch events a step caused are attributed to it. Observed:
results, error codes, reply-header zxids, every Stat field, ACLs, children (as sets), events per
session. zxids are compared by rank among all zxids a run observed (equal values stay equal, order
is kept); times are checked within each run (one time per zxid, never decreasing as zxids grow,
plausible wall clock); session ids are named by slot and generation.

Default run: the seeds in SEEDS. More: COMPAT_DIFF_SEEDS=100 (that many extra seeds, from
COMPAT_DIFF_BASE, default 1000) or COMPAT_DIFF_SEED=1234 (just that one); COMPAT_DIFF_STEPS sets
steps per seed.
"""
from __future__ import annotations

import os
import random
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.protocol.states import Callback
from kazoo.security import ACL as KACL
from kazoo.security import Id as KId

from coord.core.acl import digest_id
from coord.jute import records as R
from coord.jute.protocol import OpCode
from tests.compat.conftest import SUPER_CRED, start_pair
from tests.compat.rawclient import OPEN_ACL, READ_ACL, ConnectionClosed, RawClient
from tests.support.names import fresh

pytestmark = pytest.mark.realzk

SEEDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
STEPS = int(os.environ.get("COMPAT_DIFF_STEPS", "250"))
N_SLOTS = 4          # slot 0 kazoo, 1..3 raw
SESSION_TIMEOUT_MS = 30000


def _seeds() -> list[int]:
    if os.environ.get("COMPAT_DIFF_SEED"):
        return [int(os.environ["COMPAT_DIFF_SEED"])]
    # extra seeds must be the same in every xdist worker: COMPAT_DIFF_BASE picks where they start
    extra = int(os.environ.get("COMPAT_DIFF_SEEDS", "0"))
    base = int(os.environ.get("COMPAT_DIFF_BASE", "1000"))
    return SEEDS + [base + i for i in range(extra)]


# -- ACLs and identities -----------------------------------------------------------------------------
def _acl(perms, scheme, ident):
    return R.ACL(perms, R.Id(scheme, ident))


U1 = digest_id("u1:p1")
U2 = digest_id("u2:p2")
ACLS = {
    "open": OPEN_ACL,
    "read": READ_ACL,
    "u1all": [_acl(31, "digest", U1)],
    "u1ra+wr": [_acl(17, "digest", U1), _acl(1, "world", "anyone")],
    "u2cd+wr": [_acl(12, "digest", U2), _acl(3, "world", "anyone")],
    "creator": [_acl(31, "auth", "")],
    "creator+wr": [_acl(31, "auth", ""), _acl(1, "world", "anyone")],
    "ip": [_acl(31, "ip", "127.0.0.1")],
    "ipnet+wr": [_acl(6, "ip", "127.0.0.0/8"), _acl(1, "world", "anyone")],
    "badip": [_acl(31, "ip", "300.1.1.1")],
    "badscheme": [_acl(31, "foo", "bar")],
    "empty": [],
    "digest-nocolon": [_acl(31, "digest", "u1")],
    "digest-trailing": [_acl(31, "digest", "u1:")],
    "digest-3parts": [_acl(31, "digest", "a:b:c")],
    "perms0": [_acl(0, "world", "anyone")],
    "dup": [OPEN_ACL[0], OPEN_ACL[0]],
    "world-someone": [_acl(31, "world", "someone")],
}
ACL_WEIGHTS = {"open": 40, "read": 3, "u1all": 3, "u1ra+wr": 3, "u2cd+wr": 3, "creator": 3, "creator+wr": 2,
               "ip": 2, "ipnet+wr": 2, "badip": 1, "badscheme": 1, "empty": 1, "digest-nocolon": 1,
               "digest-trailing": 1, "digest-3parts": 1, "perms0": 1, "dup": 1, "world-someone": 1}
AUTHS = [("digest", b"u1:p1"), ("digest", b"u2:p2"), ("digest", SUPER_CRED.encode()),
         ("digest", b"nocolon"), ("ip", b"127.0.0.1"), ("foo", b"x"), ("world", b"anyone")]
KAZOO_AUTHS = [("digest", "u1:p1"), ("digest", "u2:p2")]


def _kacl(acl):
    return [KACL(a.perms, KId(a.id.scheme, a.id.id)) for a in acl]


# -- the script -------------------------------------------------------------------------------------
class Script:
    """Steps made from one seed, independent of any server's answers."""

    def __init__(self, seed: int, root: str, steps: int):
        self.rng = random.Random(seed)
        self.root = root
        r = root
        base = ["", "/a", "/b", "/c", "/a/a", "/a/b", "/b/a", "/a/b/c", "/a/a/a", "/c/a", "/b/a/b"]
        seq = [f"/s{n:010d}" for n in range(8)] + [f"/a/q{n:010d}" for n in range(4)]
        self.paths = [r + p for p in base + seq]
        self.bad_paths = [r + "/a/", r + "//a", "rel", r + "/a/./b", r + "/../a", "", r + "/a\u0001"]
        self.steps = [self.step() for _ in range(steps)]

    def path(self, valid_only=False):
        rng = self.rng
        if not valid_only and rng.random() < 0.03:
            return rng.choice(self.bad_paths)
        return rng.choice(self.paths)

    def create_path(self, valid_only=False):
        rng = self.rng
        if rng.random() < 0.25:
            return rng.choice([self.root + "/s", self.root + "/a/q", self.root + "/a/"])
        return self.path(valid_only)

    def data(self, kazoo=False):
        rng = self.rng
        x = rng.random()
        if x < 0.1:
            return b"" if kazoo else None
        if x < 0.2:
            return b""
        if x < 0.97:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20)))
        return bytes(rng.randrange(256) for _ in range(3000))

    def acl_name(self, kazoo=False):
        names = list(ACL_WEIGHTS)
        weights = [ACL_WEIGHTS[n] for n in names]
        while True:
            n = self.rng.choices(names, weights)[0]
            if not (kazoo and n == "empty"):
                return n

    def version(self):
        return self.rng.choice([-1, -1, -1, 0, 0, 1, 2, 5])

    def write_op(self, kazoo):
        """An op usable inside multi (and on its own)."""
        rng = self.rng
        kind = rng.choices(["create", "createTTL", "delete", "setData", "check"], [5, 0 if kazoo else 1, 3, 3, 2])[0]
        # Inside multi, ZooKeeper 3.8.0 (the reference here) and 3.8.4 read create modes differently
        # (TTL modes on create, flags outside 0..6, create2/createContainer op types); the script keeps
        # to what both agree on and test_multi_create_modes pins coord to 3.8.4.
        if kind == "create":
            flags = rng.choice([0, 0, 1, 2, 3]) if kazoo else rng.choice([0, 0, 1, 2, 3, 4])
            return ("create", self.create_path(kazoo), self.data(kazoo), self.acl_name(kazoo), flags)
        if kind == "createTTL":
            return ("createTTL", self.create_path(), self.data(), self.acl_name(), rng.choice([5, 6]),
                    rng.choice([1000, 60000, 0, -1, 1 << 41]))
        if kind == "delete":
            return ("delete", self.path(kazoo), self.version())
        if kind == "setData":
            return ("setData", self.path(kazoo), self.data(kazoo), self.version())
        return ("check", self.path(kazoo), self.version())

    def step(self):
        rng = self.rng
        slot = rng.randrange(N_SLOTS)
        kazoo = slot == 0
        table = {
            "create": 18, "create2": 4, "delete": 10, "setData": 10, "exists": 8, "getData": 8,
            "getChildren": 5, "getChildren2": 4, "getACL": 3, "setACL": 4, "multi": 8, "sync": 1,
        }
        if kazoo:
            table.update({"auth": 1, "close": 0.3})
        else:
            table.update({"createContainer": 3, "createTTL": 3, "multiRead": 3, "getEphemerals": 2,
                          "getAllChildrenNumber": 2, "addWatch": 3, "removeWatches": 2,
                          "checkWatches": 2, "auth": 2, "close": 0.7, "reconnect": 2, "whoami": 1,
                          "pipeline": 3})
        names = list(table)
        op = rng.choices(names, [table[n] for n in names])[0]
        watch = rng.random() < 0.5
        if op in ("create", "create2"):
            flags = rng.choice([0, 0, 0, 1, 1, 2, 3]) if kazoo else rng.choice([0, 0, 0, 1, 1, 2, 3, 4, 5, -1])
            return (op, slot, self.create_path(kazoo), self.data(kazoo), self.acl_name(kazoo), flags)
        if op == "createContainer":
            return (op, slot, self.create_path(), self.data(), self.acl_name(), rng.choice([4, 4, 4, 0, 1, 2, 5]))
        if op == "createTTL":
            # (createTTL with a non-TTL mode crashes ZooKeeper 3.8: test_createttl_non_ttl_mode covers coord)
            flags = rng.choice([5, 5, 6])
            ttl = rng.choice([1000, 60000, 0, -1, 1 << 41])
            return (op, slot, self.create_path(), self.data(), self.acl_name(), flags, ttl)
        if op == "delete":
            return (op, slot, self.path(kazoo), self.version())
        if op == "setData":
            return (op, slot, self.path(kazoo), self.data(kazoo), self.version())
        if op in ("exists", "getData", "getChildren", "getChildren2"):
            return (op, slot, self.path(kazoo), watch)
        if op == "getACL":
            return (op, slot, self.path(kazoo))
        if op == "setACL":
            return (op, slot, self.path(kazoo), self.acl_name(kazoo), self.version())
        if op == "multi":
            return (op, slot, [self.write_op(kazoo) for _ in range(rng.randrange(0 if not kazoo else 1, 5))])
        if op == "multiRead":
            ops = [(rng.choice(["getData", "getChildren"]), self.path()) for _ in range(rng.randrange(1, 4))]
            return (op, slot, ops)
        if op == "sync":
            return (op, slot, self.path(kazoo))
        if op == "getEphemerals":
            return (op, slot, rng.choice(["/", "", self.root, self.root + "/a", self.root + "/s", "/nope"]))
        if op == "getAllChildrenNumber":
            return (op, slot, self.path())
        if op == "addWatch":
            return (op, slot, self.path(), rng.choice([0, 1, 1, 2]))
        if op in ("removeWatches", "checkWatches"):
            return (op, slot, self.path(), rng.choice([1, 2, 3, 3, 4]))
        if op == "auth":
            if kazoo:
                return (op, slot, rng.choice(KAZOO_AUTHS))
            return (op, slot, rng.choices(AUTHS, [5, 5, 2, 1, 1, 1, 1])[0])
        if op == "close":
            return (op, slot)
        if op == "reconnect":
            k = rng.randrange
            picks = lambda: sorted({self.path(True) for _ in range(k(0, 4))})  # noqa: E731
            return (op, slot, rng.choice(["last", "zero"]), picks(), picks(), picks(),
                    rng.random() < 0.5, picks(), picks())
        if op == "whoami":
            return (op, slot)
        if op == "pipeline":
            burst = []
            for _ in range(rng.randrange(2, 6)):
                kind = rng.choice(["create", "setData", "getData", "exists", "delete"])
                if kind == "create":
                    burst.append(("create", self.create_path(), self.data(), "open", rng.choice([0, 1, 2])))
                elif kind == "setData":
                    burst.append(("setData", self.path(), self.data(), -1))
                elif kind == "delete":
                    burst.append(("delete", self.path(), -1))
                else:
                    burst.append((kind, self.path(), rng.random() < 0.5))
            return (op, slot, burst)
        raise AssertionError(op)


# -- recording ------------------------------------------------------------------------------------------
class Z:
    """A zxid, compared by rank among the zxids of one run."""
    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v


class Recorder:
    def __init__(self):
        self.zxids: set[int] = set()
        self.times: list[tuple[int, int, str]] = []
        self.owners: dict[int, str] = {}

    def z(self, v):
        self.zxids.add(v)
        return Z(v)

    def stat(self, st, where=""):
        if st is None:
            return None
        self.times.append((st.czxid, st.ctime, where + " ctime"))
        self.times.append((st.mzxid, st.mtime, where + " mtime"))
        owner = self.owners.get(st.ephemeralOwner, st.ephemeralOwner)
        return ("stat", self.z(st.czxid), self.z(st.mzxid), "T", "T", st.version, st.cversion,
                st.aversion, owner, st.dataLength, st.numChildren, self.z(st.pzxid))

    def finish(self, obs):
        """The observations, zxids still as Z; and a renderer that names them by rank."""
        rank = {v: i for i, v in enumerate(sorted(self.zxids))}

        def norm(x):
            if isinstance(x, Z):
                return f"z{rank[x.v]}"
            if isinstance(x, tuple):
                return tuple(norm(i) for i in x)
            if isinstance(x, list):
                return [norm(i) for i in x]
            if isinstance(x, dict):
                return {k: norm(v) for k, v in x.items()}
            return x
        return obs, norm

    def time_problems(self, t0_ms, t1_ms):
        problems = []
        by_zxid: dict[int, int] = {}
        for z, t, where in self.times:
            if z == 0:
                continue
            if by_zxid.setdefault(z, t) != t:
                problems.append(f"zxid 0x{z:x} has times {by_zxid[z]} and {t} ({where})")
            if not t0_ms - 600_000 <= t <= t1_ms + 10_000:
                problems.append(f"time {t} of zxid 0x{z:x} is not a plausible wall clock ({where})")
        last = None
        for z in sorted(by_zxid):
            t = by_zxid[z]
            if last is not None and t < last[1]:
                problems.append(f"zxid 0x{z:x} has time {t} before zxid 0x{last[0]:x}'s {last[1]}")
            last = (z, t)
        return problems


# -- sessions ---------------------------------------------------------------------------------------
class RawSlot:
    kind = "raw"

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.client = RawClient(host, port, timeout_ms=SESSION_TIMEOUT_MS).start()

    def new_session(self):
        try:
            self.client.stop()
        except Exception:
            pass
        self.client = RawClient(self.host, self.port, timeout_ms=SESSION_TIMEOUT_MS).start()

    def resume(self):
        """A new connection for the same session (id + password), as a client does after a drop."""
        old = self.client
        old.close_socket()
        c = RawClient(self.host, self.port, timeout_ms=SESSION_TIMEOUT_MS, session_id=old.session_id,
                      passwd=old.passwd, last_zxid=old.last_zxid)
        resp = c.connect()
        self.client = c
        return resp

    def drain(self):
        return [(e.type, e.state, e.path) for e in self.client.drain_events()]

    @property
    def session_id(self):
        return self.client.session_id

    def stop(self):
        self.client.stop()


class KazooSlot:
    kind = "kazoo"

    def __init__(self, host, port):
        self.hosts = f"{host}:{port}"
        self.events = []
        self.lock = threading.Lock()
        self.zk = None
        self.new_session()

    def new_session(self):
        if self.zk is not None:
            self.zk.stop()
            self.zk.close()
        # kazoo fires its own NONE events at a stopping client's watchers, from its callback thread,
        # at a time of its choosing: only the current client's events are the server's doing
        self.gen = getattr(self, "gen", -1) + 1
        gen = self.gen

        def watcher(ev):
            with self.lock:
                if gen == self.gen:
                    self.events.append((ev.type, ev.state, ev.path))
        self.watcher = watcher
        self.zk = KazooClient(hosts=self.hosts, timeout=SESSION_TIMEOUT_MS / 1000)
        self.zk.start(timeout=15)

    def drain(self):
        self.zk.exists("/")
        done = threading.Event()
        self.zk.handler.dispatch_callback(Callback("watch", done.set, ()))
        assert done.wait(10), "kazoo callback queue stuck"
        with self.lock:
            ev, self.events = self.events, []
        return ev

    @property
    def session_id(self):
        return self.zk.client_id[0]

    def stop(self):
        self.zk.stop()
        self.zk.close()


# -- execution ----------------------------------------------------------------------------------------
def _flags_op(op_name, flags):
    return {"create": OpCode.create, "create2": OpCode.create2, "createContainer": OpCode.createContainer,
            "createTTL": OpCode.createTTL}[op_name]


class Runner:
    def __init__(self, name, host, port, root):
        self.name, self.host, self.port, self.root = name, host, port, root
        self.rec = Recorder()
        self.adjusted = 0
        self.obs = []
        self.gen = [0] * N_SLOTS
        self.slots = []
        for i in range(N_SLOTS):
            self.slots.append(KazooSlot(host, port) if i == 0 else RawSlot(host, port))
            self._name_session(i)

    def _name_session(self, i):
        self.rec.owners[self.slots[i].session_id] = f"S{i}g{self.gen[i]}"

    def run(self, script):
        t0 = int(time.time() * 1000)
        setup = self.slots[1].client
        r = setup.create(self.root, b"root")
        assert r.err == 0, f"{self.name}: cannot create {self.root}: {r.err}"
        for n, step in enumerate(script.steps):
            try:
                res = self.execute(step)
            except ConnectionClosed:
                res = ("connection closed",)
                self._recover(step[1])
            events = {}
            pinged = {}
            for i, s in enumerate(self.slots):  # one round trip per session, all in flight at once
                if s.kind == "raw":
                    try:
                        pinged[i] = s.client.submit(11, b"", -2)
                    except OSError:
                        pass
            for i, s in enumerate(self.slots):
                try:
                    if s.kind == "raw":
                        if i not in pinged:
                            raise ConnectionClosed()
                        s.client.wait(pinged[i])
                        ev = [(e.type, e.state, e.path) for e in s.client.events]
                        s.client.events = []
                    else:
                        ev = s.drain()
                except (ConnectionClosed, OSError):
                    ev = ["connection closed"]
                    self._recover(i)
                if ev:
                    events[i] = ev
            self.obs.append((n, step, res, events))
        for s in self.slots:
            try:
                s.stop()
            except Exception:
                pass
        t1 = int(time.time() * 1000)
        return self.rec.finish(self.obs), self.rec.time_problems(t0, t1)

    def _recover(self, i):
        s = self.slots[i]
        if s.kind == "raw":
            resp = s.resume()
            if resp.timeOut <= 0:
                s.new_session()
                self.gen[i] += 1
                self._name_session(i)

    # -- result normalisation -------------------------------------------------------------------
    def raw(self, r, kind=None):
        rec = self.rec
        hz = rec.z(r.zxid)
        if r.err:
            return ("err", r.err, hz)
        v = r.value
        if kind == "path":
            return ("ok", hz, v.path)
        if kind == "path+stat":
            return ("ok", hz, v.path, rec.stat(v.stat, v.path))
        if kind == "stat":
            return ("ok", hz, rec.stat(v))
        if kind == "data":
            return ("ok", hz, v.data, rec.stat(v.stat))
        if kind == "children":
            return ("ok", hz, sorted(v.children))
        if kind == "children2":
            return ("ok", hz, sorted(v.children), rec.stat(v.stat))
        if kind == "acl":
            return ("ok", hz, [(a.perms, a.id.scheme, a.id.id) for a in v.acl], rec.stat(v.stat))
        if kind == "sync":
            return ("ok", hz, v.path)
        if kind == "ephemerals":
            return ("ok", hz, sorted(v.ephemerals))
        if kind == "count":
            return ("ok", hz, v.totalNumber)
        if kind == "whoami":
            return ("ok", hz, [(c.authScheme, c.user) for c in v.clientInfo])
        if kind == "multi":
            out = []
            for t, err, val in v:
                if t == -1:
                    out.append(("err", err))
                elif t == 1:
                    out.append((t, val.path))
                elif t in (15, 19, 21):
                    out.append((t, val.path, rec.stat(val.stat)))
                elif t == 5:
                    out.append((t, rec.stat(val)))
                elif t == 4:
                    out.append((t, val.data, rec.stat(val.stat)))
                elif t == 8:
                    out.append((t, sorted(val.children)))
                else:
                    out.append((t,))
            return ("ok", hz, out)
        return ("ok", hz, r.body)

    def kz(self, fn, *args, **kw):
        try:
            return ("ok", fn(*args, **kw))
        except Exception as e:  # kazoo raises one class per error code
            return ("err", getattr(e, "code", None), type(e).__name__)

    def execute(self, step):
        op, slot = step[0], step[1]
        s = self.slots[slot]
        if s.kind == "kazoo":
            return self.execute_kazoo(s, op, step)
        c = s.client
        rec = self.rec
        if op in ("create", "create2", "createContainer", "createTTL"):
            path, data, acl, flags = step[2:6]
            ttl = step[6] if op == "createTTL" else None
            r = c.create(path, data, ACLS[acl], flags, op=_flags_op(op, flags), ttl=ttl)
            return self.raw(r, "path" if op == "create" else "path+stat")
        if op == "delete":
            return self.raw(c.delete(step[2], step[3]))
        if op == "setData":
            return self.raw(c.set_data(step[2], step[3], step[4]), "stat")
        if op == "exists":
            return self.raw(self._exists_384(c, step[2], step[3], c.exists(step[2], step[3])), "stat")
        if op == "getData":
            return self.raw(c.get_data(step[2], step[3]), "data")
        if op == "getChildren":
            return self.raw(c.get_children(step[2], step[3]), "children")
        if op == "getChildren2":
            return self.raw(c.get_children2(step[2], step[3]), "children2")
        if op == "getACL":
            return self.raw(c.get_acl(step[2]), "acl")
        if op == "setACL":
            return self.raw(c.set_acl(step[2], ACLS[step[3]], step[4]), "stat")
        if op == "sync":
            return self.raw(c.sync(step[2]), "sync")
        if op == "multi":
            return self.raw(c.multi([self._multi_op(o) for o in step[2]]), "multi")
        if op == "multiRead":
            ops = [(4, R.GetDataRequest(p, False)) if k == "getData" else (8, R.GetChildrenRequest(p, False))
                   for k, p in step[2]]
            return self.raw(c.multi_read(ops), "multi")
        if op == "getEphemerals":
            return self.raw(c.get_ephemerals(step[2]), "ephemerals")
        if op == "getAllChildrenNumber":
            return self.raw(c.get_all_children_number(step[2]), "count")
        if op == "addWatch":
            return self.raw(c.add_watch(step[2], step[3]))
        if op == "removeWatches":
            return self.raw(c.remove_watches(step[2], step[3]))
        if op == "checkWatches":
            return self.raw(c.check_watches(step[2], step[3]))
        if op == "whoami":
            return self.raw(c.whoami(), "whoami")
        if op == "auth":
            scheme, cred = step[2]
            r = c.add_auth(scheme, cred)
            res = ("auth", r.err)
            if r.err:
                closed = c.is_closed_by_peer(3.0)
                res += ("closed" if closed else "open",)
                self._recover(slot)
            return res
        if op == "close":
            r = c.close_session()
            res = ("closed", r.err, rec.z(r.zxid), c.is_closed_by_peer(3.0))
            s.new_session()
            self.gen[slot] += 1
            self._name_session(slot)
            return res
        if op == "reconnect":
            how, data, exist, child, v2, pers, recur = step[2:9]
            rz = c.last_zxid if how == "last" else 0
            resp = s.resume()
            res = ["resumed", resp.timeOut > 0]
            if v2:
                r = s.client.set_watches2(rz, data, exist, child, pers, recur)
            else:
                r = s.client.set_watches(rz, data, exist, child)
            res.append(self.raw(r))
            return tuple(res)
        if op == "pipeline":
            xids = []
            kinds = []
            for item in step[2]:
                k = item[0]
                if k == "create":
                    rq = R.CreateRequest(item[1], item[2], ACLS[item[3]], item[4])
                    xids.append(c.submit(1, rq.encode()))
                    kinds.append("path")
                elif k == "setData":
                    xids.append(c.submit(5, R.SetDataRequest(item[1], item[2], item[3]).encode()))
                    kinds.append("stat")
                elif k == "delete":
                    xids.append(c.submit(2, R.DeleteRequest(item[1], item[2]).encode()))
                    kinds.append(None)
                elif k == "getData":
                    xids.append(c.submit(4, R.GetDataRequest(item[1], item[2]).encode()))
                    kinds.append("data")
                else:
                    xids.append(c.submit(3, R.ExistsRequest(item[1], item[2]).encode()))
                    kinds.append("stat")
            replies = []
            for xid, kind in zip(xids, kinds):
                r = c._read_reply()
                assert r.xid == xid, f"{self.name}: reply xid {r.xid} arrived when {xid} was due (FIFO)"
                if r.err == 0:
                    cls = {"path": R.CreateResponse, "stat": R.Stat, "data": R.GetDataResponse}.get(kind)
                    if cls is not None:
                        from coord.jute.codec import decode
                        r.value = decode(cls, r.body)[0]
                replies.append(r)
            for i, item in enumerate(step[2]):
                if item[0] == "exists":
                    replies[i] = self._exists_384(c, item[1], item[2], replies[i])
            return ("pipeline", [self.raw(r, kind) for r, kind in zip(replies, kinds)])
        raise AssertionError(op)

    def _exists_384(self, c, path, watch, r):
        """The reference is ZooKeeper 3.8.0, whose exists does not check READ (3.8.4, which coord
        follows, answers NOAUTH and arms no watch). On the reference only: when exists succeeded on
        a node this session may not read (its getData says NOAUTH), take 3.8.4's answer and take
        back the data watch 3.8.0 armed, so later steps (events, checkWatches) stay comparable."""
        if self.name != "zk" or r.err != 0:
            return r
        probe = c.get_data(path, False)
        if probe.err != -102:
            return r
        if watch:
            c.remove_watches(path, 2)
        self.adjusted += 1
        return type(r)(r.xid, r.zxid, -102, b"")

    @staticmethod
    def _multi_op(o):
        k = o[0]
        if k == "create":
            _, path, data, acl, flags = o
            return (1, R.CreateRequest(path, data, ACLS[acl], flags))
        if k == "createTTL":
            _, path, data, acl, flags, ttl = o
            return (21, R.CreateTTLRequest(path, data, ACLS[acl], flags, ttl))
        if k == "delete":
            return (2, R.DeleteRequest(o[1], o[2]))
        if k == "setData":
            return (5, R.SetDataRequest(o[1], o[2], o[3]))
        return (13, R.CheckVersionRequest(o[1], o[2]))

    def execute_kazoo(self, s, op, step):
        zk = s.zk
        rec = self.rec
        w = s.watcher
        if op in ("create", "create2"):
            path, data, acl, flags = step[2:6]
            r = self.kz(zk.create, path, data, acl=_kacl(ACLS[acl]), ephemeral=flags in (1, 3),
                        sequence=flags in (2, 3), include_data=op == "create2")
            if r[0] == "ok" and op == "create2":
                return ("ok", r[1][0], rec.stat(r[1][1]))
            return r
        if op == "delete":
            return self.kz(zk.delete, step[2], version=step[3])
        if op == "setData":
            r = self.kz(zk.set, step[2], step[3], version=step[4])
            return ("ok", rec.stat(r[1])) if r[0] == "ok" else r
        if op == "exists":
            r = self.kz(zk.exists, step[2], watch=w if step[3] else None)
            return ("ok", rec.stat(r[1])) if r[0] == "ok" else r
        if op == "getData":
            r = self.kz(zk.get, step[2], watch=w if step[3] else None)
            return ("ok", r[1][0], rec.stat(r[1][1])) if r[0] == "ok" else r
        if op in ("getChildren", "getChildren2"):
            r = self.kz(zk.get_children, step[2], watch=w if step[3] else None,
                        include_data=op == "getChildren2")
            if r[0] != "ok":
                return r
            if op == "getChildren2":
                return ("ok", sorted(r[1][0]), rec.stat(r[1][1]))
            return ("ok", sorted(r[1]))
        if op == "getACL":
            r = self.kz(zk.get_acls, step[2])
            if r[0] != "ok":
                return r
            acls, st = r[1]
            return ("ok", [(a.perms, a.id.scheme, a.id.id) for a in acls], rec.stat(st))
        if op == "setACL":
            r = self.kz(zk.set_acls, step[2], _kacl(ACLS[step[3]]), version=step[4])
            return ("ok", rec.stat(r[1])) if r[0] == "ok" else r
        if op == "sync":
            return self.kz(zk.sync, step[2])
        if op == "multi":
            t = zk.transaction()
            for o in step[2]:
                k = o[0]
                if k == "create":
                    _, path, data, acl, flags = o
                    t.create(path, data, acl=_kacl(ACLS[acl]), ephemeral=flags in (1, 3), sequence=flags in (2, 3))
                elif k == "delete":
                    t.delete(o[1], version=o[2])
                elif k == "setData":
                    t.set_data(o[1], o[2], version=o[3])
                else:
                    t.check(o[1], o[2])
            r = self.kz(t.commit)
            if r[0] != "ok":
                return r
            out = []
            for x in r[1]:
                if isinstance(x, Exception):
                    out.append(("exc", type(x).__name__))
                elif isinstance(x, tuple) and len(x) == 11:
                    out.append(rec.stat(x))
                else:
                    out.append(x)
            return ("ok", out)
        if op == "auth":
            return self.kz(zk.add_auth, *step[2])
        if op == "close":
            s.new_session()
            self.gen[0] += 1
            self._name_session(0)
            return ("kazoo session replaced",)
        raise AssertionError(op)


class ZxidMatch:
    """Compares two runs' observations with their zxids as an order-preserving bijection, built as
    the steps go: the first step where ZooKeeper's zxid pattern (which values are equal) and coord's
    part ways is the step reported, not a later one where a rank happens to shift."""

    def __init__(self):
        self.fwd: dict[int, int] = {}
        self.back: dict[int, int] = {}

    def same(self, a, b, bind=True) -> bool:
        if isinstance(a, Z) or isinstance(b, Z):
            if not (isinstance(a, Z) and isinstance(b, Z)):
                return False
            fa, bb = self.fwd.get(a.v), self.back.get(b.v)
            if fa is None and bb is None:
                if bind:
                    self.fwd[a.v], self.back[b.v] = b.v, a.v
                return True
            return fa == b.v and bb == a.v
        if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
            return type(a) is type(b) and len(a) == len(b) and all(self.same(x, y, bind) for x, y in zip(a, b))
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(self.same(a[k], b[k], bind) for k in a)
        return a == b

    def order_problem(self) -> str | None:
        pairs = sorted(self.fwd.items())
        for (z1, c1), (z2, c2) in zip(pairs, pairs[1:]):
            if not c1 < c2:
                return f"zxid order differs: ZooKeeper 0x{z1:x} < 0x{z2:x} but coord 0x{c1:x} >= 0x{c2:x}"
        return None


def _version_difference(a, b, m: ZxidMatch) -> str | None:
    """Where the reference (Debian's ZooKeeper 3.8.0 plus security patches) and ZooKeeper 3.8.4, which
    coord follows, answer differently, name the difference; None when it is not one of them.

    - exists on a node the caller may not READ: 3.8.4 checks READ (NOAUTH, no watch armed), 3.8.0
      returns the Stat (and arms a watch whose events its CVE-2024-23944 patch then filters). Raw
      sessions take 3.8.4's answer on the reference itself (Runner._exists_384); this covers kazoo's.
    """
    n, step, ra, ea = a
    _, _, rb, eb = b
    if not m.same(ea, eb):
        return None

    def exists_acl(ra, rb):
        if ra[0] == "ok" and rb[0] == "err" and rb[1] == -102:
            # raw client: the reply-header zxids must still agree
            return not (len(ra) == 3 and len(rb) == 3) or m.same(ra[1], rb[2])
        return False
    if step[0] == "exists" and exists_acl(ra, rb):
        return "exists ACL check (3.8.4)"
    if step[0] == "pipeline" and len(ra[1]) == len(rb[1]) and ra[0] == rb[0]:
        ok = all(m.same(x, y, bind=False) or (item[0] == "exists" and exists_acl(x, y))
                 for item, x, y in zip(step[2], ra[1], rb[1]))
        if ok:
            for item, x, y in zip(step[2], ra[1], rb[1]):
                m.same(x, y) if not (item[0] == "exists" and exists_acl(x, y)) else None
            return "exists ACL check (3.8.4)"
    return None


def _fmt(obs, norm):
    n, step, res, events = obs
    return f"step {n}: {step!r}\n    -> {norm(res)!r}\n    events {norm(events)!r}"


def run_seed(pair, seed: int, steps: int = STEPS):
    root = f"/diff{seed}x{random.Random().randrange(1 << 30)}"
    script = Script(seed, root, steps)
    results = {}
    for name, host, port in pair.targets:
        results[name] = Runner(name, host, port, root).run(script)
    ((zk_obs, zk_norm), zk_time), ((co_obs, co_norm), co_time) = results["zk"], results["coord"]
    replay = (f"COMPAT_DIFF_SEED={seed} COMPAT_DIFF_STEPS={steps} .venv/bin/python -m pytest -q "
              f"tests/compat/test_differential.py -k random_sequences")
    assert not zk_time, f"seed {seed}: real ZooKeeper's own times look wrong?! {zk_time[:5]}"
    assert not co_time, f"seed {seed}: coord's Stat times are inconsistent: {co_time[:5]}\nreplay: {replay}"
    m = ZxidMatch()
    for a, b in zip(zk_obs, co_obs):
        if not m.same(a, b, bind=False) or not m.same(a, b):
            if _version_difference(a, b, m):
                continue
            i = a[0]
            ctx = "\n".join(_fmt(o, zk_norm) for o in zk_obs[max(0, i - 4):i])
            pytest.fail(f"seed {seed}: coord differs from ZooKeeper at step {i} (zxids named by rank in each run)\n"
                        f"context (ZooKeeper):\n{ctx}\n"
                        f"ZooKeeper: {_fmt(a, zk_norm)}\ncoord:     {_fmt(b, co_norm)}\nreplay: {replay}",
                        pytrace=False)
    assert len(zk_obs) == len(co_obs)
    problem = m.order_problem()
    assert not problem, f"seed {seed}: {problem}\nreplay: {replay}"


@pytest.mark.parametrize("seed", _seeds())
def test_random_sequences(pair, seed):
    run_seed(pair, seed)


# -- targeted differential and 3.8.4 checks ----------------------------------------------------------------
def _both(pair):
    out = {}
    for name, host, port in pair.targets:
        out[name] = RawClient(host, port).start()
    return out


def test_containers_and_ttl_nodes_are_reaped(tmp_path):
    """With a short container check interval both servers delete an emptied container and an expired
    TTL node (firing watches), and keep a never-used container and a TTL node that has a child."""
    pair = start_pair(tmp_path, container_check_ms=300)
    try:
        seen = {}
        for name, c in _both(pair).items():
            assert c.create("/tk", b"", flags=5, op=OpCode.createTTL, ttl=1500).err == 0
            assert c.create("/tk/kid").err == 0
            assert c.create("/unused", b"", flags=4, op=OpCode.createContainer).err == 0
            assert c.create("/c", b"", flags=4, op=OpCode.createContainer).err == 0
            assert c.create("/c/x").err == 0
            assert c.exists("/c", True).err == 0
            assert c.delete("/c/x").err == 0
            assert c.create("/t", b"", flags=5, op=OpCode.createTTL, ttl=1500).err == 0
            assert c.exists("/t", True).err == 0
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (c.exists("/c").err == 0 or c.exists("/t").err == 0):
                time.sleep(0.1)
            seen[name] = ({p: c.exists(p).err for p in ("/c", "/unused", "/t", "/tk")},
                          sorted(e.key() for e in c.drain_events()))
            c.stop()
        assert seen["zk"][0] == {"/c": -101, "/unused": 0, "/t": -101, "/tk": 0}, seen
        assert seen["coord"] == seen["zk"]
    finally:
        pair.stop()


def test_createttl_non_ttl_mode(coord_server):
    """createTTL with a non-TTL mode: ZooKeeper 3.8 answers BADARGUMENTS when ttl >= 0 and crashes its
    server when ttl < 0 (CreateTTLTxn with ttl -1 throws in DataTree). coord refuses both, and lives."""
    host, port = coord_server.connect_string.split(":")
    c = RawClient(host, int(port)).start()
    for flags, ttl in ((0, -1), (1, -1), (2, 5), (4, -1), (0, 1000)):
        assert c.create(f"/x{flags}", b"", flags=flags, op=OpCode.createTTL, ttl=ttl).err == -8
    assert c.exists("/x0").err == -101
    assert c.create("/ok", b"", flags=5, op=OpCode.createTTL, ttl=1000).err == 0
    c.stop()


def test_multi_create_modes_as_zookeeper_384(coord_shared):
    """Multi requests are read as ZooKeeper 3.8.4's MultiOperationRecord reads them (3.8.0, the
    reference binary, differs, so this pins coord to 3.8.4 directly): the op type survives (create2
    answers with a Stat, typed create2), CONTAINER mode makes a container, createContainer makes a
    container whatever the mode, a TTL mode on a plain create or a flag outside 0..6 fails the whole
    request with MARSHALLINGERROR and still uses a zxid, as every undecodable write does."""
    host, port = coord_shared.connect_string.split(":")
    c = RawClient(host, int(port)).start()
    open_acl = OPEN_ACL
    m = fresh("/multi")   # the module's server: a rerun must not meet this run's nodes
    assert c.create(m).err == 0
    r = c.multi([(15, R.CreateRequest(f"{m}/m2", b"x", open_acl, 0)),
                 (1, R.CreateRequest(f"{m}/mc", b"", open_acl, 4)),
                 (19, R.CreateRequest(f"{m}/mcc", b"", open_acl, 0)),
                 (21, R.CreateTTLRequest(f"{m}/mt", b"", open_acl, 5, 10000)),
                 (21, R.CreateTTLRequest(f"{m}/mp", b"", open_acl, 0, 10000))])
    assert r.err == 0
    types = [t for t, _, _ in r.value]
    assert types == [15, 15, 15, 15, 1], r.value
    assert r.value[0][2].stat.dataLength == 1 and r.value[0][2].stat.ephemeralOwner == 0
    for p in (f"{m}/mc/k", f"{m}/mcc/k"):
        assert c.create(p).err == 0 and c.delete(p).err == 0
    assert c.exists(f"{m}/mp").value.ephemeralOwner == 0
    before = c.exists("/").zxid
    for bad in (R.CreateRequest(f"{m}/bad", b"", open_acl, 5), R.CreateRequest(f"{m}/bad", b"", open_acl, 7)):
        r = c.multi([(1, R.CreateRequest(f"{m}/fine", b"", open_acl, 0)), (1, bad)])
        assert r.err == -5 and r.zxid > before, r
        before = r.zxid
    r = c.call(1, b"\x00\x00\x00\x05/tru")  # a create whose body is cut short
    assert r.err == -5 and r.zxid > before
    assert c.exists(f"{m}/fine").err == -101 and c.exists(f"{m}/bad").err == -101
    c.stop()


def test_multi_container_result_is_create2_typed(pair):
    """A container created inside a multi is reported with a create2-typed result (path + Stat) by
    both servers; ZooKeeper's Java client rejects any other result type in a multi response."""
    for name, host, port in pair.targets:
        c = RawClient(host, port).start()
        r = c.multi([(19, R.CreateRequest(f"/jm-{name}", b"", OPEN_ACL, 4)),
                     (2, R.DeleteRequest(f"/jm-{name}", -1))])
        assert r.err == 0 and [t for t, _, _ in r.value] == [15, 2], (name, r.value)
        assert r.value[0][2].path == f"/jm-{name}" and r.value[0][2].stat.ephemeralOwner == 0
        c.stop()


def test_large_children_set_as_zookeeper(pair):
    """A parent with thousands of children: pipelined creates, duplicate creates, deletes of every
    third child, re-creates, sequential children and a child watch answer as ZooKeeper does
    (children as a sorted list, numChildren, cversion, errors, the one child event)."""
    n = 2548
    seen = {}
    run = fresh("/bigkids")   # the module's servers: a rerun must not meet this run's nodes
    for name, host, port in pair.targets:
        c = RawClient(host, port).start()
        base = f"{run}-{name}"
        assert c.create(base).err == 0

        def pipelined(reqs):
            return [c.wait(x).err for x in [c.submit(op, rec.encode()) for op, rec in reqs]]
        creates = pipelined([(1, R.CreateRequest(f"{base}/c{i:05d}", b"x", OPEN_ACL, 0)) for i in range(n)])
        dups = pipelined([(1, R.CreateRequest(f"{base}/c{i:05d}", b"x", OPEN_ACL, 0)) for i in range(0, n, 97)])
        assert c.get_children(base, watch=True).err == 0
        dels = pipelined([(2, R.DeleteRequest(f"{base}/c{i:05d}", -1)) for i in range(0, n, 3)])
        again = pipelined([(2, R.DeleteRequest(f"{base}/c{i:05d}", -1)) for i in range(0, n, 9)])
        back = pipelined([(1, R.CreateRequest(f"{base}/c{i:05d}", b"y", OPEN_ACL, 0)) for i in range(0, n, 6)])
        seq = [c.create(f"{base}/s-", b"", flags=2) for _ in range(5)]
        kids = c.get_children2(base)
        assert kids.err == 0
        st = kids.value.stat
        c.ping()
        events = [(e.type, e.path[len(base):]) for e in c.drain_events()]
        seen[name] = (set(creates), set(dups), set(dels), set(again), set(back),
                      [(r.err, r.value.path[len(base):]) for r in seq],
                      sorted(kids.value.children), st.numChildren, st.cversion, events)
        c.stop()
    (a, za), (b, zb) = seen.items()
    assert za == zb, (a, b)
    assert za[7] > 2048 and za[0] == {0} and za[1] == {-110}   # NODEEXISTS for the duplicates
