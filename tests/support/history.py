"""Record what concurrent ZooKeeper clients saw, and check it: linearizability, lost writes, zxid order.

Recording. Every operation is an interval: invoked at `call`, answered at `ret` (monotonic ns, one
clock: all clients live in this process). Its outcome is `ok` (with what the server answered),
`fail` (a definite error such as NodeExists / NoNode / BadVersion: it did not happen, but the error
itself says something about the state), or `info` (connection loss, timeout, session expiry: it may
or may not have happened, at any time after `call`). Reads come in two kinds: `read` is sync() + get
on one session, which ZooKeeper makes linearizable; `read_local` is a plain get, which ZooKeeper only
promises never goes back in time for the session, and is checked for exactly that.

Checking. Linearizability is local (Herlihy & Wing), so the history splits per path and each path
is checked alone against a model of one znode: absent, or (value, version). A create makes version
0, a conditional setData is a compare-and-set on the version, delete removes. The search is Wing &
Gong's, with Lowe's memoisation of (linearized set, model state) as in Knossos/Porcupine: from the
current state try every operation that may go next (invoked before the earliest answer of any
pending operation), apply the model, recurse; an `info` op may take effect or not, so it never has
to be placed. The search is bounded (`max_states`); past the bound a key is reported *unknown*,
never as passed.

Independent checks that give clearer diagnostics than "not linearizable":
- lost writes: an acknowledged create/setData whose effect is missing from the final state and that
  no delete could have removed (generations are told apart by czxid, versions within them);
- zxid order across all paths: acknowledged writes have distinct zxids, and a write that finished
  before another began has the smaller zxid (a split brain shows up here first);
- per-session monotonic reads: the mzxid a session observes on a path never goes back;
- sequential appends (`append`: a PERSISTENT_SEQUENTIAL create under one parent, the queue recipe):
  acknowledged sequence numbers are unique, every acknowledged append is among the parent's children
  at the end, and an append that finished before another began has the smaller number. Appends are
  not in the per-path model (each makes a new node); their zxids join the zxid-order check.
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

INF = float("inf")


@dataclass
class Op:
    id: int
    client: object
    kind: str                 # create | set | delete | read | read_local | append
    key: str
    value: object = None      # value written (create/set)
    version: int = -1         # expected version (set/delete), -1 = any
    call: int = 0
    ret: float = INF
    status: str = "pending"   # ok | fail | info | pending
    result: object = None     # read ok: (value, version) or None; set ok: new version; append ok: path
    error: str | None = None
    czxid: int | None = None
    mzxid: int | None = None
    session: int = 0

    def __str__(self) -> str:
        arg = ""
        if self.kind in ("create", "set"):
            arg = repr(self.value)
        if self.kind in ("set", "delete") and self.version != -1:
            arg += f" if v={self.version}"
        out = f"{self.status} {self.error}" if self.error else self.status
        if self.status == "ok" and self.kind.startswith("read"):
            out += f" -> {self.result}"
        elif self.status == "ok" and self.kind in ("set", "append"):
            out += f" -> v{self.result}" if self.kind == "set" else f" -> {self.result}"
        ret = "inf" if self.ret == INF else f"{self.ret / 1e6:.3f}ms"
        return (f"#{self.id} c{self.client} {self.kind}({self.key}{', ' + arg if arg else ''}) "
                f"[{self.call / 1e6:.3f}ms..{ret}] {out}")


class History:
    """Thread-safe recorder."""

    def __init__(self):
        self.ops: list[Op] = []
        self.lock = threading.Lock()
        self.t0 = time.monotonic_ns()

    def now(self) -> int:
        return time.monotonic_ns() - self.t0

    def invoke(self, client, kind: str, key: str, value=None, version: int = -1) -> Op:
        with self.lock:
            op = Op(len(self.ops), client, kind, key, value, version)
            self.ops.append(op)
        op.call = self.now()
        return op

    def ok(self, op: Op, result=None, czxid=None, mzxid=None) -> None:
        op.ret = self.now()
        op.status, op.result, op.czxid, op.mzxid = "ok", result, czxid, mzxid

    def fail(self, op: Op, error: str) -> None:
        op.ret = self.now()
        op.status, op.error = "fail", error

    def info(self, op: Op, error: str) -> None:
        op.ret = INF
        op.status, op.error = "info", error

    def add(self, op: Op) -> Op:
        """For hand-made histories in tests."""
        op.id = len(self.ops)
        self.ops.append(op)
        return op


# -- the model of one znode ------------------------------------------------------------------------
ABSENT = None


def _transitions(state, op: Op):
    """Model states after op from state (empty: op cannot go here)."""
    k, st = op.kind, op.status
    present = state is not ABSENT
    ver = state[1] if present else None
    matches = present and (op.version == -1 or op.version == ver)
    if st == "info":
        # only the "it happened" branch: "it never happened" is the same as never placing the op
        if k == "create":
            return ((op.value, 0),) if not present else ()
        if k == "set":
            return ((op.value, ver + 1),) if matches else ()
        if k == "delete":
            return (ABSENT,) if matches else ()
        return ()
    if k == "read":
        if st == "ok":
            return (state,) if op.result == state else ()
        if op.error == "NoNode":
            return (state,) if not present else ()
        return (state,)
    if k == "create":
        if st == "ok":
            return ((op.value, 0),) if not present else ()
        if op.error == "NodeExists":
            return (state,) if present else ()
        return (state,)
    if k == "set":
        if st == "ok":
            if matches and (op.result is None or op.result == ver + 1):
                return ((op.value, ver + 1),)
            return ()
        if op.error == "NoNode":
            return (state,) if not present else ()
        if op.error == "BadVersion":
            return (state,) if present and op.version != -1 and op.version != ver else ()
        return (state,)
    if k == "delete":
        if st == "ok":
            return (ABSENT,) if matches else ()
        if op.error == "NoNode":
            return (state,) if not present else ()
        if op.error == "BadVersion":
            return (state,) if present and op.version != -1 and op.version != ver else ()
        return (state,)
    raise ValueError(f"unknown op kind {k}")


@dataclass
class KeyResult:
    key: str
    verdict: str              # linearizable | violation | unknown
    ops: int
    states: int
    detail: str = ""


def check_key(ops: list[Op], init=ABSENT, max_states: int = 2_000_000) -> KeyResult:
    """Wing & Gong search with memoisation over one key's ops (local reads are left out)."""
    key = ops[0].key if ops else ""
    ops = sorted((o for o in ops if o.kind != "read_local"
                  and not (o.kind == "read" and o.status == "info")), key=lambda o: o.call)
    n = len(ops)
    calls = [o.call for o in ops]
    rets = [o.ret for o in ops]
    det = info = 0
    for i, o in enumerate(ops):
        if o.status == "info":
            info |= 1 << i
        else:
            det |= 1 << i
    seen: set = set()
    stack = [(0, init)]
    best = (-1, 0, init)
    while stack:
        mask, state = stack.pop()
        pend = det & ~mask
        if not pend:
            return KeyResult(key, "linearizable", n, len(seen))
        sk = (mask, state)
        if sk in seen:
            continue
        seen.add(sk)
        if len(seen) > max_states:
            return KeyResult(key, "unknown", n, len(seen), f"{key}: search bound of {max_states} states reached")
        lo = (pend & -pend).bit_length() - 1
        min_ret = INF
        i = lo
        while i < n and calls[i] <= min_ret:
            if not (mask >> i) & 1 and rets[i] < min_ret:
                min_ret = rets[i]
            i += 1
        depth = n - pend.bit_count()
        if depth > best[0]:
            best = (depth, mask, state)
        cands = [j for j in range(lo, i) if not (mask >> j) & 1 and calls[j] <= min_ret]
        early = info & ~mask & ((1 << lo) - 1)
        while early:
            b = early & -early
            cands.append(b.bit_length() - 1)
            early ^= b
        for j in reversed(cands):
            for s2 in _transitions(state, ops[j]):
                nk = (mask | (1 << j), s2)
                if nk not in seen:
                    stack.append(nk)
    _, mask, state = best
    pending = [o for i, o in enumerate(ops) if not (mask >> i) & 1 and o.status != "info"]
    pending.sort(key=lambda o: o.ret)
    placed = [o for i, o in enumerate(ops) if (mask >> i) & 1]
    placed.sort(key=lambda o: o.call)
    lines = [f"{key}: no linearization of {n} ops; furthest: {len(placed)} placed, model state {state!r};",
             "  last placed:"]
    lines += [f"    {o}" for o in placed[-4:]]
    lines += ["  cannot place next (earliest answer first):"]
    lines += [f"    {o}" for o in pending[:6]]
    return KeyResult(key, "violation", n, len(seen), "\n".join(lines))


