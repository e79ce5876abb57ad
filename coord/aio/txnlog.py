"""The txn log on disk: append in batches, fsync off the event loop, recover the durable prefix.

Group commit: while one fsync runs, new records accumulate; when it completes they are written and
synced together. Durability is reported back to the core only after fsync returns (forceSync=yes),
so no reply ever depends on bytes that a crash could lose.
"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from coord.core import logformat

log = logging.getLogger("coord.txnlog")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class TxnLog:
    def __init__(self, log_dir: Path, *, force_sync: bool = True, max_file_bytes: int = 64 << 20):
        self.dir = Path(log_dir)
        self.force_sync = force_sync
        self.max_file_bytes = max_file_bytes
        self.fd: int | None = None
        self.file_bytes = 0
        self.last_zxid = 0
        self.buffer = bytearray()
        self.buffer_zxid = 0
        self.syncing = False
        self.on_durable = None  # callback(zxid)
        self.fsync_count = 0
        self.failed: BaseException | None = None

    # -- recovery -------------------------------------------------------------------------------
    def files(self) -> list[Path]:
        return sorted(self.dir.glob("log.*"), key=lambda p: int(p.name.split(".", 1)[1], 16))

    def recover(self, apply) -> int:
        """Replay every intact record (apply(hdr, txn)); truncate a torn tail; return last zxid."""
        self.dir.mkdir(parents=True, exist_ok=True)
        last = 0
        files = self.files()
        for i, f in enumerate(files):
            data = f.read_bytes()
            if len(data) < logformat.FILE_HEADER_SIZE:
                if i == len(files) - 1:
                    log.warning("%s: shorter than a log header (crash while creating it); removing", f)
                    f.unlink()
                    continue
                raise RuntimeError(f"{f}: truncated log header in the middle of the log")
            logformat.check_file_header(data)
            end = logformat.FILE_HEADER_SIZE
            for hdr, txn, pos in logformat.iter_records(data):
                if hdr.zxid > last:
                    apply(hdr, txn)
                    last = hdr.zxid
                end = pos
            if end < len(data):
                if i != len(files) - 1:
                    raise RuntimeError(f"{f}: damaged record at offset {end} before the newest log file")
                log.warning("%s: truncating torn tail at offset %d (%d bytes)", f, end, len(data) - end)
                with open(f, "r+b") as fh:
                    fh.truncate(end)
                    os.fsync(fh.fileno())
        self.last_zxid = last
        return last

    # -- appending ------------------------------------------------------------------------------
    def _open_new(self, first_zxid: int) -> None:
        if self.fd is not None:
            os.close(self.fd)
        path = self.dir / f"log.{first_zxid:x}"
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(self.fd, logformat.file_header())
        self.file_bytes = logformat.FILE_HEADER_SIZE
        if self.force_sync:
            os.fsync(self.fd)
            _fsync_dir(self.dir)

    def append(self, records) -> None:
        for hdr, txn in records:
            self.buffer += logformat.encode_record(hdr, txn)
            self.buffer_zxid = hdr.zxid
        if not self.syncing and self.buffer:
            asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        if self.syncing:
            return
        self.syncing = True
        loop = asyncio.get_running_loop()
        try:
            while self.buffer:
                data = bytes(self.buffer)
                zxid = self.buffer_zxid
                self.buffer.clear()
                if self.fd is None or self.file_bytes >= self.max_file_bytes:
                    first = zxid - 0  # name by the first zxid in the new file
                    first = self._first_zxid_of(data)
                    self._open_new(first)
                if self.force_sync:
                    await loop.run_in_executor(None, self._write_and_sync, data)
                else:
                    os.write(self.fd, data)
                    await asyncio.sleep(0)
                self.file_bytes += len(data)
                self.last_zxid = zxid
                self.fsync_count += 1
                if self.on_durable is not None:
                    self.on_durable(zxid)
        except OSError as e:
            self.failed = e
            log.error("txn log write failed: %s; refusing further writes", e)
            raise
        finally:
            self.syncing = False

    @staticmethod
    def _first_zxid_of(data: bytes) -> int:
        return int.from_bytes(data[8:16], "big", signed=True)

    def _write_and_sync(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        os.fdatasync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
