"""Preallocated log files (preAllocSize): the zero-filled unused part of a file is the end of the log,
while a torn record, flipped bits or garbage in it are still told apart (coord.core.logformat)."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from coord.aio.datadir import RecoveryError, recover
from coord.aio.txnlog import TxnLog, list_logs
from coord.core import logformat
from tests.storage.helpers import TxnMaker

BLOCK = 64 << 10


def _txns(mk, n):
    return [mk.create(f"/n{mk.zxid + 1}", b"x" * 40) for _ in range(n)]


def write_log(d: Path, batches: int = 12, per: int = 9, **kw) -> TxnLog:
    """Records through the real TxnLog (forceSync=yes); the file is left open, as at a crash."""
    async def run():
        log = TxnLog(d, force_sync=True, pre_alloc_bytes=kw.pop("pre_alloc_bytes", BLOCK), **kw)
        log.start(0)
        mk = TxnMaker()
        for _ in range(batches):
            log.append(_txns(mk, per))
            await log.drain()
        return log
    return asyncio.run(run())


def crash(log: TxnLog) -> None:
    """Let go of the file as a crash would: no clean close, so the preallocated zeros stay."""
    os.close(log.fd)
    log.fd = None


def records_end(path: Path) -> tuple[int, list[int]]:
    scan = logformat.scan(path.read_bytes())
    return scan.end, [r[2] for r in scan.records]


def test_files_grow_in_whole_blocks_and_keep_them_when_rolled(tmp_path):
    """A rolled-away file keeps its zeros: cutting it back would free blocks while the log serves
    (coord.aio.txnlog, recycling); recovery reads them as the end of each file."""
    log = write_log(tmp_path, batches=30, per=9, max_file_bytes=16 << 10)
    logs = list_logs(tmp_path)
    assert len(logs) >= 2, "rolled at the size limit"
    for _, path in logs[:-1]:
        end, _ = records_end(path)
        size = path.stat().st_size
        assert size > end and (size - logformat.FILE_HEADER_SIZE) % BLOCK == 0, (path.name, size, end)
    current = logs[-1][1]
    end, _ = records_end(current)
    size = current.stat().st_size
    assert size > end and (size - logformat.FILE_HEADER_SIZE) % BLOCK == 0, (size, end)
    assert size >= end + 4096, "preallocated ahead of the records"
    crash(log)
    rec = recover(tmp_path, tmp_path, freeze_gc=False)
    assert rec.last_zxid == 270 and rec.actions == [], "zeros after the last record are not damage"
    assert current.stat().st_size == size, "recovery leaves the preallocated file alone"


def test_a_clean_close_gives_the_preallocated_space_back(tmp_path):
    log = write_log(tmp_path, batches=3, per=5)
    path = list_logs(tmp_path)[-1][1]
    assert path.stat().st_size > records_end(path)[0]
    log.close()
    assert path.stat().st_size == records_end(path)[0]
    assert recover(tmp_path, tmp_path, freeze_gc=False).last_zxid == 15


def test_default_block_is_64_mib_and_recovery_reads_past_it_quickly(tmp_path):
    log = write_log(tmp_path, batches=3, per=5, pre_alloc_bytes=64 << 20)
    path = list_logs(tmp_path)[-1][1]
    assert path.stat().st_size == logformat.FILE_HEADER_SIZE + (64 << 20)
    crash(log)
    rec = recover(tmp_path, tmp_path, freeze_gc=False)
    assert rec.last_zxid == 15 and rec.actions == []


def test_kill_9_in_the_middle_of_a_preallocated_file(tmp_path):
    """A real process appends and reports each durable zxid; killed mid-run, the data dir recovers
    every reported zxid without calling anything damaged."""
    script = textwrap.dedent(f"""
        import asyncio, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from coord.aio.txnlog import TxnLog
        from tests.storage.helpers import TxnMaker

        async def main():
            log = TxnLog({str(tmp_path)!r}, force_sync=True, pre_alloc_bytes={BLOCK})
            log.start(0)
            log.on_durable = lambda z: print(z, flush=True)
            mk = TxnMaker()
            while True:
                log.append([mk.create(f"/n{{mk.zxid + 1}}", b"y" * 300) for _ in range(7)])
                await log.drain()
        asyncio.run(main())
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    acked = 0
    try:
        for line in proc.stdout:
            acked = int(line)
            if acked >= 7 * 60:  # well into the second 64 KiB block
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=60)
        proc.stdout.close()
    assert acked >= 7 * 60, "the writer died early"
    path = list_logs(tmp_path)[-1][1]
    scan = logformat.scan(path.read_bytes())
    assert path.stat().st_size > scan.end, "the crash left preallocated zeros behind the records"
    rec = recover(tmp_path, tmp_path, freeze_gc=False)
    assert rec.last_zxid >= acked
    if scan.damaged:  # killed inside the write() of a batch: a torn record, never acknowledged
        assert len(rec.actions) == 1 and "torn tail" in rec.actions[0], rec.actions
    else:
        assert rec.actions == [], rec.actions


