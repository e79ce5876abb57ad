"""zkCli.sh, ZooKeeper's own Java client and shell, scripted against real ZooKeeper 3.8 and coord.

Each script runs once against each server (commands on stdin, many per JVM start); the outputs are
compared after normalising what legitimately differs: zxids (renamed by rank), times, session ids,
the order of sibling znodes in `ls -R` (ZooKeeper keeps children in a HashSet: unspecified), and the
interleaving of asynchronous watch notifications with command output (events are compared as their
own ordered list).
"""
from __future__ import annotations

import re

import pytest

from coord.core.acl import digest_id
from tests.compat.conftest import SUPER_CRED, wipe
from tests.compat.zkcli import run_script, strip_noise

pytestmark = pytest.mark.realzk

_ZXID = re.compile(r"^(cZxid|mZxid|pZxid) = 0x([0-9a-f]+)$")
_TIME = re.compile(r"^(ctime|mtime) = ")
_OWNER = re.compile(r"^ephemeralOwner = 0x([0-9a-f]+)$")


def normalise(text: str) -> tuple[list[str], list[str]]:
    lines = strip_noise(text)
    events = [ln.strip() for ln in lines if ln.startswith("WatchedEvent ")]
    body = [ln for ln in lines if not ln.startswith(("WatchedEvent ", "WATCHER::"))]
    zxids = sorted({int(m.group(2), 16) for ln in body if (m := _ZXID.match(ln))})
    rank = {z: i for i, z in enumerate(zxids)}
    out = []
    for ln in body:
        if m := _ZXID.match(ln):
            ln = f"{m.group(1)} = z{rank[int(m.group(2), 16)]}"
        elif _TIME.match(ln):
            ln = ln.split("=")[0] + "= <time>"
        elif (m := _OWNER.match(ln)) and int(m.group(1), 16):
            ln = "ephemeralOwner = <session>"
        out.append(ln)
    # `ls -R` lists siblings in the server's HashSet order, which ZooKeeper does not specify
    i = 0
    while i < len(out):
        if out[i].startswith("/"):
            j = i
            while j < len(out) and out[j].startswith("/"):
                j += 1
            out[i:j] = sorted(out[i:j])
            i = j
        else:
            i += 1
    return out, events


def run_both(pair, commands):
    got = {}
    for name, host, port in pair.targets:
        got[name] = normalise(run_script(f"{host}:{port}", commands))
    zk, co = got["zk"], got["coord"]
    if zk != co:
        import difflib
        diff = "\n".join(difflib.unified_diff(zk[0] + ["-- events --"] + zk[1], co[0] + ["-- events --"] + co[1],
                                              "zookeeper", "coord", lineterm=""))
        pytest.fail(f"zkCli output differs:\n{diff}", pytrace=False)
    return co


USER1 = digest_id("user1:pw1")


