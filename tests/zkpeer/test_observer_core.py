"""The ZooKeeper-observer state machine (coord.core.zkpeer) driven byte by byte, as a ZooKeeper 3.8
leader would drive it: registration, SNAP and DIFF sync, INFORM with digests, hostile input."""
from __future__ import annotations

import struct

import pytest

from coord.core import acl as aclmod
from coord.core.datatree import CONTAINER_OWNER, DataTree
from coord.core.server import ServerCore
from coord.core.zkpeer.digest import tree_digest
from coord.core.zkpeer.election import NO_VOTE, LeaderFinder
from coord.core.zkpeer.observer import ZkObserver, make_zxid
from coord.jute import quorum as Q
from coord.jute import records as R

EPOCH = 3


def packet(t, zxid, data=None):
    return Q.QuorumPacket(t, zxid, data).encode()


def sent(obs):
    s = Q.PacketStream(1 << 20)
    s.feed(b"".join(obs.out))
    obs.out.clear()
    out = []
    while (p := s.next_packet()) is not None:
        out.append(p)
    return out


def txn_bytes(hdr, txn, digest=None):
    b = hdr.encode() + txn.encode()
    if digest is not None:
        b += struct.pack(">iq", 2, digest)
    return b


def create(zxid, path, data=b"v", digest_of=None):
    """A create txn as the leader sends it, stamped with the digest `digest_of` has after it."""
    hdr = R.TxnHeader(0x77, 1, zxid, 1000 + zxid, 1)
    cv = -1 if digest_of is None else digest_of.nodes[path.rsplit("/", 1)[0] or "/"].cversion + 1
    txn = R.CreateTxn(path, data, [R.ACL(31, R.Id("world", "anyone"))], False, cv)
    d = None
    if digest_of is not None:
        digest_of.apply(hdr, txn)
        d = tree_digest(digest_of)
    return txn_bytes(hdr, txn, d)


def registered(tree=None):
    core = ServerCore(tree=tree)
    core.config.quorum = True
    obs = ZkObserver(9, core)
    obs.link_up(1)
    (info,) = sent(obs)
    assert info.type == Q.OBSERVERINFO
    li = R_decode_learner_info(info.data)
    assert (li.serverid, li.protocolVersion) == (9, Q.LEARNER_PROTOCOL)
    obs.data(packet(Q.LEADERINFO, make_zxid(EPOCH, 0), struct.pack(">i", Q.LEARNER_PROTOCOL)))
    (ack,) = sent(obs)
    assert ack.type == Q.ACKEPOCH and ack.zxid == core.tree.last_zxid
    return obs


def R_decode_learner_info(b):
    from coord.jute.codec import decode
    return decode(Q.LearnerInfo, b)[0]


def wire_snapshot(tree: DataTree, sessions: dict[int, int]) -> bytes:
    """The leader's SerializeUtils.serializeSnapshot + signature, written from the format."""
    out = bytearray(struct.pack(">i", len(sessions)))
    for sid, to in sessions.items():
        out += struct.pack(">qi", sid, to)
    out += struct.pack(">i", 1) + struct.pack(">qi", 1, 1) + struct.pack(">i", 31)
    for s in (b"world", b"anyone"):
        out += struct.pack(">i", len(s)) + s

    def node(path, n):
        p = b"" if path == "/" else path.encode()
        nonlocal out
        out += struct.pack(">i", len(p)) + p
        out += struct.pack(">i", -1 if n.data is None else len(n.data)) + (n.data or b"")
        out += struct.pack(">q", 1)
        out += struct.pack(">qqqqiiiqq", n.czxid, n.mzxid, n.ctime, n.mtime, n.version, n.cversion,
                           n.aversion, n.owner, n.pzxid)
        for c in sorted(n.children or ()):
            node((path.rstrip("/") + "/" + c), tree.nodes[(path.rstrip("/") + "/" + c)])
    node("/", tree.nodes["/"])
    out += struct.pack(">i", 1) + b"/"
    out += struct.pack(">i", 10) + b"BenWasHere"
    return bytes(out)


def test_snap_then_informs_verified_by_digest_and_served():
    leader = DataTree()
    blobs = [create(make_zxid(EPOCH, i), f"/n{i}", digest_of=leader) for i in range(1, 4)]
    obs = registered()
    snap_zxid = leader.last_zxid
    stream = packet(Q.SNAP, snap_zxid) + wire_snapshot(leader, {0x77: 30000})
    stream += packet(Q.NEWLEADER, make_zxid(EPOCH, 0)) + packet(Q.UPTODATE, -1)
    for b in [create(make_zxid(EPOCH, i), f"/n{i}", digest_of=leader) for i in range(4, 6)]:
        stream += packet(Q.INFORM, leader.last_zxid, b)
    for i in range(0, len(stream), 7):       # arrives in small pieces
        obs.data(stream[i:i + 7])
    assert obs.close is None and obs.phase == "serving"
    assert [p.type for p in sent(obs)] == [Q.ACK, Q.ACK]
    assert obs.core.serving and obs.core.tree.last_zxid == make_zxid(EPOCH, 5)
    assert obs.verified == 2 and obs.mismatches == 0
    assert obs.zk_digest.value == tree_digest(leader) == tree_digest(obs.core.tree)
    assert obs.core.tree.sessions == {0x77: 30000}
    assert blobs


