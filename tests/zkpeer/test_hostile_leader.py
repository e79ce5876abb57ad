"""Hostile or unexpected input from a ZooKeeper "leader" (fake voters, tests.support.fake_zk_peers):
the observer closes the link, never serves and applies nothing; coord says why in its log. The same
fake ensemble faces a real ZooKeeper observer as the reference."""
from __future__ import annotations

import struct
import time

import pytest

from coord.jute import quorum as Q
from tests.support.coord_server import CoordProcess
from tests.support.fake_zk_peers import FakeVoters
from tests.support.real_zk import RealZooKeeper, four_letter, free_port
from tests.support.zk_observer import KINDS

pytestmark = pytest.mark.realzk

GARBAGE = b"\x00\x00\x00\x63" + bytes(range(60))
OTHER_PROTOCOL = Q.QuorumPacket(Q.LEADERINFO, 1 << 32, struct.pack(">i", 0x20000)).encode()


def start_observer(kind, workdir, fake: FakeVoters):
    q, e, c = free_port(), free_port(), free_port()
    spec = f"127.0.0.1:{q}:{e}:observer;127.0.0.1:{c}"
    fake.start({4: spec})
    servers = {sid: s + ":participant" for sid, s in fake.servers.items()}
    servers[4] = spec
    if kind == "coord":
        cfg = {"tickTime": "500", "initLimit": "10", "syncLimit": "5", "coord.peerProtocol": "zookeeper"}
        cfg.update({f"server.{sid}": s for sid, s in servers.items()})
        obs = CoordProcess(workdir, c, extra_cfg=cfg)
        obs.data_dir.mkdir(parents=True, exist_ok=True)
        (obs.data_dir / "myid").write_text("4\n")
        obs.start()
        return obs, c
    obs = RealZooKeeper(workdir, c, myid=4, servers=servers,
                        extra_cfg={"peerType": "observer", "tickTime": "500"})
    obs.start()
    return obs, c


def never_serves(port: int, fake: FakeVoters, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while fake.leader_links_closed < 2:          # it came back and was refused again: no loop of trust
        assert time.monotonic() < deadline, "the observer did not close the link to the fake leader"
        time.sleep(0.1)
    out = four_letter("127.0.0.1", port, "srvr", 2.0)
    assert "Mode: observer" not in out, out


@pytest.mark.parametrize("kind", KINDS)
def test_garbage_from_the_leader_closes_the_link(kind, tmp_path):
    fake = FakeVoters(GARBAGE)
    obs = None
    try:
        obs, port = start_observer(kind, tmp_path / kind, fake)
        never_serves(port, fake)
        assert all(r[:4] == struct.pack(">i", Q.OBSERVERINFO) for r in fake.registrations)
        if kind == "coord":
            assert "not ZooKeeper's peer protocol from leader 1: unknown quorum packet type 99" in obs.log_text()
    finally:
        if obs is not None:
            obs.stop()
        fake.close()


def test_another_learner_protocol_version_is_refused_with_a_clear_message(tmp_path):
    """coord only: ZooKeeper's learner takes any version LEADERINFO announces (it has one)."""
    fake = FakeVoters(OTHER_PROTOCOL)
    obs = None
    try:
        obs, port = start_observer("coord", tmp_path, fake)
        never_serves(port, fake)
        assert "ZooKeeper leader speaks learner protocol 0x20000, only 0x10000" in obs.log_text()
    finally:
        if obs is not None:
            obs.stop()
        fake.close()
