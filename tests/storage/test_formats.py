"""Pure format code: snapshot round trips and verification, copy-on-write capture, log scanning."""
from __future__ import annotations

import random
import zlib

import pytest

from coord.core import logformat, snapformat
from coord.core.datatree import DataTree
from coord.jute import records as R
from tests.storage.helpers import TxnMaker, random_txns, tree_state


def build(n=400, seed=1):
    rng = random.Random(seed)
    tree = DataTree()
    mk = TxnMaker()
    txns = list(random_txns(tree, mk, n, rng))
    return tree, mk, txns, rng


def test_snapshot_round_trip_keeps_every_field():
    tree, *_ = build()
    data = snapformat.encode_tree(tree)
    loaded, info = snapformat.load_bytes(data)
    assert info.zxid == tree.last_zxid and info.node_count == len(tree.nodes)
    assert tree_state(loaded) == tree_state(tree)
    assert loaded.recompute_digest() == tree.digest
    assert loaded.ephemerals == tree.ephemerals


def test_uncompressed_snapshot_loads_too():
    tree, *_ = build(100)
    loaded, _ = snapformat.load_bytes(snapformat.encode_tree(tree, compressed=False))
    assert tree_state(loaded) == tree_state(tree)


@pytest.mark.parametrize("cut", [0, 10, 36, 50, -1, -14, -30])
def test_truncated_snapshot_is_rejected(cut):
    tree, *_ = build(100)
    data = snapformat.encode_tree(tree)
    with pytest.raises(snapformat.SnapshotError):
        snapformat.load_bytes(data[:cut])


def test_any_flipped_bit_is_rejected():
    tree, *_ = build(100)
    data = snapformat.encode_tree(tree)
    rng = random.Random(7)
    for _ in range(60):
        b = bytearray(data)
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
        with pytest.raises(snapformat.SnapshotError):
            snapformat.load_bytes(bytes(b))


def test_a_node_whose_fields_disagree_with_its_digest_is_caught():
    """Stored per-node digests are trusted only after the first node of each chunk is recomputed
    (a different digest function makes the loader recompute all, and the seal must still hold)."""
    tree, *_ = build(50)
    victim = next(p for p in tree.nodes if p.startswith("/t/"))
    tree.nodes[victim].version += 1  # a change that bypassed the digest
    enc = snapformat.SnapshotEncoder(tree.last_zxid, tree.sessions, chunk_nodes=1)
    for p, n in tree.nodes.items():
        enc.add_node(p, n)
    frames = enc.finish()
    data = snapformat.header(tree.last_zxid) + b"".join(snapformat.seal_frame(k, r) for k, r in frames)
    with pytest.raises(snapformat.SnapshotError, match="digest"):
        snapformat.load_bytes(data)


def capture_while_writing(tree, mk, rng, writes: int, listed: bool = False):
    """Capture tree, then emit it 7 nodes at a time with 3 random txns applied between slices (up
    to `writes`); returns the closed capture, its encoder and the encoder's final frames."""
    cap = snapformat.TreeCapture(tree, listed=listed)
    enc = snapformat.SnapshotEncoder(cap.zxid, cap.sessions, chunk_nodes=16)
    more = random_txns(tree, mk, writes, rng)
    while not cap.emit(enc, 7):
        for _ in range(3):
            next(more, None)
    frames = enc.finish()
    cap.close()
    return cap, enc, frames


@pytest.mark.parametrize("listed", [False, True])
def test_capture_is_consistent_while_the_tree_keeps_changing(listed):
    """Every txn kind applied between slices; the result equals the tree as of the capture zxid
    (walking the children, or the paths listed at capture in the tree's order)."""
    for seed in range(5):
        tree, mk, _, rng = build(300, seed)
        expected = tree_state(tree)
        cap, enc, frames = capture_while_writing(tree, mk, rng, 400, listed)
        assert tree.before_apply is None
        assert enc.digest == cap.digest
        data = snapformat.header(cap.zxid) + b"".join(snapformat.seal_frame(k, r) for k, r in frames)
        loaded, info = snapformat.load_bytes(data)
        assert info.zxid == expected["zxid"]
        assert tree_state(loaded) == expected


class _NoWalk(dict):
    """The copies a capture keeps, refusing to be walked: a slice must look up only its own paths
    (walking every copy per slice made loop turns of 0.1-1 s under heavy deletes)."""
    def keys(self):
        raise AssertionError("a slice walked every saved copy")

    def __iter__(self):
        raise AssertionError("a slice walked every saved copy")


def test_a_slice_looks_up_its_own_paths_not_every_copy():
    tree, mk, _, rng = build(300, 3)
    expected = tree_state(tree)
    cap = snapformat.TreeCapture(tree)
    cap.saved = _NoWalk()
    enc = snapformat.SnapshotEncoder(cap.zxid, cap.sessions, chunk_nodes=16)
    more = random_txns(tree, mk, 400, rng)
    while not cap.emit(enc, 7):
        for _ in range(3):
            next(more, None)
    frames = enc.finish()
    cap.close()
    assert len(cap.saved) > 0 and enc.digest == cap.digest
    data = snapformat.header(cap.zxid) + b"".join(snapformat.seal_frame(k, r) for k, r in frames)
    assert tree_state(snapformat.load_bytes(data)[0]) == expected