# -- independent checks ----------------------------------------------------------------------------
def lost_writes(ops: list[Op], final: dict) -> list[str]:
    """final: key -> (value, version, czxid) or None, read after the run from a quiet ensemble."""
    out = []
    by_key: dict[str, list[Op]] = {}
    for o in ops:
        by_key.setdefault(o.key, []).append(o)
    for key, kops in by_key.items():
        if key not in final:
            continue
        f = final[key]
        deletes = [o for o in kops if o.kind == "delete" and o.status in ("ok", "info")]
        for w in kops:
            if w.kind not in ("create", "set") or w.status != "ok" or w.czxid is None:
                continue
            removable = any(d.ret > w.call for d in deletes)
            wver = 0 if w.kind == "create" else w.result
            if f is None or w.czxid > f[2]:
                if not removable:
                    out.append(f"lost write on {key}: {w} (final state {f})")
            elif w.czxid == f[2] and wver is not None and wver > f[1]:
                out.append(f"lost write on {key}: {w} acknowledged version {wver}, final {f}")
    return out


def zxid_order(ops: list[Op]) -> list[str]:
    """Acknowledged writes: distinct zxids, and real-time order implies zxid order."""
    writes = [o for o in ops if o.kind in ("create", "set", "append") and o.status == "ok" and o.mzxid is not None]
    out = []
    seen: dict[int, Op] = {}
    for w in writes:
        other = seen.get(w.mzxid)
        if other is not None:
            out.append(f"two acknowledged writes with zxid 0x{w.mzxid:x}: {other} / {w}")
        seen[w.mzxid] = w
    writes.sort(key=lambda o: o.ret)
    # w2 invoked after w1 answered must have a larger zxid: sweep by call time
    by_call = sorted(writes, key=lambda o: o.call)
    j = 0
    max_done = None
    for w in by_call:
        while j < len(writes) and writes[j].ret < w.call:
            if max_done is None or writes[j].mzxid > max_done.mzxid:
                max_done = writes[j]
            j += 1
        if max_done is not None and w.mzxid <= max_done.mzxid:
            out.append(f"real-time order broken: {max_done} (zxid 0x{max_done.mzxid:x}) answered before "
                       f"{w} (zxid 0x{w.mzxid:x}) began")
            if len(out) > 20:
                break
    return out


