"""Log recycling (coord.aio.txnlog.recycle_log, datadir.purge): retention turns a log no snapshot
needs into the next log file's zeroed space instead of freeing its blocks, and a roll takes it."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from coord.aio import datadir, txnlog
from coord.aio.datadir import purge, recover
from coord.aio.txnlog import SPARE, SPARE_TMP, SPARES, TxnLog, list_logs
from coord.core import logformat
from tests.storage.helpers import TxnMaker

BLOCK = 256 << 10


def _write(d: Path, batches: int, per: int, mk: TxnMaker, log: TxnLog | None = None, roll_each: bool = False) -> TxnLog:
    async def run():
        nonlocal log
        if log is None:
            log = TxnLog(d, force_sync=True, pre_alloc_bytes=BLOCK)
            log.start(mk.zxid)
        for _ in range(batches):
            if roll_each:
                log.roll()
            log.append([mk.create(f"/n{mk.zxid + 1}", b"x" * 40) for _ in range(per)])
            await log.drain()
        return log
    return asyncio.run(run())


def _snapshot_names(d: Path, *zxids: int) -> None:
    """Empty files with snapshot names: purge decides by names only."""
    for z in zxids:
        (d / f"snapshot.{z:x}").write_bytes(b"")


def test_retention_recycles_dropped_logs_into_two_spares_and_unlinks_the_rest(tmp_path):
    mk = TxnMaker()
    log = _write(tmp_path, 6, 10, mk, roll_each=True)   # log.1, log.b, log.15, log.1f, log.29, log.33
    log.close()
    logs = list_logs(tmp_path)
    assert len(logs) == 6
    for _, p in logs[:-1]:
        assert p.stat().st_size == BLOCK + logformat.FILE_HEADER_SIZE, f"{p.name} kept its preallocated zeros"
    ino = {p.name: p.stat().st_ino for _, p in logs}
    _snapshot_names(tmp_path, 0xa, 0x1e, 0x28, 0x32)   # the oldest kept (0x1e) needs log.1f onwards
    gone = purge(tmp_path, tmp_path, 3, recycle_bytes=BLOCK)
    assert [p.name for p in gone] == ["snapshot.a", "log.1", "log.b", "log.15"]
    assert [p.name for _, p in list_logs(tmp_path)] == ["log.1f", "log.29", "log.33"]
    assert sorted(os.listdir(tmp_path)) == ["log.1f", "log.29", "log.33", "snapshot.1e", "snapshot.28",
                                            "snapshot.32", "spare.1.log", "spare.log"]
    # the newest dropped first: log.15 and log.b are the spares, log.1 (the oldest) is unlinked
    assert (tmp_path / SPARES[0]).stat().st_ino == ino["log.15"]
    assert (tmp_path / SPARES[1]).stat().st_ino == ino["log.b"]
    for name in SPARES:
        st = (tmp_path / name).stat()
        assert st.st_size == BLOCK and st.st_blocks * 512 >= BLOCK, "cut to the block, every block still allocated"
        assert not (tmp_path / name).read_bytes().strip(b"\0"), "zeroed"
    # both spares there: the next purge unlinks
    _snapshot_names(tmp_path, 0x3c)
    assert [p.name for p in purge(tmp_path, tmp_path, 3, recycle_bytes=BLOCK)] == ["snapshot.1e", "log.1f"]
    assert not (tmp_path / "log.1f").exists()
    assert (tmp_path / SPARES[0]).stat().st_ino == ino["log.15"]


def test_a_roll_takes_the_spare_and_recovery_reads_it_as_any_log(tmp_path):
    mk = TxnMaker()
    log = _write(tmp_path, 3, 10, mk, roll_each=True)
    _snapshot_names(tmp_path, 0x5, 0xa, 0x14, 0x1e)   # 0xa kept: log.b onwards; log.1 goes
    assert [p.name for p in purge(tmp_path, tmp_path, 3, recycle_bytes=BLOCK)] == ["snapshot.5", "log.1"]
    spare_ino = (tmp_path / SPARE).stat().st_ino
    _write(tmp_path, 2, 10, mk, log=log, roll_each=True)   # two rolls: the first takes the spare
    newest = list_logs(tmp_path)
    assert [p.name for _, p in newest] == ["log.b", "log.15", "log.1f", "log.29"]
    assert newest[2][1].stat().st_ino == spare_ino and not (tmp_path / SPARE).exists()
    assert newest[2][1].stat().st_size == BLOCK, "the spare's space, not a new allocation"
    assert newest[3][1].stat().st_size == BLOCK + logformat.FILE_HEADER_SIZE, "no spare left: allocated"
    log.close()


def test_recovery_replays_through_a_recycled_file(tmp_path):
    mk = TxnMaker()
    log = _write(tmp_path, 2, 10, mk, roll_each=True)   # log.1, log.b
    # an old log with intact records becomes the spare: none of them may ever be read again
    old = tmp_path / "log.1"
    keep = tmp_path / "keep.bin"
    keep.write_bytes(old.read_bytes())
    os.rename(keep, tmp_path / "log.0")   # a stand-in doomed log holding intact records (zxids 1-10)
    assert txnlog.recycle_log(tmp_path / "log.0", BLOCK)
    _write(tmp_path, 3, 10, mk, log=log, roll_each=True)   # log.15 is the spare
    assert (tmp_path / "log.15").stat().st_size == BLOCK
    os.close(log.fd)
    log.fd = None
    rec = recover(tmp_path, tmp_path, freeze_gc=False)
    assert rec.last_zxid == 50 and rec.actions == [], "zeros after the records: the normal end of a log"


def test_a_crash_while_recycling_leaves_no_log(tmp_path):
    """SPARE_TMP (a doomed log renamed, maybe not yet zeroed: intact old records) is never read and
    recovery removes it."""
    mk = TxnMaker()
    _write(tmp_path, 2, 10, mk, roll_each=True).close()
    (tmp_path / SPARE_TMP).write_bytes((tmp_path / "log.1").read_bytes())
    rec = recover(tmp_path, tmp_path, freeze_gc=False)
    assert rec.last_zxid == 20 and rec.actions == []
    assert not (tmp_path / SPARE_TMP).exists()


def test_without_zero_range_retention_unlinks(tmp_path, monkeypatch):
    monkeypatch.setattr(txnlog, "zero_range", lambda fd, length: False)
    mk = TxnMaker()
    _write(tmp_path, 2, 10, mk, roll_each=True).close()
    _snapshot_names(tmp_path, 0x5, 0xa, 0x14, 0x1e)
    assert [p.name for p in purge(tmp_path, tmp_path, 3, recycle_bytes=BLOCK)] == ["snapshot.5", "log.1"]
    assert sorted(os.listdir(tmp_path)) == ["log.b", "snapshot.14", "snapshot.1e", "snapshot.a"]


def test_recycling_off_cuts_rolled_files_back_and_unlinks(tmp_path, monkeypatch):
    """COORD_RECYCLE_LOGS=0: the behaviour before recycling, for an A/B."""
    monkeypatch.setattr(txnlog, "RECYCLE", False)
    mk = TxnMaker()
    _write(tmp_path, 3, 10, mk, roll_each=True).close()
    for _, p in list_logs(tmp_path):
        assert p.stat().st_size < BLOCK, f"{p.name} cut back to its records"
    _snapshot_names(tmp_path, 0x5, 0xa, 0x14, 0x1e)
    assert [p.name for p in purge(tmp_path, tmp_path, 3, recycle_bytes=BLOCK)] == ["snapshot.5", "log.1"]
    assert not (tmp_path / SPARE).exists()


def test_two_purges_at_once_never_hand_out_an_unzeroed_spare(tmp_path, monkeypatch):
    """The hourly purge and a snapshot's run in executor threads: recycling is one at a time, so a
    spare's name is only ever given to a file already zeroed (a roll writes into it in place)."""
    import threading
    zeroing = threading.Event()
    release = threading.Event()
    real = txnlog.zero_range

    def slow_zero(fd, length):
        zeroing.set()
        release.wait(10)
        return real(fd, length)
    monkeypatch.setattr(txnlog, "zero_range", slow_zero)
    mk = TxnMaker()
    _write(tmp_path, 3, 10, mk, roll_each=True).close()
    first = threading.Thread(target=txnlog.recycle_log, args=(tmp_path / "log.1", BLOCK))
    first.start()
    assert zeroing.wait(10)
    second = threading.Thread(target=txnlog.recycle_log, args=(tmp_path / "log.b", BLOCK))
    second.start()
    second.join(0.5)
    assert second.is_alive(), "the second waits for the first"
    assert not any((tmp_path / n).exists() for n in SPARES)
    release.set()
    first.join(10)
    second.join(10)
    for name in SPARES:
        assert not (tmp_path / name).read_bytes().strip(b"\0"), name
    assert [p.name for _, p in list_logs(tmp_path)] == ["log.15"]
