"""ZooKeeper 3.9's AdminServer `restore` on a live standalone coord server: a snapshot taken with
`snapshot` is POSTed back after the tree changed; the tree is as of the snapshot, the clients' session
survives, writes go on after it, a restart recovers the restored tree; digest Authorization (401,
403), bad bodies (400, 500) and the rate limit (429) are refused. (ZooKeeper 3.8, the reference
here, has neither command: tests/ops/test_backup.py checks that for `snapshot`.)
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request

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
