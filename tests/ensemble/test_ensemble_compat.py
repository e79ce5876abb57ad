"""A parametrised subset of the standalone compatibility checks, run against a 3-node ensemble with
every client connected to a follower (writes are forwarded to the leader, watches fire on the
follower), and against real ZooKeeper 3.8 ensembles the same way as the reference.
"""
from __future__ import annotations

import threading
import time
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from tests.support.ensemble import Ensemble, coord_ensemble, coord_ensemble_available  # noqa: F401
from tests.support.real_zk import available as realzk_available


@pytest.fixture(scope="module")
def zk_ensemble(tmp_path_factory):
    if not realzk_available():
        pytest.skip("real ZooKeeper not installed")
    ens = Ensemble(tmp_path_factory.mktemp("zk-ensemble"), 3, kind="zookeeper", force_sync=False)
    ens.start()
    leader = ens.wait_serving()
    ens.follower_hosts = ens.members[next(s for s in ens.members if s != leader)].connect_string
    yield ens
    ens.stop()


@pytest.fixture(params=["coord", pytest.param("zookeeper", marks=pytest.mark.realzk)])
def hosts(request):
    """A connect string naming one follower only."""
    if request.param == "coord":
        ens = request.getfixturevalue("coord_ensemble")
    else:
        ens = request.getfixturevalue("zk_ensemble")
    return ens.follower_hosts


@pytest.fixture
def zk(hosts):
    c = KazooClient(hosts, timeout=10)
    c.start(timeout=30)
    base = f"/t-{uuid.uuid4().hex[:8]}"
    c.ensure_path(base)
    c.base = base
    yield c
    c.stop()
    c.close()


def _client(hosts):
    c = KazooClient(hosts, timeout=10)
    c.start(timeout=30)
    return c


def test_crud_versions_and_sequentials(zk):
    b = zk.base
    zk.create(f"{b}/a", b"1")
    with pytest.raises(NodeExistsError):
        zk.create(f"{b}/a", b"2")
    st = zk.set(f"{b}/a", b"2", version=0)
    assert st.version == 1
    with pytest.raises(BadVersionError):
        zk.set(f"{b}/a", b"3", version=0)
    seqs = [zk.create(f"{b}/s-", b"", sequence=True) for _ in range(5)]
    assert seqs == sorted(seqs) and len({int(s[-10:]) for s in seqs}) == 5
    tx = zk.transaction()
    tx.create(f"{b}/m1", b"x")
    tx.set_data(f"{b}/a", b"4", version=1)
    tx.delete(f"{b}/m1")
    res = tx.commit()
    assert res[0] == f"{b}/m1" and res[1].version == 2 and res[2] is True
    assert zk.get(f"{b}/a")[0] == b"4"
    zk.delete(f"{b}/a")
    with pytest.raises(NoNodeError):
        zk.get(f"{b}/a")


def test_watches_fire_on_the_follower(zk, hosts):
    b = zk.base
    other = _client(hosts)
    events = []
    got = threading.Event()

    def watcher(ev):
        events.append((ev.type, ev.path))
        got.set()
    zk.create(f"{b}/w", b"")
    zk.get(f"{b}/w", watch=watcher)
    other.set(f"{b}/w", b"changed")
    assert got.wait(10)
    assert events == [("CHANGED", f"{b}/w")]
    other.stop()
    other.close()


def test_lock_recipe_mutual_exclusion(zk, hosts):
    b = zk.base
    clients = [_client(hosts) for _ in range(3)]
    inside = []
    overlap = []

    def work(c, i):
        lock = c.Lock(f"{b}/lock", f"c{i}")
        for _ in range(3):
            with lock:
                inside.append(i)
                if len(inside) > 1:
                    overlap.append(list(inside))
                time.sleep(0.01)
                inside.remove(i)
    ts = [threading.Thread(target=work, args=(c, i)) for i, c in enumerate(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not overlap
    for c in clients:
        c.stop()
        c.close()


def test_election_counter_and_queue_recipes(zk, hosts):
    b = zk.base
    other = _client(hosts)
    won = []
    e1 = zk.Election(f"{b}/election", "one")
    t = threading.Thread(target=e1.run, args=(won.append, "one"))
    t.start()
    t.join(20)
    assert won == ["one"]
    c1 = zk.Counter(f"{b}/counter")
    c2 = other.Counter(f"{b}/counter")
    for _ in range(10):
        c1 += 1
        c2 += 1
    assert c1.value == 20
    q = zk.LockingQueue(f"{b}/queue")
    for i in range(5):
        q.put(str(i).encode())
    oq = other.LockingQueue(f"{b}/queue")
    got = []
    for _ in range(5):
        got.append(oq.get(timeout=10))
        oq.consume()
    assert got == [str(i).encode() for i in range(5)]
    other.stop()
    other.close()


def test_ephemeral_goes_when_session_closes(zk, hosts):
    b = zk.base
    other = _client(hosts)
    other.create(f"{b}/eph", b"", ephemeral=True)
    assert zk.exists(f"{b}/eph") is not None
    other.stop()
    other.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        zk.sync(f"{b}/eph")
        if zk.exists(f"{b}/eph") is None:
            break
        time.sleep(0.05)
    assert zk.exists(f"{b}/eph") is None
