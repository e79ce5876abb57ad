"""`coord migrate take-over`: three coord observers of a real ZooKeeper 3.8 ensemble become coord's
own ensemble once the operator has stopped the ZooKeeper servers, keeping zxids, sessions,
ephemerals and watches. (coord only: ZooKeeper has no such step to compare with.)"""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from kazoo.client import KazooClient

from tests.support.coord_server import ROOT
from tests.support.real_zk import four_letter
from tests.support.zk_observer import ObservedEnsemble

pytestmark = pytest.mark.realzk


def take_over(cfg_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coord.cli", "migrate", "take-over", "--config", str(cfg_path)],
                          capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def modes(obs: ObservedEnsemble) -> list[str]:
    out = []
    for _, _, port in obs.ports:
        try:
            text = four_letter("127.0.0.1", port, "srvr", 1.0)
            out.append(next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("Mode:")), text.strip()))
        except OSError as e:
            out.append(str(e))
    return out


def test_take_over_keeps_sessions_ephemerals_watches_and_zxids(tmp_path):
    obs = ObservedEnsemble(tmp_path, "coord", observers=3)
    obs.start()
    try:
        for i in range(3):
            obs.start_observer(i=i)
        cfg = obs.observers[0].workdir / "zoo.cfg"
        clients = [KazooClient(hosts=f"127.0.0.1:{port}", timeout=20) for _, _, port in obs.ports]
        for c in clients:
            c.start(timeout=30)
        fired = threading.Event()
        events = []
        for i, c in enumerate(clients):
            c.create(f"/broker-{i}", b"registered", ephemeral=True, makepath=False)
        clients[0].ensure_path("/controller-data")

        # kazoo ends one-shot watches when its connection drops (the observers stop serving once
        # ZooKeeper is stopped): applications keep watching with the DataWatch recipe, which sets
        # its watch again on the new connection, as the Java client's SetWatches does.

        def watch(data, stat):
            events.append(data)
            if data == b"after take-over":
                fired.set()
        clients[1].DataWatch("/controller-data", watch)
        sessions = [c.client_id[0] for c in clients]
        zk_zxid = clients[0].exists("/broker-0").czxid

        refused = take_over(cfg)
        assert refused.returncode == 1 and "ZooKeeper voters still answer" in refused.stdout, refused
        assert modes(obs) == ["observer"] * 3

        t_stop = time.monotonic()
        for m in obs.voters.members:     # the operator stops every ZooKeeper server
            m.stop()
        t_cmd = time.monotonic()
        done = take_over(cfg)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.count("ok: server") == 3, done.stdout

        def write_ok():
            try:
                clients[0].set("/controller-data", b"after take-over")
                return True
            except Exception:
                return False
        deadline = time.monotonic() + 90
        while not write_ok():
            assert time.monotonic() < deadline, f"no write after the take-over; modes {modes(obs)}"
            time.sleep(0.05)
        t_write = time.monotonic()
        print(f"take-over: write outage {t_write - t_stop:.2f}s from stopping ZooKeeper "
              f"({t_write - t_cmd:.2f}s from the take-over command)")
        assert sorted(modes(obs)) == ["follower", "follower", "leader"]
        assert fired.wait(30) and events[0] == b"" and events[-1] == b"after take-over", events
        for i, c in enumerate(clients):
            assert c.client_id[0] == sessions[i]          # the same sessions, never expired
            c.sync("/")
            st = c.exists(f"/broker-{i}")
            assert st is not None and st.ephemeralOwner == sessions[i]
        st = clients[0].exists("/controller-data")
        assert (st.mzxid >> 32) > (zk_zxid >> 32), "the new epoch must be above ZooKeeper's"
        clients[2].stop()                                    # a closed session's ephemeral goes
        clients[0].sync("/")
        deadline = time.monotonic() + 30
        while clients[0].exists("/broker-2") is not None:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for c in clients[:2]:
            c.stop()
        first = obs.observers[0]                             # restarted: a coord member, no observer
        first.stop()
        first.start()
        deadline = time.monotonic() + 60
        while modes(obs)[0] not in ("follower", "leader"):
            assert time.monotonic() < deadline, modes(obs)
            time.sleep(0.2)
        assert "took over from ZooKeeper earlier" in first.log_text()
    finally:
        obs.stop()
