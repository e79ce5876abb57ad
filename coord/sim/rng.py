"""Every random choice of a simulation comes from one seed, split into independent named streams.

A stream's sequence depends only on (seed, name), so adding draws to one concern (say, the network)
does not shift another's (the workload): a seed keeps meaning roughly the same scenario while the
simulator grows, and a failure replays exactly from its seed.
"""
from __future__ import annotations

import hashlib
import random


class Rng:
    def __init__(self, seed: int):
        self.seed = seed
        self._streams: dict[str, random.Random] = {}

    def stream(self, name: str) -> random.Random:
        r = self._streams.get(name)
        if r is None:
            h = hashlib.sha256(f"{self.seed}/{name}".encode()).digest()
            r = self._streams[name] = random.Random(int.from_bytes(h[:8], "big"))
        return r
