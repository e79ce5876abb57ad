"""coord observing a live, real ZooKeeper 3.8 ensemble (issue 18), and, as the reference, a real
ZooKeeper observer in the same harness and the same scenarios (tests.support.zk_observer).

The 3 voters' zoo.cfg carry the observer's `server.4=...:observer` line from the start (the static
join); the observer is started on the same zoo.cfg (coord adds coord.peerProtocol=zookeeper)."""
from __future__ import annotations

import threading
import time

import pytest
from kazoo.client import KazooClient

from tests.support.names import fresh
from tests.support.real_zk import four_letter
from tests.support.zk_observer import KINDS, ObservedEnsemble, zk_tree_digest

pytestmark = pytest.mark.realzk


_started: list[KazooClient] = []


def client(hosts: str, **kw) -> KazooClient:
    c = KazooClient(hosts=hosts, timeout=10, **kw)
    _started.append(c)
    c.start(timeout=30)
    return c


@pytest.fixture(autouse=True)
def _stop_clients():
    """A test that fails half-way leaves no kazoo client retrying (and the interpreter alive)."""
    yield
    while _started:
        c = _started.pop()
        try:
            c.stop()
            c.close()
        except Exception:   # already stopped and closed by kazoo itself (a failed start)
            pass


def wait_until(cond, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = cond()
            if last:
                return last
        except Exception as e:   # the ensemble may be between leaders
            last = e
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout}s (last: {last!r})")


def digests_equal(obs: ObservedEnsemble, leader_hosts: str):
    """Sync both views, then ZooKeeper's digest of the whole tree from the leader and the observer."""
    a = client(leader_hosts)
    b = client(obs.observer_connect)
    try:
        a.sync("/")
        b.sync("/")
        return zk_tree_digest(a), zk_tree_digest(b)
    finally:
        a.stop()
        b.stop()


@pytest.fixture(scope="module", params=KINDS)
def observed(request, tmp_path_factory):
    obs = ObservedEnsemble(tmp_path_factory.mktemp(f"zkobs-{request.param}"), request.param)
    obs.start()
    try:
        c = client(obs.voters.connect_string)
        c.ensure_path("/pre")
        for i in range(200):
            c.create(f"/pre/n{i}", b"x" * (i % 50))
        c.stop()
        obs.start_observer()
        yield obs
    finally:
        obs.stop()


def test_sync_and_digest_equal_under_write_load(observed):
    # fresh names: the ensemble is the module's, and a rerun must not meet this run's nodes
    tmp, via_obs = fresh("/pre/tmp"), fresh("/via-obs")
    leader = observed.voters.leader().connect_string
    ours, theirs = digests_equal(observed, leader)
    assert ours == theirs, "not equal right after the sync"
    stop = threading.Event()
    done = [0]

    def writer():
        c = client(observed.voters.connect_string)
        i = 0
        try:
            while not stop.is_set():
                c.set(f"/pre/n{i % 200}", b"w%d" % i)
                c.create("/load-", b"", sequence=True, ephemeral=(i % 3 == 0))
                if i % 5 == 0:
                    c.create(f"{tmp}-{i}", b"t")
                    c.delete(f"{tmp}-{i}")
                i += 1
                done[0] = i
        finally:
            c.stop()

    t = threading.Thread(target=writer)
    t.start()
    via = client(observed.observer_connect)
    try:
        for i in range(30):      # writes through the observer interleave with the load
            via.create(f"{via_obs}-{i}", b"o", ephemeral=bool(i % 2))
        time.sleep(3)
    finally:
        stop.set()
        t.join(60)
    assert done[0] > 20
    mntr = observed.observer_mntr()
    assert mntr.get("zk_digest_mismatches_count") == "0", mntr
    ours, theirs = digests_equal(observed, leader)
    assert ours == theirs and ours[1] > 200
    via.stop()


def test_kazoo_through_the_observer_ephemerals_watches_sequentials(observed):
    app = fresh("/app")   # the module's ensemble: a rerun must not meet this run's children
    voters = client(observed.voters.connect_string)
    via = client(observed.observer_connect)
    try:
        via.ensure_path(app)
        names = [via.create(f"{app}/job-", b"", sequence=True) for _ in range(3)]
        assert names == sorted(names) and len(set(names)) == 3
        voters.sync(app)
        assert sorted(voters.get_children(app)) == sorted(n.rsplit("/", 1)[1] for n in names)

        fired = threading.Event()
        seen = []

        def watch(ev):
            seen.append((ev.type, ev.path))
            fired.set()
        via.get(app, watch=watch)
        voters.set(app, b"changed by a voter's client")
        assert fired.wait(20), "data watch set through the observer did not fire"
        assert seen == [("CHANGED", app)]
        assert via.get(app)[0] == b"changed by a voter's client"

        eph = client(observed.observer_connect)
        eph.create(f"{app}/alive", b"", ephemeral=True)
        voters.sync(app)
        assert voters.exists(f"{app}/alive").ephemeralOwner == eph.client_id[0]
        eph.stop()       # closeSession through the observer: the leader removes the ephemeral
        wait_until(lambda: voters.exists(f"{app}/alive") is None, "ephemeral gone on the voters")
        via.sync(app)
        assert via.exists(f"{app}/alive") is None
    finally:
        via.stop()
        voters.stop()