def damage(tmp_path, how):
    crash(write_log(tmp_path))
    path = list_logs(tmp_path)[-1][1]
    end, ends = records_end(path)
    with open(path, "r+b") as f:
        if how == "torn record":  # the last record's second half never reached the disk
            start = ends[-2]
            f.seek((start + end) // 2)
            f.write(bytes(end - (start + end) // 2))
        elif how == "flipped bit in the last record":
            f.seek(end - 10)
            b = f.read(1)[0]
            f.seek(end - 10)
            f.write(bytes([b ^ 0x10]))
        elif how == "garbage in the zeros":
            f.seek(end + 3000)
            f.write(b"\x07garbage")
        elif how == "flipped bit in a middle record":
            f.seek(ends[40] - 10)
            b = f.read(1)[0]
            f.seek(ends[40] - 10)
            f.write(bytes([b ^ 0x10]))
        elif how == "zeroed block in the middle":
            f.seek(ends[40] + 3)
            f.write(bytes(200))
    return path, end


@pytest.mark.parametrize("how", ["torn record", "flipped bit in the last record", "garbage in the zeros"])
def test_damage_before_the_zeros_is_a_torn_tail(tmp_path, how):
    path, end = damage(tmp_path, how)
    rec = recover(tmp_path, tmp_path, freeze_gc=False)
    expect = 108 if how == "garbage in the zeros" else 107
    assert rec.last_zxid == expect
    assert any("torn tail" in a and str(path) in a for a in rec.actions), rec.actions
    assert path.stat().st_size == records_end(path)[0], "cut back to the last intact record"
    assert recover(tmp_path, tmp_path, freeze_gc=False).actions == []


@pytest.mark.parametrize("how", ["flipped bit in a middle record", "zeroed block in the middle"])
def test_damage_with_intact_records_after_it_is_a_hole(tmp_path, how):
    path, _ = damage(tmp_path, how)
    size = path.stat().st_size
    with pytest.raises(RecoveryError, match="hole") as e:
        recover(tmp_path, tmp_path, freeze_gc=False)
    assert str(path) in str(e.value)
    assert path.stat().st_size == size, "nothing is changed when refusing"


def test_full_disk_at_preallocation_still_writes_what_fits(tmp_path, monkeypatch):
    """A failed fallocate (ENOSPC) does not fail the write: the records still go to the space left."""
    import errno

    from coord.aio import txnlog as txnlog_mod

    def no_space(fd, off, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(txnlog_mod.os, "posix_fallocate", no_space)
    log = write_log(tmp_path, batches=4, per=5)
    assert log.write_errors == 0 and log.last_zxid == 20
    crash(log)
    path = list_logs(tmp_path)[-1][1]
    assert path.stat().st_size == records_end(path)[0]
    assert recover(tmp_path, tmp_path, freeze_gc=False).last_zxid == 20


def test_sparse_preallocation_for_the_fsync_ab(tmp_path, monkeypatch):
    """COORD_PREALLOC=sparse (an A/B of the fsync tail): the file is extended as a hole, as ZooKeeper's
    one-byte padding does, not with fallocate; records and recovery are the same."""
    import coord.aio.txnlog as txnlog
    sizes = {}
    for sparse in (False, True):
        monkeypatch.setattr(txnlog, "SPARSE_PREALLOC", sparse)
        d = tmp_path / f"sparse-{sparse}"
        d.mkdir()
        log = write_log(d, batches=3, per=9, pre_alloc_bytes=4 << 20)
        path = list_logs(d)[-1][1]
        st = path.stat()
        end, records = records_end(path)
        crash(log)
        assert st.st_size >= 4 << 20 and len(records) == 27
        sizes[sparse] = st.st_blocks * 512
    assert sizes[False] >= 4 << 20, "fallocate reserves the whole block"
    assert sizes[True] < 1 << 20, f"sparse: only the written part is allocated ({sizes[True]} bytes)"