def test_capture_keeps_the_quota_stats_that_writes_under_a_quota_root_update():
    """Writes under a quota root also change /zookeeper/quota<root>/zookeeper_stats: the capture
    must keep that node as it was too, or the snapshot fails its digest check."""
    for seed in range(3):
        tree, mk, _, rng = build(100, seed)
        for path, data in (("/zookeeper/quota/t", b""),
                           ("/zookeeper/quota/t/zookeeper_limits", b"count=-1,bytes=-1"),
                           ("/zookeeper/quota/t/zookeeper_stats", b"count=0,bytes=0")):
            tree.apply(*mk.create(path, data))
        stats = tree.nodes["/zookeeper/quota/t/zookeeper_stats"]
        assert stats.data != b"count=0,bytes=0"      # counted the subtree when it was made
        expected = tree_state(tree)
        cap, enc, frames = capture_while_writing(tree, mk, rng, 200)
        assert tree_state(tree) != expected          # the writes did move the stats on
        assert enc.digest == cap.digest
        data = snapformat.header(cap.zxid) + b"".join(snapformat.seal_frame(k, r) for k, r in frames)
        assert tree_state(snapformat.load_bytes(data)[0]) == expected


def test_two_captures_at_once_each_see_their_own_zxid():
    """A periodic snapshot and a SNAP sync stream may capture the same tree at different zxids and
    finish in either order."""
    for order in ((0, 1), (1, 0)):
        tree, mk, _, rng = build(200, 7)
        more = random_txns(tree, mk, 400, rng)
        caps, expected = [], []
        for _ in range(2):
            expected.append(tree_state(tree))
            caps.append(snapformat.TreeCapture(tree))
            for _ in range(20):
                next(more, None)
        encs = [snapformat.SnapshotEncoder(c.zxid, c.sessions, chunk_nodes=16) for c in caps]
        done = [False, False]
        while not all(done):
            for i in order:
                if not done[i]:
                    done[i] = caps[i].emit(encs[i], 5)
                    if done[i]:
                        caps[i].close()
            next(more, None)
        assert tree.before_apply is None
        for i in range(2):
            data = snapformat.header(caps[i].zxid) + b"".join(
                snapformat.seal_frame(k, r) for k, r in encs[i].finish())
            assert tree_state(snapformat.load_bytes(data)[0]) == expected[i]


def _log_bytes(txns):
    return logformat.file_header() + b"".join(logformat.encode_record(h, t) for h, t in txns)


