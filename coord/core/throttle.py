"""ZooKeeper 3.8's connection throttle (BlueThrottle): a token bucket, plus BLUE random drops.

Theory. Each ConnectRequest takes `need` tokens (1; with weights on, 3 for a new global session,
1 for a local one, 2 for a reconnect); the bucket holds `connection_throttle_tokens` (0: off) and
gets `fill_count` tokens back every `fill_time` ms. A connect that finds too few tokens is refused:
the server closes the connection without a ConnectResponse and counts `connection_rejected`.
With `freeze_time` set (-1: off), BLUE also refuses connects at random with a drop probability
that rises by `drop_increase` each freeze period the bucket is found empty and falls by
`drop_decrease` each period it is at most `decrease_ratio` full of deficit.

Time (ms, monotonic) and the random draw arrive as arguments, so the core stays pure.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BlueThrottleConfig:
    tokens: int = 0
    fill_time_ms: int = 1
    fill_count: int = 1
    freeze_time_ms: int = -1
    drop_increase: float = 0.02
    drop_decrease: float = 0.002
    decrease_ratio: float = 0.0
    weight_enabled: bool = False
    global_weight: int = 3
    local_weight: int = 1
    renew_weight: int = 2

    @classmethod
    def from_limits(cls, limits: dict) -> "BlueThrottleConfig":
        """From the connection_throttle_* keys (coord.aio.limits), weights fixed up as BlueThrottle's
        static initializer does (a weight below 1, or below the local weight, falls back)."""
        g = limits["connection_throttle_global_session_weight"]
        loc = limits["connection_throttle_local_session_weight"]
        r = limits["connection_throttle_renew_session_weight"]
        local_w = loc if loc > 0 else 1
        global_w = 3 if g <= 0 else (loc if g < loc else g)
        renew_w = 2 if r <= 0 else (loc if r < loc else r)
        weighted = limits["connection_throttle_weight_enabled"]
        tokens, fill = limits["connection_throttle_tokens"], limits["connection_throttle_fill_count"]
        return cls(tokens=global_w * tokens if weighted else tokens,
                   fill_time_ms=limits["connection_throttle_fill_time"],
                   fill_count=global_w * fill if weighted else fill,
                   freeze_time_ms=limits["connection_throttle_freeze_time"],
                   drop_increase=limits["connection_throttle_drop_increase"],
                   drop_decrease=limits["connection_throttle_drop_decrease"],
                   decrease_ratio=limits["connection_throttle_decrease_ratio"],
                   weight_enabled=weighted, global_weight=global_w, local_weight=local_w,
                   renew_weight=renew_w)


class BlueThrottle:
    def __init__(self, cfg: BlueThrottleConfig, now_ms: int):
        self.cfg = cfg
        self.max_tokens = cfg.tokens
        self.tokens = cfg.tokens
        self.last_ms = now_ms
        self.last_freeze_ms = now_ms
        self.drop = 0.0          # connection_drop_probability
        self.rejected = 0        # connects refused here (part of connection_rejected)

    @property
    def enabled(self) -> bool:
        return self.max_tokens != 0

    @property
    def deficit(self) -> int:
        return self.max_tokens - self.tokens

    def need(self, session_id: int, local_sessions: bool) -> int:
        cfg = self.cfg
        if not cfg.weight_enabled:
            return 1
        if session_id == 0:
            return cfg.local_weight if local_sessions else cfg.global_weight
        return cfg.renew_weight

    def check_limit(self, need: int, now_ms: int, draw: float) -> bool:
        """BlueThrottle.checkLimit; `draw` is a uniform random number in [0, 1)."""
        if self.max_tokens == 0:
            return True
        cfg = self.cfg
        diff = now_ms - self.last_ms
        if diff > cfg.fill_time_ms:
            self.tokens = min(self.tokens + diff * cfg.fill_count // cfg.fill_time_ms, self.max_tokens)
            self.last_ms = now_ms
        if cfg.freeze_time_ms != -1 and not self._check_blue(now_ms, draw):
            self.rejected += 1
            return False
        if self.tokens < need:
            self.rejected += 1
            return False
        self.tokens -= need
        return True

    def _check_blue(self, now_ms: int, draw: float) -> bool:
        cfg = self.cfg
        length = self.max_tokens - self.tokens
        threshold = _java_round(self.max_tokens * cfg.decrease_ratio)
        if now_ms - self.last_freeze_ms > cfg.freeze_time_ms:
            if length == self.max_tokens and self.drop < 1:
                self.drop = min(self.drop + cfg.drop_increase, 1.0)
            elif length <= threshold and self.drop > 0:
                self.drop = max(self.drop - cfg.drop_decrease, 0.0)
            self.last_freeze_ms = now_ms
        return not draw < self.drop


def _java_round(x: float) -> int:
    """Math.round: half up."""
    import math
    return math.floor(x + 0.5)
