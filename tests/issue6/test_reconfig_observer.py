"""Adding an observer to a running 3-voter coord ensemble by reconfig and removing it again: the
observer serves reads and forwards writes, but does not vote (the quorum stays 2 of the 3 voters),
and once removed it stops serving."""
from __future__ import annotations

import time

import pytest
from kazoo.client import KazooClient

from tests.issue6.test_reconfig_grow_shrink import _configs, _reconfig, reconfig_ensemble
from tests.support.ensemble import Member, _free_ports, coord_ensemble_available

pytestmark = pytest.mark.skipif(not coord_ensemble_available(), reason="no Zab peer")


def _servers(text: str) -> dict[int, str]:
    """sid -> its server line in a /zookeeper/config."""
    return {int(x.split("=", 1)[0][len("server."):]): x for x in text.splitlines() if x.startswith("server.")}


def _client(m: Member) -> KazooClient:
    c = KazooClient(hosts=m.connect_string, timeout=10)
    c.start(timeout=30)
    return c


def _wait_mode(m: Member, want, wait: float = 60.0) -> None:
    deadline = time.monotonic() + wait
    while m.mode() != want and time.monotonic() < deadline:
        time.sleep(0.2)
    assert m.mode() == want, (m.sid, m.mode(), want)


@pytest.mark.timeout(240)
def test_add_and_remove_an_observer(tmp_path):
    ens = reconfig_ensemble(tmp_path)
    try:
        ens.start()
        before = _servers(_configs(ens, [1])[1].decode())
        assert sorted(before) == [1, 2, 3]
        # server 4 starts with the three voters plus itself as an observer, then is added
        ens.members[4] = obs = Member(ens, 4, *_free_ports(3), role="observer")
        ens.write_configs()
        obs.start()
        line = (f"server.4=127.0.0.1:{obs.quorum_port}:{obs.election_port}:observer;"
                f"127.0.0.1:{obs.client_port}")
        _reconfig(ens, joining=line, deadline_s=60)
        configs = _configs(ens, [1, 2, 3])
        assert len(set(configs.values())) == 1, configs
        now = _servers(next(iter(configs.values())).decode())
        assert sorted(now) == [1, 2, 3, 4], now
        assert ":observer;" in now[4] and now[4].endswith(f":{obs.client_port}"), now[4]
        assert {s: now[s] for s in (1, 2, 3)} == before      # the voters unchanged
        _wait_mode(obs, "observer")
        # reads and writes through the observer
        leader = ens.wait_serving(wait=60)
        voter = next(s for s in (1, 2, 3) if s != leader)
        v, o = _client(ens.members[voter]), _client(obs)
        try:
            v.create("/via-voter", b"v")
            o.sync("/via-voter")
            assert o.get("/via-voter")[0] == b"v"
            o.create("/via-observer", b"o")
            v.sync("/via-observer")
            assert v.get("/via-observer")[0] == b"o"
        finally:
            for c in (v, o):
                c.stop()
                c.close()
        # the quorum is still 2 of the 3 voters: one follower down, writes commit
        f1, f2 = [s for s in (1, 2, 3) if s != leader]
        ens.members[f1].stop()
        o = _client(obs)
        try:
            o.retry(o.create, "/two-of-three", b"x")
            assert o.retry(o.get, "/two-of-three")[0] == b"x"
        finally:
            o.stop()
            o.close()
        # a second voter down: leader + observer are no quorum, a write never commits
        ens.members[f2].stop()
        o = KazooClient(hosts=obs.connect_string, timeout=6, connection_retry={"max_tries": 0},
                        command_retry={"max_tries": 0})
        committed = False
        try:
            o.start(timeout=15)
            try:
                o.create("/no-quorum", b"x")
                committed = True
            except Exception:
                pass
        except Exception:
            pass                 # the observer already stopped serving: no write can commit
        finally:
            o.stop()
            o.close()
        assert not committed, "a write committed with one voter and the observer"
        _wait_mode(ens.members[leader], None, wait=60)   # the leader lost its quorum and steps down
        # voters back, then the observer is removed
        ens.members[f1].start()
        ens.members[f2].start()
        ens.wait_serving(wait=90)
        _wait_mode(obs, "observer", wait=60)
        _reconfig(ens, leaving="4", deadline_s=60)
        configs = _configs(ens, [1, 2, 3])
        assert len(set(configs.values())) == 1, configs
        assert sorted(_servers(next(iter(configs.values())).decode())) == [1, 2, 3]
        _wait_mode(obs, None, wait=60)                    # removed: it stops serving
        assert obs.alive                                  # ... but its process is still there
    except BaseException:
        print(ens.dump_logs())
        raise
    finally:
        ens.stop()
    assert not any(m.alive for m in ens.members.values())
