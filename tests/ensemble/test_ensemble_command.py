"""`coord ensemble`: generated zoo.cfg files, separate processes, connect string, Ctrl-C stops all."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.ensemble import coord_ensemble_available
from tests.support.real_zk import available as realzk_available

ROOT = Path(__file__).resolve().parents[2]


def _base_port() -> int:
    """A base whose client, quorum (+707) and election (+1707) ports are all free, chosen below the
    kernel's ephemeral range (32768+) so that other tests' outgoing connections cannot take them."""
    from coord.ensemble import port_in_use
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        base = rng.randrange(20000, 30000)
        if not any(port_in_use(base + off + i) for off in (0, 707, 1707) for i in range(3)):
            return base
    raise RuntimeError("no free port range")


def _leader_pid(root: Path, connect: str) -> int:
    """The pid of the server that reports Mode: leader, found through its zoo.cfg on the command line."""
    from tests.support.real_zk import four_letter
    for i, hp in enumerate(connect.split(","), 1):
        host, port = hp.split(":")
        if "Mode: leader" in four_letter(host, int(port), "srvr"):
            cfg = str(root / ".coord" / f"s{i}" / "zoo.cfg")
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
                    except OSError:
                        continue
                    if cfg.encode() in cmd:
                        return int(pid)
    raise AssertionError("no leader process found")


@pytest.mark.parametrize("engine", [
    pytest.param("zookeeper", marks=pytest.mark.realzk),
    "coord",
])
def test_ensemble_command_runs_serves_and_stops_on_ctrl_c(tmp_path, engine):
    if engine == "zookeeper" and not realzk_available():
        pytest.skip("real ZooKeeper not installed")
    if engine == "coord" and not coord_ensemble_available():
        pytest.skip("the Zab quorum peer has not landed yet")
    base = _base_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-m", "coord.cli", "ensemble", "-n", "3", "--base-port", str(base),
                          "--engine", engine, "--tick-time", "500"],
                         cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                         start_new_session=True)
    lines = []
    try:
        deadline = time.monotonic() + 90
        connect = None
        while time.monotonic() < deadline and connect is None:
            line = p.stdout.readline().decode(errors="replace")
            if not line:
                break
            lines.append(line)
            if line.startswith("connect string:"):
                connect = line.split(":", 1)[1].strip()
        assert connect == ",".join(f"127.0.0.1:{base + i}" for i in range(3)), "".join(lines[-40:])
        cfgs = sorted((tmp_path / ".coord").glob("s*/zoo.cfg"))
        assert len(cfgs) == 3
        for i, c in enumerate(cfgs, 1):
            text = c.read_text()
            assert f"server.{i}=127.0.0.1:{base + 707 + i - 1}:{base + 1707 + i - 1};127.0.0.1:{base + i - 1}" in text
            assert (c.parent / "data" / "myid").read_text().strip() == str(i)
        from kazoo.client import KazooClient
        zk = KazooClient(connect)
        zk.start(timeout=30)
        zk.create("/hello", b"world")
        assert zk.get("/hello")[0] == b"world"
        # a user kills one server (the leader, the worst case): the other two go on, nothing is lost
        victim = _leader_pid(tmp_path, connect)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 90
        while True:
            try:
                zk.create("/after-kill", b"")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        zk.sync("/")
        assert zk.get("/hello")[0] == b"world"
        zk.stop()
        zk.close()
        p.send_signal(signal.SIGINT)          # Ctrl-C
        out, _ = p.communicate(timeout=30)
        lines.append(out.decode(errors="replace"))
        assert p.returncode == 0, "".join(lines[-40:])
        assert "stopped" in lines[-1]
        from coord.ensemble import port_in_use
        time.sleep(0.5)
        assert not any(port_in_use(base + i) for i in range(3))
        # the servers' logs were streamed with their prefixes
        text = "".join(lines)
        assert all(f"s{i} | " in text for i in (1, 2, 3))
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