def test_diff_applies_proposal_commit_pairs():
    leader = DataTree()
    obs = registered()
    stream = packet(Q.DIFF, make_zxid(EPOCH, 2))
    for i in (1, 2):
        b = create(make_zxid(EPOCH, i), f"/d{i}", digest_of=leader)
        stream += packet(Q.PROPOSAL, make_zxid(EPOCH, i), b) + packet(Q.COMMIT, make_zxid(EPOCH, i))
    stream += packet(Q.NEWLEADER, make_zxid(EPOCH, 0)) + packet(Q.UPTODATE, -1)
    obs.data(stream)
    assert obs.phase == "serving" and obs.syncs_done["DIFF"] == 1
    assert set(obs.core.tree.nodes) >= {"/d1", "/d2"} and obs.verified == 2


def test_digest_mismatch_drops_the_copy_and_closes_the_link():
    leader = DataTree()
    obs = registered()
    obs.data(packet(Q.DIFF, 0) + packet(Q.NEWLEADER, make_zxid(EPOCH, 0)) + packet(Q.UPTODATE, -1))
    b = create(make_zxid(EPOCH, 1), "/x", digest_of=leader)
    bad = b[:-8] + struct.pack(">q", 12345)
    obs.data(packet(Q.INFORM, make_zxid(EPOCH, 1), bad))
    assert obs.close and "digest" in obs.close and obs.mismatches == 1
    assert "/x" not in obs.core.tree.nodes and not obs.core.serving


@pytest.mark.parametrize("garbage, says", [
    (b"\x00\x00\x00\x63" + b"\x00" * 20, "unknown quorum packet type 99"),
    (packet(Q.INFORM, 5, b"\x01\x02"), "cannot read"),
    (struct.pack(">iqi", Q.INFORM, 5, 1 << 30), "length"),
])
def test_garbage_from_the_leader_closes_the_link_and_applies_nothing(garbage, says):
    obs = registered()
    obs.data(packet(Q.DIFF, 0) + packet(Q.NEWLEADER, make_zxid(EPOCH, 0)) + packet(Q.UPTODATE, -1))
    before = set(obs.core.tree.nodes)
    obs.data(garbage + packet(Q.INFORM, 1, create(1, "/after")))
    assert obs.close is not None and says in obs.close
    assert set(obs.core.tree.nodes) == before


def test_other_learner_protocol_version_is_refused():
    core = ServerCore()
    obs = ZkObserver(9, core)
    obs.link_up(1)
    obs.data(packet(Q.LEADERINFO, make_zxid(1, 0), struct.pack(">i", 0x20000)))
    assert obs.close and "protocol 0x20000" in obs.close


def test_trunc_below_applied_state_stops_the_observer():
    tree = DataTree()
    tree.apply(R.TxnHeader(1, 1, make_zxid(2, 5), 1, 1),
               R.CreateTxn("/a", b"", [R.ACL(31, R.Id("world", "anyone"))], False, -1))
    obs = registered(tree)
    obs.data(packet(Q.TRUNC, make_zxid(2, 3)))
    assert obs.fatal and "below the 0x200000005" in obs.fatal and "/a" in obs.core.tree.nodes


def test_ping_reply_reports_touched_sessions_once():
    leader = DataTree()
    obs = registered()
    obs.data(packet(Q.SNAP, 0) + wire_snapshot(leader, {0x55: 10000}) + packet(Q.NEWLEADER, make_zxid(EPOCH, 0))
             + packet(Q.UPTODATE, -1))
    sent(obs)
    obs.data(packet(Q.PING, 7))
    (p1,) = sent(obs)
    assert p1.type == Q.PING and struct.unpack(">qi", p1.data) == (0x55, 10000)
    obs.data(packet(Q.PING, 8))
    (p2,) = sent(obs)
    assert p2.data == b""


def test_snapshot_with_a_node_before_its_parent_is_refused():
    obs = registered()
    snap = bytearray(struct.pack(">ii", 0, 0))
    p = b"/a/b"
    snap += struct.pack(">i", len(p)) + p + struct.pack(">i", 0) + struct.pack(">q", -1) + bytes(60)
    obs.data(packet(Q.SNAP, 1) + bytes(snap))
    assert obs.close and "before its parent" in obs.close


