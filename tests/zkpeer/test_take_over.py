"""`coord migrate take-over`: three coord observers of a real ZooKeeper 3.8 ensemble become coord's
own ensemble once the operator has stopped the ZooKeeper servers, keeping zxids, sessions,
ephemerals and watches. (coord only: ZooKeeper has no such step to compare with.)"""
from __future__ import annotations

import asyncio
import datetime
import logging
import re
import subprocess
import sys
import threading
import time

import pytest
from kazoo.client import KazooClient

from coord.aio.zoocfg import parse as parse_cfg
from coord.migrate import take_over as take_over_in_process
from tests.support.coord_server import ROOT
from tests.support.kazoo_clients import stop_all
from tests.support.real_zk import four_letter
from tests.support.zk_observer import ObservedEnsemble

pytestmark = [pytest.mark.realzk, pytest.mark.slow]


def take_over(cfg_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coord.cli", "migrate", "take-over", "--config", str(cfg_path)],
                          capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def modes(obs: ObservedEnsemble) -> list[str]:
    out = []
    for _, _, port in obs.ports:
        try:
            text = four_letter("127.0.0.1", port, "srvr", 5.0)   # 1 s timed out at load 67
            out.append(next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("Mode:")), text.strip()))
        except OSError as e:
            out.append(str(e))
    return out


STEPS = [  # (what, pattern in an observer's log): the take-over's steps, in the order they happen
    ("holds its clients (ZooKeeper gone)", r"holding \d+ client connections"),
    ("tkov asked", r"take-over asked \(leader \d"),
    ("refuse-check done", r"voter ports answer \(checked"),
    ("switched to coord's Zab", r"(leading|following \d+) without an election"),
    ("leader: epoch proposed", r"proposing epoch \d+"),
    ("leader: epoch promised", r"epoch \d+ promised by"),
    ("leader: epoch established", r"epoch \d+ established with"),
]


def log_events(text: str, sid: int) -> list[tuple[float, str]]:
    """(wall time, step) for each first match of STEPS in a coord log (its timestamps are local time, ms)."""
    out = []
    for what, pat in STEPS:
        for line in text.splitlines():
            if re.search(pat, line):
                t = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                out.append((t, f"server {sid}: {what}"))
                break
    for line in text.splitlines():
        if "take-over steps:" in line:
            print(f"  server {sid}: {line.split('take-over steps: ', 1)[1]}")
    return out


class Marks(logging.Handler):
    """The in-process command's own steps (coord.migrate's log), with their wall times."""
    def __init__(self):
        super().__init__(logging.INFO)
        self.events: list[tuple[float, str]] = []

    def emit(self, record):
        self.events.append((record.created, "command: " + record.getMessage()))


def test_take_over_keeps_sessions_ephemerals_watches_and_zxids(tmp_path):
    obs = ObservedEnsemble(tmp_path, "coord", observers=3)
    obs.start()
    clients: list[KazooClient] = []
    try:
        for i in range(3):
            obs.start_observer(i=i)
        cfg = obs.observers[0].workdir / "zoo.cfg"
        clients += [KazooClient(hosts=f"127.0.0.1:{port}", timeout=20) for _, _, port in obs.ports]
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
        clients[1].sync("/controller-data")      # observer 5 has applied the create observer 4 forwarded
        clients[1].DataWatch("/controller-data", watch)
        sessions = [c.client_id[0] for c in clients]
        zk_zxid = clients[0].exists("/broker-0").czxid

        refused = take_over(cfg)
        assert refused.returncode == 1 and "ZooKeeper voters still answer" in refused.stdout, refused
        assert modes(obs) == ["observer"] * 3

        # A client writes in a loop through observer 4 across the whole switch: a write asked while
        # no leader is reachable is held by the observer and answered after the take-over.
        acks: list[float] = []
        errors: list[str] = []
        stop_writing = threading.Event()
        clients[0].ensure_path("/loop")

        def writer():
            i = 0
            while not stop_writing.is_set():
                try:
                    clients[0].set("/loop", str(i).encode())
                    acks.append(time.monotonic())
                except Exception as e:
                    errors.append(f"{type(e).__name__}: {e}")
                    time.sleep(0.01)
                i += 1
        w = threading.Thread(target=writer, daemon=True)
        w.start()
        while len(acks) < 20:
            time.sleep(0.01)
        t_stop = time.monotonic()
        wall = time.time() - t_stop          # monotonic -> wall clock, for the timeline
        for m in obs.voters.members:     # the operator stops every ZooKeeper server
            m.stop()
        time.sleep(0.5)                  # the operator, then the command (run here in-process: the
        t_cmd = time.monotonic()         # CLI's own Python start, ~2 s on this machine, is not the outage)
        marks = Marks()
        mlog = logging.getLogger("coord.migrate")
        mlog.addHandler(marks)
        mlog.setLevel(logging.INFO)
        try:
            ok, lines = asyncio.run(take_over_in_process(parse_cfg(cfg.read_text(), str(cfg))))
        finally:
            mlog.removeHandler(marks)
        t_done = time.monotonic()
        assert ok and sum("ok: server" in ln and "clients kept" in ln for ln in lines) == 3, lines
        deadline = time.monotonic() + 60
        while not [a for a in acks if a > t_cmd]:
            assert time.monotonic() < deadline, f"no write after the take-over; modes {modes(obs)}; {errors[-3:]}"
            time.sleep(0.01)
        t_write = min(a for a in acks if a > t_cmd)
        clients[0].set("/controller-data", b"after take-over")
        stop_writing.set()
        w.join(30)
        print(f"take-over: write outage {t_write - t_stop:.3f}s from stopping ZooKeeper, "
              f"{t_write - t_cmd:.3f}s from the take-over command (command {t_done - t_cmd:.3f}s); "
              f"{len(errors)} client errors")
        steps = [(wall + t_stop, "ZooKeeper servers being stopped"), (wall + t_cmd, "command starts"),
                  (wall + t_done, "command returns"), (wall + t_write, "first write after the command acked")]
        steps += marks.events
        for k, o in enumerate(obs.observers):
            steps += log_events(o.log_text(), 4 + k)
        print("take-over timeline (ms from the command):")
        for t, what in sorted(steps):
            print(f"  {(t - wall - t_cmd) * 1000:8.1f}  {what}")
        assert errors == [], errors[:5]       # held and answered, never failed
        deadline = time.monotonic() + 60
        while sorted(modes(obs)) != ["follower", "follower", "leader"]:   # the last follower may still sync
            assert time.monotonic() < deadline, modes(obs)
            time.sleep(0.1)
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
        first.start(60)     # PyPy's start alone took over 20 s at load 50
        deadline = time.monotonic() + 60
        while modes(obs)[0] not in ("follower", "leader"):
            assert time.monotonic() < deadline, modes(obs)
            time.sleep(0.2)
        assert "took over from ZooKeeper earlier" in first.log_text()
    finally:
        stop_all(clients)
        obs.stop()


