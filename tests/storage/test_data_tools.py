"""`coord data dump-snapshot | compare-snapshots | dump-log filters | chop-log | repair-log` on real coord
data dirs and on real ZooKeeper 3.8 data dirs, cross-checked with ZooKeeper's own SnapshotFormatter
and TxnLogToolkit where Debian's jars run them."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

import pytest
from click.testing import CliRunner
from kazoo.client import KazooClient

from coord.core import logformat
from tests.storage.test_import_and_tools import snapshot_of
from tests.support.coord_server import CoordProcess
from tests.support.real_zk import ZK_CONF_EXAMPLE, RealZooKeeper, zk_classpath


@dataclass
class Ran:
    stdout: str
    stderr: str
    returncode: int


def coord_cli(*args, check=True) -> Ran:
    """`coord ARGS` in this process (the same click commands as the console script, without the
    ~1 s start of a new interpreter per call on a loaded machine)."""
    from coord.cli import main
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    ran = Ran(r.stdout, r.stderr, r.exit_code)
    if check and ran.returncode != 0:
        raise AssertionError(f"coord {' '.join(args)} failed ({ran.returncode}):\n{ran.stdout}\n{ran.stderr}")
    return ran


def _zxids(out: str) -> list[int]:
    return [int(ln.split()[0], 16) for ln in out.splitlines() if ln.strip()]


def _only_log(data_dir):
    logs = [p for p in (data_dir / "version-2").iterdir() if re.fullmatch(r"log\.[0-9a-f]+", p.name)]
    assert len(logs) == 1, logs
    return logs[0]


def test_coord_log_filters_chop_and_repair(tmp_path):
    srv = CoordProcess(tmp_path / "c", force_sync=True, extra_cfg={"snapCount": "100000"})
    srv.start()
    zk = KazooClient(srv.connect_string)
    other = KazooClient(srv.connect_string)
    zk.start(15)
    other.start(15)
    try:
        zk.create("/a", b"first")
        a_czxid = zk.exists("/a").czxid
        czxid = {}
        for i in range(20):
            zk.create(f"/a/n{i}", b"v")
            czxid[i] = zk.exists(f"/a/n{i}").czxid
        zk.create("/ab", b"not under /a")
        other.create("/b", b"")
        other.create("/b/x", b"from other")
        zk.set("/a", b"second")
        zk.delete("/a/n3")
        t = zk.transaction()
        t.create("/a/m1", b"")
        t.create("/b/m2", b"")
        t.commit()
        other_sid = other.client_id[0]
    finally:
        zk.stop()
        other.stop()
    srv.stop()
    d = srv.data_dir

    full = coord_cli("data", "dump-log", str(d)).stdout  # a data dir: every log, in zxid order
    assert _zxids(full) == sorted(_zxids(full)) and len(_zxids(full)) >= 28, full
    creates_under_a = coord_cli("data", "dump-log", str(d), "--path", "/a", "--op", "create").stdout
    lines = creates_under_a.splitlines()
    assert sorted(ln.split()[5] for ln in lines) == sorted(["/a"] + [f"/a/n{i}" for i in range(20)]), lines
    assert set(_zxids(creates_under_a)) == {a_czxid, *czxid.values()}
    multi = coord_cli("data", "dump-log", str(d), "--path", "/b/m2").stdout.splitlines()
    assert len(multi) == 1 and " multi [" in multi[0], multi
    rng = coord_cli("data", "dump-log", str(d), "--zxid-from", hex(czxid[5]), "--zxid-to", str(czxid[10])).stdout
    assert _zxids(rng) == [czxid[i] for i in range(5, 11)], rng
    mine = coord_cli("data", "dump-log", str(d), "--session", hex(other_sid)).stdout.splitlines()
    assert all(f"session=0x{other_sid:x} " in ln for ln in mine), mine
    assert [ln.split()[4] for ln in mine] == ["createSession", "create", "create", "closeSession"], mine
    assert [ln.split()[5] for ln in mine[1:3]] == ["/b", "/b/x"], mine
    bad = coord_cli("data", "dump-log", str(d), "--op", "frobnicate", check=False)
    assert bad.returncode == 2 and "unknown op 'frobnicate'" in bad.stderr, bad.stderr

    # chop at /a/n10's zxid, in place (the original kept beside it), and serve the chopped dir
    cut = tmp_path / "cut"
    shutil.copytree(srv.workdir, cut)
    log = _only_log(cut / "data")
    for s in (cut / "data" / "version-2").glob("snapshot.*"):
        assert int(s.name.split(".")[1], 16) <= czxid[10], s  # none past the cut (snapCount is high)
    r = coord_cli("data", "chop-log", str(log), "--zxid", hex(czxid[10]), "--in-place")
    assert "original kept as" in r.stderr and re.search(r"kept \d+ of \d+ txns", r.stdout), r.stdout + r.stderr
    assert len(list(log.parent.glob(f"orig-{log.name}-*"))) == 1
    assert max(_zxids(coord_cli("data", "dump-log", str(log)).stdout)) == czxid[10]
    chopped = CoordProcess(cut, force_sync=True, extra_cfg={"snapCount": "100000"})
    chopped.start()
    c = KazooClient(chopped.connect_string)
    c.start(15)
    try:
        assert sorted(c.get_children("/a")) == sorted(f"n{i}" for i in range(11))
        assert c.get("/a")[0] == b"first" and not c.exists("/b") and not c.exists("/ab")
        c.create("/after-chop", b"")  # it serves writes too
    finally:
        c.stop()
        chopped.stop()

    # a torn tail: cut off after the last intact record; the original is untouched
    log = _only_log(d)
    good = log.read_bytes()
    end = logformat.scan(good).end
    torn = tmp_path / "torn" / "log.1"
    torn.parent.mkdir()
    torn.write_bytes(good[:end] + good[end - 40:end - 10])
    r = coord_cli("data", "repair-log", str(torn))
    assert f"torn tail at offset {end}" in r.stdout, r.stdout
    repaired = torn.with_name("repaired-log.1")
    assert repaired.read_bytes() == good[:end] and torn.stat().st_size == end + 30
    assert coord_cli("data", "repair-log", str(repaired)).stdout.rstrip().endswith("nothing written")
    # a garbled record in the middle: reported with its offset, and not cut without --force
    recs = logformat.scan(good).records
    mid = recs[len(recs) // 2 - 1][2]  # offset where record len//2 starts
    garbled = bytearray(good[:end])
    garbled[mid + 20] ^= 0xFF
    hole = tmp_path / "torn" / "log.2"
    hole.write_bytes(bytes(garbled))
    r = coord_cli("data", "repair-log", str(hole), check=False)
    assert r.returncode == 1 and f"damaged record at offset {mid}" in r.stdout and "--force" in r.stderr, r
    r = coord_cli("data", "repair-log", str(hole), "--force", "--out", str(tmp_path / "forced"))
    assert (tmp_path / "forced").read_bytes() == good[:mid]


def _zk_tool(cls: str, *args) -> str:
    """Run one of ZooKeeper's own tools from Debian's jars (as zkSnapShotToolkit.sh / zkTxnLogToolkit.sh do)."""
    r = subprocess.run(["java", "-cp", zk_classpath(ZK_CONF_EXAMPLE.parent), cls, *args], capture_output=True,
                       text=True, timeout=120, input="")
    return r.stdout + r.stderr


def _zk_run(zk_srv: RealZooKeeper, work=None) -> None:
    """Start ZooKeeper (which takes a snapshot of what it loaded), do work, stop it."""
    zk_srv.start()
    try:
        if work:
            zk = KazooClient(zk_srv.connect_string)
            zk.start(15)
            try:
                work(zk)
            finally:
                zk.stop()
    finally:
        zk_srv.stop()


def _snaps(zk_srv):
    return sorted((p for p in (zk_srv.data_dir / "version-2").glob("snapshot.*")),
                  key=lambda p: int(p.name.split(".")[1], 16))


@pytest.mark.realzk
def test_zookeeper_data_dir_tools(tmp_path):
    zk_srv = RealZooKeeper(tmp_path / "zk", force_sync=True, extra_cfg={"snapCount": "100000"})
    expected = {}

    def first(zk):
        zk.create("/app/c1", b"one", makepath=True)
        for i in range(40):
            zk.create(f"/app/d{i}", b"x" * i)
        t = zk.transaction()
        t.create("/app/m1", b"")
        t.set_data("/app/c1", b"uno")
        t.commit()

    def second(zk):
        zk.set("/app/c1", b"two")
        zk.create("/app/new", b"n")
        zk.delete("/app/d1")
        expected.update(snapshot_of(zk))

    _zk_run(zk_srv, first)
    _zk_run(zk_srv, second)   # its start snapshots the first run's tree
    _zk_run(zk_srv)           # and this one the second's
    snaps = _snaps(zk_srv)
    a, b = snaps[-2], snaps[-1]

    # compare two ZooKeeper snapshots: exactly the changes of the second run
    r = coord_cli("data", "compare-snapshots", str(a), str(b), "--json", check=False)
    diff = json.loads(r.stdout)
    assert r.returncode == 1 and not diff["equal"], r.stdout
    assert diff["first"]["only_in_A"] == ["/app/d1"] and diff["first"]["only_in_B"] == ["/app/new"]
    assert diff["first"]["different_data"] == ["/app/c1"], diff
    assert set(diff["first"]["different_stat"]) == {"/app", "/app/c1"}, diff
    assert diff["B"]["node_count"] == len(expected)  # every znode a client sees, /zookeeper too
    text = coord_cli("data", "compare-snapshots", str(a), str(b), check=False).stdout
    assert "only in A: /app/d1" in text and "DIFFERENT" in text, text

    # the same tree in coord's format (by import) compares equal to ZooKeeper's snapshot
    out = tmp_path / "coord" / "data"
    coord_cli("data", "import-zookeeper", str(zk_srv.data_dir), str(out))
    r = coord_cli("data", "compare-snapshots", str(b), str(out))
    assert "EQUAL" in r.stdout and "zookeeper" in r.stdout and "coord" in r.stdout, r.stdout

    # dump-snapshot: either format, the same znodes; node count as ZooKeeper's SnapshotFormatter
    dz = json.loads(coord_cli("data", "dump-snapshot", str(b), "--json", "--data").stdout)
    dc = json.loads(coord_cli("data", "dump-snapshot", str(out), "--json", "--data").stdout)
    assert dz["format"] == "zookeeper" and dc["format"] == "coord"
    assert dz["nodes"] == dc["nodes"] and dz["digest"] == dc["digest"]
    served = {n["path"]: n for n in dz["nodes"]}
    assert served["/app/c1"]["stat"]["version"] == expected["/app/c1"][1][4]
    assert tuple(served["/app/new"]["stat"].values()) == tuple(expected["/app/new"][1])
    formatter = _zk_tool("org.apache.zookeeper.server.SnapshotFormatter", str(b))
    m = re.search(r"ZNode Details \(count=(\d+)\)", formatter)
    printed = re.findall(r"(?m)^(/\S*)$", formatter)
    assert sorted(printed) == sorted(n["path"] for n in dz["nodes"]), formatter[-2000:]
    assert m and int(m.group(1)) == dz["node_count"] + 1  # ZooKeeper's DataTree holds the root as "" and "/"
    text = coord_cli("data", "dump-snapshot", str(b)).stdout
    assert "/app/new\n  cZxid = 0x" in text and f"znodes: {dz['node_count']}" in text

    # dump-log on ZooKeeper's logs: filters, and the txn count of ZooKeeper's TxnLogToolkit
    logs = sorted((zk_srv.data_dir / "version-2").glob("log.*"), key=lambda p: int(p.name.split(".")[1], 16))
    first_log = logs[0]
    ours = coord_cli("data", "dump-log", str(first_log)).stdout.splitlines()
    theirs = _zk_tool("org.apache.zookeeper.server.persistence.TxnLogToolkit", "--dump", str(first_log))
    m = re.search(r"EOF reached after (\d+) txns", theirs)
    assert m and int(m.group(1)) == len(ours), theirs[-2000:]
    new = coord_cli("data", "dump-log", str(zk_srv.data_dir), "--path", "/app/new").stdout.splitlines()
    assert len(new) == 1 and " create /app/new " in new[0], new
    sets = coord_cli("data", "dump-log", str(zk_srv.data_dir), "--op", "setData", "--op", "multi").stdout
    assert [ln.split()[4] for ln in sets.splitlines()] == ["multi", "setData"], sets

    # chop: ZooKeeper's toolkit reads exactly the txns kept
    z = _zxids("\n".join(ours))[len(ours) // 2]
    chopped = tmp_path / "chopped.log"
    coord_cli("data", "chop-log", str(first_log), "--zxid", hex(z), "--out", str(chopped))
    kept = len([x for x in _zxids("\n".join(ours)) if x <= z])
    m = re.search(r"EOF reached after (\d+) txns",
                  _zk_tool("org.apache.zookeeper.server.persistence.TxnLogToolkit", "--dump", str(chopped)))
    assert m and int(m.group(1)) == kept
    # a bad checksum: reported and cut, or fixed with --recover-crc as TxnLogToolkit --recover does
    data = bytearray(first_log.read_bytes())
    data[16 + 3] ^= 0x55  # inside the first entry's Adler32
    bad = tmp_path / "bad" / first_log.name
    bad.parent.mkdir()
    bad.write_bytes(bytes(data))
    r = coord_cli("data", "repair-log", str(bad))
    assert "entry at offset 16 fails its checksum" in r.stdout and "keeping 0 txns" in r.stdout, r.stdout
    r = coord_cli("data", "repair-log", str(bad), "--recover-crc", "--out", str(tmp_path / "fixed.log"))
    assert "fixed the checksum of the entry at offset 16" in r.stdout, r.stdout
    assert len(coord_cli("data", "dump-log", str(tmp_path / "fixed.log")).stdout.splitlines()) == len(ours)
    m = re.search(r"EOF reached after (\d+) txns", _zk_tool(
        "org.apache.zookeeper.server.persistence.TxnLogToolkit", "--dump", str(tmp_path / "fixed.log")))
    assert m and int(m.group(1)) == len(ours)
    assert bad.read_bytes() == bytes(data)  # the original untouched


def _chop_dir_scenario(srv, tmp_path, start_again):
    """Writes enough for several log files and snapshots, chops the data dir at a zxid in the
    middle, and serves it: exactly the znodes created up to that zxid, later files set aside."""
    czxid = {}
    srv.start()
    zk = KazooClient(srv.connect_string)
    zk.start(15)
    try:
        zk.create("/c")
        for i in range(300):
            zk.create(f"/c/n{i:03d}", b"v")
            czxid[i] = zk.exists(f"/c/n{i:03d}").czxid
    finally:
        zk.stop()
    srv.stop()
    v2 = srv.data_dir / "version-2"
    logs = sorted(p.name for p in v2.glob("log.*"))
    snaps = sorted(p.name for p in v2.glob("snapshot.*"))
    assert len(logs) >= 2 and len(snaps) >= 2, (logs, snaps)
    # the zxid to cut at: inside a log that has a later log, and before a later snapshot (snapshots
    # are taken in the background, so where the last one lands against the log rolls varies: the
    # latest log that qualifies is taken)
    starts = sorted(int(n.split(".")[1], 16) for n in logs)
    last_snap = max(int(n.split(".")[1], 16) for n in snaps)
    cut = next(i for lo, hi in reversed(list(zip(starts, starts[1:])))
               for i in sorted(czxid) if lo < czxid[i] and czxid[i] + 5 < min(hi, last_snap))
    assert any(int(n.split(".")[1], 16) > czxid[cut] for n in snaps), (snaps, czxid[cut])
    r = coord_cli("data", "chop-log", str(srv.data_dir), "--zxid", hex(czxid[cut]))
    assert "set aside as orig-" in r.stdout, r.stdout
    left = [p.name for p in v2.iterdir() if p.name.startswith(("log.", "snapshot."))]
    assert all(int(n.split(".")[1], 16) <= czxid[cut] for n in left), left
    assert any(n.startswith("orig-snapshot.") for n in os.listdir(v2)), os.listdir(v2)
    bad = coord_cli("data", "chop-log", str(srv.data_dir), "--zxid", "0x1", "--out", str(tmp_path / "x"), check=False)
    assert bad.returncode == 2 and "in place" in bad.stderr, bad.stderr
    start_again()
    zk = KazooClient(srv.connect_string)
    zk.start(15)
    try:
        assert sorted(zk.get_children("/c")) == [f"n{i:03d}" for i in range(cut + 1)]
        zk.create("/c/after", b"")
    finally:
        zk.stop()
        srv.stop()


def test_chop_log_on_a_coord_data_dir(tmp_path):
    srv = CoordProcess(tmp_path / "c", force_sync=True, extra_cfg={"snapCount": "60"})
    _chop_dir_scenario(srv, tmp_path, srv.start)


@pytest.mark.realzk
def test_chop_log_on_a_zookeeper_data_dir(tmp_path):
    """The same on real ZooKeeper 3.8's files, and ZooKeeper itself serves the chopped dir. (Its
    snapshots are fuzzy: one named at or before the zxid may hold a few later txns; here the
    writes are sequential, so a snapshot's name is its exact state.)"""
    srv = RealZooKeeper(tmp_path / "zk", force_sync=True, extra_cfg={"snapCount": "60"})
    _chop_dir_scenario(srv, tmp_path, srv.start)
