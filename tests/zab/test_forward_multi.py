"""A learner forwards a client's multi to the leader as the client's own bytes (as ZooKeeper's
Learner.request does), not as a re-encoding of the decoded ops: one encode per op less on every
write through a follower, Kafka's controller multis included. The leader's decode of those bytes
must give exactly the ops the learner decoded, the create-mode rewrites of a multi included."""
import struct

from coord.core.scratch import connected_core
from coord.core.server import MALFORMED
from coord.core.zab.sequencer import decode_request_body, encode_request_body
from coord.jute import records as R

OPEN = [R.ACL(31, R.Id("world", "anyone"))]


class Recording:
    """A sequencer that keeps what the core hands it (a learner's would forward it)."""

    def __init__(self):
        self.requests = []

    def submit(self, request):
        self.requests.append(request)


def _multi(*ops) -> bytes:
    body = b"".join(R.MultiHeader(t, False, -1).encode() + rec.encode() for t, rec in ops)
    return body + R.MultiHeader(-1, True, -1).encode()


def _submitted(body: bytes):
    core = connected_core(1, 1_700_000_000_000)
    seq = core.sequencer = Recording()
    payload = struct.pack(">ii", 7, 14) + body
    core.frame(1, payload)
    (request,) = seq.requests
    return payload, request


def test_a_multi_is_forwarded_as_the_clients_bytes():
    body = _multi((13, R.CheckVersionRequest("/controller_epoch", 3)),
                  (5, R.SetDataRequest("/brokers/topics/t/partitions/0/state", b"{}", 7)))
    payload, request = _submitted(body)
    assert request.frame is payload
    assert decode_request_body(14, request.frame[8:]) == request.req
    assert [t for t, _ in request.req] == [13, 5]


def test_forwarded_bytes_decode_to_the_rewritten_ops():
    # CONTAINER mode on create becomes createContainer; createTTL without a TTL mode becomes create
    body = _multi((1, R.CreateRequest("/c", b"", OPEN, 4)),
                  (21, R.CreateTTLRequest("/t", b"", OPEN, 0, 1000)),
                  (2, R.DeleteRequest("/x", -1)))
    payload, request = _submitted(body)
    assert request.frame is payload
    forwarded = decode_request_body(14, request.frame[8:])
    assert forwarded == request.req
    assert [t for t, _ in forwarded] == [19, 1, 2]
    # the bytes a re-encoding would have sent say the same
    assert decode_request_body(14, encode_request_body(14, request.req)) == forwarded


def test_a_malformed_multi_carries_no_frame():
    body = _multi((3, R.ExistsRequest("/e", False)))   # a read in a write multi: MARSHALLINGERROR
    payload, request = _submitted(body)
    assert request.req is MALFORMED and request.frame is None
