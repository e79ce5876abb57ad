"""Load limits as ZooKeeper 3.8 names and applies them: zoo.cfg keys, and the per-listener cap.

The keys are ZooKeeper system properties (`zookeeper.<name>`; in zoo.cfg with or without the
prefix, or as -D flags in SERVER_JVMFLAGS / JVMFLAGS), with ZooKeeper's defaults:

- `enforceQuota` (false): hard quota limits, coord.core.quota;
- `maxCnxns` (0: no limit): connections per listener. ZooKeeper counts each ServerCnxnFactory
  apart, so the clientPort (plain, or plain and TLS with client.portUnification) and the
  secureClientPort each take up to maxCnxns. Checked before maxClientCnxns (per IP), as ZooKeeper
  does; a refused connection is closed at once and counts in `connection_rejected`;
- `request_throttle_max_requests` (0: off), `request_throttle_stall_time` (100 ms),
  `request_throttle_drop_stale` (true), `throttled_op_wait_time` (0: off): coord.core.throttle;
- `connection_throttle_*`: BlueThrottle's token bucket, coord.core.throttle.

Where ZooKeeper reads a bad number as its default without a word (Integer.getInteger), coord stops
the start naming the line: a limit silently not applied is worse than a refused start.
"""
from __future__ import annotations

import logging

log = logging.getLogger("coord.server")

# name -> (kind, default); the connection throttle's are BlueThrottle's properties.
KEYS = {
    "enforceQuota": ("bool", False),
    "maxCnxns": ("int", 0),
    "request_throttle_max_requests": ("int", 0),
    "request_throttle_stall_time": ("int", 100),
    "request_throttle_drop_stale": ("bool", True),
    "throttled_op_wait_time": ("int", 0),
    "connection_throttle_tokens": ("int", 0),
    "connection_throttle_fill_time": ("int", 1),
    "connection_throttle_fill_count": ("int", 1),
    "connection_throttle_freeze_time": ("int", -1),
    "connection_throttle_drop_increase": ("float", 0.02),
    "connection_throttle_drop_decrease": ("float", 0.002),
    "connection_throttle_decrease_ratio": ("float", 0.0),
    "connection_throttle_weight_enabled": ("bool", False),
    "connection_throttle_global_session_weight": ("int", 3),
    "connection_throttle_local_session_weight": ("int", 1),
    "connection_throttle_renew_session_weight": ("int", 2),
}


def defaults() -> dict:
    return {k: d for k, (_, d) in KEYS.items()}


def parse_value(key: str, value: str):
    """The typed value of one limits key; ValueError (naming the key) if it does not parse."""
    kind = KEYS[key][0]
    v = value.strip()
    if kind == "bool":
        if v.lower() not in ("true", "false"):
            raise ValueError(f"{key} must be true or false, got {value!r}")
        return v.lower() == "true"
    try:
        return int(v) if kind == "int" else float(v)
    except ValueError:
        raise ValueError(f"{key} must be {'an integer' if kind == 'int' else 'a number'}, "
                         f"got {value!r}") from None


def apply_key(limits: dict, key: str, value: str, warnings: list) -> bool:
    """Set one limits key from zoo.cfg (prefix already stripped); False if key is not one."""
    if key not in KEYS:
        return False
    v = parse_value(key, value)
    if key == "connection_throttle_fill_time" and v <= 0:
        raise ValueError(f"{key} must be a positive number of milliseconds, got {value!r}")
    if key == "maxCnxns" and v < 0:   # ServerCnxnFactory.initMaxCnxns
        warnings.append("maxCnxns should be greater than or equal to 0, using default value 0.")
        v = 0
    limits[key] = v
    return True


class ConnectionCap:
    """maxCnxns for one server: the live connections of each listener (plain / secure)."""

    def __init__(self, max_cnxns: int):
        self.max_cnxns = max_cnxns
        self.alive = {"plain": 0, "secure": 0}

    def full(self, listener: str) -> bool:
        n = self.alive[listener]
        if 0 < self.max_cnxns <= n:
            log.error("Too many connections %d - max is %d", n, self.max_cnxns)
            return True
        return False

    def admit(self, listener: str) -> bool:
        """ServerCnxnFactory.limitTotalNumberOfCnxns: False (and the log line) when full."""
        if self.full(listener):
            return False
        self.alive[listener] += 1
        return True

    def release(self, listener: str) -> None:
        self.alive[listener] -= 1


def request_throttle(limits: dict) -> tuple[int, int, bool] | None:
    """The core's RequestThrottler settings (None: off, as ZooKeeper's default)."""
    if limits["request_throttle_max_requests"] <= 0:
        return None
    return (limits["request_throttle_max_requests"], limits["throttled_op_wait_time"],
            limits["request_throttle_drop_stale"])


def rejected(srv) -> int:
    """connection_rejected: refused by maxCnxns / maxClientCnxns here, or by the connection throttle."""
    ct = srv.core.conn_throttle if srv.core is not None else None
    return srv.rejected + (ct.rejected if ct is not None else 0)


def mntr_rows(srv) -> list[tuple[str, object]]:
    """The limits' rows of mntr, named as ZooKeeper's (its default metrics provider prints them)."""
    ct = srv.core.conn_throttle if srv.core is not None else None
    rt = srv.core.req_throttle if srv.core is not None else None
    return [("zk_auth_failed_count", srv.auth_failed),
            ("zk_throttled_ops", rt.throttled_ops if rt is not None else 0),
            ("zk_stale_requests_dropped", rt.stale_dropped if rt is not None else 0),
            ("zk_request_throttle_wait_count", rt.waits if rt is not None else 0),
            ("zk_connection_rejected", rejected(srv)),
            ("zk_connection_drop_probability", ct.drop if ct is not None else 0.0)]


def raise_nofile_soft() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit, as the JVM does for ZooKeeper (-XX:+MaxFDLimit): a
    member holding tens of thousands of client connections must not stop at a shell's 1,024.
    Returns (soft, hard) as they are now."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as e:   # e.g. an infinite hard limit the kernel refuses as soft
            log.warning("cannot raise the open-file limit from %s to %s: %s", soft, hard, e)
    return soft, hard