def test_zkcli_scripts(pair):
    wipe(pair, "/zc")
    body, events = run_both(pair, [
        'create /zc "hello"',
        'create -s /zc/seq- "s"',
        'create -s /zc/seq- "s"',
        'create -e /zc/eph "e"',
        'create -s -e /zc/eseq- "es"',
        "create -c /zc/cont",
        'create -t 60000 /zc/ttl "t"',
        "create /zc/cont/kid",
        "get -s /zc",
        'set /zc "world"',
        'set -s /zc "again"',
        'set -v 1 /zc "x"',
        "stat /zc/eph",
        "ls /zc",
        "ls -s /zc",
        "ls -R /zc",
        "getEphemerals",
        "getEphemerals /zc/e",
        "getAllChildrenNumber /zc",
        "getAllChildrenNumber /zc/cont",
        "create /zc/a/b",
        "delete /zc",
        "delete /zc/none",
        "deleteall /zc/cont",
        "sync /zc",
        "whoami",
        "addauth digest user1:pw1",
        "whoami",
        "setAcl /zc/seq-0000000000 auth:user1:pw1:crdwa",
        "getAcl /zc/seq-0000000000",
        "getAcl -s /zc/seq-0000000000",
        f"setAcl /zc/seq-0000000001 world:anyone:r,ip:127.0.0.1:cd,digest:{USER1}:a",
        "setAcl /zc/ttl ip:300.1.1.1:r",
        "setAcl -v 7 /zc/ttl world:anyone:r",
        "getAcl /zc/seq-0000000001",
        "get /zc/seq-0000000000",
        "addWatch /zc",
        "addWatch -m PERSISTENT_RECURSIVE /zc/seq-0000000001",
        'set /zc "w1"',
        'create /zc/child "c"',
        "delete /zc/child",
        "removewatches /zc",
        'set /zc "w2"',
        "get /zookeeper/config",
        "ls /zookeeper",
        "config",
        "get -w /zc",
        'set /zc "w3"',
        "ls -w /zc",
        "create /zc/c2",
        "stat -w /zc/nothere",
        "create /zc/nothere",
        "delete -v 5 /zc/nothere",
        "delete -v 0 /zc/nothere",
    ])
    assert "Created /zc/seq-0000000001" in body and "Created /zc/eseq-0000000003" in body
    assert "[/zc/eph, /zc/eseq-0000000003]" in body
    assert "Node not empty: /zc" in body and "Acl is not valid : /zc/ttl" in body
    assert "digest: user1" in body
    assert events[-2:] == ["WatchedEvent state:SyncConnected type:NodeCreated path:/zc/nothere",
                           "WatchedEvent state:Closed type:None path:null"]
    # a second zkCli, a new session: the first one's ephemerals are gone; ACLs hold for a client
    # without the identity, open with it; deleteall removes the tree
    body, events = run_both(pair, [
        "ls -R /zc",
        "getEphemerals",
        "get /zc/seq-0000000000",
        "getAcl /zc/seq-0000000000",
        "set /zc/seq-0000000000 nope",
        "getAcl /zc/seq-0000000001",
        "create /zc/seq-0000000001/x",
        "delete /zc/seq-0000000001",
        "addauth digest user1:wrong",
        "get /zc/seq-0000000000",
        "addauth digest user1:pw1",
        "get /zc/seq-0000000000",
        "whoami",
        "getAllChildrenNumber /zc",
        "deleteall /zc",
        "ls /",
        "getAllChildrenNumber /",
    ])
    assert "Insufficient permission : /zc/seq-0000000000" in body
    assert "[zookeeper]" in body


def test_zkcli_super_digest(pair):
    wipe(pair, "/zs")
    body, _ = run_both(pair, [
        'create /zs "x"',
        "setAcl /zs world:anyone:",
        "get /zs",
        f"addauth digest {SUPER_CRED}",
        "whoami",
        "get /zs",
        "setAcl /zs world:anyone:cdrwa",
        "getAcl /zs",
        "delete /zs",
    ])
    assert "super: " in body or "super:" in " ".join(body)


def test_zkcli_errors_and_special_nodes(pair):
    wipe(pair, "/ok")
    body, _ = run_both(pair, [
        "create /zookeeper/x",
        "delete /zookeeper",
        "set /zookeeper/config x",
        "getAcl /zookeeper/config",
        "stat /zookeeper/quota",
        "create relative",
        "create /bad/",
        "create /ok",
        "create -s /ok/",
        "ls /ok",
        "get /nope",
        "ls /nope",
        "getAllChildrenNumber /nope",
        "create -e /ok/e",
        "create /ok/e/child",
        "reconfig -add server.5=localhost:1234:1235;1236",
        "deleteall /ok",
    ])
    assert "Node does not exist: /nope" in body


def test_zkcli_quotas(pair):
    """setquota/listquota/delquota: the server keeps zookeeper_stats (count and bytes of the subtree)
    up to date on every create, delete and setData under a quota root."""
    wipe(pair, "/q")
    wipe(pair, "/zookeeper/quota/q")
    body, _ = run_both(pair, [
        "create /q x",
        "create /q/a 12345",
        "setquota -n 5 /q",
        "listquota /q",
        "create /q/b y",
        "set /q/a 1",
        "listquota /q",
        "get /zookeeper/quota/q/zookeeper_stats",
        "setquota -b 100 /q/a",
        "create /q/a/z zz",
        "listquota /q",
        "delete /q/b",
        "listquota /q",
        "delquota /q",
        "listquota /q",
        "deleteall /q",
        "ls -R /zookeeper",
    ])
    assert "Output stat for /q count=2,bytes=6" in body and "Output stat for /q count=3,bytes=4" in body
