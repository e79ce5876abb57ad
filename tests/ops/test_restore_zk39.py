"""ZooKeeper 3.9's AdminServer `snapshot` + `restore`, differential: the same scenario on a pair of real
ZooKeeper 3.9 servers (Maven Central jars, scripts/setup.sh: tests/ops/zk39-pom.xml) and on a pair of
coord servers, with one harness. A snapshot taken from server S (digest Authorization) is POSTed to
server T, which held other data; the transcripts (status codes, JSON bodies, headers) and T's tree
after the restore must agree, apart from the differences docs/operations.md lists ("Restore",
"Differences from 3.9"), which the test names one by one.
"""
from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.ops.prom import ROOT, need
from tests.support.coord_server import start_coord
from tests.support.real_zk import RealZooKeeper, free_port

AUTH = "admin:s3cret"
POM = Path(__file__).with_name("zk39-pom.xml")


def zk39_jars() -> list[str]:
    """ZooKeeper 3.9 and what its release ships beside it, as setup.sh copied them from Maven Central."""
    d = ROOT / ".cache" / f"zk39-{hashlib.sha1(POM.read_bytes()).hexdigest()[:12]}"
    if not (d / ".complete").exists():
        return []
    return [str(p) for p in sorted(d.glob("*.jar"))]


def _call(port: int, cmd: str, auth: str | None, body: bytes | None = None) -> tuple[int, dict, bytes]:
    url = f"http://127.0.0.1:{port}/commands/{cmd}"
    hdrs = {"Authorization": f"digest {auth}"} if auth else {}
    req = urllib.request.Request(url, data=body, headers=hdrs, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def _doc(body: bytes):
    """The JSON body, or what it was instead (ZooKeeper may answer with Jetty's HTML error page)."""
    try:
        return json.loads(body)
    except ValueError:
        return {"not json": body[:80].decode(errors="replace")}


class _Server:
    """One standalone server of either kind with its AdminServer on a free port."""

    def __init__(self, kind: str, workdir: Path, cfg: dict[str, str]):
        self.admin = free_port()
        cfg = {"admin.enableServer": "true", "admin.serverAddress": "127.0.0.1",
               "admin.serverPort": str(self.admin), **cfg}
        if kind == "zookeeper":
            self.proc = RealZooKeeper(workdir, jars=zk39_jars(), extra_cfg=cfg).start(wait=120)
        else:
            self.proc = start_coord(workdir, extra_cfg=cfg)

    @property
    def hosts(self) -> str:
        return self.proc.connect_string

    def stop(self) -> None:
        self.proc.stop()


def _client(hosts: str):
    from kazoo.client import KazooClient
    zk = KazooClient(hosts=hosts, timeout=30)
    zk.start(timeout=60)
    return zk


def _close(zk) -> None:
    zk.stop()
    zk.close()


def _lock_root(zk) -> None:
    from kazoo.security import make_digest_acl
    user, pw = AUTH.split(":")
    zk.add_auth("digest", AUTH)
    zk.set_acls("/", [make_digest_acl(user, pw, all=True)])


def _tree(zk, path: str = "/") -> dict:
    """Every znode under `path` but /zookeeper: data, version and ACL (what a restore must bring)."""
    out = {}
    for child in sorted(zk.get_children(path)):
        p = path.rstrip("/") + "/" + child
        if p == "/zookeeper":
            continue
        data, st = zk.get(p)
        out[p] = (data, st.version, [(a.perms, a.id.scheme, a.id.id) for a in zk.get_acls(p)[0]])
        out.update(_tree(zk, p))
    return out


def scenario(kind: str, tmp: Path) -> dict:
    """The whole scenario on one kind; a transcript of what each step answered."""
    t: dict = {}
    src = _Server(kind, tmp / "src", {})
    dst = fresh = None
    try:
        zk = _client(src.hosts)
        zk.create("/r")
        for i in range(20):
            zk.create(f"/r/a{i}", f"v{i}".encode())
        zk.create("/r/a3/deep", b"d")
        zk.set("/r/a1", b"v1-2")
        _lock_root(zk)
        t["source_tree"] = _tree(zk)
        _close(zk)
        for who in (None, "someone:else"):
            code, _, body = _call(src.admin, "snapshot", who)
            t[f"snapshot auth={who}"] = (code, _doc(body))
        code, hdrs, snap = _call(src.admin, "snapshot", AUTH)
        t["snapshot"] = (code, hdrs.get("content-type", "").split(";")[0], "last_zxid" in hdrs,
                         hdrs.get("snapshot_size") == str(len(snap)) and len(snap) > 0)
        code, _, body = _call(src.admin, "snapshot", AUTH)
        t["snapshot again"] = (code, _doc(body))

        # T: other data, / locked to the same digest id (so that 403 means something)
        dst = _Server(kind, tmp / "dst", {})
        zk = _client(dst.hosts)
        zk.create("/other", b"o")
        _lock_root(zk)
        for who in (None, "someone:else"):
            code, _, body = _call(dst.admin, "restore", who, snap)
            t[f"restore auth={who}"] = (code, _doc(body))
        code, _, body = _call(dst.admin, "restore", AUTH, snap)
        doc = _doc(body)
        t["restore"] = (code, list(doc), doc.get("command"), doc.get("error"), type(doc.get("last_zxid")).__name__)
        t["restore last_zxid"] = doc.get("last_zxid")
        code, _, body = _call(dst.admin, "restore", AUTH, snap)
        t["restore again"] = (code, _doc(body))
        _close(zk)
        zk = _client(dst.hosts)
        zk.add_auth("digest", AUTH)
        zk.sync("/")
        t["restored_tree"] = _tree(zk)
        zk.create("/r/after", b"y")
        t["write after restore zxid"] = zk.exists("/r/after").mzxid
        _close(zk)

        # bad bodies, with the rate limit off (a fresh server each: 3.9 spends its token on a failure)
        for what, body in (("empty", b""), ("garbage", b"not a snapshot")):
            fresh = _Server(kind, tmp / f"bad-{what}", {"admin.rateLimiterIntervalInMS": "0"})
            code, _, out = _call(fresh.admin, "restore", AUTH, body)
            d = _doc(out)
            t[f"restore {what} body"] = (code, d.get("command"), d.get("error") is None)
            fresh.stop()
            fresh = None
    finally:
        for s in (src, dst, fresh):
            if s is not None:
                s.stop()
    return t


# Where coord answers differently from 3.9, on purpose (docs/operations.md, "Differences from 3.9").
COORD_DIFFERS = {
    "snapshot again",            # 3.9 rate-limits `snapshot` too (429); coord serves every snapshot
    "restore again",             # both 429; 3.9 says "error": null, coord why
    "restore empty body",        # 3.9: 500 with "error": null; coord: 400 and the reason
    "restore garbage body",      # 3.9: 500 with "error": null; coord: 500 and the reason
    "write after restore zxid",  # 3.9 goes on from T's own zxid, below the restored tree's; coord after it
}


@pytest.mark.slow
def test_restore_differential_zookeeper_39_and_coord(tmp_path):
    need(bool(zk39_jars()), "ZooKeeper 3.9 jars (.cache/zk39-*)")
    zk = scenario("zookeeper", tmp_path / "zk")
    co = scenario("coord", tmp_path / "coord")
    for k in zk:
        if not k.endswith("_tree"):
            print(f"{k:28s} zookeeper 3.9: {zk[k]!r:60s} coord: {co.get(k)!r}")

    # what both must do
    for t in (zk, co):
        assert t["snapshot"] == (200, "application/octet-stream", True, True)
        assert t["snapshot auth=None"][0] == 401 and t["snapshot auth=someone:else"][0] == 403
        assert t["restore auth=None"][0] == 401
        assert t["restore"] == (200, ["last_zxid", "command", "error"], "restore", None, "int")
        assert t["restore again"][0] == 429
        assert t["restored_tree"] == t["source_tree"]           # the snapshot's tree, /other gone
    same = {k for k in zk if k not in COORD_DIFFERS}
    assert {k: co[k] for k in same if k not in ("source_tree", "restored_tree")} == \
        {k: zk[k] for k in same if k not in ("source_tree", "restored_tree")}
    assert co["restored_tree"] == zk["restored_tree"]           # the same data on both kinds

    # the differences, pinned so that a change on either side is noticed
    assert zk["snapshot again"] == (429, {"command": "snapshot", "error": None})
    assert co["snapshot again"][0] == 200
    assert zk["restore again"] == (429, {"command": "restore", "error": None})
    assert co["restore again"][0] == 429 and "rate limited" in co["restore again"][1]["error"]
    assert zk["restore empty body"] == (500, "restore", True) and co["restore empty body"] == (400, "restore", False)
    assert zk["restore garbage body"] == (500, "restore", True) and co["restore garbage body"] == (500, "restore", False)
    # 3.9 numbers the next write from the server's zxid before the restore, below zxids the restored
    # tree already holds (a client that saw the tree sees zxids go back); coord continues after them
    assert zk["write after restore zxid"] < zk["restore last_zxid"]
    assert co["write after restore zxid"] > co["restore last_zxid"]


# -- a restore POSTed to an observer ------------------------------------------------------------------
def _view(hosts: str) -> str:
    """'restored' if the member at `hosts` serves the snapshot's tree, 'not restored' if the later one."""
    zk = _client(hosts)
    try:
        zk.add_auth("digest", AUTH)
        zk.sync("/")
        old = zk.exists("/r/a0") is not None and zk.exists("/r/later") is None
        new = zk.exists("/r/a0") is None and zk.exists("/r/later") is not None
        return "restored" if old else "not restored" if new else "mixed"
    finally:
        _close(zk)


def observer_scenario(kind: str, tmp: Path) -> dict:
    """3 voters and an observer; a snapshot from the leader, the tree changed, the snapshot POSTed to
    the observer: its answer, then what each member serves, and where a write after it lands."""
    import time
    from tests.support.ensemble import Ensemble
    admin = {sid: free_port() for sid in (1, 2, 3, 4)}
    ens = Ensemble(tmp, 3, observers=1, kind=kind, jars=zk39_jars() if kind == "zookeeper" else None,
                   tick_ms=500, force_sync=False,
                   extra_cfg={"admin.enableServer": "true", "admin.serverAddress": "127.0.0.1"},
                   member_cfg={sid: {"admin.serverPort": str(p)} for sid, p in admin.items()}).start(wait=120)
    t: dict = {}
    try:
        voters = ens.connect_string([1, 2, 3])
        zk = _client(voters)
        zk.create("/r")
        for i in range(10):
            zk.create(f"/r/a{i}", f"v{i}".encode())
        _lock_root(zk)
        code, _, snap = _call(admin[ens.leader().sid], "snapshot", AUTH)
        assert code == 200 and snap, code
        zk.delete("/r/a0")
        zk.create("/r/later", b"x")
        _close(zk)
        observer = next(m for m in ens.members.values() if m.role == "observer")
        code, _, body = _call(admin[observer.sid], "restore", AUTH, snap)
        doc = _doc(body)
        t["restore"] = (code, list(doc), doc.get("error"))
        ens.wait_serving(wait=90)
        t["views"] = {("observer" if m.role == "observer" else "voter", sid): _view(m.connect_string)
                      for sid, m in sorted(ens.members.items())}
        zk = _client(voters)
        zk.add_auth("digest", AUTH)
        zk.create("/r/after", b"y")
        _close(zk)
        time.sleep(1.0)
        zk = _client(observer.connect_string)
        zk.add_auth("digest", AUTH)
        zk.sync("/")
        t["observer after a write"] = (zk.exists("/r/after") is not None, zk.exists("/r/later") is not None)
        _close(zk)
        if kind == "coord":                 # coord's mntr has the tree digest (3.9's has no such row)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                t["digests"] = {m.mntr().get("zk_digest") for m in ens.members.values()}
                if len(t["digests"]) == 1:
                    break
                time.sleep(0.2)
    finally:
        ens.stop()
    return t


@pytest.mark.slow
def test_restore_through_an_observer_zookeeper_39_and_coord(tmp_path):
    """ZooKeeper 3.9 restores only the observer it is POSTed to: the observer then serves a tree its
    quorum does not have, and keeps applying the quorum's commits on top of it. coord forwards the
    restore to the leader and restores the whole ensemble, observer included."""
    need(bool(zk39_jars()), "ZooKeeper 3.9 jars (.cache/zk39-*)")
    zk = observer_scenario("zookeeper", tmp_path / "zk")
    co = observer_scenario("coord", tmp_path / "coord")
    print("zookeeper 3.9:", zk)
    print("coord:        ", co)
    for t in (zk, co):
        assert t["restore"][0] == 200 and t["restore"][1:] == (["last_zxid", "command", "error"], None), t
    assert zk["views"] == {("voter", 1): "not restored", ("voter", 2): "not restored", ("voter", 3): "not restored",
                           ("observer", 4): "restored"}
    assert set(co["views"].values()) == {"restored"} and len(co["views"]) == 4
    assert zk["observer after a write"] == (True, False)     # the quorum's write, on the observer's own tree
    assert co["observer after a write"] == (True, False)
    assert len(co["digests"]) == 1 and None not in co["digests"], co["digests"]   # all four, one tree
