"""Graceful leader handoff through real processes: a SIGTERM'd leader hands over under kazoo load
(coord), the same scenario on real ZooKeeper 3.8 (which re-elects), and `coord ensemble roll`.

Writers are kazoo sessions connected to the followers (tests/ops/outage.py); a planned stop must
cost them no session and, on coord, no disconnection and no election anywhere.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.ops.outage import Writer
from tests.support.ensemble import Ensemble, coord_ensemble_available
from tests.support.real_zk import available as realzk_available

ROOT = Path(__file__).resolve().parents[2]
OUTAGE_BOUND_MS = 2000      # coord measures ~0.1 s (docs/operations.md); margin for a load of 10-20


def _need(kind: str) -> None:
    ok = coord_ensemble_available() if kind == "coord" else realzk_available()
    if not ok:
        if os.environ.get("CI") == "1":
            pytest.fail(f"{kind} is missing under CI=1")
        pytest.skip(f"{kind} not installed")


def _elections_after_start(text: str, since: str = "") -> list[str]:
    """coord's log lines of a server going looking for another reason than its own start (logged at
    or after `since`, a log timestamp "YYYY-MM-DD HH:MM:SS")."""
    out = []
    for ln in text.splitlines():
        if "looking (" in ln and "looking (start)" not in ln:
            m = re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", ln)
            if m is None or m.group(0) >= since:
                out.append(ln)
    return out


@pytest.mark.parametrize("kind", ["coord", pytest.param("zookeeper", marks=pytest.mark.realzk)])
def test_sigterm_leader_under_load(tmp_path, kind):
    _need(kind)
    ens = Ensemble(tmp_path, 3, kind=kind)
    try:
        ens.start()
        leader = ens.leader()
        followers = [s for s in ens.members if s != leader.sid]
        w = Writer(ens.connect_string(followers)).start()
        try:
            w.wait_writes(50)
            since = time.strftime("%Y-%m-%d %H:%M:%S")
            t0 = time.monotonic()
            leader.stop()                                  # SIGTERM, wait for the exit
            w.wait_writes(50, timeout=60)
            outage = w.outage_ms(t0)
            lost = w.lost_before(time.monotonic())
            states = [s for _, s in w.states]
        finally:
            w.stop()
        new = ens.wait_serving(sids=followers)
        assert new in followers
        assert not lost, f"session lost: {states}"
        assert outage is not None
        if kind == "coord":
            old_log = leader.log_text()
            assert f"handed leadership to {new}" in old_log, old_log[-3000:]
            assert f"took over from {leader.sid}" in ens.members[new].log_text()
            for s in followers:
                assert not _elections_after_start(ens.members[s].log_text(), since), ens.dump_logs()
            assert states == ["CONNECTED"], f"the client was disconnected: {states}"
            assert outage < OUTAGE_BOUND_MS, f"write outage {outage:.0f} ms"
    finally:
        ens.stop()


def _base_port() -> int:
    from tests.ensemble.test_ensemble_command import _base_port as base
    return base()


def _foreground(tmp_path, engine: str = "coord"):
    """`coord ensemble -n 3` (tickTime 200) in tmp_path; (process, connect string, its output lines,
    read on by a thread: the first incarnations log through it)."""
    base = _base_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-m", "coord.cli", "ensemble", "-n", "3", "--base-port", str(base),
                          "--tick-time", "200", "--engine", engine], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, env=env, start_new_session=True)
    lines: list[str] = []
    connect = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and connect is None:
        line = p.stdout.readline().decode(errors="replace")
        if not line:
            break
        lines.append(line)
        if line.startswith("connect string:"):
            connect = line.split(":", 1)[1].strip()
    if connect is None:
        _stop_foreground(p)
        raise AssertionError("".join(lines[-40:]))
    threading.Thread(target=lambda: lines.extend(ln.decode(errors="replace") for ln in p.stdout),
                     daemon=True).start()
    return p, connect, lines


def _stop_foreground(p) -> None:
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def _coord_ensemble(tmp_path, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "coord.cli", "ensemble", *args, "--dir", str(tmp_path / ".coord")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def _server_logs(root: Path, lines: list[str]) -> dict[str, str]:
    logs = {d.name: (d / "server.log").read_text(errors="replace") for d in root.glob("s*/")
            if (d / "server.log").exists()}
    logs["foreground"] = "".join(lines)
    return logs


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["coord", pytest.param("zookeeper", marks=pytest.mark.realzk)])
def test_rolling_restart_under_load_no_failover_no_session_loss(tmp_path, kind):
    """The same roll of real ZooKeeper 3.8 (`--engine zookeeper`) keeps the session too, but its
    leader's stop is an election: only coord is held to "no failover"."""
    _need(kind)
    p, connect, lines = _foreground(tmp_path, kind)
    root = tmp_path / ".coord"
    try:
        w = Writer(connect).start()
        try:
            w.wait_writes(50)
            since = time.strftime("%Y-%m-%d %H:%M:%S")
            r = _coord_ensemble(tmp_path, "roll", "--engine", kind)
            assert r.returncode == 0, r.stdout + r.stderr
            w.wait_writes(50, timeout=60)
            lost = w.lost_before(time.monotonic())
            states = [s for _, s in w.states]
            gaps = [b - a for a, b in zip(w.times, w.times[1:])]
        finally:
            w.stop()
        out = r.stdout
        assert out.count("restarting server") == 3 and "rolled 3 servers" in out, out
        roles = re.findall(r"restarting server \d \((\w+)\)", out)
        assert roles[-1] == "leader" and roles[:2] == ["follower", "follower"], out
        assert not lost, f"session lost during the roll: {states}"
        assert max(gaps) * 1000 < 30_000, f"writes stalled {max(gaps):.1f} s"
        if kind == "zookeeper":
            return
        # No failover: the only leader change is the handoff; no server went looking but to start.
        logs = _server_logs(root, lines)
        text = "\n".join(logs.values())
        assert "handed leadership to" in text and "took over from" in text, text[-4000:]
        for name, log in logs.items():
            assert not _elections_after_start(log, since), f"{name} went looking:\n{log[-3000:]}"
        # the client reconnects when its own server restarts, within its session; writes go on
        assert max(gaps) * 1000 < 10_000, f"writes stalled {max(gaps):.1f} s"
    finally:
        _stop_foreground(p)


