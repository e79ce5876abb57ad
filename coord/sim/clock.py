"""The simulator's virtual clock: one heap of (time, sequence) events that every world runs on.

The sequence number breaks ties between events at the same virtual time in the order they were
scheduled, so a seed replays exactly. Network, nodes and clients schedule through `at`/`after`."""
from __future__ import annotations

import heapq


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0
        self.events: list = []
        self.seq = 0
        self.count = 0           # events run so far

    def at(self, t: int, fn, *args) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, fn, args))

    def after(self, d: int, fn, *args) -> None:
        self.at(self.now + d, fn, *args)

    def step(self) -> bool:
        """Run the next event; False when none is left."""
        if not self.events:
            return False
        t, _, fn, args = heapq.heappop(self.events)
        self.now = t
        self.count += 1
        fn(*args)
        return True
