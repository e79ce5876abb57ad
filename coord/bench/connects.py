"""In-process CPU per new connection: a plain connect and a SASL DIGEST-MD5 connect through ServerCore.

`python -m coord.bench.connects [--connects N] [--rounds R]` (run it on PyPy: .venv-pypy/bin/python)

Each connect is what the shell drives for one client of tests.security.bench_security: connection
made, ConnectRequest (a createSession txn, reported durable at once), drain; for SASL also the empty
first token (the challenge) and the digest-response (rspauth), each drained as its own loop turn;
then the connection lost. It also times the pieces of the SASL step (the shell's nonce source, the
digest-response parse, the response check). CPU time (time.process_time), fastest of R rounds, so
the figures hold on a loaded machine. No sockets, no event loop: `bench_security` measures those.
"""
from __future__ import annotations

import argparse
import struct
import time

from coord.core import digest_md5
from coord.core.config import CoreConfig
from coord.core.sasl import SaslConfig
from coord.core.scratch import logged
from coord.core.server import ServerCore
from coord.jute import records as R

USER, PASSWORD = "jaasuser", "jaas_password"
_HDR = struct.Struct(">ii")
CONNECT = R.ConnectRequest(0, 0, 30000, 0, bytes(16)).encode() + b"\x00"
CNONCE = b"OTg4NjI5NDM2MDg3MjE5MTIzNDU2Nzg5"


def digest_response(nonce: bytes) -> bytes:
    """The digest-response a client (pure-sasl, as kazoo) sends to the challenge with `nonce`."""
    uri = digest_md5.DIGEST_URI.encode()
    resp = digest_md5.response_value("AUTHENTICATE", uri, USER, digest_md5.REALM, PASSWORD, nonce, CNONCE, None)
    return (b'username="' + USER.encode() + b'",realm="zk-sasl-md5",nonce="' + nonce + b'",cnonce="' + CNONCE
            + b'",nc=00000001,qop=auth,digest-uri="' + uri + b'",response=' + resp)


def _sasl_frame(xid: int, token: bytes) -> bytes:
    return _HDR.pack(xid, 102) + R.GetSASLRequest(token).encode()


def run(connects: int = 20_000, rounds: int = 3, nonce=None, out=print) -> dict[str, float]:
    """CPU microseconds per plain connect, per SASL connect, and per piece of the SASL step."""
    from coord.aio.nonces import NoncePool   # the server's nonce source; only the bench's driver uses it
    source = nonce or NoncePool()
    made = []

    def recorded():   # the server's nonce source, remembered so the client can answer the challenge
        made.append(source())
        return made[-1]
    core = ServerCore(CoreConfig(sasl=SaslConfig(users={USER: PASSWORD}, nonce=recorded)))
    core.start(1_700_000_000_000, 1000)
    first = _sasl_frame(1, b"")
    cid = 0

    def connected() -> int:
        """A new connection whose session is created (its txn logged) and answered."""
        nonlocal cid
        cid += 1
        core.connection_made(cid, "127.0.0.1:5000")
        core.frame(cid, CONNECT)
        logged(core)
        core.drain()
        return cid

    def plain():
        core.connection_lost(connected())
        core.drain()

    def sasl():
        cid = connected()
        core.frame(cid, first)
        core.drain()
        core.frame(cid, _sasl_frame(2, digest_response(made.pop())))
        out_, _ = core.drain()
        assert b"rspauth=" in out_[cid][0], out_
        core.connection_lost(cid)
        core.drain()
        core.log_lines.clear()

    resp = digest_response(source())
    srv = digest_md5.DigestMD5Server({USER: PASSWORD}.get, b"")

    def check():
        srv.nonce = resp[resp.index(b'nonce="') + 7:][:40]
        srv.step, srv.complete = 3, False
        srv.evaluate(resp)
    pieces = {"plain connect": plain, "SASL connect": sasl, "  nonce": source,
              "  parse digest-response": lambda: digest_md5.parse_directives(resp),
              "  check digest-response": check}
    # The client's response is computed by the driver: time it alone and take it off the SASL figure.
    pieces["  (driver: client response)"] = lambda: digest_response(CNONCE)
    best = {k: float("inf") for k in pieces}
    for _ in range(rounds):
        for name, fn in pieces.items():
            n = connects if "connect" in name else connects * 2
            t0 = time.process_time()
            for _ in range(n):
                fn()
            best[name] = min(best[name], (time.process_time() - t0) / n * 1e6)
    best["SASL connect"] -= best["  (driver: client response)"]
    for name, us in best.items():
        out(f"{name:28s} {us:7.2f} us")
    out(f"{'SASL adds':28s} {best['SASL connect'] - best['plain connect']:7.2f} us per connect")
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connects", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    run(a.connects, a.rounds)


if __name__ == "__main__":
    main()