def monotonic_reads(ops: list[Op]) -> list[str]:
    """Per session and path, the mzxid seen never goes back (reads and own writes)."""
    out = []
    last: dict[tuple, Op] = {}
    for o in sorted(ops, key=lambda o: o.call):
        if o.status != "ok" or o.mzxid is None:
            continue
        k = (o.client, o.session, o.key)
        prev = last.get(k)
        if prev is not None and prev.ret < o.call and o.mzxid < prev.mzxid:
            out.append(f"session {o.client} went back in time on {o.key}: {prev} (mzxid 0x{prev.mzxid:x}) "
                       f"then {o} (mzxid 0x{o.mzxid:x})")
        if prev is None or o.mzxid >= prev.mzxid:
            last[k] = o
    return out


def seq_number(path: str) -> int:
    """The 10-digit counter ZooKeeper appends to a sequential node's name."""
    return int(path[-10:])


def _is_sequential_of(o: "Op") -> bool:
    r = o.result
    return isinstance(r, str) and len(r) == len(o.key) + 10 and r.startswith(o.key) and r[-10:].isdigit()


def sequential_appends(ops: list[Op], appended: set[str] | None = None) -> list[str]:
    """Acknowledged appends: unique sequence numbers per parent, present at the end (if `appended`,
    the children listed after the run, is given), and real-time order implies sequence order."""
    acked = [o for o in ops if o.kind == "append" and o.status == "ok"]
    # An append answered with a name that is not the parent's prefix and a counter is some other
    # request's reply (seen once, on ZooKeeper under a full disk: '/k1', a plain create's path):
    # reported, and kept out of the counter checks below.
    out = [f"append answered with {o.result!r}, not a sequential name under {o.key!r}: {o}"
           for o in acked if not _is_sequential_of(o)]
    acked = [o for o in acked if _is_sequential_of(o)]
    by_parent: dict[str, list[Op]] = {}
    for a in acked:
        by_parent.setdefault(a.key.rsplit("/", 1)[0], []).append(a)
    for parent, apps in by_parent.items():
        seen: dict[int, Op] = {}
        for a in apps:
            other = seen.get(seq_number(a.result))
            if other is not None:
                out.append(f"two acknowledged appends got {seq_number(a.result)} under {parent}: {other} / {a}")
            seen[seq_number(a.result)] = a
            if appended is not None and a.result not in appended:
                out.append(f"lost append: {a} ({a.result} not among {parent}'s children at the end)")
        done = sorted(apps, key=lambda o: o.ret)
        j, prev = 0, None
        for a in sorted(apps, key=lambda o: o.call):
            while j < len(done) and done[j].ret < a.call:
                if prev is None or seq_number(done[j].result) > seq_number(prev.result):
                    prev = done[j]
                j += 1
            if prev is not None and seq_number(a.result) <= seq_number(prev.result):
                out.append(f"append out of real-time order under {parent}: {prev} answered before {a} began")
                if len(out) > 20:
                    return out
    return out


