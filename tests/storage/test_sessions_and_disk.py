"""Sessions survive a restart as in ZooKeeper; a full disk rejects writes and loses nothing acked."""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, SystemErrorException

from tests.support.coord_server import CoordProcess


def wait_for(pred, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def test_sessions_survive_restart_and_expired_ones_are_cleaned(tmp_path):
    srv = CoordProcess(tmp_path / "c", force_sync=True, extra_cfg={"tickTime": "500"})
    srv.start()
    gone = KazooClient(srv.connect_string, timeout=2.0)
    stays = KazooClient(srv.connect_string, timeout=12.0)
    gone.start(10)
    stays.start(10)
    gone.create("/eph-gone", b"g", ephemeral=True)
    stays.create("/eph-stays", b"s", ephemeral=True)
    sid_stays = stays.client_id[0]
    srv.stop(kill=True)
    # the first client goes away while the server is down: its session can only expire
    try:
        gone.stop()
    except Exception:  # noqa: BLE001
        pass
    srv.start()
    check = KazooClient(srv.connect_string)
    check.start(10)
    try:
        assert check.exists("/eph-gone") is not None, "session and ephemeral restored with the tree"
        assert check.exists("/eph-stays") is not None
        assert wait_for(lambda: check.exists("/eph-gone") is None, 15), "expired session's ephemeral removed"
        assert wait_for(lambda: stays.connected and stays.client_id[0] == sid_stays, 10)
        time.sleep(3)
        assert check.exists("/eph-stays") is not None, "a client that came back keeps its session"
    finally:
        check.stop()
        stays.stop()
        srv.stop()


def _mount_tmpfs(path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True)
    return r.returncode == 0


def test_full_disk_rejects_writes_and_loses_nothing_acknowledged(tmp_path):
    mnt = tmp_path / "small"
    if os.geteuid() != 0 or not _mount_tmpfs(mnt, "3m"):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        srv = CoordProcess(tmp_path / "c", force_sync=True, extra_cfg={"dataDir": str(mnt / "data"),
                                                                       "snapCount": "1000000"})
        (mnt / "data").mkdir()
        filler = mnt / "filler"
        filler.write_bytes(bytes(1 << 20))
        srv.start()
        zk = KazooClient(srv.connect_string)
        zk.start(10)
        acked, rejected = [], []
        value = bytes(50_000)
        for i in range(200):
            try:
                zk.create(f"/n{i}", value)
                acked.append(i)
            except SystemErrorException:
                rejected.append(i)
                if len(rejected) >= 3:
                    break
        assert rejected, "the disk never filled up"
        assert srv.proc.poll() is None, "a full disk must not kill the server"
        assert "No space left on device" in srv.log_text()
        assert zk.exists(f"/n{rejected[0]}") is None, "a rejected write is not applied"
        assert zk.get(f"/n{acked[-1]}")[0] == value, "reads go on"
        filler.unlink()  # space comes back: writes resume
        assert wait_for(lambda: _try_create(zk, "/after", b"x"), 10)
        zk.stop()
        srv.stop(kill=True)
        srv.start()
        zk = KazooClient(srv.connect_string)
        zk.start(10)
        for i in acked:
            assert zk.exists(f"/n{i}") is not None, f"acknowledged /n{i} lost"
        for i in rejected:
            assert zk.exists(f"/n{i}") is None, f"rejected /n{i} appeared after restart"
        assert zk.exists("/after") is not None
        zk.stop()
        srv.stop()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        shutil.rmtree(mnt, ignore_errors=True)


def _try_create(zk, path, data) -> bool:
    try:
        zk.create(path, data)
        return True
    except (SystemErrorException, KazooException):
        return False
