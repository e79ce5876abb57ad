"""Network partitions between real servers, coord and ZooKeeper 3.8 alike, with the history checked.

Every scenario runs on both kinds with the same harness: a 3-server ensemble whose peer links all
pass through the fault proxy (tests/support/faultproxy.py), concurrent kazoo clients doing creates,
CAS setData, deletes, sync'd and local reads and sequential appends (/q/a-), the fault, a heal, then
the final state read from a fresh session. The history must be linearizable per path, lose no
acknowledged write or append, keep zxid and append order in real time and never read back in time.

Partitions are made by the proxy on loopback, not with network namespaces and veth pairs: this
machine allows no traffic to non-loopback addresses (a veth pair needs e.g. 10.x addresses), and the
proxy cuts a peer link in one or both directions just as well. Client links are not proxied: a
client of an isolated leader still reaches it, as a client on the leader's side of a real partition
would, and must get errors (then reconnect elsewhere), never a stale success.

Each test prints one `RESULT` line (kind, acknowledged writes and appends, seconds until the
ensemble served again after each heal, whether the cut server stopped serving) for docs/simulation.md.
"""
from __future__ import annotations

import random
import time

import pytest

from tests.support.ensemble import Ensemble, coord_ensemble_available
from tests.support.faultrun import proxied_ensemble, run_checked

KINDS = ["coord", pytest.param("zookeeper", marks=pytest.mark.realzk)]
FAULT_S = 3.5            # longer than syncLimit x tickTime (2 s): the cut side gives up on the other


@pytest.fixture(params=KINDS)
def ens(request, tmp_path):
    if request.param == "coord" and not coord_ensemble_available():
        pytest.skip("the Zab quorum peer (coord.core.zab.peer) has not landed yet")
    e = proxied_ensemble(tmp_path, request.param)
    try:
        e.start()
        yield e
    finally:
        e.stop()


def hold(ens: Ensemble, sid: int, seconds: float, notes: dict) -> None:
    """Let a fault stand for `seconds`, noting whether server sid stopped serving meanwhile."""
    end = time.monotonic() + seconds
    modes = set()
    while time.monotonic() < end:
        modes.add(ens.members[sid].mode())
        time.sleep(0.1)
    notes.setdefault("cut_server_left", []).append(None in modes)


def heal_and_time(ens: Ensemble, notes: dict) -> None:
    """Heal every fault; note how long until one leader and every server serve again."""
    t0 = time.monotonic()
    ens.proxy.heal()
    ens.wait_serving(wait=60)
    notes.setdefault("recovered_s", []).append(round(time.monotonic() - t0, 2))


def test_two_way_partitions_leader_isolated_with_its_clients_then_a_follower(ens):
    """The leader cut from both followers while two of the six clients are connected to it: the
    followers elect, the old leader stops serving, and its clients reconnect elsewhere with no stale
    success and nothing acknowledged lost. Then a follower cut from the (new) leader, both ways."""
    p = ens.proxy

    def scenario(leader, followers, notes):
        time.sleep(1.0)
        t0 = time.monotonic()
        p.isolate(leader, list(ens.members))        # two clients are on it
        new = ens.wait_serving(sids=followers, wait=90)
        notes["new_leader_after_s"] = round(time.monotonic() - t0, 2)
        hold(ens, leader, 1.5, notes)               # the majority side takes writes meanwhile
        heal_and_time(ens, notes)
        time.sleep(1.0)
        leader = ens.wait_serving()
        f = next(s for s in ens.members if s != leader)
        p.partition(leader, f)                      # the other follower keeps a quorum with the leader
        hold(ens, f, FAULT_S, notes)
        heal_and_time(ens, notes)
        assert new in followers and all(notes["cut_server_left"]), notes  # each cut server stopped serving
    wl, _ = run_checked(ens, "two_way", scenario, on_leader=2)
    # the leader's clients did work before and after: they moved, rather than stalling for good
    done = [o for o in wl.history.ops if o.client in (0, 1) and o.status == "ok"]
    cut = [o for o in wl.history.ops if o.client in (0, 1) and o.status == "info"]
    assert cut, "no op of the isolated leader's clients was cut off: did the fault reach them?"
    last = max(o.call for o in wl.history.ops if o.client != "final")
    assert done and max(o.ret for o in done) > last - 5e9


def test_one_way_partitions(ens):
    """leader -> follower cut (the follower hears nothing, the leader still hears it), then
    follower -> leader (the leader hears nothing from it): the quorum of the other two carries on."""
    p = ens.proxy

    def scenario(leader, followers, notes):
        time.sleep(1.0)
        p.partition_one_way(leader, followers[0])
        hold(ens, followers[0], FAULT_S, notes)
        heal_and_time(ens, notes)
        time.sleep(1.0)
        leader = ens.wait_serving()
        f = next(s for s in ens.members if s != leader)
        p.partition_one_way(f, leader)
        hold(ens, f, FAULT_S, notes)
        heal_and_time(ens, notes)
        assert all(notes["cut_server_left"]), notes
    run_checked(ens, "one_way", scenario, on_leader=1)


def test_flapping_leader_follower_link(ens):
    """The link between the leader and one follower cut and healed every 200-400 ms for 6 s, bytes
    held or dropped (reset on heal) at random."""
    p = ens.proxy
    rnd = random.Random(7)

    def scenario(leader, followers, notes):
        time.sleep(1.0)
        end = time.monotonic() + 6.0
        flaps = 0
        while time.monotonic() < end:
            p.partition(leader, followers[0], mode=rnd.choice(["hold", "drop"]))
            time.sleep(rnd.uniform(0.2, 0.4))
            p.heal()
            time.sleep(rnd.uniform(0.2, 0.4))
            flaps += 1
        heal_and_time(ens, notes)
        assert flaps >= 5
    run_checked(ens, "flapping", scenario, on_leader=1)


def test_zookeeper_election_call_back_address_is_rewritten_to_the_proxy():
    """The harness piece that keeps ZooKeeper's election call-backs on the proxy: a lower sid's
    InitialMessage, split across segments and followed by the dialler's close, reaches the other
    side naming the reverse route; later bytes pass as they are."""
    import socket
    import struct
    from tests.support.faultrun import ZkCallbackProxy

    srv = socket.create_server(("127.0.0.1", 0))
    proxy = ZkCallbackProxy({(1, 3): 0, (3, 1): 45678})
    try:
        port = proxy.route(1, 3, srv.getsockname()[1], name="election")
        addr = b"127.0.0.1:3888"
        msg = struct.pack(">qqi", -65535, 1, len(addr)) + addr + b"rest"
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(msg[:10])               # split across segments
            time.sleep(0.05)
            c.sendall(msg[10:])
        conn, _ = srv.accept()                # the dialler has already closed
        conn.settimeout(5)
        got = b""
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                break
            got += chunk
        conn.close()
        back = b"127.0.0.1:45678"
        assert got == struct.pack(">qqi", -65535, 1, len(back)) + back + b"rest"
    finally:
        proxy.close()
        srv.close()