@dataclass
class Report:
    keys: list[KeyResult] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    monotonic: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    appends: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (all(k.verdict == "linearizable" for k in self.keys) and not self.lost and not self.order
                and not self.monotonic and not self.appends)

    def anomalies(self) -> list[str]:
        out = [k.detail for k in self.keys if k.verdict != "linearizable"]
        return out + self.lost + self.order + self.monotonic + self.appends

    def summary(self) -> str:
        c = self.counts
        v = {x: sum(1 for k in self.keys if k.verdict == x) for x in ("linearizable", "violation", "unknown")}
        return (f"{c.get('ops', 0)} ops ({c.get('ok', 0)} ok, {c.get('fail', 0)} fail, {c.get('info', 0)} "
                f"indeterminate) on {len(self.keys)} paths: {v['linearizable']} linearizable, "
                f"{v['violation']} violations, {v['unknown']} unknown; {len(self.lost)} lost writes, "
                f"{len(self.order)} zxid-order, {len(self.monotonic)} monotonic-read and {len(self.appends)} "
                f"sequential-append anomalies")


def check(history: History | list[Op], final: dict | None = None, init: dict | None = None,
          max_states: int = 2_000_000, appended: set[str] | None = None) -> Report:
    """appended: the full paths of the appends' parents' children, listed after the run (None: the
    presence check of acknowledged appends is skipped)."""
    ops = history.ops if isinstance(history, History) else history
    for o in ops:
        if o.status == "pending":      # never answered (the client was torn down): may have happened
            o.status, o.ret, o.error = "info", INF, "unanswered"
    rep = Report()
    rep.counts = {"ops": len(ops)}
    for s in ("ok", "fail", "info"):
        rep.counts[s] = sum(1 for o in ops if o.status == s)
    by_key: dict[str, list[Op]] = {}
    for o in ops:
        if o.kind != "append":
            by_key.setdefault(o.key, []).append(o)
    for key in sorted(by_key):
        rep.keys.append(check_key(by_key[key], (init or {}).get(key, ABSENT), max_states))
    if final is not None:
        rep.lost = lost_writes(ops, final)
    rep.order = zxid_order(ops)
    rep.monotonic = monotonic_reads(ops)
    if appended is not None or any(o.kind == "append" for o in ops):
        rep.appends = sequential_appends(ops, appended)
    return rep


