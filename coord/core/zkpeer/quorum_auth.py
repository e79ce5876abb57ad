"""ZooKeeper's quorum SASL on the peer links, learner side (SaslQuorumAuthLearner), DIGEST-MD5.

With quorum.auth.enableSasl=true and quorum.auth.learnerRequireSasl=true a learner authenticates
right after connecting: on the election port after its InitialMessage, on the leader's quorum port
before OBSERVERINFO. Both directions carry QuorumAuthPacket records (magic long, status int: 0 in
progress, 1 success, -1 error; token buffer). DIGEST-MD5 (RFC 2831) as the JDK's client runs it for
protocol `zookeeper-quorum`, server name `zk-quorum-sasl-md5`, credentials from the JAAS section
quorum.auth.learner.saslLoginContext (default QuorumLearner: username, password):

    learner: (0, empty)          server: (0, challenge: realm, nonce, qop=auth, md5-sess)
    learner: (0, digest-response) server: (1, rspauth=...)  -- checked: the server knew the password
Anything else (ERROR, a wrong rspauth, a packet without the magic) fails the link with the reason.
"""
from __future__ import annotations

import hmac
import struct

from coord.core.digest_md5 import parse_directives, response_value

PROTOCOL = "zookeeper-quorum"
SERVER_NAME = "zk-quorum-sasl-md5"
DIGEST_URI = f"{PROTOCOL}/{SERVER_NAME}".encode()
MAGIC = struct.unpack(">q", struct.pack(">Q", (-0xa0dbcafecafe1234) & 0xFFFFFFFFFFFFFFFF))[0]
IN_PROGRESS, SUCCESS, ERROR = 0, 1, -1
MAX_TOKEN = 1 << 16
_HDR = struct.Struct(">qii")


class QuorumAuthError(Exception):
    """The quorum SASL exchange failed: the link must close (the message says why)."""


def encode_packet(status: int, token: bytes | None) -> bytes:
    if token is None:
        return struct.pack(">qii", MAGIC, status, -1)
    return _HDR.pack(MAGIC, status, len(token)) + token


def header(b: bytes) -> tuple[int, int]:
    """(status, token length) of the 16-byte packet head; QuorumAuthError if it is not one."""
    magic, status, n = _HDR.unpack(b)
    if magic != MAGIC:
        raise QuorumAuthError(f"quorum auth: not a QuorumAuthPacket (magic 0x{magic & 0xFFFFFFFFFFFFFFFF:x})")
    if n > MAX_TOKEN:
        raise QuorumAuthError(f"quorum auth: token of {n} bytes")
    return status, n


class DigestMD5Learner:
    """One learner-side exchange: `first()`, then `step(status, token)` for each server packet; it
    returns the next packet to send, or None once the server's rspauth has been verified."""

    def __init__(self, username: str, password: str, cnonce: bytes):
        self.username = username
        self.password = password
        self.cnonce = cnonce             # the shell's randomness: the core stays pure
        self.expect_rspauth: bytes | None = None
        self.done = False

    def first(self) -> bytes:
        return encode_packet(IN_PROGRESS, b"")

    def step(self, status: int, token: bytes | None) -> bytes | None:
        if status == ERROR:
            raise QuorumAuthError("quorum auth: the ZooKeeper server refused our credentials (status ERROR)")
        if status not in (IN_PROGRESS, SUCCESS):
            raise QuorumAuthError(f"quorum auth: unknown status {status}")
        if self.expect_rspauth is None:
            if status != IN_PROGRESS:
                raise QuorumAuthError("quorum auth: SUCCESS before any challenge")
            return encode_packet(IN_PROGRESS, self._response(token or b""))
        t = (token or b"").strip()
        got = t[len(b"rspauth="):].strip(b'"') if t.startswith(b"rspauth=") else b""
        if not hmac.compare_digest(got, self.expect_rspauth):
            raise QuorumAuthError("quorum auth: the server's rspauth does not match (it does not know our password)")
        if status != SUCCESS:
            raise QuorumAuthError("quorum auth: the exchange did not end in SUCCESS")
        self.done = True
        return None

    def _response(self, challenge: bytes) -> bytes:
        d = parse_directives(challenge)
        nonce = d.get("nonce")
        if not nonce:
            raise QuorumAuthError("quorum auth: DIGEST-MD5 challenge without a nonce")
        if b"auth" not in (d.get("qop") or b"auth").split(b","):
            raise QuorumAuthError("quorum auth: the server offers no qop=auth")
        realm = (d.get("realm") or SERVER_NAME.encode()).decode("utf-8", "replace")
        resp = response_value("AUTHENTICATE", DIGEST_URI, self.username, realm, self.password, nonce,
                              self.cnonce, None)
        self.expect_rspauth = response_value("", DIGEST_URI, self.username, realm, self.password, nonce,
                                             self.cnonce, None)

        def q(v: str | bytes) -> bytes:
            b = v.encode() if isinstance(v, str) else v
            return b'"' + b.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
        return (b"charset=utf-8,username=" + q(self.username) + b",realm=" + q(realm) + b",nonce=" + q(nonce)
                + b",nc=00000001,cnonce=" + q(self.cnonce) + b",digest-uri=" + q(DIGEST_URI)
                + b",maxbuf=65536,response=" + resp + b",qop=auth")
