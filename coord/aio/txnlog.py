"""The txn log on disk: append in batches, fsync off the event loop, roll files, survive write errors.

Group commit: while one durable write runs in the log's own sync thread, new records accumulate; when
it completes the thread takes them at once and writes and syncs them together (as ZooKeeper's
SyncRequestProcessor flushes as soon as its queue is empty), without waiting for the event loop.
With forceSync=yes the file is opened O_DSYNC, so a batch is one write() that returns when it is
durable (what write + fdatasync give, in one call and one release of the interpreter lock).
Each batch's fate is handed to the loop with one call_soon_threadsafe, which runs in the turn the
wake-up ends: request to reply is three turns of the loop (read, flush to the log, completion and
reply; an executor future and a task cost two more) and one handoff to the thread and back.
`on_durable(zxid)` is called only after fsync returns (forceSync=yes), so no reply ever depends on
bytes a crash could lose; with forceSync=no the records are written but not synced, on the loop's
thread, as ZooKeeper does. A new file (log.<first zxid hex>) is started
at the size limit, on `roll()` (the server rolls when it starts a snapshot) and at every start; a new
file is durable in its directory (fsync of the dir) before any record in it is reported durable.

Preallocation (preAllocSize, 64 MiB by default as ZooKeeper): a file is extended in whole blocks
with fallocate ahead of the records, so most fdatasyncs do not change the file's size, and a full
disk shows up as a failed preallocation ahead of time (the write then still tries the space that is
left). Recovery reads the zero bytes after the last record as the end of the log (coord.core.logformat).

Recycling: blocks a file system frees cost a journal commit and, where the disk is mounted with
`discard`, a trim that some virtual disks serve ahead of every queued write (a 1.1 s stall of every
log write was measured behind one). So the log frees nothing while it serves: a rolled-away file keeps
its preallocated zeros, and retention (coord.aio.datadir.purge) turns the logs it no longer needs into
SPARES with recycle_log: renamed away from the log names, zeroed in place (FALLOC_FL_ZERO_RANGE: their
blocks stay allocated, reads give zeros) and synced, then renamed to a spare's name. A new file takes
a spare by rename instead of allocating. Two spares: a snapshot rolls one file, and its purge drops
none or two when the log holding the snapshot's zxid + 1 is the file before the roll or the one after
it, so one spare would leave every other drop to be freed. Where the file system has no ZERO_RANGE, or with
COORD_RECYCLE_LOGS=0, files are cut back to their records at a roll and retention unlinks them.
A file is cut back to its records when the log is closed.

A failed write or fsync (ENOSPC, EIO) reports every record not yet durable through
`on_failed(error, first_zxid, last_zxid)`; the caller must not acknowledge them. The file is cut back
to its last durable byte first, so the records are gone on disk too and later appends never sit
behind garbage; the log stays usable, and the next batch tries the disk again. If even that cut
fails the log is `broken`: every later append fails at once, and a restart recovers from disk.
The error passed on names the log file (`[Errno 28] No space left on device: '.../log.1a'`).

Test only: with COORD_TEST_FAIL_FSYNC=<path> in the environment (relative paths are from the working
directory), every synced write of a log batch fails with EIO, writing nothing, while <path> exists.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
import time
from pathlib import Path

from coord.aio import stalls
from coord.core import logformat

log = logging.getLogger("coord.txnlog")
FAIL_FSYNC_FLAG = os.environ.get("COORD_TEST_FAIL_FSYNC")  # test-only fault injection (see above)
# COORD_PREALLOC=sparse: extend files with ftruncate (a hole, as ZooKeeper's one-byte padding) instead
# of fallocate; for an A/B of the fsync tail (issue 17), not a tuning knob
SPARSE_PREALLOC = os.environ.get("COORD_PREALLOC") == "sparse"
RECYCLE = os.environ.get("COORD_RECYCLE_LOGS", "1") != "0"
SPARES = ("spare.log", "spare.1.log")   # not log names (list_logs): zeroed space for new log files
SPARE = SPARES[0]
SPARE_TMP = SPARE + ".tmp"       # being zeroed; recovery removes it
_FALLOC_FL_ZERO_RANGE = 0x10
_fallocate = None
_recycling = threading.Lock()


def zero_range(fd: int, length: int) -> bool:
    """fallocate(FALLOC_FL_ZERO_RANGE) over [0, length): reads give zeros, the blocks stay allocated
    and nothing is freed or trimmed. False where the platform or file system cannot."""
    global _fallocate
    if _fallocate is None:
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            f = libc.fallocate
            f.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
            f.restype = ctypes.c_int
            _fallocate = f
        except (OSError, AttributeError):
            _fallocate = False
    return bool(_fallocate) and _fallocate(fd, _FALLOC_FL_ZERO_RANGE, 0, length) == 0


def recycle_log(path: Path, keep_bytes: int) -> bool:
    """Make a log no snapshot needs any more a new file's space, as one of SPARES (see the module
    doc); its first keep_bytes are kept. False (nothing done) when both spares exist, another is
    being made, or the file system cannot zero in place: then the caller unlinks it."""
    with _recycling:   # two at once (the hourly purge and a snapshot's) would share SPARE_TMP
        return _recycle(path, keep_bytes)


def _recycle(path: Path, keep_bytes: int) -> bool:
    d = path.parent
    free = [n for n in SPARES if not os.path.exists(d / n)]
    if not RECYCLE or not free or os.path.exists(d / SPARE_TMP):
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        if size > keep_bytes:
            os.ftruncate(fd, keep_bytes)
            size = keep_bytes
        os.rename(path, d / SPARE_TMP)   # from here a crash leaves a file recovery removes, never a log
        if not zero_range(fd, size):
            os.unlink(d / SPARE_TMP)
            return True
        os.fsync(fd)                     # zeros durable before the name says they are
    finally:
        os.close(fd)
    os.rename(d / SPARE_TMP, d / free[0])
    fsync_dir(d)
    return True


class LogWriteError(OSError):
    """A write to the txn log did not become durable."""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def list_logs(log_dir: Path) -> list[tuple[int, Path]]:
    """(first zxid, path) of every log.<hex> file, oldest first."""
    out = []
    try:
        entries = os.listdir(log_dir)
    except FileNotFoundError:
        return []
    for name in entries:
        z = logformat.zxid_of_name(name, "log")
        if z is not None and name.count(".") == 1:
            out.append((z, Path(log_dir) / name))
    out.sort()
    return out


class TxnLog:
    def __init__(self, log_dir: Path, *, force_sync: bool = True, max_file_bytes: int = 64 << 20,
                 pre_alloc_bytes: int = 64 << 20):
        self.dir = Path(log_dir)
        self.force_sync = force_sync
        self.max_file_bytes = max_file_bytes
        self.pre_alloc_bytes = pre_alloc_bytes  # 0: no preallocation
        self.allocated = 0             # size of the current file, preallocated zeros included
        self.fd: int | None = None
        self.path: Path | None = None
        self.file_bytes = 0            # durable (or, forceSync=no, written) size of the current file
        self.last_zxid = 0             # the last zxid known durable
        self.buffer = bytearray()
        self.buffer_first = 0
        self.buffer_last = 0
        self.syncing = False
        self.roll_pending = True
        self.on_durable = None         # callback(zxid)
        self.on_failed = None          # callback(error, first_zxid, last_zxid)
        self.fsync_count = 0
        self.write_errors = 0
        self.broken: BaseException | None = None
        self.failed: BaseException | None = None  # the last write error (kept for diagnostics)
        self.max_fsync_ms = 0.0
        self.on_batch = None           # callback(ms, first zxid, last zxid, fsynced): coord.aio.metrics
        # what the last batch's write did (sync thread): (bytes, new file, MiB preallocated), put into
        # words only for an fsync stall's detail
        self.batch_did = (0, 0, 0)
        # forceSync=yes: the sync thread. `_lock` guards buffer/buffer_first/buffer_last/roll_pending
        # and the batch counters between the loop and the thread; `_hold` (set by the thread when a
        # batch failed) keeps it from writing more until the loop has failed what was buffered.
        self._cv = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._loop = None
        self._stop = False
        self._hold = False
        self._taken = 0                # batches the thread took (under _cv)
        self._reported = 0             # batches whose fate the loop has reported

    def files(self) -> list[Path]:
        return [p for _, p in list_logs(self.dir)]

    def start(self, last_zxid: int) -> None:
        """After recovery: the log is durable through last_zxid; the next append opens a new file."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.last_zxid = last_zxid
        self.roll_pending = True

    # -- appending ------------------------------------------------------------------------------
    def roll(self) -> None:
        """Start a new file with the next batch (a snapshot was just started)."""
        with self._cv:
            self.roll_pending = True

    def append(self, records, blobs=None) -> None:
        """Queue [(TxnHeader, txn)] in zxid order; on_durable/on_failed report their fate. blobs, if
        given, are the records' TxnHeader + txn already encoded (in the same order)."""
        if self.force_sync:
            self._loop = asyncio.get_running_loop()
            with self._cv:
                self._encode(records, blobs)
                if self.buffer:
                    if self._thread is None or not self._thread.is_alive():
                        self._stop = False
                        self._thread = threading.Thread(target=self._sync_main, name="txnlog-sync", daemon=True)
                        self._thread.start()
                    self._cv.notify()
            return
        self._encode(records, blobs)
        if not self.syncing and self.buffer:
            self.syncing = True
            asyncio.get_running_loop().create_task(self._flush_loop())

    def write(self, records, blobs=None) -> None:
        """forceSync=no with nothing in flight: write [(TxnHeader, txn)] now, on the caller's thread
        (a write to the page cache costs less than a hop to a task and back); on_durable or on_failed
        reports their fate before this returns. blobs as for append."""
        assert not self.force_sync and not self.pending(), "write() is for forceSync=no, nothing pending"
        self._encode(records, blobs)
        if self.buffer:
            self._write_buffered()

    def _encode(self, records, blobs=None) -> None:
        buf = self.buffer
        if not records:
            return
        if not buf:
            self.buffer_first = records[0][0].zxid
        if blobs is not None:
            encode_blob = logformat.encode_blob
            for (hdr, _txn), blob in zip(records, blobs):
                buf += encode_blob(hdr.zxid, blob)
        else:
            encode = logformat.encode_record
            for hdr, txn in records:
                buf += encode(hdr, txn)
        self.buffer_last = records[-1][0].zxid

    def pending(self) -> bool:
        with self._cv:
            return self.syncing or bool(self.buffer) or self._taken != self._reported

    async def drain(self) -> None:
        """Wait until nothing is buffered or being written."""
        while self.pending():
            await asyncio.sleep(0.005)

    async def _flush_loop(self) -> None:
        """forceSync=no, appended while a write was pending: written on the loop's thread (a write to
        the page cache costs less than the hop to a thread)."""
        try:
            while self.buffer:
                self._write_buffered()
        finally:
            self.syncing = False

    def _sync_main(self) -> None:
        """The sync thread: write whatever is buffered as one durable write, as soon as there is any,
        and hand each batch's fate to the loop (_synced, in order). The next batch is taken before the
        loop is woken: once awake, the loop holds the interpreter lock while it applies and answers
        the batch, and a thread that still needed the lock to start the next write would wait for it
        (up to a switch interval per batch, measured 0.14 ms of a 0.71 ms cycle at 17k creates/s)."""
        cv = self._cv
        batch = None
        while True:
            if batch is None:
                with cv:
                    while self._hold or not self.buffer:
                        if self._stop:
                            return
                        cv.wait()
                    batch = self._take_buffer()
                    self._taken += 1
            data, first, last, roll_first = batch
            batch = None
            err = None
            t0 = time.monotonic()
            try:
                self._check_usable()
                self._write_batch(data, roll_first)
            except OSError as e:
                err = e
            t1 = time.monotonic()
            what = self.batch_did
            ms = (t1 - t0) * 1000
            with cv:
                if err is not None:
                    self._hold = True
                elif self.buffer and not self._hold:
                    batch = self._take_buffer()
                    self._taken += 1
            try:
                self._loop.call_soon_threadsafe(self._synced, first, last, ms, err, t1, what)
            except RuntimeError:   # the loop is closed: nobody is waiting for the fate any more
                with cv:
                    self._reported = self._taken
                return

    def _synced(self, first: int, last: int, ms: float, err: OSError | None, end: float | None = None,
                what: tuple = (0, 0, 0)) -> None:
        """On the loop: one batch of the sync thread is durable (or failed)."""
        if err is not None:
            with self._cv:
                self._reported += 1
                if self.buffer:   # appended meanwhile: they build on the failed ones, so they fail too
                    last = self.buffer_last
                    self.buffer.clear()
                self._hold = False
            self._fail(err, first, last)
            return
        with self._cv:
            self._reported += 1
        self._note_ms(ms, first, last, True, end, what)
        self._durable(last)

    def _write_buffered(self) -> None:
        """Write (without fsync) everything buffered, on this thread, and report it."""
        data, first, last, roll_first = self._take_buffer()
        try:
            self._check_usable()
            t0 = time.monotonic()
            self._write_batch(data, roll_first)
            self._note_ms((time.monotonic() - t0) * 1000, first, last, False)
        except OSError as e:
            self._fail(e, first, last)
            return
        self._durable(last)

    def _take_buffer(self) -> tuple[bytes, int, int, int | None]:
        """The buffered records as one batch: (bytes, first zxid, last zxid, first zxid if the batch
        starts a new file else None)."""
        data = bytes(self.buffer)
        first, last = self.buffer_first, self.buffer_last
        self.buffer.clear()
        roll = self.fd is None or self.roll_pending or self.file_bytes >= self.max_file_bytes
        if roll:
            self.roll_pending = False
        return data, first, last, first if roll else None

    def _check_usable(self) -> None:
        if self.broken is not None:
            raise LogWriteError(errno.EIO, f"txn log unusable since an earlier failure: {self.broken}")

    def _note_ms(self, ms: float, first: int = 0, last: int = 0, synced: bool = True,
                 end: float | None = None, what: tuple = (0, 0, 0)) -> None:
        if ms > self.max_fsync_ms:
            self.max_fsync_ms = ms
        if synced and ms >= stalls.THRESHOLD_MS:
            mon = stalls.active()
            if mon is not None:
                nbytes, new_file, mib = what
                mon.on_fsync(ms, end, f"{nbytes} bytes" + ("", ", new file", ", new file (recycled)")[new_file]
                             + (f", preallocated {mib} MiB" if mib else ""))
        if self.on_batch is not None:
            self.on_batch(ms, first, last, synced)

    def _durable(self, last: int) -> None:
        self.last_zxid = last
        self.fsync_count += 1
        if self.on_durable is not None:
            self.on_durable(last)

    def _fail(self, e: OSError, first: int, last: int) -> None:
        if self.buffer:  # appended meanwhile: they build on the failed ones, so they fail too
            last = self.buffer_last
            self.buffer.clear()
        self.write_errors += 1
        self.failed = e
        log.error("txn log write failed (%s); txns 0x%x..0x%x are not durable and are rejected%s",
                  e, first, last, "; the log is broken until restart" if self.broken else "")
        if self.on_failed is not None:
            self.on_failed(e, first, last)

    # -- worker thread ------------------------------------------------------------------------------
    def _open_new(self, first_zxid: int) -> None:
        if self.fd is not None:
            if not RECYCLE:
                self._trim()
            os.close(self.fd)
            self.fd = None
        path = self.dir / logformat.log_name(first_zxid)
        # No intact record can be in a file named after a zxid past the durable end: overwrite it
        # (or replace it with the spare, whose zeros are durable).
        recycled = False
        if RECYCLE and self.pre_alloc_bytes:
            for name in SPARES:
                try:
                    os.rename(self.dir / name, path)
                    recycled = True
                    break
                except FileNotFoundError:
                    pass
        # forceSync=yes: O_DSYNC makes each write durable when it returns (as write + fdatasync) in one
        # call, so the sync thread gives up and retakes the interpreter lock once per batch, not twice.
        flags = (os.O_WRONLY | os.O_CREAT | (0 if recycled else os.O_TRUNC)
                 | (os.O_DSYNC if self.force_sync else 0))
        fd = os.open(path, flags, 0o644)
        try:
            write_all(fd, logformat.file_header())
        except OSError as e:
            os.close(fd)
            self._unlink_quietly(path)
            raise LogWriteError(e.errno, e.strerror, str(path)) from e
        self.fd = fd
        self.path = path
        self.file_bytes = logformat.FILE_HEADER_SIZE
        self.allocated = max(os.fstat(fd).st_size, self.file_bytes) if recycled else self.file_bytes
        self.new_file = True
        if recycled:
            self.batch_did = (self.batch_did[0], 2, self.batch_did[2])

    def _preallocate(self, end: int) -> None:
        """Extend the file in pre_alloc_bytes blocks to beyond end (ZooKeeper's FilePadding)."""
        size = self.allocated
        while size < end + 4096:
            size += self.pre_alloc_bytes
        try:
            if SPARSE_PREALLOC:
                os.ftruncate(self.fd, size)
            else:
                os.posix_fallocate(self.fd, self.allocated, size - self.allocated)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                # ENOSPC and the like: no room for a whole block; let the write try what is left
                self.allocated = max(self.allocated, os.fstat(self.fd).st_size)
                return
            os.ftruncate(self.fd, size)  # no fallocate on this file system: a sparse extension
        self.batch_did = (self.batch_did[0], self.batch_did[1], (size - self.allocated) >> 20)
        self.allocated = size

    def _unlink_quietly(self, path: Path) -> None:
        try:
            os.unlink(path)
            fsync_dir(self.dir)
        except FileNotFoundError:
            pass
        except OSError as e:
            self.broken = e

    def _write_batch(self, data: bytes, roll_first: int | None) -> None:
        self.new_file = False
        self.batch_did = (len(data), int(roll_first is not None), 0)   # new file: 0 no, 1 yes, 2 recycled
        if roll_first is not None:
            self._open_new(roll_first)
        fd = self.fd
        durable = logformat.FILE_HEADER_SIZE if self.new_file else self.file_bytes
        try:
            if self.pre_alloc_bytes and durable + len(data) > self.allocated:
                self._preallocate(durable + len(data))
            if self.force_sync and FAIL_FSYNC_FLAG and os.path.exists(FAIL_FSYNC_FLAG):
                raise OSError(errno.EIO, "fdatasync failed (injected: COORD_TEST_FAIL_FSYNC)")
            write_all(fd, data)   # forceSync=yes: O_DSYNC, durable on return (see _open_new)
            if self.force_sync and self.new_file:
                fsync_dir(self.dir)
        except OSError as e:
            self._cut_back(durable)
            if e.filename is None and self.path is not None:
                raise LogWriteError(e.errno, e.strerror, str(self.path)) from e
            raise
        self.file_bytes = durable + len(data)

    def _cut_back(self, size: int) -> None:
        try:
            os.ftruncate(self.fd, size)
            self.allocated = size
            os.lseek(self.fd, size, os.SEEK_SET)
            if self.force_sync:
                os.fsync(self.fd)
            self.file_bytes = size
            if self.new_file:
                # the header itself may not be durable: start the next batch in a fresh file
                os.close(self.fd)
                self.fd = None
                self._unlink_quietly(self.path)
        except OSError as e:
            self.broken = e

    # -- maintenance (blocking: run in a thread from async code) ----------------------------------
    def truncate_after(self, zxid: int) -> None:
        """Drop every record after zxid (Zab TRUNC); later files are removed. Not while appending."""
        assert not self.pending(), "truncate_after while records are being written"
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        for first, path in reversed(list_logs(self.dir)):
            if first > zxid:
                os.unlink(path)
                continue
            data = path.read_bytes()
            end = logformat.FILE_HEADER_SIZE
            for hdr, _txn, pos in logformat.iter_records(data):
                if hdr.zxid > zxid:
                    break
                end = pos
            if end < len(data):
                with open(path, "r+b") as fh:
                    fh.truncate(end)
                    os.fsync(fh.fileno())
            break
        fsync_dir(self.dir)
        self.last_zxid = min(self.last_zxid, zxid)
        self.roll_pending = True

    def iter_txns(self, after_zxid: int):
        """(TxnHeader, txn) of every intact record with zxid > after_zxid, in order (DIFF sync)."""
        logs = list_logs(self.dir)
        start = 0
        for i, (first, _) in enumerate(logs):
            if first <= after_zxid + 1:
                start = i
        for _, path in logs[start:]:
            data = path.read_bytes()
            for hdr, txn, _ in logformat.iter_records(data):
                if hdr.zxid > after_zxid:
                    yield hdr, txn

    def close(self) -> None:
        t = self._thread
        if t is not None:
            with self._cv:
                self._stop = True
                self._cv.notify()
            if t is not threading.current_thread():
                t.join()
            self._thread = None
        if self.fd is not None:
            self._trim()
            os.close(self.fd)
            self.fd = None

    def _trim(self) -> None:
        """Give back the unused preallocated part of the current file (at a clean close; at a roll too
        without recycling)."""
        if self.allocated > self.file_bytes:
            try:
                os.ftruncate(self.fd, self.file_bytes)
                self.allocated = self.file_bytes
            except OSError:
                pass  # harmless: recovery reads the zeros as the end of the log


def write_all(fd: int, data) -> int:
    """os.write until every byte is written (a write may be partial); returns len(data)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    return len(data)
