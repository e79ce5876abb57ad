"""kazoo, unmodified, against coord: basic operations and every recipe kazoo ships, with assertions
of behaviour (contention, fail-over, exact counts, events). Each test also runs against real
ZooKeeper 3.8, which keeps the test itself honest."""
from __future__ import annotations

import threading
import time
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (BadVersionError, LockTimeout, NoAuthError, NodeExistsError, NoNodeError,
                              NotEmptyError, RolledBackError)
from kazoo.recipe.barrier import Barrier, DoubleBarrier
from kazoo.recipe.cache import TreeCache, TreeEvent
from kazoo.recipe.counter import Counter
from kazoo.recipe.election import Election
from kazoo.recipe.lock import Lock, ReadLock, Semaphore, WriteLock
from kazoo.recipe.partitioner import PartitionState, SetPartitioner
from kazoo.recipe.party import Party, ShallowParty
from kazoo.recipe.queue import LockingQueue, Queue
from kazoo.recipe.watchers import ChildrenWatch, DataWatch
from kazoo.security import make_digest_acl

pytestmark = pytest.mark.realzk


@pytest.fixture(params=["coord", "zk"])
def target(request, pair):
    return pair.coord.connect_string if request.param == "coord" else pair.zk.connect_string


class Clients:
    def __init__(self, hosts):
        self.hosts = hosts
        self.all = []

    def new(self, **kw) -> KazooClient:
        zk = KazooClient(hosts=self.hosts, timeout=10, **kw)
        zk.start(timeout=15)
        self.all.append(zk)
        return zk

    def close(self):
        for zk in self.all:
            try:
                zk.stop()
                zk.close()
            except Exception:
                pass


@pytest.fixture
def clients(target):
    c = Clients(target)
    yield c
    c.close()


@pytest.fixture
def root():
    return f"/recipes-{uuid.uuid4().hex[:10]}"


