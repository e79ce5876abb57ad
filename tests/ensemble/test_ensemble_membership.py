"""`coord ensemble add` / `remove N` against a running `coord ensemble -n 3` (real processes): grow to
5 voters, shrink back to 3 (one foreground server, one added one), data intact, Ctrl-C stops all."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tests.ensemble.test_ensemble_command import ROOT, _base_port
from tests.support.ensemble import coord_ensemble_available

pytestmark = pytest.mark.skipif(not coord_ensemble_available(), reason="no Zab peer")


def _coord(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "coord.cli", "ensemble", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=150)


def _voters(connect: str) -> list[int]:
    c = KazooClient(connect, timeout=10)
    c.start(timeout=30)
    try:
        c.sync("/zookeeper/config")
        text = c.get("/zookeeper/config")[0].decode()
    finally:
        c.stop()
        c.close()
    return sorted(int(line.split("=")[0][len("server."):]) for line in text.splitlines()
                  if line.startswith("server.") and "observer" not in line)


def _processes_of(root: Path) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if str(root / ".coord").encode() in cmd and b"serve" in cmd:
                out.append(int(pid))
    return out


@pytest.mark.timeout(240)
def test_add_twice_remove_twice(tmp_path):
    base = _base_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    fg = subprocess.Popen([sys.executable, "-m", "coord.cli", "ensemble", "-n", "3", "--base-port", str(base),
                           "--tick-time", "500", "--no-fsync", "--quiet"],
                          cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                          start_new_session=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 90
        connect = None
        while time.monotonic() < deadline and connect is None:
            line = fg.stdout.readline().decode(errors="replace")
            if not line:
                break
            lines.append(line)
            if line.startswith("CONNECT "):
                connect = line.split(" ", 1)[1].strip()
        assert connect, "".join(lines[-40:])
        pw = tmp_path / ".coord" / "super.password"
        assert stat.S_IMODE(pw.stat().st_mode) == 0o600
        assert "reconfigEnabled=true" in (tmp_path / ".coord" / "s1" / "zoo.cfg").read_text()
        zk = KazooClient(connect, timeout=10)
        zk.start(timeout=30)
        for i in range(20):
            zk.create(f"/app/k{i}", f"v{i}".encode(), makepath=True)
        zk.stop()
        zk.close()

        for sid in (4, 5):
            r = _coord(tmp_path, "add")
            assert r.returncode == 0, r.stdout + r.stderr
            assert f"added server {sid} " in r.stdout, r.stdout
            connect = r.stdout.split("connect string:", 1)[1].strip()
            assert len(connect.split(",")) == sid, r.stdout
            assert (tmp_path / ".coord" / f"s{sid}" / "coord.pid").exists()
        assert _voters(connect) == [1, 2, 3, 4, 5]
        assert len(_processes_of(tmp_path)) == 5

        removed_pid = int((tmp_path / ".coord" / "s1" / "coord.pid").read_text())
        for sid in (1, 4):                    # one the foreground command started, one `add` started
            r = _coord(tmp_path, "remove", str(sid))
            assert r.returncode == 0, r.stdout + r.stderr
            assert f"removed server {sid}\n" in r.stdout, r.stdout
            connect = r.stdout.split("connect string:", 1)[1].strip()
            assert len(connect.split(",")) == (4 if sid == 1 else 3), r.stdout
        assert f"127.0.0.1:{base}" not in connect.split(","), connect   # server 1's client port
        assert _voters(connect) == [2, 3, 5]
        assert not Path(f"/proc/{removed_pid}").exists() or \
            b"zombie" in Path(f"/proc/{removed_pid}/status").read_bytes().lower()
        assert len(_processes_of(tmp_path)) == 3
        r = _coord(tmp_path, "remove", "4")   # not a member any more: an error, nothing done
        assert r.returncode != 0 and "not a member" in r.stderr, r.stdout + r.stderr

        zk = KazooClient(connect.split(",")[-1], timeout=10)   # through server 5, added at runtime
        zk.start(timeout=30)
        zk.sync("/app")
        assert sorted(zk.get_children("/app")) == sorted(f"k{i}" for i in range(20))
        assert all(zk.get(f"/app/k{i}")[0] == f"v{i}".encode() for i in range(20))
        zk.create("/app/after", b"x")
        zk.stop()
        zk.close()

        fg.send_signal(signal.SIGINT)          # Ctrl-C stops the added servers too
        out, _ = fg.communicate(timeout=60)
        lines.append(out.decode(errors="replace"))
        assert fg.returncode == 0, "".join(lines[-40:])
        assert "server 1 stopped (removed" in "".join(lines)
        deadline = time.monotonic() + 20
        while _processes_of(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _processes_of(tmp_path) == []
    finally:
        if fg.poll() is None:
            os.killpg(fg.pid, signal.SIGKILL)
        for pid in _processes_of(tmp_path):
            os.kill(pid, signal.SIGKILL)
