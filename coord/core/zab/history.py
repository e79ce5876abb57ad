"""A peer's in-memory view of its txn log: the txns after its tree, and a window of committed ones.

Theory. Every peer holds `entries`, txns in strictly increasing zxid order. Those up to `applied`
(an index) have been committed and applied to the tree; the rest are logged (or being logged) but
not known to be committed. `base` is the zxid just before the first entry: the state a DIFF sync from
here starts from. The committed prefix is trimmed to a bounded window (`max_txns`, `max_bytes`);
the uncommitted suffix never is. A learner whose last zxid is inside [base, last] can be synced by
DIFF (after a TRUNC if it is ahead on a branch the leader does not have); anything older needs SNAP.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right

from coord.core.zab.messages import Entry


class History:
    __slots__ = ("entries", "zxids", "applied", "base", "nbytes", "max_txns", "max_bytes", "pin")

    def __init__(self, base: int, max_txns: int = 10000, max_bytes: int = 64 << 20):
        self.entries: list[Entry] = []
        self.zxids: list[int] = []
        self.applied = 0
        self.base = base
        self.nbytes = 0
        self.max_txns = max_txns
        self.max_bytes = max_bytes
        self.pin: int | None = None      # trim never past this zxid (a SNAP stream's DIFF starts there)

    @property
    def last(self) -> int:
        return self.zxids[-1] if self.zxids else self.base

    @property
    def applied_zxid(self) -> int:
        return self.zxids[self.applied - 1] if self.applied else self.base

    def __len__(self):
        return len(self.entries)

    def append(self, e: Entry) -> None:
        assert e.hdr.zxid > self.last, f"history must grow: 0x{e.hdr.zxid:x} after 0x{self.last:x}"
        self.entries.append(e)
        self.zxids.append(e.hdr.zxid)
        self.nbytes += len(e.blob)

    def index_after(self, z: int) -> int:
        """Index of the first entry with zxid > z."""
        return bisect_right(self.zxids, z)

    def contains(self, z: int) -> bool:
        if z == self.base:
            return True
        i = bisect_left(self.zxids, z)
        return i < len(self.zxids) and self.zxids[i] == z

    def prev_zxid(self, z: int) -> int:
        """The largest zxid we have (or base) strictly below z."""
        i = bisect_left(self.zxids, z)
        return self.zxids[i - 1] if i else self.base

    def since(self, z: int) -> list[Entry]:
        return self.entries[self.index_after(z):]

    def take_unapplied(self, upto: int) -> list[Entry]:
        """Mark entries up to zxid `upto` applied and return them, in order."""
        start = self.applied
        end = bisect_right(self.zxids, upto, lo=start)
        self.applied = end
        return self.entries[start:end]

    def truncate(self, z: int) -> None:
        """Drop every entry after z; never an applied one (that would be losing committed data)."""
        i = self.index_after(z)
        assert i >= self.applied, "truncating committed txns"
        for e in self.entries[i:]:
            self.nbytes -= len(e.blob)
        del self.entries[i:]
        del self.zxids[i:]

    def reset(self, base: int) -> None:
        """After a snapshot install: nothing logged after it."""
        self.entries.clear()
        self.zxids.clear()
        self.applied = 0
        self.base = base
        self.nbytes = 0

    def trim(self) -> None:
        """Forget the oldest committed entries beyond the window."""
        over = max(self.applied - self.max_txns, 0)
        if self.nbytes > self.max_bytes:
            drop_bytes = self.nbytes - self.max_bytes
            k = 0
            while k < self.applied and drop_bytes > 0:
                drop_bytes -= len(self.entries[k].blob)
                k += 1
            over = max(over, k)
        if self.pin is not None:
            over = min(over, bisect_right(self.zxids, self.pin))
        if over == 0 or (over < max(1, self.max_txns // 8) and self.nbytes <= self.max_bytes):
            return                       # trim in chunks: a del from the front is O(n)
        for e in self.entries[:over]:
            self.nbytes -= len(e.blob)
        self.base = self.zxids[over - 1]
        del self.entries[:over]
        del self.zxids[:over]
        self.applied -= over