def wait_for(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return bool(cond())


# -- basic operations --------------------------------------------------------------------------------
def test_basic_operations(clients, root):
    zk = clients.new()
    zk.ensure_path(root + "/a/b")
    assert zk.exists(root + "/a/b").version == 0
    assert zk.create(root + "/n", b"v1") == root + "/n"
    with pytest.raises(NodeExistsError):
        zk.create(root + "/n")
    with pytest.raises(NoNodeError):
        zk.create(root + "/missing/child")
    data, stat = zk.get(root + "/n")
    assert data == b"v1" and stat.version == 0 and stat.dataLength == 2 and stat.numChildren == 0
    assert stat.ctime == stat.mtime and abs(stat.ctime / 1000 - time.time()) < 60
    assert zk.set(root + "/n", b"v2", version=0).version == 1
    with pytest.raises(BadVersionError):
        zk.set(root + "/n", b"v3", version=0)
    p, st = zk.create(root + "/n2", b"", include_data=True)
    assert p == root + "/n2" and st.czxid == st.mzxid == st.pzxid and st.czxid > stat.czxid
    seqs = [zk.create(root + "/s-", b"", sequence=True) for _ in range(3)]
    assert [int(s[-10:]) for s in seqs] == [3, 4, 5]       # parent cversion: a, n, n2 came first
    assert all(len(s.rsplit("-", 1)[1]) == 10 for s in seqs)
    eph = zk.create(root + "/e", b"", ephemeral=True)
    assert zk.exists(eph).ephemeralOwner == zk.client_id[0]
    kids, pst = zk.get_children(root, include_data=True)
    assert sorted(kids) == sorted(["a", "n", "n2", "e"] + [s.rsplit("/", 1)[1] for s in seqs])
    assert pst.numChildren == 7 and pst.cversion == 7
    with pytest.raises(NotEmptyError):
        zk.delete(root + "/a")
    zk.delete(root + "/a", recursive=True)
    assert zk.exists(root + "/a") is None
    assert zk.sync(root) == root
    # transaction: atomic, results per op
    t = zk.transaction()
    t.check(root + "/n", 1)
    t.create(root + "/t1", b"x")
    t.set_data(root + "/n", b"v3")
    t.delete(root + "/n2")
    res = t.commit()
    assert res[0] is True and res[1] == root + "/t1" and res[2].version == 2 and res[3] is True
    t = zk.transaction()
    t.create(root + "/t2", b"")
    t.check(root + "/n", 99)
    t.create(root + "/t3", b"")
    res = t.commit()
    assert isinstance(res[0], RolledBackError) and isinstance(res[1], BadVersionError)
    assert zk.exists(root + "/t2") is None
    # ACLs
    acl = make_digest_acl("alice", "secret", all=True)
    zk.create(root + "/locked", b"s", acl=[acl])
    other = clients.new()
    with pytest.raises(NoAuthError):
        other.get(root + "/locked")
    other.add_auth("digest", "alice:secret")
    assert other.get(root + "/locked")[0] == b"s"
    acls, ast = other.get_acls(root + "/locked")
    assert acls == [acl] and ast.aversion == 0
    assert zk.server_version()[:2] == (3, 8)
    assert zk.command(b"ruok") == "imok"


def test_null_data_round_trip(clients, root):
    """kazoo hands back what the server sent: None for a null buffer, b"" for an empty one."""
    zk = clients.new()
    zk.ensure_path(root)
    zk.create(root + "/null", None)
    zk.create(root + "/empty", b"")
    assert zk.get(root + "/null")[0] is None
    assert zk.get(root + "/empty")[0] == b""


# -- Lock, Semaphore, read/write locks ----------------------------------------------------------------
def test_lock_contention_and_release_on_session_close(clients, root):
    a, b = clients.new(), clients.new()
    la, lb = Lock(a, root + "/lock", "A"), Lock(b, root + "/lock", "B")
    assert la.acquire(timeout=5)
    with pytest.raises(LockTimeout):
        lb.acquire(timeout=0.5)
    assert lb.contenders() == ["A"]
    la.release()
    assert lb.acquire(timeout=5)
    assert la.contenders() == ["B"]
    # a waiter gets the lock when the holder's session closes
    got = threading.Event()

    def waiter():
        if la.acquire(timeout=10):
            got.set()
    t = threading.Thread(target=waiter)
    t.start()
    assert wait_for(lambda: len(lb.contenders()) == 2)
    assert not got.is_set()
    b.stop()                      # closeSession: B's lock node goes at once
    t.join(15)
    assert got.is_set()
    la.release()


def test_many_clients_one_lock_mutual_exclusion(clients, root):
    holders, inside, errors = [], [0], []
    lock_guard = threading.Lock()

    def worker(i):
        zk = clients.new()
        lock = Lock(zk, root + "/mutex", str(i))
        for _ in range(3):
            with lock:
                with lock_guard:
                    inside[0] += 1
                    if inside[0] != 1:
                        errors.append("two holders")
                holders.append(i)
                time.sleep(0.005)
                with lock_guard:
                    inside[0] -= 1
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(holders) == 12


def test_semaphore_and_read_write_locks(clients, root):
    a, b, c = clients.new(), clients.new(), clients.new()
    s1, s2, s3 = (Semaphore(z, root + "/sem", n, max_leases=2) for z, n in ((a, "a"), (b, "b"), (c, "c")))
    assert s1.acquire(timeout=5) and s2.acquire(timeout=5)
    assert not s3.acquire(blocking=False)
    assert sorted(s3.lease_holders()) == ["a", "b"]
    s1.release()
    assert s3.acquire(timeout=5)
    s2.release()
    s3.release()
    r1, r2 = ReadLock(a, root + "/rw"), ReadLock(b, root + "/rw")
    w = WriteLock(c, root + "/rw")
    assert r1.acquire(timeout=5) and r2.acquire(timeout=5)     # readers share
    with pytest.raises(LockTimeout):
        w.acquire(timeout=0.5)
    r1.release()
    r2.release()
    assert w.acquire(timeout=5)
    with pytest.raises(LockTimeout):
        r1.acquire(timeout=0.5)
    w.release()


# -- Election ------------------------------------------------------------------------------------------
def test_election_single_leader_and_failover(clients, root):
    leaders = []
    release = {}
    zks = {}

    def candidate(name):
        zk = clients.new()
        zks[name] = zk
        ev = release[name] = threading.Event()

        def lead():
            leaders.append(name)
            ev.wait(30)
        try:
            Election(zk, root + "/election", name).run(lead)
        except Exception:
            pass  # the session was closed under it
    threads = []
    for n in ("c1", "c2", "c3"):
        release[n] = threading.Event()
        t = threading.Thread(target=candidate, args=(n,), daemon=True)
        t.start()
        threads.append(t)
        time.sleep(0.1)
    assert wait_for(lambda: len(leaders) == 1)
    time.sleep(0.3)
    assert len(leaders) == 1                      # exactly one leader
    first = leaders[0]
    el = Election(clients.new(), root + "/election")
    assert wait_for(lambda: len(el.contenders()) == 3)
    assert el.contenders()[0] == first
    zks[first].stop()                              # the leader's session closes
    assert wait_for(lambda: len(leaders) == 2, 15)
    second = leaders[1]
    assert second != first
    assert wait_for(lambda: el.contenders()[0] == second and len(el.contenders()) == 2)
    for e in release.values():
        e.set()


# -- Barrier, DoubleBarrier ------------------------------------------------------------------------------
def test_barrier(clients, root):
    a, b = clients.new(), clients.new()
    barrier = Barrier(a, root + "/barrier")
    barrier.create()
    passed = threading.Event()

    def waiter():
        if Barrier(b, root + "/barrier").wait(10):
            passed.set()
    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.3)
    assert not passed.is_set()
    barrier.remove()
    t.join(10)
    assert passed.is_set()
    assert Barrier(b, root + "/barrier").wait(0.1)       # no barrier: passes at once


