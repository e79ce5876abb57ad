"""SASL by hand over tests.compat.rawclient: the exact replies (err, token, close) a server gives.

`login` runs a whole DIGEST-MD5 exchange with pure-sasl (the mechanism kazoo uses); `step` sends one
token and reports what came back, so a test can send malformed or replayed tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

from puresasl.client import SASLClient

from coord.jute import records as R
from coord.jute.codec import decode
from tests.compat.rawclient import ConnectionClosed, RawClient


@dataclass
class Step:
    err: int | None          # None: the server closed the connection without a reply
    token: bytes | None
    zxid: int | None = None
    closed: bool = False     # the server closed the connection after this reply

    def shape(self):
        return (self.err, self.token is None, self.zxid, self.closed)


def session(host: str, port: int) -> RawClient:
    c = RawClient(host, port)
    c.connect()
    return c


def step(c: RawClient, token: bytes, *, check_close: float = 1.0) -> Step:
    try:
        r = c.call(102, R.GetSASLRequest(token).encode())
    except (ConnectionClosed, OSError):
        return Step(None, None, None, True)
    tok = decode(R.SetSASLResponse, r.body)[0].token if r.body else b"<no body>"
    closed = c.is_closed_by_peer(check_close) if check_close else False
    return Step(r.err, tok, r.zxid, closed)


def digest_client(user: str, password: str) -> SASLClient:
    return SASLClient("zk-sasl-md5", "zookeeper", mechanism="DIGEST-MD5", username=user, password=password)


def login(c: RawClient, user: str, password: str) -> list[Step]:
    """The whole exchange as kazoo runs it; the steps the server answered."""
    cli = digest_client(user, password)
    steps = []
    challenge = None
    while not cli.complete:
        resp = cli.process(challenge)
        if cli.complete and not resp:
            break
        s = step(c, resp or b"", check_close=0)
        steps.append(s)
        if s.err != 0 or s.token is None:
            break
        challenge = s.token
    return steps
