"""DIGEST-MD5 server nonces, as the JDK's DigestMD5Server makes them: 30 bytes from a CSPRNG,
base64-encoded (40 characters, no padding).

Drawn from the kernel in batches: on PyPy one os.urandom call plus one base64 encode cost ~30 us, a
large part of a SASL connect's server CPU, and a batch of 256 costs little more than one. 30 bytes
are 10 whole base64 groups, so each 40-character slice of the encoded batch is exactly the encoding
of its own 30 bytes. Every nonce is used once; the bytes are the kernel's (os.urandom), as before.
"""
from __future__ import annotations

import base64
import os

RAW = 30            # bytes of randomness per nonce (the JDK's NONCE_BYTE_LENGTH)
ENCODED = 40        # base64 characters per nonce


class NoncePool:
    """A callable giving a fresh nonce per call (SaslConfig.nonce). Loop-thread only."""

    __slots__ = ("batch", "buf", "pos")

    def __init__(self, batch: int = 256):
        self.batch = batch
        self.buf = b""
        self.pos = 0

    def __call__(self) -> bytes:
        pos = self.pos
        if pos >= len(self.buf):
            self.buf = base64.b64encode(os.urandom(RAW * self.batch))
            pos = 0
        self.pos = pos + ENCODED
        return self.buf[pos:pos + ENCODED]
