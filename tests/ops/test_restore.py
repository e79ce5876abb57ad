"""ZooKeeper 3.9's AdminServer `restore` on a live coord server: a snapshot taken with `snapshot` is
POSTed back after the tree changed; the tree is as of the snapshot, the clients' session survives,
writes go on after it, a restart recovers the restored tree; digest Authorization (401, 403), bad
bodies (400, 500), the rate limit (429) and the switches. On 3-server ensembles (slow): a restore
POSTed to one member restores all of them, and the guide's per-member procedure works. (ZooKeeper
3.8, the reference here, has neither command: tests/ops/test_backup.py checks that for `snapshot`.)
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.support.coord_server import start_coord
from tests.support.real_zk import free_port

AUTH = "admin:s3cret"


def _call(url: str, auth: str | None, body: bytes | None = None) -> tuple[int, bytes]:
    hdrs = {"Authorization": f"digest {auth}"} if auth else {}
    req = urllib.request.Request(url, data=body, headers=hdrs, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_restore_on_a_live_standalone_server(tmp_path):
    from kazoo.client import KazooClient
    from kazoo.security import make_digest_acl
    admin = free_port()
    srv = start_coord(tmp_path, extra_cfg={"admin.enableServer": "true", "admin.serverAddress": "127.0.0.1",
                                           "admin.serverPort": str(admin)})
    base = f"http://127.0.0.1:{admin}/commands"
    zk = KazooClient(hosts=srv.connect_string, timeout=20)
    try:
        zk.start(timeout=30)
        session = zk.client_id[0]
        zk.create("/r")
        for i in range(50):
            zk.create(f"/r/a{i}", f"v{i}".encode())
        user, pw = AUTH.split(":")
        zk.add_auth("digest", AUTH)
        zk.set_acls("/", [make_digest_acl(user, pw, all=True)])
        code, snap = _call(f"{base}/snapshot", AUTH)
        assert code == 200 and len(snap) > 0
        zk.delete("/r/a0")
        zk.set("/r/a1", b"changed")
        zk.create("/r/later", b"x")
        before = zk.exists("/r/later").mzxid

        assert _call(f"{base}/restore", None, snap)[0] == 401
        assert _call(f"{base}/restore", "someone:else", snap)[0] == 403
        code, out = _call(f"{base}/rest", AUTH, b"")
        assert code == 400 and json.loads(out)["error"]
        code, out = _call(f"{base}/restore", AUTH, b"not a snapshot")
        assert code == 500 and "not a usable snapshot" in json.loads(out)["error"]

        code, out = _call(f"{base}/restore", AUTH, snap)
        doc = json.loads(out)
        assert code == 200, out
        assert list(doc) == ["last_zxid", "command", "error"] and doc["command"] == "restore" and doc["error"] is None
        assert doc["last_zxid"] >= before              # the restored tree continues after the current zxid
        assert zk.client_id[0] == session
        zk.sync("/")
        assert zk.get("/r/a0")[0] == b"v0" and zk.get("/r/a1")[0] == b"v1"
        assert zk.exists("/r/later") is None
        zk.create("/r/after", b"y")
        assert zk.exists("/r/after").mzxid > doc["last_zxid"]
        assert _call(f"{base}/restore", AUTH, snap)[0] == 429       # one per 5 minutes, as 3.9
        zk.stop()
        zk.close()

        srv.stop()                        # the restore is durable: a restart recovers it
        srv.start()
        zk = KazooClient(hosts=srv.connect_string, timeout=20)
        zk.start(timeout=30)
        zk.add_auth("digest", AUTH)
        assert zk.get("/r/a0")[0] == b"v0" and zk.exists("/r/later") is None
        assert zk.get("/r/after")[0] == b"y"
        assert len(zk.get_children("/r")) == 51
    finally:
        zk.stop()
        zk.close()
        srv.stop()


# -- ensembles ---------------------------------------------------------------------------------------
# ZooKeeper 3.9's `restore` replaces the tree of the one server it is POSTed to; coord restores the
# whole ensemble through its leader (coord/core/zab/leader.py, "Restore"). ZooKeeper 3.8, the
# reference installed here, has no `restore`: these scenarios have no reference run (docs/operations.md).

def _restore_ensemble(tmp):
    from tests.support.ensemble import Ensemble, coord_ensemble_available
    if not coord_ensemble_available():
        pytest.fail("the coord ensemble member is missing")
    admin = {sid: free_port() for sid in (1, 2, 3)}
    ens = Ensemble(tmp, 3, kind="coord",
                   extra_cfg={"admin.enableServer": "true", "admin.serverAddress": "127.0.0.1"},
                   member_cfg={sid: {"admin.serverPort": str(p)} for sid, p in admin.items()})
    ens.admin = admin
    return ens


def _url(ens, sid: int, cmd: str) -> str:
    return f"http://127.0.0.1:{ens.admin[sid]}/commands/{cmd}"


def _seed(zk) -> bytes:
    """/r with 50 children, / writable only by AUTH's digest id (what snapshot/restore ask for)."""
    from kazoo.security import make_digest_acl
    zk.create("/r")
    zk.create("/load")
    for i in range(50):
        zk.create(f"/r/a{i}", f"v{i}".encode())
    user, pw = AUTH.split(":")
    zk.add_auth("digest", AUTH)
    zk.set_acls("/", [make_digest_acl(user, pw, all=True)])


