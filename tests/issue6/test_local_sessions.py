"""Local sessions (localSessionsEnabled / localSessionsUpgradingEnabled) on a 3-server ensemble, the
same scenario on coord and on real ZooKeeper 3.8 (differential: the same observations)."""
from __future__ import annotations

import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import EphemeralOnLocalSessionError, SessionExpiredError

from tests.support import real_zk
from tests.support.ensemble import Ensemble, coord_ensemble_available


def _wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # noqa: BLE001
            last = e
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def _counts(m) -> tuple[int, int]:
    x = m.mntr()
    return int(x["zk_local_sessions"]), int(x["zk_global_sessions"])


def _scenario(workdir, kind: str, upgrading: bool) -> dict:
    ens = Ensemble(workdir, 3, kind=kind, force_sync=False,
                   extra_cfg={"localSessionsEnabled": "true",
                              "localSessionsUpgradingEnabled": "true" if upgrading else "false"})
    seen: dict = {}
    clients = []

    def client(hosts):
        c = KazooClient(hosts=hosts, timeout=10)
        clients.append(c)
        c.start(timeout=30)
        return c
    try:
        ens.start()
        leader = ens.wait_serving()
        f1, f2 = [s for s in ens.members if s != leader]
        m1, ml = ens.members[f1], ens.members[leader]
        base_local, base_global = _counts(m1)
        lead_global = _counts(ml)[1]
        c = client(m1.connect_string)
        loc, glob = _counts(m1)
        seen["local_after_connect"] = loc - base_local
        seen["global_after_connect"] = glob - base_global
        seen["leader_global_after_connect"] = _counts(ml)[1] - lead_global
        c.create("/ls", b"p")                       # a persistent write from a local session
        seen["persistent"] = c.get("/ls")[0]
        try:
            c.create("/ls/e", b"e", ephemeral=True)
            seen["ephemeral"] = "ok"
        except EphemeralOnLocalSessionError:
            seen["ephemeral"] = "EPHEMERALONLOCALSESSION"
        seen["leader_global_after_ephemeral"] = _wait(
            lambda: (_counts(ml)[1] - lead_global) or "0", 10, "leader count") if upgrading \
            else _counts(ml)[1] - lead_global
        if seen["leader_global_after_ephemeral"] == "0":
            seen["leader_global_after_ephemeral"] = 0
        seen["local_after_ephemeral"] = _counts(m1)[0] - base_local
        other = client(ens.members[f2].connect_string)
        seen["ephemeral_seen_elsewhere"] = other.exists("/ls/e") is not None
        # The session ends: its ephemeral (if any) goes, and the local count drops back.
        c.stop()
        c.close()
        _wait(lambda: other.exists("/ls/e") is None, 30, "ephemeral gone")
        _wait(lambda: _counts(m1)[0] == base_local, 30, "local session gone")
        seen["local_after_close"] = _counts(m1)[0] - base_local
        return seen
    except Exception:
        print(ens.dump_logs())
        raise
    finally:
        for x in clients:
            try:
                x.stop()
                x.close()
            except Exception:
                pass
        ens.stop()


EXPECTED_UPGRADING = {
    "local_after_connect": 1, "global_after_connect": 0, "leader_global_after_connect": 0,
    "persistent": b"p", "ephemeral": "ok", "leader_global_after_ephemeral": 1,
    "local_after_ephemeral": 0, "ephemeral_seen_elsewhere": True, "local_after_close": 0,
}
EXPECTED_NO_UPGRADE = dict(EXPECTED_UPGRADING, ephemeral="EPHEMERALONLOCALSESSION",
                           leader_global_after_ephemeral=0, local_after_ephemeral=1,
                           ephemeral_seen_elsewhere=False)


@pytest.mark.skipif(not coord_ensemble_available(), reason="no Zab peer")
@pytest.mark.parametrize("upgrading", [True, False])
def test_local_sessions_coord(tmp_path, upgrading):
    want = EXPECTED_UPGRADING if upgrading else EXPECTED_NO_UPGRADE
    assert _scenario(tmp_path, "coord", upgrading) == want


@pytest.mark.realzk
@pytest.mark.skipif(not real_zk.available(), reason="real ZooKeeper not installed")
@pytest.mark.parametrize("upgrading", [True, False])
def test_local_sessions_real_zookeeper(tmp_path, upgrading):
    want = EXPECTED_UPGRADING if upgrading else EXPECTED_NO_UPGRADE
    assert _scenario(tmp_path, "zookeeper", upgrading) == want