@pytest.mark.slow
def test_removing_the_leader_hands_over_first(tmp_path):
    """`coord ensemble remove L` of the leader: SIGTERM first (handoff), then the reconfig."""
    _need("coord")
    p, connect, lines = _foreground(tmp_path)
    root = tmp_path / ".coord"
    try:
        from tests.support.real_zk import four_letter
        hosts = connect.split(",")
        modes = {i: four_letter("127.0.0.1", int(h.rsplit(":", 1)[1]), "srvr") for i, h in enumerate(hosts, 1)}
        leader = next(i for i, m in modes.items() if "Mode: leader" in m)
        others = ",".join(h for i, h in enumerate(hosts, 1) if i != leader)
        w = Writer(others).start()
        try:
            w.wait_writes(50)
            since = time.strftime("%Y-%m-%d %H:%M:%S")
            r = _coord_ensemble(tmp_path, "remove", str(leader))
            assert r.returncode == 0, r.stdout + r.stderr
            w.wait_writes(50, timeout=60)
            lost = w.lost_before(time.monotonic())
            states = [s for _, s in w.states]
        finally:
            w.stop()
        assert f"removed server {leader}" in r.stdout
        assert len(r.stdout.split("connect string:", 1)[1].strip().split(",")) == 2, r.stdout
        assert not lost and states == ["CONNECTED"], states
        logs = _server_logs(root, lines)
        assert "handed leadership to" in logs["foreground"], logs["foreground"][-4000:]
        for name, log in logs.items():
            assert not _elections_after_start(log, since), f"{name} went looking:\n{log[-3000:]}"
    finally:
        _stop_foreground(p)
