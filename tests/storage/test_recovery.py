"""Fault injection on data-dir files: each case recovers to the last durable state or refuses to
start with a message naming the file (coord.aio.datadir)."""
from __future__ import annotations

import asyncio
import random
import shutil
from pathlib import Path

import pytest

from coord.aio.datadir import RecoveryError, Storage, recover
from coord.aio.snapshots import list_snapshots
from coord.aio.txnlog import list_logs
from coord.core.datatree import DataTree
from tests.storage.helpers import TxnMaker, random_txns, tree_state


def make_data_dir(root: Path, n_txns: int = 1500, seed: int = 3):
    """A real data dir written by TxnLog + SnapshotTaker, with rolled logs and several snapshots."""
    async def run():
        st = Storage(root, force_sync=False, snap_count=300, max_log_file_bytes=16 << 10, seed=seed)
        st.recover()
        tree = DataTree()
        mk = TxnMaker()
        rng = random.Random(seed)
        txns = []
        gen = random_txns(tree, mk, n_txns, rng)
        while True:
            batch = [t for _, t in zip(range(rng.randrange(1, 40)), gen)]
            if not batch:
                break
            txns += batch
            st.txnlog.append(batch)
            await st.txnlog.drain()
            st.logged(batch[-1][0].zxid, tree)
            await asyncio.sleep(0)
        while st.snapshots.in_progress or st._tasks:
            await asyncio.sleep(0.01)
        await st.close()
        return txns, tree_state(tree)
    return asyncio.run(run())


def state_at(txns, zxid) -> dict:
    tree = DataTree()
    for h, t in txns:
        if h.zxid > zxid:
            break
        tree.apply(h, t)
    return tree_state(tree)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine")
    txns, final = make_data_dir(root)
    return root, txns, final


@pytest.fixture
def dd(pristine, tmp_path):
    root, txns, final = pristine
    d = tmp_path / "dd"
    shutil.copytree(root, d)
    return d, txns, final


def dirs(d):
    return d / "version-2", d / "version-2"


def do_recover(d):
    return recover(*dirs(d), freeze_gc=False)


def newest_log(d) -> Path:
    return list_logs(d / "version-2")[-1][1]


def test_layout_has_rolled_logs_and_retained_snapshots(dd):
    d, txns, final = dd
    snaps = list_snapshots(d / "version-2")
    logs = list_logs(d / "version-2")
    assert len(snaps) == 3, "retention keeps the newest 3"
    assert len(logs) >= 3
    oldest = snaps[-1][0]
    assert logs[0][0] <= oldest + 1, "the logs the oldest kept snapshot needs are kept"
    rec = do_recover(d)
    assert tree_state(rec.tree) == final
    assert rec.snapshot_zxid == snaps[0][0]


def test_clean_recovery_is_idempotent(dd):
    d, _, final = dd
    assert tree_state(do_recover(d).tree) == final
    assert tree_state(do_recover(d).tree) == final

def test_recover_keeps_the_newest_replayed_records(dd):
    """`keep`: the last replayed records and the zxid before them (an ensemble member's DIFF window)."""
    d, txns, final = dd
    full = recover(*dirs(d), freeze_gc=False, keep=10 ** 6)
    assert full.replayed > 5 and len(full.recent) == full.replayed
    assert full.recent_base == full.snapshot_zxid and full.recent[-1][0].zxid == full.last_zxid
    rec = recover(*dirs(d), freeze_gc=False, keep=5)
    zx = [h.zxid for h, _ in txns]
    assert [h.zxid for h, _ in rec.recent] == zx[-5:]
    assert rec.recent_base == zx[-6]
    assert tree_state(rec.tree) == final
    assert do_recover(d).recent == []



@pytest.mark.parametrize("cut", [1, 5, 20, 57])
def test_torn_tail_is_truncated_to_the_last_intact_record(dd, cut, caplog):
    d, txns, _ = dd
    log = newest_log(d)
    size = log.stat().st_size
    with open(log, "r+b") as f:
        f.truncate(size - cut)
    rec = do_recover(d)
    last = rec.last_zxid
    assert txns[-1][0].zxid - 3 <= last < txns[-1][0].zxid
    assert tree_state(rec.tree) == state_at(txns, last)
    assert any("torn tail" in a and str(log) in a for a in rec.actions)
    assert log.stat().st_size < size - cut + 1
    assert tree_state(do_recover(d).tree) == state_at(txns, last), "the cut is durable"


def test_garbage_appended_to_the_tail_is_truncated(dd):
    d, txns, final = dd
    with open(newest_log(d), "ab") as f:
        f.write(b"\x00\x00\x01\x00" + random.Random(1).randbytes(300))
    rec = do_recover(d)
    assert tree_state(rec.tree) == final


def test_zeroed_block_at_the_tail_is_a_torn_tail(dd):
    d, txns, _ = dd
    log = newest_log(d)
    data = bytearray(log.read_bytes())
    data[-40:] = bytes(40)
    log.write_bytes(bytes(data))
    rec = do_recover(d)
    assert rec.last_zxid < txns[-1][0].zxid
    assert tree_state(rec.tree) == state_at(txns, rec.last_zxid)


