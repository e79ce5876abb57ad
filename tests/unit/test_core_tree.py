"""The data tree and prep through the request machine: Stat fields, sequence names, versions, ACLs."""
import random

from coord.core.datatree import CONTAINER_OWNER, DataTree, ttl_owner
from coord.jute import records as R
from coord.jute.protocol import Err
from tests.unit.harness import OPEN, Harness


def test_stat_fields_on_create_set_delete():
    h = Harness()
    c = h.connect()
    r = c.create2("/a", b"abc")
    assert r.err == 0
    st = r.record(R.Create2Response).stat
    assert st.version == 0 and st.cversion == 0 and st.aversion == 0 and st.dataLength == 3
    assert st.czxid == st.mzxid == st.pzxid and st.ctime == st.mtime == h.now
    assert st.ephemeralOwner == 0 and st.numChildren == 0
    s1 = c.set("/a", b"x").record(R.Stat)
    assert s1.version == 1 and s1.mzxid > s1.czxid and s1.czxid == st.czxid
    c.create("/a/b")
    c.delete("/a/b")
    s2 = c.stat("/a")
    # cversion counts every child create and delete; pzxid is the last child change.
    assert s2.cversion == 2 and s2.numChildren == 0 and s2.pzxid > s1.mzxid


def test_null_data_differs_from_empty():
    h = Harness()
    c = h.connect()
    c.create("/null", None)
    c.create("/empty", b"")
    assert c.get("/null").body[:4] == b"\xff\xff\xff\xff"
    assert c.get("/empty").body[:4] == b"\x00\x00\x00\x00"


def test_sequential_names_come_from_creations_only():
    h = Harness()
    c = h.connect()
    c.create("/q")
    names = [c.create("/q/n-", flags=2).record(R.CreateResponse).path for _ in range(3)]
    assert names == ["/q/n-0000000000", "/q/n-0000000001", "/q/n-0000000002"]
    c.delete(names[0])
    assert c.create("/q/n-", flags=2).record(R.CreateResponse).path == "/q/n-0000000003"


def test_errors_match_zookeeper():
    h = Harness()
    c = h.connect()
    assert c.create("/x/y").err == Err.NONODE
    assert c.create("bad").err == Err.BADARGUMENTS
    assert c.create("/a/").err == Err.NONODE      # the parent is checked before the final path
    c.create("/x")
    assert c.create("/x/").err == Err.BADARGUMENTS
    assert c.create("/x").err == Err.NODEEXISTS
    c.create("/x/c")
    assert c.delete("/x").err == Err.NOTEMPTY
    assert c.set("/x", b"1", version=5).err == Err.BADVERSION
    assert c.delete("/x/c", version=3).err == Err.BADVERSION
    c.create("/eph", flags=1)
    assert c.create("/eph/child").err == Err.NOCHILDRENFOREPHEMERALS
    assert c.delete("/zookeeper").err == Err.BADARGUMENTS
    assert c.delete("/").err == Err.BADARGUMENTS
    assert c.get("/nope").err == Err.NONODE


def test_containers_and_ttl_owners():
    from coord.core.config import CoreConfig
    h = Harness(CoreConfig(extended_types=True, container_check_interval_ms=100))
    c = h.connect()
    # The tree keeps the special owners; clients see 0 (DataNode.getClientEphemeralOwner).
    r = c.call(19, R.CreateRequest("/cont", b"", OPEN, 4))
    assert r.err == 0 and r.record(R.Create2Response).stat.ephemeralOwner == 0
    assert h.core.tree.nodes["/cont"].owner == CONTAINER_OWNER
    r = c.call(21, R.CreateTTLRequest("/ttl", b"", OPEN, 5, 500))
    assert r.err == 0 and r.record(R.Create2Response).stat.ephemeralOwner == 0
    assert h.core.tree.nodes["/ttl"].owner == ttl_owner(500)
    # TTL with a plain create mode is rejected; a TTL of 0 is rejected.
    assert c.call(21, R.CreateTTLRequest("/t2", b"", OPEN, 0, 500)).err == Err.BADARGUMENTS
    assert c.call(21, R.CreateTTLRequest("/t3", b"", OPEN, 5, 0)).err == Err.BADARGUMENTS
    c.create("/cont/child")
    c.delete("/cont/child")
    h.advance(200)   # container check runs; the cleanup txn is prepared
    h.durable()
    assert c.stat("/cont") is None
    h.advance(600)
    h.durable()
    assert c.stat("/ttl") is None


def test_ttl_needs_extended_types():
    h = Harness()
    c = h.connect()
    assert c.call(21, R.CreateTTLRequest("/ttl", b"", OPEN, 5, 500)).err == Err.UNIMPLEMENTED


def test_digest_is_incremental_and_deterministic():
    rnd = random.Random(7)
    h = Harness()
    c = h.connect()
    paths = ["/"]
    for i in range(300):
        op = rnd.random()
        if op < 0.5:
            parent = rnd.choice(paths)
            p = (parent.rstrip("/") + f"/n{i}")
            if c.create(p, bytes(rnd.randrange(20))).err == 0:
                paths.append(p)
        elif op < 0.8 and len(paths) > 1:
            c.set(rnd.choice(paths[1:]), b"d" * rnd.randrange(10))
        elif len(paths) > 1:
            p = rnd.choice(paths[1:])
            if c.delete(p).err == 0:
                paths.remove(p)
    tree = h.core.tree
    assert tree.digest == tree.recompute_digest()
    # Another tree fed the same txns has the same digest.
    other = DataTree()
    for path, node in tree.iter_nodes():
        assert path in tree.nodes
    assert other.digest != tree.digest