# -- a kazoo workload ------------------------------------------------------------------------------
def _classify(exc: BaseException) -> tuple[str, str]:
    """('fail'|'info', name) for a kazoo exception."""
    from kazoo import exceptions as ke
    name = type(exc).__name__
    if isinstance(exc, ke.NodeExistsError):
        return "fail", "NodeExists"
    if isinstance(exc, ke.NoNodeError):
        return "fail", "NoNode"
    if isinstance(exc, ke.BadVersionError):
        return "fail", "BadVersion"
    return "info", name


class Workload:
    """N kazoo clients doing random creates, CAS setData, deletes and reads on a few paths.

    hosts: one connect string per client (put the server it should prefer first; the client only
    moves on when that one fails). Each client keeps the last version it saw of each path and uses it
    for conditional setData/delete, so compare-and-set succeeds often enough to matter.
    """

    def __init__(self, hosts: list[str], keys: list[str], history: History | None = None, *,
                 seed: int = 0, op_timeout: float = 5.0, session_timeout: float = 6.0,
                 local_read_ratio: float = 0.15, pause_s: float = 0.0, append_ratio: float = 0.0,
                 append_parent: str = "/q"):
        self.hosts = hosts
        self.append_ratio = append_ratio      # share of ops that are sequential appends under append_parent
        self.append_parent = append_parent
        self.keys = keys
        self.history = history or History()
        self.seed = seed
        self.op_timeout = op_timeout
        self.session_timeout = session_timeout
        self.local_read_ratio = local_read_ratio
        self.pause_s = pause_s
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.clients = []
        self.errors: list[str] = []

    def start(self) -> "Workload":
        from kazoo.client import KazooClient
        from kazoo.retry import KazooRetry
        for i, h in enumerate(self.hosts):
            c = KazooClient(hosts=h, timeout=self.session_timeout, randomize_hosts=False,
                            connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5),
                            command_retry=None)
            c.start(timeout=30)
            self.clients.append(c)
        if self.append_ratio:
            self.clients[0].ensure_path(self.append_parent)
        for i, c in enumerate(self.clients):
            t = threading.Thread(target=self._run, args=(i, c), name=f"workload-{i}", daemon=True)
            self.threads.append(t)
            t.start()
        return self

    def _run(self, i: int, c) -> None:
        rnd = random.Random(self.seed * 1000 + i)
        h = self.history
        seen: dict[str, int] = {}
        n = 0
        T = self.op_timeout
        while not self.stop.is_set():
            key = rnd.choice(self.keys)
            r = rnd.random()
            n += 1
            value = f"{i}-{n}".encode()
            try:
                if self.append_ratio and rnd.random() < self.append_ratio:
                    op = h.invoke(i, "append", self.append_parent + "/a-", value)
                    try:
                        path, st = c.create_async(op.key, value, sequence=True,
                                                  include_data=True).get(timeout=T)
                        h.ok(op, path, st.czxid, st.mzxid)
                    except Exception as e:
                        self._failed(op, e)
                elif r < 0.2:
                    op = h.invoke(i, "create", key, value)
                    try:
                        path, st = c.create_async(key, value, include_data=True).get(timeout=T)
                        h.ok(op, None, st.czxid, st.mzxid)
                        seen[key] = 0
                    except Exception as e:
                        self._failed(op, e)
                elif r < 0.55:
                    ver = seen.get(key, rnd.randint(0, 3)) if rnd.random() < 0.8 else -1
                    op = h.invoke(i, "set", key, value, ver)
                    try:
                        st = c.set_async(key, value, ver).get(timeout=T)
                        h.ok(op, st.version, st.czxid, st.mzxid)
                        seen[key] = st.version
                    except Exception as e:
                        self._failed(op, e)
                elif r < 0.65:
                    ver = seen.get(key, -1) if rnd.random() < 0.5 else -1
                    op = h.invoke(i, "delete", key, None, ver)
                    try:
                        c.delete_async(key, ver).get(timeout=T)
                        h.ok(op)
                        seen.pop(key, None)
                    except Exception as e:
                        self._failed(op, e)
                elif r < 1.0 - self.local_read_ratio:
                    op = h.invoke(i, "read", key)
                    try:
                        c.sync_async(key).get(timeout=T)
                        data, st = c.get_async(key).get(timeout=T)
                        h.ok(op, (data, st.version), st.czxid, st.mzxid)
                        seen[key] = st.version
                    except Exception as e:
                        self._failed(op, e)
                else:
                    op = h.invoke(i, "read_local", key)
                    try:
                        data, st = c.get_async(key).get(timeout=T)
                        h.ok(op, (data, st.version), st.czxid, st.mzxid)
                    except Exception as e:
                        self._failed(op, e)
            except Exception as e:  # the recorder itself must not die silently
                self.errors.append(f"client {i}: {type(e).__name__}: {e}")
                time.sleep(0.05)
            if op.status == "ok":
                cid = c.client_id
                op.session = cid[0] if cid else 0
            if self.pause_s:
                time.sleep(self.pause_s)
            elif op.status == "info":
                time.sleep(0.02)   # the connection is down: don't spin

    def _failed(self, op: Op, e: BaseException) -> None:
        status, name = _classify(e)
        if status == "fail":
            self.history.fail(op, name)
        else:
            self.history.info(op, name)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(self.op_timeout * 3 + 5)
        for c in self.clients:
            try:
                c.stop()
                c.close()
            except Exception:
                pass

    def final_reads(self, hosts: str, timeout: float = 60.0) -> dict:
        """Read every key through sync() from a fresh session; recorded as ordinary reads too."""
        from kazoo.client import KazooClient
        from kazoo.exceptions import NoNodeError
        c = KazooClient(hosts=hosts, timeout=10)
        c.start(timeout=timeout)
        final = {}
        try:
            for key in self.keys:
                op = self.history.invoke("final", "read", key)
                c.sync(key)
                try:
                    data, st = c.get(key)
                    self.history.ok(op, (data, st.version), st.czxid, st.mzxid)
                    final[key] = (data, st.version, st.czxid)
                except NoNodeError:
                    self.history.fail(op, "NoNode")
                    final[key] = None
        finally:
            c.stop()
            c.close()
        return final

    def final_appended(self, hosts: str, timeout: float = 60.0) -> set[str]:
        """The full paths of append_parent's children, through sync() from a fresh session."""
        from kazoo.client import KazooClient
        c = KazooClient(hosts=hosts, timeout=10)
        c.start(timeout=timeout)
        try:
            c.sync(self.append_parent)
            return {f"{self.append_parent}/{n}" for n in c.get_children(self.append_parent)}
        finally:
            c.stop()
            c.close()

    def acknowledged_writes(self) -> int:
        return sum(1 for o in self.history.ops if o.kind in ("create", "set", "delete") and o.status == "ok")

    def acknowledged_appends(self) -> int:
        return sum(1 for o in self.history.ops if o.kind == "append" and o.status == "ok")
