"""Import from a real ZooKeeper 3.8 data dir, and the `coord data` tools."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_acl, make_digest_acl

from coord.core import logformat
from tests.support.coord_server import ROOT, CoordProcess
from tests.support.real_zk import RealZooKeeper


def coord_cli(*args, check=True):
    r = subprocess.run([sys.executable, "-m", "coord.cli", *args], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"coord {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def snapshot_of(zk: KazooClient, root: str = "/") -> dict:
    """path -> (data, Stat, ACL) for every node, as a server serves it (pipelined reads)."""
    out = {}
    level = [root]
    while level:
        gets = [(p, zk.get_async(p), zk.get_acls_async(p), zk.get_children_async(p)) for p in level]
        level = []
        for p, g, a, ch in gets:
            data, stat = g.get(30)
            acl, _ = a.get(30)
            out[p] = (data, tuple(stat), tuple((x.perms, x.id.scheme, x.id.id) for x in acl))
            level += [("" if p == "/" else p) + "/" + c for c in ch.get(30)]
    return out


@pytest.mark.realzk
def test_import_zookeeper_data_dir_serves_the_same_tree(tmp_path):
    zk_srv = RealZooKeeper(tmp_path / "zk", force_sync=True, extra_cfg={"snapCount": "1000"})
    zk_srv.start()
    zk = KazooClient(zk_srv.connect_string)
    zk.start(15)
    owner = KazooClient(zk_srv.connect_string, timeout=30)
    owner.start(15)
    try:
        zk.create("/app/config", b"cfg", makepath=True)
        zk.add_auth("digest", "alice:secret")
        zk.create("/secure", b"s", acl=[make_digest_acl("alice", "secret", all=True),
                                       make_acl("world", "anyone", read=True)])
        zk.create("/secure/child", b"c", acl=[make_digest_acl("alice", "secret", read=True, write=True)])
        for d in range(10):
            zk.create(f"/app/d{d}", b"dir")
            ops = [zk.create_async(f"/app/d{d}/n{i:04d}", b"x" * (i % 97)) for i in range(350)]
            for op in ops:
                op.get(10)
        for d in range(10):
            for i in range(0, 350, 9):
                zk.set(f"/app/d{d}/n{i:04d}", b"updated")
            for i in range(0, 350, 13):
                zk.delete(f"/app/d{d}/n{i:04d}")
        for _ in range(5):
            zk.create("/app/queue/item-", b"q", sequence=True, makepath=True)
        zk.delete("/app/queue/item-0000000002")
        owner.create("/app/eph", b"mine", ephemeral=True)
        owner.create("/app/eph-seq-", b"", ephemeral=True, sequence=True)
        zk.set_acls("/app/config", [make_acl("world", "anyone", read=True, write=True)])
        t = zk.transaction()
        t.create("/app/m1", b"1")
        t.create("/app/m2", b"2")
        t.set_data("/app/config", b"cfg2")
        t.commit()
        expected = snapshot_of(zk)
        sessions = {owner.client_id[0]}
    finally:
        zk.stop()
    assert len(expected) > 3000
    zk_srv.stop()  # the owner's session stays open in ZooKeeper's files
    owner.stop()
    zk_dir = zk_srv.data_dir
    files = sorted(p.name for p in (zk_dir / "version-2").iterdir())
    assert any(f.startswith("snapshot.") and f != "snapshot.0" for f in files), files
    assert any(f.startswith("log.") for f in files), files

    # inspect on ZooKeeper's own dir: not "corrupt", but what it is and how to convert it
    wrong = coord_cli("data", "inspect", str(zk_dir), check=False)
    assert wrong.returncode == 1 and "is an Apache ZooKeeper file" in wrong.stderr, wrong.stdout + wrong.stderr
    assert f"coord data import-zookeeper {zk_dir} NEW_DIR" in wrong.stderr.replace("\n", ""), wrong.stderr

    out = tmp_path / "coord" / "data"
    r = coord_cli("data", "import-zookeeper", str(zk_dir), str(out))
    assert "verified: matches ZooKeeper's digest" in r.stdout, r.stdout + r.stderr
    assert f"imported {len(expected)} znodes" in r.stdout.replace("znodes and", "znodes"), r.stdout

    srv = CoordProcess(tmp_path / "coord", force_sync=True)
    srv.start()
    c = KazooClient(srv.connect_string)
    c.start(15)
    try:
        c.add_auth("digest", "alice:secret")
        got = snapshot_of(c)
        assert set(got) == set(expected)
        diffs = [p for p in expected if got[p] != expected[p]]
        assert not diffs, [(p, expected[p], got[p]) for p in diffs[:5]]
        assert c.create("/app/queue/item-", b"", sequence=True).endswith("0000000005")
        assert c.set("/app/config", b"again").version == expected["/app/config"][1][4] + 1
    finally:
        c.stop()
    inspect = coord_cli("data", "inspect", str(out))
    assert "snapshot." in inspect.stdout and str(len(expected)) in inspect.stdout
    assert sessions  # the owner's session was imported with its ephemerals (compared above)
    srv.stop()


def test_inspect_and_dump_log(tmp_path):
    # retention runs after every snapshot: with snapCount's random thresholds (25-49 txns) the ~125
    # txns below made 3 or 4 snapshots, and with 4 the oldest log (the createSession's) was purged
    srv = CoordProcess(tmp_path / "c", force_sync=True,
                       extra_cfg={"snapCount": "50", "autopurge.snapRetainCount": "10"})
    srv.start()
    zk = KazooClient(srv.connect_string)
    zk.start(10)
    zk.create("/a", b"x")
    for i in range(120):
        zk.create(f"/a/n{i}", b"y")
    zk.set("/a", b"z")
    zk.delete("/a/n3")
    zk.stop()
    time.sleep(0.3)
    srv.stop()
    d = srv.data_dir
    r = coord_cli("data", "inspect", str(d), "--verify")
    assert "snapshot." in r.stdout and "log." in r.stdout and "a start would load" in r.stdout, r.stdout
    wrong = coord_cli("data", "inspect", str(tmp_path), check=False)  # the parent, not the dataDir
    assert wrong.returncode == 1 and "not a coord data dir" in wrong.stderr, wrong.stdout + wrong.stderr
    logs = sorted((d / "version-2").glob("log.*"), key=lambda p: int(p.name[4:], 16))
    lines = []
    for p in logs:
        lines += coord_cli("data", "dump-log", str(p)).stdout.splitlines()
    assert any(" create /a/n5 " in ln for ln in lines) or any(" create /a/n5" in ln for ln in lines)
    assert any(" delete /a/n3" in ln for ln in lines)
    assert any(" createSession " in ln for ln in lines)
    zxids = [int(ln.split()[0], 16) for ln in lines]
    assert zxids == sorted(zxids)


def test_serve_refuses_a_damaged_log_naming_it(tmp_path):
    srv = CoordProcess(tmp_path / "c", force_sync=True)
    srv.start()
    zk = KazooClient(srv.connect_string)
    zk.start(10)
    for i in range(300):
        zk.create(f"/n{i}", b"v" * 50)
    zk.stop()
    srv.stop(kill=True)
    log = sorted((srv.data_dir / "version-2").glob("log.*"))[-1]
    data = bytearray(log.read_bytes())
    data[logformat.scan(data).end // 2] ^= 0xFF  # in the records, not in the preallocated zeros
    log.write_bytes(bytes(data))
    try:
        with pytest.raises(RuntimeError) as e:
            srv.start(wait=20)
    finally:
        srv.stop(kill=True)  # a server that wrongly started must not outlive the test
    assert str(log) in str(e.value) and "refusing to start" in str(e.value).lower()


@pytest.mark.realzk
@pytest.mark.parametrize("method", ["gz", "snappy"])
def test_import_compressed_zookeeper_snapshots(tmp_path, method):
    zk_srv = RealZooKeeper(tmp_path / "zk", force_sync=True,
                           extra_cfg={"snapCount": "100", "snapshot.compression.method": method})
    zk_srv.start()
    zk = KazooClient(zk_srv.connect_string)
    zk.start(15)
    for i in range(300):
        zk.create(f"/g{i}", b"v%d" % i)
    expected = snapshot_of(zk)
    zk.stop()
    zk_srv.stop()
    names = [p.name for p in (zk_srv.data_dir / "version-2").iterdir()]
    assert any(n.endswith(f".{method}") for n in names), names
    out = tmp_path / "coord" / "data"
    r = coord_cli("data", "import-zookeeper", str(zk_srv.data_dir), str(out))
    assert "verified" in r.stdout and f".{method}" in r.stdout, r.stdout
    srv = CoordProcess(tmp_path / "coord", force_sync=True)
    srv.start()
    c = KazooClient(srv.connect_string)
    c.start(15)
    try:
        assert snapshot_of(c) == expected
    finally:
        c.stop()
        srv.stop()


def test_unreadable_snappy_snapshot_fails_naming_the_file(tmp_path, monkeypatch):
    """Without the snappy codec (or with a broken stream) the import stops with the file and the
    reason, never with an empty tree."""
    from coord.zkimport import importer
    from coord.zkimport.zkfiles import ZkFormatError
    zk = tmp_path / "zk" / "version-2"
    zk.mkdir(parents=True)
    snap = zk / "snapshot.1f.snappy"
    snap.write_bytes(b"\x82SNAPPY\x00" + bytes(8) + b"\x00\x00\x00\x05abcde")
    with pytest.raises(ZkFormatError, match="does not decompress") as e:
        importer.import_zookeeper(tmp_path / "zk", tmp_path / "out")
    assert str(snap) in str(e.value)
    monkeypatch.setitem(sys.modules, "cramjam", None)  # as if the package were not installed
    with pytest.raises(ZkFormatError, match="cramjam") as e:
        importer.import_zookeeper(tmp_path / "zk", tmp_path / "out")
    assert str(snap) in str(e.value)
    assert not (tmp_path / "out" / "version-2").exists()