def test_a_session_moves_from_a_voter_to_the_observer_and_keeps_writing(observed):
    """The reconnect is REVALIDATEd by the leader, which makes the observer the session's owner: its
    writes through the observer are not SESSIONMOVED, and its ephemerals survive the move."""
    moving = fresh("/moving")   # the module's ensemble: a rerun must not meet this run's ephemerals
    first = client(observed.voters.members[0].connect_string)
    first.create(moving, b"", ephemeral=True)
    sid, passwd = first.client_id
    moved = KazooClient(hosts=observed.observer_connect, timeout=10)
    _started.append(moved)
    moved._session_id, moved._session_passwd = sid, passwd
    moved.start(timeout=30)
    try:
        assert moved.client_id[0] == sid
        moved.create(f"{moving}-2", b"", ephemeral=True)
        assert moved.exists(moving).ephemeralOwner == sid
        assert moved.exists(f"{moving}-2").ephemeralOwner == sid
    finally:
        moved.stop()
        first.stop()
    v = client(observed.voters.connect_string)
    wait_until(lambda: v.exists(moving) is None and v.exists(f"{moving}-2") is None, "ephemerals gone")
    v.stop()


def test_observer_restarted_syncs_again(observed):
    down = fresh("/while-down")   # the module's ensemble: a rerun must not meet this run's nodes
    recovered_before = observed.observer_log().count("recovered zxid")   # each start appends to the log
    observed.stop_observer()
    c = client(observed.voters.connect_string)
    c.ensure_path(down)
    for i in range(40):
        c.create(f"{down}/n{i}", b"%d" % i)
    c.stop()
    t0 = time.monotonic()
    observed.start_observer()
    took = time.monotonic() - t0
    via = client(observed.observer_connect)
    try:
        assert len(via.get_children(down)) == 40
    finally:
        via.stop()
    ours, theirs = digests_equal(observed, observed.voters.leader().connect_string)
    assert ours == theirs
    if observed.kind == "coord":
        # it kept its state on disk and the leader's committed log reaches back to it: a DIFF, as
        # ZooKeeper's leader gives a restarted ZooKeeper observer
        m = observed.observer_mntr()
        assert (m["zk_zkpeer_diff_syncs"], m["zk_zkpeer_snap_syncs"]) == ("1", "0"), m
        recovered = [ln for ln in observed.observer_log().splitlines() if "recovered zxid" in ln]
        assert len(recovered) == recovered_before + 1 and "recovered zxid 0x0 " not in recovered[-1], recovered
    print(f"{observed.kind} observer restarted and observing in {took:.2f}s")