def _diverge(zk) -> None:
    zk.delete("/r/a0")
    zk.set("/r/a1", b"changed")
    zk.create("/r/later", b"x")


def _digests(ens, wait: float = 60.0) -> dict[int, str]:
    """Every running member's (zxid, digest), once they agree (or the last seen when they never do)."""
    import time
    deadline = time.monotonic() + wait
    seen = {}
    while time.monotonic() < deadline:
        try:
            seen = {s: (m.mntr().get("zk_digest"), m.mntr().get("zk_znode_count"))
                    for s, m in ens.members.items() if m.alive}
        except OSError:
            seen = {}
        if seen and len(set(seen.values())) == 1 and None not in {v[0] for v in seen.values()}:
            return seen
        time.sleep(0.2)
    return seen


def _restored_view(hosts: str) -> None:
    """A fresh client on `hosts` sees the snapshot's tree, not what came after it."""
    from kazoo.client import KazooClient
    zk = KazooClient(hosts=hosts, timeout=20)
    zk.start(timeout=30)
    try:
        zk.add_auth("digest", AUTH)
        zk.sync("/")
        assert zk.get("/r/a0")[0] == b"v0" and zk.get("/r/a1")[0] == b"v1"
        assert zk.exists("/r/later") is None
    finally:
        zk.stop()
        zk.close()


class _Load:
    """A light write load (one sequential create every ~20 ms) on its own session, counting what the
    server answered; kazoo retries through the connection losses a restore causes."""

    def __init__(self, hosts: str):
        import threading
        from kazoo.client import KazooClient
        from kazoo.retry import KazooRetry
        self.zk = KazooClient(hosts=hosts, timeout=30, connection_retry=KazooRetry(max_tries=-1),
                              command_retry=KazooRetry(max_tries=-1, max_delay=1))
        self.ok = self.failed = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self) -> "_Load":
        self.zk.start(timeout=30)
        self.zk.add_auth("digest", AUTH)
        self.thread.start()
        return self

    def run(self) -> None:
        import time
        while not self.stopping.is_set():
            try:
                self.zk.retry(self.zk.create, "/load/w-", b"x", sequence=True)
                self.ok += 1
            except Exception:          # noqa: BLE001 - counted; the test asserts writes go on after
                self.failed += 1
            time.sleep(0.02)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(30)
        self.zk.stop()
        self.zk.close()


@pytest.mark.slow
def test_restore_on_an_ensemble_through_a_follower_and_the_leader(tmp_path):
    """A restore POSTed to one member restores all three (same digest), under a light write load;
    the session the snapshot holds survives, one it does not hold expires; writes go on after; a
    member killed -9 right after the answer comes back with the restored tree."""
    import time
    from kazoo.client import KazooClient, KazooState
    from coord.core import snapformat
    ens = _restore_ensemble(tmp_path).start()
    zk = KazooClient(hosts=ens.connect_string(), timeout=20)
    late = load = None
    try:
        zk.start(timeout=30)
        session = zk.client_id[0]
        _seed(zk)
        leader = ens.leader()
        follower = ens.followers()[0]
        code, snap = _call(_url(ens, follower.sid, "snapshot"), AUTH)
        assert code == 200 and snap
        want = snapformat.load_bytes(snap)[0]
        _diverge(zk)
        late = KazooClient(hosts=ens.connect_string(), timeout=20)   # a session the snapshot lacks
        late.start(timeout=30)
        lost = []
        late.add_listener(lambda st: lost.append(st) if st == KazooState.LOST else None)
        load = _Load(ens.connect_string()).start()
        time.sleep(1.0)
        before_ok = load.ok
        epoch = int(leader.mntr()["zk_peer_epoch"]) if "zk_peer_epoch" in leader.mntr() else None

        # 1. through a follower
        assert _call(_url(ens, follower.sid, "restore"), None, snap)[0] == 401
        t0 = time.monotonic()
        code, out = _call(_url(ens, follower.sid, "restore"), AUTH, snap)
        took = time.monotonic() - t0
        doc = json.loads(out)
        assert code == 200, (out, ens.dump_logs())
        assert list(doc) == ["last_zxid", "command", "error"] and doc["error"] is None
        z = doc["last_zxid"]
        assert z & 0xFFFFFFFF == 0 and (epoch is None or z >> 32 > epoch)   # (new epoch, 0)
        print(f"restore through follower {follower.sid}: {took:.2f} s, last_zxid 0x{z:x}")
        victim = follower                  # kill -9 right after the answer; it must come back restored
        victim.kill()
        victim.start()
        ens.wait_serving(wait=60)
        _restored_view(victim.connect_string)

        # writes go on after the restore, on the restored tree
        deadline = time.monotonic() + 30
        while load.ok <= before_ok + 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert load.ok > before_ok + 5, (load.ok, load.failed)
        assert zk.client_id[0] == session                   # held by the snapshot: survives
        assert zk.exists("/r/later") is None and zk.get("/r/a0")[0] == b"v0"
        deadline = time.monotonic() + 60
        while not lost and time.monotonic() < deadline:
            time.sleep(0.1)
        assert lost, "a session the snapshot does not hold must expire"
        load.stop()
        load = None
        dig = _digests(ens)
        assert len(set(dig.values())) == 1, dig
        for m in ens.members.values():
            _restored_view(m.connect_string)

        # 2. the same snapshot through the leader: the snapshot's tree again, digest as the snapshot's
        leader = ens.leader()
        code, out = _call(_url(ens, leader.sid, "restore"), AUTH, snap)
        assert code == 200, (out, ens.dump_logs())
        z2 = json.loads(out)["last_zxid"]
        assert z2 >> 32 > z >> 32
        leader.kill()                      # kill -9 the leader right after its answer
        dig = _digests(ens)
        assert len(set(dig.values())) == 1, dig
        leader.start()
        ens.wait_serving(wait=60)
        dig = _digests(ens)
        assert len(set(dig.values())) == 1 and len(dig) == 3, dig
        assert {v[0] for v in dig.values()} == {str(want.digest)}, (dig, want.digest)
        _restored_view(leader.connect_string)
        zk.create("/r/after", b"y")                          # writes accepted after
        assert zk.exists("/r/after").mzxid > z2
    finally:
        if load is not None:
            load.stop()
        for c in (zk, late):
            if c is not None:
                c.stop()
                c.close()
        ens.stop()


