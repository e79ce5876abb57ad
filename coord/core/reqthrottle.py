"""ZooKeeper 3.8's request throttler (RequestThrottler), for one server.

Theory. With `request_throttle_max_requests` > 0, a request enters processing only while fewer
than that many are in process; the others wait in one FIFO, in arrival order (so each connection's
order holds). ZooKeeper's throttler thread re-checks every `request_throttle_stall_time` ms or when
a request finishes; here the server releases the FIFO when a write completes (the only requests
that stay in process: coord answers a read at once unless it is queued behind its own session's
write, which is counted already) and on its tick. On release:
- a request whose connection is gone is stale: with `request_throttle_drop_stale` (default) it is
  dropped and counts `stale_requests_dropped`; without it, it is dropped anyway (ZooKeeper's
  mustDrop for a connection already closed);
- with `throttled_op_wait_time` > 0, a request that waited longer than that (pings, closeSession
  and createSession excepted) is answered THROTTLEDOP (-127) with no body and makes no txn, and
  counts `throttled_ops`.
Auth and SASL packets and ConnectRequests are never throttled (ZooKeeper handles them before).
"""
from __future__ import annotations

from collections import deque

# Requests that never get THROTTLEDOP (Request.isThrottlable): ping, closeSession, createSession.
_NOT_THROTTLABLE = frozenset((11, -11, -10))


class RequestThrottler:
    def __init__(self, max_requests: int, wait_ms: int, drop_stale: bool, max_held_per_connection: int):
        self.max_requests = max_requests
        self.wait_ms = wait_ms              # throttled_op_wait_time (0: never THROTTLEDOP)
        self.drop_stale = drop_stale
        self.max_held = max_held_per_connection
        self.fifo: deque = deque()          # (conn_id, payload, held_at_ms)
        self.held: dict[int, int] = {}      # conn_id -> frames of it in the FIFO
        self.throttled_ops = 0
        self.stale_dropped = 0
        self.waits = 0                      # requests that had to wait (request_throttle_wait_count)

    def hold(self, conn_id: int, payload: bytes, in_process: int, now_ms: int) -> bool:
        """Keep the frame (True) if it may not enter processing now; False: process it now.
        Raises OverflowError when the connection has too many frames waiting (it is closed)."""
        if not self.fifo and in_process < self.max_requests:
            return False
        n = self.held.get(conn_id, 0)
        if n >= self.max_held:
            raise OverflowError(f"more than {self.max_held} requests held by the request throttler")
        self.held[conn_id] = n + 1
        self.fifo.append((conn_id, payload, now_ms))
        self.waits += 1
        return True

    def release(self, in_process, alive, now_ms: int):
        """Yield (conn_id, payload, throttled) while requests may enter: `in_process()` is read
        again after each (the caller processes it in between), `alive(conn_id)` tells stale ones."""
        fifo = self.fifo
        while fifo and in_process() < self.max_requests:
            conn_id, payload, at = fifo.popleft()
            n = self.held.get(conn_id, 1) - 1
            if n:
                self.held[conn_id] = n
            else:
                self.held.pop(conn_id, None)
            if not alive(conn_id):
                if self.drop_stale:
                    self.stale_dropped += 1
                continue
            op = int.from_bytes(payload[4:8], "big", signed=True) if len(payload) >= 8 else 0
            throttled = self.wait_ms > 0 and now_ms - at > self.wait_ms and op not in _NOT_THROTTLABLE
            if throttled:
                self.throttled_ops += 1
            yield conn_id, payload, throttled
