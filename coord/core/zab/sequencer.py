"""QuorumSequencer and its kinds: what ServerCore's `sequencer` is on an ensemble member.

ServerCore hands every write (and every sync) to its sequencer. In standalone that is the server
itself; in an ensemble it depends on the peer's role:
    LeaderSequencer     prepares, stamps and proposes (through the leader role); decides expiry
    LearnerSequencer    forwards the request to the leader (REQUEST / SYNC messages)
    IdleSequencer       not serving (looking, or syncing): nothing may arrive; anything that does
                        is dropped, its connection is being closed
Durability never reaches the core through here (drain_log is empty): the peer emits `append`
effects and commits through core.commit once a quorum has the txn on disk.
"""
from __future__ import annotations

from coord.core.server import REQUEST_RECORD, DEFERRED, WAIT_COMMIT, Connection, Pending, Request, ServerCore
from coord.jute import records as R
from coord.jute.codec import decode

_MULTI_END = R.MultiHeader(-1, True, -1).encode()
FORWARDABLE = frozenset({-10, -11, 1, 2, 5, 7, 13, 14, 15, 16, 19, 20, 21})


def encode_request_body(type_: int, req) -> bytes:
    if type_ == -11 or req is None:
        return b""
    if type_ == 14:
        out = bytearray()
        for t, rec in req:
            out += R.MultiHeader(t, False, -1).encode()
            out += rec.encode()
        out += _MULTI_END
        return bytes(out)
    return req.encode()


def decode_request_body(type_: int, body: bytes):
    """The request record a learner forwarded; raises ValueError (JuteError) when malformed."""
    if type_ not in FORWARDABLE:
        raise ValueError(f"type {type_} is not a forwardable write")
    if type_ == -11:
        if body:
            raise ValueError("closeSession carries no body")
        return None
    if type_ == -10:
        return decode(R.CreateSessionTxn, body, exact=True)[0]
    if type_ == 14:
        return ServerCore._decode_multi(body, 0)
    if type_ == 20:
        return decode(R.DeleteRequest, body, exact=True)[0]
    return decode(REQUEST_RECORD[type_], body, exact=True)[0]


class QuorumSequencer:
    """The interface ServerCore expects of its sequencer, for an ensemble member."""
    decides_expiry = False

    def __init__(self, peer):
        self.peer = peer

    def submit(self, request: Request) -> None:
        raise NotImplementedError

    def sync(self, conn: Connection, pending: Pending) -> None:
        raise NotImplementedError

    def drain_log(self) -> list:
        return []          # the peer emits `append` effects itself

    def unlogged(self) -> bool:
        return False

    def on_logged(self, zxid: int) -> None:
        pass               # durability reaches the peer as log_durable


class IdleSequencer(QuorumSequencer):
    def submit(self, request: Request) -> None:
        self.peer.log("debug", f"dropping a write from session 0x{request.session_id:x}: not serving")

    def sync(self, conn: Connection, pending: Pending) -> None:
        pending.state = WAIT_COMMIT   # the connection is closing; it never completes


class LeaderSequencer(QuorumSequencer):
    decides_expiry = True

    def __init__(self, peer, leader):
        super().__init__(peer)
        self.leader = leader

    def submit(self, request: Request) -> None:
        self.leader.submit(request)

    def sync(self, conn: Connection, pending: Pending) -> None:
        self.leader.local_sync(conn, pending)


class LearnerSequencer(QuorumSequencer):
    def __init__(self, peer, learner):
        super().__init__(peer)
        self.learner = learner

    def submit(self, request: Request) -> None:
        self.learner.forward(request)

    def sync(self, conn: Connection, pending: Pending) -> None:
        self.learner.forward_sync(conn, pending)


__all__ = ["QuorumSequencer", "IdleSequencer", "LeaderSequencer", "LearnerSequencer", "encode_request_body",
           "decode_request_body", "DEFERRED", "WAIT_COMMIT"]

