"""Read-only mode: a member cut off from its quorum serves reads to read-only clients, refuses writes
(NOTREADONLY) and other clients, reports isro=ro and Mode: read-only, and hands its clients back to
read-write service when the quorum returns. The same scenario runs on real ZooKeeper 3.8
(differential: the same observable behaviour)."""
from __future__ import annotations

import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NotReadOnlyCallError
from kazoo.protocol.states import KeeperState

from tests.support import real_zk
from tests.support.ensemble import Ensemble, coord_ensemble_available
from tests.support.kazoo_clients import stop_all


def _wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - polling a server that may be down
            last = e
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def _scenario(workdir, kind: str, local_sessions: bool = True) -> dict:
    extra = {"readonlymode.enabled": "true"}
    if local_sessions:
        extra["localSessionsEnabled"] = "true"
    ens = Ensemble(workdir, 3, kind=kind, force_sync=False, extra_cfg=extra,
                   jvm_flags=["-Dreadonlymode.enabled=true"])
    seen: dict = {}
    clients = []
    try:
        ens.start()
        leader = ens.wait_serving()
        w = KazooClient(hosts=ens.connect_string(), timeout=10)
        clients.append(w)
        w.start(timeout=30)
        w.create("/ro", b"")
        w.create("/ro/a", b"before")
        w.sync("/ro")
        survivor = next(s for s in ens.members if s != leader)
        m = ens.members[survivor]
        _wait(lambda: w.get("/ro/a")[0] == b"before", 10, "write visible")
        w.stop()
        w.close()
        for s, other in ens.members.items():
            if s != survivor:
                other.stop()
        _wait(lambda: m.four("isro").strip() == "ro", 60, "survivor in read-only mode")
        seen["isro"] = m.four("isro").strip()
        seen["mode"] = next(ln for ln in m.four("srvr").splitlines() if ln.startswith("Mode:"))
        seen["zk_server_state"] = m.mntr().get("zk_server_state")

        # A client that did not ask for read-only is refused.
        plain = KazooClient(hosts=m.connect_string, timeout=4, connection_retry={"max_tries": 0})
        clients.append(plain)
        try:
            plain.start(timeout=4)
            seen["plain_connects"] = True
        except Exception:
            seen["plain_connects"] = False
        plain.stop()
        plain.close()

        ro = KazooClient(hosts=m.connect_string, timeout=10, read_only=True)
        clients.append(ro)
        ro.start(timeout=30)
        seen["ro_state"] = ro.client_state
        seen["ro_read"] = ro.get("/ro/a")[0]
        seen["ro_children"] = sorted(ro.get_children("/ro"))
        for name, call in (("create", lambda: ro.create("/ro/b", b"x")),
                           ("set", lambda: ro.set("/ro/a", b"x")),
                           ("delete", lambda: ro.delete("/ro/a"))):
            try:
                call()
                seen[name] = "ok"
            except NotReadOnlyCallError:
                seen[name] = "NOTREADONLY"

        # The quorum returns: the client ends up on read-write service and can write.
        for s, other in ens.members.items():
            if s != survivor:
                other.start()

        def wrote():
            ro.create("/ro/after", b"rw")
            return True
        _wait(wrote, 90, "the read-only client writing again")
        seen["after_state"] = ro.client_state
        seen["after_read"] = ro.get("/ro/after")[0]
        seen["isro_after"] = m.four("isro").strip()
        return seen
    except Exception:
        print(ens.dump_logs())
        raise
    finally:
        stop_all(clients)
        ens.stop()


EXPECTED = {
    "isro": "ro",
    "mode": "Mode: read-only",
    "zk_server_state": "read-only",
    "plain_connects": False,
    "ro_state": KeeperState.CONNECTED_RO,
    "ro_read": b"before",
    "ro_children": ["a"],
    "create": "NOTREADONLY",
    "set": "NOTREADONLY",
    "delete": "NOTREADONLY",
    "after_state": KeeperState.CONNECTED,
    "after_read": b"rw",
    "isro_after": "rw",
}


# Differential finding: ZooKeeper 3.8's ReadOnlyRequestProcessor answers a createSession that is not
# a local session with a bare NOTREADONLY reply header, which no client can parse as a
# ConnectResponse: new read-only sessions work on real ZooKeeper only with localSessionsEnabled=true.
# The differential pair therefore runs with local sessions; coord also serves them without.

@pytest.mark.skipif(not coord_ensemble_available(), reason="no Zab peer")
def test_read_only_coord(tmp_path):
    assert _scenario(tmp_path, "coord") == EXPECTED


@pytest.mark.skipif(not coord_ensemble_available(), reason="no Zab peer")
def test_read_only_coord_global_sessions(tmp_path):
    assert _scenario(tmp_path, "coord", local_sessions=False) == EXPECTED


@pytest.mark.realzk
@pytest.mark.skipif(not real_zk.available(), reason="real ZooKeeper not installed")
def test_read_only_real_zookeeper(tmp_path):
    assert _scenario(tmp_path, "zookeeper") == EXPECTED


@pytest.mark.skipif(not coord_ensemble_available(), reason="no Zab peer")
def test_global_session_keeps_reading_through_partition(tmp_path):
    """A read-only-capable client whose (global) session began before the partition resumes it on the
    read-only member and keeps reading. Differential finding: real ZooKeeper 3.8 (without local
    sessions) never lets such a client back in (kazoo stays CONNECTING), so this runs on coord only."""
    ens = Ensemble(tmp_path, 3, kind="coord", force_sync=False, extra_cfg={"readonlymode.enabled": "true"})
    c = None
    try:
        ens.start()
        leader = ens.wait_serving()
        survivor = next(s for s in ens.members if s != leader)
        m = ens.members[survivor]
        c = KazooClient(hosts=m.connect_string, timeout=6, read_only=True)
        c.start(timeout=30)
        sid = c.client_id[0]
        c.create("/g", b"v")
        for s, other in ens.members.items():
            if s != survivor:
                other.stop()
        _wait(lambda: c.client_state == KeeperState.CONNECTED_RO, 40, "read-only reconnect")
        assert c.client_id[0] == sid
        assert c.get("/g")[0] == b"v"
        with pytest.raises(NotReadOnlyCallError):
            c.set("/g", b"w")
    except Exception:
        print(ens.dump_logs())
        raise
    finally:
        if c is not None:
            c.stop()
            c.close()
        ens.stop()
