"""`coord data backup | restore` and the AdminServer's `snapshot` command (ZooKeeper 3.9's), on real
processes: a live 3-server coord ensemble is backed up from a follower through the CLI (folder and
tar), the backup seeds every member of a new ensemble, which serves the same tree with the same
digest; digest Authorization (401, 403) and a damaged backup are refused. Real ZooKeeper 3.8 has no
`snapshot` command: the same CLI against it must fail with a clear message.
"""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.ops.prom import ROOT, need, zk_prometheus_jars
from tests.support import real_zk
from tests.support.ensemble import Ensemble
from tests.support.real_zk import free_port

pytestmark = [pytest.mark.realzk]
AUTH = "backup:s3cret"


def _cli(*args, check=True):
    p = subprocess.run([sys.executable, "-m", "coord.cli", "data", *args], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    if check:
        assert p.returncode == 0, p.stderr + p.stdout
    return p


def _ensemble(tmp, kind="coord", jars=()):
    admin = {sid: free_port() for sid in (1, 2, 3)}
    ens = Ensemble(tmp, 3, kind=kind, classpath=list(jars), force_sync=False,
                   extra_cfg={"admin.enableServer": "true", "admin.serverAddress": "127.0.0.1"},
                   member_cfg={sid: {"admin.serverPort": str(p)} for sid, p in admin.items()})
    ens.admin = admin
    return ens


def _tree(zk, root="/bk") -> dict:
    out = {}
    for c in zk.get_children(root):
        data, _ = zk.get(f"{root}/{c}")
        out[c] = data
    return out


def _status(url: str, auth: str | None) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"digest {auth}"} if auth else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_backup_restores_into_a_new_ensemble(tmp_path):
    from kazoo.client import KazooClient
    from kazoo.security import make_digest_acl
    ens = _ensemble(tmp_path / "live").start()
    new = None
    zk = KazooClient(hosts=ens.connect_string(), timeout=20)
    try:
        zk.start(timeout=30)
        zk.create("/bk")
        pending = [zk.create_async(f"/bk/n{i:05d}", f"value-{i}".encode() * 3) for i in range(2000)]
        for a in pending:
            a.get(timeout=60)
        user, pw = AUTH.split(":")
        zk.set_acls("/", [make_digest_acl(user, pw, all=True)])   # only this id may snapshot
        leader = ens.leader()
        follower = ens.followers()[0]
        url = f"http://127.0.0.1:{ens.admin[follower.sid]}/commands/snapshot"
        assert _status(url, None) == 401
        assert _status(url, "someone:else") == 403
        want = _tree(zk)
        digest = leader.mntr()["zk_digest"]

        folder, tar = tmp_path / "backup", tmp_path / "backup.tar"
        out = _cli("backup", "--admin", f"127.0.0.1:{ens.admin[follower.sid]}", "--auth", AUTH, str(folder)).stdout
        assert "backup of" in out
        _cli("backup", "--admin", f"127.0.0.1:{ens.admin[leader.sid]}", "--auth", AUTH, str(tar))
        manifest = json.loads((folder / "manifest.json").read_text())
        assert int(manifest["zxid"], 16) >= 2001 and manifest["size"] > 0

        # damaged: refused, and nothing written
        bad = tmp_path / "bad"
        bad.mkdir()
        for f in folder.iterdir():
            (bad / f.name).write_bytes(f.read_bytes())
        snap = bad / manifest["snapshot"]
        b = bytearray(snap.read_bytes())
        b[len(b) // 2] ^= 0xFF
        snap.write_bytes(bytes(b))
        p = _cli("restore", str(bad), str(tmp_path / "x"), check=False)
        assert p.returncode != 0 and "damaged backup" in p.stderr
        zk.stop()
        ens.stop()

        new = _ensemble(tmp_path / "new")
        for sid, m in new.members.items():
            _cli("restore", str(tar if sid == 2 else folder), str(m.data_dir))
        new.start()
        zk2 = KazooClient(hosts=new.connect_string(), timeout=20)
        zk2.start(timeout=30)
        zk2.add_auth("digest", AUTH)
        try:
            assert _tree(zk2) == want
            assert new.leader().mntr()["zk_digest"] == digest
            zk2.create("/bk/after", b"1")          # the restored ensemble takes writes
            assert zk2.exists("/bk/after")
        finally:
            zk2.stop()
            zk2.close()
        # a second restore into a used data dir is refused
        p = _cli("restore", str(folder), str(new.members[1].data_dir), check=False)
        assert p.returncode != 0 and "not empty" in p.stderr
    finally:
        zk.stop()
        zk.close()
        ens.stop()
        if new is not None:
            new.stop()


def test_zookeeper_38_has_no_snapshot_command(tmp_path):
    """ZooKeeper 3.8's AdminServer answers `Unknown command: snapshot`: the CLI says it cannot back up."""
    need(real_zk.available(), "real ZooKeeper 3.8")
    jars = zk_prometheus_jars()    # the servlet API its Jetty AdminServer needs
    need(bool(jars), "the servlet API jar for ZooKeeper's AdminServer")
    ens = _ensemble(tmp_path / "zk", kind="zookeeper", jars=jars).start()
    try:
        p = _cli("backup", "--admin", f"127.0.0.1:{ens.admin[1]}", "--auth", AUTH, str(tmp_path / "b"),
                 check=False)
        assert p.returncode != 0 and "no last_zxid" in p.stderr, p.stderr
    finally:
        ens.stop()