@pytest.mark.parametrize("kind", KINDS)
def test_observer_killed_before_and_after_its_snap_is_on_disk(kind, tmp_path):
    """A ZooKeeper observer writes the leader's tree before it serves; a coord observer serves first
    and writes it in the background once a txn proves the tree exact. Killed before that, it
    restarts from what its disk held (here nothing) and is synced again; killed after, it restarts
    from the snapshot and is DIFFed. Either way it serves the leader's tree."""
    obs = ObservedEnsemble(tmp_path, kind)
    obs.start()
    try:
        leader = client(obs.voters.connect_string)
        leader.ensure_path("/pre")
        for i in range(50):
            leader.create(f"/pre/n{i}", b"%d" % i)
        obs.start_observer()
        obs.stop_observer(kill=True)            # no txn since the SNAP: coord has written nothing yet
        leader.create("/pre/while-down", b"1")
        obs.start_observer()
        ours, theirs = digests_equal(obs, obs.voters.leader().connect_string)
        assert ours == theirs
        if kind == "coord":
            m = obs.observer_mntr()
            assert m["zk_zkpeer_snap_syncs"] == "1", m
            recovered = [ln for ln in obs.observer_log().splitlines() if "recovered zxid" in ln]
            assert "recovered zxid 0x0 " in recovered[-1], recovered
        leader.create("/pre/after", b"2")       # verifies the tree: now it goes to disk
        if kind == "coord":
            wait_until(lambda: "on disk as snapshot" in obs.observer_log(), "the SNAP's tree on disk", 120)
        else:
            time.sleep(1)
        obs.stop_observer(kill=True)
        leader.create("/pre/while-down-again", b"3")
        obs.start_observer()
        via = client(obs.observer_connect)
        assert via.get("/pre/while-down-again")[0] == b"3"
        ours, theirs = digests_equal(obs, obs.voters.leader().connect_string)
        assert ours == theirs
        if kind == "coord":
            m = obs.observer_mntr()
            assert (m["zk_zkpeer_diff_syncs"], m["zk_zkpeer_snap_syncs"]) == ("1", "0"), m
    finally:
        obs.stop()


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_zookeeper_leader_killed_the_observer_follows_the_new_leader(kind, tmp_path):
    obs = ObservedEnsemble(tmp_path, kind)
    obs.start()
    try:
        obs.start_observer()
        via = client(obs.observer_connect)
        via.create("/before", b"1")
        old = obs.voters.leader()
        old.stop(kill=True)
        t0 = time.monotonic()
        new = wait_until(lambda: next((m for m in obs.voters.members if m.proc is not None and m.mode() == "leader"),
                                      None), "a new ZooKeeper leader")
        assert new is not old
        obs.wait_observing(60)
        wait_until(lambda: via.create("/after-failover", b"2"), "a write through the observer after the failover")
        print(f"{kind} observer writing again {time.monotonic() - t0:.2f}s after the leader was killed")
        via.stop()
        ours, theirs = digests_equal(obs, new.connect_string)
        assert ours == theirs
        c = client(new.connect_string)
        assert c.get("/after-failover")[0] == b"2"
        c.stop()
    finally:
        obs.stop()


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_join_by_dynamic_reconfig(kind, tmp_path):
    """The voters run with reconfigEnabled and do not name the observer; `reconfig -add` of its
    :observer line lets it in (the observer starts from a zoo.cfg naming the voters and itself)."""
    obs = ObservedEnsemble(tmp_path, kind, static_join=False,
                           voter_cfg={"reconfigEnabled": "true", "skipACL": "yes"},
                           observer_cfg={"reconfigEnabled": "true"})
    obs.start()
    try:
        c = client(obs.voters.connect_string)
        c.create("/before-join", b"1")
        data, _ = c.reconfig(joining=f"server.4={obs.observer_specs[4]}", leaving=None, new_members=None)
        assert b"server.4=" in data and b":observer" in data
        obs.start_observer()
        c.create("/after-join", b"2")
        via = client(obs.observer_connect)
        via.sync("/")
        assert via.get("/before-join")[0] == b"1" and via.get("/after-join")[0] == b"2"
        via.create("/written-through-the-joined-observer", b"3")
        c.sync("/")
        assert c.get("/written-through-the-joined-observer")[0] == b"3"
        # A reconfig committed while observing becomes the observer's view of the ensemble (its
        # `conf` membership: whom it looks for a leader among, and whom a take-over makes members),
        # as ZooKeeper's observer activates it (INFORMANDACTIVATE).
        assert conf_members(obs) == [1, 2, 3, 4]
        leader = obs.voters.leader()
        gone = next(m.myid for m in obs.voters.members if m is not leader)   # a follower: no election
        at_leader = client(leader.connect_string)
        data, _ = at_leader.reconfig(joining=None, leaving=str(gone), new_members=None)
        at_leader.stop()
        assert f"server.{gone}=".encode() not in data
        wait_until(lambda: conf_members(obs) == sorted({1, 2, 3, 4} - {gone}),
                   f"the observer's membership without server {gone}", 30)
        if kind == "coord":
            version = next(ln.split("=", 1)[1] for ln in data.decode().splitlines() if ln.startswith("version="))
            assert obs.observer_mntr()["zk_zkpeer_config_version"] == f"0x{version}"
        via.sync("/")
        assert via.get("/zookeeper/config")[0] == data
        via.create("/after-reconfig", b"4")
        via.stop()
        c.stop()
        ours, theirs = digests_equal(obs, obs.voters.leader().connect_string)
        assert ours == theirs
    finally:
        obs.stop()


def conf_members(obs: ObservedEnsemble) -> list[int]:
    """The server ids in the observer's `conf` membership (ZooKeeper's QuorumVerifier, coord's view)."""
    text = four_letter("127.0.0.1", obs.oc, "conf", 2.0)
    return sorted(int(ln.split("=", 1)[0][len("server."):]) for ln in text.splitlines() if ln.startswith("server."))


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_join_time_and_reads_with_a_larger_tree(kind, tmp_path):
    """Time for a fresh observer to join and be synced with 5k znodes (20k: docs/migration.md), and
    reads/s it serves to one kazoo client: printed for the report, coord and ZooKeeper alike."""
    n = 5000
    obs = ObservedEnsemble(tmp_path, kind)
    obs.start()
    try:
        c = client(obs.voters.connect_string)
        c.ensure_path("/big")
        for start in range(0, n, 1000):
            for r in [c.create_async(f"/big/n{i}", b"v" * 100) for i in range(start, start + 1000)]:
                r.get(timeout=60)
        t0 = time.monotonic()
        obs.start_observer(wait=300)
        joined = time.monotonic() - t0
        via = client(obs.observer_connect)
        assert len(via.get_children("/big")) == n
        t1 = time.monotonic()
        done = 0
        for start in range(0, n, 64 * 20):
            batch = [via.get_async(f"/big/n{i}") for i in range(start, min(n, start + 64 * 20))]
            for r in batch:
                r.get(timeout=60)
            done += len(batch)
        reads = done / (time.monotonic() - t1)
        print(f"{kind} observer: joined and synced {n} znodes in {joined:.2f}s; {reads:.0f} reads/s (kazoo, one client)")
        via.stop()
        c.stop()
        ours, theirs = digests_equal(obs, obs.voters.leader().connect_string)
        assert ours == theirs
    finally:
        obs.stop()