def test_notifications_and_leader_finding():
    f = LeaderFinder(9, {1, 2, 3})
    n = Q.parse_notification(f.notification().encode()[4:])
    assert (n.state, n.leader, n.version) == (Q.OBSERVING, NO_VOTE, 2)
    assert f.on_notification(2, Q.Notification(Q.FOLLOWING, 3, 0, 1, 4)) is None
    assert f.on_notification(1, Q.Notification(Q.LOOKING, 1, 0, 1, 4)) is None
    assert f.on_notification(3, Q.Notification(Q.LEADING, 3, 0, 1, 4)) == 3
    with pytest.raises(Q.QuorumWireError, match="at least 28"):
        Q.parse_notification(b"\x00" * 10)
    with pytest.raises(Q.QuorumWireError, match="protocol version"):
        Q.parse_initial(struct.pack(">q", 7) + b"\x00" * 12)
    assert Q.parse_initial(Q.initial_message(4, "127.0.0.1:5")) == (4, "127.0.0.1:5", 16 + 4 + 11)


def test_wire_acl_is_interned_like_a_tree_acl():
    assert aclmod.intern(((31, "world", "anyone"),)) == aclmod.OPEN_ACL_UNSAFE


def test_a_fuzzy_snap_is_written_once_a_txn_verifies():
    """The leader serialised its tree while /n2 and /n3 were being applied: the snapshot (sent as of
    /n1) already holds both, and their INFORMs come again. After /n2 our tree cannot match the
    leader's digest (it has /n3 too); after /n3 it does: from then on every txn must verify, and the
    tree is written as a snapshot then (not at the SNAP, when it may not be exact)."""
    leader = DataTree()
    create(make_zxid(EPOCH, 1), "/n1", digest_of=leader)
    snap_zxid = leader.last_zxid
    b2 = create(make_zxid(EPOCH, 2), "/n2", digest_of=leader)
    b3 = create(make_zxid(EPOCH, 3), "/n3", digest_of=leader)
    fuzzy = wire_snapshot(leader, {})
    b4 = create(make_zxid(EPOCH, 4), "/n4", digest_of=leader)
    obs = registered()
    obs.data(packet(Q.SNAP, snap_zxid) + fuzzy + packet(Q.NEWLEADER, make_zxid(EPOCH, 0)) + packet(Q.UPTODATE, -1)
             + b"".join(packet(Q.INFORM, make_zxid(EPOCH, i), b) for i, b in ((2, b2), (3, b3), (4, b4))))
    assert obs.close is None and obs.mismatches == 0 and (obs.unverified, obs.verified) == (1, 2)
    assert obs.zk_digest.value == tree_digest(leader) == tree_digest(obs.core.tree)
    # the SNAP's tree is asked to be written once, right after the first txn that verifies (/n3)
    kinds = [e[0] if e[0] != "append" else e[1].zxid for e in obs.disk]
    assert kinds == ["snap", make_zxid(EPOCH, 2), make_zxid(EPOCH, 3), "snapshot", make_zxid(EPOCH, 4)]
    assert obs.disk[0] == ("snap", snap_zxid)


def serving_with_client(hold_ms: int):
    """An observer serving one client whose session (0x55) the leader's SNAP holds; returns it."""
    from coord.core.sessions import session_password
    leader = DataTree()
    obs = registered()
    obs.hold_ms = hold_ms
    obs.data(packet(Q.SNAP, 0) + wire_snapshot(leader, {0x55: 10000}) + packet(Q.NEWLEADER, make_zxid(EPOCH, 0))
             + packet(Q.UPTODATE, -1))
    sent(obs)
    core = obs.core
    core.connection_made(1, "127.0.0.1:5001")
    core.frame(1, R.ConnectRequest(0, 0, 10000, 0x55, session_password(0x55)).encode() + b"\x00")
    (reval,) = sent(obs)
    assert reval.type == Q.REVALIDATE
    obs.data(packet(Q.REVALIDATE, -1, struct.pack(">q?", 0x55, True)))
    core.drain()
    assert core.conns[1].established
    return obs


def set_data(core, xid, value):
    core.frame(1, R.RequestHeader(xid, 5).encode() + R.SetDataRequest("/", value, -1).encode())


