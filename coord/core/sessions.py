"""Sessions: ids, passwords, negotiated timeouts, and expiry in tick buckets (ZooKeeper's ExpiryQueue).

Time arrives as an argument (ms). A session's deadline is rounded up to the next tick boundary so
expiry checks touch whole buckets, not every session. The password is ZooKeeper's: 16 bytes from
java.util.Random seeded with sessionId ^ 0xB3415C00, so any server of an ensemble (or a ZooKeeper
that wrote the sessions we imported) can verify a reconnect without sharing state.
"""
from __future__ import annotations

_SUPER_SECRET = 0xB3415C00
_MULT = 0x5DEECE66D
_MASK48 = (1 << 48) - 1


def session_password(session_id: int) -> bytes:
    seed = ((session_id ^ _SUPER_SECRET) ^ _MULT) & _MASK48
    out = bytearray()
    while len(out) < 16:
        seed = (seed * _MULT + 0xB) & _MASK48
        rnd = seed >> 16
        if rnd >= 1 << 31:
            rnd -= 1 << 32
        for _ in range(min(16 - len(out), 4)):
            out.append(rnd & 0xFF)
            rnd >>= 8
    return bytes(out)


def initial_session_id(server_id: int, now_ms: int) -> int:
    """ZooKeeper's SessionTrackerImpl.initializeNextSessionId: time in the middle bits, myid on top."""
    nxt = ((now_ms << 24) & ((1 << 64) - 1)) >> 8
    nxt |= (server_id & 0xFF) << 56
    if nxt >= 1 << 63:
        nxt -= 1 << 64
    return nxt


class Session:
    __slots__ = ("session_id", "timeout_ms", "deadline", "closing", "conn", "auth", "touched_ms")

    def __init__(self, session_id: int, timeout_ms: int):
        self.session_id = session_id
        self.timeout_ms = timeout_ms
        self.deadline = 0
        self.closing = False
        self.conn = None
        self.auth: tuple = ()
        self.touched_ms = -1   # when touch() last moved (or kept) the deadline


class SessionTracker:
    def __init__(self, tick_ms: int, server_id: int = 0, now_ms: int = 0):
        self.tick_ms = max(1, tick_ms)
        self.sessions: dict[int, Session] = {}
        self.buckets: dict[int, set[int]] = {}
        self.next_session_id = initial_session_id(server_id, now_ms)

    def _bucket(self, t: int) -> int:
        return (t // self.tick_ms + 1) * self.tick_ms

    def new_session_id(self) -> int:
        sid = self.next_session_id
        assert sid != 0, "session ids are seeded from the clock: call ServerCore.start first"
        self.next_session_id += 1
        return sid

    def add(self, session_id: int, timeout_ms: int, now_ms: int) -> Session:
        s = self.sessions.get(session_id)
        if s is None:
            s = self.sessions[session_id] = Session(session_id, timeout_ms)
        s.timeout_ms = timeout_ms
        self.touch(session_id, now_ms)
        return s

    def touch(self, session_id: int, now_ms: int) -> bool:
        s = self.sessions.get(session_id)
        if s is None or s.closing:
            return False
        s.touched_ms = now_ms
        new = self._bucket(now_ms + s.timeout_ms)
        if new != s.deadline:
            if s.deadline:
                b = self.buckets.get(s.deadline)
                if b is not None:
                    b.discard(session_id)
                    if not b:
                        del self.buckets[s.deadline]
            self.buckets.setdefault(new, set()).add(session_id)
            s.deadline = new
        return True

    def remove(self, session_id: int) -> None:
        s = self.sessions.pop(session_id, None)
        if s is not None and s.deadline:
            b = self.buckets.get(s.deadline)
            if b is not None:
                b.discard(session_id)
                if not b:
                    del self.buckets[s.deadline]

    def expired(self, now_ms: int) -> list[int]:
        """Sessions whose deadline has passed; they are marked closing (no more touches)."""
        out = []
        for t in sorted(t for t in self.buckets if t <= now_ms):
            for sid in sorted(self.buckets.pop(t)):
                s = self.sessions.get(sid)
                if s is not None and not s.closing:
                    s.closing = True
                    s.deadline = 0
                    out.append(sid)
        return out

    def get(self, session_id: int) -> Session | None:
        return self.sessions.get(session_id)