def test_take_over_asks_observers_added_by_reconfig(tmp_path):
    """The operator's zoo.cfg names one coord observer (server.4); server.5 joined later by `reconfig
    -add`. The command reads the ensemble's current configuration from server.4 (`tkov members`) and
    takes server.5 over too: both become coord's ensemble, a client of server.5 keeps its session."""
    obs = ObservedEnsemble(tmp_path, "coord", observers=2, static_join=False,
                           voter_cfg={"reconfigEnabled": "true", "skipACL": "yes"},
                           observer_cfg={"reconfigEnabled": "true"})
    obs.start()
    clients: list[KazooClient] = []
    try:
        admin = KazooClient(hosts=obs.voters.connect_string, timeout=20)
        clients.append(admin)
        admin.start(timeout=30)
        admin.reconfig(joining=f"server.4={obs.observer_specs[4]}", leaving=None, new_members=None)
        obs.start_observer(i=0)
        # the operator's file: the voters and server.4, written before server.5 existed
        cfg_text = "".join(f"{k}={v}\n" for k, v in obs.coord_cfg().items() if k != "server.5")
        admin.reconfig(joining=f"server.5={obs.observer_specs[5]}", leaving=None, new_members=None)
        obs.start_observer(i=1)
        admin.stop()
        late = KazooClient(hosts=f"127.0.0.1:{obs.ports[1][2]}", timeout=20)
        clients.append(late)
        late.start(timeout=30)
        late.create("/broker-5", b"registered", ephemeral=True)
        session = late.client_id[0]
        wait_until_members = time.monotonic() + 30          # server.4 has applied the second reconfig
        while "server.5=" not in four_letter("127.0.0.1", obs.ports[0][2], "conf", 2.0):
            assert time.monotonic() < wait_until_members, "server.4 never learnt of server.5"
            time.sleep(0.2)
        for m in obs.voters.members:
            m.stop()
        cfg = parse_cfg(cfg_text, "operator-zoo.cfg")
        assert sorted(s for s, q in cfg.servers.items() if q.role == "observer") == [4]
        ok, lines = asyncio.run(take_over_in_process(cfg))
        assert ok, lines
        assert any(ln.startswith("members: server.4's view") and "coord observers 4,5" in ln for ln in lines), lines
        assert sum(ln.startswith(("server.4: ok:", "server.5: ok:")) for ln in lines) == 2, lines
        deadline = time.monotonic() + 60
        while sorted(modes(obs)) != ["follower", "leader"]:
            assert time.monotonic() < deadline, modes(obs)
            time.sleep(0.1)
        late.set("/broker-5", b"after take-over")       # a write through the reconfig-added server
        assert late.client_id[0] == session
        st = late.exists("/broker-5")
        assert st is not None and st.ephemeralOwner == session
    finally:
        stop_all(clients)
        obs.stop()
