"""The client connection's read path (coord.aio.server.ClientProtocol): a BufferedProtocol that every
connection shares one read buffer through. Frames cut anywhere, several in one read, one larger
than the buffer, and two connections reading in turn all arrive whole and in order, on a real
server."""
from __future__ import annotations

import socket
import struct
import time

import pytest

from coord.aio.server import READ_BUFFER_BYTES, ClientProtocol
from coord.bench.client import OPS, Session, encode_batch, recv_frame, request_body
from coord.jute import records as R
from tests.support.names import fresh

_LEN = struct.Struct(">i")


def _connect_frame() -> bytes:
    body = R.ConnectRequest(0, 0, 30000, 0, bytes(16)).encode() + b"\x00"
    return _LEN.pack(len(body)) + body


def _request(xid: int, op: str, path: str, data: bytes = b"") -> bytes:
    body = request_body(op, path, data)
    return struct.pack(">iii", 8 + len(body), xid, OPS[op]) + body


def _reply(sock) -> tuple[int, int]:
    frame = recv_frame(sock)
    xid, _zxid, err = struct.unpack_from(">iqi", frame, 0)
    return xid, err


def test_is_buffered_and_shares_the_server_buffer():
    import asyncio
    assert issubclass(ClientProtocol, asyncio.BufferedProtocol)
    assert READ_BUFFER_BYTES >= 64 * 1024


def test_frames_cut_anywhere_merged_and_larger_than_the_buffer(coord_server):
    _frames_cut_anywhere(coord_server.connect_string)


@pytest.mark.realzk
def test_the_same_on_zookeeper(real_zookeeper):
    """The same harness against real ZooKeeper 3.8: a failure above is coord's."""
    _frames_cut_anywhere(real_zookeeper.connect_string)


def _plain(host: str, port: int):
    s = socket.create_connection((host, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _frames_cut_anywhere(connect_string: str, open_socket=_plain, check_string: str | None = None) -> None:
    """open_socket(host, port): the two connections (plain, or TLS: tests/security/test_tls.py);
    check_string: where a plain session reads the results back (default connect_string)."""
    host, port = connect_string.split(":")
    # fresh names: tests/security/test_tls.py runs this on its module's servers, where a rerun
    # must not meet this run's nodes
    ra, rb = fresh("/reads-a"), fresh("/reads-b")
    a = open_socket(host, int(port))
    b = open_socket(host, int(port))
    try:
        # the handshake a byte at a time on a, in two pieces on b, interleaved
        hs = _connect_frame()
        b.sendall(hs[:6])
        for i in range(len(hs)):
            a.sendall(hs[i:i + 1])
            time.sleep(0.001)
            if i == 10:
                b.sendall(hs[6:])
        for s in (a, b):
            assert struct.unpack_from(">q", recv_frame(s), 8)[0] != 0   # a session id
        # a create on each, then three requests in one send on a, cut mid-frame on b
        a.sendall(_request(1, "create", ra, b"x"))
        b.sendall(_request(1, "create", rb, b"y"))
        assert _reply(a) == (1, 0) and _reply(b) == (1, 0)
        blob, _ = encode_batch("getData", [ra, rb, ra], b"", 2)
        a.sendall(blob)
        cut = _request(2, "setData", rb, b"z" * 1000) + _request(3, "exists", ra)
        b.sendall(cut[:17])
        time.sleep(0.05)
        b.sendall(cut[17:1020])
        time.sleep(0.05)
        b.sendall(cut[1020:])
        assert [_reply(a) for _ in range(3)] == [(2, 0), (3, 0), (4, 0)]
        assert [_reply(b) for _ in range(2)] == [(2, 0), (3, 0)]
        # one frame larger than the shared buffer: 600 KB of data, read in many pieces
        big = b"".join(bytes([i % 251]) for i in range(600_000))
        a.sendall(_request(5, "setData", ra, big))
        assert _reply(a) == (5, 0)
    finally:
        a.close()
        b.close()
    host, port = (check_string or connect_string).split(":")
    s = Session(host, int(port))
    try:
        err, frame = s.call("getData", ra)
        assert err == 0 and big in frame
        assert s.call("getData", rb)[1].find(b"z" * 1000) > 0
    finally:
        s.close()