def test_lost_leader_holds_clients_and_their_writes_for_the_take_over():
    obs = serving_with_client(hold_ms=5000)
    core = obs.core
    set_data(core, 1, b"forwarded")
    (req,) = sent(obs)
    assert req.type == Q.REQUEST
    obs.link_down("the ZooKeeper servers were stopped")
    assert obs.phase == "holding" and core.serving and 1 in core.conns and not core.conns[1].closing
    set_data(core, 2, b"held")                      # no leader: held, not forwarded, not failed
    core.frame(1, R.RequestHeader(3, 11).encode())  # a ping: answered here, in order after the writes
    assert sent(obs) == []
    out, closing = core.drain()
    assert 1 not in closing and out.get(1, []) == []
    core.set_time(0, core.mono_ms + 4000)
    obs.tick()
    assert obs.phase == "holding"
    requests, syncs, revals = obs.handed_over()
    assert [(r.cxid, r.req.data) for r in requests] == [(1, b"forwarded"), (2, b"held")]
    assert syncs == [] and revals == [] and obs.phase == "taken over"
    obs.link_down("again")                          # the link's own close after the hand-over: nothing
    assert core.serving and not core.conns[1].closing


def test_a_hold_nobody_takes_over_closes_the_clients_as_zookeeper_does():
    obs = serving_with_client(hold_ms=2000)
    core = obs.core
    obs.link_down("leader gone")
    core.set_time(0, core.mono_ms + 2000)
    obs.tick()
    assert obs.phase == "idle" and not core.serving and core.conns[1].closing
    obs = serving_with_client(hold_ms=2000)        # a new ZooKeeper leader found meanwhile: re-sync
    obs.link_down("leader gone")
    obs.link_up(2)
    assert obs.phase == "registering" and not obs.core.serving and obs.core.conns[1].closing
    obs = serving_with_client(hold_ms=0)           # no hold asked: closed at once
    obs.link_down("leader gone")
    assert not obs.core.serving and obs.core.conns[1].closing


def test_wire_snapshot_reader_sums_zookeepers_digest_as_nodes_arrive():
    """The digest the reader sums while it reads equals ZooKeeper's digest of the tree it built
    (nodes under /zookeeper/ left out, null data, ephemerals, versions), whatever the chunking."""
    from coord.core.zkpeer.wiresnap import WireSnapshotReader
    leader = DataTree()
    for i, path in enumerate(["/a", "/a/b", "/a/b/c", "/e", "/zookeeper/x", "/f"], 1):
        create(make_zxid(EPOCH, i), path, data=b"d%d" % i, digest_of=leader)
    leader.nodes["/f"].owner = CONTAINER_OWNER
    leader.nodes["/a/b"].data = None
    leader.nodes["/a/b/c"].owner = 0x55
    leader.nodes["/e"].version = 7
    leader.nodes["/e"].mzxid = make_zxid(EPOCH, 9)
    stream = wire_snapshot(leader, {0x55: 10000})
    want = tree_digest(leader)
    for size in (1, 7, 68, len(stream)):
        r = WireSnapshotReader(leader.last_zxid)
        s = Q.PacketStream(1 << 20)
        done = False
        for i in range(0, len(stream), size):
            s.feed(stream[i:i + size])
            done = r.step(s)
        assert done and r.nodes == len(leader.nodes)
        assert r.zk_digest == tree_digest(r.tree) == want
        assert r.tree.nodes["/a/b"].data is None and r.tree.nodes["/a/b/c"].owner == 0x55
        assert r.tree.nodes["/e"].stat_values() == leader.nodes["/e"].stat_values()
        # coord's own digest and indexes, as DataTree.load_node would have left them
        assert r.tree.digest == r.tree.recompute_digest() == leader.recompute_digest()
        assert r.tree.data_bytes == sum(len(n.data) for n in r.tree.nodes.values() if n.data)
        assert r.tree.ephemerals == {0x55: {"/a/b/c"}} and r.tree.containers == {"/f"}
        assert r.tree.nodes["/a"].children == {"b"} and r.tree.nodes["/"].children == {"a", "e", "f", "zookeeper"}


def test_packet_stream_reuses_its_buffer_across_many_feeds_and_receives():
    """The buffer keeps its size while the unread bytes move to its front, grows for a packet larger
    than it, and gives the same packets whether bytes are fed or received into it (room/filled),
    in pieces of any size."""
    import random
    rng = random.Random(7)
    datas = [bytes([i % 251]) * rng.choice((0, 10, 3000, 200_000)) for i in range(300)]
    stream = b"".join(packet(Q.PING, i, d) for i, d in enumerate(datas))
    for receive in (False, True):
        s = Q.PacketStream(1 << 20)
        got, sizes, i = [], set(), 0
        while i < len(stream):
            n = rng.choice((1, 7, 1000, 65536, 300_000))
            piece = stream[i:i + n]
            if receive:
                view = s.room(len(piece))
                view[:len(piece)] = piece
                s.filled(len(piece))
            else:
                s.feed(piece)
            i += len(piece)
            while (qp := s.next_packet()) is not None:
                got.append(qp)
            sizes.add(len(s.buf))
        assert [(p.zxid, p.data or b"") for p in got] == list(enumerate(datas)) and s.unread() == 0
        assert len(sizes) <= 5, sizes          # doubled a few times, never reallocated per feed