@pytest.mark.slow
def test_the_zookeeper_guide_procedure_on_an_ensemble(tmp_path):
    """ZooKeeper's Snapshot and Restore Guide, as written: for each server in turn, move the files of
    its data dir away and POST the same snapshot to it. Every member ends with the snapshot's tree
    (its digest), a leader, writes accepted; a restart of every member recovers the restored tree."""
    import shutil
    from kazoo.client import KazooClient
    from coord.core import snapformat
    ens = _restore_ensemble(tmp_path / "ens").start()
    zk = KazooClient(hosts=ens.connect_string(), timeout=20)
    try:
        zk.start(timeout=30)
        _seed(zk)
        code, snap = _call(_url(ens, ens.leader().sid, "snapshot"), AUTH)
        assert code == 200
        want = snapformat.load_bytes(snap)[0]
        _diverge(zk)
        zk.stop()
        zk.close()
        zxids = []
        for sid, m in sorted(ens.members.items()):
            moved = tmp_path / "moved" / f"s{sid}"
            moved.mkdir(parents=True)
            for f in (m.data_dir / "version-2").iterdir():
                shutil.move(str(f), str(moved / f.name))
            code, out = _call(_url(ens, sid, "restore"), AUTH, snap)
            assert code == 200, (sid, out, ens.dump_logs())
            zxids.append(json.loads(out)["last_zxid"])
        assert zxids == sorted(zxids) and len(set(zxids)) == 3     # one restore each, in turn
        ens.wait_serving(wait=60)
        dig = _digests(ens)
        assert len(dig) == 3 and {v[0] for v in dig.values()} == {str(want.digest)}, (dig, want.digest)
        for m in ens.members.values():
            _restored_view(m.connect_string)
        ens.restart_all(kill=True)
        dig = _digests(ens)
        assert len(dig) == 3 and {v[0] for v in dig.values()} == {str(want.digest)}, (dig, want.digest)
        zk = KazooClient(hosts=ens.connect_string(), timeout=20)
        zk.start(timeout=30)
        zk.add_auth("digest", AUTH)
        assert zk.exists("/r/later") is None and zk.get("/r/a0")[0] == b"v0"
        zk.create("/r/after", b"y")
        assert zk.exists("/r/after").mzxid > zxids[-1]
    finally:
        zk.stop()
        zk.close()
        ens.stop()


def test_restore_switches(tmp_path):
    """3.9's switches: admin.restore.enabled=false answers 503 (after the auth check);
    admin.rateLimiterIntervalInMS (zookeeper.admin.rateLimiterIntervalInMS) sets the rate limit."""
    for sub, cfg in (("off", {"admin.restore.enabled": "false"}), ("fast", {"admin.rateLimiterIntervalInMS": "0"})):
        admin = free_port()
        srv = start_coord(tmp_path / sub, extra_cfg={"admin.enableServer": "true", "admin.serverAddress": "127.0.0.1",
                                                     "admin.serverPort": str(admin), **cfg})
        base = f"http://127.0.0.1:{admin}/commands"
        try:
            code, snap = _call(f"{base}/snapshot", AUTH)        # an open / lets any digest id through
            assert code == 200
            assert _call(f"{base}/restore", None, snap)[0] == 401
            if sub == "off":
                code, out = _call(f"{base}/restore", AUTH, snap)
                assert code == 503 and "admin.restore.enabled" in json.loads(out)["error"]
            else:
                assert [_call(f"{base}/restore", AUTH, snap)[0] for _ in range(2)] == [200, 200]
        finally:
            srv.stop()
