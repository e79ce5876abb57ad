"""The server side of SASL GSSAPI (RFC 4752) as the JDK's GssKrb5Server runs it for ZooKeeper.

ZooKeeper creates it with its JAAS principal's primary as protocol, its host as server name and no
properties, so the only security layer offered is none (qop `auth`, bitmask 0x01) with a receive
buffer of 65536. Stages, as in the JDK:

- 0: each token goes to the GSS-API acceptor until the context is established; the acceptor's
  output (the AP-REP under mutual authentication) is the challenge. Established with no output
  token: stage 1 runs at once.
- 1: the client's token must be empty; the challenge is wrap([0x01, 65536 as 3 bytes]).
- 2: the client's token is unwrapped: its first byte is the chosen layer (must include 0x01), the
  next three its buffer size, the rest its authorization id (default: the initiator's name). The
  reply is a null token and the exchange is complete.

The GSS-API calls are the shell's: an `Acceptor` (coord.aio.gss) wraps a real library. Its
failures raise GssFailure. A failure is SaslFailure (AUTHFAILED, close); a stage-2 token shorter
than 4 bytes is the JDK's ArrayIndexOutOfBoundsException (JvmFault: close, no reply).
"""
from __future__ import annotations

from typing import Protocol

from coord.core.digest_md5 import JvmFault, SaslFailure

NO_PROTECTION = 0x01          # the only layer ZooKeeper's server offers (props null: qop "auth")
MAX_BUFFER = 65536            # AbstractSaslImpl's default javax.security.sasl.maxbuffer


class GssFailure(Exception):
    """A GSS-API call failed (GSSException in the JDK)."""


class Acceptor(Protocol):
    """One GSS-API acceptor context (the shell's). `step` returns the output token (None: none);
    `established` and `initiator` (the client principal's name) are valid once it is."""
    established: bool
    initiator: str | None

    def step(self, token: bytes) -> bytes | None: ...

    def wrap(self, data: bytes) -> bytes: ...

    def unwrap(self, token: bytes) -> bytes: ...


class GssKrb5Server:
    """One connection's GSSAPI exchange. Same face as DigestMD5Server: evaluate, complete, username
    (the authentication id: the client's principal), authzid."""

    def __init__(self, acceptor: Acceptor):
        self.ctx = acceptor
        self.stage = 0
        self.complete = False
        self.username: str | None = None
        self.authzid: str | None = None

    def evaluate(self, token: bytes) -> bytes | None:
        if self.complete:
            raise SaslFailure("SASL authentication already complete")
        if self.stage == 1:
            return self._layers(token)
        if self.stage == 2:
            return self._chosen(token)
        try:
            out = self.ctx.step(token)
        except GssFailure as e:
            raise SaslFailure(f"GSS initiate failed: {e}") from None
        if self.ctx.established:
            self.stage = 1
            self.username = self.ctx.initiator
            if out is None:
                return self._layers(b"")
        return out

    def _layers(self, token: bytes) -> bytes:
        if token:
            raise SaslFailure("Handshake expecting no response data from server")
        self.stage = 2
        try:
            return self.ctx.wrap(bytes([NO_PROTECTION]) + MAX_BUFFER.to_bytes(3, "big"))
        except GssFailure as e:
            raise SaslFailure(f"Problem wrapping handshake1: {e}") from None

    def _chosen(self, token: bytes) -> None:
        try:
            data = self.ctx.unwrap(token)
        except GssFailure as e:
            raise SaslFailure(f"Final handshake step failed: {e}") from None
        if len(data) < 4:
            raise JvmFault(f"ArrayIndexOutOfBoundsException: security layer reply of {len(data)} bytes")
        if data[0] & NO_PROTECTION == 0:
            raise SaslFailure(f"Client selected unsupported protection: {data[0]}")
        self.authzid = data[4:].decode("utf-8", errors="replace") if len(data) > 4 else self.username
        self.complete = True
        return None
