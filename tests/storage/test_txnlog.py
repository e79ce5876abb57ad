"""TxnLog: group commit, rolling, and what a failed write or fsync leaves behind."""
from __future__ import annotations

import asyncio
import errno
import fcntl
import os

from coord.aio import txnlog as txnlog_mod
from coord.aio.datadir import recover
from coord.aio.txnlog import TxnLog, list_logs
from tests.storage.helpers import TxnMaker


def _txns(mk, n):
    return [mk.create(f"/n{mk.zxid + 1}", b"x" * 20) for _ in range(n)]


def test_group_commit_rolling_and_eio_cut_back(tmp_path, monkeypatch):
    async def run():
        log = TxnLog(tmp_path, force_sync=True, max_file_bytes=2000)
        log.start(0)
        durable, failed = [], []
        log.on_durable = durable.append
        log.on_failed = lambda e, a, b: failed.append((e.errno, a, b))
        mk = TxnMaker()
        for _ in range(10):
            log.append(_txns(mk, 5))
        await log.drain()
        assert durable[-1] == 50 and log.fsync_count <= 2, "appends made while a write runs are grouped"
        for _ in range(3):
            log.append(_txns(mk, 10))
            await log.drain()
        assert len(list_logs(tmp_path)) >= 3, "rolled at the size limit (between batches)"
        assert fcntl.fcntl(log.fd, fcntl.F_GETFL) & os.O_DSYNC, "forceSync=yes: each write is the sync"
        mk.zxid = 80
        real = txnlog_mod.write_all
        calls = {"n": 0}

        def flaky(fd, data):   # an O_DSYNC write that fails as its sync would
            calls["n"] += 1
            if calls["n"] == 1:
                raise OSError(errno.EIO, "Input/output error")
            return real(fd, data)
        monkeypatch.setattr(txnlog_mod, "write_all", flaky)
        log.append(_txns(mk, 3))   # zxids 81..83 fail
        await log.drain()
        assert failed == [(errno.EIO, 81, 83)]
        assert log.last_zxid == 80 and log.broken is None
        mk.zxid = 80               # the server reuses the zxids of txns that did not happen
        log.append(_txns(mk, 4))   # 81..84 succeed
        await log.drain()
        assert durable[-1] == 84
        log.close()
    asyncio.run(run())
    rec = recover(tmp_path, tmp_path, freeze_gc=False)
    assert rec.last_zxid == 84 and not rec.actions, "the failed batch left nothing behind"


def test_force_sync_off_never_fsyncs(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(txnlog_mod.os, "fdatasync", lambda fd: calls.append(fd))

    async def run():
        log = TxnLog(tmp_path, force_sync=False)
        log.start(0)
        seen = []
        log.on_durable = seen.append
        log.append(_txns(TxnMaker(), 5))
        await log.drain()
        assert not fcntl.fcntl(log.fd, fcntl.F_GETFL) & os.O_DSYNC, "forceSync=no: no synchronous writes"
        log.close()
        return seen
    assert asyncio.run(run()) == [5]
    assert calls == []


def test_truncate_after_and_iter_txns(tmp_path):
    async def run():
        log = TxnLog(tmp_path, force_sync=False, max_file_bytes=1500)
        log.start(0)
        mk = TxnMaker()
        for _ in range(6):
            log.append(_txns(mk, 7))
            await log.drain()
        return log
    log = asyncio.run(run())
    assert [h.zxid for h, _ in log.iter_txns(30)] == list(range(31, 43))
    log.truncate_after(20)
    assert [h.zxid for h, _ in log.iter_txns(0)] == list(range(1, 21))
    assert recover(tmp_path, tmp_path, freeze_gc=False).last_zxid == 20