def test_double_barrier(clients, root):
    n = 3
    entered, left = [], []

    def member(i):
        zk = clients.new()
        db = DoubleBarrier(zk, root + "/double", n, identifier=f"m{i}")
        db.enter()
        entered.append((i, time.monotonic()))
        time.sleep(0.05 * i)
        db.leave()
        left.append((i, time.monotonic()))
    threads = []
    for i in range(n):
        t = threading.Thread(target=member, args=(i,))
        t.start()
        threads.append(t)
        time.sleep(0.2)
        if i < n - 1:
            assert not entered          # nobody enters before all n have arrived
    for t in threads:
        t.join(30)
    assert len(entered) == n and len(left) == n
    assert max(t for _, t in entered) <= min(t for _, t in left)   # nobody leaves before all entered


# -- Counter --------------------------------------------------------------------------------------------
def test_counter_concurrent_increments(clients, root):
    def worker():
        zk = clients.new()
        c = Counter(zk, root + "/counter")
        for _ in range(25):
            c += 1
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    zk = clients.new()
    c = Counter(zk, root + "/counter")
    assert c.value == 100
    c -= 5
    assert c.value == 95 and c.pre_value == 100 and c.post_value == 95
    f = Counter(zk, root + "/fcounter", default=1.5)
    f += 2.25
    assert f.value == 3.75


# -- Party, ShallowParty ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [Party, ShallowParty])
def test_party(clients, root, cls):
    a, b, c = clients.new(), clients.new(), clients.new()
    pa, pb = cls(a, root + "/party", "alice"), cls(b, root + "/party", "bob")
    watcher = cls(c, root + "/party")
    pa.join()
    pb.join()
    assert sorted(watcher) == ["alice", "bob"] and len(watcher) == 2
    pa.leave()
    assert list(watcher) == ["bob"]
    b.stop()                                         # leaving by session close
    assert wait_for(lambda: len(watcher) == 0)


# -- Queue, LockingQueue --------------------------------------------------------------------------------
def test_queue_fifo_with_priorities(clients, root):
    zk = clients.new()
    q = Queue(zk, root + "/queue")
    for i in range(5):
        q.put(f"n{i}".encode())
    q.put(b"urgent", priority=10)
    q.put(b"first", priority=0)
    assert len(q) == 7
    got = [q.get() for _ in range(7)]
    assert got == [b"first", b"urgent", b"n0", b"n1", b"n2", b"n3", b"n4"]   # lower priority first, then FIFO
    assert q.get() is None