def test_zeroed_block_in_the_middle_refuses_naming_the_file(dd):
    d, _, _ = dd
    log = newest_log(d)
    data = bytearray(log.read_bytes())
    assert len(data) > 4096
    data[len(data) // 2:len(data) // 2 + 512] = bytes(512)
    log.write_bytes(bytes(data))
    with pytest.raises(RecoveryError, match=str(log)) as e:
        do_recover(d)
    assert "hole" in str(e.value)
    assert log.read_bytes() == bytes(data), "nothing is changed when refusing"


def test_flipped_bit_in_the_middle_refuses(dd):
    d, _, _ = dd
    log = newest_log(d)
    data = bytearray(log.read_bytes())
    data[len(data) // 3] ^= 0x04
    log.write_bytes(bytes(data))
    with pytest.raises(RecoveryError, match=str(log)):
        do_recover(d)


def test_flipped_bit_in_the_last_record_is_a_torn_tail(dd):
    d, txns, _ = dd
    log = newest_log(d)
    data = bytearray(log.read_bytes())
    data[-3] ^= 0x80
    log.write_bytes(bytes(data))
    rec = do_recover(d)
    assert rec.last_zxid == txns[-2][0].zxid
    assert tree_state(rec.tree) == state_at(txns, rec.last_zxid)


def test_missing_newest_snapshot_recovers_from_the_previous_one(dd):
    d, _, final = dd
    snaps = list_snapshots(d / "version-2")
    snaps[0][1].unlink()
    rec = do_recover(d)
    assert rec.snapshot_zxid == snaps[1][0]
    assert tree_state(rec.tree) == final


@pytest.mark.parametrize("damage", ["empty", "truncated", "flipped", "zeroed"])
def test_damaged_newest_snapshot_falls_back_and_is_set_aside(dd, damage):
    d, _, final = dd
    snaps = list_snapshots(d / "version-2")
    p = snaps[0][1]
    data = bytearray(p.read_bytes())
    if damage == "empty":
        data = bytearray()
    elif damage == "truncated":
        data = data[:len(data) // 2]
    elif damage == "flipped":
        data[len(data) // 2] ^= 1
    else:
        data[40:4136] = bytes(len(data[40:4136]))
    p.write_bytes(bytes(data))
    rec = do_recover(d)
    assert rec.snapshot_zxid == snaps[1][0]
    assert tree_state(rec.tree) == final
    assert rec.corrupt_snapshots == [p]
    assert p.with_name(p.name + ".corrupt").exists() and not p.exists()


def test_all_snapshots_damaged_and_logs_not_from_the_start_refuses(dd):
    d, _, _ = dd
    for _, p in list_snapshots(d / "version-2"):
        p.write_bytes(b"")
    with pytest.raises(RecoveryError) as e:
        do_recover(d)
    msg = str(e.value)
    assert "ZOOKEEPER-2325" in msg and "snapshot." in msg and "log." in msg


def test_logs_without_any_snapshot_refuse_unless_they_start_at_the_first_txn(dd, tmp_path):
    d, txns, final = dd
    for _, p in list_snapshots(d / "version-2"):
        p.unlink()
    with pytest.raises(RecoveryError, match="ZOOKEEPER-2325"):
        do_recover(d)
    # a data dir whose logs hold everything from zxid 1 replays from an empty tree
    full = tmp_path / "full"
    (full / "version-2").mkdir(parents=True)
    from coord.core import logformat
    (full / "version-2" / "log.1").write_bytes(
        logformat.file_header() + b"".join(logformat.encode_record(h, t) for h, t in txns))
    assert tree_state(do_recover(full).tree) == final


def test_a_missing_log_in_the_middle_refuses(dd):
    d, _, _ = dd
    snaps = list_snapshots(d / "version-2")
    snaps[0][1].unlink()  # recover from the oldest kept snapshot, through several logs
    snaps[1][1].unlink()
    logs = list_logs(d / "version-2")
    needed = [p for z, p in logs if z > snaps[2][0] + 1]
    assert len(needed) >= 2
    needed[0].unlink()
    with pytest.raises(RecoveryError, match="missing") as e:
        do_recover(d)
    assert "log." in str(e.value)


def test_a_log_with_only_a_header_is_fine(dd):
    d, txns, final = dd
    from coord.core import logformat
    (d / "version-2" / logformat.log_name(txns[-1][0].zxid + 1)).write_bytes(logformat.file_header())
    assert tree_state(do_recover(d).tree) == final


@pytest.mark.parametrize("content", [b"", b"CDL", bytes(16)])
def test_newest_log_with_an_incomplete_header_is_removed(dd, content):
    d, txns, final = dd
    from coord.core import logformat
    p = d / "version-2" / logformat.log_name(txns[-1][0].zxid + 1)
    p.write_bytes(content)
    rec = do_recover(d)
    assert tree_state(rec.tree) == final
    assert not p.exists()


def test_a_foreign_file_named_like_a_log_refuses(dd):
    d, txns, _ = dd
    logs = list_logs(d / "version-2")
    p = logs[-2][1]
    p.write_bytes(b"not a log at all, but long enough to not be a crash")
    with pytest.raises(RecoveryError, match=str(p)):
        do_recover(d)


def test_unfinished_snapshot_temp_files_are_removed(dd):
    d, _, final = dd
    tmp = d / "version-2" / "snapshot.ffffff.tmp"
    tmp.write_bytes(b"partial")
    assert tree_state(do_recover(d).tree) == final
    assert not tmp.exists()


def test_empty_data_dir_starts_empty(tmp_path):
    rec = do_recover(tmp_path)
    assert rec.last_zxid == 0 and set(rec.tree.nodes) == {"/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"}


def test_a_zookeeper_data_dir_is_refused_with_a_pointer_to_the_importer(tmp_path):
    v = tmp_path / "version-2"
    v.mkdir()
    (v / "snapshot.0").write_bytes(b"ZKSN" + bytes(40))
    (v / "log.1").write_bytes(b"ZKLG" + bytes(40))
    with pytest.raises(RecoveryError, match="import-zookeeper"):
        do_recover(tmp_path)
    assert (v / "snapshot.0").exists(), "ZooKeeper's files are left alone"
