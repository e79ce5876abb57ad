"""A simulated peer network: one FIFO link per server pair, as TCP gives (and as coord.aio.peer keeps).

A link comes up when either side asks (`connect`) and both are up and can reach each other; both
sides then get peer_connected before any message. Messages take a drawn delay and are delivered in
order unless a fault says otherwise:
    loss          a message vanishes (the receiver sees the next one's sequence gap and closes)
    duplication   a message arrives twice (the receiver drops the replay)
    reordering    a message overtakes its predecessor (a gap, then a replay)
    corruption    a bit flips (the checksum fails; the receiver closes)
    partitions    symmetric or one-way: nothing crosses; a link that hears nothing for idle_ms is
                  declared dead on both sides, as the shell's link pings do
Messages of a link that went down are never delivered on its successor.
"""
from __future__ import annotations

import random


NEMESIS_TYPES = frozenset({5, 7, 8, 9})     # TRUNC, SNAP, NEWLEADER, ACKNEWLEADER (messages.py)


class Link:
    __slots__ = ("a", "b", "lid", "last_at")

    def __init__(self, a: int, b: int, lid: int):
        self.a = a
        self.b = b
        self.lid = lid
        self.last_at = {a: 0, b: 0}       # per sender: delivery time of its last message


class Network:
    def __init__(self, world, rng: random.Random):
        self.world = world
        self.rng = rng
        self.links: dict[tuple[int, int], Link] = {}
        self.next_lid = 1
        self.blocked: set[tuple[int, int]] = set()     # (from, to) pairs that cannot deliver
        self.loss = 0.0
        self.dup = 0.0
        self.reorder = 0.0
        self.corrupt = 0.0
        self.delay = (1, 3)
        self.slow = 0.0
        self.idle_ms = 300
        self.connect_ms = (1, 5)
        self.streams = False        # byte-stream links (zkworld): a message a partition drops kills its link
        self.pending_connect: set[tuple[int, int]] = set()
        self.stats = {"sent": 0, "lost": 0, "dup": 0, "reordered": 0, "corrupted": 0, "links": 0}

    @staticmethod
    def key(a: int, b: int) -> tuple[int, int]:
        return (a, b) if a < b else (b, a)

    def reachable(self, a: int, b: int) -> bool:
        return (a, b) not in self.blocked and (b, a) not in self.blocked

    def connect(self, a: int, b: int) -> None:
        k = self.key(a, b)
        if k in self.links or k in self.pending_connect:
            return
        self.pending_connect.add(k)
        self.world.after(self.rng.randint(*self.connect_ms), self._establish, k)

    def _establish(self, k) -> None:
        self.pending_connect.discard(k)
        a, b = k
        w = self.world
        if k in self.links or not (w.up(a) and w.up(b)) or not self.reachable(a, b):
            return
        link = Link(a, b, self.next_lid)
        self.next_lid += 1
        self.links[k] = link
        self.stats["links"] += 1
        first, second = (a, b) if self.rng.random() < 0.5 else (b, a)
        w.node(first).link_up(second, link.lid)
        w.node(second).link_up(first, link.lid)

    def close(self, a: int, b: int, delay_other: int | None = None) -> None:
        """Tear the link down; `a` learns at once, `b` after delay_other (None: at once)."""
        link = self.links.pop(self.key(a, b), None)
        if link is None:
            return
        self._notify_down(a, b, link.lid)
        if delay_other:
            self.world.after(delay_other, self._notify_down, b, a, link.lid)
        else:
            self._notify_down(b, a, link.lid)

    def _notify_down(self, who: int, other: int, lid: int) -> None:
        w = self.world
        if w.up(who):
            w.node(who).link_down(other, lid)

    def node_down(self, sid: int) -> None:
        """A crash: every link of sid dies; the others notice after a short while (RST/FIN)."""
        for k in [k for k in self.links if sid in k]:
            other = k[0] if k[1] == sid else k[1]
            link = self.links.pop(k)
            self.world.after(self.rng.randint(1, 20), self._notify_down, other, sid, link.lid)

    def send(self, a: int, b: int, data: bytes) -> None:
        link = self.links.get(self.key(a, b))
        if link is None:
            return
        self.stats["sent"] += 1
        r = self.rng
        if (a, b) in self.blocked:
            if self.streams:
                self.close(a, b)
            return
        if self.loss and r.random() < self.loss:
            self.stats["lost"] += 1
            return
        if self.corrupt and r.random() < self.corrupt:
            self.stats["corrupted"] += 1
            d = bytearray(data)
            i = r.randrange(len(d))
            d[i] ^= 1 << r.randrange(8)
            data = bytes(d)
        lo, hi = self.delay
        delay = r.randint(lo, hi)
        if self.slow and r.random() < self.slow:
            delay += r.randint(20, 200)
        now = self.world.now
        t = max(now + delay, link.last_at[a])
        if self.reorder and r.random() < self.reorder and link.last_at[a] > now + 1:
            t = r.randint(now + 1, link.last_at[a])           # overtakes what is in flight
            self.stats["reordered"] += 1
        else:
            link.last_at[a] = t
        self.world.at(t, self._deliver, a, b, link.lid, data)
        if self.dup and r.random() < self.dup:
            self.stats["dup"] += 1
            t2 = t + r.randint(0, 5)
            link.last_at[a] = max(link.last_at[a], t2)
            self.world.at(t2, self._deliver, a, b, link.lid, data)

    def _deliver(self, a: int, b: int, lid: int, data: bytes) -> None:
        link = self.links.get(self.key(a, b))
        if link is None or link.lid != lid:
            return
        if (a, b) in self.blocked:
            if self.streams:
                self.close(a, b)
            return
        if len(data) > 1 and data[1] in NEMESIS_TYPES:
            self.world.nemesis_message(data[1], a, b)
        self.world.node(b).deliver(a, data)

    # -- partitions ------------------------------------------------------------------------------
    def partition(self, groups: list[set[int]], one_way: tuple[int, int] | None = None) -> None:
        """Block traffic between groups (or one direction of one pair); links then time out."""
        if one_way is not None:
            self.blocked.add(one_way)
        else:
            for i, g in enumerate(groups):
                for h in groups[i + 1:]:
                    for a in g:
                        for b in h:
                            self.blocked.add((a, b))
                            self.blocked.add((b, a))
        self.world.after(self.idle_ms, self._expire_blocked)

    def _expire_blocked(self) -> None:
        for (a, b) in list(self.blocked):
            link = self.links.get(self.key(a, b))
            if link is not None:
                self.close(a, b)

    def heal(self) -> None:
        self.blocked.clear()

    def calm(self) -> None:
        self.loss = self.dup = self.reorder = self.corrupt = self.slow = 0.0