def test_acl_checks_and_auth():
    h = Harness()
    c = h.connect()
    c.call(100, R.AuthPacket(0, "digest", b"alice:secret"))
    assert c.create("/priv", b"s", acl=[R.ACL(31, R.Id("auth", ""))]).err == 0
    assert c.get("/priv").err == 0
    other = h.connect()
    assert other.get("/priv").err == Err.NOAUTH
    assert other.set("/priv", b"x").err == Err.NOAUTH
    assert other.stat("/priv") is None  # exists checks READ in 3.8
    acl = other.call(6, R.GetACLRequest("/priv"))
    assert acl.err == Err.NOAUTH
    # 'auth' with no authenticated identity is an invalid ACL.
    assert other.create("/bad", acl=[R.ACL(31, R.Id("auth", ""))]).err == Err.INVALIDACL
    assert other.create("/bad", acl=[]).err == Err.INVALIDACL
    assert other.create("/bad", acl=[R.ACL(31, R.Id("digest", "nocolon"))]).err == Err.INVALIDACL
    assert other.create("/bad", acl=[R.ACL(31, R.Id("weird", "x"))]).err == Err.INVALIDACL
    # Read-only world + admin for alice: others can read the ACL but see the digest redacted.
    c.create("/pub", acl=[R.ACL(1, R.Id("world", "anyone")),
                          R.ACL(31, R.Id("digest", "alice:abc"))])
    got = other.call(6, R.GetACLRequest("/pub")).record(R.GetACLResponse)
    assert [(a.id.scheme, a.id.id) for a in got.acl] == [("world", "anyone"), ("digest", "alice:x")]


def test_super_digest_passes_every_check():
    import base64
    import hashlib
    from coord.core.config import CoreConfig
    digest = base64.b64encode(hashlib.sha1(b"super:pw").digest()).decode()
    h = Harness(CoreConfig(super_digest=f"super:{digest}"))
    c = h.connect()
    c.create("/locked", b"z", acl=[R.ACL(31, R.Id("digest", "bob:xyz"))])
    admin = h.connect()
    assert admin.get("/locked").err == Err.NOAUTH
    admin.call(100, R.AuthPacket(0, "digest", b"super:pw"))
    assert admin.get("/locked").err == 0


def test_bad_auth_scheme_fails_and_closes():
    h = Harness()
    c = h.connect()
    xid = c.send(100, R.AuthPacket(0, "kerberos-ish", b"x"), xid=-4)
    replies = c.received()
    assert replies and replies[0].err == Err.AUTHFAILED and xid == -4
    assert c.cid in h.closed


def test_multi_success_and_failure_shapes():
    h = Harness()
    c = h.connect()

    def multi(ops):
        body = bytearray()
        for t, rec in ops:
            body += R.MultiHeader(t, False, -1).encode() + rec.encode()
        body += R.MultiHeader(-1, True, -1).encode()
        return c.call(14, raw=bytes(body))

    def parse(reply):
        out, p = [], 0
        from coord.jute.codec import decode
        while True:
            mh, p = decode(R.MultiHeader, reply.body, p)
            if mh.done:
                return out
            if mh.type == -1:
                e, p = decode(R.ErrorResponse, reply.body, p)
                out.append(("err", e.err))
            elif mh.type == 1:
                cr, p = decode(R.CreateResponse, reply.body, p)
                out.append(("create", cr.path))
            elif mh.type == 5:
                st, p = decode(R.Stat, reply.body, p)
                out.append(("set", st.version))
            else:
                out.append((mh.type,))

    r = multi([(1, R.CreateRequest("/m", b"", OPEN, 0)), (1, R.CreateRequest("/m/s-", b"", OPEN, 2)),
               (5, R.SetDataRequest("/m", b"v", 0)), (13, R.CheckVersionRequest("/m", 1))])
    assert r.err == 0
    assert parse(r) == [("create", "/m"), ("create", "/m/s-0000000000"), ("set", 1), (13,)]
    zxids = {c.stat("/m").czxid, c.stat("/m").mzxid}
    assert len(zxids) == 1  # one zxid for the whole multi
    before = h.core.tree.digest
    r = multi([(1, R.CreateRequest("/n", b"", OPEN, 0)), (1, R.CreateRequest("/m", b"", OPEN, 0)),
               (2, R.DeleteRequest("/m", -1))])
    assert r.err == 0
    assert parse(r) == [("err", 0), ("err", Err.NODEEXISTS), ("err", Err.RUNTIMEINCONSISTENCY)]
    assert c.stat("/n") is None and h.core.tree.digest == before
    # The failed multi's changes were rolled back from the overlay: /n can be created now.
    assert c.create("/n").err == 0


def test_path_character_rule_is_pathutils_for_every_code_point():
    """invalid_reason skips its regex for printable ASCII; every code point, placed inside a path,
    must still be judged exactly as PathUtils' character classes judge it."""
    import re

    from coord.core.paths import invalid_reason
    bad = re.compile("[\u0000-\u001f\u007f-\u009f\ud800-\uf8ff\ufff0-\uffff]")
    wrong = []
    for cp in range(0x110000):
        ch = chr(cp)
        if ch in "/.":
            continue
        p = "/a" + ch + "b"
        want = "invalid character" if bad.search(p) else None
        if invalid_reason(p) != want:
            wrong.append(hex(cp))
    assert not wrong, wrong[:10]
