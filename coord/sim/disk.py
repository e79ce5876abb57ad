"""A simulated disk for one server: only fsynced bytes survive a crash.

Files: the txn log (coord.core.logformat records: length, crc32, zxid, TxnHeader, txn), snapshots
(coord.core.snapformat bytes, newest first), and the epoch pair (replaced atomically). Writes queue
and complete one at a time after a drawn latency (consecutive appends complete together: group
commit); each completion is reported to the peer as the contract's input. A crash keeps what has
completed; of the write in flight, an append leaves a torn prefix of its bytes (any length, cutting a
record anywhere), an atomic replace (epochs, truncate, snapshot install) lands or does not.
Recovery reads the newest intact snapshot and the log's intact prefix after it; a torn tail is cut.
A read can come back corrupted (a bit flip): checksums catch it and the reader reads again.
"""
from __future__ import annotations

import random
import zlib
from collections import deque

from coord.core import logformat, snapformat
from coord.core.datatree import DataTree
from coord.core.zab.api import DurableState


class SimDisk:
    def __init__(self, rng: random.Random, *, torn_writes: bool = True, corrupt_reads: float = 0.0,
                 slow: float = 0.0):
        self.rng = rng
        self.log = bytearray(logformat.file_header())
        self.snapshots: list[tuple[int, bytes]] = []      # (zxid, bytes), oldest first
        self.epochs = (0, 0)
        self.queue: deque = deque()
        self.busy = None                                   # the op in flight
        self.torn_writes = torn_writes
        self.corrupt_reads = corrupt_reads
        self.slow = slow
        self.durable: dict[int, int] = {}        # zxid -> crc32 of the txn blob, for the checkers
        self.snap_cover = 0                      # every committed txn up to here is in a snapshot
        self.fsyncs = 0
        self.torn = 0
        self.read_retries = 0

    # -- writing ---------------------------------------------------------------------------------
    def latency(self) -> int:
        r = self.rng
        if self.slow and r.random() < self.slow:
            return r.randint(20, 200)
        return r.randint(2, 15)

    def enqueue(self, op: tuple) -> None:
        self.queue.append(op)

    def next_op(self):
        """Take the next op to run (merging consecutive appends); None when idle or busy."""
        if self.busy is not None or not self.queue:
            return None
        op = self.queue.popleft()
        if op[0] == "append":
            records = list(op[1])
            while self.queue and self.queue[0][0] == "append":
                records.extend(self.queue.popleft()[1])
            encoded = [logformat.encode_record(h, t) for h, t in records]
            op = ("append", records, b"".join(encoded), [(h.zxid, zlib.crc32(e[16:]))
                                                          for (h, _t), e in zip(records, encoded)])
        self.busy = op
        return op

    def complete(self):
        """The op in flight is durable; returns it."""
        op = self.busy
        self.busy = None
        kind = op[0]
        if kind == "append":
            self.log += op[2]
            self.fsyncs += 1
            for z, crc in op[3]:
                self.durable[z] = crc
        elif kind == "epochs":
            self.epochs = (op[1], op[2])
        elif kind == "truncate":
            self._truncate_after(op[1])
        elif kind == "install":
            self.snapshots.append((op[2], op[1]))
            self.snapshots.sort(key=lambda s: s[0])
            self._truncate_after(op[2])
            self.snap_cover = max(self.snap_cover, op[2])
        elif kind == "snapshot":
            self.snapshots.append((op[2], op[1]))
            self.snapshots.sort(key=lambda s: s[0])
            del self.snapshots[:-3]
            self.snap_cover = max(self.snap_cover, op[2])
        return op

    def _truncate_after(self, z: int) -> None:
        for k in [k for k in self.durable if k > z]:
            del self.durable[k]
        end = logformat.FILE_HEADER_SIZE
        for hdr, _txn, pos in logformat.iter_records(self.log):
            if hdr.zxid > z:
                break
            end = pos
        del self.log[end:]

    def crash(self) -> None:
        op = self.busy
        self.busy = None
        self.queue.clear()
        if op is None:
            return
        kind = op[0]
        r = self.rng
        if kind == "append":
            if self.torn_writes and op[2]:
                keep = r.randint(0, len(op[2]))
                self.log += op[2][:keep]
                self.torn += 1
        elif r.random() < 0.5:
            self.busy = op
            self.complete()

    # -- reading ---------------------------------------------------------------------------------
    def _read(self, data: bytes) -> bytes:
        if self.corrupt_reads and data and self.rng.random() < self.corrupt_reads:
            b = bytearray(data)
            i = self.rng.randrange(len(b))
            b[i] ^= 1 << self.rng.randrange(8)
            return bytes(b)
        return bytes(data)

    def _read_verified(self, data: bytes, check) -> bytes:
        """Read until the checksums pass or the same bytes come back twice (then they are real)."""
        prev = None
        for _ in range(8):
            got = self._read(data)
            if check(got) or got == prev:
                return got
            self.read_retries += 1
            prev = got
        return bytes(data)

    def recover(self) -> tuple[DataTree, DurableState]:
        tree = None
        snap_zxid = 0
        for z, blob in reversed(self.snapshots):
            def ok(b):
                try:
                    snapformat.load_bytes(b)
                    return True
                except Exception:  # noqa: BLE001
                    return False
            data = self._read_verified(blob, ok)
            try:
                tree, info = snapformat.load_bytes(data)
                snap_zxid = info.zxid
                break
            except Exception:  # noqa: BLE001 - a damaged snapshot: try an older one
                tree = None
                continue
        if tree is None:
            tree = DataTree()
        data = self._read_verified(self.log, lambda b: _log_intact(b))
        records = []
        end = logformat.FILE_HEADER_SIZE
        self.durable = {}
        for hdr, txn, pos in logformat.iter_records(data):
            self.durable[hdr.zxid] = zlib.crc32(data[end + 16:pos])   # a torn write may have kept whole records
            end = pos
            if hdr.zxid > snap_zxid:
                records.append((hdr, txn))
        if end < len(self.log):
            del self.log[end:]               # the torn tail
        last = records[-1][0].zxid if records else snap_zxid
        a, c = self.epochs
        return tree, DurableState(accepted_epoch=a, current_epoch=c, last_logged_zxid=last,
                                  snapshot_zxid=snap_zxid, log=records)


def _log_intact(b: bytes) -> bool:
    end = logformat.FILE_HEADER_SIZE
    for _h, _t, pos in logformat.iter_records(b):
        end = pos
    return end == len(b)