def test_locking_queue_two_consumers(clients, root):
    producer = clients.new()
    q = LockingQueue(producer, root + "/lq")
    items = [f"item{i}".encode() for i in range(20)]
    q.put_all(items)
    assert len(q) == 20
    taken, lock = [], threading.Lock()

    def consumer():
        zk = clients.new()
        cq = LockingQueue(zk, root + "/lq")
        while True:
            v = cq.get(timeout=1)
            if v is None:
                return
            with lock:
                taken.append(v)
            assert cq.consume()
    threads = [threading.Thread(target=consumer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(taken) == sorted(items) and len(taken) == len(set(taken))
    assert len(q) == 0
    # an item taken but not consumed goes back when the taker's session ends
    q.put(b"again")
    zk = clients.new()
    cq = LockingQueue(zk, root + "/lq")
    assert cq.get(timeout=5) == b"again"
    zk.stop()
    assert LockingQueue(clients.new(), root + "/lq").get(timeout=5) == b"again"


# -- SetPartitioner ------------------------------------------------------------------------------------
def test_set_partitioner(clients, root):
    items = list(range(12))
    a, b = clients.new(), clients.new()
    pa = SetPartitioner(a, root + "/part", items, time_boundary=0.3, identifier="a")
    pb = SetPartitioner(b, root + "/part", items, time_boundary=0.3, identifier="b")

    def settle(*parts):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for p in parts:
                if p.release:
                    p.release_set()
                elif p.allocating:
                    p.wait_for_acquire(0.2)
            if all(p.acquired for p in parts):
                return True
            time.sleep(0.05)
        return False
    assert settle(pa, pb)
    sa, sb = set(pa), set(pb)
    assert sa and sb and not (sa & sb) and sa | sb == set(items)
    b.stop()                                          # a member goes away
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (pa.acquired and set(pa) == set(items)):
        if pa.release:
            pa.release_set()
        elif pa.allocating:
            pa.wait_for_acquire(0.2)
        time.sleep(0.05)
    assert pa.state == PartitionState.ACQUIRED and set(pa) == set(items)
    pa.finish()


# -- DataWatch, ChildrenWatch, TreeCache ------------------------------------------------------------------
def test_data_watch(clients, root):
    a, b = clients.new(), clients.new()
    a.ensure_path(root)
    seen = []
    DataWatch(a, root + "/dw", lambda data, stat: seen.append((data, stat.version if stat else None)))
    assert wait_for(lambda: seen == [(None, None)])
    b.create(root + "/dw", b"one")
    assert wait_for(lambda: seen[-1:] == [(b"one", 0)])
    b.set(root + "/dw", b"two")
    assert wait_for(lambda: seen[-1:] == [(b"two", 1)])
    b.delete(root + "/dw")
    assert wait_for(lambda: seen[-1:] == [(None, None)])
    assert [d for d, _ in seen] == [None, b"one", b"two", None]


def test_children_watch(clients, root):
    a, b = clients.new(), clients.new()
    a.ensure_path(root + "/cw")
    seen = []
    ChildrenWatch(a, root + "/cw", lambda kids: seen.append(sorted(kids)))
    assert wait_for(lambda: seen == [[]])
    b.create(root + "/cw/x")
    assert wait_for(lambda: seen[-1] == ["x"])
    b.create(root + "/cw/y", ephemeral=True)
    assert wait_for(lambda: seen[-1] == ["x", "y"])
    b.stop()                                          # the ephemeral child goes with b's session
    assert wait_for(lambda: seen[-1] == ["x"])
    a.delete(root + "/cw/x")
    assert wait_for(lambda: seen[-1] == [])


def test_tree_cache(clients, root):
    a, b = clients.new(), clients.new()
    a.ensure_path(root + "/tc/pre")
    a.set(root + "/tc/pre", b"p")
    events, lock = [], threading.Lock()
    cache = TreeCache(a, root + "/tc")

    def listener(ev):
        if ev.event_type in (TreeEvent.NODE_ADDED, TreeEvent.NODE_UPDATED, TreeEvent.NODE_REMOVED):
            with lock:
                events.append((ev.event_type, ev.event_data.path[len(root):], ev.event_data.data))
    cache.listen(listener)
    cache.start()
    try:
        assert wait_for(lambda: any(e[1] == "/tc/pre" for e in events))
        assert cache.get_data(root + "/tc/pre").data == b"p"
        b.create(root + "/tc/new", b"n")
        b.create(root + "/tc/new/deep", b"d")
        assert wait_for(lambda: cache.get_data(root + "/tc/new/deep") is not None)
        b.set(root + "/tc/new", b"n2")
        assert wait_for(lambda: (TreeEvent.NODE_UPDATED, "/tc/new", b"n2") in events)
        b.delete(root + "/tc/new", recursive=True)
        assert wait_for(lambda: (TreeEvent.NODE_REMOVED, "/tc/new", b"n2") in events)
        assert wait_for(lambda: cache.get_data(root + "/tc/new") is None)
        assert sorted(cache.get_children(root + "/tc")) == ["pre"]
        with lock:
            kinds = [(k, p) for k, p, _ in events]
        assert (TreeEvent.NODE_ADDED, "/tc/new") in kinds and (TreeEvent.NODE_ADDED, "/tc/new/deep") in kinds
        assert (TreeEvent.NODE_REMOVED, "/tc/new/deep") in kinds
        assert kinds.index((TreeEvent.NODE_REMOVED, "/tc/new/deep")) < kinds.index((TreeEvent.NODE_REMOVED, "/tc/new"))
    finally:
        cache.close()