def test_log_scan_tells_a_torn_tail_from_a_hole():
    _, _, txns, _ = build(200)
    data = _log_bytes(txns)
    s = logformat.scan(data)
    assert not s.damaged and s.last_zxid == txns[-1][0].zxid
    torn = logformat.scan(data[:-7])
    assert torn.damaged and torn.hole is None and torn.last_zxid == txns[-2][0].zxid
    mid = bytearray(data)
    mid[len(data) // 2:len(data) // 2 + 64] = bytes(64)
    holed = logformat.scan(bytes(mid))
    assert holed.damaged and holed.hole is not None and holed.hole[1] > holed.last_zxid
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0x10
    assert logformat.scan(bytes(flipped)).hole is not None


def test_zxid_follows():
    assert logformat.zxid_follows(5, 6)
    assert not logformat.zxid_follows(5, 7)
    assert logformat.zxid_follows(0x1_0000_0009, 0x2_0000_0001)
    assert not logformat.zxid_follows(0x1_0000_0009, 0x2_0000_0005)
    assert logformat.zxid_follows(0, 1) and not logformat.zxid_follows(0, 2)


def test_snapshots_written_with_zlib_still_load(monkeypatch):
    """Snapshots from before zstd (flags COMPRESSED only) stay readable; unknown flags are not."""
    tree, *_ = build(200)
    monkeypatch.setattr(snapformat, "DEFAULT_FLAGS", snapformat.COMPRESSED)
    data = snapformat.encode_tree(tree)
    monkeypatch.undo()
    assert snapformat.parse_header(data).flags == snapformat.COMPRESSED
    loaded, _ = snapformat.load_bytes(data)
    assert tree_state(loaded) == tree_state(tree)
    assert snapformat.parse_header(snapformat.encode_tree(tree)).flags == snapformat.DEFAULT_FLAGS
    odd = bytearray(snapformat.header(tree.last_zxid))
    odd[6:8] = (0x80).to_bytes(2, "big")
    odd[32:36] = zlib.crc32(bytes(odd[:32])).to_bytes(4, "big")
    with pytest.raises(snapformat.SnapshotError, match="flags"):
        snapformat.parse_header(bytes(odd))


def test_batched_encoding_of_null_and_large_data_and_equal_acls():
    """Null data, empty data, data larger than a chunk, and ACLs equal in value but distinct
    objects all round-trip; no node frame grows far past chunk_bytes."""
    tree = DataTree()
    mk = TxnMaker()
    rng = random.Random(3)
    for ht in (mk.create("/big", b""), mk.create("/nul", None)):
        assert tree.apply(*ht).err == 0
    for i in range(40):
        data = rng.randbytes(rng.choice([0, 10, 200_000, 700_000]))
        hdr, txn = mk.create(f"/big/n{i}", data)
        txn.acl = [R.ACL(31, R.Id("digest", f"u{i % 3}:x"))]
        assert tree.apply(hdr, txn).err == 0
        node = tree.nodes[f"/big/n{i}"]
        node.acl = tuple(list(node.acl))  # equal in value, a distinct object per node
    digest = tree.digest  # settles every node's (lazily kept) share before the encoder reads them
    enc = snapformat.SnapshotEncoder(tree.last_zxid, tree.sessions, chunk_bytes=1 << 20)
    enc.add_batch(list(tree.nodes), list(tree.nodes.values()))
    frames = enc.finish()
    assert enc.digest == digest and enc.node_count == len(tree.nodes)
    assert max(len(raw) for kind, raw in frames if kind == snapformat.KIND_NODES) < (1 << 20) + 800_000
    assert len(enc.acl_index) == 5  # open, read-only (config), three digest identities: once each
    data = snapformat.header(tree.last_zxid) + b"".join(snapformat.seal_frame(k, r) for k, r in frames)
    loaded, _ = snapformat.load_bytes(data)
    assert tree_state(loaded) == tree_state(tree)
    assert loaded.nodes["/nul"].data is None


@pytest.mark.parametrize("batch", [1, 3, 64, 300, 5000])
def test_frames_are_the_same_whatever_the_batches(batch):
    """Each batch is packed as it comes (so an in-loop snapshot's slice costs what its nodes cost,
    with no chunk-sized packing at a flush): the frames must not depend on how the nodes were cut
    into batches, null data and chunk boundaries inside a batch included."""
    tree, *_ = build(n=1500, seed=7)
    hdr = R.TxnHeader(1, 1, tree.last_zxid + 1, 0, 1)
    assert tree.apply(hdr, R.CreateTxn("/nulldata", None, [R.ACL(31, R.Id("world", "anyone"))], False, 1)).err == 0
    paths, nodes = list(tree.nodes), list(tree.nodes.values())
    tree.digest  # settle every node's share

    def frames(step):
        enc = snapformat.SnapshotEncoder(tree.last_zxid, tree.sessions, chunk_nodes=256)
        for i in range(0, len(paths), step):
            enc.add_batch(paths[i:i + step], nodes[i:i + step])
        return enc.finish()

    whole = frames(len(paths))
    assert sum(kind == snapformat.KIND_NODES for kind, _ in whole) == -(-len(paths) // 256)
    assert frames(batch) == whole
    loaded, _ = snapformat.load_bytes(snapformat.header(tree.last_zxid)
                                      + b"".join(snapformat.seal_frame(k, r) for k, r in whole))
    assert tree_state(loaded) == tree_state(tree) and loaded.nodes["/nulldata"].data is None


@pytest.mark.parametrize("step", [1, 7, 100, 4096, 1 << 20])
def test_snapshot_received_in_pieces_builds_the_same_tree(step):
    """SnapshotReceiver (SNAP sync) builds each frame as soon as it is whole: same tree as load_bytes,
    and a cut or damaged stream is refused."""
    tree, *_ = build(300, 5)
    data = snapformat.encode_tree(tree)
    r = snapformat.SnapshotReceiver()
    for i in range(0, len(data), step):
        r.feed(data[i:i + step])
    got, info = r.finish()
    assert r.data == data and len(r) == len(data)
    assert tree_state(got) == tree_state(snapformat.load_bytes(data)[0]) == tree_state(tree)
    cut = snapformat.SnapshotReceiver()
    cut.feed(data[:-3])
    with pytest.raises(snapformat.SnapshotError, match="truncated"):
        cut.finish()
    bad = bytearray(data)
    bad[len(data) // 2] ^= 0x10
    with pytest.raises(snapformat.SnapshotError):
        r2 = snapformat.SnapshotReceiver()
        for i in range(0, len(bad), step):
            r2.feed(bytes(bad[i:i + step]))
        r2.finish()
    with pytest.raises(snapformat.SnapshotError):
        extra = snapformat.SnapshotReceiver()
        extra.feed(data + b"\0" * 20)
        extra.finish()


def test_a_log_record_from_an_entry_blob_is_the_record_encoded_from_the_txn():
    """Ensemble members log the Zab entry's blob (TxnHeader + txn as proposed) as it is: the bytes
    must be exactly those encode_record writes, and read back to the same txns."""
    from coord.core.zab.messages import Entry
    _tree, _mk, txns, _rng = build(200, seed=3)
    encoded = [logformat.encode_record(h, t) for h, t in txns]
    from_blobs = [logformat.encode_blob(h.zxid, Entry(h, t).blob) for h, t in txns]
    assert from_blobs == encoded
    data = logformat.file_header() + b"".join(from_blobs)
    back = [(h, t) for h, t, _end in logformat.iter_records(data)]
    assert [h.zxid for h, _t in back] == [h.zxid for h, _t in txns]
    assert back == txns
